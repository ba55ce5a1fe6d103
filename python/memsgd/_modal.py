"""Modes of the eigencomponents of an algorithm with diagonal memory (``D`` diagonal, ``e = 0``).

Along an eigenvalue ``lambda`` the state evolves by ``S = S0 - lambda g e1^T`` (docs/math.md §2.1)
and everything the loss needs is two impulse responses (docs/math.md §4 with ``h = e1``)::

    e1^T S^n e1 = sum_i rho_i mu_i^n,      e1^T S^n g = sum_i r_i mu_i^n,

the partial fractions of ``e1^T (mu - S)^-1 e1 = R(mu)/chi(mu)`` and ``e1^T (mu - S)^-1 g = Q(mu)/chi(mu)``
(``chi = P + lambda Q``, ``P = (mu - 1) R``, ``R = det(mu - D)``). With ``D = diag(d_m)``,
``delta_m = 1 - d_m``, ``beta_m = b_m c_m`` and ``eps = mu - 1``, dividing by ``R`` gives the
*secular equation* of the modes::

    g(eps) = eps + lambda q(eps) = 0,      q(eps) = alpha + sum_m beta_m / (eps + delta_m) = Q/R,

and the residues ``rho_i = 1 / g'(eps_i)``, ``r_i = q(eps_i) / g'(eps_i)``. Working in ``eps`` with the
exact ``delta_m`` (``1 - d`` is exact in floating point for ``d`` in [1/2, 2]) keeps full relative
accuracy where dense linear algebra cannot: the slow root ``eps_0 ~ -alpha_eff lambda`` and roots
``-delta_m + lambda beta_m / delta_m`` next to a pole are resolved to a few ulps even when
``lambda`` is 1e-20 and ``delta_m`` 1e-10, while the slow eigenvalue of ``S`` itself has a condition
number ``~ 1 / min delta_m`` against normwise perturbations.

The second moments then follow in closed form: with ``eta_ij = mu_i mu_j - 1 = eps_i + eps_j + eps_i eps_j``
and ``sigma = expm1(s)`` (``z = e^-s``),

    A(s) = sum_ij rho_i rho_j / (sigma - eta_ij) = e^-s sum_n z^n (e1^T S^n e1)^2,
    G(s) = sum_ij r_i r_j / (sigma - eta_ij)     = e^-s sum_n z^n (e1^T S^n g)^2,

and the self-noise (``tau2``) is a rank-one correction: the moment map ``T`` of docs/math.md §4
gives ``<E11, (I - z T)^-1 B> = f_B / (1 + z s lambda^2 f_gg)`` (Sherman-Morrison), ``s = tau2/B``.
"""
from __future__ import annotations

import math

import numpy as np

from .algorithms import MemoryAlgorithm

__all__ = []

# A root within this relative distance of a pole -delta_m is refined in the offset x = eps + delta_m.
_CLOSE = 1e-6
# Newton steps on the secular equation after the eigenvalue guesses: at least _NEWTON, then until
# every step is below _STEP_RTOL of its root (at most _NEWTON_MAX; a double root converges linearly).
_NEWTON = 8
_NEWTON_MAX = 80
_STEP_RTOL = 1e-15
# Pairs (i <= j) of modes evaluated together: bounded memory for (nodes x K x pairs) arrays.
_CHUNK_ENTRIES = 2 ** 22


def diagonal_memory(algorithm: MemoryAlgorithm, what: str):
    """``(alpha, beta, delta)`` of an algorithm with diagonal ``D`` and ``e = 0``, else ValueError."""
    D, e = algorithm.D, algorithm.e
    if algorithm.memory and np.any(D - np.diag(np.diag(D)) != 0.0):
        raise ValueError(f"algorithm must have a diagonal memory matrix D for {what}, got off-diagonal entries "
                         "(diagonalise it first, or use loss_at / loss_curve)")
    if np.any(e != 0.0):
        raise ValueError(f"algorithm must take its gradient at w (e = 0) for {what}, got e = {e.tolist()}")
    for name in ("weight_decay", "preconditioner"):
        if getattr(algorithm, name, 0.0):
            raise ValueError(f"algorithm must have {name} = 0 for {what}")
    if getattr(algorithm, "readout", None) is not None and np.any(np.asarray(algorithm.readout) != 0.0):
        raise ValueError(f"algorithm must read the loss at w (readout = 0) for {what}")
    d = np.diag(D).astype(float) if algorithm.memory else np.zeros(0)
    return float(algorithm.alpha), algorithm.b * algorithm.c, 1.0 - d


