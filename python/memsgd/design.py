"""Schedule design: minimise the exact expected loss over schedules (docs/schedule-design.md).

``optimize_schedule`` minimises ``log J`` with ``J = sum_t w_t L_t`` (default: the final loss
``L_T``) by scipy's L-BFGS-B on the exact gradient of [`memsgd.loss_gradient`][memsgd.loss_gradient]. A schedule
family maps a vector ``x`` of optimisation variables to the per-step parameters
``(alpha_t, b_t, c_t, D_t, e_t)``; the gradient with respect to ``x`` is the chain rule
``dJ/dx_j = sum_t <dJ/dtheta_t, dtheta_t/dx_j>``, with ``dtheta_t/dx_j`` by complex step through
the family's per-step formulas (exact to rounding; the formulas are cheap next to the adjoint).

Families ([`FAMILIES`][memsgd.design.FAMILIES]):

- parametric (the rows of the algorithm table the command line's presets come from, with their
  design starts and bounds): ``"sgd"`` (constant lr), ``"sgd_power_law"`` (``lr (1 + t/t0)^-power``),
  ``"heavy_ball"``, ``"nesterov"``, ``"qhm"`` (constant; lr, momentum, nu_qhm), ``"am1_power_law"``
  (kick, delta, gamma, t0), ``"dana_decaying"`` (g2, g3, delta, power), ``"jacobi_heavy_ball"``
  (nu_b, lambda_max);
- free, piecewise linear in ``u = log(1 + t)`` between ``knots`` equally spaced knots on
  ``[0, log T]`` (the parameters of steps 0..T-1; ``spacing="ends"``: in
  ``u = log(1 + t) - log(T - t)`` on ``[-log T, log T]``, which resolves a cooldown too): ``"free_sgd"``
  (``log lr_t``) and ``"free_memory1"`` (``log lr_t``,
  ``log(1 - beta_t)``, ``log kick_t`` of AM1: ``v+ = beta_t v + g``, ``w+ = w - lr_t v+ - kick_t g``).

Positive parameters are optimised in log scale (momenta as ``log(1 - beta)``); bounds are given
in natural units. Stability guard: a trial point whose run diverges (a weighted loss overflows or
exceeds 1e30 L_0) gets the value of the divergence threshold and a zero gradient, so the line
search backs off; it is never the returned optimum, which is the best non-diverged point
evaluated. If every start diverges, ``ValueError``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from . import _core, _families
from . import schedules as _schedules
from ._progress import progress_bar
from ._validation import float_array, instance_of, positive_int, positive_scalar, real_scalar, step_count, thread_count
from .algorithms import MemoryAlgorithm
from .dynamics import loss_curve
from .gradient import _loss_weights, _require_gradient_memory, loss_gradient
from .noise import Noise
from .schedules import Schedule
from .spectrum import Spectrum

__all__ = ["FAMILIES", "Family", "ScheduleOptimum", "family_gradient", "make_family", "optimize_schedule"]

# Complex step for d(per-step parameters)/dx: no subtraction, so any tiny step is exact.
_CS = 1e-30


# ------------------------------------------------------------------------------------------
# variable transforms (complex-safe): natural value <-> optimisation variable

def _to_natural(kind: str, x):
    if kind == "log":
        return np.exp(x)
    if kind == "log1m":          # momentum: x = log(1 - beta)
        return 1.0 - np.exp(x)
    return x


def _to_variable(kind: str, p: float) -> float:
    if kind == "log":
        if not p > 0:
            raise ValueError(f"must be > 0 (optimised in log scale), got {p}")
        return math.log(p)
    if kind == "log1m":
        if not p < 1:
            raise ValueError(f"must be < 1 (optimised as log(1 - p)), got {p}")
        return math.log(1.0 - p)
    return float(p)


def _variable_bounds(kind: str, lo: float, hi: float) -> tuple[float, float]:
    if kind == "log1m":          # decreasing map: swap
        return _to_variable(kind, hi), _to_variable(kind, lo)
    return _to_variable(kind, lo), _to_variable(kind, hi)


# ------------------------------------------------------------------------------------------
# per-step formulas of the parametric families (module level: families pickle)

def _memory0(rate):
    """Per-step arrays of plain SGD with learning rates ``rate`` (no memory: empty b, c, D, e)."""
    n = len(rate)
    return rate, np.zeros((n, 0)), np.zeros((n, 0)), np.zeros((n, 0, 0)), np.zeros((n, 0))


def _sgd_arrays(lr, t):
    return _memory0(lr * np.ones(len(t)))


def _sgd_power_law_arrays(lr, power, t0, t):
    return _memory0(_families.sgd_power_law_rates(lr, power, t0, t))


def _memory1_constant(alpha, b, c, D, e, t):
    one = np.ones((len(t), 1))
    return alpha * one[:, 0], b * one, c * one, (D * one)[:, :, None], e * one


def _heavy_ball_arrays(lr, momentum, t):
    return _memory1_constant(lr, momentum, lr, momentum, 0.0, t)


def _nesterov_arrays(lr, momentum, t):
    return _memory1_constant(lr, momentum, lr, momentum, momentum, t)


def _qhm_arrays(lr, momentum, nu, t):
    # docs/math.md §2 presets: alpha = a(1-v) + a v (1-beta), b = -a v beta, c = -(1-beta), D = beta
    return _memory1_constant(lr * (1 - nu) + lr * nu * (1 - momentum), -lr * nu * momentum, -(1 - momentum),
                             momentum, 0.0, t)


# Per-step formulas (params..., t) of the parametric families; their parameters, starts, bounds
# and constructors are the rows of memsgd._families.TABLE (the table the command line reads
# too). A family's schedule is its constructor's (independent of these formulas, which the
# tests compare with it).
_FORMULAS: dict[str, Callable] = {
    "sgd": _sgd_arrays,
    "sgd_power_law": _sgd_power_law_arrays,
    "heavy_ball": _heavy_ball_arrays,
    "nesterov": _nesterov_arrays,
    "qhm": _qhm_arrays,
    "am1_power_law": _schedules._am1_power_law_generator,
    "dana_decaying": functools.partial(_schedules._dana_decaying_generator, 1.0),
    "jacobi_heavy_ball": _schedules._jacobi_generator,
}


@dataclass(frozen=True)
class _Parameter:
    name: str
    kind: str            # "log", "log1m" or "linear"
    start: float
    bounds: tuple[float, float]


_PARAMETRIC = _families.design_families()
assert set(_PARAMETRIC) == set(_FORMULAS), "every design family of the table needs its per-step formulas"

FREE = ("free_sgd", "free_memory1")
FAMILIES = tuple(_PARAMETRIC) + FREE
"""The families' canonical names: the parametric ones of the algorithm table, then the free ones.
Older names are accepted too (``"jacobi"`` for ``"jacobi_heavy_ball"``, ``"gd"`` for ``"sgd"``;
the parameter ``nu`` of ``"qhm"`` for ``nu_qhm``).

