r"""AM1: heavy ball with a kick (docs/math.md §2, presets table), as a ``torch.optim.Optimizer``."""
from __future__ import annotations

import math
import numbers
from typing import Callable, List, Optional, Union

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._common import (check_flag, check_nonnegative, check_real, collect, effective_grads,
                      group_by_device_and_dtype, resolve_foreach)

__all__ = ["AM1", "am1"]


def _schedule_values(schedule, t: int):
    """``(lr, momentum, kick)`` of step ``t`` from a memsgd Schedule or a callable."""
    from ..schedules import Schedule  # numpy only; memsgd.torch is imported explicitly anyway

    if isinstance(schedule, Schedule):
        algo = schedule.at(t)
        if algo.memory != 1:
            raise ValueError(f"schedule must have memory 1 (AM1 type), got memory {algo.memory}")
        lr, beta, b, alpha = float(algo.c[0]), float(algo.D[0, 0]), float(algo.b[0]), algo.alpha
        if b != beta or algo.e[0] != 0.0:
            raise ValueError(
                f"schedule is not of AM1 type at step {t}: needs b == D and e == 0, got "
                f"b={b!r}, D={beta!r}, e={float(algo.e[0])!r}")
        values = (lr, beta, alpha - lr)
    else:
        values = schedule(t)
        if not (isinstance(values, (tuple, list)) and len(values) == 3):
            raise TypeError(f"schedule({t}) must return a tuple (lr, momentum, kick), got {values!r}")
    out = []
    for name, v in zip(("lr", "momentum", "kick"), values):
        if isinstance(v, Tensor) and v.numel() == 1:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise ValueError(f"schedule gave a non-finite or non-real {name} at step {t}: {v!r}")
        out.append(float(v))
    return tuple(out)


class AM1(Optimizer):
    def __init__(self, params, lr: Optional[float] = None, momentum: Optional[float] = None,
                 kick: Optional[float] = None,
                 schedule: Union[None, Callable[[int], tuple], "object"] = None,
                 weight_decay: float = 0.0, maximize: bool = False, foreach: Optional[bool] = None):
        if schedule is not None:
            from ..schedules import Schedule
            if not (isinstance(schedule, Schedule) or callable(schedule)):
                raise TypeError(
                    f"schedule must be a memsgd Schedule or a callable step -> (lr, momentum, kick), "
                    f"got {type(schedule).__name__}")
            given = [n for n, v in (("lr", lr), ("momentum", momentum), ("kick", kick)) if v is not None]
            if given:
                raise ValueError(
                    f"pass either schedule or lr/momentum/kick, not both (got schedule and {', '.join(given)})")
            lr, momentum, kick = _schedule_values(schedule, 0)
        else:
            missing = [n for n, v in (("lr", lr), ("momentum", momentum), ("kick", kick)) if v is None]
            if missing:
                raise TypeError(f"AM1 needs {', '.join(missing)} (or a schedule)")
        lr = check_real(lr, "lr")
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr} (lr must be >= 0)")
        momentum = check_real(momentum, "momentum")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum} (momentum must be >= 0)")
        kick = check_real(kick, "kick")
        weight_decay = check_nonnegative(weight_decay, "weight_decay")
        check_flag(maximize, "maximize")
        check_flag(foreach, "foreach", allow_none=True)
        self.schedule = schedule
        defaults = dict(lr=lr, momentum=momentum, kick=kick, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach)
        super().__init__(params, defaults)

    def add_param_group(self, param_group) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        lr = check_real(group["lr"], "lr")
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr} (lr must be >= 0)")
        if check_real(group["momentum"], "momentum") < 0.0:
            raise ValueError(f"Invalid momentum value: {group['momentum']} (momentum must be >= 0)")
        check_real(group["kick"], "kick")
        check_nonnegative(group["weight_decay"], "weight_decay")
        group.setdefault("step", 0)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("step", 0)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform a single optimization step.

        Args:
            closure (Callable, optional): A closure that reevaluates the model and returns the loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            params, grads, bufs = collect(group, self.state, "momentum_buffer", "AM1")
            if self.schedule is not None:
                group["lr"], group["momentum"], group["kick"] = _schedule_values(self.schedule, group["step"])
            if params:
                am1(params, grads, bufs, lr=group["lr"], momentum=group["momentum"], kick=group["kick"],
                    weight_decay=group["weight_decay"], maximize=group["maximize"],
                    foreach=group["foreach"], lr_in_buffer=self.schedule is not None)
                for p, buf in zip(params, bufs):
                    self.state[p]["momentum_buffer"] = buf
            group["step"] += 1
        return loss


