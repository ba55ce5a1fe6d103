"""``torch.optim.SGD`` and ``optax.sgd`` in matrix form: the per-step parameters behind
[`memsgd.schedules.torch_sgd`][memsgd.schedules.torch_sgd] and
[`memsgd.schedules.optax_sgd`][memsgd.schedules.optax_sgd] (whose docstrings give
the derivation). Everything here is numpy; the frameworks are imported only to read a schedule
of theirs ([`memsgd.lr_shapes`][memsgd.lr_shapes]).

With ``u = -buf`` (torch's momentum buffer, optax's trace) and ``k_t`` the weight of the gradient
in the buffer's update, step t of either is

    u_{t+1} = mu_t u_t - k_t g_t
    w_{t+1} = w_t + lr_t mu_t u_t - lr_t k_t g_t                      (heavy ball)
    w_{t+1} = w_t + lr_t mu_t^2 u_t - lr_t (1 + mu_t k_t) g_t          (nesterov)

so ``(alpha, b, c, D, e) = (lr k, lr mu, k, mu, 0)`` or ``(lr (1 + mu k), lr mu^2, k, mu, 0)``.
"""
from __future__ import annotations

import functools
import numbers
import sys

import numpy as np

from ._validation import boolean, bounded_scalar, float_array, step_count
from .lr_shapes import Shape, from_optax_schedule, from_torch_scheduler

__all__ = ["torch_sgd_form", "optax_sgd_form"]


# -- per-step values ------------------------------------------------------------------------------

def _torch_scheduler(value) -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    sched = torch.optim.lr_scheduler
    return isinstance(value, getattr(sched, "LRScheduler", None) or sched._LRScheduler)


def _values(value, steps, name: str, *, optax: bool, nonnegative: bool = True):
    """A number (a float: the same every step) or the per-step values (float64 array) of
    ``value``: a number, a 1-D array over steps, a callable ``step -> value`` (called with Python
    ints; for optax with int32 counts, as optax calls it), a memsgd lr shape, or a torch LR
    scheduler (its optimizer's values, [`from_torch_scheduler`][memsgd.lr_shapes.from_torch_scheduler])."""
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is None:
        raise TypeError(f"{name} must be a number, an array over steps or a callable step -> value, "
                        f"got {type(value).__name__}")
    if isinstance(value, numbers.Real) or (not callable(value) and not _torch_scheduler(value)
                                           and np.ndim(value) == 0):       # 0-d numpy/jax/torch values too
        arr = None
        number = float(float_array(value, name))
    else:
        number = None
        if _torch_scheduler(value):
            if optax:
                raise TypeError(f"{name} is a torch scheduler: use schedules.torch_sgd for torch runs")
            arr = from_torch_scheduler(value, _required(steps, name), key="lr")
        elif callable(value):
            steps = _required(steps, name)
            if optax:
                arr = from_optax_schedule(value, steps)
            elif isinstance(value, Shape):
                arr = value.values(steps)
            else:
                arr = np.empty(steps)
                for t in range(steps):
                    v = value(t)
                    try:
                        arr[t] = float(v)
                    except (TypeError, ValueError):
                        raise TypeError(f"{name}({t}) must be a real number, got {v!r}") from None
        else:
            arr = float_array(value, name, ndim=1, allow_empty=False, finite=False)
    checked = np.atleast_1d(number if arr is None else arr)
    bad = ~np.isfinite(checked) | ((checked < 0) if nonnegative else False)
    if np.any(bad):
        i = int(np.argmax(bad))
        rule = "finite and >= 0" if nonnegative else "finite"
        where = "" if arr is None else f" at step {i}"
        raise ValueError(f"{name} must be {rule}{where}, got {float(checked[i])!r}")
    return number if arr is None else arr


def _required(steps, name: str) -> int:
    if steps is None:
        raise ValueError(f"steps is required when {name} is a schedule (its values at steps 0..steps-1 are "
                         f"tabulated)")
    return steps