Examples:
    >>> from memsgd.design import FAMILIES
    >>> FAMILIES[:3], FAMILIES[-2:]
    (('sgd', 'sgd_power_law', 'heavy_ball'), ('free_sgd', 'free_memory1'))
"""

# Free families: channels (name, natural bounds); every channel is log of a positive quantity.
_FREE_CHANNELS = {
    "free_sgd": (("lr", (1e-6, 10.0)),),
    "free_memory1": (("lr", (1e-9, 10.0)), ("one_minus_momentum", (1e-6, 1.0)), ("kick", (1e-4, 10.0))),
}


SPACINGS = ("log", "ends")


@dataclass(frozen=True, eq=False)
class _Knots:
    """Knots of a piecewise-linear channel over the steps 0..steps-1, equally spaced in a coordinate
    ``u(t)``: ``"log"``: ``u = log(1 + t)`` (resolves the start); ``"ends"``:
    ``u = log(1 + t) - log(steps - t)`` (resolves the start and the end alike: near ``t = T`` it is
    ``-log(T - t)``, so a cooldown ``(1 - t/T)^delta`` is a straight line in it)."""

    u: np.ndarray
    spacing: str
    steps: int

    @classmethod
    def grid(cls, count: int, steps: int, spacing: str = "log") -> _Knots:
        top = math.log(max(steps, 2))
        return cls(np.linspace(-top if spacing == "ends" else 0.0, top, count), spacing, steps)

    @property
    def size(self) -> int:
        return self.u.size

    def coordinate(self, t) -> np.ndarray:
        t = np.asarray(t, float)
        if self.spacing == "ends":
            return np.log1p(t) - np.log(np.maximum(self.steps - t, 1.0))
        return np.log1p(t)

    def knot_steps(self) -> np.ndarray:
        """The (fractional) step of each knot: the inverse of ``coordinate``."""
        if self.spacing == "ends":   # (1 + t) / (T - t) = e^u
            e = np.exp(self.u)
            return (e * self.steps - 1.0) / (1.0 + e)
        return np.expm1(self.u)


def _interpolation(knots: _Knots, t) -> tuple[np.ndarray, np.ndarray]:
    """Left knot index and weight of the right knot for each step, in the knots' coordinate; flat outside."""
    u_knots = knots.u
    u = np.clip(knots.coordinate(t), u_knots[0], u_knots[-1])
    idx = np.clip(np.searchsorted(u_knots, u, side="right") - 1, 0, u_knots.size - 2)
    frac = (u - u_knots[idx]) / (u_knots[idx + 1] - u_knots[idx])
    return idx, frac


def _channel_arrays(kind: str, values):
    """Per-step parameters from the free family's channel values (one row per channel): a map
    that is pointwise in t."""
    if kind == "free_sgd":
        return _memory0(values[0])
    lr, one_minus_beta, kick = values
    return _schedules._am1_arrays(lr, 1.0 - one_minus_beta, kick)


def _free_log_values(u_knots: _Knots, x, t):
    """Channel log-values at the steps t, piecewise linear in the knots' coordinate: (channels, len(t))."""
    idx, frac = _interpolation(u_knots, t)
    channels = np.reshape(x, (-1, u_knots.size))
    return channels[:, idx] * (1.0 - frac) + channels[:, idx + 1] * frac


def _free_arrays(kind: str, u_knots: _Knots, x, t):
    """Per-step parameters of a free family from its knot values x (channels concatenated)."""
    return _channel_arrays(kind, np.exp(_free_log_values(u_knots, x, t)))


