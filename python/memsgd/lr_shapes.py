r"""Learning-rate (and momentum) shapes, and the per-step values of torch's and optax's schedules.

A shape is a function of the 0-based step ``t`` (the step an optimizer takes with that value).
Each one is a picklable object that evaluates on numpy and on JAX alike, so the same object can be

- the ``lr`` (or ``momentum``) of [`memsgd.schedules.torch_sgd`][memsgd.schedules.torch_sgd] and
  [`memsgd.schedules.optax_sgd`][memsgd.schedules.optax_sgd] (the exact model of the run),
- the ``learning_rate`` of ``optax.sgd`` (optax calls it with its int32 step count; the shape
  then computes with ``jax.numpy``, in optax's precision),
- the ``lr_lambda`` of ``torch.optim.lr_scheduler.LambdaLR`` (with ``peak = 1``: torch multiplies by
  the base learning rate).

+------------------------------+------------------------------------------------------------+--------------------------------------------------------------+
| shape                        | value at step t                                            | the same in torch / optax                                    |
+==============================+============================================================+==============================================================+
| ``constant(v)``              | ``v``                                                      | no scheduler / ``optax.constant_schedule``                   |
| ``linear(a, b, n, begin)``   | ``a`` to ``b`` linearly over steps ``begin .. begin + n``  | ``LinearLR`` / ``optax.linear_schedule``                     |
| ``cosine(peak, steps, ...)`` | warmup, then ``final + (peak-final)(1+cos(pi s/S))/2``     | ``CosineAnnealingLR`` / ``optax.warmup_cosine_decay_schedule`` |
| ``wsd(peak, steps, ...)``    | warmup, stable, cooldown linear / 1-sqrt / cosine          | ``SequentialLR`` / ``optax.join_schedules``                  |
| ``step_decay(v, gamma, ..)`` | ``v gamma^(milestones passed)``                            | ``StepLR``, ``MultiStepLR`` / ``optax.exponential_decay``    |
| ``exponential(v, gamma)``    | ``v gamma^t``                                              | ``ExponentialLR`` / ``optax.exponential_decay``              |
| ``inverse_sqrt(peak, w)``    | warmup, then ``peak sqrt(tau / (t - w + tau))``            | (none built in)                                              |
| ``one_cycle(...)``           | torch's one-cycle learning rate                            | ``OneCycleLR`` / ``optax.cosine_onecycle_schedule``          |
| ``one_cycle_momentum(...)``  | torch's one-cycle momentum (``cycle_momentum=True``)       | ``OneCycleLR``                                               |
+------------------------------+------------------------------------------------------------+--------------------------------------------------------------+

Every linear warmup is optax's: ``start + (peak - start) t / w`` for ``t < w`` (torch's ``LinearLR``
with ``start_factor = start / peak`` gives the same values). The tests check each shape against
torch's and optax's own schedulers to 1e-12 per step.

[`from_torch_scheduler`][memsgd.lr_shapes.from_torch_scheduler] and
[`from_optax_schedule`][memsgd.lr_shapes.from_optax_schedule] read the values a framework's own
schedule gives at steps ``0 .. steps-1``, exactly as the framework computes them.

Example:
    >>> from memsgd import lr_shapes
    >>> shape = lr_shapes.wsd(0.1, 1000, cooldown_fraction=0.2, cooldown="1-sqrt", warmup_steps=50)
    >>> round(float(shape(10)), 6), float(shape(500)), round(float(shape(900)), 6)
    (0.02, 0.1, 0.029289)
"""  # noqa: E501  (the table above is wider than a code line)
from __future__ import annotations

import copy
import numbers
import sys
import warnings

import numpy as np

from ._optional import require, require_all
from ._validation import bounded_scalar, nonnegative_scalar, positive_scalar, real_scalar, step_count

__all__ = ["Shape", "constant", "linear", "cosine", "wsd", "step_decay", "exponential", "inverse_sqrt",
           "one_cycle", "one_cycle_momentum", "from_torch_scheduler", "from_optax_schedule", "COOLDOWNS"]

COOLDOWNS = ("linear", "1-sqrt", "cosine")


def _namespace(t):
    """``jax.numpy`` for a JAX array or tracer (optax's step count), else numpy."""
    if "jax" in sys.modules:
        import jax
        if isinstance(t, jax.Array):
            return jax.numpy
    return np


