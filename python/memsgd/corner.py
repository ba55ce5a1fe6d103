"""Corner algorithms (Yarotsky 2025, "Corner Gradient Descent", arXiv 2504.12519; docs/corner.md).

A stationary algorithm is its response function ``Psi = -P/Q`` ([`memsgd.response`][memsgd.response]); a *corner map*
has ``Psi(mu) ~ -c (mu - 1)^theta`` at ``mu -> 1``, so the contour ``Psi(|mu| = 1)`` has a corner of external
angle ``theta pi`` at 0 and, on a power law, the noiseless loss falls like ``t^(-theta zeta)`` instead of
GD's ``t^(-zeta)`` (``1 < theta <= 2``). The ideal corner map (the paper's eq. 28, normalised so that
``Psi(mu) ~ -A mu`` at infinity) is

    Psi_theta(mu) = -A (1 - 1/mu) / [ (2 - theta) int_0^inf e^(-(2 - theta) s) ds / (mu - 1 + e^(-s)) ],

holomorphic off ``[0, 1]``, with ``Psi_theta(|mu| >= 1)`` avoiding ``(0, 2A]`` (the paper's Proposition 1):
any spectrum in ``(0, 2A]`` is strictly stable. Its memory is infinite. The memory-M method replaces
the integral by the midpoint rule on ``M`` nodes ``s_m = (m - 1/2) h``, ``h = spacing / sqrt(M)`` (the
paper's Proposition 2 with ``l = spacing``; the rational approximation of power functions of Gopal &
Trefethen), with weights ``omega_m`` proportional to ``h e^(-(2 - theta) s_m)`` normalised to sum 1:

    Psi_M(mu) = -A (1 - 1/mu) / sum_m omega_m / (mu - d_m),      d_m = 1 - e^(-s_m),

whose ``P = (mu - 1) prod_m (mu - d_m)`` is the paper's. (The paper normalises by ``(2 - theta) h``
instead of ``sum h e^(-(2 - theta) s_m)``: the two agree as M grows, and ours keeps ``alpha = 1/A``
and allows ``theta = 2``.) In matrix form (docs/math.md §2, e = 0), with ``c_m = omega_m / A``::

    alpha = sum_m c_m = 1/A,   b = d,   c = (c_m),   D = diag(d_m),

i.e. ``M`` heavy-ball buffers ``u_m <- d_m u_m - c_m grad``, ``w <- w + sum_m u_m``: buffer m remembers
for ``1 / (1 - d_m) = e^(s_m)`` steps, so the rate ``t^(-theta zeta)`` holds up to a horizon
``~ e^(spacing sqrt(M))`` and falls back to ``t^(-zeta)`` (a larger constant) after it.
"""
from __future__ import annotations

import math

import numpy as np

from ._modal import Modes
from ._modal import noise_sum as _modal_noise_sum
from ._validation import bounded_scalar, instance_of, positive_int, positive_scalar, real_scalar
from .algorithms import MemoryAlgorithm
from .noise import Noise
from .spectrum import Spectrum

__all__ = ["corner", "corner_map", "corner_nodes"]

# Dense grid on (0, lambda_max] where strict stability of a corner method on an infinite spectrum
# is checked (besides the spectrum's nodes and the small-lambda limit).
_GRID = 400
# Scale search: bisection in log A to this relative width.
_SCALE_RTOL = 1e-3


def _theta(theta) -> float:
    theta = real_scalar(theta, "theta")
    if not 1.0 <= theta <= 2.0:
        raise ValueError(f"theta must be in [1, 2] (the corner's external angle theta*pi: 1 is GD's straight contour, "
                         f"above 2 the contour would cross the spectrum), got {theta}")
    return theta


def corner_nodes(theta, memory, spacing=5.0):
    """The memory-M corner rule: ``(d, omega)`` with ``d_m = 1 - e^(-s_m)``, ``s_m = (m - 1/2) spacing / sqrt(M)``
    and weights ``omega_m`` proportional to ``e^(-(2 - theta) s_m)``, summing to 1 (module docstring).

    Example:
        >>> import memsgd
        >>> d, w = memsgd.corner_nodes(1.5, 4, spacing=4.0)
        >>> d.round(4).tolist()
        [0.6321, 0.9502, 0.9933, 0.9991]
    """
    theta = _theta(theta)
    memory = positive_int(memory, "memory")
    spacing = positive_scalar(spacing, "spacing")
    h = spacing / math.sqrt(memory)
    s = (np.arange(memory) + 0.5) * h
    d = -np.expm1(-s)
    log_w = -(2.0 - theta) * s
    w = np.exp(log_w - log_w.max())
    return d, w / w.sum()