def log1p_complex(x: np.ndarray) -> np.ndarray:
    """``log(1 + x)`` for complex ``x`` with full relative accuracy near 0 (numpy's loses it)."""
    x = np.asarray(x, complex)
    re, im = x.real, x.imag
    with np.errstate(divide="ignore"):
        modulus = 0.5 * np.log1p(2.0 * re + re * re + im * im)
    return modulus + 1j * np.arctan2(im, 1.0 + re)


class Modes:
    """The M+1 modes of every eigencomponent ``lambda_k`` (arrays of shape (K, M+1)).

    Attributes:
        eps: ``mu - 1`` for the eigenvalues ``mu`` of ``S_lambda`` (complex).
        rho, r: residues of ``R/chi`` and ``Q/chi`` (the impulse responses from ``e1`` and from ``g``).
        residual: ``|g(eps)|`` relative to the sizes of its terms after refinement (a few ulps
            for simple roots; larger next to a double root, where the residues grow and cancel).
    """

    def __init__(self, algorithm: MemoryAlgorithm, lam: np.ndarray, what: str = "the modal solve"):
        self.alpha, self.beta, self.delta = diagonal_memory(algorithm, what)
        self.lam = np.asarray(lam, float)
        self.M = self.delta.size
        self._solve()

    # -- roots of the secular equation -------------------------------------------------------
    def _guesses(self) -> np.ndarray:
        """Eigenvalues of ``S - I`` (an arrowhead matrix), scaled so both arms carry sqrt(lambda beta)."""
        K, M = self.lam.size, self.M
        mat = np.zeros((K, M + 1, M + 1))
        mat[:, 0, 0] = -self.lam * self.alpha
        if M:
            arm = np.sqrt(np.abs(self.lam[:, None] * self.beta[None, :]))
            sign = np.sign(self.beta)[None, :]
            mat[:, 0, 1:] = arm
            mat[:, 1:, 0] = -sign * arm
            idx = np.arange(1, M + 1)
            mat[:, idx, idx] = -self.delta[None, :]
        return np.linalg.eigvals(mat)

    def _terms(self, eps, x, near, close):
        """``sum_m beta_m / (eps + delta_m)`` and ``sum_m beta_m / (eps + delta_m)^2`` over the poles a
        root is not close to, and the same terms of the pole it is close to (0 if none), the latter
        from its offset ``x = eps + delta_m``: four arrays."""
        if self.M == 0:
            zero = np.zeros_like(eps)
            return zero, zero, zero, zero
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / (eps[:, :, None] + self.delta[None, None, :])
        own = (np.arange(self.M)[None, None, :] == near[:, :, None]) & close[:, :, None]
        inv = np.where(own, 0.0, inv)
        other1 = (self.beta * inv).sum(-1)
        other2 = (self.beta * inv * inv).sum(-1)
        bn = np.where(close, self.beta[near], 0.0)
        xs = np.where(close, x, 1.0)
        return other1, other2, bn / xs, bn / (xs * xs)

    def _solve(self):
        K, M = self.lam.size, self.M
        lam = self.lam[:, None]
        eps = self._guesses().astype(complex)
        if M:
            near = np.argmin(np.abs(eps[:, :, None] + self.delta[None, None, :]), axis=-1)
            dn = self.delta[near]
            bn = self.beta[near]
            x = eps + dn
            close = np.abs(x) < _CLOSE * dn
            # next to a pole: x = lambda beta_m / delta_m to first order
            x = np.where(close, lam * bn / dn, x)
        else:
            near = np.zeros((K, 1), int)
            dn = bn = np.zeros((K, 1))
            x = np.zeros((K, 1), complex)
            close = np.zeros((K, 1), bool)
        eps = np.where(close, x - dn, eps)
        for it in range(_NEWTON_MAX):
            o1, o2, w1, w2 = self._terms(eps, x, near, close)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                # far from the poles: Newton on g(eps) = eps + lambda q(eps)
                step_far = (eps + lam * (self.alpha + o1 + w1)) / (1.0 - lam * (o2 + w2))
                # next to pole m: Newton on x g = x (eps + lambda (alpha + others)) + lambda beta_m in x
                base = eps + lam * (self.alpha + o1)
                step_close = (x * base + lam * bn) / (base + x * (1.0 - lam * o2))
            step_far = np.where(np.isfinite(step_far), step_far, 0.0)
            step_close = np.where(np.isfinite(step_close), step_close, 0.0)
            x = np.where(close, x - step_close, x)
            eps = np.where(close, x - dn, eps - step_far)
            moved = np.where(close, np.abs(step_close) > _STEP_RTOL * np.abs(x),
                             np.abs(step_far) > _STEP_RTOL * np.abs(eps))
            if it + 1 >= _NEWTON and not np.any(moved):
                break
        o1, o2, w1, w2 = self._terms(eps, x, near, close)
        q = self.alpha + o1 + w1
        gp = 1.0 - lam * (o2 + w2)
        g = np.where(close, x * (eps + lam * (self.alpha + o1)) + lam * bn, eps + lam * q)
        scale = np.where(close, np.abs(x) * (np.abs(eps) + lam * (abs(self.alpha) + np.abs(o1))) + lam * np.abs(bn),
                         np.abs(eps) + lam * (abs(self.alpha) + self._abs_terms(eps)))
        with np.errstate(invalid="ignore", divide="ignore"):
            self.residual = np.where(scale > 0, np.abs(g) / scale, 0.0)
            self.rho = 1.0 / gp
            self.r = q / gp
        self.eps = eps

    def _abs_terms(self, eps):
        if self.M == 0:
            return np.zeros(eps.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.abs(1.0 / (eps[:, :, None] + self.delta[None, None, :]))
        return np.where(np.isfinite(inv), np.abs(self.beta) * inv, 0.0).sum(-1)

    # -- derived quantities ------------------------------------------------------------------
    @property
    def valid(self) -> np.ndarray:
        """Per component: every mode refined to a finite root with finite residues."""
        return np.all(np.isfinite(self.eps) & np.isfinite(self.rho) & np.isfinite(self.r), axis=1)

    def stable(self) -> np.ndarray:
        """Per component: ``|mu_i| < 1`` for every mode (``2 Re eps + |eps|^2 < 0``, no cancellation)."""
        e = self.eps
        return np.all(2.0 * e.real + (e * e.conj()).real < 0.0, axis=1) & self.valid

    def pairs(self):
        """``eta_ij`` and the products ``rho_i rho_j``, ``r_i r_j`` over pairs i <= j (weight 2 off the
        diagonal), each of shape (K, (M+1)(M+2)/2)."""
        n = self.M + 1
        i, j = np.triu_indices(n)
        e = self.eps
        eta = e[:, i] + e[:, j] + e[:, i] * e[:, j]
        w = np.where(i == j, 1.0, 2.0)
        return eta, self.rho[:, i] * self.rho[:, j] * w, self.r[:, i] * self.r[:, j] * w

    def noiseless_sums(self):
        """``sum_n (e1^T S^n e1)^2`` and ``sum_n (e1^T S^n g)^2`` per component (stable components):
        ``A`` and ``G`` at ``s = 0``."""
        eta, rr, gg = self.pairs()
        with np.errstate(divide="ignore", invalid="ignore"):
            return (-(rr / eta).sum(-1)).real, (-(gg / eta).sum(-1)).real

    def pole_logs(self) -> np.ndarray:
        """``log(mu_i mu_j)`` over pairs: the singularities of the noiseless second moments in
        ``s = -log z`` (shape (K, pairs))."""
        eta, _, _ = self.pairs()
        return log1p_complex(eta)


def chunked_pair_sums(eta, rr, gg, sigma):
    """``A``, ``G`` and the sums of moduli of their terms at every ``sigma`` (complex, shape (n,)), for
    every component: arrays of shape (n, K). Chunked over ``sigma``."""
    n = sigma.size
    K, P = eta.shape
    per = max(1, _CHUNK_ENTRIES // max(1, K * P))
    A = np.empty((n, K), complex)
    G = np.empty((n, K), complex)
    Am = np.empty((n, K))
    Gm = np.empty((n, K))
    for start in range(0, n, per):
        sl = slice(start, min(n, start + per))
        inv = 1.0 / (sigma[sl, None, None] - eta[None])
        A[sl] = (inv * rr[None]).sum(-1)
        G[sl] = (inv * gg[None]).sum(-1)
        ainv = np.abs(inv)
        Am[sl] = (ainv * np.abs(rr)[None]).sum(-1)
        Gm[sl] = (ainv * np.abs(gg)[None]).sum(-1)
    return A, G, Am, Gm


def noise_sum(modes: Modes, spectrum, noise) -> float:
    """``V = (tau1/B) sum_k m_k lambda_k^2 Y_00 / (1 + (tau2/B) lambda_k^2 Y_00)`` from the modes of the
    spectrum's components (e = 0; docs/math.md §5); ``inf`` when a component is unstable or its
    self-noise makes the moments unstable."""
    if not np.all(modes.stable()):
        return math.inf
    _, y = modes.noiseless_sums()
    lam = spectrum.eigenvalues
    y00 = lam * lam * y
    q = noise.self_noise * y00
    if np.any(1.0 + q <= 0.0) or (noise.self_noise > 0 and np.any(q >= 1.0)):
        return math.inf
    return float(noise.coupling * np.sum(spectrum.weights * y00 / (1.0 + q)))
