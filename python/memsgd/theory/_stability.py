"""Stability, noise sums and convergence of a stationary algorithm (docs/math.md §5)."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from ..algorithms import MemoryAlgorithm
from ..noise import Noise
from ..spectrum import Spectrum
from .._stationary import spectrum_and_noise, stationary
from ._components import Components, check_grid

__all__ = ["StabilityReport", "stability"]


@dataclass(frozen=True)
class StabilityReport:
    """Stability of a stationary algorithm on a problem (docs/math.md §5, Theorems 3/4/6/7/8).

    Fields:
        strictly_stable: ``rho(S_lambda) < 1`` for every lambda of the spectrum (for infinite
            spectra every lambda in (0, lambda_max]); decided exactly, without eigenvalues near 1.
        max_spectral_radius: ``max rho(S_lambda)`` over the nodes checked. For an infinite
            spectrum the supremum is ``1 - O(lambda_min)`` and rounds to 1.0.
        noise_sum: ``V = sum_{n>=1} V_n = (tau1/B) sum_k m_k lambda_k^2 (Y_k)_00``.
        noise_sum_prime: ``V' = sum_{n>=1} V'_n = (tau1/B) sum_k m_k lambda_k^2 h^T Y_k h``
            (equal to V when e = 0). Both are ``inf`` when some ``T_lambda`` is unstable.
        converges: the loss converges to 0 (Theorem 3/8): strictly stable, every ``T_lambda``
            stable (so the signal U_n -> 0 and the V_n are summable) and ``V' < 1``.
        moment_stable: ``rho(T_lambda) < 1`` for every lambda checked (and ``rho(S_lambda) < 1``).
        max_moment_radius: ``max rho(T_lambda)``, from floating-point eigenvalues; near lambda = 0
            (slow modes) it rounds to 1.0 (``moment_stable`` does not rely on it).
        alpha_eff: ``Q(1)/P'(1)``.

    Examples:
        >>> import memsgd
        >>> report = memsgd.stability(memsgd.heavy_ball(0.1, 0.9), memsgd.Spectrum.power_law(2.0, 1.0),
        ...                           memsgd.Noise.gaussian(10))
        >>> report.strictly_stable, report.converges, round(report.alpha_eff, 12)
        (True, True, 1.0)
    """

    strictly_stable: bool
    max_spectral_radius: float
    noise_sum: float
    noise_sum_prime: float
    converges: bool
    moment_stable: bool
    max_moment_radius: float
    alpha_eff: float

    def __post_init__(self):  # plain Python numbers: no np.float64(...) in reprs or JSON
        for f in fields(self):
            value = getattr(self, f.name)
            object.__setattr__(self, f.name, bool(value) if f.type == "bool" else float(value))


def stability(algorithm: MemoryAlgorithm, spectrum: Spectrum, noise: Noise) -> StabilityReport:
    """Strict stability, noise sums ``V, V'`` and convergence of the expected loss (docs/math.md §5).

    Per component (any memory M, any e, any tau2), with ``T_k(X) = S_k X S_k^T - (tau2/B) lambda_k^2 (h^T X h) g g^T``::

        Y_k = T_k(Y_k) + g g^T,
        V  = (tau1/B) sum_k m_k lambda_k^2 (Y_k)_00,     V' = (tau1/B) sum_k m_k lambda_k^2 h^T Y_k h.

    The self-noise term is rank one: ``Y_k = Y0_k / (1 + q_k)`` with ``Y0_k = sum_n S_k^n g g^T S_k^nT``
    and ``q_k = (tau2/B) lambda_k^2 h^T Y0_k h``. ``Y0`` comes from closed forms for memory 0 and 1
    (docs/theory.md) and from (M+1)^2 linear systems for M >= 2 (below ``sqrt(eps (1 - rho(D))) /
    alpha_eff`` from ``lambda^2 Y0_00 = lambda^2 h^T Y0 h = alpha_eff lambda / 2``).

    Strict stability is decided exactly: Jury conditions for M <= 1; for M >= 2 from the lambdas
    where a root of ``chi_lambda`` crosses the unit circle (below the first crossing the
    algorithm is stable iff ``alpha_eff > 0`` and ``rho(D) < 1``). Moment stability: for
    ``tau2 <= 0`` the map ``T_k`` preserves positive semidefinite matrices and is stable iff
    ``S_k`` is and ``1 + q_k > 0``; for ``tau2 > 0`` ``|q_k| < 1`` suffices (``sum_n (h^T S^n g)^2 z^-n``
    has modulus at most its value at z = 1 on ``|z| >= 1``), and the remaining nodes are decided
    by eigenvalues of ``T_k``. The loss converges iff strictly stable, moment stable and
    ``V' < 1``; with ``V' > 1`` it diverges (Theorems 3 and 8). Plain SGD, tau2 = 0:
    ``V = (tau1/B) sum alpha lambda/(2 - alpha lambda)``.

    Examples:
        Noise stability needs ``V < 1``: with B = 10 heavy ball at ``alpha_eff = 1`` is stable, with
        B = 1 and a large ``alpha_eff`` it is not (the loss diverges although every mode is stable):

        >>> import memsgd
        >>> spec = memsgd.Spectrum.power_law(2.0, 1.0)
        >>> r = memsgd.stability(memsgd.heavy_ball(0.1, 0.9), spec, memsgd.Noise.gaussian(10))
        >>> r.strictly_stable, bool(r.noise_sum < 1), r.converges
        (True, True, True)
        >>> r = memsgd.stability(memsgd.heavy_ball(0.5, 0.9), spec, memsgd.Noise.gaussian(1))
        >>> r.strictly_stable, bool(r.noise_sum < 1), r.converges
        (True, False, False)
    """
    algo = stationary(algorithm)
    spectrum_and_noise(spectrum, noise)
    comp = Components(algo)
    s = noise.self_noise
    lam = spectrum.eigenvalues
    grid = check_grid(spectrum, comp.lambda_tiny)
    check = np.concatenate([lam, grid])
    comp.check_cost(check.size, "stability", s)
    stable = comp.stable_nodes(check)
    strictly = bool(np.all(stable) and (comp.stable_up_to(spectrum.lambda_max) if spectrum.infinite else True))
    moment_ok = stable.copy()
    y00 = np.zeros(check.size)
    yhh = np.zeros(check.size)
    if np.any(stable):
        y00[stable], yhh[stable], _, _ = comp.sums(check[stable])
    q = s * yhh
    if s <= 0:
        moment_ok &= 1.0 + q > 0
    else:
        doubtful = stable & ~(q < 1)
        if np.any(doubtful):
            moment_ok[doubtful] = comp.moment_radius(check[doubtful], s) < 1.0
    rho_S = comp.radius(check)
    rho_T = comp.moment_radius(check, s)
    # rounding near 1 (slow modes, tiny 1 - rho(D)) must not contradict the exact decisions
    rho_S = np.where(stable, np.minimum(rho_S, 1.0), rho_S)
    rho_T = np.where(moment_ok, np.minimum(rho_T, 1.0), rho_T)
    moment = bool(np.all(moment_ok))
    if strictly and moment:
        k = slice(0, lam.size)
        m = spectrum.weights
        V = noise.coupling * float(np.sum(m * y00[k] / (1.0 + q[k])))
        Vp = noise.coupling * float(np.sum(m * yhh[k] / (1.0 + q[k])))
    else:
        V = Vp = math.inf
    return StabilityReport(strictly, _finite_max(rho_S), V, Vp, strictly and moment and Vp < 1.0, moment,
                           _finite_max(rho_T), algo.alpha_eff)


def _finite_max(values: np.ndarray) -> float:
    return float(np.max(values)) if np.all(np.isfinite(values)) else math.inf
