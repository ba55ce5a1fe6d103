"""Exact losses at very long horizons: ``L_t`` for t up to 10^12 at a cost independent of t.

Method (docs/long-horizons.md; formulas in docs/math.md §4 and §8, "Generating functions").
For a stationary algorithm with constant batch size the mean loss has the generating function

    L(z) = sum_t L_t z^t = U(z) + U'(z) V(z) / (1 - V'(z)),

where U, U', V, V' are sums over the spectrum of rational functions of z, one per component:
with ``T_k`` the moment map of component k, ``(I - z T_k)^-1`` applied to ``E11`` or ``g g^T`` and
read off against ``E11`` or ``h h^T``. In ``s = -log z`` the Cauchy integral for ``L_t`` is a
Bromwich integral over a vertical segment of the periodic strip,

    L_t = (1 / 2 pi i) int L(e^-s) e^(s t) ds,

and is evaluated on a hyperbola deformed into the left half plane (Weideman & Trefethen's
contour for a range of times ``t in [t_lo, 10 t_lo]``): one set of ~70 nodes serves a whole decade
of t, so 200 requested steps between 10^3 and 10^9 cost ~6 x 70 evaluations of the four sums,
each O(K P^3) with P = (M+1)(M+2)/2. Why this route rather than a renewal on a geometric grid:
the contour integral converges geometrically (error ~ e^(-0.94 N) for N nodes) and its error is
measured by repeating it with fewer nodes, while product integration of an oscillating,
power-law kernel at 1e-8 needs high-order rules and careful singularity handling at every
grid point.

What the contour may and may not leave out:

* The singularities of ``L(e^-s)`` are the poles ``s = log mu`` of the components (eigenvalues
  ``mu`` of ``T_k``) and the zeros of ``1 - V'``. Those on (or within 0.1 rad of) the real axis --
  the slow modes ``mu ~ 1 - 2 alpha_eff lambda``, accumulating at ``s = 0`` for an infinite spectrum
  -- lie inside the hyperbola, which is centred at the rightmost real singularity ``c`` (0 for
  an infinite spectrum, < 0 for a finite one, > 0 for a diverging run; found by bisection on
  ``V'(e^-s) = 1``), so ``L_t = e^(c t) x (a quantity of order 1)`` keeps relative accuracy.
* Off-axis singularities (complex ``mu`` of underdamped momentum, negative ``mu`` of oscillating
  modes) with ``Re s > c - rho`` contribute ``~ e^(-rho t)`` relative to ``L_t``. They are left
  out only from ``t0 = 2.4 X / rho`` on (``X ~ 36`` the contour's reach, ``e^(-86)``); below ``t0``
  the exact recursion ([`memsgd.loss_curve`][memsgd.loss_curve]) runs. The factor 2 covers the shift of the
  zeros of ``1 - V'`` off the component poles (found below 10% in random memory-1/2 problems).
  At its end the contour is checked against the recursion at ~12 steps in ``[t0, 2 t0]``.
* Cancellation: far-left components (``lambda t >> 1``) are analytic inside the contour and
  carry most of ``U(0)``, ``V(0)``; the purely analytic part of ``L`` integrates to 0, but
  summing it at the nodes would swamp ``L_t ~ t^-zeta`` in rounding. The sums are therefore
  split into a slow set S (poles within 1.5 reaches of ``c``) and a fast set F, and only

      L - A = U_S + U'_S V / (1 - V') + U'_F [V_S (1 - V'_F) + V_F V'_S] / ((1 - V')(1 - V'_F))

  is integrated, ``A = U_F + U'_F V_F / (1 - V'_F)`` being the loss of the fast system alone
  (negligible at these t: F is chosen so that ``V'_F < 1/2`` at the contour's left end).
* Per component, ``I - z T = e^-s (sigma I - Delta)`` with ``sigma = expm1(s)`` and
  ``Delta = T - I`` built from ``S - I`` (no ``1 - z mu`` cancellation at ``lambda t ~ 1`` for
  t = 10^12), solved by LU with partial pivoting (accurate to ~1e-16 relative even next to
  a slow pole; defective and near-defective ``T_k`` -- critical damping -- need no eigenvectors).

Error estimate: ``|L^(38) - L^(30)|`` (two contours), plus 64 eps times the sum of the moduli of
the quadrature terms, plus bounds ``e^(-reach t / t_lo)`` and ``e^(-rho t)`` on the left-out
parts. Measured accuracy: see docs/long-horizons.md (about 1e-12 relative against the exact
recursion on held-out problems).
"""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import _core
from ._affine import affine_features, refuse_affine
from ._progress import watched
from ._stationary import spectrum_and_noise, stationary
from ._validation import nonnegative_int, progress_flag, step_array, thread_count
from .algorithms import MemoryAlgorithm
from .dynamics import loss_curve
from .noise import Noise
from .spectrum import Spectrum

