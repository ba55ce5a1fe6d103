r"""The tangent kernel of the one-hidden-layer network at initialisation, and the quadratic
problem of the linearised network (numpy; the mnist experiment's theory, docs/math.md §7b).

For ``f_c(x) = N^-1/2 sum_i a_ic phi(w_i . x)`` (``memsgd.experiments.digits_model``) the
parameter gradients give the tangent kernel

    Theta_cc'(x, x') = delta_cc' N^-1 sum_i phi(w_i.x) phi(w_i.x')
                       + (x . x') N^-1 sum_i a_ic a_ic' phi'(w_i.x) phi'(w_i.x').

We keep its class-averaged diagonal block

    K(x, x') = N^-1 sum_i [phi(w_i.x) phi(w_i.x') + abar_i^2 phi'(w_i.x) phi'(w_i.x') (x . x')],
    abar_i^2 = (1/C) sum_c a_ic^2,

the same kernel for every output (the blocks off the diagonal average to zero over ``a`` and the
diagonal ones differ from ``K`` by O(N^-1/2)). Training the linearised network
``f = f_0 + J (theta - theta_0)`` on ``L = 1/(2n) sum_x |f(x) - y|^2`` is then least squares with
Hessian ``J^T J / n``, whose nonzero eigenvalues are those of ``K / n`` (once per output),
``lambda_k`` with unit eigenvectors ``u_k``. The initial residual ``r_0 = f_0 - y`` gives the target
coefficients ``c_k^2 = sum_c (u_k . r_0c)^2 / (n lambda_k)``, so that ``1/2 sum_k lambda_k c_k^2`` is
the network's initial loss (directions with ``lambda_k < rtol lambda_max`` are dropped and their
share of the loss reported). The SE noise parameters come from the same eigenpairs
(``memsgd.experiments.empirical.estimate_tau_gram``).
"""
from __future__ import annotations

import numpy as np

from .._validation import float_array
from .empirical import estimate_tau_gram

__all__ = ["tangent_kernel", "linearised_problem", "power_law_fit"]


def _activation(name: str, z: np.ndarray):
    """``(phi(z), phi'(z))`` for the activations of ``memsgd.experiments.digits_model.ACTIVATIONS``."""
    if name == "relu":
        return np.maximum(z, 0.0), (z > 0).astype(np.float64)
    if name == "tanh":
        p = np.tanh(z)
        return p, 1.0 - p * p
    raise ValueError(f"activation must be 'relu' or 'tanh', got {name!r}")


def tangent_kernel(W, A, X, activation: str) -> np.ndarray:
    """The class-averaged tangent kernel ``K`` (n x n, float64) of the network ``[W (N, d), A (N, C)]``
    at the inputs ``X`` (n, d); formula in the module docstring."""
    W = float_array(W, "W", ndim=2)
    A = float_array(A, "A", ndim=2)
    X = float_array(X, "X", ndim=2)
    if W.shape[1] != X.shape[1] or A.shape[0] != W.shape[0]:
        raise ValueError(f"shapes do not match: W {W.shape}, A {A.shape}, X {X.shape}")
    P, dP = _activation(activation, X @ W.T)
    abar2 = np.mean(A * A, axis=1)
    return (P @ P.T + ((dP * abar2) @ dP.T) * (X @ X.T)) / W.shape[0]


def linearised_problem(W, A, X, Y, activation: str, rtol: float = 1e-10) -> dict:
    """The quadratic problem of the network linearised at ``[W, A]`` on the data ``(X, Y)``.

    Returns a dict with ``spectrum`` ([`memsgd.Spectrum`][memsgd.Spectrum]: ``lambda_k`` descending and
    ``c_k^2``), ``tau`` (``(tau1, tau2)`` of the SE noise fitted to the tangent features),
    ``initial_loss`` (the network's ``1/(2n) sum |f_0 - y|^2``), ``dropped_loss`` (the part of it
    in the dropped directions), ``trace`` (``sum_k lambda_k``) and ``kernel_diagonal_mean``.
    """
    from ..spectrum import Spectrum

    W, A = float_array(W, "W", ndim=2), float_array(A, "A", ndim=2)
    X, Y = float_array(X, "X", ndim=2), float_array(Y, "Y", ndim=2)
    n = X.shape[0]
    K = tangent_kernel(W, A, X, activation)
    P, _ = _activation(activation, X @ W.T)
    residual = P @ A / np.sqrt(W.shape[0]) - Y
    lam, U = np.linalg.eigh(K / n)
    lam, U = lam[::-1], U[:, ::-1]
    tau = estimate_tau_gram(eigen=(lam, U), rtol=rtol)
    keep = lam > rtol * lam[0]
    proj2 = np.sum((U.T @ residual) ** 2, axis=1)        # sum_c (u_k . r_0c)^2, all k
    c2 = proj2[keep] / (n * lam[keep])
    initial = 0.5 * float(np.sum(residual ** 2)) / n
    return dict(spectrum=Spectrum(lam[keep], c2), tau=tau, initial_loss=initial,
                dropped_loss=0.5 * float(np.sum(proj2[~keep])) / n, trace=float(np.sum(lam[keep])),
                kernel_diagonal_mean=float(np.mean(np.diag(K))))


def power_law_fit(values, k_min: int, k_max: int):
    """Least-squares fit ``values[k-1] ~ C k^-p`` in log-log over ``k_min <= k <= k_max`` (about 100
    log-spaced k); returns ``(p, C)``."""
    v = np.asarray(values, dtype=np.float64)
    if not 1 <= k_min < k_max <= v.size:
        raise ValueError(f"need 1 <= k_min < k_max <= {v.size}, got k_min={k_min}, k_max={k_max}")
    k = np.unique(np.round(np.geomspace(k_min, k_max, 100)).astype(int))
    slope, intercept = np.polyfit(np.log(k), np.log(v[k - 1]), 1)
    return float(-slope), float(np.exp(intercept))