def _free_chain(kind: str, u_knots: _Knots, x, t, grads):
    """``dJ/dx`` from the per-step gradient ``grads`` (alpha, b, c, D, e): the map from a channel's
    values to the parameters is pointwise in t, so one complex step per channel gives its
    derivative at every step at once; the knots then collect it with the interpolation weights."""
    idx, frac = _interpolation(u_knots, t)
    logv = _free_log_values(u_knots, x, t)
    K = u_knots.size
    out = np.zeros((logv.shape[0], K))
    for ch in range(logv.shape[0]):
        lc = logv.astype(complex)
        lc[ch] += _CS * 1j
        arrays = _channel_arrays(kind, np.exp(lc))
        d = sum(np.reshape(G * np.imag(np.reshape(A, G.shape)), (len(t), -1)).sum(axis=1)
                for G, A in zip(grads, arrays)) / _CS
        out[ch] = (np.bincount(idx, weights=d * (1.0 - frac), minlength=K)
                   + np.bincount(idx + 1, weights=d * frac, minlength=K))
    return out.ravel()


# ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Family:
    """A family of schedules: optimisation variables ``x`` -> per-step parameters.

    ``arrays(x, t)`` returns ``(alpha, b, c, D, e)`` for the steps ``t`` (complex ``x`` allowed:
    the chain rule uses complex step); ``natural(x)`` the family's parameters by name;
    ``schedule(x)`` the memsgd [`Schedule`][memsgd.schedules.Schedule]. ``start`` and ``lower``/``upper`` are in the
    optimisation variables. ``chain(x, t, grads)``, when given, returns ``dJ/dx`` from the per-step
    gradient faster than one complex step per variable (the free families use it).

    Examples:
        >>> from memsgd.design import make_family
        >>> family = make_family("free_sgd", 1000, knots=8)
        >>> family.size, family.memory                           # one log learning rate per knot
        (8, 0)
    """

    name: str
    memory: int
    variables: tuple[str, ...]
    start: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    arrays: Callable
    natural: Callable
    schedule: Callable
    bounds_text: str = ""
    chain: Optional[Callable] = None   # (x, t, per-step grads) -> dJ/dx; None: complex step per variable

    @property
    def size(self) -> int:
        return int(self.start.size)


def _parametric_natural(params, x):
    return {p.name: float(np.real(_to_natural(p.kind, v))) for p, v in zip(params, x)}


def _parametric_arrays(params, formulas, x, t):
    return formulas(*(_to_natural(p.kind, v) for p, v in zip(params, x)), t)


def _parametric_schedule(params, build, x):
    made = build(**_parametric_natural(params, x))
    return _schedules.constant(made) if isinstance(made, MemoryAlgorithm) else made


def _free_natural(kind, u_knots, x):
    channels = np.reshape(np.real(x), (-1, u_knots.size))
    out = {"knot_steps": u_knots.knot_steps()}
    for (name, _), values in zip(_FREE_CHANNELS[kind], channels):
        out[name] = np.exp(values)
    return out


def _free_schedule(kind, u_knots, x):
    return Schedule(1 if kind == "free_memory1" else 0,
                    functools.partial(_free_arrays, kind, u_knots, np.array(np.real(x), float)),
                    name=f"{kind}({u_knots.size} knots{', ends' if u_knots.spacing == 'ends' else ''})")


def _start_from_schedule(kind: str, start: Schedule, u_knots: _Knots, steps: int) -> dict[str, np.ndarray]:
    """Knot values (natural units) sampled from a schedule: for free_memory1 it must be in AM1 form
    (b_t = D_t = beta_t, c_t = lr_t, e_t = 0, kick_t = alpha_t - lr_t)."""
    if not isinstance(start, Schedule):
        raise TypeError(f"start must be a Schedule or a dict of knot values, got {type(start).__name__}")
    want = 1 if kind == "free_memory1" else 0
    if start.memory != want:
        raise ValueError(f"start must have memory {want} for {kind}, got {start.memory}")
    alpha, b, c, D, e = start.parameters(max(steps, 1))
    u = u_knots.coordinate(np.arange(alpha.size, dtype=float))

    def at_knots(v):   # interpolated in log scale, as the family is (values <= 0 go to the lower bound)
        return np.exp(np.interp(u_knots.u, u, np.log(np.maximum(v, 1e-300))))

    if kind == "free_sgd":
        return {"lr": at_knots(alpha)}
    lr, momentum, kick = _schedules.am1_form(alpha, b, c, D, e,
                                             name="start (free_memory1 starts from a schedule "
                                                  "in AM1 form, e.g. am1_power_law or dana_decaying)")
    return {"lr": at_knots(lr), "one_minus_momentum": at_knots(1.0 - momentum), "kick": at_knots(kick)}