class Shape:
    """A value per step ``t`` (0-based). Call it on an int, a numpy array (float64 results) or a
    JAX array (``jax.numpy`` results, e.g. inside ``optax.sgd``); ``values`` tabulates it.

    Example:
        >>> shape = cosine(1.0, 4)
        >>> shape(2), shape(np.array([0, 2])).tolist(), shape.values(3).tolist()
        (0.5, [1.0, 0.5], [1.0, 0.8535533905932737, 0.5])
    """

    def __call__(self, t):
        xp = _namespace(t)
        if xp is np:
            arr = np.asarray(t)
            if arr.dtype.kind not in "iuf":
                raise TypeError(f"{self!r}: the step must be an integer or an array of integers, got {arr.dtype}")
            out = self._evaluate(np, arr.astype(np.float64))
            return float(out) if arr.ndim == 0 else np.asarray(out, dtype=np.float64)
        t = xp.asarray(t)
        return self._evaluate(xp, t.astype(xp.result_type(float)))

    def values(self, steps) -> np.ndarray:
        """The values of steps ``0 .. steps-1``, shape (steps,), float64."""
        steps = step_count(steps, "steps")
        return np.asarray(self._evaluate(np, np.arange(steps, dtype=np.float64)), dtype=np.float64)

    def _evaluate(self, xp, t):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"lr_shapes.{getattr(self, '_call', type(self).__name__)}"

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self), tuple(vars(self).items())))


def _warmup(xp, t, start, peak, steps):
    """optax.linear_schedule(start, peak, steps) at t (t < steps is where it is used)."""
    if steps == 0:
        return xp.full_like(t, peak)
    frac = 1 - xp.clip(t, 0, steps) / steps
    return (start - peak) * frac + peak


class _Constant(Shape):
    def __init__(self, value):
        self.value = real_scalar(value, "value")

    def _evaluate(self, xp, t):
        return xp.full_like(t, self.value)


class _Linear(Shape):
    def __init__(self, start, end, steps, begin):
        self.start, self.end = real_scalar(start, "start"), real_scalar(end, "end")
        self.steps = step_count(steps, "steps", minimum=1)
        self.begin = step_count(begin, "begin")

    def _evaluate(self, xp, t):
        return _warmup(xp, t - self.begin, self.start, self.end, self.steps)


class _Cosine(Shape):
    def __init__(self, peak, steps, final, warmup_steps, warmup_start):
        self.peak = nonnegative_scalar(peak, "peak")
        self.steps = step_count(steps, "steps", minimum=1)
        self.final = nonnegative_scalar(final, "final")
        self.warmup_steps = step_count(warmup_steps, "warmup_steps")
        self.warmup_start = nonnegative_scalar(warmup_start, "warmup_start")
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps must be < steps (the cosine needs at least one step), got "
                             f"warmup_steps={self.warmup_steps}, steps={self.steps}")

    def _evaluate(self, xp, t):
        w, span = self.warmup_steps, self.steps - self.warmup_steps
        s = xp.clip(t - w, 0, span)
        decay = self.final + (self.peak - self.final) * 0.5 * (1 + xp.cos(xp.pi * s / span))
        return xp.where(t < w, _warmup(xp, t, self.warmup_start, self.peak, w), decay)


def _cooldown_factor(xp, kind, x):
    """The cooldown's fraction of ``peak - final`` left at progress ``x`` in [0, 1]."""
    if kind == "linear":
        return 1 - x
    if kind == "1-sqrt":
        return 1 - xp.sqrt(x)
    return 0.5 * (1 + xp.cos(xp.pi * x))


class _WSD(Shape):
    def __init__(self, peak, steps, cooldown_fraction, cooldown, warmup_steps, final, warmup_start):
        self.peak = nonnegative_scalar(peak, "peak")
        self.steps = step_count(steps, "steps", minimum=1)
        self.cooldown_fraction = bounded_scalar(cooldown_fraction, "cooldown_fraction", 0, 1)
        if cooldown not in COOLDOWNS:
            raise ValueError(f"cooldown must be one of {', '.join(COOLDOWNS)}, got {cooldown!r}")
        self.cooldown = cooldown
        self.warmup_steps = step_count(warmup_steps, "warmup_steps")
        self.final = nonnegative_scalar(final, "final")
        self.warmup_start = nonnegative_scalar(warmup_start, "warmup_start")
        if self.warmup_steps + self.cooldown_steps > self.steps:
            raise ValueError(f"warmup_steps + cooldown steps must be <= steps, got {self.warmup_steps} + "
                             f"{self.cooldown_steps} > {self.steps}")

    @property
    def cooldown_steps(self) -> int:
        """``round(cooldown_fraction * steps)``: the cooldown runs over the last that many steps."""
        return int(round(self.cooldown_fraction * self.steps))

    def _evaluate(self, xp, t):
        n = self.cooldown_steps
        begin = self.steps - n
        if n:
            x = xp.clip(t - begin, 0, n) / n
            late = self.final + (self.peak - self.final) * _cooldown_factor(xp, self.cooldown, x)
            late = xp.where(t < begin, self.peak, late)
        else:
            late = xp.full_like(t, self.peak)
        return xp.where(t < self.warmup_steps, _warmup(xp, t, self.warmup_start, self.peak, self.warmup_steps), late)


