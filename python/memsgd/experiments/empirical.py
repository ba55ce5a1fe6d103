r"""Mini-batch noise of a finite data set: the SE parameters fitted to it, and the exact expected
loss without the SE approximation (numpy).

Sampling a batch of B rows of ``X`` (n x d) uniformly *with replacement*, the stochastic Hessian
is ``H_B = (1/B) sum_b x_b x_b^T`` with ``E H_B = H = X^T X / n`` and noise operator
(docs/math.md §3)::

    Sigma(C) = E[x x^T C x x^T] - H C H = (1/n) sum_i (x_i^T C x_i) x_i x_i^T - H C H.

The engine replaces it by the SE form ``tau1 Tr(HC) H - tau2 H C H`` (exact for Gaussian x with
``tau = (1, -1)``) and keeps only the eigen-diagonal blocks of the second moment.
"""
from __future__ import annotations

import numpy as np

from .._validation import float_array, instance_of, positive_int

__all__ = ["estimate_tau", "estimate_tau_gram", "exact_mean_loss"]


def _eigenbasis(X: np.ndarray, rtol: float):
    n = X.shape[0]
    lam, V = np.linalg.eigh(X.T @ X / n)
    keep = lam > rtol * lam.max()
    return lam[keep], V[:, keep]


def estimate_tau(x, rtol: float = 1e-10):
    r"""SE noise parameters ``(tau1, tau2)`` fitted to the empirical distribution of the rows of
    ``x`` (n x d).

    In the eigenbasis of ``H`` (``z = V^T x``, eigenvalues ``lambda_i``; directions with
    ``lambda < rtol lambda_max`` dropped, as [`memsgd.Spectrum.from_features`][memsgd.Spectrum.from_features] does), the
    noise of a unit matrix ``C = e_j e_j^T`` on the eigen-diagonal is exactly

        S_ij = Sigma(e_j e_j^T)_ii = E[z_i^2 z_j^2] - lambda_i^2 delta_ij,

    and the SE form predicts ``tau1 lambda_i lambda_j - tau2 lambda_i^2 delta_ij``. The fit is the
    least-squares one over all ``(i, j)`` with residuals scaled by ``1/sqrt(lambda_i lambda_j)``
    (relative to the Gaussian size of each entry). ``tau2`` only enters the diagonal, so it fits
    the diagonal exactly on average and ``tau1`` comes from the off-diagonal; both are ratios
    of sums, computed in O(n d) from the fourth moments without forming the d x d matrix::

        tau1        = sum_{i != j} E[z_i^2 z_j^2] / sum_{i != j} lambda_i lambda_j
                    = (E|z|^4 - sum_i E z_i^4) / ((sum lambda)^2 - sum lambda^2)
        tau1 - tau2 = sum_i (E z_i^4 - lambda_i^2) / sum_i lambda_i^2

    Gaussian data give ``(1, -1)``; data with independent symmetric +-1 coordinates, ``(1, 1)``.
    Heavy-tailed data give ``tau1 > 1`` (samples with a large norm are loud in every direction).

    Examples:
        Data with independent symmetric +-1 coordinates (here every corner of a scaled cube) have
        ``(tau1, tau2) = (1, 1)``:

        >>> import itertools, numpy as np
        >>> from memsgd.experiments.empirical import estimate_tau
        >>> x = np.array(list(itertools.product([-1.0, 1.0], repeat=3))) * [1.0, 0.7, 0.4]
        >>> np.round(estimate_tau(x), 12).tolist()
        [1.0, 1.0]
    """
    X = float_array(x, "x", ndim=2, allow_empty=False)
    lam, V = _eigenbasis(X, rtol)
    z2 = (X @ V) ** 2
    fourth = np.mean(z2 ** 2, axis=0)                       # E z_i^4
    total = np.mean(np.sum(z2, axis=1) ** 2)                # E |z|^4
    off = lam.sum() ** 2 - np.sum(lam ** 2)
    if not off > 0:
        raise ValueError("x must have at least two directions of nonzero variance to fit tau1")
    tau1 = (total - fourth.sum()) / off
    tau2 = tau1 - np.sum(fourth - lam ** 2) / np.sum(lam ** 2)
    return float(tau1), float(tau2)