def _build(theta, memory, scale, spacing) -> MemoryAlgorithm:
    d, w = corner_nodes(theta, memory, spacing)
    c = w / scale
    algo = MemoryAlgorithm(float(c.sum()), d, c, np.diag(d))
    return algo._named("corner", theta=theta, memory=memory, scale=scale, spacing=spacing)


def _stable(algo: MemoryAlgorithm, spectrum: Spectrum) -> bool:
    """Strict stability on the spectrum (and on a grid of ``(0, lambda_max]`` for an infinite one) from
    the modes: every ``|mu| < 1``; near ``lambda = 0`` stable since ``alpha_eff > 0`` and ``0 < d_m < 1``."""
    lam = spectrum.eigenvalues
    if spectrum.infinite:
        lam = np.concatenate([lam, np.geomspace(max(float(lam.min()), 1e-12 * spectrum.lambda_max),
                                                spectrum.lambda_max, _GRID)])
    return bool(np.all(Modes(algo, lam, "corner").stable()))


def corner(theta, memory, *, spectrum=None, noise=None, scale=None, spacing=5.0, noise_sum=0.5) -> MemoryAlgorithm:
    """The memory-M corner method of angle ``theta`` (module docstring; docs/corner.md).

    ``Psi(mu) = -A (1 - 1/mu) / sum_m omega_m / (mu - d_m)``, in matrix form ``alpha = 1/A``, ``b = d``,
    ``c = omega / A``, ``D = diag(d)``, ``e = 0`` (``d, omega`` from [`corner_nodes`][memsgd.corner.corner_nodes]).
    The scale ``A`` is
    the inverse learning rate: ``Psi ~ -A mu`` at infinity, and the ideal map keeps ``(0, 2A]`` stable.

    Choice of ``A``:

    - ``scale`` given: that ``A``.
    - else with ``spectrum``: the smallest ``A >= lambda_max / 2`` for which the method is strictly stable
      on the spectrum (checked on its nodes and a grid of ``(0, lambda_max]``); with ``noise`` too (a
      finite batch), ``A`` is then raised (bisection in ``log A``) until the noise sum
      ``V = (tau1/B) sum_k lambda_k^2 sum_n (e1^T S_k^n g)^2 / (1 + ...)`` (docs/math.md §5) is at most
      ``noise_sum``: the loss converges (``V < 1``) with ``L_t ~ (signal) / (1 - V)``.
    - else ``A = 1/2`` (stable for ``lambda_max <= 1``).

    Args:
        theta: external angle of the corner over pi, in [1, 2]; the loss rate is ``t^(-theta zeta)`` up to
            the memory's horizon. Best under noise: [`memsgd.theory.theta_max`][memsgd.theory.theta_max] (below 2 and
            below
            ``nu``, where ``V`` diverges for the ideal map).
        memory: M >= 1 (state: M vectors of the parameters' size).
        spectrum: the problem ([`memsgd.Spectrum`][memsgd.Spectrum]), to fit ``A`` to its top eigenvalue.
        noise: the mini-batch noise ([`memsgd.Noise`][memsgd.Noise]), to fit ``A`` to ``noise_sum``; needs ``spectrum``.
        scale: ``A > 0`` directly (then spectrum and noise are not used).
        spacing: ``l`` in ``h = l / sqrt(M)`` (default 5, the paper's); larger reaches further in time with
            a coarser approximation of the corner.
        noise_sum: target ``V`` in (0, 1) for the noise fit (default 0.5).

    Returns:
        A stationary [`memsgd.MemoryAlgorithm`][memsgd.MemoryAlgorithm] whose repr is the call that rebuilds it,
        ``corner(theta=..., memory=..., scale=..., spacing=...)``.

    Example:
        >>> import memsgd
        >>> spec, noise = memsgd.Spectrum.power_law(2.0, 1.0, head=64), memsgd.Noise.gaussian(10)
        >>> algo = memsgd.corner(1.8, 4, spectrum=spec, noise=noise)
        >>> rep = memsgd.stability(algo, spec, noise)
        >>> rep.strictly_stable, rep.converges, round(rep.noise_sum, 2)
        (True, True, 0.5)
        >>> name, args = algo.preset
        >>> algo.alpha * args["scale"]                     # alpha = 1 / A
        1.0

    Examples:
        >>> import memsgd
        >>> algo = memsgd.corner(1.5, 4, scale=1.0)      # theta = 1.5, memory 4, A = 1
        >>> algo.memory, round(algo.alpha, 12)            # alpha = 1 / A
        (4, 1.0)
    """
    theta = _theta(theta)
    memory = positive_int(memory, "memory")
    spacing = positive_scalar(spacing, "spacing")
    target = bounded_scalar(noise_sum, "noise_sum", 0.0, 1.0, low_open=True, high_open=True)
    if spectrum is not None:
        instance_of(spectrum, Spectrum, "spectrum")
    if noise is not None:
        instance_of(noise, Noise, "noise")
        if spectrum is None:
            raise ValueError("noise needs spectrum: the noise sum that fixes the scale is a sum over the spectrum")
        if noise.per_step:
            raise ValueError("noise must have one batch size for corner (the scale is fitted to a constant batch)")
    if scale is not None:
        return _build(theta, memory, positive_scalar(scale, "scale"), spacing)
    if spectrum is None:
        return _build(theta, memory, 0.5, spacing)
    A = 0.5 * spectrum.lambda_max
    for _ in range(200):
        if _stable(_build(theta, memory, A, spacing), spectrum):
            break
        A *= 1.05
    else:  # pragma: no cover - the ideal map is stable on (0, 2A]; the discretisation moves it by little
        raise ValueError(f"corner(theta={theta}, memory={memory}): no stable scale found up to A = {A:.3g}")
    if noise is None or noise.coupling == 0.0:
        return _build(theta, memory, A, spacing)

    def excess(a):
        return noise_sum_of(a) > target

    def noise_sum_of(a):
        return _modal_noise_sum(Modes(_build(theta, memory, a, spacing), spectrum.eigenvalues), spectrum, noise)

    if not excess(A):
        return _build(theta, memory, A, spacing)
    lo, hi = A, 2.0 * A
    while excess(hi):
        lo, hi = hi, 2.0 * hi
        if hi > 1e30 * A:  # pragma: no cover - V -> 0 as A -> inf
            raise ValueError("corner: the noise sum does not fall below noise_sum as the scale grows")
    while hi / lo - 1.0 > _SCALE_RTOL:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if excess(mid) else (lo, mid)
    return _build(theta, memory, hi, spacing)


