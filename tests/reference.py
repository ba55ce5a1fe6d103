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


def mean_loss(params_at, lam, c2, weights, tau1, tau2, batch, steps, return_scale=False, dtype=np.float64,
              sigma2=0.0):
    """Exact mean-loss recursion of docs/math.md §3 with full (M+1)x(M+1) matrices per component.

    params_at(t) -> (alpha, b, c, D, e). ``batch``: a batch size (np.inf: no noise) or an array of
    per-step batch sizes B_t, t = 0..steps-1 (docs/math.md §8: step t uses tau1/B_t, tau2/B_t).
    ``sigma2``: label-noise variance (docs/math.md §9: the noise term gains sigma2 lambda_k / B_t).
    Returns (L, a) of length steps+1; with ``return_scale`` also
    ``scale_t = 1/2 sum_k m_k lambda_k max|X_k,t|``, the size of the whole second moment, which
    bounds the rounding error of L_t when L_t itself is tiny (a residual passing through zero
    while the memory part of the state is not). ``dtype=np.longdouble`` runs in extended
    precision (x86: 64-bit mantissa), so that the reference's own rounding error is negligible
    next to a float64 computation's. Outputs are float64.
    """
    f = dtype
    lam = np.asarray(lam, f)
    c2 = np.asarray(c2, f)
    m = np.asarray(weights, f)
    batch_t = np.atleast_1d(np.asarray(batch, dtype=np.float64))
    M = np.atleast_1d(params_at(0)[1]).size
    N = M + 1
    X = np.zeros((lam.size, N, N), dtype=f)
    X[:, 0, 0] = c2
    L = np.zeros(steps + 1)
    a = np.zeros(steps + 1)
    scale = np.zeros(steps + 1)
    half = f(0.5)
    for t in range(steps + 1):
        S0, g, h = (np.asarray(v, dtype=f) for v in state_matrices(*params_at(t if t < steps else max(t - 1, 0))))
        hXh = np.einsum("i,kij,j->k", h, X, h)
        a_t = np.sum(m * lam * hXh)
        L[t] = half * np.sum(m * lam * X[:, 0, 0])
        a[t] = a_t
        scale[t] = half * np.sum(m * lam * np.abs(X).max(axis=(1, 2)))
        if t == steps:
            break
        B = batch_t[0] if batch_t.size == 1 else batch_t[t]
        inv_b = f(0) if np.isinf(B) else f(1) / f(B)
        S = S0[None] - lam[:, None, None] * np.outer(g, h)[None]
        noise = inv_b * (f(tau1) * lam * a_t - f(tau2) * lam ** 2 * hXh + f(sigma2) * lam)
        X = S @ X @ np.transpose(S, (0, 2, 1)) + noise[:, None, None] * np.outer(g, g)[None]
    return (L, a, scale) if return_scale else (L, a)


