r"""AM1: heavy ball with a kick (docs/math.md §2, presets table), as a ``torch.optim.Optimizer``."""
from __future__ import annotations

import math
import numbers
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.optimizer import required

from .._validation import boolean, nonnegative_int, nonnegative_scalar
from ._common import (
    check_capturable,
    check_loaded_state,
    check_params,
    check_state_dict_form,
    eager_scale,
    eager_values,
    effective_grads,
    group_by_device_and_dtype,
    hyperparameter,
    is_compiling,
    real_views,
    reject_sparse,
    resolve_foreach,
    skipped_by_amp,
    unscale_or_skip,
)
from ._fused import Program, check_fused_options, check_fused_params
from ._fused import step as fused_step

__all__ = ["AM1", "am1"]

_HYPER = ("lr", "momentum", "kick")
# what identifies an AM1 param group in a state dict; flags added later (maximize, foreach,
# capturable, fused, scheduled) take their defaults when an older state dict lacks them
_GROUP_KEYS = ("lr", "momentum", "kick", "weight_decay")
_FLAG_DEFAULTS = dict(maximize=False, foreach=None, capturable=False, fused=False)


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


def _schedule_weight_decay(schedule, t: int, given):
    """Step ``t``'s weight decay: a memsgd Schedule's own ``rho_t`` where it has one (a nonzero
    ``given`` then contradicts it), else ``given``. Schedules with a readout or a preconditioner
    are refused (the optimizer moves the weights themselves)."""
    from .._affine import WEIGHTS_ONLY, refuse_affine
    from ..schedules import Schedule

    if not isinstance(schedule, Schedule):
        return given
    if t == 0:
        refuse_affine(schedule, None, "AM1", WEIGHTS_ONLY, allowed=("weight decay",))
    own = schedule.weight_decay
    if not np.any(own):
        return given
    if t == 0 and given != 0:
        raise ValueError(f"weight_decay={given!r} given, but the schedule has its own weight decay "
                         f"({'per-step values' if np.ndim(own) else own}): pass it in one place only")
    return float(own[t]) if np.ndim(own) else float(own)