AM1.__doc__ = r"""Implements AM1 (heavy ball plus a kick; Yarotsky & Velikanov 2025, docs/math.md §2).

    .. math::
       \begin{aligned}
            &\textbf{input}: \gamma \text{ (lr)},\ \beta \text{ (momentum)},\ \eta \text{ (kick)},
                \ \lambda \text{ (weight decay)},\ \theta_0 \text{ (params)},\ \textit{maximize} \\
            &\textbf{for}\ t = 1\ \textbf{to}\ \ldots\ \textbf{do} \\
            &\hspace{5mm} g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1}) + \lambda\theta_{t-1}
                \quad (- \text{ if maximize}) \\
            &\hspace{5mm} v_t \leftarrow \beta v_{t-1} + g_t \qquad (v_0 = 0) \\
            &\hspace{5mm} \theta_t \leftarrow \theta_{t-1} - \gamma v_t - \eta g_t \\
       \end{aligned}

    In matrix form (``u = -lr v``) this is ``alpha = lr + kick, b = D = momentum, c = lr``, with
    effective learning rate ``alpha_eff = kick + lr / (1 - momentum)``. With ``kick = 0`` it is
    ``torch.optim.SGD(lr, momentum, dampening=0)`` and performs the same floating-point operations
    (bitwise equal iterates). ``v`` is stored as ``state[p]["momentum_buffer"]``.

    Args:
        params (iterable): parameters or dicts defining parameter groups (per-group ``lr``,
            ``momentum``, ``kick``, ``weight_decay``, ``maximize``, ``foreach`` allowed).
        lr (float): learning rate ``gamma`` of the momentum term (>= 0).
        momentum (float): ``beta`` (>= 0).
        kick (float): ``eta``, the weight of the current gradient added on top of heavy ball.
        schedule (memsgd.Schedule or callable, optional): per-step hyperparameters. A memsgd
            :class:`~memsgd.Schedule` must have memory 1 and AM1 type (``b == D``, ``e == 0``,
            e.g. ``schedules.am1_power_law``, ``schedules.jacobi_heavy_ball``); step ``t`` uses
            ``lr = c_t``, ``momentum = D_t``, ``kick = alpha_t - c_t``. A callable maps the 0-based
            step ``t`` to ``(lr, momentum, kick)``. Then ``lr``, ``momentum`` and ``kick`` must not
            be passed; the values of each step are written into every param group (visible as
            ``group["lr"]`` etc.; a ``torch.optim.lr_scheduler`` change is overwritten, so do not
            combine the two), and the buffer holds the learning-rate-weighted velocity
            ``m = -u`` of the matrix form so that time-varying ``lr_t`` is followed exactly::

                m_{t+1} = beta_t m_t + lr_t g_t,     theta_{t+1} = theta_t - m_{t+1} - kick_t g_t

            i.e. the iterates are those of the matrix form ``(alpha_t, b_t, c_t, D_t)`` of the
            schedule step by step (for constant lr this is the update above with ``m = lr v``).
            The step counter is ``group["step"]`` (saved by ``state_dict``).
        weight_decay (float, optional): L2 penalty added to the gradient (default: 0).
        maximize (bool, optional): maximize the objective instead of minimizing (default: False).
        foreach (bool, optional): use the multi-tensor (``torch._foreach_*``) implementation;
            ``None`` picks it when all parameters are on CUDA (default: None).

    Without a schedule, ``torch.optim.lr_scheduler`` schedulers work as for SGD: they scale
    ``group["lr"]`` (the momentum term) and leave the kick unchanged; ``v`` is kept, so a new lr
    applies to the whole accumulated velocity, as in ``torch.optim.SGD``.

    Example:
        >>> opt = AM1(model.parameters(), lr=0.01, momentum=0.99, kick=0.1)
        >>> opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    """


def am1(params: List[Tensor], grads: List[Tensor], momentum_buffer_list: List[Optional[Tensor]], *,
        lr: float, momentum: float, kick: float, weight_decay: float = 0.0, maximize: bool = False,
        foreach: Optional[bool] = None, lr_in_buffer: bool = False) -> None:
    r"""Functional AM1 update (see :class:`AM1`). Updates ``params`` in place; new or replaced
    buffers are written back into ``momentum_buffer_list``. ``lr_in_buffer=True`` is the
    schedule form ``m <- beta m + lr g; p <- p - m - kick g``."""
    if not params:
        return
    foreach = resolve_foreach(foreach, params)
    func = _multi_tensor_am1 if foreach else _single_tensor_am1
    func(params, grads, momentum_buffer_list, lr=lr, momentum=momentum, kick=kick,
         weight_decay=weight_decay, maximize=maximize, lr_in_buffer=lr_in_buffer)


