"""The contour view of a stationary algorithm (Yarotsky 2025, "Corner Gradient Descent", §3;
docs/corner.md).

With the characteristic polynomials of docs/math.md §2.2, ``chi_lambda(mu) = P(mu) + lambda Q(mu)``, the
*response function*

    Psi(mu) = -P(mu) / Q(mu),       so that   chi_lambda(mu) = Q(mu) (lambda - Psi(mu)),

says everything about the noiseless and noisy dynamics: ``mu`` is an eigenvalue of ``S_lambda`` exactly
when ``Psi(mu) = lambda``, and the propagators ``U_t, V_t`` depend on the algorithm only through
``Psi``. (The paper writes ``chi = P - lambda Q`` and ``Psi = P/Q``; our ``Q`` has the opposite sign, so
the two ``Psi`` are the same function.) Strict stability on the spectrum interval ``(0, lambda_max]``
means that ``Psi`` takes no value of that interval on ``|mu| >= 1``; the image of the unit circle,
the *contour* ``gamma = Psi({|mu| = 1})``, passes through 0 once (at ``mu = 1``) and for a natural
algorithm encloses the spectrum. Near ``mu = 1``, ``Psi(mu) = -(mu - 1) / alpha_eff + ...``: the contour is
smooth there, with a straight angle. Examples: GD with learning rate ``a`` has ``Psi(mu) = (1 - mu) / a``, the
circle of radius ``1/a`` through 0 and ``2/a``; heavy ball an ellipse; corner methods
([`memsgd.corner`][memsgd.corner]) a contour with a corner of external angle ``theta pi`` at 0.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ._stationary import stationary
from ._validation import float_array, positive_int

__all__ = ["response", "response_contour", "mode_locus"]


def response(algorithm) -> Callable:
    """The response function ``Psi = -P/Q`` of a stationary algorithm (docs/math.md §2.2 for P, Q).

    ``Psi(mu) = lambda`` exactly when ``mu`` is an eigenvalue of ``S_lambda``; see the module docstring.

    Args:
        algorithm: a stationary [`memsgd.MemoryAlgorithm`][memsgd.MemoryAlgorithm] (any memory, any ``e``).

    Returns:
        A function of ``mu`` (complex scalar or array) returning ``Psi(mu)`` (complex; ``inf`` at the
        zeros of ``Q``).

    Example:
        >>> import memsgd
        >>> psi = memsgd.response(memsgd.gd(0.5))
        >>> float(psi(-1.0).real)          # (1 - mu) / lr: the contour crosses the real axis at 2 / lr
        4.0
    """
    algo = stationary(algorithm, "the response function is defined for constant parameters")
    alpha, b, c, D, e = algo.parameters()
    M = algo.memory

    # P/Q = 1 / h^T (mu - S0)^-1 g = (mu - 1) / (alpha + b^T x + (mu - 1) e^T x), x = (mu - D)^-1 c, by
    # solves: the monomial coefficients of P and Q cancel catastrophically when the modes cluster
    # near 1 (a corner method with memory 8 already loses every digit of P/Q near mu = 1).
    def psi(mu):
        mu = np.asarray(mu, dtype=complex)
        flat = mu.reshape(-1)
        if M:
            mats = flat[:, None, None] * np.eye(M)[None] - D[None]
            x = np.linalg.solve(mats, np.broadcast_to(c.astype(complex), (flat.size, M))[..., None])[..., 0]
            bx, ex = x @ b, x @ e
        else:
            bx = ex = np.zeros(flat.size)
        z = flat - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            return (-z / (alpha + bx + z * ex)).reshape(mu.shape)

    return psi


def response_contour(algorithm, points: int = 2001):
    """The contour ``gamma = Psi(e^(i phi))``, ``phi`` in ``[-pi, pi]``: the image of the unit circle.

    Args:
        algorithm: a stationary [`memsgd.MemoryAlgorithm`][memsgd.MemoryAlgorithm].
        points: number of angles (>= 3), evenly spaced in ``phi`` and symmetric about 0; near ``phi = 0``
            (``mu = 1``, where the contour passes through 0) 1/3 of them are spaced
            logarithmically down to ``phi = 1e-6`` so that a corner is resolved.

    Returns:
        ``(phi, psi)``: the angles (increasing) and the complex contour points.

    Example:
        >>> import memsgd, numpy as np
        >>> phi, psi = memsgd.response_contour(memsgd.gd(1.0), points=101)
        >>> bool(np.allclose(np.abs(psi - 1.0), 1.0))   # GD: the circle |z - 1/lr| = 1/lr
        True
    """
    points = positive_int(points, "points")
    if points < 3:
        raise ValueError(f"points must be >= 3, got {points}")
    psi = response(algorithm)
    half = points // 2
    fine = max(1, half // 3)
    coarse = np.linspace(0.0, np.pi, half - fine + 1)[1:]
    small = np.geomspace(1e-6, coarse[0], fine + 1)[:-1]
    pos = np.concatenate([small, coarse])
    phi = np.concatenate([-pos[::-1], [0.0] if points % 2 else [], pos])
    return phi, psi(np.exp(1j * phi))


def mode_locus(algorithm, lambdas):
    """The eigenvalues ``mu`` of ``S_lambda`` (the roots of ``P + lambda Q``) for each lambda: how the
    modes move over the spectrum interval (the preimage of ``[0, lambda_max]`` under ``Psi``). For
    diagonal ``D`` and ``e = 0`` they come from the secular equation ``mu - 1 + lambda (alpha + sum_m
    b_m c_m / (mu - d_m)) = 0`` (accurate to a few ulps in ``mu - 1``), otherwise from ``eigvals(S_lambda)``.

    Args:
        algorithm: a stationary [`memsgd.MemoryAlgorithm`][memsgd.MemoryAlgorithm].
        lambdas: 1-D array of eigenvalues.

    Returns:
        Complex array of shape ``(len(lambdas), M + 1)``, each row sorted by decreasing modulus.

    Example:
        >>> import memsgd
        >>> mu = memsgd.mode_locus(memsgd.heavy_ball(0.1, 0.5), [1.0])
        >>> bool(abs(abs(mu[0, 0]) ** 2 - 0.5) < 1e-12)     # complex pair of modulus sqrt(beta)
        True
    """
    lam = float_array(lambdas, "lambdas", ndim=1)
    algo = stationary(algorithm, "the modes are defined for constant parameters")
    try:
        from ._modal import Modes
        mu = 1.0 + Modes(algo, lam, "mode_locus").eps   # diagonal D, e = 0: the accurate secular roots
    except ValueError:
        mu = np.linalg.eigvals(algo.eigen_matrix(lam).reshape(lam.size, algo.memory + 1, algo.memory + 1))
    order = np.argsort(-np.abs(mu), axis=1, kind="stable")
    return np.take_along_axis(mu, order, axis=1)
