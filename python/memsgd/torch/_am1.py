r"""AM1: heavy ball with a kick (docs/math.md §2, presets table), as a ``torch.optim.Optimizer``."""
from __future__ import annotations

import math
import numbers
from typing import Callable, List, Optional, Union

import torch
from torch import Tensor
from torch.optim import Optimizer

from .._validation import boolean, nonnegative_int, nonnegative_scalar
from ._common import (check_capturable, check_state_dict, collect, eager_values, effective_grads,
                      group_by_device_and_dtype, hyperparameter, is_compiling, resolve_foreach)

__all__ = ["AM1", "am1"]

_HYPER = ("lr", "momentum", "kick")
_GROUP_KEYS = ("lr", "momentum", "kick", "weight_decay", "maximize", "foreach", "capturable", "scheduled")


def _schedule_values(schedule, t: int):
    """``(lr, momentum, kick)`` of step ``t`` from a memsgd Schedule or a callable."""
    from ..schedules import Schedule, am1_form  # numpy only; memsgd.torch is imported explicitly anyway

    if isinstance(schedule, Schedule):
        algo = schedule.at(t)
        lr, beta, kick = am1_form([algo.alpha], algo.b, algo.c, algo.D, algo.e, first_step=t)
        values = (float(lr[0]), float(beta[0]), float(kick[0]))
    else:
        values = schedule(t)
        if not (isinstance(values, (tuple, list)) and len(values) == 3):
            raise TypeError(f"schedule({t}) must return a tuple (lr, momentum, kick), got {values!r}")
    out = []
    for name, v in zip(_HYPER, values):
        if isinstance(v, Tensor) and v.numel() == 1:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise ValueError(f"schedule gave a non-finite or non-real {name} at step {t}: {v!r}")
        out.append(float(v))
    return tuple(out)