def run_matrix_form(params_at, H, w_star, steps, w0=None, rho_at=None):
    """Deterministic matrix-form iteration (P.3) on L(w) = 1/2 (w-w*)^T H (w-w*); with ``rho_at``
    the gradient gains ``rho_at(t)`` times the weights at the gradient point (coupled L2).

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
        point = w + e @ u
        grad = H @ (point - w_star) + (0.0 if rho_at is None else rho_at(t) * point)
        w, u = w + b @ u - alpha * grad, D @ u - np.outer(c, grad)
        out.append(w.copy())
    return np.array(out)


def noiseless_sums_mp(alpha, b, c, D, e, lam, digits=80):
    """Per-component sums of the noiseless second-moment map in ``digits``-digit arithmetic (mpmath;
    the system has condition ~ 1/lambda, so keep digits well above 16 - log10(lambda)):
    with ``Y0 = sum_n S^n g g^T S^nT`` and ``Z0 = sum_n S^n E11 S^nT`` (S = S_lambda, docs/math.md §2.1),
    returns ``(lambda^2 Y0_00, lambda^2 h^T Y0 h, lambda Z0_00, lambda h^T Z0 h)`` as floats, from the
    linear systems ``(I - S (x) S) vec Y0 = vec(g g^T)``. The float inputs are taken exactly."""
    import mpmath as mp
    with mp.workdps(digits):
        S0, g, h = state_matrices(alpha, b, c, D, e)
        N = g.size
        lam = mp.mpf(float(lam))
        S = mp.matrix(N, N)
        for i in range(N):
            for j in range(N):
                S[i, j] = mp.mpf(float(S0[i, j])) - lam * mp.mpf(float(g[i])) * mp.mpf(float(h[j]))
        A = mp.matrix(N * N, N * N)
        for i in range(N):
            for j in range(N):
                for a in range(N):
                    for b_ in range(N):
                        A[i * N + j, a * N + b_] = (1 if (i, j) == (a, b_) else 0) - S[i, a] * S[j, b_]
        gg = mp.matrix([mp.mpf(float(g[i])) * mp.mpf(float(g[j])) for i in range(N) for j in range(N)])
        e11 = mp.matrix([1 if k == 0 else 0 for k in range(N * N)])
        y = mp.lu_solve(A, gg)
        z = mp.lu_solve(A, e11)
        hv = [mp.mpf(float(x)) for x in h]
        hh = lambda v: sum(hv[i] * hv[j] * v[i * N + j] for i in range(N) for j in range(N))
        return (float(lam ** 2 * y[0]), float(lam ** 2 * hh(y)), float(lam * z[0]), float(lam * hh(z)))


def run_am1_velocity_form(lr_at, momentum_at, kick_at, H, w_star, steps):
    """AM1 in the torch/optax convention with per-step hyperparameters, lr outside the memory::

        v_{t+1} = beta_t v_t + g_t,    w_{t+1} = w_t - lr_t v_{t+1} - kick_t g_t,   g_t = H (w_t - w*)

    (a new lr_t scales the whole accumulated velocity, as torch's lr schedulers and
    optax.sgd with a schedule do). Returns the iterates w_0..w_steps, shape (steps+1, d).
    """
    w = np.zeros(w_star.size)
    v = np.zeros(w_star.size)
    out = [w.copy()]
    for t in range(steps):
        g = H @ (w - w_star)
        v = momentum_at(t) * v + g
        w = w - lr_at(t) * v - kick_at(t) * g
        out.append(w.copy())
    return np.array(out)


def mean_loss_per_step(alpha, b, c, D, e, lam, c2, weights, coupling, self_noise, steps, label=None):
    """The recursion of docs/math.md §3 with per-step parameter arrays (alpha (T,), b, c, e (T, M),
    D (T, M, M)) and per-step noise weights ``coupling[t] = tau1/B_t``, ``self_noise[t] = tau2/B_t``
    (docs/math.md §8), and optionally the label-noise source ``label[t] = sigma2/B_t`` (§9). Any
    dtype, complex included (for complex-step derivatives): nothing here takes an absolute value
    or compares. Returns the losses L_0..L_steps."""
    if label is None:
        label = np.zeros(steps)
    lam, c2, m = (np.asarray(v) for v in (lam, c2, weights))
    b = np.asarray(b)
    M = b.shape[1]
    N = M + 1
    dtype = np.result_type(alpha, b, c, D, e, lam, c2, m, coupling, self_noise, label, float)
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
        noise = coupling[t] * lam * a - self_noise[t] * lam ** 2 * hXh + label[t] * lam
        X = S @ X @ np.transpose(S, (0, 2, 1)) + noise[:, None, None] * np.outer(g, g)[None]
    return L


def random_quadratic(dim, seed, shift=0.1):
    """A random quadratic ``L(w) = 1/2 (w - w*)^T H (w - w*)``: ``H = A A^T / dim + shift I``
    scaled to ``lambda_max = 1``, and a standard normal ``w*``. Returns ``(H, w_star)``."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((dim, dim))
    H = A @ A.T / dim + shift * np.eye(dim)
    return H / np.linalg.eigvalsh(H).max(), rng.standard_normal(dim)


def recursion_rounding(L, t):
    """A bound on the rounding error of the engine's recursion at step t (absolute, for the loss L
    it returned there, away from near-zeros of an oscillating loss): eps (32 (1 + sqrt t) + 4 t) |L|,
    the accumulated rounding of t steps of sums plus the drift of a slow mode whose multiplier
    carries one rounding (measured against this module's mean_loss(dtype=np.longdouble): at most
    0.8 eps t up to t = 1e5; tests/test_long_horizon_extremes.py)."""
    t = np.asarray(t, dtype=float)
    return np.finfo(float).eps * (32 * (1 + np.sqrt(t)) + 4 * t) * np.abs(L)