__all__ = ["DIVERGENCE_FACTOR", "MAX_STEP", "LossAt", "loss_at", "supports_loss_at"]

# The largest step loss_at accepts.
MAX_STEP = 10 ** 12
# A run has diverged at the first step whose loss is not finite or exceeds this times L_0
# (docs/math.md §8); the core owns the rule.
DIVERGENCE_FACTOR = _core.DIVERGENCE_FACTOR

# -- contour design ------------------------------------------------------------------------
# One hyperbola serves t in [t_lo, _SPAN t_lo].
_SPAN = 10.0
# Singularities within this angle (radians) of the negative real axis, seen from the centre,
# may lie inside the hyperbola; those further off the axis are left out (see the docstring).
_WEDGE = 0.1
# Nodes of the reported contour and of the one it is checked against (error ~ e^(-0.94 N)).
_NODES = 38
_CHECK_NODES = 30
# The contour starts where off-axis singularities have decayed by e^-(_SAFETY * reach).
_SAFETY = 2.4
# Earliest step a contour may serve (its nodes must stay well inside |Im s| < pi).
_MIN_START = 128
# The exact recursion is not run beyond this many steps (memory: 3 arrays of doubles).
_ENGINE_MAX = 2 * 10 ** 7
# A loss growing like exp(g t) is run by the recursion up to _GROWTH_STEPS / g steps (it
# passes 1e30 L_0 well before unless its start is below 1e-100 L_0).
_GROWTH_STEPS = 300.0
# Rates below this are rounding of |mu| = 1 (an undamped mode), not growth.
_GROWTH_FLOOR = 1e-10
# Components within this many reaches of the centre are "slow" (integrated); more are added
# until V'_F < _FAST_COUPLING at the contour's left end.
_SLOW_REACHES = 1.5
_FAST_COUPLING = 0.5
# The contour must match the recursion at the hand-over to this many times its error estimate.
_CHECK_FACTOR = 10.0
# Steps evaluated together on a contour.
_CHUNK = 4096
_EPS = np.finfo(float).eps
# loss_at warns when an estimated relative error exceeds this (the accuracy aimed at is 1e-8).
_WARN_RELATIVE_ERROR = 1e-6
_TINY = 1e-280
# Resolution of the centre c: shifting it by this changes e^(c t) by < 1e-6 at t = 10^12, and the
# contour encloses singularities that close to it anyway.
_CENTRE_RESOLUTION = 1e-18


