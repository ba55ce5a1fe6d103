"""Theory toolkit: stability, noise sums, asymptotics and exponent fits (docs/math.md §5-6).

Per eigencomponent ``lambda`` the second moments evolve (without the loss-coupled term) by

    T_lambda(X) = S X S^T - s lambda^2 (h^T X h) g g^T,        s = tau2 / B,   S = S_lambda,

a linear map on (M+1)x(M+1) matrices; in row-major ``vec`` form ``T = S (x) S - s lambda^2
vec(g g^T) vec(h h^T)^T``. Everything below is built from

    Y_lambda = sum_{n>=0} T^n(g g^T)   (solves Y = T(Y) + g g^T)
    Z_lambda = sum_{n>=0} T^n(E11)     (solves Z = T(Z) + E11),

so that ``V = (tau1/B) sum_k m_k lambda_k^2 (Y_k)_00``, ``V' = (tau1/B) sum_k m_k lambda_k^2 h^T Y_k h``
and ``sum_{n>=0} U_n = 1/2 sum_k m_k lambda_k c_k^2 (Z_k)_00``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gamma as _gamma

from ._validation import float_array, positive_scalar, real_scalar
from .algorithms import MemoryAlgorithm
from .noise import Noise
from .spectrum import Spectrum

__all__ = ["fit_exponent", "StabilityReport", "stability", "Asymptotics", "asymptotics",
           "memory1_coefficients", "jury_stable_memory1", "noise_sum_memory1", "phase_boundary"]

# Below lambda_tiny = _TINY * (1 - rho(D)) / alpha_eff the per-component quantities are taken
# from their small-lambda expansions (relative error ~ alpha_eff lambda / gap <= 1e-8): a
# direct solve there loses ~ eps / (alpha_eff lambda) to rounding (docs/math.md §5, "Numerics at tiny lambda").
_TINY = 1e-8
# Strict inequalities are decided with this slack: rho < 1 - _RHO_SLACK would hide the
# O(lambda) margin of small modes, so only rounding-level slack is allowed.
_RHO_SLACK = 4 * np.finfo(float).eps
# Dense grid on (lambda_tiny, lambda_max] for strict stability of infinite power laws.
_GRID_POINTS = 400


def fit_exponent(loss, t_min, t_max) -> float:
    """Least-squares slope ``p`` of ``-log L_t`` against ``log t`` over ``t_min <= t <= t_max``.

    ``loss[t]`` is ``L_t`` (index = step). A curve ``L_t ~ C t^-p`` gives ``p``.
    """
    loss = float_array(loss, "loss", ndim=1, finite=False)
    t_min = real_scalar(t_min, "t_min")
    t_max = real_scalar(t_max, "t_max")
    if not 0 < t_min < t_max:
        raise ValueError(f"need 0 < t_min < t_max, got t_min={t_min}, t_max={t_max}")
    if t_max > loss.size - 1:
        raise ValueError(f"t_max must be <= len(loss) - 1 = {loss.size - 1}, got {t_max}")
    t = np.arange(int(np.ceil(t_min)), int(np.floor(t_max)) + 1)
    if t.size < 2:
        raise ValueError("the window [t_min, t_max] must contain at least two integer steps")
    L = loss[t]
    if not np.all(np.isfinite(L) & (L > 0)):
        raise ValueError("loss must be finite and > 0 on [t_min, t_max] to fit an exponent")
    # Evenly weighted in log t: sample the window at log-spaced steps.
    idx = np.unique(np.round(np.geomspace(t[0], t[-1], min(t.size, 200))).astype(int))
    slope = np.polyfit(np.log(idx), np.log(loss[idx]), 1)[0]
    return float(-slope)


# ------------------------------------------------------------------------------------------
# checks

def _check_stationary(algorithm):
    if isinstance(algorithm, MemoryAlgorithm):
        return algorithm
    from .schedules import Schedule
    if isinstance(algorithm, Schedule):
        raise ValueError("algorithm must be stationary (a MemoryAlgorithm): stability and asymptotics "
                         "are defined for constant parameters; use schedule.at(t) for a frozen step")
    raise TypeError(f"algorithm must be a MemoryAlgorithm, got {type(algorithm).__name__}")


def _check_spectrum_noise(spectrum, noise):
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum must be a Spectrum, got {type(spectrum).__name__}")
    if not isinstance(noise, Noise):
        raise TypeError(f"noise must be a Noise, got {type(noise).__name__}")


# ------------------------------------------------------------------------------------------
# per-component machinery (general M, any e, any tau2), vectorised over lambda

def _memory_radius(algo: MemoryAlgorithm) -> float:
    if algo.memory == 0:
        return 0.0
    return float(np.max(np.abs(np.linalg.eigvals(algo.D))))


def _small_lambda(algo: MemoryAlgorithm):
    """``(stable_at_zero, lambda_tiny)``.

    Near lambda = 0 the eigenvalues of ``S_lambda`` are ``1 - alpha_eff lambda + O(lambda^2)``
    and perturbations of those of D, so ``S_lambda`` (and ``T_lambda``, whose leading eigenvalue
    is ``1 - 2 alpha_eff lambda + O(lambda^2)``) is stable for all small lambda iff
    ``alpha_eff > 0`` and ``rho(D) < 1``. Below ``lambda_tiny`` that analytic decision and the
    expansions of :func:`_component_sums` are used instead of floating-point linear algebra.
    """
    gap = 1.0 - _memory_radius(algo)
    a_eff = algo.alpha_eff
    if gap > 0 and math.isfinite(a_eff) and a_eff > 0:
        return True, _TINY * gap / a_eff
    scale = 1.0 + float(np.linalg.norm(algo.g) * np.linalg.norm(algo.h))
    return False, 1e-12 / scale


def _moment_operators(algo: MemoryAlgorithm, lam: np.ndarray, self_noise: float) -> np.ndarray:
    """``T_lambda`` as (n, N^2, N^2) matrices in row-major vec form, N = M + 1."""
    N = algo.memory + 1
    S = algo.eigen_matrix(lam).reshape(lam.size, N, N)
    T = np.einsum("kij,kab->kiajb", S, S).reshape(lam.size, N * N, N * N)
    if self_noise != 0.0:
        gg = np.outer(algo.g, algo.g).ravel()
        hh = np.outer(algo.h, algo.h).ravel()
        T -= (self_noise * lam ** 2)[:, None, None] * np.outer(gg, hh)[None]
    return T


def _radii(algo: MemoryAlgorithm, lam: np.ndarray, self_noise: float):
    """Spectral radii ``(rho(S_lambda), rho(T_lambda))`` for each lambda (direct eigenvalues)."""
    S = algo.eigen_matrix(lam).reshape(lam.size, algo.memory + 1, algo.memory + 1)
    rho_S = np.max(np.abs(np.linalg.eigvals(S)), axis=1)
    rho_T = np.max(np.abs(np.linalg.eigvals(_moment_operators(algo, lam, self_noise))), axis=1)
    return rho_S, rho_T


def _stability_on(algo, lam, self_noise):
    """Radii on the nodes ``lam``, the tiny ones replaced by their leading-order values."""
    stable0, lam_tiny = _small_lambda(algo)
    tiny = lam < lam_tiny
    rho_S = np.empty(lam.size)
    rho_T = np.empty(lam.size)
    if np.any(~tiny):
        rho_S[~tiny], rho_T[~tiny] = _radii(algo, lam[~tiny], self_noise)
    if np.any(tiny):
        if stable0:  # 1 - alpha_eff lambda (and 1 - 2 alpha_eff lambda), or rho(D) if larger
            rD = _memory_radius(algo)
            rho_S[tiny] = np.maximum(1.0 - algo.alpha_eff * lam[tiny], rD)
            rho_T[tiny] = np.maximum(1.0 - 2.0 * algo.alpha_eff * lam[tiny], rD)
        else:
            rho_S[tiny] = rho_T[tiny] = np.inf  # unstable near lambda = 0 (see _small_lambda)
    ok_S = np.all(rho_S[~tiny] < 1.0 - _RHO_SLACK) and (stable0 or not np.any(tiny))
    ok_T = np.all(rho_T[~tiny] < 1.0 - _RHO_SLACK) and (stable0 or not np.any(tiny))
    return rho_S, rho_T, bool(ok_S), bool(ok_T)


def _component_sums(algo: MemoryAlgorithm, lam: np.ndarray, self_noise: float, signal: bool = False):
    """Per-component ``lambda^2 (Y)_00``, ``lambda^2 h^T Y h`` and (if ``signal``) ``lambda (Z)_00``.

    ``Y = sum_{n>=0} T^n(g g^T)`` and ``Z = sum_{n>=0} T^n(E11)`` from the linear systems
    ``(I - T) vec Y = vec(g g^T)``, ``(I - T) vec Z = vec(E11)`` of size (M+1)^2, batched over
    lambda. Below ``lambda_tiny`` (see :func:`_small_lambda`) the expansions

        lambda^2 Y_00 = lambda^2 h^T Y h = alpha_eff lambda / 2 + O(lambda^2),
        lambda Z_00 = 1 / (2 alpha_eff) + O(lambda)

    are used (the slow mode of ``S_lambda`` is ``1 - alpha_eff lambda`` with right eigenvector
    ``E1`` and left eigenvector ``(1, b^T (I-D)^-1)``, whose product with g is alpha_eff; tau2
    enters at the next order). Only valid where ``T`` is stable.
    """
    N = algo.memory + 1
    stable0, lam_tiny = _small_lambda(algo)
    tiny = lam < lam_tiny if stable0 else np.zeros(lam.size, dtype=bool)
    y00 = np.empty(lam.size)
    yhh = np.empty(lam.size)
    z00 = np.empty(lam.size) if signal else None
    if np.any(tiny):
        y00[tiny] = yhh[tiny] = 0.5 * algo.alpha_eff * lam[tiny]
        if signal:
            z00[tiny] = 0.5 / algo.alpha_eff
    big = ~tiny
    if np.any(big):
        lb = lam[big]
        A = np.eye(N * N)[None] - _moment_operators(algo, lb, self_noise)
        rhs = [np.outer(algo.g, algo.g).ravel()]
        if signal:
            e11 = np.zeros(N * N)
            e11[0] = 1.0
            rhs.append(e11)
        B = np.broadcast_to(np.stack(rhs, axis=1)[None], (lb.size, N * N, len(rhs)))
        sol = np.linalg.solve(A, B)
        hh = np.outer(algo.h, algo.h).ravel()
        y00[big] = lb ** 2 * sol[:, 0, 0]
        yhh[big] = lb ** 2 * (sol[:, :, 0] @ hh)
        if signal:
            z00[big] = lb * sol[:, 0, 1]
    return y00, yhh, z00


def _check_grid(spectrum: Spectrum, lam_tiny: float) -> np.ndarray:
    """Extra lambdas where strict stability is checked: for an infinite spectrum all of
    ``(0, lambda_max]`` matters (its tail nodes stand for a continuum of eigenvalues)."""
    if not spectrum.infinite:
        return np.zeros(0)
    lo = max(lam_tiny, float(spectrum.eigenvalues.min()))
    hi = spectrum.lambda_max
    if lo >= hi:
        return np.zeros(0)
    return np.geomspace(lo, hi, _GRID_POINTS)


# ------------------------------------------------------------------------------------------
# stability

@dataclass(frozen=True)
class StabilityReport:
    """Stability of a stationary algorithm on a problem (docs/math.md §5, Theorems 3/4/6/7/8).

    Fields:
        strictly_stable: ``rho(S_lambda) < 1`` for every lambda of the spectrum (for infinite
            spectra every lambda in (0, lambda_max], decided analytically near 0).
        max_spectral_radius: ``max rho(S_lambda)`` over the nodes checked. For an infinite
            spectrum the supremum is ``1 - O(lambda_min)`` and rounds to 1.0.
        noise_sum: ``V = sum_{n>=1} V_n = (tau1/B) sum_k m_k lambda_k^2 (Y_k)_00``.
        noise_sum_prime: ``V' = sum_{n>=1} V'_n = (tau1/B) sum_k m_k lambda_k^2 h^T Y_k h``
            (equal to V when e = 0). Both are ``inf`` when some ``T_lambda`` is unstable.
        converges: the loss converges to 0 (Theorem 3/8): strictly stable, every ``T_lambda``
            stable (so the signal U_n -> 0 and the V_n are summable) and ``V' < 1``.
        moment_stable: ``rho(T_lambda) < 1`` for every lambda checked.
        max_moment_radius: ``max rho(T_lambda)``.
        alpha_eff: ``Q(1)/P'(1)``.
    """

    strictly_stable: bool
    max_spectral_radius: float
    noise_sum: float
    noise_sum_prime: float
    converges: bool
    moment_stable: bool
    max_moment_radius: float
    alpha_eff: float


def stability(algorithm: MemoryAlgorithm, spectrum: Spectrum, noise: Noise) -> StabilityReport:
    """Strict stability, noise sums ``V, V'`` and convergence of the expected loss (docs/math.md §5).

    Per component (vectorised over the spectrum, any memory M, any e, any tau2)::

        Y_k = T_k(Y_k) + g g^T,      T_k(X) = S_k X S_k^T - (tau2/B) lambda_k^2 (h^T X h) g g^T
        V  = (tau1/B) sum_k m_k lambda_k^2 (Y_k)_00,     V' = (tau1/B) sum_k m_k lambda_k^2 h^T Y_k h

    solved as (M+1)^2 linear systems; components with ``lambda < 1e-8 (1 - rho(D)) / alpha_eff``
    use ``lambda^2 Y_00 = lambda^2 h^T Y h = alpha_eff lambda / 2`` (relative error <~ 1e-8)
    and are stable iff ``alpha_eff > 0`` and ``rho(D) < 1``. The loss converges iff the
    algorithm is strictly stable, every ``T_k`` is stable and ``V' < 1``; with ``V' > 1`` it
    diverges (Theorems 3 and 8). Plain SGD, tau2 = 0: ``V = (tau1/B) sum alpha lambda/(2 - alpha lambda)``.
    """
    algo = _check_stationary(algorithm)
    _check_spectrum_noise(spectrum, noise)
    s = noise.self_noise
    lam = spectrum.eigenvalues
    _, lam_tiny = _small_lambda(algo)
    check = np.concatenate([lam, _check_grid(spectrum, lam_tiny)])
    rho_S, rho_T, ok_S, ok_T = _stability_on(algo, check, s)
    finite_S = rho_S[np.isfinite(rho_S)]
    max_rho = float(np.max(rho_S)) if finite_S.size == rho_S.size else math.inf
    max_rho_T = float(np.max(rho_T)) if np.all(np.isfinite(rho_T)) else math.inf
    if ok_T and ok_S:
        y00, yhh, _ = _component_sums(algo, lam, s)
        m = spectrum.weights
        V = noise.coupling * float(np.sum(m * y00))
        Vp = noise.coupling * float(np.sum(m * yhh))
    else:
        V = Vp = math.inf
    converges = bool(ok_S and ok_T and Vp < 1.0)
    return StabilityReport(ok_S, max_rho, V, Vp, converges, ok_T, max_rho_T, float(algo.alpha_eff))


# ------------------------------------------------------------------------------------------
# memory-1 closed forms

def memory1_coefficients(algorithm: MemoryAlgorithm):
    """Multistep coefficients ``(beta, alpha_0, alpha_1)`` of a memory-1 algorithm::

        chi_lambda(z) = (z - 1)(z - beta) + lambda (alpha_0 z + alpha_1)

    From the matrix form: ``beta = D``, ``alpha_0 = alpha + e c``, ``alpha_1 = b c - alpha D - e c``
    (``Q(z) = h^T adj(z I - S0) g``; with e = 0 this is docs/math.md §2.2).
    """
    algo = _check_stationary(algorithm)
    if algo.memory != 1:
        raise ValueError(f"algorithm must have memory 1 for the memory-1 closed forms, got memory {algo.memory}")
    P, Q = algo.char_polys()
    return float(algo.D[0, 0]), float(Q[0]), float(Q[1])


def jury_stable_memory1(beta, alpha0, alpha1, lambda_max) -> bool:
    """Strict stability on all of ``(0, lambda_max]`` of ``chi = (z-1)(z-beta) + lambda(alpha0 z + alpha1)``.

    Jury conditions on ``chi = z^2 + a1 z + a2`` (``a1 = -(1 + beta - lambda alpha0)``,
    ``a2 = beta + lambda alpha1``), which are linear in lambda and so need checking only at
    ``lambda -> 0`` and ``lambda = lambda_max``::

        |beta| < 1,   alpha0 + alpha1 > 0,   lambda_max (alpha0 - alpha1) < 2 (1 + beta),
        -1 < beta + lambda_max alpha1 < 1.
    """
    beta = real_scalar(beta, "beta")
    alpha0 = real_scalar(alpha0, "alpha0")
    alpha1 = real_scalar(alpha1, "alpha1")
    lambda_max = positive_scalar(lambda_max, "lambda_max")
    return bool(abs(beta) < 1 and alpha0 + alpha1 > 0
                and lambda_max * (alpha0 - alpha1) < 2 * (1 + beta)
                and -1 < beta + lambda_max * alpha1 < 1)


def _h2_memory1(beta, alpha0, alpha1, lam):
    """``lambda^2 sum_{n>=1} r_n^2`` for ``sum_n r_n z^-n = Q(z)/chi(z)`` (H2 norm), stable form::

        lambda^2 r2 = lambda num / [(1 - beta - lambda alpha1) (alpha0 + alpha1) (2(1+beta) - lambda(alpha0 - alpha1))]
        num = (alpha0^2 + alpha1^2)(1 + a2) - 2 alpha0 alpha1 a1
    """
    a1 = -(1.0 + beta - lam * alpha0)
    a2 = beta + lam * alpha1
    num = (alpha0 ** 2 + alpha1 ** 2) * (1.0 + a2) - 2.0 * alpha0 * alpha1 * a1
    den = (1.0 - beta - lam * alpha1) * (alpha0 + alpha1) * (2.0 * (1.0 + beta) - lam * (alpha0 - alpha1))
    return lam * num / den


def noise_sum_memory1(algorithm: MemoryAlgorithm, spectrum: Spectrum, noise: Noise) -> float:
    """Closed-form ``V'`` (= ``V`` when e = 0) of a strictly stable memory-1 algorithm (docs/math.md §5).

    With ``r = sum_n (h^T S^(n-1) g)^2``, the H2 norm of ``Q(z)/chi(z)`` (see :func:`_h2_memory1`),
    the tau2 = 0 Lyapunov sum is ``Y0 = sum S^n g g^T S^nT`` with ``h^T Y0 h = r``. The self-noise
    term is rank one, so ``Y = Y0 / (1 + (tau2/B) lambda^2 r)`` solves ``Y = T(Y) + g g^T`` and::

        V' = (tau1/B) sum_k m_k lambda_k^2 r_k / (1 + (tau2/B) lambda_k^2 r_k).

    Returns ``inf`` if the algorithm is not strictly stable on the spectrum (Jury conditions at
    every node) or some denominator ``1 + (tau2/B) lambda^2 r <= 0`` (moment instability).
    """
    beta, a0, a1 = memory1_coefficients(algorithm)
    _check_spectrum_noise(spectrum, noise)
    lam = spectrum.eigenvalues
    a2 = beta + lam * a1
    jury = (np.abs(a2) < 1) & (lam * (a0 + a1) > 0) & (lam * (a0 - a1) < 2 * (1 + beta))
    if not (abs(beta) < 1 and np.all(jury)):
        return math.inf
    x = _h2_memory1(beta, a0, a1, lam)
    den = 1.0 + noise.self_noise * x
    if np.any(den <= 0):
        return math.inf
    return noise.coupling * float(np.sum(spectrum.weights * x / den))


# ------------------------------------------------------------------------------------------
# asymptotics

def phase_boundary(nu) -> float:
    """``zeta* = 2 - 1/nu``: signal-dominated phase for ``zeta < zeta*``, noise-dominated above."""
    nu = positive_scalar(nu, "nu")
    return 2.0 - 1.0 / nu


@dataclass(frozen=True)
class Asymptotics:
    """Large-t behaviour ``L_t ~ constant * t^(-exponent)`` (docs/math.md §6).

    Fields: ``phase`` ("signal" or "noise"), ``exponent``, ``constant``, ``noise_sum`` (V);
    also ``signal_sum`` (``sum_{t>=0} U_t``, used in the noise phase; inf when it diverges).
    """

    phase: str
    exponent: float
    constant: float
    noise_sum: float
    signal_sum: float = math.nan

    def predict(self, t):
        """``constant * t^(-exponent)``."""
        return self.constant * np.asarray(t, dtype=float) ** (-self.exponent)


def asymptotics(algorithm: MemoryAlgorithm, spectrum: Spectrum, noise: Noise) -> Asymptotics:
    """Phase, exponent and constant of ``L_t`` for a stationary, convergent algorithm with e = 0
    on a power-law spectrum ``lambda_k = Lam k^-nu``, ``lambda_k c_k^2 = Q k^-(kappa+1)`` (docs/math.md §6)::

        U_t ~ (Q / (2 kappa)) Gamma(zeta + 1) (2 alpha_eff Lam t)^(-zeta)
        V_t ~ (tau1/B) alpha_eff^2 (Lam^(1/nu) / nu) Gamma(2 - 1/nu) (2 alpha_eff t)^(-(2 - 1/nu))
        signal phase (zeta < 2 - 1/nu, or no noise):  L_t ~ U_t / (1 - V)
        noise phase  (zeta > 2 - 1/nu):               L_t ~ V_t (sum_{s>=0} U_s) / (1 - V)^2

    ``sum_s U_s = 1/2 sum_k m_k lambda_k c_k^2 (Z_k)_00`` with ``Z = T(Z) + E11``. At the phase
    boundary ``zeta = 2 - 1/nu`` both terms decay alike with a logarithmic correction: the phase
    is reported as "noise", the exponent is ``zeta`` and the constant is ``nan``. For a finite
    power law the formulas hold for ``1 << t << size^nu`` (afterwards the decay is exponential).
    """
    algo = _check_stationary(algorithm)
    _check_spectrum_noise(spectrum, noise)
    if not spectrum.is_power_law:
        raise ValueError("spectrum must be a power law (Spectrum.power_law): asymptotics need nu and kappa")
    if np.any(algo.e != 0):
        raise ValueError("algorithm must have e = 0 for the asymptotic formulas of docs/math.md §6 "
                         "(convert with algorithm.to_multistep().to_matrix())")
    rep = stability(algo, spectrum, noise)
    if not rep.converges:
        raise ValueError(f"algorithm must make the loss converge on this problem (strictly stable, moments "
                         f"stable and V' < 1); got strictly_stable={rep.strictly_stable}, V'={rep.noise_sum_prime:.6g}")
    nu, kappa, Lam, Q = spectrum.nu, spectrum.kappa, spectrum.scale, spectrum.q
    zeta = kappa / nu
    a_eff = algo.alpha_eff
    V = rep.noise_sum
    u_const = (Q / (2.0 * kappa)) * _gamma(zeta + 1.0) * (2.0 * a_eff * Lam) ** (-zeta)
    zstar = 2.0 - 1.0 / nu
    if noise.coupling == 0.0 or zeta < zstar:
        return Asymptotics("signal", zeta, u_const / (1.0 - V), V)
    y00, yhh, z00 = _component_sums(algo, spectrum.eigenvalues, noise.self_noise, signal=True)
    sum_U = 0.5 * float(np.sum(spectrum.weights * spectrum.coefficients2 * z00))
    if zeta == zstar:
        return Asymptotics("noise", zeta, math.nan, V, sum_U)
    v_const = (noise.coupling * a_eff ** 2 * Lam ** (1.0 / nu) / nu * _gamma(zstar)
               * (2.0 * a_eff) ** (-zstar))
    return Asymptotics("noise", zstar, v_const * sum_U / (1.0 - V) ** 2, V, sum_U)
