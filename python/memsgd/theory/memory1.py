"""Memory-1 algorithms in closed form: stability, noise sums, eigenvalue geometry and the
three spectral regions of the noise sum (docs/math.md §5, docs/theory.md "Memory 1").

A memory-1 algorithm has the characteristic polynomial (multistep coefficients
``(beta, alpha_0, alpha_1)``, docs/math.md §2.2)::

    chi_lambda(z) = (z - 1)(z - beta) + lambda (alpha_0 z + alpha_1) = z^2 + a1 z + a2,
    a1 = -(1 + beta - lambda alpha_0),     a2 = beta + lambda alpha_1.

Everything here is written with the quantities that stay accurate when ``1 - beta`` is tiny
(the acceleration regime, where beta -> 1): ``1 - beta`` itself, ``q1 = alpha_0 + alpha_1 =
Q(1) = alpha (1 - D) + b c`` (computed without the cancellation of ``alpha_0 + alpha_1``),
``chi(1) = lambda q1``, ``chi(-1) = 2 (1 + beta) - lambda (alpha_0 - alpha_1)`` and
``1 - a2 = (1 - beta) - lambda alpha_1``; and ``lambda`` only enters multiplied by a
coefficient, so eigenvalues near the ends of the float range do not overflow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._affine import refuse_affine
from .._stationary import spectrum_and_noise, stationary
from .._validation import float_array, positive_scalar, real_scalar
from ..algorithms import MemoryAlgorithm

__all__ = ["memory1_coefficients", "jury_stable_memory1", "noise_sum_memory1", "memory1_eigenvalues",
           "Memory1Geometry", "memory1_geometry", "NoiseRegions", "memory1_noise_regions"]


class _Memory1:
    """The scalars of a memory-1 algorithm ``(alpha, b, c, D, e)`` that the closed forms use."""

    def __init__(self, algo: MemoryAlgorithm):
        alpha, b, c, D, e = algo.alpha, float(algo.b[0]), float(algo.c[0]), float(algo.D[0, 0]), float(algo.e[0])
        self.beta = D
        self.alpha0 = alpha + e * c                        # Q(z) = alpha0 z + alpha1
        self.alpha1 = b * c - alpha * D - e * c
        self.gap = 1.0 - D                                 # 1 - beta, exact for beta in [1/2, 2]
        self.q1 = alpha * (1.0 - D) + b * c                # Q(1) = alpha0 + alpha1 (independent of e)
        self.d1 = alpha * (1.0 + D) - b * c + 2.0 * e * c  # -Q(-1) = alpha0 - alpha1
        self.p = b * c - e * c * (1.0 - D)                 # alpha0 beta + alpha1
        self.q0_minus = b * c - alpha * (1.0 + D)          # Q0(-1), Q0 = e1^T adj(zI - S0) g (e = 0 numerator)
        self.ce = c * e

    def chi_plus(self, lam):
        return lam * self.q1

    def chi_minus(self, lam):
        return 2.0 * (1.0 + self.beta) - lam * self.d1

    def one_minus_a2(self, lam):
        return self.gap - lam * self.alpha1

    def one_plus_a2(self, lam):
        return (1.0 + self.beta) + lam * self.alpha1

    def stable(self, lam) -> np.ndarray:
        """Schur stability of ``chi_lambda`` per lambda (Jury: |a2| < 1, chi(1) > 0, chi(-1) > 0)."""
        return ((self.chi_plus(lam) > 0) & (self.chi_minus(lam) > 0)
                & (self.one_minus_a2(lam) > 0) & (self.one_plus_a2(lam) > 0))

    def stable_up_to(self, lambda_max: float) -> bool:
        """Strict stability on all of ``(0, lambda_max]``: the Jury conditions are linear in lambda."""
        return bool(abs(self.beta) < 1 and self.q1 > 0 and self.chi_minus(lambda_max) > 0
                    and self.one_minus_a2(lambda_max) > 0 and self.one_plus_a2(lambda_max) > 0)

    def roots(self, lam) -> np.ndarray:
        """Eigenvalues ``z = 1 - w`` of S_lambda, shape (n, 2), from ``w^2 - s w + lambda q1 = 0``
        (``s = 1 - beta + lambda alpha0``), solved without cancellation in w."""
        lam = np.asarray(lam, dtype=float)
        s = self.gap + lam * self.alpha0
        disc = s * s - 4.0 * self.chi_plus(lam)
        w = np.empty(lam.shape + (2,), dtype=complex)
        real = disc >= 0
        sq = np.sqrt(np.abs(disc))
        with np.errstate(divide="ignore", invalid="ignore"):
            big = 0.5 * (s + np.copysign(sq, s))
            small = np.where(big != 0, self.chi_plus(lam) / big, 0.0)
        w[..., 0] = np.where(real, big, 0.5 * s + 0.5j * sq)
        w[..., 1] = np.where(real, small, 0.5 * s - 0.5j * sq)
        return 1.0 - w

    def margin(self, lam) -> np.ndarray:
        """``1 - rho(S_lambda)`` computed from ``w = 1 - z`` (accurate when rho is near 1)."""
        lam = np.asarray(lam, dtype=float)
        z = self.roots(lam)
        w = 1.0 - z
        complex_pair = np.abs(z[..., 0].imag) > 0
        # |z|^2 = a2 for a complex pair: 1 - |z| = (1 - a2) / (1 + |z|)
        m_complex = self.one_minus_a2(lam) / (1.0 + np.sqrt(np.maximum(self.beta + lam * self.alpha1, 0.0)))
        wr = w.real
        m_real = np.min(np.where(z.real >= 0, wr, 2.0 - wr), axis=-1)
        return np.where(complex_pair, m_complex, m_real)

    def sums(self, lam, signal: bool = False):
        """Per-component sums of the noiseless map ``L(X) = S X S^T`` (tau2 = 0)::

            y00 = lambda^2 sum_n (e1^T S^n g)^2,   yhh = lambda^2 sum_n (h^T S^n g)^2,
            z00 = lambda   sum_n (e1^T S^n e1)^2,  zhh = lambda   sum_n (h^T S^n e1)^2.

        Each is an H2 norm ``sum_n r_n^2`` of ``n(z) / chi(z)`` (``n`` of degree <= 1), for which
        ``sum_n r_n^2 = [n(1)^2 / chi(1) + n(-1)^2 / chi(-1)] / (2 (1 - a2))``: a sum of positive
        terms for a stable chi. Numerators: ``Q0 = e1^T adj(zI - S) g`` (= ``alpha (z - D) + b c``,
        e-free), ``Q``, ``z - D + lambda c e`` and ``z - D``; with ``chi(1) = lambda q1`` and
        ``Q0(1) = Q(1) = q1`` the first terms are ``lambda q1`` and ``(1 - D)^2 / q1`` exactly.
        """
        lam = np.asarray(lam, dtype=float)
        den = 2.0 * self.one_minus_a2(lam)
        cm = self.chi_minus(lam)
        with np.errstate(under="ignore"):
            y00 = (lam * self.q1 + (lam * self.q0_minus) ** 2 / cm) / den
            yhh = (lam * self.q1 + (lam * self.d1) ** 2 / cm) / den
            if not signal:
                return y00, yhh, None, None
            z00 = ((self.gap + lam * self.ce) ** 2 / self.q1 + lam * (1.0 + self.beta - lam * self.ce) ** 2 / cm) / den
            zhh = (self.gap ** 2 / self.q1 + lam * (1.0 + self.beta) ** 2 / cm) / den
        return y00, yhh, z00, zhh


def _memory1(algorithm) -> _Memory1:
    algo = stationary(algorithm)
    # (a readout changes neither S_lambda nor V': the sums at the gradient point)
    refuse_affine(algo, None, "the memory-1 closed forms", "use stability", allowed=("a readout",))
    if algo.memory != 1:
        raise ValueError(f"algorithm must have memory 1 for the memory-1 closed forms, got memory {algo.memory}")
    return _Memory1(algo)


def memory1_coefficients(algorithm: MemoryAlgorithm):
    """Multistep coefficients ``(beta, alpha_0, alpha_1)`` of a memory-1 algorithm::

        chi_lambda(z) = (z - 1)(z - beta) + lambda (alpha_0 z + alpha_1)

    From the matrix form: ``beta = D``, ``alpha_0 = alpha + e c``, ``alpha_1 = b c - alpha D - e c``
    (``Q(z) = h^T adj(z I - S0) g``; with e = 0 this is docs/math.md §2.2).

    Examples:
        >>> import memsgd
        >>> memsgd.memory1_coefficients(memsgd.heavy_ball(0.1, 0.9))     # (beta, alpha_0, alpha_1)
        (0.9, 0.1, 0.0)
    """
    m = _memory1(algorithm)
    return m.beta, m.alpha0, m.alpha1


def jury_stable_memory1(beta, alpha0, alpha1, lambda_max) -> bool:
    """Strict stability on all of ``(0, lambda_max]`` of ``chi = (z-1)(z-beta) + lambda(alpha0 z + alpha1)``.

    Jury conditions on ``chi = z^2 + a1 z + a2`` (``a1 = -(1 + beta - lambda alpha0)``,
    ``a2 = beta + lambda alpha1``), which are linear in lambda and so need checking only at
    ``lambda -> 0`` and ``lambda = lambda_max``::

        |beta| < 1,   alpha0 + alpha1 > 0,   lambda_max (alpha0 - alpha1) < 2 (1 + beta),
        -1 < beta + lambda_max alpha1 < 1.

    Examples:
        Heavy ball is stable on ``(0, lambda_max]`` while ``lr lambda_max < 2 (1 + beta)``:

        >>> import memsgd
        >>> memsgd.jury_stable_memory1(0.9, 0.1, 0.0, lambda_max=1.0), memsgd.jury_stable_memory1(0.9, 0.1, 0.0, 100.0)
        (True, False)
    """
    beta = real_scalar(beta, "beta")
    alpha0 = real_scalar(alpha0, "alpha0")
    alpha1 = real_scalar(alpha1, "alpha1")
    lambda_max = positive_scalar(lambda_max, "lambda_max")
    return bool(abs(beta) < 1 and alpha0 + alpha1 > 0
                and lambda_max * (alpha0 - alpha1) < 2 * (1 + beta)
                and -1 < beta + lambda_max * alpha1 < 1)


@np.errstate(all="ignore")   # extreme inputs overflow to inf / nan, which the decisions below handle
def noise_sum_memory1(algorithm: MemoryAlgorithm, spectrum, noise) -> float:
    """Closed-form ``V'`` (= ``V`` when e = 0) of a memory-1 algorithm (docs/math.md §5).

    Per component ``x = lambda^2 sum_n (h^T S^(n-1) g)^2``, the H2 norm of ``lambda Q(z)/chi(z)``::

        x = [lambda q1 + lambda^2 (alpha0 - alpha1)^2 / chi(-1)] / (2 (1 - a2)),

    (``q1 = alpha0 + alpha1``, ``chi(-1) = 2(1 + beta) - lambda(alpha0 - alpha1)``,
    ``1 - a2 = 1 - beta - lambda alpha1``). The tau2 = 0 Lyapunov sum ``Y0`` has ``lambda^2 h^T Y0 h = x``;
    the self-noise term is rank one, so ``Y = Y0 / (1 + (tau2/B) x)`` solves ``Y = T(Y) + g g^T`` and::

        V' = (tau1/B) sum_k m_k x_k / (1 + (tau2/B) x_k).

    Returns ``inf`` if the algorithm is not strictly stable on the spectrum (Jury conditions at
    every node) or some denominator ``1 + (tau2/B) x <= 0`` (moment instability).

    Examples:
        The closed form agrees with the general noise sum of [`stability`][memsgd.stability]:

        >>> import math, memsgd
        >>> algo, spec = memsgd.heavy_ball(0.1, 0.9), memsgd.Spectrum.power_law(2.0, 1.0)
        >>> noise = memsgd.Noise.gaussian(10)
        >>> math.isclose(memsgd.noise_sum_memory1(algo, spec, noise), memsgd.stability(algo, spec, noise).noise_sum,
        ...              rel_tol=1e-10)
        True
    """
    m = _memory1(algorithm)
    spectrum_and_noise(spectrum, noise)
    lam = spectrum.eigenvalues
    if not np.all(m.stable(lam)):
        return math.inf
    _, x, _, _ = m.sums(lam)
    den = 1.0 + noise.self_noise * x
    if np.any(den <= 0):
        return math.inf
    return noise.coupling * float(np.sum(spectrum.weights * x / den))


@np.errstate(all="ignore")   # extreme inputs overflow to inf / nan, which the decisions below handle
def memory1_eigenvalues(algorithm: MemoryAlgorithm, lam) -> np.ndarray:
    """The two eigenvalues of ``S_lambda`` (roots of ``chi_lambda``) for each lambda, shape
    ``lam.shape + (2,)``, complex. Computed as ``z = 1 - w`` with ``w`` solving
    ``w^2 - (1 - beta + lambda alpha0) w + lambda (alpha0 + alpha1) = 0`` without cancellation,
    so that ``1 - z`` is accurate for the slow root when ``lambda`` or ``1 - beta`` is tiny.

    Examples:
        Heavy ball at ``lambda = 1``: ``z^2 - (1 + beta - lr) z + beta = z^2 - 1.8 z + 0.9``:

        >>> import numpy as np, memsgd
        >>> np.round(memsgd.memory1_eigenvalues(memsgd.heavy_ball(0.1, 0.9), 1.0), 12).tolist()
        [(0.9-0.3j), (0.9+0.3j)]
    """
    m = _memory1(algorithm)
    lam = float_array(lam, "lam")
    return m.roots(lam)


@dataclass(frozen=True)
class Memory1Geometry:
    """Where the eigenvalues of ``S_lambda`` of a memory-1 algorithm lie as lambda runs over (0, inf)
    (the paper's Theorem 6.2; docs/theory.md "Memory 1").

    Fields:
        beta, alpha0, alpha1: the multistep coefficients.
        kind: ``"real"`` (both eigenvalues real for every lambda > 0), ``"circle"`` (a complex
            pair for lambda in ``complex_interval``, always on one circle), or ``"line"``
            (``alpha0 = 0``: the complex pairs lie on the line ``Re z = (1 + beta)/2``).
        complex_interval: ``(lambda_minus, lambda_plus)`` where the pair is complex (``lambda_plus``
            is ``inf`` for a line), or ``None``.
        center, radius: the circle ``|z - center| = radius``, ``center = -alpha1/alpha0``,
            ``radius^2 = (center - 1)(center - beta) = q1 p / alpha0^2``; ``None`` unless a circle.
    Each complex pair also has ``|z|^2 = a2 = beta + lambda alpha1`` (product of the roots); for
    heavy ball ``alpha1 = 0`` and the circle is ``|z| = sqrt(beta)``.

    Examples:
        >>> import math, memsgd
        >>> g = memsgd.memory1_geometry(memsgd.heavy_ball(0.1, 0.9))
        >>> g.kind, math.isclose(g.radius, math.sqrt(0.9))    # heavy ball: complex eigenvalues on |z| = sqrt(beta)
        ('circle', True)
    """

    beta: float
    alpha0: float
    alpha1: float
    kind: str
    complex_interval: tuple[float, float] | None
    center: float | None
    radius: float | None

    def __repr__(self) -> str:
        return (f"Memory1Geometry(beta={self.beta:.10g}, alpha0={self.alpha0:.10g}, alpha1={self.alpha1:.10g}, "
                f"kind={self.kind!r}, complex_interval={_fmt_pair(self.complex_interval)}, "
                f"center={_fmt(self.center)}, radius={_fmt(self.radius)})")


def memory1_geometry(algorithm: MemoryAlgorithm) -> Memory1Geometry:
    """Eigenvalue geometry of a memory-1 algorithm (docs/theory.md "Memory 1").

    The roots of ``chi_lambda`` are complex exactly when the discriminant
    ``(1 - beta)^2 - 2 lambda (q1 + p) + lambda^2 alpha0^2`` is negative, ``q1 = alpha0 + alpha1``,
    ``p = alpha0 beta + alpha1``. For ``q1 > 0, p > 0`` that is the interval between
    ``lambda_plus = (sqrt(q1) + sqrt(p))^2 / alpha0^2`` and ``lambda_minus = (1 - beta)^2 / (sqrt(q1) + sqrt(p))^2``
    (product ``(1 - beta)^2 / alpha0^2``); otherwise both roots are real for every lambda > 0.
    A complex root z satisfies ``lambda = -(z - 1)(z - beta) / (alpha0 (z - z0))``, ``z0 = -alpha1/alpha0``;
    with ``z = z0 + u`` this is real iff ``u + r^2/u`` is, ``r^2 = (z0 - 1)(z0 - beta)``, i.e.
    (for non-real u) iff ``|u| = r``: all complex pairs lie on the circle ``|z - z0| = r``.

    Examples:
        >>> import memsgd
        >>> memsgd.memory1_geometry(memsgd.heavy_ball(0.1, 0.9)).kind
        'circle'
    """
    m = _memory1(algorithm)
    if not (m.q1 > 0 and m.p > 0):
        return Memory1Geometry(m.beta, m.alpha0, m.alpha1, "real", None, None, None)
    # ratios before squares, products as x * x: coefficients near the ends of the float range
    # give inf or 0 where the value is out of range, never an OverflowError or ZeroDivisionError
    root_sum = math.sqrt(m.q1) + math.sqrt(m.p)
    ratio = m.gap / root_sum
    lam_minus = ratio * ratio
    if m.alpha0 == 0:
        return Memory1Geometry(m.beta, m.alpha0, m.alpha1, "line", (lam_minus, math.inf), None, None)
    ratio = root_sum / m.alpha0
    lam_plus = ratio * ratio
    return Memory1Geometry(m.beta, m.alpha0, m.alpha1, "circle", (lam_minus, lam_plus),
                           -m.alpha1 / m.alpha0 + 0.0, math.sqrt(m.q1) * math.sqrt(m.p) / abs(m.alpha0))


@dataclass(frozen=True)
class NoiseRegions:
    """The three spectral regions of the noise sum of a memory-1 algorithm with ``alpha1 < 0``
    (the paper's eq. (26) behind Theorem 7; docs/theory.md "Memory 1").

    Per component (tau2 = 0) ``x(lambda) = lambda^2 sum_n (h^T S^n g)^2`` is, to leading order,

        low     lambda < lambda_1 = (1 - beta)/|alpha1|:
                    x ~ alpha_eff lambda / 2
        middle  lambda_1 <= lambda < lambda_2 = (1 + beta) q1 / (|alpha1| (alpha0 - alpha1)):
                    x ~ q1 / (2 |alpha1|)
        high    lambda >= lambda_2:
                    x ~ lambda (alpha0 - alpha1) / (2 (1 + beta))

    (each within a factor ``2 * 2(1 + beta)/chi(-1)`` of the exact ``x``). Fields:
    ``lambda_1``, ``lambda_2``; ``exact``: the contributions ``(tau1/B) sum m x / (1 + (tau2/B) x)``
    of the nodes in each region to ``V'``; ``leading``: the same sums with the leading forms
    (tau2 = 0); ``counts``: the nodes per region.

    Examples:
        >>> import math, memsgd
        >>> from memsgd.theory import memory1_noise_regions
        >>> r = memory1_noise_regions(memsgd.am1(0.01, 0.99, 0.5), memsgd.Spectrum.power_law(2.0, 1.0),
        ...                           memsgd.Noise.gaussian(10))
        >>> math.isclose(r.lambda_1, (1 - 0.99) / 0.495)      # (1 - beta) / |alpha_1|, alpha_1 = -0.495
        True
    """

    lambda_1: float
    lambda_2: float
    exact: tuple[float, float, float]
    leading: tuple[float, float, float]
    counts: tuple[int, int, int]

    def __repr__(self) -> str:
        return (f"NoiseRegions(lambda_1={self.lambda_1:.6g}, lambda_2={self.lambda_2:.6g}, "
                f"exact=({', '.join(f'{v:.6g}' for v in self.exact)}), "
                f"leading=({', '.join(f'{v:.6g}' for v in self.leading)}), counts={tuple(self.counts)})")


@np.errstate(all="ignore")   # extreme inputs overflow to inf / nan, which the decisions below handle
def memory1_noise_regions(algorithm: MemoryAlgorithm, spectrum, noise) -> NoiseRegions:
    """Split ``V'`` over the three spectral regions of [`NoiseRegions`][memsgd.theory.NoiseRegions].

    Needs a strictly stable memory-1 algorithm with ``alpha1 < 0`` and ``lambda_1 < lambda_2``
    (``(1 - beta)(alpha0 - alpha1) < (1 + beta) q1``, which holds once ``alpha_eff`` is large:
    the regime ``1 - beta -> 0`` of the paper's Theorem 7).

    Examples:
        >>> import memsgd
        >>> from memsgd.theory import memory1_noise_regions
        >>> r = memory1_noise_regions(memsgd.am1(0.01, 0.99, 0.5), memsgd.Spectrum.power_law(2.0, 1.0),
        ...                           memsgd.Noise.gaussian(10))
        >>> bool(r.lambda_1 < r.lambda_2), len(r.exact)       # low, middle and high regions
        (True, 3)
    """
    m = _memory1(algorithm)
    spectrum_and_noise(spectrum, noise)
    if not m.alpha1 < 0:
        raise ValueError(f"the noise regions need alpha1 < 0 (a kick-type memory-1 algorithm), got alpha1={m.alpha1:g}")
    lam = spectrum.eigenvalues
    if not np.all(m.stable(lam)):
        raise ValueError("algorithm must be strictly stable on the spectrum for its noise regions")
    a1 = -m.alpha1
    lambda_1 = m.gap / a1
    lambda_2 = (1.0 + m.beta) * m.q1 / (a1 * m.d1) if m.d1 > 0 else math.inf
    if not lambda_1 < lambda_2:
        raise ValueError(f"the noise regions need lambda_1 < lambda_2, got lambda_1={lambda_1:g}, "
                         f"lambda_2={lambda_2:g} (1 - beta is not small enough for a middle region)")
    _, x, _, _ = m.sums(lam)
    den = 1.0 + noise.self_noise * x
    exact_terms = spectrum.weights * x / den
    lead = _leading_terms(m, lam)
    region = np.where(lam < lambda_1, 0, np.where(lam < lambda_2, 1, 2))
    exact = tuple(noise.coupling * float(np.sum(exact_terms[region == r])) for r in range(3))
    leading = tuple(noise.coupling * float(np.sum((spectrum.weights * lead)[region == r])) for r in range(3))
    counts = (int(np.sum(region == 0)), int(np.sum(region == 1)), int(np.sum(region == 2)))
    return NoiseRegions(float(lambda_1), float(lambda_2), exact, leading, counts)


def _leading_terms(m: _Memory1, lam) -> np.ndarray:
    """Leading forms of the three regions in one expression (alpha1 < 0, tau2 = 0)::

        x ~ lambda max((1 + beta) q1, lambda |alpha1| (alpha0 - alpha1))
            / (2 (1 + beta) max(1 - beta, lambda |alpha1|)),

    from the exact
    ``x = lambda [(1 + beta) q1 + lambda |alpha1| (alpha0 - alpha1)] / ((1 - beta + lambda |alpha1|) chi(-1))``
    with ``chi(-1) ~ 2 (1 + beta)``; a sum of two positive terms is within a factor 2 of their max."""
    a1 = -m.alpha1
    return (lam * np.maximum((1.0 + m.beta) * m.q1, lam * a1 * m.d1)
            / (2.0 * (1.0 + m.beta) * np.maximum(m.gap, lam * a1)))


def _fmt(x) -> str:
    return "None" if x is None else f"{x:.10g}"


def _fmt_pair(pair) -> str:
    return "None" if pair is None else f"({pair[0]:.10g}, {pair[1]:.10g})"