def corner_map(theta, mu, scale=1.0):
    """The ideal corner map ``Psi_theta(mu)`` (module docstring), ``1 < theta < 2``, for complex ``mu``
    off ``[0, 1]``: ``-A (1 - 1/mu) / ((2 - theta) I(mu))`` with
    ``I(mu) = int_0^1 x^(1 - theta) dx / (mu - 1 + x) = 2F1(1, a; a + 1; -1/(mu - 1)) / (a (mu - 1))``,
    ``a = 2 - theta``. Near ``mu = 1``: ``Psi ~ -A (sin(pi a) / (pi a)) (mu - 1)^theta``.

    Example:
        >>> import memsgd, numpy as np
        >>> x = 1e-6
        >>> psi = memsgd.corner_map(1.5, 1 + x * np.exp(0.3j))
        >>> bool(abs(psi / (-(np.sin(np.pi * 0.5) / (np.pi * 0.5)) * (x * np.exp(0.3j)) ** 1.5) - 1) < 1e-2)
        True
    """
    from scipy.special import hyp2f1

    theta = real_scalar(theta, "theta")
    if not 1.0 < theta < 2.0:
        raise ValueError(f"theta must be in (1, 2) for the ideal corner map, got {theta}")
    A = positive_scalar(scale, "scale")
    mu = np.asarray(mu, dtype=complex)
    a = 2.0 - theta
    z = mu - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        integral = hyp2f1(1.0, a, a + 1.0, -1.0 / z) / (a * z)
        return -A * (1.0 - 1.0 / mu) / (a * integral)