def _length(steps, **values) -> int | None:
    """The common number of steps of the per-step arrays (and ``steps``, if given): all equal."""
    lengths = {name: v.size for name, v in values.items() if isinstance(v, np.ndarray)}
    if steps is not None:
        lengths = {"steps": steps, **lengths}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in lengths.items())
        raise ValueError(f"the per-step values must cover the same steps, got lengths {listed}")
    return next(iter(lengths.values()), None)


def _per_step(value, n: int) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else np.full(n, value)


def _summary(name: str, value) -> str:
    return f"{name}=per-step" if isinstance(value, np.ndarray) else f"{name}={value:g}"


# -- matrix form ----------------------------------------------------------------------------------

def _matrix_form(lr, mu, k, nesterov: bool, hold: bool):
    """Per-step ``(alpha, b, c, D, e)`` of the module docstring's step; ``hold``: a step with
    ``mu_t = 0`` leaves the buffer as it is (torch skips the momentum branch) instead of
    replacing it by ``g`` (optax's trace)."""
    n = lr.size
    if nesterov:
        alpha, b = lr * (1 + mu * k), lr * mu * mu
    else:
        alpha, b = lr * k, lr * mu
    c, D = k.copy(), mu.copy()
    if hold:
        off = mu == 0
        alpha, b, c, D = (np.where(off, x, y) for x, y in ((lr, alpha), (0.0, b), (0.0, c), (1.0, D)))
    return alpha, b.reshape(n, 1), c.reshape(n, 1), D.reshape(n, 1, 1), np.zeros((n, 1))


def _memory0(lr, t):
    n = len(t)
    return np.full(n, lr), np.zeros((n, 0)), np.zeros((n, 0)), np.zeros((n, 0, 0)), np.zeros((n, 0))


def _stationary_momentum(lr, mu, first_k, later_k, nesterov, hold, t):
    """Constant ``lr`` and ``mu != 0``: ``k_0 = first_k``, ``k_t = later_k`` after."""
    n = len(t)
    k = np.where(np.asarray(t) == 0, first_k, later_k).astype(np.float64)
    return _matrix_form(np.full(n, lr), np.full(n, mu), k, nesterov, hold)


class _Tabulated:
    """Rows ``t`` of precomputed per-step arrays (picklable)."""

    def __init__(self, arrays):
        self.arrays = arrays

    def __call__(self, t):
        return tuple(a[t] for a in self.arrays)


# -- torch.optim.SGD ------------------------------------------------------------------------------

def torch_sgd_form(lr, momentum, dampening, nesterov, weight_decay, steps):
    """``(memory, generator, length, weight_decay, name)`` of ``torch.optim.SGD``."""
    nesterov = boolean(nesterov, "nesterov")
    dampening = bounded_scalar(dampening, "dampening", 0, 1)
    steps = None if steps is None else step_count(steps, "steps", minimum=1)
    lr_v = _values(lr, steps, "lr", optax=False)
    mu_v = _values(momentum, steps, "momentum", optax=False)
    wd_v = _values(weight_decay, steps, "weight_decay", optax=False)
    n = _length(steps, lr=lr_v, momentum=mu_v, weight_decay=wd_v)
    # torch refuses a momentum-less nesterov (checked at construction, so a momentum changed per
    # step may pass through 0): refused where the momentum is 0 at every step
    if nesterov and (not np.any(mu_v) or dampening != 0):
        shown = "0 at every step" if not np.any(mu_v) else "given"
        raise ValueError(f"nesterov=True needs momentum > 0 and dampening = 0 (as torch.optim.SGD requires), "
                         f"got momentum {shown} and dampening={dampening:g}")
    if _torch_scheduler(lr):
        _check_scheduler_optimizer(lr, n, mu_v, dampening, nesterov, wd_v)
    name = (f"torch_sgd({_summary('lr', lr_v)}, {_summary('momentum', mu_v)}, dampening={dampening:g}, "
            f"nesterov={nesterov}, {_summary('weight_decay', wd_v)})")
    if n is None:                                        # every value a number: no end
        if mu_v == 0:
            return 0, functools.partial(_memory0, lr_v), None, wd_v, name
        return (1, functools.partial(_stationary_momentum, lr_v, mu_v, 1.0, 1.0 - dampening, nesterov, True),
                None, wd_v, name)
    lr_a, mu_a = _per_step(lr_v, n), _per_step(mu_v, n)
    # the buffer is made at the first step with momentum != 0 as a copy of g (no dampening then)
    k = np.full(n, 1.0 - dampening)
    active = np.flatnonzero(mu_a != 0)
    if active.size:
        k[active[0]] = 1.0
    if not active.size and not isinstance(mu_v, np.ndarray):
        arrays = _memory0(0.0, np.arange(n))
        arrays = (lr_a.copy(),) + arrays[1:]
        return 0, _Tabulated(arrays), n, wd_v, name
    return 1, _Tabulated(_matrix_form(lr_a, mu_a, k, nesterov, hold=True)), n, wd_v, name