def affine_mean_loss(params_at, lam, c2, weights, tau1, tau2, batch, steps, *, sigma2=0.0, rho_at=None,
                     readout=None, precond=0.0, dtype=np.float64):
    """docs/math.md §9 literally: label noise ``sigma2``, weight decay ``rho_at(t)`` (coupled L2 at the
    absolute gradient point) through the first moments ``m_k`` and the uncentered second moments
    ``X_k`` with the constant force ``f_k = -p_k rho w*_k g``, the loss read at ``w + r^T u``, and the
    preconditioner ``p_k = (lambda_k / lambda_max)^(-precond)`` on the gradient (signal, force and
    noise). ``w*_k = sqrt(c_k^2)``. Returns the losses L_0..L_steps (excess risk at the readout).
    ``dtype=complex`` for complex-step derivatives in the parameters and ``rho_at``."""
    lam = np.asarray(lam, float)
    c2 = np.asarray(c2, float)
    m_w = np.asarray(weights, float)
    batch_t = np.atleast_1d(np.asarray(batch, dtype=np.float64))
    M = np.atleast_1d(params_at(0)[1]).size
    N = M + 1
    K = lam.size
    pk = (lam / lam.max()) ** (-precond)
    wstar = np.sqrt(c2)
    rt = np.concatenate([[1.0], np.zeros(M) if readout is None else np.asarray(readout, float)])
    mom = np.zeros((K, N), dtype=dtype)
    mom[:, 0] = -wstar
    X = np.zeros((K, N, N), dtype=dtype)
    X[:, 0, 0] = c2
    L = np.zeros(steps + 1, dtype=dtype)
    for t in range(steps + 1):
        L[t] = 0.5 * np.sum(m_w * lam * np.einsum("i,kij,j->k", rt, X, rt))
        if t == steps:
            break
        alpha, b, c, D, e = params_at(t)
        S0 = np.eye(N, dtype=dtype)
        S0[0, 1:] = b
        S0[1:, 1:] = np.reshape(D, (M, M))
        g = np.concatenate([[alpha], np.atleast_1d(c)]).astype(dtype)
        h = np.concatenate([[1.0], np.atleast_1d(e)]).astype(dtype)
        rho = 0.0 if rho_at is None else rho_at(t)
        B = batch_t[0] if batch_t.size == 1 else batch_t[t]
        inv_b = 0.0 if np.isinf(B) else 1.0 / B
        hXh = np.einsum("i,kij,j->k", h, X, h)
        a = np.sum(m_w * lam * hXh)
        S = S0[None] - (pk * (lam + rho))[:, None, None] * np.outer(g, h)[None]
        f = (-pk * rho * wstar)[:, None] * g[None]
        Sm = np.einsum("kij,kj->ki", S, mom)
        noise = pk ** 2 * inv_b * (tau1 * lam * a - tau2 * lam ** 2 * hXh + sigma2 * lam)
        X = (S @ X @ np.transpose(S, (0, 2, 1)) + np.einsum("ki,kj->kij", Sm, f) + np.einsum("ki,kj->kij", f, Sm)
             + np.einsum("ki,kj->kij", f, f) + noise[:, None, None] * np.outer(g, g)[None])
        mom = Sm + f
    return L


# -- the noisy quadratic model of Zhang et al. (2019), in its own variables -----------------------

def _power_and_sum(A, t):
    """(A^t, sum_{s<t} A^s) for a stack of square matrices A (..., n, n), by doubling: no inverse,
    so it holds for (I - A) singular too; the dtype of A is kept (np.longdouble for headroom)."""
    eye = np.broadcast_to(np.eye(A.shape[-1], dtype=A.dtype), A.shape)
    power, total = eye.copy(), np.zeros_like(A)            # A^0, empty sum
    base, base_sum = A.copy(), eye.copy()                   # A^(2^j), sum_{s<2^j} A^s
    while t:
        if t & 1:                                           # append 2^j more steps
            total = total + power @ base_sum
            power = power @ base
        t >>= 1
        if t:
            base_sum = base_sum + base @ base_sum
            base = base @ base
    return power, total