class AM1(Optimizer):
    def __init__(self, params, lr=None, momentum=None, kick=None,
                 schedule: Union[None, Callable[[int], tuple], "object"] = None,
                 weight_decay: float = 0.0, maximize: bool = False, foreach: Optional[bool] = None,
                 *, capturable: bool = False):
        if schedule is not None:
            from ..schedules import Schedule
            if not (isinstance(schedule, Schedule) or callable(schedule)):
                raise TypeError(
                    f"schedule must be a memsgd Schedule or a callable step -> (lr, momentum, kick), "
                    f"got {type(schedule).__name__}")
            given = [n for n, v in zip(_HYPER, (lr, momentum, kick)) if v is not None]
            if given:
                raise ValueError(
                    f"pass either schedule or lr/momentum/kick, not both (got schedule and {', '.join(given)})")
            lr, momentum, kick = _schedule_values(schedule, 0)
        else:
            missing = [n for n, v in zip(_HYPER, (lr, momentum, kick)) if v is None]
            if missing:
                raise TypeError(f"AM1 needs {', '.join(missing)} (or a schedule)")
        self.schedule = schedule
        defaults = dict(lr=lr, momentum=momentum, kick=kick, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable)
        super().__init__(params, defaults)

    def _checked_group(self, group: dict) -> dict:
        """The validated, normalised hyperparameters of ``group`` (``self.defaults`` filling in)."""
        def get(key):
            return group.get(key, self.defaults[key])

        out = dict(weight_decay=nonnegative_scalar(get("weight_decay"), "weight_decay"),
                   maximize=boolean(get("maximize"), "maximize"),
                   foreach=boolean(get("foreach"), "foreach", allow_none=True),
                   capturable=boolean(get("capturable"), "capturable"))
        if self.schedule is None:
            out.update(lr=hyperparameter(get("lr"), "lr", nonnegative=True),
                       momentum=hyperparameter(get("momentum"), "momentum", nonnegative=True),
                       kick=hyperparameter(get("kick"), "kick"), scheduled=False)
            return out
        if out["capturable"]:
            raise ValueError("capturable=True cannot follow a schedule (its values are computed on the "
                             "host each step); pass lr/momentum/kick as device tensors and update them "
                             "between graph replays instead")
        step = nonnegative_int(group.get("step", 0), "step")
        # each group owns its 0-d tensors: the schedule writes step t's values into them in place,
        # so a compiled step sees the same tensors every step and does not recompile
        out.update({k: torch.tensor(v, dtype=torch.float64)
                    for k, v in zip(_HYPER, _schedule_values(self.schedule, step))})
        out.update(step=step, scheduled=True)
        return out

    def add_param_group(self, param_group) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        if self.schedule is not None:
            given = [k for k in _HYPER if k in param_group]
            if given:
                raise ValueError(f"param_group sets {', '.join(given)}, but this AM1 follows a schedule, "
                                 f"which sets them every step")
        values = self._checked_group(param_group)      # raises before anything changes
        super().add_param_group(param_group)
        self.param_groups[-1].update(values)

    def load_state_dict(self, state_dict) -> None:
        check_state_dict(self, state_dict, _GROUP_KEYS, lambda g: ("momentum_buffer",))
        scheduled = self.schedule is not None
        for i, saved in enumerate(state_dict["param_groups"]):
            if bool(saved["scheduled"]) != scheduled:
                raise ValueError(
                    f"state_dict's param group {i} was saved by AM1 {'with' if saved['scheduled'] else 'without'} "
                    f"a schedule and this AM1 has {'one' if scheduled else 'none'}: its momentum buffers "
                    f"hold {'lr-weighted velocities m' if saved['scheduled'] else 'velocities v'}; resume "
                    f"into an AM1 constructed like the one that saved it")
        values = [self._checked_group(g) for g in state_dict["param_groups"]]  # raises before any change
        super().load_state_dict(state_dict)
        for group, v in zip(self.param_groups, values):
            group.update(v)

    def __getstate__(self):
        state = super().__getstate__()
        state["schedule"] = self.schedule      # torch's Optimizer would drop it (deepcopy, pickle)
        return state

    def __setstate__(self, state):
        # also called by Optimizer.load_state_dict with only "state" and "param_groups"
        if "schedule" not in state and not hasattr(self, "schedule"):
            state["schedule"] = None
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("scheduled", self.schedule is not None)
            if group["scheduled"]:
                group.setdefault("step", 0)

    # torch._disable_dynamo is torch.optim's own lazy form of torch.compiler.disable (Dynamo is
    # imported at the first call, not when memsgd.torch is imported)
    @torch._disable_dynamo
    def _advance_schedule(self) -> None:
        """Write each group's step-t values into its hyperparameter tensors; t += 1. Runs eagerly
        (the schedule is numpy), outside any compiled graph."""
        for group in self.param_groups:
            for tensor, value in zip((group[k] for k in _HYPER), _schedule_values(self.schedule, group["step"])):
                tensor.fill_(value)
            group["step"] += 1

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
        if self.schedule is not None:
            self._advance_schedule()
        for group in self.param_groups:
            params, grads, bufs = collect(group, self.state, ("momentum_buffer",), "AM1")
            if not params:
                continue
            bufs = [None if b is None else b[0] for b in bufs]
            am1(params, grads, bufs, lr=group["lr"], momentum=group["momentum"], kick=group["kick"],
                weight_decay=group["weight_decay"], maximize=group["maximize"],
                foreach=group["foreach"], capturable=group["capturable"], lr_in_buffer=group["scheduled"])
            for p, buf in zip(params, bufs):
                self.state[p]["momentum_buffer"] = buf
        return loss