class _StepDecay(Shape):
    def __init__(self, value, gamma, step_size, milestones):
        self.value = nonnegative_scalar(value, "value")
        self.gamma = nonnegative_scalar(gamma, "gamma")
        if (step_size is None) == (milestones is None):
            raise ValueError("give exactly one of step_size (decay every step_size steps) and milestones "
                             "(the steps at which to decay)")
        self.step_size = None if step_size is None else step_count(step_size, "step_size", minimum=1)
        if milestones is not None:
            ms = [step_count(m, "milestones") for m in milestones]
            if any(b <= a for a, b in zip(ms, ms[1:])):
                raise ValueError(f"milestones must be strictly increasing, got {ms}")
            milestones = tuple(ms)
        self.milestones = milestones

    def _evaluate(self, xp, t):
        if self.step_size is not None:
            n = xp.floor(t / self.step_size)
        else:
            n = xp.zeros_like(t)
            for m in self.milestones:
                n = n + xp.where(t >= m, 1.0, 0.0)
        return self.value * self.gamma ** n


class _Exponential(Shape):
    def __init__(self, value, gamma):
        self.value = nonnegative_scalar(value, "value")
        self.gamma = nonnegative_scalar(gamma, "gamma")

    def _evaluate(self, xp, t):
        return self.value * self.gamma ** t


class _InverseSqrt(Shape):
    def __init__(self, peak, warmup_steps, warmup_start, timescale):
        self.peak = nonnegative_scalar(peak, "peak")
        self.warmup_steps = step_count(warmup_steps, "warmup_steps")
        self.warmup_start = nonnegative_scalar(warmup_start, "warmup_start")
        self.timescale = (float(max(self.warmup_steps, 1)) if timescale is None
                          else positive_scalar(timescale, "timescale"))

    def _evaluate(self, xp, t):
        w, tau = self.warmup_steps, self.timescale
        decay = self.peak * xp.sqrt(tau / (xp.maximum(t - w, 0) + tau))
        return xp.where(t < w, _warmup(xp, t, self.warmup_start, self.peak, w), decay)


def _anneal(xp, kind, start, end, pct):
    """torch OneCycleLR's interpolation from ``start`` (pct = 0) to ``end`` (pct = 1)."""
    if kind == "cos":
        return end + (start - end) / 2.0 * (xp.cos(xp.pi * pct) + 1)
    return (end - start) * pct + start


class _OneCycle(Shape):
    """torch's two-phase OneCycleLR: phase 1 ends at step ``pct_start * steps - 1``, phase 2 at
    ``steps - 1``; each phase anneals between its end values by ``anneal``."""

    def __init__(self, start, middle, end, steps, pct_start, anneal):
        self.start, self.middle, self.end = (real_scalar(v, n) for v, n in ((start, "start"), (middle, "middle"),
                                                                           (end, "end")))
        self.steps = step_count(steps, "steps", minimum=2)
        self.pct_start = bounded_scalar(pct_start, "pct_start", 0, 1, low_open=True, high_open=True)
        if anneal not in ("cos", "linear"):
            raise ValueError(f"anneal must be 'cos' or 'linear', got {anneal!r}")
        self.anneal = anneal
        first = float(self.pct_start * self.steps) - 1
        if not 0 < first < self.steps - 1:
            raise ValueError(f"pct_start * steps - 1 must lie strictly between 0 and steps - 1, got "
                             f"{first:g} for pct_start={self.pct_start:g}, steps={self.steps}")

    def _evaluate(self, xp, t):
        first, last = float(self.pct_start * self.steps) - 1, self.steps - 1
        up = _anneal(xp, self.anneal, self.start, self.middle, t / first)
        down = _anneal(xp, self.anneal, self.middle, self.end, (t - first) / (last - first))
        return xp.where(t <= first, up, down)


