"""Plain-numpy references the tests trust. Nothing here imports memsgd.

Each function is a direct transcription of docs/math.md, written for clarity, not speed.
"""
import numpy as np


def state_matrices(alpha, b, c, D, e):
    """(S0, g, h) of one step, docs/math.md §2.1."""
    b, c, e = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (b, c, e))
    M = b.size
    S0 = np.eye(M + 1)
    S0[0, 1:] = b
    S0[1:, 1:] = np.asarray(D, dtype=float).reshape(M, M)
    g = np.concatenate([[alpha], c])
    h = np.concatenate([[1.0], e])
    return S0, g, h


def mean_loss(params_at, lam, c2, weights, tau1, tau2, batch, steps, return_scale=False):
    """Exact mean-loss recursion of docs/math.md §3 with full (M+1)x(M+1) matrices per component.

    params_at(t) -> (alpha, b, c, D, e). batch may be np.inf. Returns (L, a) of length steps+1;
    with ``return_scale`` also ``scale_t = 1/2 sum_k m_k lambda_k max|X_k,t|``, the size of the
    whole second moment, which bounds the rounding error of L_t when L_t itself is tiny
    (a residual passing through zero while the memory part of the state is not).
    """
    lam = np.asarray(lam, float)
    c2 = np.asarray(c2, float)
    m = np.asarray(weights, float)
    inv_b = 0.0 if np.isinf(batch) else 1.0 / batch
    M = np.atleast_1d(params_at(0)[1]).size
    N = M + 1
    X = np.zeros((lam.size, N, N))
    X[:, 0, 0] = c2
    L = np.zeros(steps + 1)
    a = np.zeros(steps + 1)
    scale = np.zeros(steps + 1)
    for t in range(steps + 1):
        S0, g, h = state_matrices(*params_at(t if t < steps else max(t - 1, 0)))
        hXh = np.einsum("i,kij,j->k", h, X, h)
        L[t] = 0.5 * np.sum(m * lam * X[:, 0, 0])
        a[t] = np.sum(m * lam * hXh)
        scale[t] = 0.5 * np.sum(m * lam * np.abs(X).max(axis=(1, 2)))
        if t == steps:
            break
        S = S0[None] - lam[:, None, None] * np.outer(g, h)[None]
        noise = inv_b * (tau1 * lam * a[t] - tau2 * lam ** 2 * hXh)
        X = S @ X @ np.transpose(S, (0, 2, 1)) + noise[:, None, None] * np.outer(g, g)[None]
    return (L, a, scale) if return_scale else (L, a)


def run_matrix_form(params_at, H, w_star, steps, w0=None):
    """Deterministic matrix-form iteration (P.3) on L(w) = 1/2 (w-w*)^T H (w-w*).

    Returns the iterates w_0..w_steps, shape (steps+1, d).
    """
    d = w_star.size
    M = np.atleast_1d(params_at(0)[1]).size
    w = np.zeros(d) if w0 is None else np.array(w0, float)
    u = np.zeros((M, d))
    out = [w.copy()]
    for t in range(steps):
        alpha, b, c, D, e = params_at(t)
        b, c, e = (np.atleast_1d(np.asarray(v, float)) for v in (b, c, e))
        D = np.asarray(D, float).reshape(M, M)
        grad = H @ (w + e @ u - w_star)
        w, u = w + b @ u - alpha * grad, D @ u - np.outer(c, grad)
        out.append(w.copy())
    return np.array(out)


def mean_loss_per_step(alpha, b, c, D, e, lam, c2, weights, coupling, self_noise, steps):
    """The recursion of docs/math.md §3 with per-step parameter arrays (alpha (T,), b, c, e (T, M),
    D (T, M, M)) and per-step noise weights ``coupling[t] = tau1/B_t``, ``self_noise[t] = tau2/B_t``
    (docs/math.md §8). Any dtype, complex included (for complex-step derivatives): nothing here
    takes an absolute value or compares. Returns the losses L_0..L_steps."""
    lam, c2, m = (np.asarray(v) for v in (lam, c2, weights))
    b = np.asarray(b)
    M = b.shape[1]
    N = M + 1
    dtype = np.result_type(alpha, b, c, D, e, lam, c2, m, coupling, self_noise, float)
    X = np.zeros((lam.size, N, N), dtype=dtype)
    X[:, 0, 0] = c2
    L = np.zeros(steps + 1, dtype=dtype)
    for t in range(steps + 1):
        L[t] = 0.5 * np.sum(m * lam * X[:, 0, 0])
        if t == steps:
            break
        S0 = np.eye(N, dtype=dtype)
        S0[0, 1:] = b[t]
        S0[1:, 1:] = np.reshape(D[t], (M, M))
        g = np.concatenate([[alpha[t]], c[t]]).astype(dtype)
        h = np.concatenate([[1.0], e[t]]).astype(dtype)
        hXh = np.einsum("i,kij,j->k", h, X, h)
        a = np.sum(m * lam * hXh)
        S = S0[None] - lam[:, None, None] * np.outer(g, h)[None]
        noise = coupling[t] * lam * a - self_noise[t] * lam ** 2 * hXh
        X = S @ X @ np.transpose(S, (0, 2, 1)) + noise[:, None, None] * np.outer(g, g)[None]
    return L