def _check_scheduler_optimizer(scheduler, n, mu_v, dampening, nesterov, wd_v) -> None:
    """The torch.optim.SGD a scheduler drives must be the one described: its momentum (per step,
    as the scheduler may cycle it), dampening, nesterov and weight decay."""
    import torch
    optimizer = scheduler.optimizer
    if not isinstance(optimizer, torch.optim.SGD):
        return
    group = optimizer.param_groups[0]
    for key, given in (("dampening", dampening), ("nesterov", nesterov)):
        if group[key] != given:
            raise ValueError(f"lr's scheduler drives a torch.optim.SGD with {key}={group[key]!r}, but "
                             f"{key}={given!r} was passed: describe the optimizer that runs")
    if not isinstance(wd_v, np.ndarray) and group["weight_decay"] != wd_v:
        raise ValueError(f"lr's scheduler drives a torch.optim.SGD with weight_decay={group['weight_decay']!r}, "
                         f"but weight_decay={wd_v!r} was passed: describe the optimizer that runs")
    runs = from_torch_scheduler(scheduler, n, key="momentum")
    given = _per_step(mu_v, n)
    differ = ~np.isclose(given, runs, rtol=1e-12, atol=0)
    if np.any(differ):
        i = int(np.argmax(differ))
        hint = ("pass momentum=memsgd.lr_shapes.from_torch_scheduler(scheduler, steps, key='momentum')"
                if np.ptp(runs) else f"pass momentum={float(runs[0])!r}")
        raise ValueError(f"lr's scheduler drives a torch.optim.SGD whose momentum at step {i} is {float(runs[i])!r}, "
                         f"but the momentum passed is {float(given[i])!r}: {hint}")


# -- optax.sgd ------------------------------------------------------------------------------------

def optax_sgd_form(learning_rate, momentum, nesterov, steps):
    """``(memory, generator, length, name)`` of ``optax.sgd``."""
    nesterov = boolean(nesterov, "nesterov")
    steps = None if steps is None else step_count(steps, "steps", minimum=1)
    lr_v = _values(learning_rate, steps, "learning_rate", optax=True)
    mu_v = None if momentum is None else _values(momentum, steps, "momentum", optax=True, nonnegative=False)
    n = _length(steps, learning_rate=lr_v, momentum=mu_v)
    name = (f"optax_sgd({_summary('learning_rate', lr_v)}, "
            f"{'momentum=None' if mu_v is None else _summary('momentum', mu_v)}, nesterov={nesterov})")
    if n is None:
        if mu_v is None:
            return 0, functools.partial(_memory0, lr_v), None, name
        return 1, functools.partial(_stationary_momentum, lr_v, mu_v, 1.0, 1.0, nesterov, False), None, name
    lr_a = _per_step(lr_v, n)
    if mu_v is None:                                     # optax.sgd without a trace (nesterov unused)
        return 0, _Tabulated((lr_a.copy(),) + _memory0(0.0, np.arange(n))[1:]), n, name
    return 1, _Tabulated(_matrix_form(lr_a, _per_step(mu_v, n), np.ones(n), nesterov, hold=False)), n, name