def nqm_loss(h, x0_sq, lr, batch, t, *, method="sgd", momentum=0.0, decay=0.0, precondition=0.0, counts=None):
    """Expected NQM loss 1/2 sum_i counts_i h_i E x_i(t)^2 (Zhang et al. 2019, section 3; ``counts``:
    how many coordinates share the curvature h_i, the notebook's binning; default 1): per coordinate
    the gradient is h_i x_i + noise of variance h_i / B, preconditioned by P_i = h_i^(-p)
    (h_max = 1). With a = lr P_i h_i and n = (lr P_i)^2 h_i / B the second moments evolve linearly,
    P_(t+1) = A P_t + n, so P_t = A^t P_0 + sum_{s<t} A^s n (computed by doubling in extended
    precision):

    - sgd: E x^2 -> (1 - a)^2 E x^2 + n (the scalar closed form s* + (1 - a)^(2t) (s_0 - s*));
    - momentum (v' = beta v - lr P g, x' = x + v'), state (E x^2, E v^2, E x v);
    - ema of sgd (xbar' = gamma xbar + (1 - gamma) x', xbar_0 = x_0), state (E x^2, E xbar^2, E x xbar);
      the loss is read at xbar.
    """
    f = np.longdouble
    h = np.asarray(h, f)
    P = h ** f(-precondition)
    a = f(lr) * P * h
    n = (f(lr) * P) ** 2 * h / f(batch)
    s0 = np.asarray(x0_sq, f) * np.ones_like(h)
    K = h.size
    if method == "sgd":
        A = ((1 - a) ** 2).reshape(K, 1, 1)
        p0, nv, read = s0[:, None], n[:, None], 0
    elif method == "momentum":
        b = f(momentum)
        A = np.zeros((K, 3, 3), f)
        A[:, 0] = np.stack([(1 - a) ** 2, np.full(K, b * b), 2 * (1 - a) * b], axis=1)
        A[:, 1] = np.stack([a ** 2, np.full(K, b * b), -2 * a * b], axis=1)
        A[:, 2] = np.stack([-a * (1 - a), np.full(K, b * b), b * (1 - 2 * a)], axis=1)
        p0 = np.stack([s0, np.zeros(K, f), np.zeros(K, f)], axis=1)
        nv, read = np.stack([n, n, n], axis=1), 0
    elif method == "ema":
        g = f(decay)
        A = np.zeros((K, 3, 3), f)
        A[:, 0, 0] = (1 - a) ** 2
        A[:, 1] = np.stack([(1 - g) ** 2 * (1 - a) ** 2, np.full(K, g * g), 2 * g * (1 - g) * (1 - a)], axis=1)
        A[:, 2] = np.stack([(1 - g) * (1 - a) ** 2, np.zeros(K, f), g * (1 - a)], axis=1)
        p0 = np.stack([s0, s0, s0], axis=1)
        nv, read = np.stack([n, (1 - g) ** 2 * n, (1 - g) * n], axis=1), 1
    else:
        raise ValueError(method)
    power, total = _power_and_sum(A, int(t))
    state = (power @ p0[:, :, None] + total @ nv[:, :, None])[:, :, 0]
    weight = np.ones_like(h) if counts is None else np.asarray(counts, f)
    return float(0.5 * np.sum(weight * h * state[:, read]))


def random_features_given_w(alpha, beta, W, keep_rel=1e-12):
    """The problem of docs/math.md §10 for one feature matrix W (v x d), by the eigendecomposition
    of K = W^T H W (H = diag(j^-2alpha), b_j = j^-beta, j = 1..v).

    theta* solves the normal equations K theta = W^T H b (least squares in the H-norm); the target
    coefficients are c = V^T theta* on the eigenvectors V of K; the floor is the residual risk
    F0 = 1/2 |H^(1/2) (W theta* - b)|^2. Returns (eigenvalues, c^2, F0) for the eigenvalues above
    ``keep_rel`` times the largest, in decreasing order."""
    v = W.shape[0]
    j = np.arange(1, v + 1, dtype=np.float64)
    lam, b = j ** (-2.0 * alpha), j ** (-beta)
    K = W.T @ (lam[:, None] * W)
    mu, V = np.linalg.eigh(K)
    theta = np.linalg.lstsq(np.sqrt(lam)[:, None] * W, np.sqrt(lam) * b, rcond=None)[0]
    floor = 0.5 * np.sum(lam * (W @ theta - b) ** 2)
    c2 = (V.T @ theta) ** 2
    keep = mu > keep_rel * mu.max()
    order = np.argsort(-mu[keep])
    return mu[keep][order], c2[keep][order], floor