AM1.__doc__ = r"""Implements AM1 (heavy ball plus a kick; Yarotsky & Velikanov 2025, docs/math.md §2).

    $$
    \begin{aligned}
         &\textbf{input}: \gamma \text{ (lr)},\ \beta \text{ (momentum)},\ \eta \text{ (kick)},
             \ \lambda \text{ (weight decay)},\ \theta_0 \text{ (params)},\ \textit{maximize} \\
         &\textbf{for}\ t = 1\ \textbf{to}\ \ldots\ \textbf{do} \\
         &\hspace{5mm} g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1}) + \lambda\theta_{t-1}
             \quad (- \text{ if maximize}) \\
         &\hspace{5mm} v_t \leftarrow \beta v_{t-1} + g_t \qquad (v_0 = 0) \\
         &\hspace{5mm} \theta_t \leftarrow \theta_{t-1} - \gamma v_t - \eta g_t \\
    \end{aligned}
    $$

    In matrix form (``u = -lr v``) this is ``alpha = lr + kick, b = D = momentum, c = lr``, with
    effective learning rate ``alpha_eff = kick + lr / (1 - momentum)``. With ``kick = 0`` it is
    ``torch.optim.SGD(lr, momentum, dampening=0)`` and performs the same floating-point operations
    (bitwise equal iterates). ``v`` is stored as ``state[p]["momentum_buffer"]``.

    Args:
        params (iterable): parameters or dicts defining parameter groups (per-group ``lr``,
            ``momentum``, ``kick``, ``weight_decay``, ``maximize``, ``foreach``, ``capturable``
            allowed; with a schedule, groups must not set ``lr``, ``momentum``, ``kick``).
        lr (float or Tensor): learning rate ``gamma`` of the momentum term (>= 0).
        momentum (float or Tensor): ``beta`` (>= 0).
        kick (float or Tensor): ``eta``, the weight of the current gradient added on top of heavy
            ball. Each of the three may be a 1-element floating tensor (see *Tensor
            hyperparameters* below).
        schedule (memsgd.Schedule or callable, optional): per-step hyperparameters. A memsgd
            [`Schedule`][memsgd.schedules.Schedule] must have memory 1 and AM1 type (``b == D``, ``e == 0``,
            e.g. ``schedules.am1_power_law``, ``schedules.jacobi_heavy_ball``); step ``t`` uses
            ``lr = c_t``, ``momentum = D_t``, ``kick = alpha_t - c_t``. A callable maps the 0-based
            step ``t`` to ``(lr, momentum, kick)``. Then ``lr``, ``momentum`` and ``kick`` must not
            be passed; each group holds them as 0-d float64 tensors into which the schedule writes
            step t's values at the start of step t (a ``torch.optim.lr_scheduler`` change is
            overwritten, so do not combine the two), and the buffer holds the
            learning-rate-weighted velocity ``m = -u`` of the matrix form so that time-varying
            ``lr_t`` is followed exactly::

                m_{t+1} = beta_t m_t + lr_t g_t,     theta_{t+1} = theta_t - m_{t+1} - kick_t g_t

            i.e. the iterates are those of the matrix form ``(alpha_t, b_t, c_t, D_t)`` of the
            schedule step by step (for constant lr this is the update above with ``m = lr v``).
            The step counter is ``group["step"]``; ``state_dict`` saves it, and a state saved with a
            schedule only loads into an AM1 with a schedule (and one saved without, only without).
            ``copy.deepcopy`` and pickle keep the schedule (it must pickle for the latter).
        weight_decay (float, optional): L2 penalty added to the gradient (default: 0).
        maximize (bool, optional): maximize the objective instead of minimizing (default: False).
        foreach (bool, optional): use the multi-tensor (``torch._foreach_*``) implementation;
            ``None`` picks it when all parameters are on CUDA (default: None).
        capturable (bool, keyword, optional): never read a hyperparameter on the host, so that
            the step can be captured in a CUDA graph; tensor hyperparameters must then be on the
            parameters' device (change them in place between replays). Not with a schedule
            (default: False).

    Without a schedule, ``torch.optim.lr_scheduler`` schedulers work as for SGD: they scale
    ``group["lr"]`` (the momentum term; in place when it is a tensor) and leave the kick
    unchanged; ``v`` is kept, so a new lr applies to the whole accumulated velocity, as in
    ``torch.optim.SGD``.

    Tensor hyperparameters: ``lr``, ``momentum`` and ``kick`` may be 0-d tensors, changed in place
    (``fill_``) by the user or a scheduler. Eagerly, and not capturable, the step reads them as
    floats (free for CPU tensors, a device sync for CUDA tensors) and runs the float code, bitwise
    the same as with floats. Under ``torch.compile`` (or ``capturable=True``) they stay tensors:
    a new value neither recompiles the step nor needs a new graph. Buffers are created with
    ``*_like`` constructors from the parameter or gradient, so DTensor (FSDP2) parameters get
    DTensor state with the same placements.

    Examples:
        With ``kick = 0`` the iterates are torch's SGD with momentum, bitwise:

        >>> import torch
        >>> from memsgd.torch import AM1
        >>> a = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> b = torch.nn.Parameter(a.detach().clone())
        >>> for opt, p in ((AM1([a], lr=0.1, momentum=0.9, kick=0.0), a), (torch.optim.SGD([b], lr=0.1, momentum=0.9), b)):
        ...     for _ in range(5):
        ...         opt.zero_grad()
        ...         (p ** 2).sum().backward()
        ...         opt.step()
        >>> torch.equal(a, b)
        True

        The kick adds ``kick g`` on top (a training loop is the same as with any optimizer):

        >>> opt = AM1([a], lr=0.1, momentum=0.9, kick=0.5)
    """