def make_family(name: str, steps: int, *, knots: int = 24, start=None, bounds=None, spacing: str = "log") -> Family:
    """The family ``name`` (one of [`FAMILIES`][memsgd.design.FAMILIES]) for a horizon of ``steps``.

    Args:
        knots: number of knots of a free family (piecewise linear in ``log(1 + t)``).
        start: parametric: ``{parameter: value}`` overriding the default start; free: a
            [`Schedule`][memsgd.schedules.Schedule] to sample (free_memory1: AM1 form, e.g. ``am1_power_law``) or
            ``{channel: value or array of knot values}``; values outside the bounds are clipped.
        bounds: ``{parameter or channel: (low, high)}`` in natural units, overriding the defaults.
        spacing: where a free family's knots sit: ``"log"`` equally spaced in ``log(1 + t)``;
            ``"ends"`` equally spaced in ``log(1 + t) - log(T - t)``, which resolves the end of
            training as finely as the start (for a cooldown; ``knot_steps`` gives the steps).

    Examples:
        >>> from memsgd.design import make_family
        >>> family = make_family("heavy_ball", 100)
        >>> family.variables, tuple(family.start.round(6).tolist())  # optimised as log(lr), log(1 - momentum)
        (('lr', 'momentum'), (-2.302585, -2.302585))
        >>> make_family("jacobi", 100).name                      # an older name
        'jacobi_heavy_ball'

        A free family's knots: ``"ends"`` resolves the end of training as finely as the start:

        >>> for spacing in ("log", "ends"):
        ...     free = make_family("free_sgd", 1000, knots=6, spacing=spacing)
        ...     print(spacing, tuple(free.natural(free.start)["knot_steps"].round(1).tolist()))
        log (0.0, 3.0, 14.8, 62.1, 250.2, 999.0)
        ends (0.0, 14.6, 200.0, 799.0, 984.4, 999.0)
    """
    name = _family_name(name)
    steps = step_count(steps, minimum=1)
    start = {} if start is None else start
    bounds = {} if bounds is None else dict(bounds)
    if not isinstance(bounds, dict):
        raise TypeError("bounds must be a dict {name: (low, high)}")
    if name in _PARAMETRIC:
        row = _PARAMETRIC[name]
        names = [p.name for p in row.design_parameters]
        if not isinstance(start, dict):
            raise TypeError(f"start must be a dict {{parameter: value}} for {name}")
        start, bounds = _by_parameter(row, start, "start"), _by_parameter(row, bounds, "bounds")
        resolved = []
        for p in row.design_parameters:
            lo, hi = _check_bounds(bounds.get(p.name, p.bounds), p.name)
            value = real_scalar(start.get(p.name, p.design_start), f"start[{p.name!r}]")
            resolved.append(_Parameter(p.name, p.scale, min(max(value, lo), hi), (lo, hi)))
        params = tuple(resolved)
        x0 = np.array([_checked_variable(p.kind, p.start, p.name) for p in params])
        lim = [_checked_bounds(p.kind, *p.bounds, p.name) for p in params]
        return Family(name, row.memory, tuple(names), x0, np.array([a for a, _ in lim]), np.array([b for _, b in lim]),
                      functools.partial(_parametric_arrays, params, _FORMULAS[name]),
                      functools.partial(_parametric_natural, params),
                      functools.partial(_parametric_schedule, params, row.constructor()),
                      ", ".join(f"{p.name} in [{p.bounds[0]:g}, {p.bounds[1]:g}]" for p in params))
    knots = _knot_count(knots, steps, "knots", minimum=2)
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    u_knots = _Knots.grid(knots, steps, spacing)
    channels = _FREE_CHANNELS[name]
    channel_names = [c for c, _ in channels]
    unknown = sorted(set(bounds) - set(channel_names))
    if unknown:
        raise ValueError(f"unknown channel(s) {unknown} for family {name}: it has {channel_names}")
    if isinstance(start, Schedule):
        start = _start_from_schedule(name, start, u_knots, steps)
    if not isinstance(start, dict):
        raise TypeError(f"start must be a Schedule or a dict {{channel: knot values}} for {name}")
    unknown = sorted(set(start) - set(channel_names))
    if unknown:
        raise ValueError(f"unknown channel(s) {unknown} in start for family {name}: it has {channel_names}")
    defaults = {"lr": 0.1, "one_minus_momentum": 0.1, "kick": 1.0}
    x0, lower, upper, variables, text = [], [], [], [], []
    for cname, default_bounds in channels:
        lo, hi = _check_bounds(bounds.get(cname, default_bounds), cname)
        if lo <= 0:
            raise ValueError(f"bounds[{cname!r}] must be > 0 (optimised in log scale), got {lo}")
        values = float_array(start.get(cname, defaults[cname]), f"start[{cname!r}]")
        if values.ndim > 1 or values.size not in (1, knots):
            raise ValueError(f"start[{cname!r}] must be one value or {knots} knot values, got shape {values.shape}")
        values = np.clip(np.broadcast_to(values, (knots,)), lo, hi)
        x0.append(np.log(values))
        lower.append(np.full(knots, math.log(lo)))
        upper.append(np.full(knots, math.log(hi)))
        variables += [f"log_{cname}[{j}]" for j in range(knots)]
        text.append(f"{cname} in [{lo:g}, {hi:g}] at every knot")
    return Family(name, 1 if name == "free_memory1" else 0, tuple(variables), np.concatenate(x0),
                  np.concatenate(lower), np.concatenate(upper),
                  functools.partial(_free_arrays, name, u_knots),
                  functools.partial(_free_natural, name, u_knots),
                  functools.partial(_free_schedule, name, u_knots), ", ".join(text),
                  functools.partial(_free_chain, name, u_knots))