class AM1(Optimizer):
    # Built eagerly even inside a compiled function (as torch.optim's own add_param_group and
    # load_state_dict are): Dynamo would defer the attributes set here past the add_param_group
    # calls of Optimizer.__init__, which read them.
    @torch._disable_dynamo
    def __init__(self, params, lr=None, momentum=None, kick=None,
                 schedule: Union[None, Callable[[int], tuple], object] = None,
                 weight_decay: float = 0.0, maximize: bool = False, foreach: Optional[bool] = None,
                 *, capturable: bool = False, fused: Optional[bool] = None):
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
            weight_decay = _schedule_weight_decay(schedule, 0, weight_decay)
        else:
            # torch's convention: a hyperparameter without a default must be set by every group
            lr, momentum, kick = (required if v is None else v for v in (lr, momentum, kick))
        self.schedule = schedule
        defaults = dict(lr=lr, momentum=momentum, kick=kick, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable, fused=fused)
        super().__init__(params, defaults)

    def _checked_group(self, group: dict) -> dict:
        """The validated, normalised hyperparameters of ``group`` (``self.defaults`` filling in)."""
        def get(key):
            return group.get(key, self.defaults[key])

        out = dict(weight_decay=nonnegative_scalar(get("weight_decay"), "weight_decay"),
                   maximize=boolean(get("maximize"), "maximize"),
                   foreach=boolean(get("foreach"), "foreach", allow_none=True),
                   capturable=boolean(get("capturable"), "capturable"),
                   fused=bool(boolean(get("fused"), "fused", allow_none=True)))
        check_fused_options(out["fused"], out["foreach"], out["capturable"], "AM1")
        if self.schedule is None:
            missing = [k for k in _HYPER if get(k) is required]
            if missing:
                raise TypeError(f"AM1 needs {', '.join(missing)}: pass {'them' if len(missing) > 1 else 'it'} "
                                f"to AM1, set {'them' if len(missing) > 1 else 'it'} in every param group, "
                                f"or pass a schedule")
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

    @torch._disable_dynamo
    def add_param_group(self, param_group) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        if self.schedule is not None:
            given = [k for k in _HYPER if k in param_group]
            if "weight_decay" in param_group and self._schedule_decays():
                given.append("weight_decay")
            if given:
                raise ValueError(f"param_group sets {', '.join(given)}, but this AM1 follows a schedule, "
                                 f"which sets them every step")
        values = self._checked_group(param_group)      # raises before anything changes
        check_params(param_group, "AM1")
        super().add_param_group(param_group)
        self.param_groups[-1].update(values)
        self._step_supports_amp_scaling = any(g["fused"] for g in self.param_groups)

    @torch._disable_dynamo
    def load_state_dict(self, state_dict) -> None:
        """torch's ``load_state_dict`` (its load pre-hooks run first and its post-hooks last);
        the loaded groups and state are checked and normalised in between (``__setstate__``),
        before anything changes."""
        check_state_dict_form(self, state_dict)
        super().load_state_dict(state_dict)

    def _check_loaded(self, loaded: dict) -> None:
        check_loaded_state(self, loaded, _GROUP_KEYS, lambda g: ("momentum_buffer",))
        scheduled = self.schedule is not None
        for i, saved in enumerate(loaded["param_groups"]):
            was = bool(saved.get("scheduled", False))
            if was != scheduled:
                raise ValueError(
                    f"state_dict's param group {i} was saved by AM1 {'with' if was else 'without'} "
                    f"a schedule and this AM1 has {'one' if scheduled else 'none'}: its momentum buffers "
                    f"hold {'lr-weighted velocities m' if was else 'velocities v'}; resume "
                    f"into an AM1 constructed like the one that saved it")

    def __getstate__(self):
        state = super().__getstate__()
        state["schedule"] = self.schedule      # torch's Optimizer would drop it (deepcopy, pickle)
        return state

    def __setstate__(self, state):
        if "defaults" not in state:
            # Optimizer.load_state_dict: the (pre-hooked, deep-copied) groups and state it is
            # about to install; refused here, before anything changes, or normalised
            self._check_loaded(state)
            for group in state["param_groups"]:
                for key, value in _FLAG_DEFAULTS.items():      # torch's rule: a missing flag is off
                    group.setdefault(key, value)
                group.update(self._checked_group(group))
        elif "schedule" not in state:
            state["schedule"] = None
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("fused", False)
            group.setdefault("scheduled", self.schedule is not None)
            if group["scheduled"]:
                group.setdefault("step", 0)
        self._step_supports_amp_scaling = any(g["fused"] for g in self.param_groups)

    def _schedule_decays(self) -> bool:
        """Whether the schedule is a memsgd Schedule with a weight decay of its own."""
        from ..schedules import Schedule
        return isinstance(self.schedule, Schedule) and bool(np.any(self.schedule.weight_decay))

    # torch._disable_dynamo is torch.optim's own lazy form of torch.compiler.disable (Dynamo is
    # imported at the first call, not when memsgd.torch is imported)
    @torch._disable_dynamo
    def _advance_schedule(self) -> None:
        """Write each group's step-t values into its hyperparameter tensors; t += 1. Runs eagerly
        (the schedule is numpy), outside any compiled graph."""
        for group in self.param_groups:
            for tensor, value in zip((group[k] for k in _HYPER), _schedule_values(self.schedule, group["step"])):
                tensor.fill_(value)
            if self._schedule_decays():
                group["weight_decay"] = _schedule_weight_decay(self.schedule, group["step"], 0.0)
            group["step"] += 1

    def _init_group(self, group, params, grads, bufs) -> bool:
        """The group's parameters with gradients, their gradients and momentum buffers (created
        as zeros on first use: beta * 0 + g = g). Under torch.compile Dynamo runs this method
        eagerly (as for torch's optimizers), so the buffers are inputs of the compiled step,
        never new tensors that the compiler could alias to a gradient. Returns whether a
        parameter is complex."""
        has_complex = False
        for p in group["params"]:
            if p.grad is None:
                continue
            reject_sparse(p, "AM1")
            if group["fused"] and not self.state.get(p):
                check_fused_params([p], "AM1")           # torch's rule, before any state is made
            params.append(p)
            grads.append(p.grad)
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            bufs.append(state["momentum_buffer"])
            has_complex |= torch.is_complex(p)
        return has_complex

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
        # set by torch.amp.GradScaler.step on optimizers with fused groups (_step_supports_amp_scaling)
        grad_scale, found_inf = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        if self.schedule is not None:
            if skipped_by_amp(found_inf):
                return loss          # an inf/NaN step is skipped whole: the schedule waits too
            self._advance_schedule()
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            bufs: list[Optional[Tensor]] = []
            has_complex = self._init_group(group, params, grads, bufs)
            if not params:
                continue
            fused = group["fused"]
            if not fused and (grad_scale is not None or found_inf is not None):
                if unscale_or_skip(grads, grad_scale, found_inf):
                    continue
            am1(params, grads, bufs, lr=group["lr"], momentum=group["momentum"], kick=group["kick"],
                weight_decay=group["weight_decay"], maximize=group["maximize"],
                foreach=group["foreach"], capturable=group["capturable"], lr_in_buffer=group["scheduled"],
                fused=fused, grad_scale=grad_scale if fused else None,
                found_inf=found_inf if fused else None, has_complex=has_complex)
            for p, buf in zip(params, bufs):
                if self.state[p]["momentum_buffer"] is not buf:   # the CUDA foreach path makes new ones
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
        weight_decay (float, optional): coupled L2: ``weight_decay * theta`` is added to the
            gradient at the parameters, as ``torch.optim.SGD(weight_decay=)`` does and as the
            engine's weight decay means (docs/math.md §9; default: 0). A memsgd Schedule's own
            weight decay (constant or per step, ``Schedule.from_arrays(weight_decay=)``) is used
            when it has one (step ``t`` writes ``rho_t`` into ``group["weight_decay"]``; under
            ``torch.compile`` a weight decay that changes every step recompiles the step, so
            compile with a constant one); passing one here as well is refused.
        maximize (bool, optional): maximize the objective instead of minimizing (default: False).
        foreach (bool, optional): use the multi-tensor (``torch._foreach_*``) implementation;
            ``None`` picks it when all parameters are on CUDA (default: None).
        capturable (bool, keyword, optional): never read a hyperparameter on the host, so that
            the step can be captured in a CUDA graph; tensor hyperparameters must then be on the
            parameters' device (change them in place between replays). Not with a schedule
            (default: False).
        fused (bool, keyword, optional): each tensor's update in one pass over p, g and v (as
            ``torch.optim.SGD(fused=True)``): on CPU memsgd's core, bitwise the same result as
            the other paths; on CUDA and under ``torch.compile`` an inductor-fused kernel. Takes
            ``torch.amp.GradScaler``'s ``grad_scale``/``found_inf``. Not with ``foreach=True``
            or ``capturable=True`` (default: None, i.e. False).

    ``lr``, ``momentum`` and ``kick`` without a schedule may also be given only in the param
    groups (torch's convention for hyperparameters without a default).

    Without a schedule, ``torch.optim.lr_scheduler`` schedulers work as for SGD: they scale
    ``group["lr"]`` (the momentum term; in place when it is a tensor) and leave the kick
    unchanged; ``v`` is kept, so a new lr applies to the whole accumulated velocity, as in
    ``torch.optim.SGD``.

    Tensor hyperparameters: ``lr``, ``momentum`` and ``kick`` may be 0-d tensors, changed in place
    (``fill_``) by the user or a scheduler. Eagerly, and not capturable, the step reads them as
    floats (free for CPU tensors, a device sync for CUDA tensors) and runs the float code, bitwise
    the same as with floats. Under ``torch.compile`` (or ``capturable=True``) they stay tensors:
    a new value neither recompiles the step nor needs a new graph. Buffers are created as
    ``zeros_like(p)`` before the step's arithmetic (by ``_init_group``, which Dynamo runs
    eagerly, as for torch's optimizers), so DTensor (FSDP2) parameters get DTensor state with the
    same placements and a compiled step never aliases a buffer to a gradient.

    Examples:
        With ``kick = 0`` the iterates are torch's SGD with momentum, bitwise:

        >>> import torch
        >>> from memsgd.torch import AM1
        >>> a = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> b = torch.nn.Parameter(a.detach().clone())
        >>> for opt, p in ((AM1([a], lr=0.1, momentum=0.9, kick=0.0), a),
        ...                (torch.optim.SGD([b], lr=0.1, momentum=0.9), b)):
        ...     for _ in range(5):
        ...         opt.zero_grad()
        ...         (p ** 2).sum().backward()
        ...         opt.step()
        >>> torch.equal(a, b)
        True

        The kick adds ``kick g`` on top (a training loop is the same as with any optimizer):

        >>> opt = AM1([a], lr=0.1, momentum=0.9, kick=0.5)
    """


def am1(params: list[Tensor], grads: list[Tensor], momentum_buffer_list: list[Optional[Tensor]], *,
        lr, momentum, kick, weight_decay: float = 0.0, maximize: bool = False,
        foreach: Optional[bool] = None, capturable: bool = False, lr_in_buffer: bool = False,
        fused: Optional[bool] = None, grad_scale: Optional[Tensor] = None,
        found_inf: Optional[Tensor] = None, has_complex: Optional[bool] = None) -> None:
    r"""Functional AM1 update (see [`AM1`][memsgd.torch.AM1]). Updates ``params`` in place; buffers that are
    None are created (zeros, ``v_0 = 0``) and, like replaced ones, written back into
    ``momentum_buffer_list``. ``lr``, ``momentum``, ``kick`` are floats or 0-d tensors.
    ``lr_in_buffer=True`` is the schedule form ``m <- beta m + lr g; p <- p - m - kick g``.
    ``fused=True`` runs each tensor's update in one pass (see [`AM1`][memsgd.torch.AM1]); ``grad_scale`` and
    ``found_inf`` (AMP, fused only) unscale the gradients in place and skip an inf/NaN step.

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
    for i, buf in enumerate(momentum_buffer_list):
        if buf is None:
            momentum_buffer_list[i] = torch.zeros_like(params[i], memory_format=torch.preserve_format)
    values = (lr, momentum, kick)
    if fused:
        # under torch.compile Dynamo may set capturable on CUDA groups itself (the compiled step
        # is then captured whole), so only a user's capturable=True is refused
        check_fused_options(fused, foreach, capturable and not is_compiling(), "AM1")
        check_fused_params(params, "AM1")
        lr, momentum, kick = eager_values(values, capturable=False)
        program = _program(lr, momentum, kick, weight_decay, maximize, lr_in_buffer,
                           eager_scale(grad_scale))
        fused_step(program, list(zip(params, grads, momentum_buffer_list)), found_inf)
        return
    if grad_scale is not None or found_inf is not None:
        raise ValueError("grad_scale and found_inf are for fused=True (torch.amp.GradScaler unscales "
                         "and checks the gradients itself for the other paths)")
    if capturable and not is_compiling():
        check_capturable(params, values, _HYPER)
    lr, momentum, kick = eager_values(values, capturable)
    foreach = resolve_foreach(foreach, params)
    if any(isinstance(v, Tensor) for v in (lr, momentum, kick)):
        func = _multi_tensor_am1_tensor if foreach else _single_tensor_am1_tensor
    else:
        func = _multi_tensor_am1 if foreach else _single_tensor_am1
    with real_views(params, grads, momentum_buffer_list, has_complex) as (rp, rg, rb):
        func(rp, rg, rb, lr=lr, momentum=momentum, kick=kick,
             weight_decay=weight_decay, maximize=maximize, lr_in_buffer=lr_in_buffer)


def _program(lr, momentum, kick, weight_decay, maximize, lr_in_buffer, grad_scale) -> Program:
    """The fused step: the per-tensor path's operations below, on registers p = 0, g = 1,
    buffer = 2 (floats: the same bits; 0-d tensors under torch.compile: no branch on a value)."""
    prog = Program(3)
    g = prog.gradient(0, 1, weight_decay=weight_decay, maximize=maximize, grad_scale=grad_scale)
    as_tensors = any(isinstance(v, Tensor) for v in (lr, momentum, kick))
    if lr_in_buffer:                                   # m = beta m + lr g; p -= m
        prog.mul(2, 2, momentum)
        prog.fma(2, g, lr, 2)
        prog.fma(0, 2, -1.0, 0)
    elif not as_tensors and kick == 0:                 # torch.optim.SGD's v.mul_(beta).add_(g)
        prog.mul(2, 2, momentum)
        prog.fma(2, g, 1.0, 2)
        prog.fma(0, 2, -lr, 0)
    else:                                              # v = g + beta v; p -= lr v
        prog.fma(2, 2, momentum, g)
        prog.fma(0, 2, -lr, 0)
    if as_tensors or kick != 0:                        # p -= kick g
        prog.fma(0, g, -kick, 0)
    return prog


# -- float hyperparameters (eager) --------------------------------------------------------
# The two paths perform the same per-tensor floating-point operations in the same order (the
# multi-tensor path only batches them), and so does the fused program (_program), so their
# results agree bitwise. Buffers exist on entry (zeros on the first step: beta * 0 + g = g).
#
# kick == 0 (torch convention): torch.optim.SGD's sequence  v.mul_(beta).add_(g); p.add_(v, -lr).
# kick != 0: v <- g + beta v  (one fused read-read-write pass instead of mul_ + add_; in place via
#   out= on CPU and in the single-tensor path, into fresh tensors with one multi-tensor kernel on
#   CUDA), then p.add_(v, -lr); p.add_(g, -kick): 9 memory passes against SGD's 8 (fused=True:
#   one pass over p, g and v, i.e. SGD(fused=True)'s 5 streams).

def _single_tensor_am1(params, grads, bufs, *, lr, momentum, kick, weight_decay, maximize, lr_in_buffer):
    grads = effective_grads(params, grads, weight_decay, maximize, foreach=False)
    _per_tensor_am1(range(len(params)), params, grads, bufs, lr, momentum, kick, lr_in_buffer)


def _update_buffer(buf, g, lr, momentum, kick, lr_in_buffer):
    """One tensor's momentum buffer, in place."""
    if lr_in_buffer:
        buf.mul_(momentum).add_(g, alpha=lr)
    elif kick == 0:
        buf.mul_(momentum).add_(g)
    else:
        torch.add(g, buf, alpha=momentum, out=buf)


def _per_tensor_am1(indices, params, grads, bufs, lr, momentum, kick, lr_in_buffer):
    """All of a tensor's operations before the next tensor's (cache-friendly on CPU)."""
    for i in indices:
        p, g, buf = params[i], grads[i], bufs[i]
        _update_buffer(buf, g, lr, momentum, kick, lr_in_buffer)
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
        dp, dg, db = ([xs[i] for i in idx] for xs in (params, grads, bufs))
        if lr_in_buffer or kick == 0:
            torch._foreach_mul_(db, momentum)
            if lr_in_buffer:
                torch._foreach_add_(db, dg, alpha=lr)
            else:
                torch._foreach_add_(db, dg)
        elif device.type != "cpu" and not is_compiling():
            # kick != 0: one fused multi-tensor pass  v' = g + beta v  into fresh buffers (the
            # caching allocator makes them free); the old buffers are dropped. On CPU fresh
            # allocations every step would page-fault, and a compiled step must keep its state
            # tensors (they are its inputs), so there the per-tensor op runs in place.
            db = torch._foreach_add(dg, db, alpha=momentum)
            for i, buf in zip(idx, db):
                bufs[i] = buf
        else:
            for g, buf in zip(dg, db):
                torch.add(g, buf, alpha=momentum, out=buf)
        if lr_in_buffer:
            torch._foreach_sub_(dp, db)
        else:
            torch._foreach_add_(dp, db, alpha=-lr)
        if kick != 0:
            torch._foreach_add_(dp, dg, alpha=-kick)


# -- tensor hyperparameters (compiled or capturable steps) ----------------------------------
# No host reads and no branches on values: the same ops run whatever lr, momentum and kick are,
# so a compiled step is traced once and a captured CUDA graph replays with new values. Under
# torch.compile only binary ops take the 0-d tensors (a CPU scalar tensor is allowed there next to
# device tensors) and the compiler fuses each tensor's ops into one loop; eagerly (capturable,
# where the tensors are on the parameters' device) p += s x is one addcmul_ per tensor, or a
# multi-tensor mul + add on non-CPU devices.

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
        p, g, buf = params[i], grads[i], bufs[i]
        buf.mul_(momentum)
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
        dp, dg, db = ([xs[i] for i in idx] for xs in (params, grads, bufs))
        torch._foreach_mul_(db, momentum)
        if lr_in_buffer:
            torch._foreach_add_(db, torch._foreach_mul(dg, lr))
            torch._foreach_sub_(dp, db)
        else:
            torch._foreach_add_(db, dg)
            torch._foreach_sub_(dp, torch._foreach_mul(db, lr))
        torch._foreach_sub_(dp, torch._foreach_mul(dg, kick))
