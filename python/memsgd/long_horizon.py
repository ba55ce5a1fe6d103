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

The affine model (docs/math.md §9; docs/long-horizons.md, "Floors"). Label noise is a constant
source per step, weight decay ``rho`` a shift of the step matrices (``S_k`` at ``lambda_k + rho``) and
a force carried by first moments; both put a pole at z = 1 (s = 0) whose residue is the floor
``L_inf``. For a converging run loss_at inverts *around the fixed point*
(``memsgd._affine_states``): the fixed point ``(X*_k, y*_k, l*)`` of the coupled system comes from the
solves at z = 1 (``L_inf`` equals ``stability(...).noise_floor``), the deviations from it obey the
plain renewal pair without sources from the initial state ``(c^2 E11 - X*_k, -c^2 e_1 - y*_k)``, so
``L_t = L_inf + (transient)`` with the transient's generating function regular at z = 1: the contour
keeps its relative accuracy while it dies (``LossAt.excess``). Weight decay is taken directly on the
original algorithm, not through the memory-(M+1) reduction of ``memsgd._affine``, whose eigenvalue
1 rounding would put a pole at s = O(eps) (an error ``e^(eps t)``, 1e-4 at t = 1e12). The first
moments' poles ``log nu`` of underdamped components lie to the right of the real singularities;
around a floor they, like any off-axis singularity with ``Re s < 0``, may be left out once they are
``e^-86`` below the floor (``_contour_start``). A run that does not converge is integrated with
its sources in place (their pole inside the contour).