def _family_name(name) -> str:
    """The canonical family name of ``name`` (older names of the algorithm table accepted)."""
    if isinstance(name, str):
        if name in FAMILIES:
            return name
        canonical = _families.canonical_name(name)
        if canonical in _PARAMETRIC:
            return canonical
    raise ValueError(f"family must be one of {FAMILIES}, got {name!r}")


def _by_parameter(row, given: dict, what: str) -> dict:
    """``given`` keyed by canonical parameter names (aliases accepted); unknown names refused."""
    out, unknown = {}, []
    for key, value in given.items():
        canonical = row.parameter_name(key) if isinstance(key, str) else None
        if canonical not in row.design_starts():
            unknown.append(key)
        elif canonical in out:
            raise ValueError(f"{what} gives {canonical!r} twice (once as an older name) for family {row.name}")
        else:
            out[canonical] = value
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(map(str, unknown))} in {what} for family {row.name}: "
                         f"it has {list(row.design_starts())}")
    return out


def _check_bounds(pair, name):
    try:
        lo, hi = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise TypeError(f"bounds[{name!r}] must be a pair (low, high) of numbers") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"bounds[{name!r}] must be finite with low <= high, got ({lo}, {hi})")
    return lo, hi


def _checked_variable(kind, value, name):
    try:
        return _to_variable(kind, value)
    except ValueError as exc:
        raise ValueError(f"{name} {exc}") from None


def _checked_bounds(kind, lo, hi, name):
    try:
        return _variable_bounds(kind, lo, hi)
    except ValueError as exc:
        raise ValueError(f"bounds[{name!r}]: {exc}") from None


# ------------------------------------------------------------------------------------------

@dataclass
class ScheduleOptimum:
    """What [`optimize_schedule`][memsgd.optimize_schedule] found.

    ``schedule``: the best schedule evaluated that did not diverge; ``parameters``: its family
    parameters (natural units; free families: knot steps and knot values); ``x``: the optimisation
    variables; ``value``: ``J = sum_t w_t L_t`` there; ``loss``: its loss curve ``L_0..L_T``;
    ``start_value``: J at the start; ``iterations``, ``evaluations`` (gradient evaluations),
    ``rejected`` (trial points whose run diverged); ``success``, ``message``: L-BFGS-B's verdict
    (``success`` is False also when no evaluated point improved on the start);
    ``batch_size``: the optimised per-step batch sizes (with ``batch_budget``), else None.

    Examples:
        >>> import memsgd
        >>> spec, noise = memsgd.Spectrum.power_law(2.0, 1.0, size=30), memsgd.Noise.gaussian(10)
        >>> best = memsgd.optimize_schedule("heavy_ball", spec, noise, 50, max_iterations=20)
        >>> best.family, best.loss.shape, best.rejected >= 0
        ('heavy_ball', (51,), True)
    """

    family: str
    schedule: Schedule
    parameters: dict[str, object]
    x: np.ndarray
    value: float
    loss: np.ndarray = field(repr=False)
    start_value: float = math.nan
    iterations: int = 0
    evaluations: int = 0
    rejected: int = 0
    success: bool = False
    message: str = ""
    batch_size: Optional[np.ndarray] = field(default=None, repr=False)
    history: list = field(default_factory=list, repr=False)


def _batch_sizes(budget: float, steps: int, u_knots: _Knots, z, t) -> np.ndarray:
    """``B_t = 1 + (budget - T) softmax_t(z(u_t))``: every B_t >= 1 and sum_t B_t = budget."""
    if u_knots.size == 1:
        zt = z[0] * np.ones(len(t))
    else:
        idx, frac = _interpolation(u_knots, t)
        zt = z[idx] * (1.0 - frac) + z[idx + 1] * frac
    zt = zt - np.max(np.real(zt))   # softmax is shift invariant: no effect on values or derivatives
    ez = np.exp(zt)
    return 1.0 + (budget - steps) * ez / np.sum(ez)