# The two paths perform the same per-tensor floating-point operations in the same order (the
# multi-tensor path only batches them), so their results agree bitwise.
#
# kick == 0 (torch convention): torch.optim.SGD's sequence  v.mul_(beta).add_(g); p.add_(v, -lr).
# kick != 0: v <- g + beta v  (one fused read-read-write pass instead of mul_ + add_; in place via
#   out= on CPU and in the single-tensor path, into fresh tensors with one multi-tensor kernel on
#   CUDA), then p.add_(v, -lr); p.add_(g, -kick): 9 memory passes against SGD's 8.

def _single_tensor_am1(params, grads, bufs, *, lr, momentum, kick, weight_decay, maximize, lr_in_buffer):
    grads = effective_grads(params, grads, weight_decay, maximize, foreach=False)
    _per_tensor_am1(range(len(params)), params, grads, bufs, lr, momentum, kick, lr_in_buffer)


def _updated_buffer(buf, g, lr, momentum, kick, lr_in_buffer):
    """One tensor's new momentum buffer (created on the first step), in place where it exists."""
    if lr_in_buffer:
        if buf is None:
            return torch.mul(g, lr)
        return buf.mul_(momentum).add_(g, alpha=lr)
    if buf is None:
        return torch.clone(g).detach()
    if kick == 0:
        return buf.mul_(momentum).add_(g)
    return torch.add(g, buf, alpha=momentum, out=buf)


def _per_tensor_am1(indices, params, grads, bufs, lr, momentum, kick, lr_in_buffer):
    """All of a tensor's operations before the next tensor's (cache-friendly on CPU)."""
    for i in indices:
        p, g = params[i], grads[i]
        buf = bufs[i] = _updated_buffer(bufs[i], g, lr, momentum, kick, lr_in_buffer)
        if lr_in_buffer:
            p.sub_(buf)
        else:
            p.add_(buf, alpha=-lr)
        if kick != 0:
            p.add_(g, alpha=-kick)


# On CPU, torch's foreach ops are loops of the per-tensor ops, so batching buys nothing there and
# sweeping each op over all tensors only evicts the caches: the multi-tensor path therefore runs
# the per-tensor order for CPU tensors (same ops, bitwise the same result). Tests set this to
# False to exercise the batched code on CPU.
_CPU_PER_TENSOR = True


def _multi_tensor_am1(params, grads, bufs, *, lr, momentum, kick, weight_decay, maximize, lr_in_buffer):
    grads = effective_grads(params, grads, weight_decay, maximize, foreach=True)
    for (device, _), idx in group_by_device_and_dtype(params).items():
        if device.type == "cpu" and _CPU_PER_TENSOR:
            _per_tensor_am1(idx, params, grads, bufs, lr, momentum, kick, lr_in_buffer)
            continue
        dp = [params[i] for i in idx]
        dg = [grads[i] for i in idx]
        have = all(bufs[i] is not None for i in idx)
        if have and (lr_in_buffer or kick == 0):
            db = [bufs[i] for i in idx]
            torch._foreach_mul_(db, momentum)
            if lr_in_buffer:
                torch._foreach_add_(db, dg, alpha=lr)
            else:
                torch._foreach_add_(db, dg)
        elif have and device.type != "cpu":
            # kick != 0: one fused multi-tensor pass  v' = g + beta v  into fresh buffers (the
            # caching allocator makes them free); the old buffers are dropped. On CPU fresh
            # allocations every step would page-fault, so there the per-tensor op runs in place.
            db = torch._foreach_add(dg, [bufs[i] for i in idx], alpha=momentum)
            for i, buf in zip(idx, db):
                bufs[i] = buf
        else:  # first step (buffers to create) or CPU with a kick: per-tensor, same ops
            db = []
            for i, g in zip(idx, dg):
                bufs[i] = _updated_buffer(bufs[i], g, lr, momentum, kick, lr_in_buffer)
                db.append(bufs[i])
        if lr_in_buffer:
            torch._foreach_sub_(dp, db)
        else:
            torch._foreach_add_(dp, db, alpha=-lr)
        if kick != 0:
            torch._foreach_add_(dp, dg, alpha=-kick)