@dataclass(frozen=True)
class LossAt:
    """Exact expected losses at chosen steps (see [`loss_at`][memsgd.loss_at]).

    Fields:
        steps: (n,) int64, the requested steps.
        loss: (n,) float64, ``L_t`` at those steps; ``inf`` from a divergence on.
        error: (n,) float64, estimated absolute error of ``loss`` (0 where ``loss`` is inf).
        diverged_at: the first step whose loss is not finite or exceeds 1e30 L_0 (it may lie
            between requested steps), or None when that does not happen up to ``steps[-1]``.
        exact_until: steps up to this one come from the exact recursion ([`memsgd.loss_curve`][memsgd.loss_curve]),
            later ones from the contour integral.
        rate: exponential rate ``c`` of the slowest mode: ``L_t ~ e^(c t)`` times slower factors
            (0 for an infinite spectrum, < 0 for a finite one, > 0 when the loss diverges).

    Examples:
        >>> import memsgd
        >>> at = memsgd.loss_at(memsgd.heavy_ball(0.1, 0.9), memsgd.Spectrum.power_law(2.0, 1.0),
        ...                     memsgd.Noise.gaussian(10), [10**4, 10**8])
        >>> at.steps.tolist(), at.loss.shape, bool(max(at.relative_error) < 1e-6)
        ([10000, 100000000], (2,), True)
    """

    steps: np.ndarray
    loss: np.ndarray
    error: np.ndarray
    diverged_at: Optional[int]
    exact_until: int
    rate: float = field(default=0.0)

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def relative_error(self) -> np.ndarray:
        """``error / |loss|`` (0 where both are 0, nan where the loss is inf)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = self.error / np.abs(self.loss)
        rel[(self.error == 0) & (self.loss == 0)] = 0.0
        return rel


def supports_loss_at(algorithm, noise) -> bool:
    """True when [`loss_at`][memsgd.loss_at] accepts this algorithm and noise: a stationary
    [`MemoryAlgorithm`][memsgd.MemoryAlgorithm] (not a Schedule) and a [`Noise`][memsgd.Noise] with one batch size.

    Examples:
        >>> import memsgd
        >>> memsgd.supports_loss_at(memsgd.heavy_ball(0.1, 0.9), memsgd.Noise.gaussian(10))
        True
        >>> memsgd.supports_loss_at(memsgd.schedules.am1_power_law(1.0, 0.3), memsgd.Noise.gaussian(10))
        False
    """
    return (isinstance(algorithm, MemoryAlgorithm) and isinstance(noise, Noise) and not noise.per_step
            and not affine_features(algorithm, noise))


def loss_at(algorithm: MemoryAlgorithm, spectrum: Spectrum, noise: Noise, steps, *,
            exact_until: Optional[int] = None, progress: Optional[bool] = None,
            threads: Optional[int] = None) -> LossAt:
    """Exact expected loss ``L_t`` of mini-batch SGD with memory at the given steps, for any t up
    to 10^12, at a cost that does not grow with t (docs/long-horizons.md).

    ``L_t`` is the t-th coefficient of ``L(z) = U(z) + U'(z) V(z) / (1 - V'(z))`` (docs/math.md §8,
    "Generating functions"), recovered by a contour integral in ``s = -log z``; steps below the
    contour's start ``t0`` come from the exact recursion. The values are those of
    [`memsgd.loss_curve`][memsgd.loss_curve] (same spectrum nodes and weights) to the returned error estimate,
    typically 1e-12 relative and aimed at 1e-8 at worst.

    Args:
        algorithm: a stationary [`MemoryAlgorithm`][memsgd.MemoryAlgorithm] (any memory M, any e).
        spectrum: finite, infinite (quadrature weights) or empirical.
        noise: SE noise with one batch size (``noise.per_step`` is not supported).
        steps: strictly increasing integers in [0, 10^12] (integral floats such as 1e9 accepted).
        exact_until: run the exact recursion up to this step at least (default: ``2 t0``, with
            ``t0`` the first step where the contour is valid, ~100 / (decay rate of the slowest
            oscillating mode); at least 128).
        progress: as in [`memsgd.loss_curve`][memsgd.loss_curve] (for the recursion part and long contour sums).
        threads: at most this many threads (default: all cores); the values do not depend on it.

    Cost: the recursion up to ``2 t0`` plus O(K P^3) per contour node, ~70 nodes per decade of
    requested steps (P = (M+1)(M+2)/2). A diverging algorithm gets ``inf`` from its divergence on
    (``diverged_at``), as in [`memsgd.loss_curve`][memsgd.loss_curve].

    Examples:
        The same losses as the step-by-step engine, and steps far beyond its reach:

        >>> import numpy as np, memsgd
        >>> algo, noise = memsgd.heavy_ball(0.1, 0.9), memsgd.Noise.gaussian(10)
        >>> spec = memsgd.Spectrum.power_law(2.0, 1.0)
        >>> at = memsgd.loss_at(algo, spec, noise, [100, 1000])
        >>> bool(np.allclose(at.loss, memsgd.loss_curve(algo, spec, noise, 1000).loss[[100, 1000]], rtol=1e-8))
        True
        >>> far = memsgd.loss_at(algo, spec, noise, [10**6, 10**12])
        >>> bool(0 < far.loss[1] < far.loss[0]), far.diverged_at
        (True, None)
    """
    algorithm, spectrum, noise = _check_problem(algorithm, spectrum, noise)
    steps = step_array(steps, "steps", max_step=MAX_STEP)
    if exact_until is not None:
        exact_until = nonnegative_int(exact_until, "exact_until")
    progress_flag(progress)
    threads = thread_count(threads)
    problem = _Problem(algorithm, spectrum, noise, progress, threads)
    return problem.loss_at(steps, exact_until)


def _check_problem(algorithm, spectrum, noise):
    algorithm = stationary(algorithm, "loss_at inverts the generating function of constant parameters",
                           "use loss_curve for a Schedule")
    spectrum_and_noise(spectrum, noise, "loss_at (a per-step batch size makes the dynamics non-stationary)",
                       "use loss_curve")
    refuse_affine(algorithm, noise, "loss_at", "use loss_curve")
    return algorithm, spectrum, noise


# ------------------------------------------------------------------------------------------
# the contour

@functools.cache
def _hyperbola_shape():
    """``(alpha, d, a)`` of the hyperbola ``w(u) = mu (1 + sin(i u - alpha))`` for t in
    [t_lo, span t_lo] with singularities within ``wedge`` of the negative real axis.

    The trapezoid rule in u converges like ``e^(-2 pi d / h)`` with ``d = pi/2 - alpha - wedge`` the
    half-width of the strip mapped outside the singular sector, ``h = a / N``; balancing it with
    the growth ``e^(mu span t_lo)`` on the other side of the strip and with the truncation
    ``e^(mu t_lo (1 - sin(alpha) cosh a))`` gives ``cosh a = (1 + span d / (alpha - d)) / sin(alpha)``
    and ``mu = 2 pi (alpha - d) N / (span t_lo a)`` (Weideman & Trefethen 2007, there with
    ``wedge = 0``); alpha maximises the rate ``2 pi d / a`` (~0.94 per node).
    """
    span, wedge = _SPAN, _WEDGE
    alphas = np.linspace((math.pi / 2 - wedge) / 2 + 1e-6, math.pi / 2 - wedge - 1e-6, 20001)
    d = math.pi / 2 - alphas - wedge
    a = np.arccosh((1 + span * d / (alphas - d)) / np.sin(alphas))
    i = int(np.argmax(2 * math.pi * d / a))
    return float(alphas[i]), float(d[i]), float(a[i])


def _hyperbola(nodes: int, t_lo: float):
    """Nodes ``w_j`` and weights ``omega_j`` with ``f(t) ~= Im sum_j omega_j F(w_j) e^(w_j t)`` for
    ``f(t) = (1/2 pi i) int F(w) e^(w t) dw`` and real f (upper half of the hyperbola, midpoint rule)."""
    alpha, d, a = _hyperbola_shape()
    h = a / nodes
    mu = 2 * math.pi * (alpha - d) * nodes / (_SPAN * t_lo * a)
    u = (np.arange(nodes) + 0.5) * h
    w = mu * (1 + np.sin(1j * u - alpha))
    dw = 1j * mu * np.cos(1j * u - alpha)
    return w, (h / math.pi) * dw


def _reach(nodes: int) -> float:
    """``-t_lo min Re w``: how far left of the centre, in units of 1/t_lo, the contour reaches."""
    w, _ = _hyperbola(nodes, 1.0)
    return float(-w.real.min())


# ------------------------------------------------------------------------------------------
# one problem

class _Problem:
    def __init__(self, algo: MemoryAlgorithm, spectrum: Spectrum, noise: Noise, progress, threads: int = 0):
        self.algo, self.spectrum, self.noise, self.progress = algo, spectrum, noise, progress
        self.threads = threads
        lam, m, c2 = spectrum.eigenvalues, spectrum.weights, spectrum.coefficients2
        self.L0 = spectrum.initial_loss
        self.coupling = noise.coupling
        self.wu = 0.5 * m * lam * c2
        self.wv = self.coupling * m * lam ** 2
        self.args = (algo.alpha, algo.b, algo.c, algo.D, algo.e, noise.self_noise)
        self.poles = _core.moment_poles(lam, *self.args)               # (K, P), s = log(mu)
        relevant = np.ones(lam.size, bool) if self.coupling != 0.0 else self.wu > 0
        finite = np.isfinite(self.poles.real)
        real = (self.poles.imag == 0) & finite
        with np.errstate(invalid="ignore"):
            key = np.where(finite, self.poles.real, -np.inf).max(axis=1)
        self.order = np.argsort(-key, kind="stable").astype(np.int64)  # rightmost poles first
        self.key_sorted = key[self.order]
        self.trivial = not np.any(relevant) or self.L0 == 0.0
        real_rel = np.where(real & relevant[:, None], self.poles.real, -np.inf)
        self.real_max = float(real_rel.max()) if real_rel.size else -math.inf
        self.reach = _reach(_NODES)
        self.c = self._centre() if not self.trivial else 0.0
        self.rho_off, self.t0 = self._contour_start(relevant, finite)
        off_axis = relevant[:, None] & finite & (self.poles.imag != 0)
        self.off_axis_growth = float(self.poles.real[off_axis].max()) if np.any(off_axis) else -math.inf
        self._intervals: dict[float, dict] = {}

    # -- analysis ---------------------------------------------------------------------------
    def _sums(self, s, n_slow, watch=False):
        s = np.ascontiguousarray(s, dtype=complex)
        n_slow = np.broadcast_to(np.asarray(n_slow, dtype=np.int64), s.shape).copy()
        call = lambda control: _core.generating_sums(self.spectrum.eigenvalues, self.wu, self.wv, self.order,
                                                     *self.args, s, n_slow, control, self.threads)
        if not watch:
            return call(None)
        work = float(s.size) * self.spectrum.size * self.poles.shape[1] ** 3
        return watched(call, work, self.progress, s.size, "loss_at contour", "node", "steps_done")

    def _v_prime(self, s_real: np.ndarray) -> np.ndarray:
        out = self._sums(s_real.astype(complex), 0)
        return (out[:, 3] + out[:, 7]).real

    def _centre(self) -> float:
        """The rightmost real singularity of L(e^-s): the largest real pole of the components,
        or (with noise) the rightmost root of ``V'(e^-s) = 1`` to its right (bisection)."""
        base = self.real_max
        if not math.isfinite(base):  # no real pole: start from the rightmost pole of any kind
            finite = self.poles.real[np.isfinite(self.poles.real)]
            base = float(finite.max()) if finite.size else 0.0
        if self.coupling == 0.0:
            return base
        hi = 1.0
        while self._v_prime(np.array([base + hi]))[0] >= 1.0:
            hi *= 2.0
            if hi > 1e6:
                return base + hi
        # c matters only to ~0.01 / MAX_STEP: a root closer to the pole than this is the pole
        lo = max(_CENTRE_RESOLUTION, 8 * _EPS * abs(base))
        d = np.geomspace(hi, lo, max(2, int(math.log2(hi / lo) / 3) + 2))
        vp = self._v_prime(base + d)
        above = np.nonzero(~(vp < 1.0))[0]
        if above.size == 0:
            return base
        k = int(above[0])                       # V' < 1 at d[k - 1], >= 1 at d[k]
        lo_d, hi_d = d[k], d[k - 1]
        while hi_d - lo_d > _CENTRE_RESOLUTION + 1e-13 * hi_d:  # 16-section, one core call per round
            grid = np.geomspace(lo_d, hi_d, 17)[1:-1] if hi_d > 4 * lo_d else np.linspace(lo_d, hi_d, 17)[1:-1]
            above = np.nonzero(~(self._v_prime(base + grid) < 1.0))[0]
            i = int(above[-1]) if above.size else -1
            lo_d, hi_d = (grid[i] if i >= 0 else lo_d), (grid[i + 1] if i + 1 < grid.size else hi_d)
        return base + hi_d

    def _contour_start(self, relevant, finite):
        """Decay rate ``rho`` of the slowest singularity off the real axis (relative to the centre)
        and the step ``t0`` from which the contour may leave such singularities out."""
        if self.trivial:
            return math.inf, _MIN_START
        p = self.poles[relevant][finite[relevant]]
        dist = self.c - p.real
        with np.errstate(invalid="ignore", divide="ignore"):
            angle = np.arctan2(np.abs(p.imag), dist)
        off = angle > _WEDGE
        rho = float(dist[off].min()) if np.any(off) else math.inf
        if rho <= 0.0:
            return rho, math.inf
        return rho, max(_MIN_START, math.ceil(_SAFETY * self.reach / rho)) if math.isfinite(rho) else _MIN_START

    # -- contour evaluation -----------------------------------------------------------------
    def _interval(self, t_lo: float):
        """Node values of both contours for t in [t_lo, _SPAN t_lo] (cached)."""
        if t_lo in self._intervals:
            return self._intervals[t_lo]
        K = self.spectrum.size
        width = self.reach / t_lo
        # The smallest slow set with every pole near the contour and V'_F < _FAST_COUPLING at its
        # left end (then the fast system alone has no singularity inside): candidate sets grow by
        # doubling the distance from the centre, all tried in one core call.
        factors = _SLOW_REACHES * 2.0 ** np.arange(64)
        counts = np.unique(np.searchsorted(-self.key_sorted, -(self.c - factors * width), side="right"))
        counts = counts[counts < K]
        n_slow = K
        if counts.size:
            out = self._sums(np.full(counts.size, self.c - width, complex), counts)
            ok = np.abs(out[:, 7]) < _FAST_COUPLING
            if np.any(ok):
                n_slow = int(counts[int(np.argmax(ok))])
        contours = []
        ws, omegas = [], []
        for nodes in (_NODES, _CHECK_NODES):
            w, omega = _hyperbola(nodes, t_lo)
            ws.append(w)
            omegas.append(omega)
        out = self._sums(self.c + np.concatenate(ws), n_slow, watch=True)
        U_S, Up_S, V_S, Vp_S, U_F, Up_F, V_F, Vp_F = out.T
        V, Vp = V_S + V_F, Vp_S + Vp_F
        G = U_S + Up_S * V / (1 - Vp) + Up_F * (V_S * (1 - Vp_F) + V_F * Vp_S) / ((1 - Vp) * (1 - Vp_F))
        A = U_F + Up_F * V_F / (1 - Vp_F)
        # relative rounding of G: a few ulps of each sum, amplified where 1 - V' nearly cancels
        # (next to the pole of the slowest coupled mode)
        kappa = 4 + 2 * np.abs(Vp) / np.abs(1 - Vp) + 2 * np.abs(Vp_F) / np.abs(1 - Vp_F)
        start = 0
        for w, omega in zip(ws, omegas):
            part = slice(start, start + w.size)
            contours.append((w, omega * G[part], kappa[part]))
            start += w.size
        value = {"contours": contours, "fast_scale": float(np.max(np.abs(A))) if A.size else 0.0,
                 "scale": float(np.max(np.abs(G))), "t_lo": t_lo}
        self._intervals[t_lo] = value
        return value

    def _interval_start(self, t: int) -> float:
        j = max(0, int(math.floor(math.log(t / self.t0) / math.log(_SPAN) + 1e-12)))
        while self.t0 * _SPAN ** (j + 1) <= t:
            j += 1
        while j > 0 and self.t0 * _SPAN ** j > t:
            j -= 1
        return float(self.t0 * _SPAN ** j)

    def contour(self, t: np.ndarray):
        """``(L_t, error)`` from the contour integral, t >= t0."""
        t = np.asarray(t, dtype=np.int64)
        if t.size > _CHUNK:  # bounded memory for the (steps x nodes) exponentials
            parts = [self.contour(t[i:i + _CHUNK]) for i in range(0, t.size, _CHUNK)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        L = np.empty(t.size)
        err = np.empty(t.size)
        starts = np.array([self._interval_start(int(x)) for x in t])
        for t_lo in np.unique(starts):
            sel = starts == t_lo
            iv = self._interval(float(t_lo))
            tt = t[sel].astype(float)
            values, moduli = [], []
            for w, wG, kappa in iv["contours"]:
                expo = np.outer(tt, w) + (self.c * tt)[:, None]
                with np.errstate(over="ignore", invalid="ignore"):
                    terms = wG[None, :] * np.exp(expo)
                    values.append(np.sum(terms, axis=1).imag)
                    moduli.append(np.abs(terms) @ kappa)
            main, check = values
            with np.errstate(over="ignore", invalid="ignore"):
                e_quad = np.abs(main - check)
                # rounding of the nodes' values and of the exponent c t
                e_round = 8 * _EPS * moduli[0] + 2 * _EPS * np.abs(self.c * tt * main)
                e_fast = iv["fast_scale"] * np.exp(self.c * tt - _SLOW_REACHES * self.reach * tt / t_lo) \
                    * self.reach * tt / t_lo
                e_off = (self.L0 + iv["scale"] * self.reach / t_lo) * np.exp((self.c - self.rho_off) * tt) \
                    if math.isfinite(self.rho_off) else 0.0 * tt
            # only a growing run (c > 0) can overflow: its loss is then beyond any threshold
            if self.c <= 0 and not np.all(np.isfinite(main)):
                raise RuntimeError("loss_at: a contour node hit a singularity of the generating function; "
                                   "please report this problem")
            L[sel] = np.where(np.isfinite(main), main, math.inf)
            err[sel] = np.where(np.isfinite(main), e_quad + e_round + e_fast + e_off, 0.0)
        return L, err

    # -- the driver -------------------------------------------------------------------------
    def _threshold(self) -> float:
        return DIVERGENCE_FACTOR * self.L0

    def _exact(self, T: int):
        curve = loss_curve(self.algo, self.spectrum, self.noise, T, progress=self.progress,
                           threads=self.threads or None)
        return curve.loss, curve.diverged_at  # the core decides divergence (inf from there on)

    def loss_at(self, steps: np.ndarray, exact_until: Optional[int]) -> LossAt:
        n = steps.size
        t_max = int(steps[-1])
        if self.trivial:  # no signal: L_t = 0 for every t
            return LossAt(steps, np.zeros(n), np.zeros(n), None, t_max, 0.0)
        t0 = self.t0
        engine = max(2 * t0, exact_until or 0) if math.isfinite(t0) else math.inf
        if engine >= t_max:
            return self._exact_only(steps, t_max)
        if engine > _ENGINE_MAX:
            raise ValueError(
                f"loss_at cannot reach step {t_max}: the algorithm has oscillating modes (complex or negative "
                f"eigenvalues of its moment maps) that decay only like exp(-{self.rho_off:.3g} t) relative to "
                f"the loss, so the exact recursion would have to run to step ~{engine:.3g} (more than "
                f"{_ENGINE_MAX:.0e}); use loss_curve with fewer steps")
        engine = int(engine)
        exact, div = self._exact(engine)
        if div is not None:
            return self._from_exact(steps, exact, div, engine)
        exact_error = self._exact_error(exact)
        # hand-over check: the contour against the recursion on [t0, engine]
        t_check = np.unique(np.round(np.geomspace(t0, engine, 12)).astype(np.int64))
        Lc, Ec = self.contour(t_check)
        mismatch = np.abs(Lc - exact[t_check])
        tol = _CHECK_FACTOR * Ec + 16 * exact_error[t_check]
        inflate = 0.0
        if not np.all(mismatch <= tol):
            inflate = float(np.max(mismatch / np.maximum(np.abs(exact[t_check]), 1e-300)))
            warnings.warn(f"loss_at: the contour integral differs from the exact recursion by up to {inflate:.1e} "
                          f"(relative) at steps {t0}..{engine}; errors are inflated accordingly. Please report "
                          f"this problem.", RuntimeWarning, stacklevel=3)
        loss = np.empty(n)
        error = np.empty(n)
        early = steps <= engine
        loss[early] = exact[steps[early]]
        error[early] = exact_error[steps[early]]
        late = ~early
        L, E = self.contour(steps[late])
        if inflate:
            E = np.maximum(E, inflate * np.abs(L))
        loss[late], error[late] = L, E
        diverged_at = None
        with np.errstate(invalid="ignore"):
            over = late & (~np.isfinite(loss) | (loss > self._threshold()))
        if np.any(over):
            i = int(np.argmax(over))
            lo = int(steps[i - 1]) if i > 0 and steps[i - 1] > engine else engine
            diverged_at = self._first_crossing(lo, int(steps[i]))
            after = steps >= diverged_at
            loss[after], error[after] = math.inf, 0.0
        # (near the bottom of the double range the values are subnormal: no relative accuracy to keep)
        normal = np.isfinite(loss) & (np.abs(loss) > _TINY)
        rel = np.zeros(n)
        rel[normal] = error[normal] / np.abs(loss[normal])
        if np.any(rel > _WARN_RELATIVE_ERROR):
            i = int(np.argmax(rel))
            warnings.warn(f"loss_at: estimated relative error {rel[i]:.1e} at step {steps[i]} exceeds "
                          f"{_WARN_RELATIVE_ERROR:g} (see LossAt.error); please report this problem",
                          RuntimeWarning, stacklevel=3)
        return LossAt(steps, loss, error, diverged_at, engine, self.c)

    def _first_crossing(self, lo: int, hi: int) -> int:
        """The first t in (lo, hi] with L_t over the divergence threshold, by bisection
        (L_lo is below it, L_hi above; assumes one crossing in between)."""
        thr = self._threshold()
        while hi - lo > 1:
            mid = (lo + hi) // 2
            L, _ = self.contour(np.array([mid]))
            if not np.isfinite(L[0]) or L[0] > thr:
                hi = mid
            else:
                lo = mid
        return hi

    @staticmethod
    def _exact_error(L: np.ndarray) -> np.ndarray:
        """Rounding of the recursion: a few ulps per step, accumulating like sqrt(t) (measured
        against 40-digit arithmetic: 7e-13 relative at t = 2e4 on an oscillating problem)."""
        t = np.arange(L.size)
        with np.errstate(invalid="ignore"):
            return 32 * _EPS * (1 + np.sqrt(t)) * np.abs(L)

    def _exact_only(self, steps, t_max):
        T = t_max
        if t_max > _ENGINE_MAX:
            # Only a growing off-axis mode lets the recursion end early (at the divergence).
            growth = self.off_axis_growth
            if not growth > _GROWTH_FLOOR:
                raise ValueError(
                    f"loss_at cannot reach step {t_max}: the algorithm has modes off the real axis that do not "
                    f"decay (eigenvalues of modulus 1 of a moment map, e.g. an undamped rotating memory), so "
                    f"only the exact recursion applies, and it is limited to {_ENGINE_MAX:.0e} steps here; use "
                    f"loss_curve")
            T = min(_ENGINE_MAX, math.ceil(_GROWTH_STEPS / growth) + _MIN_START)
        exact, div = self._exact(T)
        if div is None and T < t_max:
            raise ValueError(
                f"loss_at cannot reach step {t_max}: the loss grows through oscillating modes (exp({growth:.3g} t)) "
                f"but has not diverged by step {T}; use loss_curve")
        return self._from_exact(steps, exact, div, T)

    def _from_exact(self, steps, exact, div, T):
        n = steps.size
        loss = np.full(n, math.inf)
        error = np.zeros(n)
        inside = steps <= T
        if div is not None:
            inside &= steps < div
        loss[inside] = exact[steps[inside]]
        error[inside] = self._exact_error(exact)[steps[inside]]
        return LossAt(steps, loss, error, div, int(T), self.c)