class _Problem:
    """The objective ``J(x) = sum_t w_t L_t`` of a family on a problem, and its gradient in x.

    With a batch budget, x carries the family's variables followed by the batch knots z.
    """

    def __init__(self, family: Family, spectrum: Spectrum, noise: Noise, steps: int, w: np.ndarray,
                 batch_budget=None, batch_knots: int = 12, threads: Optional[int] = None, spacing: str = "log"):
        self.family, self.spectrum, self.noise, self.steps, self.w = family, spectrum, noise, steps, w
        self.threads = threads
        self.t = np.arange(steps)
        self.n_sched = family.size
        self.budget = batch_budget
        self.batch_u = None if batch_budget is None else _Knots.grid(batch_knots, steps, spacing)

    @property
    def size(self) -> int:
        return self.n_sched + (0 if self.batch_u is None else self.batch_u.size)

    def bounds(self):
        lower, upper = self.family.lower, self.family.upper
        if self.batch_u is not None:
            lower = np.concatenate([lower, np.full(self.batch_u.size, -20.0)])
            upper = np.concatenate([upper, np.full(self.batch_u.size, 20.0)])
        return lower, upper

    def start(self):
        x0 = self.family.start
        return x0 if self.batch_u is None else np.concatenate([x0, np.zeros(self.batch_u.size)])

    def noise_at(self, x) -> Noise:
        if self.batch_u is None:
            return self.noise
        return Noise(_batch_sizes(self.budget, self.steps, self.batch_u, x[self.n_sched:], self.t),
                     self.noise.tau1, self.noise.tau2, self.noise.label_noise)

    def schedule_at(self, x) -> Schedule:
        return Schedule.from_arrays(*self.family.arrays(x[:self.n_sched], self.t), name=self.family.name)

    def inputs(self, x):
        """``(Schedule, Noise)`` at x, or None where x maps to invalid parameters (e.g. a non-finite
        one at an extreme of the bounds). Only building them may fail for x: a refusal of the run
        itself (its memory) is the caller's to see, never a diverged point."""
        try:
            return self.schedule_at(x), self.noise_at(x)
        except ValueError:
            return None

    def value(self, x) -> float:
        """J(x) from a forward run only (loss_gradient's losses are these bits); inf when a weighted
        step diverges or x is invalid."""
        inputs = self.inputs(x)
        if inputs is None:
            return math.inf
        g = loss_curve(inputs[0], self.spectrum, inputs[1], self.steps, progress=False, threads=self.threads)
        if g.diverged_at is not None and np.any(self.w[g.diverged_at:] > 0):
            return math.inf
        return float(self.w @ np.where(self.w > 0, g.loss, 0.0))

    def gradient(self, x):
        """``(J, dJ/dx, LossGradient, Noise)``; J = inf (and dJ/dx None) for a diverged or invalid x.

        ``dJ/dx_j = sum_t <dJ/dtheta_t, dtheta_t/dx_j>`` with ``dtheta_t/dx_j`` by complex step
        through the family's per-step formulas (and the batch-size map)."""
        inputs = self.inputs(x)
        if inputs is None:
            return math.inf, None, None, None
        schedule, nz = inputs
        g = loss_gradient(schedule, self.spectrum, nz, self.steps, self.w, threads=self.threads)
        if not math.isfinite(g.value):
            return math.inf, None, g, nz
        grads = (g.alpha, g.b, g.c, g.D, g.e)
        dx = np.empty(x.size)
        if self.family.chain is not None:
            dx[:self.n_sched] = self.family.chain(x[:self.n_sched], self.t, grads)
        for j in range(0 if self.family.chain is None else self.n_sched, self.n_sched):
            xc = x[:self.n_sched].astype(complex)
            xc[j] += _CS * 1j
            arrays = self.family.arrays(xc, self.t)
            dx[j] = sum(float(np.sum(G * np.imag(np.reshape(A, G.shape)))) for G, A in zip(grads, arrays)) / _CS
        if self.batch_u is not None:
            dJ_dB = -g.batch / nz.batch_size ** 2
            for j in range(self.batch_u.size):
                zc = x[self.n_sched:].astype(complex)
                zc[j] += _CS * 1j
                B = _batch_sizes(self.budget, self.steps, self.batch_u, zc, self.t)
                dx[self.n_sched + j] = float(np.sum(dJ_dB * np.imag(B))) / _CS
        if not np.all(np.isfinite(dx)):
            return math.inf, None, g, nz
        return g.value, dx, g, nz


def family_gradient(family: Family, x, spectrum: Spectrum, noise: Noise, steps: int, weights=None, *,
                    threads: Optional[int] = None):
    """``(J, dJ/dx)`` for ``J = sum_t weights[t] L_t`` of ``family.schedule(x)`` (default: ``L_T``).

    The chain rule through the family's per-step formulas on top of [`memsgd.loss_gradient`][memsgd.loss_gradient];
    ``J = inf`` and ``dJ/dx`` all NaN when a weighted step diverges. ``threads`` as in
    [`memsgd.loss_gradient`][memsgd.loss_gradient].

    Examples:
        Against a central difference of the exact loss in the first variable (``log lr``):

        >>> import numpy as np, memsgd
        >>> from memsgd.design import make_family, family_gradient
        >>> spec, noise = memsgd.Spectrum.power_law(2.0, 1.0, size=30), memsgd.Noise.gaussian(10)
        >>> family = make_family("heavy_ball", 20)
        >>> J, dJ = family_gradient(family, family.start, spec, noise, 20)
        >>> def J_at(x):
        ...     return memsgd.loss_curve(family.schedule(x), spec, noise, 20).loss[-1]
        >>> step = np.array([1e-6, 0.0])
        >>> bool(np.isclose(dJ[0], (J_at(family.start + step) - J_at(family.start - step)) / 2e-6, rtol=1e-6))
        True
    """
    if not isinstance(family, Family):
        raise TypeError(f"family must be a Family (see make_family), got {type(family).__name__}")
    x = float_array(x, "x", ndim=1)
    if x.size != family.size:
        raise ValueError(f"x must have {family.size} entries (the family's variables), got {x.size}")
    instance_of(spectrum, Spectrum, "spectrum")
    instance_of(noise, Noise, "noise")
    steps = step_count(steps, minimum=1)
    threads = thread_count(threads) or None
    _require_design_memory(family.memory, spectrum, noise, steps, batch_budget=None)
    problem = _Problem(family, spectrum, noise, steps, _weights(weights, steps), threads=threads)
    J, dx, _, _ = problem.gradient(x)
    return J, (np.full(x.size, math.nan) if dx is None else dx)


