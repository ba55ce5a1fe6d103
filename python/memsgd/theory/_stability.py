"""Stability, noise sums and convergence of a stationary algorithm (docs/math.md §5)."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .._affine import decayed_problem
from .._stationary import spectrum_and_noise, stationary
from ..algorithms import MemoryAlgorithm
from ..noise import Noise
from ..spectrum import Spectrum
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
        converges: the loss converges (Theorem 3/8): strictly stable, every ``T_lambda``
            stable (so the signal U_n -> 0 and the V_n are summable) and ``V' < 1``; to 0, or to
            ``noise_floor`` with label noise or weight decay.
        moment_stable: ``rho(T_lambda) < 1`` for every lambda checked (and ``rho(S_lambda) < 1``).
        max_moment_radius: ``max rho(T_lambda)``, from floating-point eigenvalues; near lambda = 0
            (slow modes) it rounds to 1.0 (``moment_stable`` does not rely on it).
        alpha_eff: ``Q(1)/P'(1)``.
        noise_floor: ``L_inf = lim L_t`` (excess risk at the readout) of a converging run, from the
            stationary moment equations (docs/math.md §9; 0 for the plain model); ``inf`` when the
            loss does not converge.
        gradient_point_floor: ``l_inf = lim l_t`` (the loss at the gradient point, ``a*/2``: it
            drives the noise of the stationary state); ``inf`` when the loss does not converge.

    With weight decay ``rho`` (docs/math.md §9) every statement is about the original algorithm
    at ``lambda + rho`` (``S_k = S0 - (lambda_k + rho) g h^T``) with the noise weights of
    ``lambda_k``; a readout and a preconditioner enter through their exact reductions
    (``memsgd._affine``): V and V are then sums at the readout, on the preconditioned spectrum.

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
    noise_floor: float = 0.0
    gradient_point_floor: float = 0.0

    def __post_init__(self):  # plain Python numbers: no np.float64(...) in reprs or JSON
        for f in fields(self):
            value = getattr(self, f.name)
            object.__setattr__(self, f.name, bool(value) if f.type == "bool" else float(value))


@np.errstate(all="ignore")   # extreme inputs overflow to inf / nan, which the decisions below handle
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

    Noise floor (label noise ``sigma2``, weight decay ``rho``; docs/math.md §9). Per component the
    first moment converges to ``m*_k = (I - S_k)^-1 f_k``, ``f_k = -rho w*_k g``, and the second
    moment to ``m* m*^T + n_k Y0_k`` with the noise amplitude
    ``n_k = [c1 lambda_k a* + (sigma2/B) lambda_k - s lambda_k^2 (h^T m*_k)^2] / (1 + q_k)``
    (``c1 = tau1/B``, ``s = tau2/B``, ``q_k = s lambda_k^2 h^T Y0_k h``). Closing ``a* = sum m lambda
    h^T X*_k h`` gives ``a* = [sum m lambda (h^T m*)^2 / (1 + q) + (sigma2/B) sum m lambda^2 h^T Y0 h /
    (1 + q)] / (1 - V')`` and ``L_inf = 1/2 sum m lambda (m*_0)^2 + (a*/2) V + (sigma2/2B) sum m
    lambda^2 Y0_00 / (1 + q) - (s/2) sum m lambda^3 Y0_00 (h^T m*)^2 / (1 + q)``. NQM (SGD,
    tau1 = tau2 = 0): ``L_inf = 1/2 sum lambda s_i``, ``s_i = alpha sigma2 / (B (2 - alpha lambda_i))``;
    noise-free weight decay: ``1/2 sum lambda c^2 (rho / (lambda + rho))^2``.

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
    algo, spectrum, rho = decayed_problem(algo, spectrum)
    comp = Components(algo)
    s = noise.self_noise
    lam = spectrum.eigenvalues
    grid = check_grid(spectrum, comp.lambda_tiny)
    check = np.concatenate([lam, grid])
    mu = check + rho                        # where the step matrices live (weight decay)
    ratio2 = (check / mu) ** 2              # noise weights lambda^2 against mu^2
    comp.check_cost(check.size, "stability", s)
    stable = comp.stable_nodes(mu)
    strictly = bool(np.all(stable) and (comp.stable_up_to(spectrum.lambda_max + rho) if spectrum.infinite else True))
    moment_ok = stable.copy()
    y00 = np.zeros(check.size)
    yhh = np.zeros(check.size)
    if np.any(stable):
        y00[stable], yhh[stable], _, _ = comp.sums(mu[stable])
    y00, yhh = y00 * ratio2, yhh * ratio2   # lambda^2 Y0_00, lambda^2 h^T Y0 h with Y0 at lambda + rho
    q = s * yhh
    if s <= 0:
        moment_ok &= 1.0 + q > 0
    else:
        doubtful = stable & ~(q < 1)
        if np.any(doubtful):
            moment_ok[doubtful] = comp.moment_radius(mu[doubtful], s * ratio2[doubtful]) < 1.0
    rho_S = comp.radius(mu)
    rho_T = comp.moment_radius(mu, s * ratio2 if rho else s)
    # rounding near 1 (slow modes, tiny 1 - rho(D)) must not contradict the exact decisions
    rho_S = np.where(stable, np.minimum(rho_S, 1.0), rho_S)
    rho_T = np.where(moment_ok, np.minimum(rho_T, 1.0), rho_T)
    moment = bool(np.all(moment_ok))
    floor = gp_floor = math.inf
    if strictly and moment:
        k = slice(0, lam.size)
        m = spectrum.weights
        V = noise.coupling * float(np.sum(m * y00[k] / (1.0 + q[k])))
        Vp = noise.coupling * float(np.sum(m * yhh[k] / (1.0 + q[k])))
        # sums of nonnegative terms: nan only where a term overflowed (inf / inf, 0 * inf)
        V, Vp = (math.inf if math.isnan(v) else v for v in (V, Vp))
        if Vp < 1.0:
            floor, gp_floor = _noise_floor(algo, spectrum, noise, rho, y00[k], yhh[k], q[k], V, Vp)
    else:
        V = Vp = math.inf
    return StabilityReport(strictly, _finite_max(rho_S), V, Vp, strictly and moment and Vp < 1.0, moment,
                           _finite_max(rho_T), algo.alpha_eff, floor, gp_floor)


def _noise_floor(algo: MemoryAlgorithm, spectrum: Spectrum, noise: Noise, rho: float, y00, yhh, q, V, Vp) -> float:
    """``(L_inf, l_inf)`` of a converging stationary run from the moment equations (see
    [`stability`][memsgd.stability]); ``y00 = lambda^2 Y0_00``, ``yhh = lambda^2 h^T Y0 h`` and ``q`` per node."""
    lam, m, c2 = spectrum.eigenvalues, spectrum.weights, spectrum.coefficients2
    label = noise.label_source
    if rho:
        # m*_k / w*_k = (I - S_{lambda + rho})^-1 (-rho g): bounded, since rho(S) < 1 at lambda + rho >= rho
        N = algo.memory + 1
        A = np.eye(N)[None] - algo.eigen_matrix(lam + rho).reshape(lam.size, N, N)
        unit = np.linalg.solve(A, np.broadcast_to(-rho * algo.g, (lam.size, N))[..., None])[..., 0]
        first2 = c2 * unit[:, 0] ** 2                 # (m*_0)^2
        gp2 = c2 * (unit @ algo.h) ** 2               # (h^T m*)^2
    else:
        first2 = gp2 = np.zeros(lam.size)
    den = 1.0 + q
    a_star = (float(np.sum(m * lam * gp2 / den)) + label * float(np.sum(m * yhh / den))) / (1.0 - Vp)
    s = noise.self_noise
    floor = (0.5 * float(np.sum(m * lam * first2)) + 0.5 * a_star * V + 0.5 * label * float(np.sum(m * y00 / den))
             - 0.5 * s * float(np.sum(m * y00 * lam * gp2 / den)))
    return floor, 0.5 * a_star


def _finite_max(values: np.ndarray) -> float:
    return float(np.max(values)) if np.all(np.isfinite(values)) else math.inf