Error estimate: ``|L^(38) - L^(30)|`` (two contours), plus 8 eps times the sum of the moduli of
the quadrature terms (amplified where 1 - V' nearly cancels), plus the effect of the slow poles'
uncertainty (eps times their componentwise condition: relative for a slow mode at small lambda,
absolute at a stability edge, where it grows like t), plus bounds ``e^(-reach t / t_lo)`` and
``e^(-rho t)`` on the left-out parts. Measured accuracy: see docs/long-horizons.md (about 1e-12
relative against the exact recursion on held-out problems).

The contour resolves ``L_t`` relative to ``e^(c t) L_0`` only. Every value is judged by its
estimate: where it exceeds 1e-8 relative, the recursion runs further and serves the step (up to
``_ENGINE_MAX`` steps), and the hand-over moves until the contour is trusted and agrees with the
recursion there; beyond, a value with no correct digit raises and a rough one warns.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import _core
from ._affine import decayed_problem, has_weight_decay
from ._affine_states import AffineStates, deviation_states, fixed_point, source_states
from ._packing import noise_arrays, parameter_arrays
from ._piece_states import Maps, contour_state, run
from ._progress import watched
from ._smooth_pieces import frozen_pieces, graded_boundaries
from ._stationary import spectrum_and_noise, stationary
from ._validation import nonnegative_int, progress_flag, step_array, thread_count
from .algorithms import MemoryAlgorithm
from .dynamics import loss_curve
from .noise import Noise
from .schedules import Schedule
from .spectrum import Spectrum

__all__ = ["DIVERGENCE_FACTOR", "MAX_STEP", "LossAt", "loss_at", "supports_loss_at", "relative_errors",
           "accuracy_warning", "is_accuracy_warning"]

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
# A failed hand-over moves it this many times further (the recursion runs on; <= _ENGINE_MAX).
_HAND_OVER_GROWTH = 4
# Steps evaluated together on a contour.
_CHUNK = 4096
_EPS = np.finfo(float).eps
# The accuracy aimed at: a contour value whose estimated relative error exceeds this is replaced
# by the recursion's wherever the recursion reaches (and is more accurate there).
_TRUST_RELATIVE_ERROR = 1e-8
# loss_at warns when an estimated relative error exceeds this.
_WARN_RELATIVE_ERROR = 1e-6
# Absolute errors below this are not resolved (near the bottom of the double range).
_ABS_FLOOR = 1e-300
# The error of the slow poles' positions enters as sum_j |omega_j| err_j |e^(w_j t)| times this
# (a bound: at the stability edge it exceeds the true error 280-30000 fold, docs/long-horizons.md,
# "Accuracy"; the per-node pole shifts of the solves do not add up in the sum).
_POLE_FACTOR = 1.0
# Rounding of the exact recursion, relative to the loss's envelope: eps (_ROUND_SQRT (1 + sqrt t)
# + _ROUND_LINEAR t). The linear part is the drift of a slow mode whose multiplier carries one
# rounding (measured against an 80-bit recursion up to t = 1e5: at most 0.8 eps t, single slow
# modes of SGD, heavy ball, Nesterov and AM1; tests/test_long_horizon.py); the margin is 5x.
_ROUND_SQRT = 32.0
_ROUND_LINEAR = 4.0
# The envelope of an oscillating loss at step t: max |L| over half a period (pi / theta for the
# slowest rotation theta of a relevant pole) before and after t, whichever is smaller; at most
# this many steps.
_ENVELOPE_MAX_WINDOW = 1024
# A piece's state at its end comes from the recursion up to this step at least, and never beyond
# the second (numpy, O(n K P^2)): past it only the contour.
_STATE_RECURSION = 1024
_STATE_RECURSION_MAX = 200_000
# approximate= at least: at 2 and 4 pieces per e-fold the estimate missed AM1's error (4x).
_SMOOTH_MIN_PER_EFOLD = 8
# A smooth schedule (approximate=) comes from the exact recursion up to this step by default.
_SMOOTH_EXACT = 10 ** 6
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
        warnings: the messages [`loss_at`][memsgd.loss_at] warned with (an estimated relative error above
            1e-6 at some steps, naming them; a hand-over that never matched the recursion).
        floor: the limit ``L_inf`` that the contour subtracted analytically (label noise or weight
            decay on a converging run: ``StabilityReport.noise_floor``, computed here from the
            generating functions at z = 1); 0 when nothing was subtracted (the plain model, or a
            run that does not converge).
        excess: (n,) ``L_t - floor``; from the contour it is the integrated transient itself, so it
            keeps its relative accuracy while it dies (``loss`` holds it only to ``error``, which is
            at least ``eps * floor``); from the recursion ``loss - floor``.

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
    warnings: tuple = field(default=())
    floor: float = field(default=0.0)
    excess: Optional[np.ndarray] = field(default=None)

    def __post_init__(self):
        if self.excess is None:
            object.__setattr__(self, "excess", self.loss - self.floor)

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
    [`MemoryAlgorithm`][memsgd.MemoryAlgorithm] (not a Schedule; label noise, weight decay, readout and
    preconditioner allowed, but not a preconditioner together with weight decay), or a
    [`Schedule.piecewise`][memsgd.schedules.Schedule.piecewise] of pieces without readout and preconditioner
    (exact, each piece by its contour: about one stationary run per piece), and a [`Noise`][memsgd.Noise] with one batch
    size. A smooth Schedule is False: it needs ``approximate=`` (an approximation, not the exact route a sweep
    takes).

    Examples:
        >>> import memsgd
        >>> memsgd.supports_loss_at(memsgd.heavy_ball(0.1, 0.9), memsgd.Noise.gaussian(10))
        True
        >>> memsgd.supports_loss_at(memsgd.schedules.am1_power_law(1.0, 0.3), memsgd.Noise.gaussian(10))
        False
    """
    if not isinstance(noise, Noise) or noise.per_step:
        return False
    if isinstance(algorithm, Schedule):
        pieces = algorithm.pieces
        return pieces is not None and all(not np.any(a.readout) and not a.preconditioner for a, _ in pieces)
    return isinstance(algorithm, MemoryAlgorithm) and not (algorithm.preconditioner and has_weight_decay(algorithm))


def loss_at(algorithm: MemoryAlgorithm, spectrum: Spectrum, noise: Noise, steps, *,
            exact_until: Optional[int] = None, progress: Optional[bool] = None,
            threads: Optional[int] = None, warn: bool = True, approximate: Optional[int] = None,
            breaks=()) -> LossAt:
    """Exact expected loss ``L_t`` of mini-batch SGD with memory at the given steps, for any t up
    to 10^12, at a cost that does not grow with t (docs/long-horizons.md).

    ``L_t`` is the t-th coefficient of ``L(z) = U(z) + U'(z) V(z) / (1 - V'(z))`` (docs/math.md §8,
    "Generating functions"), recovered by a contour integral in ``s = -log z``; steps below the
    contour's start ``t0`` come from the exact recursion. With label noise or weight decay
    (docs/math.md §9) the sources add ``W(z) / (1 - z)``-type terms, a pole at z = 1 whose residue is
    the floor ``L_inf``: a converging run is inverted around its fixed point, ``L_t = L_inf + (the
    transient)``, with ``L_inf`` exact (``LossAt.floor``, = ``stability(...).noise_floor``) and the
    transient integrated with its own relative accuracy (``LossAt.excess = L_t - L_inf``). The values are those of
    [`memsgd.loss_curve`][memsgd.loss_curve] (same spectrum nodes and weights) to the returned error estimate,
    typically 1e-12 relative and aimed at 1e-8 at worst: a step where the contour's estimate is
    worse (a loss far below ``e^(c t) L_0``: a slow mode with a tiny amplitude, a mode at the
    stability edge) comes from the recursion too, up to step 2e7 (docs/long-horizons.md,
    "Accuracy"). Beyond that a value whose estimate exceeds 1e-6 relative warns
    (``RuntimeWarning``, also in ``LossAt.warnings``) and one with no correct digit raises.

    Args:
        algorithm: a stationary [`MemoryAlgorithm`][memsgd.MemoryAlgorithm] (any memory M, any e; weight decay,
            a readout or EMA, a preconditioner, but not a preconditioner together with weight decay),
            or a [`Schedule.piecewise`][memsgd.schedules.Schedule.piecewise] of such pieces without readout and
            preconditioner (each piece from the state the previous one hands over; docs/long-horizons.md,
            "Piecewise-stationary schedules").
        spectrum: finite, infinite (quadrature weights) or empirical.
        noise: SE noise with one batch size (``noise.per_step`` is not supported), label noise allowed.
        steps: strictly increasing integers in [0, 10^12] (integral floats such as 1e9 accepted).
        exact_until: run the exact recursion up to this step at least (default: ``2 t0``, with
            ``t0`` the first step where the contour is valid, ~100 / (decay rate of the slowest
            oscillating mode); at least 128; further where the contour's estimate is not good
            enough, see above; ``LossAt.exact_until`` says where it ended).
        progress: as in [`memsgd.loss_curve`][memsgd.loss_curve] (for the recursion part and long contour sums).
        threads: at most this many threads (default: all cores); the values do not depend on it.
        warn: emit the messages of ``LossAt.warnings`` as ``RuntimeWarning`` (False: only keep
            them there, e.g. in a worker process whose warnings would be lost).
        approximate: for a smooth [`Schedule`][memsgd.schedules.Schedule] (parameters changing every step: cosine, WSD
            cooldowns, AM1, DANA-decaying), ``m`` >= 8 pieces per e-fold (16 recommended): steps up to ``exact_until``
            (default ``min(10^6, last step)``) come from the exact recursion, later steps from a
            piecewise-stationary approximation graded in log-distance to step 0, to the evaluated
            step and to the ``breaks``, at ``m/2`` and ``m`` pieces per e-fold, Richardson-extrapolated
            (``(4 L_m - L_{m/2}) / 3``) with the error estimate ``|L_m - L_{m/2}|``
            (docs/long-horizons.md, "Smooth schedules"). None (default): a smooth schedule is refused.
        breaks: steps where the schedule has a kink (WSD's cooldown start, a warmup's end); each is a
            piece boundary with pieces graded around it (only with ``approximate``).

    Cost: the recursion up to ``2 t0`` plus O(K P^3) per contour node, ~70 nodes per decade of
    requested steps (P = (M+1)(M+2)/2). A diverging algorithm gets ``inf`` from its divergence on
    (``diverged_at``), as in [`memsgd.loss_curve`][memsgd.loss_curve].

    Raises:
        ValueError: for a step the contour cannot resolve beyond the recursion's reach (its
            error estimate at least the value), naming the step; and for horizons that only
            the recursion could reach (undamped oscillating modes).

    Examples:
        >>> import memsgd as ms
        >>> r = ms.loss_at(ms.heavy_ball(0.1, 0.9), ms.Spectrum.power_law(1.5, 0.75, head=256),
        ...                ms.Noise.gaussian(10), [10**3, 10**9])
        >>> bool(r.error[-1] < 1e-8 * r.loss[-1])
        True
        >>> spec, noise = ms.Spectrum.power_law(2.0, 1.0, size=200), ms.Noise.gaussian(8, label_noise=0.1)
        >>> algo = ms.heavy_ball(0.2, 0.8, weight_decay=0.01)
        >>> r = ms.loss_at(algo, spec, noise, [10**3, 10**12])
        >>> bool(abs(r.loss[-1] / ms.stability(algo, spec, noise).noise_floor - 1) < 1e-12)
        True

        A step decay (``Schedule.piecewise``) is exact; a cosine schedule goes through
        ``approximate=`` and its Richardson error estimate bounds the error:

        >>> spec, noise = ms.Spectrum.power_law(2.0, 1.0, size=100), ms.Noise.gaussian(8)
        >>> decay = ms.Schedule.piecewise([(ms.heavy_ball(0.2, 0.8), 1000), (ms.heavy_ball(0.02, 0.8), None)])
        >>> r = ms.loss_at(decay, spec, noise, [500, 2000, 5000])
        >>> exact = ms.loss_curve(decay, spec, noise, 5000).loss[[500, 2000, 5000]]
        >>> bool(abs(r.loss / exact - 1).max() < 1e-10)
        True
        >>> cosine = ms.schedules.torch_sgd(ms.lr_shapes.cosine(0.2, 20000).values(20000))
        >>> r = ms.loss_at(cosine, spec, noise, [20000], approximate=16, exact_until=1000, warn=False)
        >>> exact = ms.loss_curve(cosine, spec, noise, 20000).loss[-1]
        >>> bool(abs(r.loss[-1] - exact) <= r.error[-1] < 1e-4 * exact)
        True
    """
    pieces = getattr(algorithm, "pieces", None) if isinstance(algorithm, Schedule) else None
    if approximate is not None or (breaks is not None and len(breaks)):
        if not isinstance(algorithm, Schedule) or pieces is not None:
            raise ValueError("approximate and breaks must be left out for a stationary algorithm or a "
                             "Schedule.piecewise (loss_at is exact there); they are for a smooth Schedule")
        return _loss_at_smooth(algorithm, spectrum, noise, steps, exact_until, approximate, breaks, progress,
                               threads, warn)
    if pieces is not None and len(pieces) > 1:
        return _loss_at_pieces(algorithm, spectrum, noise, steps, exact_until, progress, threads, warn)
    if pieces is not None:
        algorithm = pieces[0][0]
    algorithm, spectrum, noise = _check_problem(algorithm, spectrum, noise)
    steps = step_array(steps, "steps", max_step=MAX_STEP)
    if exact_until is not None:
        exact_until = nonnegative_int(exact_until, "exact_until")
        if exact_until > _ENGINE_MAX:  # the cause is the argument, not the algorithm's modes
            raise ValueError(f"exact_until must be <= {_ENGINE_MAX:.0e} (the exact recursion's limit in loss_at; "
                             f"for every step up to {exact_until:.3g} use loss_curve), got {exact_until}")
    progress_flag(progress)
    threads = thread_count(threads)
    if not isinstance(warn, bool):
        raise TypeError(f"warn must be True or False, got {type(warn).__name__}")
    result = _Problem(algorithm, spectrum, noise, progress, threads).loss_at(steps, exact_until)
    if warn:
        for message in result.warnings:
            warnings.warn(message, RuntimeWarning, stacklevel=2)
    return result


def _loss_at_pieces(schedule, spectrum, noise, steps, exact_until, progress, threads, warn) -> LossAt:
    """loss_at of a piecewise-stationary schedule (``Schedule.piecewise``): piece j by its own
    contour (and recursion for its first steps) from the per-component state at its first step
    ``s_j``, which piece j-1 hands over (docs/long-horizons.md, "Piecewise-stationary schedules").

    Errors: each piece's own estimate, plus the hand-over's: the state's estimated error, measured
    as ``eps_j = sum m lambda max|dX_k| / sum m lambda max|X_k|``, moves later losses by about
    ``eps_j`` relative (the loss is linear in the state); the estimate adds ``4 eps_j |L_t|``."""
    for i, (algo, _) in enumerate(schedule.pieces):
        _check_problem(algo, spectrum, noise)
        if np.any(algo.readout) or algo.preconditioner:
            raise ValueError(f"algorithm pieces[{i}] must have no readout and no preconditioner for loss_at "
                             f"of a piecewise schedule; use loss_curve")
    steps = step_array(steps, "steps", max_step=MAX_STEP)
    if exact_until is not None:
        raise ValueError("exact_until must be None for a piecewise schedule (each piece chooses its own "
                         "hand-over), got " + repr(exact_until))
    progress_flag(progress)
    threads = thread_count(threads)
    if not isinstance(warn, bool):
        raise TypeError(f"warn must be True or False, got {type(warn).__name__}")
    lam, m, c2 = spectrum.eigenvalues, spectrum.weights, spectrum.coefficients2
    ml = m * lam
    N = schedule.memory + 1
    second = np.zeros((lam.size, N * (N + 1) // 2))
    second[:, 0] = c2
    first = None
    if schedule.pieces[0][0].weight_decay:
        first = np.zeros((lam.size, N))
        first[:, 0] = -c2
    L0 = spectrum.initial_loss
    n = steps.size
    loss, error = np.full(n, math.inf), np.zeros(n)
    diverged_at, exact_until_0, rate, floor, messages = None, 0, 0.0, 0.0, []
    handed = 0.0      # relative error of the state handed over (eps_j above)
    starts = list(schedule._starts) + [math.inf]
    for j, (algo, _length) in enumerate(schedule.pieces):
        s0, s1 = int(starts[j]), starts[j + 1]
        here = (steps >= s0) & (steps < s1)
        later = bool(np.any(steps >= s1))
        if not np.any(here) and not later:
            break
        if not np.any(here) and s1 - s0 <= _STATE_RECURSION:
            # a short piece with no requested step: its state from the recursion alone, as state_at
            # would give it, without the contour's analysis (the centre's bisection is most of a
            # piece's cost; smooth schedules are mostly such pieces)
            second, first, e2, div = _short_piece_state(algo, spectrum, noise, second, first, L0, int(s1 - s0))
            if div is not None:
                diverged_at = s0 + div
                break
            scale = float(np.dot(ml, np.abs(second).max(axis=1)))
            handed += float(np.dot(ml, e2.max(axis=1))) / scale if scale > 0 else 0.0
            continue
        problem = _Problem(algo, spectrum, noise, progress, threads, initial=(second, first, L0, j == 0))
        if np.any(here):
            r = problem.loss_at(steps[here] - s0, None)
            loss[here] = r.loss
            error[here] = r.error + 4 * handed * np.where(np.isfinite(r.loss), r.loss, 0.0)
            messages += [msg for msg in r.warnings if not is_accuracy_warning(msg)]
            rate, floor = r.rate, r.floor
            if j == 0:
                exact_until_0 = r.exact_until
            if r.diverged_at is not None:
                diverged_at = s0 + r.diverged_at
                break
        if later:
            second, first, e2, _, div = problem.state_at(int(s1 - s0))
            if div is not None:
                diverged_at = s0 + div
                break
            scale = float(np.dot(ml, np.abs(second).max(axis=1)))
            own = float(np.dot(ml, e2.max(axis=1))) / scale if scale > 0 else 0.0
            handed = handed + own
    if diverged_at is not None:
        gone = steps >= diverged_at
        loss[gone], error[gone] = math.inf, 0.0
    rel = relative_errors(loss, error)
    message = accuracy_warning(rel, lambda i: f"step {int(steps[i])}")
    if message is not None:
        messages.append(message)
    result = LossAt(steps, loss, error, diverged_at, exact_until_0, rate, tuple(messages), floor)
    if warn:
        for msg in result.warnings:
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
    return result


def _short_piece_state(algorithm, spectrum, noise, second, first, L0, n):
    """``(second, first, second_error, diverged_at)`` after n steps of a stationary piece from the
    given per-component states, by the recursion (what ``_Problem.state_at`` does for n <= 1024)."""
    algo, spec, rho = decayed_problem(algorithm, spectrum)
    maps = Maps(algo, spec.eigenvalues, spec.coefficients2, rho, noise.self_noise, noise.coupling, noise.label_source)
    threshold = DIVERGENCE_FACTOR * L0 if L0 > 0 else math.inf
    _, x, y, div = run(maps, spec.weights, second, first, n, threshold)
    return x, y, _Problem._rounding(n) * np.abs(x), div


def _loss_at_smooth(schedule, spectrum, noise, steps, exact_until, approximate, breaks, progress, threads,
                    warn) -> LossAt:
    """loss_at of a smooth Schedule (``approximate=m``): the recursion up to ``exact_until``, beyond
    it at each step t the frozen schedules of ``memsgd._smooth_pieces`` at ``m/2`` and ``m`` pieces
    per e-fold (each evaluated exactly, ``_loss_at_pieces``), Richardson-extrapolated for a
    second-order error, ``(4 L_m - L_{m/2}) / 3``, with the estimate ``|L_m - L_{m/2}|`` (three
    times the correction: the measured convergence is 2 to 3rd order, docs/long-horizons.md, "Smooth
    schedules") plus both levels' own estimates."""
    if approximate is None:
        raise ValueError("approximate must be a number of pieces per e-fold (an integer >= 8) when breaks "
                         "are given")
    if isinstance(approximate, bool) or not isinstance(approximate, (int, np.integer)):
        raise TypeError(f"approximate must be an integer (pieces per e-fold), got {type(approximate).__name__}")
    if approximate < _SMOOTH_MIN_PER_EFOLD:
        raise ValueError(f"approximate must be >= {_SMOOTH_MIN_PER_EFOLD} (pieces per e-fold; the coarse level has "
                         f"half, and coarser levels are not yet in the asymptotic regime the estimate assumes), "
                         f"got {approximate}")
    m = int(approximate)
    if isinstance(breaks, (str, bytes)) or not isinstance(breaks, (list, tuple, np.ndarray)):
        raise TypeError(f"breaks must be a sequence of steps, got {type(breaks).__name__}")
    breaks = tuple(nonnegative_int(b, "breaks") for b in breaks)
    steps = step_array(steps, "steps", max_step=MAX_STEP)
    if np.ndim(schedule.weight_decay) > 0:
        raise ValueError("algorithm must have one weight_decay for every step for loss_at's approximation "
                         "(per-step weight decay: use loss_curve)")
    if schedule.length is not None and steps[-1] > schedule.length:
        raise ValueError(f"steps must be <= the schedule's length {schedule.length}, got {int(steps[-1])}")
    exact_until = min(int(steps[-1]), _SMOOTH_EXACT) if exact_until is None else \
        min(nonnegative_int(exact_until, "exact_until"), int(steps[-1]))
    if exact_until > _ENGINE_MAX:
        raise ValueError(f"exact_until must be <= {_ENGINE_MAX:.0e} (the exact recursion's limit in loss_at; "
                         f"for every step up to {exact_until:.3g} use loss_curve), got {exact_until}")
    progress_flag(progress)
    threads = thread_count(threads)
    if not isinstance(warn, bool):
        raise TypeError(f"warn must be True or False, got {type(warn).__name__}")
    n = steps.size
    loss, error = np.full(n, math.inf), np.zeros(n)
    diverged_at, messages = None, []
    early = steps <= exact_until
    if np.any(early):
        curve = loss_curve(schedule, spectrum, noise, int(steps[early][-1]), progress=progress,
                           threads=threads or None)
        loss[early] = curve.loss[steps[early]]
        error[early] = _Problem._rounding(steps[early]) * np.abs(loss[early])
        diverged_at = curve.diverged_at
    for i in np.flatnonzero(~early):
        if diverged_at is not None:
            break
        t = int(steps[i])
        levels = []
        for per_efold in (m // 2, m):
            frozen = Schedule.piecewise(frozen_pieces(schedule, graded_boundaries(t, per_efold, breaks)))
            levels.append(_loss_at_pieces(frozen, spectrum, noise, np.array([t]), None, progress, threads or None,
                                          False))
        (coarse, fine) = levels
        if coarse.diverged or fine.diverged:
            messages.append(f"loss_at: the piecewise-stationary approximation diverges by step {t}; its "
                            f"steps from there on are inf (use loss_curve to locate the divergence)")
            loss[i:], error[i:] = math.inf, 0.0
            break
        L1, L2 = float(coarse.loss[0]), float(fine.loss[0])
        loss[i] = (4 * L2 - L1) / 3
        error[i] = abs(L2 - L1) + float(coarse.error[0]) + float(fine.error[0])
    if diverged_at is not None:
        gone = steps >= diverged_at
        loss[gone], error[gone] = math.inf, 0.0
    message = accuracy_warning(relative_errors(loss, error), lambda i: f"step {int(steps[i])}")
    if message is not None:
        messages.append(message)
    result = LossAt(steps, np.maximum(loss, 0.0), error, diverged_at, exact_until, 0.0, tuple(messages))
    if warn:
        for msg in result.warnings:
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
    return result


def relative_errors(loss: np.ndarray, error: np.ndarray) -> np.ndarray:
    """``error / |loss|`` as loss_at judges it: errors below 1e-300 are not resolved (0), a
    negative loss is at least 100% off, inf losses (a divergence) have none."""
    loss, error = np.asarray(loss, dtype=float), np.asarray(error, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rel = error / np.maximum(np.abs(loss), _ABS_FLOOR)
    rel = np.where(error <= _ABS_FLOOR, 0.0, rel)
    rel = np.where(loss < -_ABS_FLOOR, np.maximum(rel, 1.0), rel)
    return np.where(np.isinf(loss), 0.0, np.nan_to_num(rel, nan=np.inf))


_ACCURACY_WARNING = "loss_at: estimated relative error above"


def is_accuracy_warning(message: str) -> bool:
    """Whether ``message`` is (or ends in) the warning of ``accuracy_warning``."""
    return _ACCURACY_WARNING in message


def accuracy_warning(rel: np.ndarray, describe) -> Optional[str]:
    """The warning for estimated relative errors ``rel`` above 1e-6 (None if there are none);
    ``describe(i)`` names entry i (a step, or a grid point and a step)."""
    over = np.flatnonzero(rel.ravel() > _WARN_RELATIVE_ERROR)
    if over.size == 0:
        return None
    worst = int(over[np.argmax(rel.ravel()[over])])
    first = int(over[0])
    where = f"worst {rel.ravel()[worst]:.1e} at {describe(worst)}"
    if first != worst:
        where += f", first at {describe(first)} ({rel.ravel()[first]:.1e})"
    return (f"{_ACCURACY_WARNING} {_WARN_RELATIVE_ERROR:g} at {over.size} of {rel.size} "
            f"values ({where}); the estimates are in LossAt.error (a sweep's loss_error)")


def _check_problem(algorithm, spectrum, noise):
    algorithm = stationary(algorithm, "loss_at inverts the generating function of constant parameters",
                           "use loss_curve for a Schedule")
    spectrum_and_noise(spectrum, noise, "loss_at (a per-step batch size makes the dynamics non-stationary)",
                       "use loss_curve")
    decayed_problem(algorithm, spectrum)   # refuses a preconditioner with weight decay, in one line
    return algorithm, spectrum, noise


# ------------------------------------------------------------------------------------------
# the contour

@functools.cache
@functools.lru_cache(maxsize=256)
def _hyperbola_shape(wedge: float = _WEDGE):
    """``(alpha, d, a)`` of the hyperbola ``w(u) = mu (1 + sin(i u - alpha))`` for t in
    [t_lo, span t_lo] with singularities within ``wedge`` of the negative real axis.

    The trapezoid rule in u converges like ``e^(-2 pi d / h)`` with ``d = pi/2 - alpha - wedge`` the
    half-width of the strip mapped outside the singular sector, ``h = a / N``; balancing it with
    the growth ``e^(mu span t_lo)`` on the other side of the strip and with the truncation
    ``e^(mu t_lo (1 - sin(alpha) cosh a))`` gives ``cosh a = (1 + span d / (alpha - d)) / sin(alpha)``
    and ``mu = 2 pi (alpha - d) N / (span t_lo a)`` (Weideman & Trefethen 2007, there with
    ``wedge = 0``); alpha maximises the rate ``2 pi d / a`` (~0.94 per node at the default wedge).
    Cached: it depends on the wedge alone, and every contour window asks for it.
    """
    span = _SPAN
    alphas = np.linspace((math.pi / 2 - wedge) / 2 + 1e-6, math.pi / 2 - wedge - 1e-6, 20001)
    d = math.pi / 2 - alphas - wedge
    a = np.arccosh((1 + span * d / (alphas - d)) / np.sin(alphas))
    i = int(np.argmax(2 * math.pi * d / a))
    return float(alphas[i]), float(d[i]), float(a[i])


def _hyperbola(nodes: int, t_lo: float, wedge: float = _WEDGE):
    """Nodes ``w_j`` and weights ``omega_j`` with ``f(t) ~= Im sum_j omega_j F(w_j) e^(w_j t)`` for
    ``f(t) = (1/2 pi i) int F(w) e^(w t) dw`` and real f (upper half of the hyperbola, midpoint rule)."""
    alpha, d, a = _hyperbola_shape(wedge)
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
    def __init__(self, algorithm: MemoryAlgorithm, spectrum: Spectrum, noise: Noise, progress, threads: int = 0,
                 initial=None):
        # the recursion part runs the problem as given (loss_curve applies the reductions itself)
        self.original = (algorithm, spectrum)
        # a piece of a piecewise schedule: (second (K, P), first (K, N) or None, L_0 of the whole run,
        # whether this is the run's start) per-component states at the piece's step 0 (module
        # memsgd._piece_states); None: the run's start, not a piece
        self.initial = initial
        # the contour: readout and preconditioner reduced (docs/math.md §9), weight decay kept apart
        algo, spectrum, rho = decayed_problem(algorithm, spectrum)
        self.algo, self.spectrum, self.noise, self.progress = algo, spectrum, noise, progress
        self.threads = threads
        lam, m, c2 = spectrum.eigenvalues, spectrum.weights, spectrum.coefficients2
        self.L0 = spectrum.initial_loss
        self.threshold_L0 = self.L0   # the divergence rule's L_0: the whole run's
        if initial is not None:
            self.L0 = 0.5 * float(np.dot(m * lam, initial[0][:, 0]))
            self.threshold_L0 = initial[2]
        self.coupling = noise.coupling
        self.rho, self.label = float(rho), noise.label_source
        # the affine model (label noise, weight decay): per-component states, module _affine_states
        self.affine = self.rho != 0.0 or self.label != 0.0 or initial is not None
        self.wu = 0.5 * m * lam if self.affine else 0.5 * m * lam * c2
        self.wv = self.coupling * m * lam ** 2
        # the stationary maps' (algorithm, noise) entries: one row, one entry (they read self_noise)
        self.args = (parameter_arrays(algo, 1), noise_arrays(noise, 1))
        # (K, P) poles s = log(mu); each component's slow real delta = mu - 1 and its uncertainty
        self.poles, self.slow_delta, self.slow_error = _core.moment_poles(lam, *self.args, shift=self.rho)
        self.first_slow = (None, None)
        if self.rho:
            # weight decay: the first moments' poles log(nu) (nu eigenvalues of S_k at lambda + rho) are
            # singularities too, where w*_k != 0
            first, fdelta, ferror = _core.moment_poles(lam, *self.args, shift=self.rho, first_moments=True)
            first[c2 == 0] = -math.inf
            self.poles = np.concatenate([self.poles, first], axis=1)
            self.first_slow = (np.where(c2 == 0, np.nan, fdelta), ferror)
        signal = 0.5 * m * lam * c2 > 0
        if initial is not None:
            signal = np.any(initial[0] != 0, axis=1) & (m * lam > 0)
            if initial[1] is not None:
                signal |= np.any(initial[1] != 0, axis=1) & (m * lam > 0)
        if self.coupling != 0.0:
            relevant = np.ones(lam.size, bool)
        else:
            relevant = signal | ((m * lam > 0) if self.label != 0.0 else False)
        finite = np.isfinite(self.poles.real)
        real = (self.poles.imag == 0) & finite
        with np.errstate(invalid="ignore"):
            key = np.where(finite, self.poles.real, -np.inf).max(axis=1)
        self.order = np.argsort(-key, kind="stable").astype(np.int64)  # rightmost poles first
        self.key_sorted = key[self.order]
        self.trivial = not np.any(relevant) or (self.L0 == 0.0 and self.label == 0.0)
        real_rel = np.where(real & relevant[:, None], self.poles.real, -np.inf)
        self.real_max = float(real_rel.max()) if real_rel.size else -math.inf
        self.reach = _reach(_NODES)
        self.c = self._centre() if not self.trivial else 0.0
        off_axis = relevant[:, None] & finite & (self.poles.imag != 0)
        self.off_axis_growth = float(self.poles.real[off_axis].max()) if np.any(off_axis) else -math.inf
        self.fixed = None   # a piece's fixed point (X*_k, y*_k) in the deviation form
        self.states = self._affine_states() if self.affine and not self.trivial else None
        self.floor = self.states.floor if self.states is not None else 0.0
        if self.states is not None and not self.states.deviation:
            self.c = max(self.c, 0.0)   # the sources' pole at s = 0 must lie inside the contour
        # the scale of the transient's parts: |L_0 - L_inf| <= L_0 + |L_inf|
        self.scale0 = self.L0 + abs(self.floor)
        self.rho_off, self.t0 = self._contour_start(relevant, finite)
        theta = float(np.abs(self.poles.imag[off_axis]).min()) if np.any(off_axis) else math.inf
        self.envelope_window = min(_ENVELOPE_MAX_WINDOW, math.ceil(math.pi / theta)) if math.isfinite(theta) else 0
        self._intervals: dict[float, dict] = {}

    def _affine_states(self) -> AffineStates:
        """The deviation form (the floor subtracted) for a converging run, else the source form
        (module memsgd._affine_states)."""
        spec = self.spectrum
        lam, c2 = spec.eigenvalues, spec.coefficients2
        if self.c < 0.0 and not self.off_axis_growth >= 0.0:
            Y, mu = _core.stationary_moments(lam, *self.args, shift=self.rho)
            point = fixed_point(Y, mu, lam, spec.weights, c2, self.algo.h, self.coupling, self.noise.self_noise,
                                self.label, self.slow_delta, self.slow_error)
            if point is not None:
                if self.initial is not None:   # a piece: the deviation of its starting state
                    self.fixed = (point.second, point.first)
                    second, first = self.initial[0], self.initial[1]
                    first = None if not self.rho else first - point.first
                    return AffineStates(second - point.second, first, None, None, point.floor,
                                        point.gradient_point_floor, point.floor_error)
                return deviation_states(point, c2, self.rho)
        states = source_states(lam, c2, self.algo.memory + 1, self.rho, self.label)
        if self.initial is not None:
            states = dataclasses.replace(states, second=self.initial[0], first=self.initial[1] if self.rho else None)
        return states

    # -- analysis ---------------------------------------------------------------------------
    def _sums(self, s, n_slow, watch=False, states=True):
        """The core's generating sums at the nodes s (``states=False``: the plain model's U, U'
        whatever the problem: for V, V' only)."""
        s = np.ascontiguousarray(s, dtype=complex)
        n_slow = np.broadcast_to(np.asarray(n_slow, dtype=np.int64), s.shape).copy()
        affine = {}
        st = self.states if states else None
        if st is not None:
            affine = dict(second=st.second, first=st.first, second_source=st.second_source,
                          first_source=st.first_source)
            if self.rho and st.first is not None:
                affine.update(first_slow_delta=self.first_slow[0], first_slow_error=self.first_slow[1])
        call = lambda control: _core.generating_sums(self.spectrum.eigenvalues, *self.args, self.wu, self.wv,
                                                     self.order, s, n_slow, slow_delta=self.slow_delta,
                                                     slow_error=self.slow_error, shift=self.rho, **affine,
                                                     threads=self.threads, control=control)
        if not watch:
            return call(None)
        work = float(s.size) * self.spectrum.size * self.poles.shape[1] ** 3
        return watched(call, work, self.progress, s.size, "loss_at contour", "node", "steps_done")

    def _v_prime(self, s_real: np.ndarray) -> np.ndarray:
        out = self._sums(s_real.astype(complex), 0, states=False)
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
        and the step ``t0`` from which the contour may leave such singularities out.

        Around a floor (the deviation form, ``L_inf > 0``) there is a second way to leave them out:
        a singularity with ``Re s = gamma < 0`` contributes at most about ``scale0 e^(gamma t)``,
        which falls below ``e^-(reach safety)`` times the floor at ``t = (safety reach + log(scale0 /
        L_inf)) / -gamma``, once the contour has also shrunk to half its distance from the centre.
        That covers what the first way cannot: weight decay's first-moment poles ``log nu`` of an
        underdamped component lie to the *right* of every real singularity (``log |nu|`` against
        ``log |nu|^2`` of the second moments), and an oscillation as slow as the slowest real mode
        never decays relative to the loss, but both decay relative to the floor. ``t0`` is the
        earlier of the two (``self.floor_mode`` says whether the floor's was taken); ``rho <= 0``
        with no floor to fall back on keeps the contour from starting."""
        self.floor_mode, self.off_rate = False, -math.inf
        if self.trivial:
            return math.inf, _MIN_START
        p = self.poles[relevant][finite[relevant]]
        dist = self.c - p.real
        with np.errstate(invalid="ignore", divide="ignore"):
            angle = np.arctan2(np.abs(p.imag), dist)
        off = angle > _WEDGE
        rho = float(dist[off].min()) if np.any(off) else math.inf
        t_loss = math.inf if rho <= 0.0 else (
            max(_MIN_START, math.ceil(_SAFETY * self.reach / rho)) if math.isfinite(rho) else _MIN_START)
        around_floor = self.states is not None and self.states.deviation and self.floor > 0
        gamma = float(p.real[off].max()) if np.any(off) else -math.inf
        if around_floor and np.any(off) and gamma < 0:
            separation = float(np.abs(p[off] - self.c).min())
            below_floor = _SAFETY * self.reach + math.log(max(1.0, self.scale0 / self.floor))
            t_floor = max(_MIN_START, math.ceil(_SAFETY * self.reach / separation), math.ceil(below_floor / -gamma))
            if t_floor < t_loss:
                self.floor_mode, self.off_rate = True, gamma
                return rho, t_floor
        return rho, t_loss

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
        if self.states is not None and not self.states.deviation:
            counts = counts[:0]   # the sources' pole at s = 0 is in every component's part: no fast set
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
        U_S, Up_S, V_S, Vp_S, U_F, Up_F, V_F, Vp_F = out[:, :8].T
        V, Vp, Up = V_S + V_F, Vp_S + Vp_F, Up_S + Up_F
        G = U_S + Up_S * V / (1 - Vp) + Up_F * (V_S * (1 - Vp_F) + V_F * Vp_S) / ((1 - Vp) * (1 - Vp_F))
        A = U_F + Up_F * V_F / (1 - Vp_F)
        # relative rounding of G: a few ulps of each sum, amplified where 1 - V' nearly cancels
        # (next to the pole of the slowest coupled mode)
        kappa = 4 + 2 * np.abs(Vp) / np.abs(1 - Vp) + 2 * np.abs(Vp_F) / np.abs(1 - Vp_F)
        # error of G = L - A from the slow poles' positions: the bounds on the errors of each pair
        # of sums times G's sensitivity to them (U_F cancels in L - A; F enters through the rest)
        with np.errstate(invalid="ignore", divide="ignore"):
            q, q_F = 1 / (1 - Vp), 1 / (1 - Vp_F)
            sensitivity = np.stack([
                np.maximum(1, np.abs(V * q)),                                            # U_S, U'_S
                np.maximum(np.abs(Up * q), np.abs(Up * V * q * q)),                      # V_S, V'_S
                np.abs(V * q - V_F * q_F),                                               # U'_F
                np.maximum(np.abs(Up * q - Up_F * q_F), np.abs(Up * V * q * q - Up_F * V_F * q_F * q_F))])
        pole_err = np.sum(out[:, 8:12].real.T * sensitivity, axis=0)
        start = 0
        for w, omega in zip(ws, omegas):
            part = slice(start, start + w.size)
            contours.append((w, omega * G[part], kappa[part], np.abs(omega) * pole_err[part]))
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
        """``(L_t, error, L_t - floor)`` from the contour integral, t >= t0: the floor plus the
        integrated transient (``error`` includes the floor's rounding)."""
        t = np.asarray(t, dtype=np.int64)
        if t.size > _CHUNK:  # bounded memory for the (steps x nodes) exponentials
            parts = [self.contour(t[i:i + _CHUNK]) for i in range(0, t.size, _CHUNK)]
            return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
        L = np.empty(t.size)
        err = np.empty(t.size)
        starts = np.array([self._interval_start(int(x)) for x in t])
        for t_lo in np.unique(starts):
            sel = starts == t_lo
            iv = self._interval(float(t_lo))
            tt = t[sel].astype(float)
            values, moduli, poles = [], [], []
            for w, wG, kappa, pole_err in iv["contours"]:
                expo = np.outer(tt, w) + (self.c * tt)[:, None]
                with np.errstate(over="ignore", invalid="ignore"):
                    grow = np.exp(expo)
                    terms = wG[None, :] * grow
                    values.append(np.sum(terms, axis=1).imag)
                    moduli.append(np.abs(terms) @ kappa)
                    poles.append(np.abs(grow) @ pole_err)
            main, check = values
            with np.errstate(over="ignore", invalid="ignore"):
                e_quad = np.abs(main - check)
                # rounding of the nodes' values and of the exponent c t; the slow poles' positions
                e_round = 8 * _EPS * moduli[0] + 2 * _EPS * np.abs(self.c * tt * main)
                e_pole = _POLE_FACTOR * np.maximum(poles[0], poles[1])
                e_fast = iv["fast_scale"] * np.exp(self.c * tt - _SLOW_REACHES * self.reach * tt / t_lo) \
                    * self.reach * tt / t_lo
                if self.floor_mode:   # left out below the floor (_contour_start)
                    e_off = (self.scale0 + iv["scale"] * self.reach / t_lo) * np.exp(self.off_rate * tt)
                elif math.isfinite(self.rho_off):
                    e_off = (self.scale0 + iv["scale"] * self.reach / t_lo) * np.exp((self.c - self.rho_off) * tt)
                else:
                    e_off = 0.0 * tt
            # only a growing run (c > 0) can overflow: its loss is then beyond any threshold
            if self.c <= 0 and not np.all(np.isfinite(main)):
                raise RuntimeError("loss_at: a contour node hit a singularity of the generating function; "
                                   "please report this problem")
            L[sel] = np.where(np.isfinite(main), main, math.inf)
            err[sel] = np.where(np.isfinite(main), e_quad + e_round + e_pole + e_fast + e_off, 0.0)
        if self.states is None or not self.floor:
            return L, err, L
        floor_error = self.states.floor_error + 2 * _EPS * abs(self.floor)   # its rounding, and the sum's
        return self.floor + L, np.where(np.isfinite(L), err + floor_error, 0.0), L

    # -- a piece's state at its end (piecewise schedules) -----------------------------------------
    @functools.cached_property
    def maps(self) -> Maps:
        spec = self.spectrum
        return Maps(self.algo, spec.eigenvalues, spec.coefficients2, self.rho, self.noise.self_noise, self.coupling,
                    self.label)

    def state_at(self, n: int):
        """``(second, first, second_error, first_error, diverged_at)``: the per-component states at
        step n of this piece (started from ``self.initial``), by the recursion up to its contour's
        start (or where the contour's estimate is not good enough), else by the contour
        (``memsgd._piece_states.contour_state``, the fixed point added back in the deviation form)."""
        second, first = self.initial[0], self.initial[1]
        m = self.spectrum.weights
        start = 2 * self.t0 if math.isfinite(self.t0) else math.inf
        if not self.trivial and n > max(start, _STATE_RECURSION):
            x, y, ex, ey = self._contour_state(n)
            ml = m * self.spectrum.eigenvalues
            scale = float(np.dot(ml, np.abs(x).max(axis=1)))
            if float(np.dot(ml, ex.max(axis=1))) <= _TRUST_RELATIVE_ERROR * scale or n > _STATE_RECURSION_MAX:
                return x, y, ex, ey, None
        if n > _STATE_RECURSION_MAX:
            raise ValueError(self._slow_modes_message(n))
        _, x, y, div = run(self.maps, m, second, first, n, self._threshold())
        rounding = float(self._rounding(n))
        return x, y, rounding * np.abs(x), None if y is None else rounding * np.abs(y), div

    def _contour_state(self, n: int):
        t_lo = self._interval_start(n)
        pairs = [_hyperbola(nodes, t_lo) for nodes in (_NODES, _CHECK_NODES)]
        s = self.c + np.concatenate([w for w, _ in pairs])
        out = self._sums(s, self.spectrum.size, watch=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            l_all = (out[:, 1] + out[:, 5]) / (1 - (out[:, 3] + out[:, 7]))
        split = pairs[0][0].size
        finite = np.where(np.isfinite(self.poles.real), self.poles.real, -np.inf)
        rate = finite.max(axis=1) - self.c   # decay relative to the loss's scale e^(c n)
        st = self.states
        x, y, ex, ey = contour_state(self.maps, (s[:split], s[split:]), (pairs[0][1], pairs[1][1]),
                                     (l_all[:split], l_all[split:]), n, st.second, st.first, not st.deviation, rate)
        if st.deviation and self.fixed is not None:
            x = x + self.fixed[0]
            if y is not None:
                y = y + self.fixed[1]
        return x, y, ex, ey

    # -- the driver -------------------------------------------------------------------------
    def _threshold(self) -> float:
        # the core's rule: relative to L_0 > 0 (with L_0 = 0 only a non-finite loss diverges)
        return DIVERGENCE_FACTOR * self.threshold_L0 if self.threshold_L0 > 0 else math.inf

    def _exact(self, T: int):
        """``(loss, error, diverged_at)`` of the recursion up to step T (error: the rounding model
        against the loss's envelope, for which the recursion runs half a period further)."""
        extra = self.envelope_window
        if self.initial is not None and not self.initial[3]:   # a later piece: the recursion from its state
            loss, _, _, div = run(self.maps, self.spectrum.weights, self.initial[0], self.initial[1], T + extra,
                                  self._threshold())
            if div is not None and div > T:
                div = None
            return loss[:T + 1], self._exact_error(loss)[:T + 1], div
        algorithm, spectrum = self.original
        curve = loss_curve(algorithm, spectrum, self.noise, T + extra, progress=self.progress,
                           threads=self.threads or None)
        div = curve.diverged_at  # the core decides divergence (inf from there on)
        if div is not None and div > T:
            div = None
        return curve.loss[:T + 1], self._exact_error(curve.loss)[:T + 1], div

    @staticmethod
    def _rounding(t) -> np.ndarray:
        """Relative rounding of the recursion at step t (measured against an 80-bit recursion; see
        _ROUND_LINEAR): eps (32 (1 + sqrt t) + 4 t)."""
        t = np.asarray(t, dtype=float)
        return _EPS * (_ROUND_SQRT * (1 + np.sqrt(t)) + _ROUND_LINEAR * t)

    def _exact_error(self, L: np.ndarray) -> np.ndarray:
        """The recursion's rounding against the envelope of |L|: where an oscillating mode takes
        the loss through a near-zero, the recursion's absolute error is that of the envelope."""
        scale = np.abs(L)
        W = self.envelope_window
        if W > 0 and L.size > 1:
            finite = np.where(np.isfinite(scale), scale, 0.0)
            # windows[j] = max |L| over [j - W, j] (windows cut at the ends): past[t] = windows[t],
            # future[t] = windows[t + W]; the smaller one does not see a steep decay or growth
            windows = _sliding_max(np.concatenate([np.zeros(W), finite, np.zeros(W)]), W + 1)
            scale = np.maximum(scale, np.minimum(windows[:L.size], windows[W:W + L.size]))
        with np.errstate(invalid="ignore"):
            return self._rounding(np.arange(L.size)) * scale

    def _check_steps(self, H: int) -> np.ndarray:
        return np.unique(np.round(np.geomspace(max(self.t0, H // _HAND_OVER_GROWTH), H, 12)).astype(np.int64))

    def loss_at(self, steps: np.ndarray, exact_until: Optional[int]) -> LossAt:
        n = steps.size
        t_max = int(steps[-1])
        if self.trivial:  # no signal: L_t = 0 for every t
            return LossAt(steps, np.zeros(n), np.zeros(n), None, t_max, 0.0)
        t0 = self.t0
        hand = max(2 * t0, exact_until or 0) if math.isfinite(t0) else math.inf
        if hand >= t_max:
            return self._exact_only(steps, t_max)
        if hand > _ENGINE_MAX:
            raise ValueError(self._slow_modes_message(t_max))
        hand = int(hand)
        reach = min(t_max, _ENGINE_MAX)  # the recursion serves steps up to here
        # 1. The contour at the requested steps: the recursion takes over every step up to the last
        #    one where the contour's estimate is not good enough (and the recursion's is better).
        late = steps > hand
        t_late = steps[late]
        L, E, X = self.contour(t_late)
        with np.errstate(invalid="ignore"):
            over = ~np.isfinite(L) | (L > self._threshold())
        if np.any(over):  # nothing after a divergence counts
            over[int(np.argmax(over)):] = True
        rel = relative_errors(L, E)
        self._refuse_unresolved(t_late, L, rel, ~over & (t_late > reach))
        untrusted = ~over & (t_late <= reach) & (rel > np.maximum(_TRUST_RELATIVE_ERROR, self._rounding(t_late)))
        H = max(hand, int(t_late[untrusted].max())) if np.any(untrusted) else hand
        # 2. The hand-over: the contour must be trusted at steps up to H, and (3.) agree with the
        #    recursion there; otherwise the recursion runs further.
        messages = []
        inflate = 0.0
        while True:
            while H < t_max:
                t_check = self._check_steps(H)
                Lc, Ec, _ = self.contour(t_check)
                if np.all(relative_errors(Lc, Ec) <= _TRUST_RELATIVE_ERROR) or H >= reach:
                    break
                H = min(_HAND_OVER_GROWTH * H, reach)
            exact, exact_error, div = self._exact(min(H, t_max))
            if div is not None or H >= t_max:
                return self._from_exact(steps, exact, exact_error, div, min(H, t_max))
            mismatch = np.abs(Lc - exact[t_check])
            if np.all(mismatch <= _CHECK_FACTOR * Ec + 16 * exact_error[t_check]):
                break
            if H >= reach:
                inflate = float(np.max(mismatch / np.maximum(np.abs(exact[t_check]), _ABS_FLOOR)))
                messages.append(f"loss_at: the contour integral differs from the exact recursion by up to "
                                f"{inflate:.1e} (relative) at steps {int(t_check[0])}..{H}, where the recursion "
                                f"ends; the errors of later steps are inflated accordingly. Please report this "
                                f"problem.")
                break
            H = min(_HAND_OVER_GROWTH * H, reach)
        # 4. Assemble: the recursion up to H, the contour after it.
        loss = np.empty(n)
        error = np.empty(n)
        early = steps <= H
        loss[early] = exact[steps[early]]
        error[early] = exact_error[steps[early]]
        excess = loss - self.floor
        after = ~early
        keep = np.isin(t_late, steps[after])
        L, E, X, over = L[keep], E[keep], X[keep], over[keep]
        if inflate:
            E = np.maximum(E, inflate * np.abs(L))
        loss[after], error[after], excess[after] = L, E, X
        diverged_at = None
        if np.any(over):
            i = int(np.flatnonzero(after)[int(np.argmax(over))])
            lo = int(steps[i - 1]) if i > 0 and steps[i - 1] > H else H
            diverged_at = self._first_crossing(lo, int(steps[i]))
            gone = steps >= diverged_at
            loss[gone], error[gone], excess[gone] = math.inf, 0.0, math.inf
        rel = relative_errors(loss, error)
        self._refuse_unresolved(steps, loss, rel, after & np.isfinite(loss))
        message = accuracy_warning(rel, lambda i: f"step {int(steps[i])}")
        if message is not None:
            messages.append(message)
        return LossAt(steps, np.maximum(loss, 0.0), error, diverged_at, H, self.c, tuple(messages), self.floor,
                      np.maximum(excess, -self.floor))

    def _refuse_unresolved(self, steps, loss, rel, where):
        """ValueError when a value the recursion cannot replace has no correct digit (an error
        estimate as large as the value, or a negative value): an expected loss is never returned
        negative or meaningless. The message names the step and the likely cause."""
        bad = where & (rel >= 1.0)
        if not np.any(bad):
            return
        i = int(np.argmax(bad))
        t = int(steps[i])
        scale = self.scale0 * math.exp(min(self.c * t, 700.0))
        if abs(loss[i]) < 1e-3 * scale:
            why = (f"the loss has fallen far below the scale e^(c t) L_0 = {scale:.3g} that the contour resolves "
                   f"(a slow mode with a tiny amplitude, or faster modes that still carry the loss)")
        else:
            why = ("the positions of the slow poles are not known well enough for this step (a mode at the "
                   "stability edge, |mu| = 1 by cancellation, whose error grows like t)")
        raise ValueError(
            f"loss_at cannot resolve the loss at step {t}: the contour integral gives {loss[i]:.3g} with an "
            f"estimated error of {rel[i]:.1e} times that; {why}; the exact recursion is limited to "
            f"{_ENGINE_MAX:.0e} steps here; use loss_curve up to that step")

    def _slow_modes_message(self, t_max: int) -> str:
        """The refusal when the contour starts too late (t0 finite: the oscillating modes decay,
        but so slowly that the recursion would have to cover more than _ENGINE_MAX steps)."""
        rate = self.rho_off
        return (f"loss_at cannot reach step {t_max}: the algorithm has oscillating modes (complex or negative "
                f"eigenvalues of its moment maps) that decay only like exp(-{rate:.3g} t) relative to the loss, "
                f"so the exact recursion would have to run to step ~{2 * self.t0:.3g} (more than "
                f"{_ENGINE_MAX:.0e}); use loss_curve with fewer steps")

    def _first_crossing(self, lo: int, hi: int) -> int:
        """The first t in (lo, hi] with L_t over the divergence threshold, by bisection
        (L_lo is below it, L_hi above; assumes one crossing in between)."""
        thr = self._threshold()
        while hi - lo > 1:
            mid = (lo + hi) // 2
            L, _, _ = self.contour(np.array([mid]))
            if not np.isfinite(L[0]) or L[0] > thr:
                hi = mid
            else:
                lo = mid
        return hi

    def _exact_only(self, steps, t_max):
        T = t_max
        if t_max > _ENGINE_MAX:
            # Only a growing off-axis mode lets the recursion end early (at the divergence).
            growth = self.off_axis_growth
            if math.isfinite(self.t0) and not growth > _GROWTH_FLOOR:
                raise ValueError(self._slow_modes_message(t_max))   # damped, but too slowly
            if not growth > _GROWTH_FLOOR:
                raise ValueError(
                    f"loss_at cannot reach step {t_max}: the algorithm has modes off the real axis that do not "
                    f"decay (eigenvalues of modulus 1 of a moment map, e.g. an undamped rotating memory), so "
                    f"only the exact recursion applies, and it is limited to {_ENGINE_MAX:.0e} steps here; use "
                    f"loss_curve")
            T = min(_ENGINE_MAX, math.ceil(_GROWTH_STEPS / growth) + _MIN_START)
        exact, exact_error, div = self._exact(T)
        if div is None and T < t_max:
            raise ValueError(
                f"loss_at cannot reach step {t_max}: the loss grows through oscillating modes (exp({growth:.3g} t)) "
                f"but has not diverged by step {T}; use loss_curve")
        return self._from_exact(steps, exact, exact_error, div, T)

    def _from_exact(self, steps, exact, exact_error, div, T):
        n = steps.size
        loss = np.full(n, math.inf)
        error = np.zeros(n)
        inside = steps <= T
        if div is not None:
            inside &= steps < div
        loss[inside] = exact[steps[inside]]
        error[inside] = exact_error[steps[inside]]
        message = accuracy_warning(relative_errors(loss, error), lambda i: f"step {int(steps[i])}")
        return LossAt(steps, loss, error, div, int(T), self.c, () if message is None else (message,), self.floor)


def _sliding_max(a: np.ndarray, w: int) -> np.ndarray:
    """``max(a[i:i + w])`` for every i (length ``a.size - w + 1``), in O(n log w): maxima over
    windows of 1, 2, 4, ... entries, then two overlapping ones of the largest power of 2 <= w."""
    m, k = a, 1
    while 2 * k <= w:
        m = np.maximum(m[:-k], m[k:])  # m[i] = max(a[i:i + 2k])
        k *= 2
    n = a.size - w + 1
    return np.maximum(m[:n], m[w - k:w - k + n])