# -- the public constructors ----------------------------------------------------------------------

def _named(shape: Shape, name: str, **arguments) -> Shape:
    """Attach the call that built ``shape`` (its repr)."""
    shape._call = f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})"
    return shape


def constant(value) -> Shape:
    """``value`` at every step.

    Example:
        >>> constant(0.1).values(3).tolist()
        [0.1, 0.1, 0.1]
    """
    return _named(_Constant(value), "constant", value=value)


def linear(start, end, steps, begin=0) -> Shape:
    """``start`` until step ``begin``, then linear to ``end`` at step ``begin + steps``, then
    ``end``: ``optax.linear_schedule(start, end, steps, begin)`` (and torch's ``LinearLR`` with
    ``start_factor = start / lr``, ``end_factor = end / lr``, ``total_iters = steps``). A warmup, a
    linear decay, or a momentum ramp.

    Example:
        >>> linear(0.0, 1.0, 4).values(6).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    return _named(_Linear(start, end, steps, begin), "linear", start=start, end=end, steps=steps,
                  begin=begin)


def cosine(peak, steps, final=0.0, warmup_steps=0, warmup_start=0.0) -> Shape:
    """Linear warmup from ``warmup_start`` to ``peak`` over ``warmup_steps``, then cosine decay to
    ``final`` at step ``steps`` (``final`` after it)::

        lr_t = final + (peak - final) (1 + cos(pi s / S)) / 2,   s = min(t - w, S),  S = steps - w

    ``optax.warmup_cosine_decay_schedule(warmup_start, peak, warmup_steps, steps, final)``;
    without warmup ``optax.cosine_decay_schedule(peak, steps, final / peak)`` and torch's
    ``CosineAnnealingLR(T_max=steps, eta_min=final)`` (whose values after ``T_max`` rise again:
    this shape stays at ``final``).

    Example:
        >>> cosine(1.0, 4).values(5).tolist()
        [1.0, 0.8535533905932737, 0.5, 0.14644660940672627, 0.0]
    """
    return _named(_Cosine(peak, steps, final, warmup_steps, warmup_start), "cosine", peak=peak, steps=steps,
                  final=final, warmup_steps=warmup_steps, warmup_start=warmup_start)


def wsd(peak, steps, cooldown_fraction=0.2, cooldown="linear", warmup_steps=0, final=0.0,
        warmup_start=0.0) -> Shape:
    """Warmup-stable-decay: linear warmup over ``warmup_steps``, ``peak`` until the cooldown, then
    over the last ``n = round(cooldown_fraction * steps)`` steps (from step ``c = steps - n``)::

        lr_t = final + (peak - final) f((t - c) / n),
        f(x) = 1 - x  ("linear"),  1 - sqrt(x)  ("1-sqrt"),  (1 + cos(pi x)) / 2  ("cosine")

    so the cooldown's first step has ``peak`` and its last step ``f((n-1)/n)`` (``final`` is
    reached at step ``steps``, after training), as torch's ``SequentialLR`` of ``LinearLR`` /
    ``ConstantLR`` / ``LinearLR(1, final/peak, n)`` or ``CosineAnnealingLR(n, final)`` with
    milestones ``[warmup_steps, c]``, and optax's ``join_schedules`` of ``linear_schedule`` /
    ``constant_schedule`` / ``linear_schedule`` or ``cosine_decay_schedule`` give. The 1-sqrt
    cooldown is that of Hägele et al. (2024), "Scaling laws and compute-optimal training beyond
    fixed training durations".

    Example:
        >>> wsd(1.0, 10, cooldown_fraction=0.4).values(10).tolist()
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25]
    """
    return _named(_WSD(peak, steps, cooldown_fraction, cooldown, warmup_steps, final, warmup_start), "wsd",
                  peak=peak, steps=steps, cooldown_fraction=cooldown_fraction, cooldown=cooldown,
                  warmup_steps=warmup_steps, final=final, warmup_start=warmup_start)


def step_decay(value, gamma=0.1, step_size=None, milestones=None) -> Shape:
    """``value * gamma^k`` with ``k`` the number of decays so far: every ``step_size`` steps
    (torch ``StepLR``, optax ``exponential_decay(value, step_size, gamma, staircase=True)``) or at
    each step in ``milestones`` (torch ``MultiStepLR``, optax ``piecewise_constant_schedule``).

    Example:
        >>> step_decay(1.0, 0.5, step_size=2).values(5).tolist()
        [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    return _named(_StepDecay(value, gamma, step_size, milestones), "step_decay", value=value, gamma=gamma,
                  step_size=step_size, milestones=milestones)


def exponential(value, gamma) -> Shape:
    """``value * gamma^t`` (torch ``ExponentialLR``, optax ``exponential_decay(value, 1, gamma)``).

    Example:
        >>> exponential(1.0, 0.5).values(4).tolist()
        [1.0, 0.5, 0.25, 0.125]
    """
    return _named(_Exponential(value, gamma), "exponential", value=value, gamma=gamma)


def inverse_sqrt(peak, warmup_steps=0, warmup_start=0.0, timescale=None) -> Shape:
    """Linear warmup over ``warmup_steps`` (``w``), then ``peak * sqrt(tau / (t - w + tau))``
    with ``tau = timescale`` (default ``max(w, 1)``): for ``w > 0`` the Transformer's
    ``peak * sqrt(w / t)``, for ``w = 0`` ``peak / sqrt(t + 1)``. Endless.

    Example:
        >>> [round(v, 6) for v in inverse_sqrt(1.0, warmup_steps=4).values(9)[3:].tolist()]   # sqrt(4 / t) from t = 4
        [0.75, 1.0, 0.894427, 0.816497, 0.755929, 0.707107]
    """
    return _named(_InverseSqrt(peak, warmup_steps, warmup_start, timescale), "inverse_sqrt", peak=peak,
                  warmup_steps=warmup_steps, warmup_start=warmup_start, timescale=timescale)


def one_cycle(max_lr, steps, pct_start=0.3, anneal="cos", div_factor=25.0, final_div_factor=1e4) -> Shape:
    """torch's ``OneCycleLR(max_lr, total_steps=steps, pct_start, anneal_strategy=anneal,
    div_factor, final_div_factor)`` learning rate (two phases): from ``max_lr / div_factor`` up to
    ``max_lr`` at step ``pct_start * steps - 1``, then down to
    ``max_lr / (div_factor * final_div_factor)`` at step ``steps - 1``.
    ``optax.cosine_onecycle_schedule`` follows the same shape with its own step convention.

    Example:
        >>> [round(v, 6) for v in one_cycle(1.0, 10).values(10).tolist()]   # peak at step 0.3 * 10 - 1
        [0.04, 0.52, 1.0, 0.950485, 0.811746, 0.611262, 0.388742, 0.188258, 0.049519, 4e-06]
    """
    initial = positive_scalar(max_lr, "max_lr") / positive_scalar(div_factor, "div_factor")
    shape = _OneCycle(initial, max_lr, initial / positive_scalar(final_div_factor, "final_div_factor"),
                      steps, pct_start, anneal)
    return _named(shape, "one_cycle", max_lr=max_lr, steps=steps, pct_start=pct_start, anneal=anneal,
                  div_factor=div_factor, final_div_factor=final_div_factor)


def one_cycle_momentum(steps, base=0.85, max=0.95, pct_start=0.3, anneal="cos") -> Shape:
    """The momentum of torch's ``OneCycleLR(..., cycle_momentum=True, base_momentum=base,
    max_momentum=max)``: from ``max`` down to ``base`` while the learning rate rises, back to
    ``max`` while it falls (the ``momentum`` of [`memsgd.schedules.torch_sgd`][memsgd.schedules.torch_sgd]).

    Example:
        >>> tuple(round(v, 6) for v in one_cycle_momentum(10).values(10).tolist())
        (0.95, 0.9, 0.85, 0.854952, 0.868826, 0.888874, 0.911126, 0.931174, 0.945048, 0.95)
    """
    return _named(_OneCycle(max, base, max, steps, pct_start, anneal), "one_cycle_momentum", steps=steps,
                  base=base, max=max, pct_start=pct_start, anneal=anneal)


# -- the frameworks' own schedules, per step ------------------------------------------------------

def from_torch_scheduler(scheduler, steps, key: str = "lr", group: int = 0) -> np.ndarray:
    """``param_groups[group][key]`` of a ``torch.optim.lr_scheduler`` scheduler's optimizer at
    steps ``0 .. steps-1``, read from a copy stepped ``steps - 1`` times (the scheduler and its
    optimizer are left as they are; the parameters and optimizer state are shared with the copy,
    never copied). Step ``t``'s value is the one the optimizer's ``t``-th ``step()`` from now uses
    when ``scheduler.step()`` follows every ``optimizer.step()``. ``key="momentum"`` reads a
    cycled momentum (``OneCycleLR``, ``CyclicLR``). ``ReduceLROnPlateau`` is refused (its steps
    depend on the losses).

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        >>> from_torch_scheduler(sched, 5).tolist(), opt.param_groups[0].get("lr")   # the original is untouched
        ([1.0, 1.0, 0.5, 0.5, 0.25], 1.0)
    """
    torch = require("torch", "torch", "from_torch_scheduler")
    sched_module = torch.optim.lr_scheduler
    base = getattr(sched_module, "LRScheduler", None) or sched_module._LRScheduler
    if isinstance(scheduler, sched_module.ReduceLROnPlateau):
        raise TypeError("scheduler must set its values by the step count: ReduceLROnPlateau follows the "
                        "losses, so give the learning rates per step as an array instead")
    if not isinstance(scheduler, base):
        raise TypeError(f"scheduler must be a torch.optim.lr_scheduler scheduler, got {type(scheduler).__name__}")
    steps = step_count(steps, "steps", minimum=1)
    optimizer = scheduler.optimizer
    groups = optimizer.param_groups
    if not isinstance(group, numbers.Integral) or isinstance(group, bool) or not 0 <= group < len(groups):
        raise ValueError(f"group must be an index of the optimizer's {len(groups)} param groups, got {group!r}")
    if key not in groups[group]:
        raise ValueError(f"key must name a param group entry ({', '.join(sorted(map(str, groups[group])))}), "
                         f"got {key!r}")
    # share what the scheduler never changes (parameters, optimizer state): only the param
    # groups' hyperparameters and the schedulers' counters are copied
    memo = {}
    for g in optimizer.param_groups:
        for p in g["params"]:
            memo[id(p)] = p
    for state in optimizer.state.values():
        for v in state.values():
            if torch.is_tensor(v):
                memo[id(v)] = v
    twin = copy.deepcopy(scheduler, memo)
    groups = twin.optimizer.param_groups
    out = np.empty(steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # "lr_scheduler.step() before optimizer.step()" and the like
        for t in range(steps):
            value = groups[group][key]
            out[t] = float(value.item() if torch.is_tensor(value) else value)
            if t + 1 < steps:
                twin.step()
    if not np.all(np.isfinite(out)):
        raise ValueError(f"the scheduler's {key} is not finite at step {int(np.argmax(~np.isfinite(out)))}")
    return out


def from_optax_schedule(schedule, steps) -> np.ndarray:
    """An optax schedule's values at counts ``0 .. steps-1``, as optax computes them: the schedule
    is called (vectorised by ``jax.vmap``) on int32 counts, in JAX's precision (float32 unless
    ``jax_enable_x64``), and the results are returned as float64.

    Example:
        >>> import optax
        >>> from_optax_schedule(optax.exponential_decay(1.0, 1, 0.5), 4).tolist()
        [1.0, 0.5, 0.25, 0.125]
    """
    if not callable(schedule):
        raise TypeError(f"schedule must be callable (count -> value), got {type(schedule).__name__}")
    jax, jnp = require_all([("jax", "jax"), ("jax.numpy", "jax")], "from_optax_schedule")
    steps = step_count(steps, "steps", minimum=1)
    if steps > np.iinfo(np.int32).max:
        raise ValueError(f"steps must fit optax's int32 step count, got {steps}")
    chunk = 1 << 20
    parts = []
    evaluate = jax.jit(jax.vmap(schedule))
    for start in range(0, steps, chunk):
        counts = jnp.arange(start, min(start + chunk, steps), dtype=jnp.int32)
        try:
            values = evaluate(counts)
        except jax.errors.JAXTypeError:       # Python control flow on the count: one call per step
            values = [schedule(jnp.asarray(t, jnp.int32)) for t in range(start, min(start + chunk, steps))]
        parts.append(np.asarray(values, dtype=np.float64).reshape(-1))
    out = np.concatenate(parts)
    if out.size != steps:
        raise ValueError(f"schedule must return one number per count, got {out.size} values for {steps} counts")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"the schedule is not finite at count {int(np.argmax(~np.isfinite(out)))}")
    return out
