"""Compute-optimal frontiers of power-law random features (docs/scaling-laws.md, docs/math.md §10).

A budget of ``f`` flops buys ``T = f / (B d)`` steps of batch B on a d-feature model. For each
budget, :func:`compute_optimal` finds the d that minimises the population risk
``P(T, d) = L_T(d) + F0(d)`` (the excess risk of the algorithm on the spectrum of ``K = W^T H W``,
run with the residual as label noise of variance ``2 F0(d)``, plus the floor), and fits power
laws ``d* ~ f^xi``, ``P* ~ f^-eta`` (Paquette, Paquette, Xiao & Pennington 2024, "4+3 phases").

The phases of the (alpha, beta) plane and the exponents that the paper's loss decomposition
(its Table 1: ``F0(d)``, the pure-point and absolutely-continuous forcings ``F_pp(r)``,
``F_ac(r)`` and the SGD-noise kernel ``K_pp(r)``) gives for SGD with a learning rate ~ 1/tr K are in
:data:`PHASES` and :func:`sgd_exponents`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from . import schedules
from ._validation import float_array, positive_int, positive_scalar, real_scalar
from .algorithms import gd
from .dynamics import loss_curves
from .long_horizon import loss_at, supports_loss_at
from .noise import Noise
from .spectrum import Spectrum

__all__ = ["PHASES", "rf_phase", "sgd_exponents", "ComputeOptimal", "compute_optimal", "algorithm_for"]

# A representative (alpha, beta) inside each phase, away from the boundaries.
PHASES = {
    "Ia": (0.75, 0.25),
    "Ib": (0.35, 0.4),
    "Ic": (0.2, 1.0),
    "II": (1.25, 0.75),
    "III": (1.0, 2.0),
    "IV": (0.4, 1.0),
}


def rf_phase(alpha: float, beta: float) -> Optional[str]:
    """The phase of (alpha, beta): ``2 (alpha + beta) > 1`` is needed (else None, the target is not
    learnable). Above the high-dimensional line (2 alpha > 1): Ia (2 beta < 1), II (2 beta > 1,
    beta < alpha), III (beta > alpha). Below it: Ib (2 beta < 1), IV (2 beta > 1, alpha > 1/4),
    Ic (2 beta > 1, alpha < 1/4). Points on a boundary go to the phase above/right of it."""
    if 2 * (alpha + beta) <= 1 or alpha <= 0:
        return None
    if 2 * alpha > 1:
        if 2 * beta < 1:
            return "Ia"
        return "II" if beta < alpha else "III"
    if 2 * beta < 1:
        return "Ib"
    return "IV" if alpha > 0.25 else "Ic"


def sgd_exponents(alpha: float, beta: float) -> dict:
    """``{"phase", "xi", "eta", "xi_formula", "eta_formula", "tradeoff"}``: compute-optimal
    ``d* ~ f^xi`` and ``P* ~ f^-eta`` of SGD (batch 1, learning rate ~ 1/tr K), from balancing the
    terms of the paper's loss decomposition (Table 1 of Paquette et al. 2024) with ``r = f / d``
    steps and ``gamma ~ 1/tr K`` (``~ d^(2 alpha - 1)`` below the high-dimensional line, v ~ d):

    - ``F0(d) ~ d^-(2 alpha + min(0, 2 beta - 1))``;
    - ``F_pp(r) ~ (gamma r)^-(2 alpha + 2 beta - 1)/(2 alpha)`` (the top eigenvalues' signal);
    - ``F_ac(r) ~ d^-1 (gamma r)^-(1 - 1/(2 alpha))`` (2 beta > 1, 2 alpha > 1);
    - SGD noise ``~ gamma^(1/(2 alpha) - 1) r^-(2 - 1/(2 alpha))`` (2 beta > 1, alpha > 1/4).

    Ia: F_pp vs F0; Ib: F_pp vs F0 with the high-dimensional learning rate; II: F_pp vs F_ac;
    III: noise vs F_ac; IV: noise vs F0; Ic: F_pp vs F0 (the noise is a d^-2alpha plateau).
    Ia, II, III agree with the compute-optimal curves of the paper's Table 2 as far as they are
    quoted in docs/scaling-laws.md (e.g. III: ``eta = 1 - 1/(4 alpha)``, 0.643 at alpha = 0.7).
    """
    a, b = float(alpha), float(beta)
    phase = rf_phase(a, b)
    if phase is None:
        raise ValueError(f"(alpha, beta) = ({a:g}, {b:g}) has 2 (alpha + beta) <= 1: no phase (the target "
                         "variance diverges with v)")
    if phase == "Ia":
        xi, xs = 1 / (2 * a + 1), "1/(2a+1)"
        eta, es = (2 * a + 2 * b - 1) / (2 * a + 1), "(2a+2b-1)/(2a+1)"
        how = "F_pp vs F0"
    elif phase == "II":
        xi, xs = b / (a + b), "b/(a+b)"
        eta, es = (2 * a + 2 * b - 1) / (2 * (a + b)), "(2a+2b-1)/(2(a+b))"
        how = "F_pp vs F_ac"
    elif phase == "III":
        xi, xs = 0.5, "1/2"
        eta, es = 1 - 1 / (4 * a), "1-1/(4a)"
        how = "SGD noise vs F_ac"
    elif phase == "Ib":
        xi, xs = 0.5, "1/2"
        eta, es = (2 * a + 2 * b - 1) / 2, "(2a+2b-1)/2"
        how = "F_pp vs F0 (gamma ~ d^(2a-1))"
    elif phase == "IV":
        xi, xs = 0.5, "1/2"
        eta, es = a, "a"
        how = "SGD noise vs F0 (gamma ~ d^(2a-1))"
    else:  # Ic
        den = 6 * a + 4 * b - 4 * a * b - 2
        xi, xs = (2 * a + 2 * b - 1) / den, "(2a+2b-1)/(6a+4b-4ab-2)"
        eta, es = 2 * a * xi, "2a xi"
        how = "F_pp vs F0 (gamma ~ d^(2a-1))"
    return {"phase": phase, "xi": xi, "eta": eta, "xi_formula": xs, "eta_formula": es, "tradeoff": how}


# -- algorithms per model size -----------------------------------------------------------------

def _step_scale(spectrum: Spectrum, batch_size: int) -> float:
    """``1 / (tr K / B + lambda_max)``: a learning rate of this size times a factor below ~1 is stable
    for SGD on Gaussian data at any batch size (the noise sum ``~ (lr / 2B) tr K`` stays below 1 and
    ``lr lambda_max`` below 2)."""
    trace = float(np.sum(spectrum.weights * spectrum.eigenvalues))
    return 1.0 / (trace / batch_size + spectrum.lambda_max)


def algorithm_for(name: str, spectrum: Spectrum, batch_size: int, lr: float):
    """The preset ``name`` for a d-feature spectrum, learning-rate factor ``lr`` (times
    ``1 / (tr K / B + lambda_max)``, the paper's ``gamma ~ 1/tr K`` at B = 1):

    - ``"sgd"``: :func:`memsgd.gd` (constant learning rate);
    - ``"dana-decaying"``: :func:`memsgd.schedules.dana_decaying` with the DANA paper's choices
      (Ferbach et al. 2025): ``g1 = 1``, ``g2`` the SGD rate, ``g3 = g2 / 5`` decaying as
      ``(1 + t)^(-1/(2 alpha))``, ``delta = max(2 + (2 beta - 1)/alpha, 2 - 1/alpha) + 1``;
    - ``"am1"``: :func:`memsgd.schedules.am1_power_law` with kick the SGD rate and
      ``alpha_eff ~ t^delta``, ``delta = 0.9 (1 - 1/(2 alpha))`` (just inside the stable range
      ``delta < 1 - 1/nu`` of docs/math.md §7; plain SGD where 2 alpha <= 1).
    """
    info = spectrum.random_features_info
    if info is None:
        raise ValueError("spectrum must come from Spectrum.random_features (it needs alpha and beta)")
    rate = lr * _step_scale(spectrum, batch_size)
    a, b = info.alpha, info.beta
    if name == "sgd":
        return gd(rate)
    if name == "dana-decaying":
        delta = max(2.0 + (2.0 * b - 1.0) / a, 2.0 - 1.0 / a) + 1.0
        return schedules.dana_decaying(rate, 0.2 * rate, delta, 1.0 / (2.0 * a))
    if name == "am1":
        growth = 0.9 * (1.0 - 1.0 / (2.0 * a))
        if growth <= 0:
            return gd(rate)
        return schedules.am1_power_law(rate, growth)
    raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)} or a callable, got {name!r}")


ALGORITHMS = ("sgd", "dana-decaying", "am1")
# The default d grid stops here (building an equivalent takes seconds beyond).
_D_DEFAULT_MAX = 1e5


# -- the compute-optimal frontier ---------------------------------------------------------------

@dataclass(frozen=True)
class ComputeOptimal:
    """Result of :func:`compute_optimal` (see there).

    Fields:
        flops: (F,) budgets ``f = T B d``.
        d: (F,) compute-optimal model size d* (a parabola in log d through the grid minimum and its
            neighbours; the grid value where the minimum is at the grid's end, see ``interior``).
        loss: (F,) population risk ``L_T + F0(d)`` at d* (from the same parabola, in log loss).
        steps: (F,) ``T = f / (B d*)``.
        interior: (F,) the minimum lies strictly inside the d grid (only these enter the fits).
        d_exponent, loss_exponent: least-squares slopes ``xi`` of log d* and ``eta`` of -log loss
            against log f over the interior budgets in the fit window.
        d_grid: (D,) model sizes evaluated; grid_loss: (D, F) population risk ``P(f / (B d), d)``
            (nan where T < 1 or T > max_steps), the best over the learning-rate factors.
        grid_lr: (D, F) the learning-rate factor that gave it.
        floors: (D,) F0(d).
        algorithm: the algorithm's name; batch_size: B; alpha, beta; fit_window: (f_lo, f_hi).
    """

    flops: np.ndarray
    d: np.ndarray
    loss: np.ndarray
    steps: np.ndarray
    interior: np.ndarray
    d_exponent: float
    loss_exponent: float
    d_grid: np.ndarray
    grid_loss: np.ndarray
    grid_lr: np.ndarray
    floors: np.ndarray
    algorithm: str
    batch_size: int
    alpha: float
    beta: float
    fit_window: tuple = field(default=(0.0, math.inf))

    def exponents(self, f_lo: float = 0.0, f_hi: float = math.inf):
        """``(xi, eta, budgets used)``: the least-squares slopes of log d* and -log P* against log f
        over the interior budgets in ``[f_lo, f_hi]`` (nan with fewer than two)."""
        use = self.interior & (self.flops >= f_lo) & (self.flops <= f_hi) & np.isfinite(self.loss)
        if np.sum(use) < 2:
            return math.nan, math.nan, int(np.sum(use))
        lf = np.log(self.flops[use])
        return (float(np.polyfit(lf, np.log(self.d[use]), 1)[0]), float(-np.polyfit(lf, np.log(self.loss[use]), 1)[0]),
                int(np.sum(use)))


# Above this many steps a stationary algorithm goes through loss_at (about 0.5-1 s per call whatever
# the horizon) rather than the engine (about 0.5 us per step on a few hundred nodes): method="auto".
_LOSS_AT_FROM = 2_000_000
METHODS = ("auto", "engine", "loss_at")


def _population_risk(algorithms, spectrum: Spectrum, batch_size: int, record, method: str, threads, progress):
    """(C, R) population risk ``L_t + F0`` of each algorithm at the recorded steps: the one place
    where the random-features residual enters the dynamics, as label noise of variance ``2 F0``
    (docs/math.md §10). Through :func:`memsgd.loss_at` (cost independent of T) for stationary
    algorithms where ``method`` says so, else through the batched engine."""
    noise = Noise.gaussian(batch_size, label_noise=spectrum.label_noise)
    stationary = all(supports_loss_at(a, noise) for a in algorithms)
    if method == "loss_at" and not stationary:
        raise ValueError("method='loss_at' needs stationary algorithms (a MemoryAlgorithm, not a Schedule); "
                         "use method='engine' or 'auto'")
    if method == "loss_at" or (method == "auto" and stationary and record[-1] > _LOSS_AT_FROM):
        return np.stack([loss_at(a, spectrum, noise, record, threads=threads, progress=progress).loss
                         for a in algorithms]) + spectrum.floor
    curves = loss_curves(list(algorithms), spectrum, noise, int(record[-1]), record=record, threads=threads,
                         progress=progress)
    return curves.total     # inf from a divergence on


def compute_optimal(algorithm, alpha, beta, flops, *, batch_size=1, d=None, v_ratio=None, lr=1.0,
                    tune=None, fit=None, max_steps=10 ** 7, method="auto", threads=None,
                    progress=None) -> ComputeOptimal:
    """Compute-optimal model size and loss of an algorithm on power-law random features.

    For each budget ``f`` (flops, ``f = T B d``) and each model size d of the grid, the population risk
    ``P = L_T + F0(d)`` after ``T = round(f / (B d))`` steps: L from the exact mean-loss recursion on
    the deterministic equivalent's spectrum (:meth:`Spectrum.random_features`) with the residual as
    label noise of variance ``2 F0(d)``. The learning rate is ``lr / (tr K / B + lambda_max)`` (so it
    follows ``1 / tr K`` as d changes); ``tune=[factors]`` takes, per d and per budget, the best over
    those factors instead. d* and P* come from a parabola in (log d, log P) through the grid minimum
    and its two neighbours; the exponents ``xi``, ``eta`` of ``d* ~ f^xi``, ``P* ~ f^-eta`` are
    least-squares slopes over the budgets whose minimum is inside the grid (and inside ``fit``).

    Args:
        algorithm: ``"sgd"``, ``"dana-decaying"``, ``"am1"`` (:func:`algorithm_for`), or a callable
            ``(spectrum, batch_size, lr) -> MemoryAlgorithm | Schedule``.
        alpha: data exponent (eigenvalues ``j^(-2 alpha)``, docs/math.md §10).
        beta: target exponent (``b_j = j^(-beta)``).
        flops: budgets, positive, increasing.
        batch_size: B.
        d: the model sizes to try, increasing, each >= 2 (default: 3 per octave from
            ``max(8, f_min^(1/4) / B)`` to ``min(f_max^(0.7) / B, 10^5)``).
        v_ratio: data dimension ``v = ceil(v_ratio d)``; default None: infinite when 2 alpha > 1,
            else ``v = 4 d``.
        lr: learning-rate factor (see above). tune: a sequence of factors to choose from.
        fit: (f_lo, f_hi) budgets used in the exponent fits (default: all).
        max_steps: budgets needing more steps than this at some d are not evaluated there (nan).
        method: ``"engine"``: the batched engine for every d (exact to rounding; cost grows with
            max T); ``"loss_at"``: :func:`memsgd.loss_at` (stationary algorithms only; cost
            independent of T, error ~1e-12 relative, see there); ``"auto"`` (default): loss_at for
            stationary algorithms at a d whose largest T exceeds 2e6, the engine otherwise.
        threads: as in :func:`memsgd.loss_curves`.
        progress: as in :func:`memsgd.loss_curves` (per model size).

    Cost: for each d one batched engine run of ``max T`` steps on the equivalent's few hundred nodes,
    or one loss_at call per learning-rate factor (~0.5-1 s), plus building the equivalent
    (~0.1-1 s per d).

    >>> import numpy as np, memsgd
    >>> res = memsgd.compute_optimal("sgd", 1.0, 0.7, np.logspace(4, 5, 3), d=[16, 32, 64, 128])
    >>> res.d.shape, bool(np.all(res.loss > 0))
    ((3,), True)
    """
    alpha = positive_scalar(alpha, "alpha")
    beta = real_scalar(beta, "beta")
    B = positive_int(batch_size, "batch_size")
    f = float_array(flops, "flops", ndim=1, allow_empty=False)
    if np.any(f <= 0) or np.any(np.diff(f) <= 0):
        raise ValueError("flops must be positive and strictly increasing")
    if d is None:
        # d* ~ f^xi with xi in about [0.35, 0.65] in every phase: cover f_min^(1/4) .. f_max^(7/10)
        lo = max(8.0, f[0] ** 0.25 / B)
        hi = max(2 * lo, min(f[-1] ** 0.7 / B, f[-1] / B, _D_DEFAULT_MAX))
        d = np.unique(np.round(np.geomspace(lo, hi, max(4, int(round(3 * math.log2(hi / lo))) + 1))))
    d_grid = np.asarray([positive_int(int(x) if float(x).is_integer() else x, "d") for x in np.atleast_1d(d)])
    if d_grid.size < 3 or np.any(np.diff(d_grid) <= 0) or d_grid[0] < 2:
        raise ValueError("d must hold at least 3 strictly increasing model sizes >= 2")
    factors = [positive_scalar(lr, "lr")] if tune is None else [positive_scalar(c, "tune") for c in tune]
    if not factors:
        raise ValueError("tune must not be empty")
    max_steps = positive_int(max_steps, "max_steps")
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if callable(algorithm):
        make, name = algorithm, getattr(algorithm, "__name__", "callable")
    elif isinstance(algorithm, str):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {list(ALGORITHMS)} or a callable, got {algorithm!r}")
        name = algorithm
        make = lambda spec, batch, c: algorithm_for(name, spec, batch, c)  # noqa: E731
    else:
        raise TypeError(f"algorithm must be a preset name or a callable, got {type(algorithm).__name__}")
    if fit is None:
        fit = (0.0, math.inf)
    fit = (float(fit[0]), float(fit[1]))

    grid_loss = np.full((d_grid.size, f.size), np.nan)
    grid_lr = np.full((d_grid.size, f.size), np.nan)
    floors = np.empty(d_grid.size)
    for i, di in enumerate(d_grid):
        v = _data_dimension(alpha, int(di), v_ratio)
        spec = Spectrum.random_features(alpha, beta, int(di), v)
        floors[i] = spec.floor
        T = np.rint(f / (B * di)).astype(np.int64)
        ok = (T >= 1) & (T <= max_steps)
        if not np.any(ok):
            continue
        record = np.unique(T[ok])
        algos = [make(spec, B, c) for c in factors]
        risk = _population_risk(algos, spec, B, record, method, threads, progress)
        at = np.searchsorted(record, T[ok])
        best = np.argmin(risk[:, at], axis=0)
        grid_loss[i, ok] = risk[best, at]
        grid_lr[i, ok] = np.asarray(factors)[best]
    d_star, p_star, interior = _minimise(d_grid, grid_loss)
    res = ComputeOptimal(f, d_star, p_star, f / (B * d_star), interior, math.nan, math.nan, d_grid.astype(np.float64),
                         grid_loss, grid_lr, floors, name, B, alpha, beta, fit)
    xi, eta, _ = res.exponents(*fit)
    return replace(res, d_exponent=xi, loss_exponent=eta)


def _data_dimension(alpha: float, d: int, v_ratio) -> Optional[int]:
    if v_ratio is None:
        return None if 2 * alpha > 1 else 4 * d
    r = positive_scalar(v_ratio, "v_ratio")
    if r <= 1:
        raise ValueError(f"v_ratio must be > 1 (v > d), got {r}")
    return int(math.ceil(r * d))


def _minimise(d_grid: np.ndarray, grid_loss: np.ndarray):
    """Per budget: the grid minimum of log P over log d, refined by the parabola through it and its
    neighbours (vertex clipped to the neighbours' span). Returns (d*, P*, interior)."""
    D, F = grid_loss.shape
    d_star, p_star, interior = np.full(F, np.nan), np.full(F, np.nan), np.zeros(F, bool)
    x = np.log(d_grid)
    for j in range(F):
        col = grid_loss[:, j]
        finite = np.isfinite(col) & (col > 0)
        if not np.any(finite):
            continue
        y = np.where(finite, np.log(np.where(finite, col, 1.0)), np.inf)
        i = int(np.argmin(y))
        d_star[j], p_star[j] = d_grid[i], col[i]
        if 0 < i < D - 1 and np.isfinite(y[i - 1]) and np.isfinite(y[i + 1]):
            interior[j] = True
            c2, c1, c0 = np.polyfit(x[i - 1:i + 2], y[i - 1:i + 2], 2)
            if c2 > 0:
                xv = min(max(-c1 / (2 * c2), x[i - 1]), x[i + 1])
                d_star[j], p_star[j] = math.exp(xv), math.exp(c0 + c1 * xv + c2 * xv * xv)
    return d_star, p_star, interior