def estimate_tau_gram(gram=None, rtol: float = 1e-10, *, eigen=None):
    r"""[`estimate_tau`][memsgd.experiments.empirical.estimate_tau] from the Gram matrix ``G = x x^T`` (n x n) alone,
    for features known
    only through their inner products (a kernel, e.g. a network's tangent kernel).

    With ``G / n = sum_k lambda_k u_k u_k^T`` (the nonzero eigenvalues of ``H = x^T x / n``), the
    eigen-coordinates of row i are ``z_ik = sqrt(n lambda_k) u_ik``, so
    ``E z_k^4 = n lambda_k^2 sum_i u_ik^4`` and ``E |z|^4 = mean_i (sum_k n lambda_k u_ik^2)^2``
    (``= mean_i G_ii^2`` when no direction is dropped); then the two ratios of
    [`estimate_tau`][memsgd.experiments.empirical.estimate_tau].
    Directions with ``lambda < rtol lambda_max`` are dropped as there. ``eigen``: the pair
    ``(lambda, U)`` of ``G / n`` when the caller has it already (then ``gram`` is not needed).
    Equal to ``estimate_tau(x)`` up to rounding (tested to 1e-10).
    """
    if eigen is None:
        G = float_array(gram, "gram", ndim=2, allow_empty=False)
        if G.shape[0] != G.shape[1]:
            raise ValueError(f"gram must be square (n x n), got shape {G.shape}")
        lam, U = np.linalg.eigh(G / G.shape[0])
    else:
        lam, U = (np.asarray(a, dtype=np.float64) for a in eigen)
    keep = lam > rtol * lam.max()
    lam, U = lam[keep], U[:, keep]
    n = U.shape[0]
    fourth = n * lam ** 2 * np.sum(U ** 4, axis=0)                   # E z_k^4
    total = np.mean((n * (U ** 2) @ lam) ** 2)                      # E |z|^4
    off = lam.sum() ** 2 - np.sum(lam ** 2)
    if not off > 0:
        raise ValueError("gram must have at least two directions of nonzero variance to fit tau1")
    tau1 = (total - fourth.sum()) / off
    tau2 = tau1 - np.sum(fourth - lam ** 2) / np.sum(lam ** 2)
    return float(tau1), float(tau2)