def am1(params: List[Tensor], grads: List[Tensor], momentum_buffer_list: List[Optional[Tensor]], *,
        lr, momentum, kick, weight_decay: float = 0.0, maximize: bool = False,
        foreach: Optional[bool] = None, capturable: bool = False, lr_in_buffer: bool = False) -> None:
    r"""Functional AM1 update (see [`AM1`][memsgd.torch.AM1]). Updates ``params`` in place; new or replaced
    buffers are written back into ``momentum_buffer_list``. ``lr``, ``momentum``, ``kick`` are
    floats or 0-d tensors. ``lr_in_buffer=True`` is the schedule form
    ``m <- beta m + lr g; p <- p - m - kick g``.

    Examples:
        One step from a zero buffer: ``v = g``, ``p <- p - lr g - kick g``:

        >>> import torch
        >>> from memsgd.torch import am1
        >>> p, g, buffers = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 0.5]), [None]
        >>> am1([p], [g], buffers, lr=0.1, momentum=0.9, kick=0.5)
        >>> p.tolist(), buffers[0].tolist()
        ([0.699999988079071, -2.299999952316284], [0.5, 0.5])
    """
    if not params:
        return
    values = (lr, momentum, kick)
    if capturable:
        check_capturable(params, values, _HYPER)
    lr, momentum, kick = eager_values(values, capturable)
    foreach = resolve_foreach(foreach, params)
    if any(isinstance(v, Tensor) for v in (lr, momentum, kick)):
        func = _multi_tensor_am1_tensor if foreach else _single_tensor_am1_tensor
    else:
        func = _multi_tensor_am1 if foreach else _single_tensor_am1
    func(params, grads, momentum_buffer_list, lr=lr, momentum=momentum, kick=kick,
         weight_decay=weight_decay, maximize=maximize, lr_in_buffer=lr_in_buffer)


# -- float hyperparameters (eager) --------------------------------------------------------
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


# -- tensor hyperparameters (compiled or capturable steps) ----------------------------------
# No host reads and no branches on values: the same ops run whatever lr, momentum and kick are,
# so a compiled step is traced once and a captured CUDA graph replays with new values. Buffers
# start as zeros_like(p) (keeps the subclass: DTensor, FSDP2) and the first step runs the same
# ops: beta * 0 + g = g exactly. Under torch.compile only binary ops take the 0-d tensors (a CPU
# scalar tensor is allowed there next to device tensors) and the compiler fuses them; eagerly
# (capturable, where the tensors are on the parameters' device) p += s x is one addcmul_ per
# tensor, or a multi-tensor mul + add on non-CPU devices.

def _add_scaled_(p, x, s):
    """``p += s * x`` in place; ``s`` a float or a 0-d tensor."""
    if not isinstance(s, Tensor):
        p.add_(x, alpha=s)
    elif is_compiling():
        p.add_(torch.mul(x, s))
    else:
        p.addcmul_(x, s)


def _per_tensor_am1_tensor(indices, params, grads, bufs, lr, momentum, kick, lr_in_buffer):
    for i in indices:
        p, g = params[i], grads[i]
        if bufs[i] is None:
            bufs[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
        buf = bufs[i].mul_(momentum)
        if lr_in_buffer:
            _add_scaled_(buf, g, lr)
            p.sub_(buf)
        else:
            buf.add_(g)
            _add_scaled_(p, buf, -lr)
        _add_scaled_(p, g, -kick)


def _single_tensor_am1_tensor(params, grads, bufs, *, lr, momentum, kick, weight_decay, maximize,
                              lr_in_buffer):
    grads = effective_grads(params, grads, weight_decay, maximize, foreach=False)
    _per_tensor_am1_tensor(range(len(params)), params, grads, bufs, lr, momentum, kick, lr_in_buffer)


def _multi_tensor_am1_tensor(params, grads, bufs, *, lr, momentum, kick, weight_decay, maximize,
                             lr_in_buffer):
    grads = effective_grads(params, grads, weight_decay, maximize, foreach=True)
    for (device, _), idx in group_by_device_and_dtype(params).items():
        if device.type == "cpu" and _CPU_PER_TENSOR:
            _per_tensor_am1_tensor(idx, params, grads, bufs, lr, momentum, kick, lr_in_buffer)
            continue
        for i in idx:
            if bufs[i] is None:
                bufs[i] = torch.zeros_like(params[i], memory_format=torch.preserve_format)
        dp, dg, db = ([xs[i] for i in idx] for xs in (params, grads, bufs))
        torch._foreach_mul_(db, momentum)
        if lr_in_buffer:
            torch._foreach_add_(db, torch._foreach_mul(dg, lr))
            torch._foreach_sub_(dp, db)
        else:
            torch._foreach_add_(db, dg)
            torch._foreach_sub_(dp, torch._foreach_mul(db, lr))
        torch._foreach_sub_(dp, torch._foreach_mul(dg, kick))