def optimize_schedule(family, spectrum: Spectrum, noise: Noise, steps: int, *, weights=None, start=None,
                      bounds=None, knots: int = 24, batch_budget: Optional[float] = None, batch_knots: int = 12,
                      starts: int = 1, max_iterations: int = 200, tolerance: float = 1e-10,
                      progress: Optional[bool] = None, threads: Optional[int] = None,
                      spacing: str = "log") -> ScheduleOptimum:
    """Minimise ``J = sum_t weights[t] L_t`` (default: the final loss ``L_T``) over a schedule family.

    Args:
        family: a name from [`FAMILIES`][memsgd.design.FAMILIES] or a [`Family`][memsgd.design.Family] (see
            [`make_family`][memsgd.design.make_family]).
        spectrum: the problem's spectrum.
        noise: its noise (tau1, tau2; its batch size unless ``batch_budget``).
        steps: the horizon T.
        weights: ``(T+1,)`` nonnegative loss weights (default: ``L_T`` alone).
        start: passed to [`make_family`][memsgd.design.make_family] when ``family`` is a name.
        bounds: likewise.
        knots: likewise.
        batch_budget: optimise the per-step batch sizes too under ``sum_t B_t = batch_budget``
            (> T): ``B_t = 1 + (budget - T) softmax(z(log(1 + t)))`` with ``z`` piecewise linear
            over ``batch_knots`` knots, starting from the constant batch ``budget / T``.
        starts: number of L-BFGS-B runs: from the start and, if more (or if the start diverges),
            from the best of ``16 * max(starts, 2)`` scrambled Sobol points in the bounds
            (screened by forward runs). The best point over all runs is returned.
        max_iterations: L-BFGS-B's ``maxiter`` (per run).
        tolerance: L-BFGS-B's ``ftol`` (on ``log J``).
        progress: a bar over iterations (True / False / None: when stderr is a terminal).
        threads: at most this many threads per evaluation (default: all cores, as
            [`memsgd.loss_curve`][memsgd.loss_curve]); the result does not depend on it.
        spacing: knot spacing of a free family and of the batch-size knots
            ([`make_family`][memsgd.design.make_family]): ``"log"`` or ``"ends"``.

    The objective is ``log J`` (scale-free); its gradient ``(dJ/dx)/J`` is
    [`family_gradient`][memsgd.design.family_gradient].
    See the module docstring for the stability guard. Returns a [`ScheduleOptimum`][memsgd.ScheduleOptimum].

    Raises:
        ValueError: bad arguments, or every start diverges within the bounds (nothing to optimise).

    Examples:
        The best constant learning rate of SGD for ``L_50`` beats the start (``lr = 0.5``):

        >>> import memsgd
        >>> spec, noise = memsgd.Spectrum.power_law(2.0, 1.0, size=30), memsgd.Noise.gaussian(10)
        >>> best = memsgd.optimize_schedule("sgd", spec, noise, 50)
        >>> best.success, bool(best.value < best.start_value), sorted(best.parameters)
        (True, True, ['lr'])
        >>> best.value == memsgd.loss_curve(best.schedule, spec, noise, 50).loss[-1]
        True
    """
    from scipy.optimize import minimize

    instance_of(spectrum, Spectrum, "spectrum")
    instance_of(noise, Noise, "noise")
    steps = step_count(steps, minimum=1)
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    if isinstance(family, str):
        family = _family_name(family)     # older names of the algorithm table accepted
        memory = _PARAMETRIC[family].memory if family in _PARAMETRIC else int(family == "free_memory1")
    elif not isinstance(family, Family):
        raise TypeError(f"family must be a name from {FAMILIES} or a Family, got {type(family).__name__}")
    elif start is not None or bounds is not None:
        raise ValueError("start and bounds go to make_family when family is a Family already")
    else:
        memory = family.memory
    max_iterations = positive_int(max_iterations, "max_iterations")
    starts = positive_int(starts, "starts")
    tolerance = positive_scalar(tolerance, "tolerance")
    threads = thread_count(threads) or None
    if batch_budget is not None:
        batch_budget = real_scalar(batch_budget, "batch_budget")
        if not batch_budget > steps:
            raise ValueError(f"batch_budget must be > steps = {steps} (every B_t >= 1), got {batch_budget}")
        if noise.per_step:
            raise ValueError("with batch_budget, noise must have a constant batch size (only its tau1, tau2 are used)")
        batch_knots = _knot_count(batch_knots, steps, "batch_knots", minimum=1)
    if isinstance(family, str) and family in FREE:
        knots = _knot_count(knots, steps, "knots", minimum=2)
    # Every size is known now: refuse what cannot fit before the family, the weights or the
    # starting points allocate anything of length steps.
    _require_design_memory(memory, spectrum, noise, steps, batch_budget)
    if isinstance(family, str):
        family = make_family(family, steps, knots=knots, start=start, bounds=bounds, spacing=spacing)
    w = _weights(weights, steps)
    problem = _Problem(family, spectrum, noise, steps, w, batch_budget, batch_knots, threads, spacing)
    lower, upper = problem.bounds()

    # A diverged trial point gets the divergence threshold of the weighted sum (the core's rule
    # L_t <= DIVERGENCE_FACTOR L_0 bounds every non-diverged J) and a zero gradient: the line
    # search backs off from it.
    penalty = math.log(_core.DIVERGENCE_FACTOR * max(spectrum.initial_loss, 1e-300) * float(np.sum(w)))
    state = {"evaluations": 0, "rejected": 0, "best": None, "run": 0}

    def evaluate(x):
        state["evaluations"] += 1
        J, dx, g, nz = problem.gradient(x)
        if not (math.isfinite(J) and J > 0):
            state["rejected"] += 1
            return penalty, np.zeros_like(x)
        f = math.log(J)
        if state["best"] is None or f < state["best"][0]:
            state["best"] = (f, x.copy(), g.loss.copy(), nz, state["run"])
        return f, dx / J

    starting_points = _starting_points(problem, starts)
    history, runs = [], []
    with progress_bar(max_iterations * len(starting_points), desc=f"optimize_schedule({family.name})", unit="it",
                      show=progress) as bar:

        def callback(xk, *args):
            if state["best"] is not None:
                history.append(math.exp(state["best"][0]))
            bar.update(1)

        for run, (x_start, _) in enumerate(starting_points):
            state["run"] = run
            runs.append(minimize(evaluate, x_start, jac=True, method="L-BFGS-B", bounds=list(zip(lower, upper)),
                                 callback=callback,
                                 options={"maxiter": max_iterations, "ftol": tolerance, "gtol": 1e-10, "maxls": 40}))
    start_value = starting_points[0][1]
    if state["best"] is None:   # every gradient evaluation failed although the start's forward run was fine
        raise ValueError(f"no evaluation of family {family.name} gave a finite gradient")
    f_best, x_best, loss_best, noise_best, best_run = state["best"]
    value = math.exp(f_best)
    res = runs[best_run]
    success = bool(res.success)
    message = str(res.message) + (f" (run {best_run + 1} of {len(runs)})" if len(runs) > 1 else "")
    # Bounds that fix every variable: scipy evaluates the one point and reports no iterations
    # (its result has no ``nit``); that point is the optimum, not a failure to improve.
    fixed = bool(np.all(lower == upper))
    if not value < start_value and not fixed:
        success = False
        message = f"no improvement on the start ({message})"
    n = family.size
    batch = None if problem.batch_u is None else np.array(noise_best.batch_size)
    return ScheduleOptimum(family.name, family.schedule(x_best[:n]), family.natural(x_best[:n]), x_best, value,
                           loss_best, start_value, sum(int(r.get("nit", 0)) for r in runs), state["evaluations"],
                           state["rejected"], success, message, batch, history)