def exact_mean_loss(algorithm, x, w_star, batch_size, steps, record=None, rtol: float = 1e-10, *, targets=None):
    r"""Exact expected excess loss ``E L_t = 1/2 E (w_t - w*)^T H (w_t - w*)`` of mini-batch SGD
    with memory (any memory M, any e) on least squares with features ``x`` (n x d) and realizable
    targets ``y = x w*``, batches of ``batch_size`` rows drawn uniformly with replacement, from
    ``w_0 = 0, u_0 = 0``. No SE approximation and no eigen-diagonal closure: the full second
    moment ``Q = E[s s^T]`` of the state ``s = (w - w*, u^1..u^M)`` evolves by

        Q' = A Q A^T + (1/B) (g g^T) kron Sigma(Y),     A = S0 kron I - (g h^T) kron H,
        Y  = (h^T kron I) Q (h kron I)   (second moment at the gradient point),
        Sigma(Y) = (1/n) sum_i (x_i^T Y x_i) x_i x_i^T - H Y H,

    with ``(S0, g, h)`` of docs/math.md §2.1 at each step. It runs in the eigenbasis of ``H``
    (``z = V^T x``; directions with ``lambda < rtol lambda_max`` dropped: the data never move
    them), where ``A`` acts on each pair of eigen-directions ``(i, j)`` as
    ``Q_ij -> S_i Q_ij S_j^T`` with ``S_i = S0 - lambda_i g h^T``. Cost per step
    O(n k^2 + (M+1)^3 k^2) for rank k: for small feature dimensions. ``w_star`` may be (d,) or
    (d, outputs) (losses summed over outputs). ``algorithm``: a [`memsgd.MemoryAlgorithm`][memsgd.MemoryAlgorithm]
    or [`memsgd.Schedule`][memsgd.schedules.Schedule]. Returns the losses at ``record`` (increasing steps; default
    every step ``0..steps``).

    ``targets`` (n x outputs, or (n,)): train on these instead of ``x w*`` (raw labels, not
    realizable); ``w_star`` must then be their least-squares solution, so that the residual
    ``r = y - x^T w*`` is orthogonal to the features (``X^T r = 0``, checked) and ``L_t`` stays the
    excess loss. A sample's gradient at the gradient point ``p`` is ``x x^T p - x r``, so the noise
    gains two terms::

        Sigma(Y, pbar) += (1/n) sum_i (r_i^2 - 2 r_i x_i^T pbar) x_i x_i^T,

    ``pbar = E p`` the mean at the gradient point (per output; the mean evolves noise-free,
    ``m' = A m`` from ``m_0 = -w*``). The first is the label noise ``sigma^2 H`` of docs/math.md
    §9 only when ``r^2`` is independent of ``x`` (then ``sigma^2 = E r^2``, summed over outputs);
    the second vanishes when ``r`` is independent of ``x`` with mean 0. Here both are kept as the
    data have them.

    Examples:
        On such data the SE approximation is exact (docs/math.md §3), so the engine on the data's
        spectrum with ``Noise(B, 1, 1)`` gives the same losses:

        >>> import itertools, numpy as np, memsgd
        >>> from memsgd.experiments.empirical import exact_mean_loss
        >>> x = np.array(list(itertools.product([-1.0, 1.0], repeat=3))) * [1.0, 0.7, 0.4]
        >>> w_star = np.array([1.0, -1.0, 0.5])
        >>> exact = exact_mean_loss(memsgd.heavy_ball(0.2, 0.5), x, w_star, 2, 5)
        >>> se = memsgd.loss_curve(memsgd.heavy_ball(0.2, 0.5), memsgd.Spectrum.from_features(x, x @ w_star),
        ...                        memsgd.Noise(2, 1.0, 1.0), 5).loss
        >>> bool(np.allclose(exact, se, rtol=1e-12))
        True
    """
    from ..algorithms import MemoryAlgorithm
    from ..schedules import Schedule

    instance_of(algorithm, (MemoryAlgorithm, Schedule), "algorithm")
    X = float_array(x, "x", ndim=2, allow_empty=False)
    W = float_array(w_star, "w_star")
    given = W.shape
    W = W.reshape(-1, 1) if W.ndim == 1 else W
    if W.ndim != 2 or W.shape[0] != X.shape[1]:
        transposed = ("; x looks transposed (it must be samples x features): pass x.T"
                      if W.ndim == 2 and W.shape[0] == X.shape[0] else "")
        raise ValueError(f"w_star must have shape ({X.shape[1]},) or ({X.shape[1]}, outputs) (one entry per "
                         f"feature of x, shape {X.shape}), got {given}{transposed}")
    B = positive_int(batch_size, "batch_size")
    steps = positive_int(steps, "steps")
    wanted = set(range(steps + 1) if record is None else (int(t) for t in record))
    params_at = algorithm.at if isinstance(algorithm, Schedule) else (lambda t: algorithm)
    residual = None if targets is None else _residual(targets, X, W)
    lam, V = _eigenbasis(X, rtol)
    Z = X @ V
    n, k, M = X.shape[0], lam.size, algorithm.memory
    c = V.T @ W
    Q = np.zeros((M + 1, k, M + 1, k))                      # Q[a, i, b, j]: blocks of E[s s^T]
    Q[0, :, 0, :] = c @ c.T
    if residual is not None:
        mean = np.zeros((M + 1, k, c.shape[1]))             # E s per output, s_0 = (w_0 - w*, 0) = (-c, 0)
        mean[0] = -c
        label = np.sum(residual ** 2, axis=1)               # |r_i|^2 summed over outputs
    out = []
    for t in range(steps + 1):
        if t in wanted:
            out.append(0.5 * float(np.sum(lam * np.diagonal(Q[0, :, 0, :]))))
        if t == steps:
            break
        a = params_at(t)
        g, h = a.g, a.h
        S = a.S0[None] - lam[:, None, None] * np.outer(g, h)[None]      # (k, M+1, M+1)
        Y = np.einsum("a,aibj,b->ij", h, Q, h)
        q = np.einsum("ni,ni->n", Z @ Y, Z)                 # z_n^T Y z_n
        if residual is not None:
            pbar = np.einsum("a,aio->io", h, mean)          # mean at the gradient point, per output
            q = q + label - 2.0 * np.einsum("no,no->n", Z @ pbar, residual)
            mean = np.einsum("iab,bio->aio", S, mean)
        sigma = (Z.T * q) @ Z / n - lam[:, None] * Y * lam[None, :]
        Q = np.einsum("iac,cibj->aibj", S, Q)
        Q = np.einsum("aibj,jdb->aidj", Q, S)
        Q += np.outer(g, g)[:, None, :, None] * sigma[None, :, None, :] / B
    return np.array(out)


def _residual(targets, X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``targets - X W`` (n x outputs), checked orthogonal to the features (W their least-squares fit)."""
    Yt = float_array(targets, "targets")
    Yt = Yt.reshape(-1, 1) if Yt.ndim == 1 else Yt
    if Yt.shape != (X.shape[0], W.shape[1]):
        raise ValueError(f"targets must have shape ({X.shape[0]}, {W.shape[1]}) (one row per sample of x, one "
                         f"column per output of w_star), got {Yt.shape}")
    R = Yt - X @ W
    scale = np.linalg.norm(X) * max(np.linalg.norm(Yt), np.finfo(float).tiny)
    if np.linalg.norm(X.T @ R) > 1e-8 * scale:
        raise ValueError("w_star must be the least-squares solution of targets (X^T (targets - X w_star) = 0): "
                         "the excess loss is measured from it")
    return R