def _knot_count(value, steps: int, name: str, minimum: int) -> int:
    """Knots of a piecewise-linear channel over the steps: more knots than steps would add
    variables that no step's parameter depends on (and arrays of their size)."""
    value = positive_int(value, name)
    if not minimum <= value <= max(steps, minimum):
        raise ValueError(f"{name} must be in [{minimum}, steps] = [{minimum}, {max(steps, minimum)}] (one knot "
                         f"per step at most), got {value}")
    return value


def _placeholder_generator(t):  # pragma: no cover - never called: the memory check reads only the memory
    raise AssertionError("placeholder schedule")


def _require_design_memory(memory: int, spectrum: Spectrum, noise: Noise, steps: int, batch_budget) -> None:
    """Refuse, before allocating, an optimisation whose gradient runs need more than physical
    memory: loss_gradient's own arrays plus the family's per-step arrays (real, complex step)."""
    per_step = 8.0 * steps * (1 + 3 * memory + memory * memory)
    extra = {"steps and the family's complex-step arrays": 8.0 * steps + 2.0 * per_step,
             "per-step batch sizes": 0.0 if batch_budget is None else 48.0 * steps}
    _require_gradient_memory(Schedule(memory, _placeholder_generator), spectrum, noise, steps, None,
                             0, extra)   # threads 0: loss_gradient's default, as the optimiser runs it


def _weights(weights, steps):
    w = _loss_weights(weights, steps)
    if not np.any(w > 0):
        raise ValueError("weights must have at least one positive entry (the objective would be 0)")
    return w


# Candidates screened (forward runs only) per L-BFGS-B run requested, besides the given start.
_SCREEN_PER_START = 16


def _starting_points(problem: _Problem, starts: int):
    """``[(x, J(x))]``: the family's start (clipped to the bounds) if its run does not diverge,
    then the best of scrambled Sobol points in the bounds by J, ``starts`` points in all."""
    lower, upper = problem.bounds()
    x0 = np.clip(problem.start(), lower, upper)
    v0 = problem.value(x0)
    chosen = [(x0, v0)] if math.isfinite(v0) else []
    n = _SCREEN_PER_START * max(starts, 2)
    if len(chosen) < starts:
        from scipy.stats import qmc
        points = lower + qmc.Sobol(x0.size, scramble=True, seed=0).random(n) * (upper - lower)
        values = np.array([problem.value(p) for p in points])
        order = [i for i in np.argsort(values, kind="stable") if math.isfinite(values[i])]
        chosen += [(points[i], float(values[i])) for i in order[:starts - len(chosen)]]
    if not chosen:
        fam = problem.family
        raise ValueError(f"every start diverges for family {fam.name} within its bounds ({fam.bounds_text}); "
                         f"tried the start and {n} points spread over the bounds. Narrow the bounds to a "
                         f"stable region (e.g. smaller learning rates)")
    return chosen
