"""Per-eigencomponent machinery behind stability and asymptotics (docs/math.md §5).

Per eigenvalue ``lambda`` the second moments evolve (without the loss-coupled term) by

    T_lambda(X) = S X S^T - s lambda^2 (h^T X h) g g^T,      s = tau2 / B,   S = S_lambda.

Its self-noise part is rank one, so everything follows from the noiseless sums
``Y0 = sum_n S^n g g^T S^nT`` and ``Z0 = sum_n S^n E11 S^nT``: with ``r = h^T Y0 h`` and
``q = s lambda^2 r``, ``Y = Y0 / (1 + q)`` solves ``Y = T(Y) + g g^T`` and
``Z = Z0 - s lambda^2 (h^T Z0 h) Y0 / (1 + q)`` solves ``Z = T(Z) + E11``.

Memory 0 and 1 use closed forms (accurate for any lambda and any ``1 - rho(D)``); memory
M >= 2 solves the (M+1)^2 linear systems, batched over lambda in chunks of bounded memory.
Strict stability is decided without floating-point eigenvalues near 1: by the Jury conditions
for M <= 1 and, for M >= 2, from the values of lambda at which a root of
``chi_lambda = P + lambda Q`` crosses the unit circle.
"""
from __future__ import annotations

import math

import numpy as np

from .._validation import require_memory
from ..algorithms import MemoryAlgorithm
from .memory1 import _Memory1

__all__ = []

_EPS = np.finfo(float).eps
# Dense (M+1)^2-dimensional linear algebra per node (M >= 2): beyond this many floating-point
# operations in all the theory functions refuse (about a minute on one core) and say why.
_WORK_LIMIT = 2e11
# Memory for one batch of (M+1)^2 x (M+1)^2 matrices.
_CHUNK_BYTES = 2 ** 27
# Dense grid on (lambda_low, lambda_max] where continuum properties of infinite spectra are checked.
_GRID_POINTS = 400
# Crossings of the unit circle: how close a root must be to |z| = 1, and how real lambda must be.
_CIRCLE_TOL = 1e-7
_REAL_TOL = 1e-6
# Margin required of the eigenvalues at an interior point of a later interval between crossings.
_INTERIOR_SLACK = 1e-10


class Components:
    """Everything per lambda for one stationary algorithm ``algo`` (any memory M)."""

    def __init__(self, algo: MemoryAlgorithm):
        self.algo = algo
        self.M = algo.memory
        self.alpha_eff = algo.alpha_eff
        # a numpy float: rho_D ** 2 of a huge memory factor is inf, not Python's OverflowError
        self.rho_D = np.float64(0.0 if self.M == 0 else np.max(np.abs(np.linalg.eigvals(algo.D))))
        self.stable0 = bool(math.isfinite(self.alpha_eff) and self.alpha_eff > 0 and self.rho_D < 1)
        self.m1 = _Memory1(algo) if self.M == 1 else None
        self._crossings: np.ndarray | None = None
        # Below lambda_tiny (M >= 2) the per-component sums come from their small-lambda expansions:
        # relative error ~ alpha_eff lambda / gap there, against ~ eps / (alpha_eff lambda) for the
        # linear solve above; the threshold balances the two (docs/math.md §5, tiny lambda).
        gap = 1.0 - self.rho_D
        if self.stable0:
            self.lambda_tiny = math.sqrt(_EPS * gap) / self.alpha_eff
        else:
            self.lambda_tiny = 0.0

    # -- strict stability of S_lambda ----------------------------------------------------------
    def stable_nodes(self, lam: np.ndarray) -> np.ndarray:
        """``rho(S_lambda) < 1`` per lambda, decided exactly (no eigenvalues near 1)."""
        if self.M == 0:
            x = lam * self.algo.alpha
            return (x > 0) & (x < 2)
        if self.m1 is not None:
            return self.m1.stable(lam)
        return self._stable_by_crossings(lam)

    def stable_up_to(self, lambda_max: float) -> bool:
        """Strict stability on all of ``(0, lambda_max]``."""
        if self.M == 0:
            return bool(self.algo.alpha > 0 and lambda_max * self.algo.alpha < 2)
        if self.m1 is not None:
            return self.m1.stable_up_to(lambda_max)
        crossings = self.crossings()
        return bool(self.stable0 and not np.any(crossings <= lambda_max * (1 + 1e-12)))

    def crossings(self) -> np.ndarray:
        """Sorted lambda > 0 at which ``chi_lambda`` has a root on the unit circle (M >= 1).

        On ``|z| = 1`` a root of ``P + lambda Q`` with real lambda needs ``P(z) conj(Q(z))`` real,
        i.e. ``W(z) = z G(z) - G_rev(z) = 0`` with ``G(z) = P(z) z^M Q(1/z)`` (degree 2M+1) and
        ``G_rev`` its reversal; W has degree 2M+2 and z = +-1 among its roots. Each unit-circle
        root gives ``lambda = -P(z)/Q(z)``; the real positive ones, confirmed by a root of
        ``chi_lambda`` on the circle, are the crossings.
        """
        if self._crossings is not None:
            return self._crossings
        P, Q = self.algo.char_polys()
        R = np.polydiv(P, [1.0, -1.0])[0]                     # P = (z - 1) R exactly in theory
        M = self.M
        G = np.convolve(P, Q[::-1])                          # degree 2M+1
        W = np.concatenate([G, [0.0]]) - np.concatenate([[0.0], G[::-1]])
        candidates: list = []
        if np.any(W != 0):
            for z in np.roots(np.trim_zeros(W, "f")):
                # z = 1 is the lambda = 0 root (P(1) = 0): it never crosses for lambda > 0 when Q(1) != 0
                if abs(abs(z) - 1.0) > 1e-5 or abs(z - 1.0) < 1e-9:
                    continue
                z = z / abs(z)
                qz = np.polyval(Q, z)
                if qz == 0:
                    continue
                lam = -(z - 1.0) * np.polyval(R, z) / qz   # not P(z): its rounding at z ~ 1 is not small
                if not (lam.real > 0 and abs(lam.imag) <= _REAL_TOL * abs(lam)):
                    continue
                lam = float(lam.real)
                roots = np.roots(np.polyadd(P, lam * Q))
                if np.min(np.abs(np.abs(roots) - 1.0)) < _CIRCLE_TOL * (1 + M):
                    candidates.append(lam)
        found = np.sort(np.array(candidates, dtype=float))
        if found.size > 1:  # conjugate pairs give the same lambda
            keep = np.concatenate([[True], np.diff(found) > 1e-9 * found[1:]])
            found = found[keep]
        self._crossings = found
        return found

    def _stable_by_crossings(self, lam: np.ndarray) -> np.ndarray:
        """Between consecutive crossings the number of roots inside the unit disc is constant:
        the first interval (0, c_1) is stable iff ``alpha_eff > 0`` and ``rho(D) < 1``; each later
        one is decided by direct eigenvalues at an interior point away from lambda = 0."""
        c = self.crossings()
        status = [self.stable0]
        for j in range(c.size):
            rep = math.sqrt(c[j] * c[j + 1]) if j + 1 < c.size else 2.0 * c[j]
            S = self.algo.eigen_matrix(rep)
            # away from lambda = 0 a stable interval keeps its roots off the circle; roots that stay
            # on it for every lambda (e.g. a memory that never forgets) round to either side of 1
            status.append(bool(np.max(np.abs(eigenvalues(S))) < 1.0 - _INTERIOR_SLACK))
        index = np.searchsorted(c, lam, side="left")
        ok = np.array(status)[index]
        if c.size:  # a node on a crossing has rho = 1
            ok &= ~np.any(np.abs(lam[:, None] - c[None, :]) <= 1e-12 * c[None, :], axis=1)
        return ok

    # -- spectral radii (reports) -------------------------------------------------------------
    def radius(self, lam: np.ndarray) -> np.ndarray:
        """``rho(S_lambda)`` per lambda (rounds to 1 for the slow modes of tiny lambda)."""
        if self.M == 0:
            return np.abs(1.0 - lam * self.algo.alpha)
        if self.m1 is not None:
            return 1.0 - self.m1.margin(lam)
        out = np.empty(lam.size)
        tiny = lam < self.lambda_tiny
        out[tiny] = np.maximum(1.0 - self.alpha_eff * lam[tiny], self.rho_D)
        for sl in _chunks(np.flatnonzero(~tiny), self.M + 1, square=False):
            S = self.algo.eigen_matrix(lam[sl]).reshape(sl.size, self.M + 1, self.M + 1)
            out[sl] = np.max(np.abs(eigenvalues(S)), axis=1)
        return out

    def moment_radius(self, lam: np.ndarray, self_noise) -> np.ndarray:
        """``rho(T_lambda)`` per lambda, by dense eigenvalues of the (M+1)^2 operator (reports, and
        the few large-lambda nodes where ``tau2 > 0`` self-noise can destabilise the moments).
        ``self_noise``: a number or one per lambda (weight decay: ``s (lambda / (lambda + rho))^2``
        at ``lambda + rho``)."""
        if np.all(np.asarray(self_noise) == 0.0):
            return self.radius(lam) ** 2
        s = np.broadcast_to(np.asarray(self_noise, dtype=float), lam.shape)
        out = np.empty(lam.size)
        tiny = lam < self.lambda_tiny
        out[tiny] = np.maximum(1.0 - 2.0 * self.alpha_eff * lam[tiny], self.rho_D ** 2)
        for sl in _chunks(np.flatnonzero(~tiny), self.M + 1, square=True):
            T = _moment_operators(self.algo, lam[sl], s[sl])
            out[sl] = np.max(np.abs(eigenvalues(T)), axis=1)
        return out

    # -- noiseless sums -------------------------------------------------------------------------
    def sums(self, lam: np.ndarray, signal: bool = False):
        """``(y00, yhh, z00, zhh)`` per lambda (see ``memory1._Memory1.sums``); valid where
        ``S_lambda`` is stable. ``z00, zhh`` are None unless ``signal``."""
        if self.m1 is not None:
            return self.m1.sums(lam, signal)
        if self.M == 0:
            a = self.algo.alpha
            y = lam * a / (2.0 - lam * a)
            z = 1.0 / (a * (2.0 - lam * a)) if signal else None
            return y, y.copy(), z, (None if z is None else z.copy())
        return self._solved_sums(lam, signal)

    def _solved_sums(self, lam, signal):
        """M >= 2: ``(I - S (x) S) vec Y0 = vec(g~ g~^T)`` with ``g~ = lambda g`` (so lambda^2 never
        overflows) and ``(I - S (x) S) vec Z0 = vec(E11)``; below lambda_tiny the expansions
        ``y00 = yhh = alpha_eff lambda / 2``, ``z00 = zhh = 1 / (2 alpha_eff)`` (slow mode
        ``1 - alpha_eff lambda`` with right eigenvector E1 and left ``(1, b^T (I - D)^-1)``)."""
        algo, N = self.algo, self.M + 1
        y00, yhh = np.empty(lam.size), np.empty(lam.size)
        z00 = np.empty(lam.size) if signal else None
        zhh = np.empty(lam.size) if signal else None
        tiny = lam < self.lambda_tiny
        y00[tiny] = yhh[tiny] = 0.5 * self.alpha_eff * lam[tiny]
        if signal:
            z00[tiny] = zhh[tiny] = 0.5 / self.alpha_eff
        g, h = algo.g, algo.h
        hh = np.outer(h, h).ravel()
        e11 = np.zeros(N * N)
        e11[0] = 1.0
        for sl in _chunks(np.flatnonzero(~tiny), N, square=True):
            lb = lam[sl]
            A = np.eye(N * N)[None] - _moment_operators(algo, lb, 0.0)
            gt = lb[:, None] * g[None, :]
            rhs = [np.einsum("ki,kj->kij", gt, gt).reshape(lb.size, N * N)]
            if signal:
                rhs.append(np.broadcast_to(e11, (lb.size, N * N)))
            sol = np.linalg.solve(A, np.stack(rhs, axis=2))
            y00[sl] = sol[:, 0, 0]
            yhh[sl] = sol[:, :, 0] @ hh
            if signal:
                z00[sl] = lb * sol[:, 0, 1]
                zhh[sl] = lb * (sol[:, :, 1] @ hh)
        return y00, yhh, z00, zhh

    # -- cost guard -------------------------------------------------------------------------------
    def check_cost(self, nodes: int, what: str, self_noise: float = 0.0) -> None:
        """Refuse, before any allocation, dense work that cannot finish in reasonable time or fit."""
        if self.M <= 1:
            return
        n2 = (self.M + 1) ** 2
        per_node = (2.0 / 3.0) * n2 ** 3 + (10.0 * n2 ** 3 if self_noise != 0.0 else 0.0)
        require_memory(4.0 * 8.0 * n2 * n2, f"{what} with memory M={self.M} (one (M+1)^2 x (M+1)^2 operator)")
        work = nodes * per_node
        if work > _WORK_LIMIT:
            raise ValueError(
                f"{what} with memory M={self.M} on {nodes} eigenvalue nodes is too large: it solves dense "
                f"(M+1)^2 = {n2}-dimensional systems per node, about {work:.2g} floating-point operations "
                f"in all (limit {_WORK_LIMIT:.0e}), with {4 * 8 * n2 * n2 / 1e6:.3g} MB per node; use a smaller "
                "memory or fewer nodes (a finite spectrum, or a smaller head of the power law)")


def eigenvalues(A) -> np.ndarray:
    """``np.linalg.eigvals`` of a matrix or a batch ``(n, N, N)``; a matrix with an inf or nan entry
    (an overflow at extreme inputs: nothing there is stable) gets inf eigenvalues instead of
    LinAlgError."""
    A = np.asarray(A)
    batch = A.reshape((-1,) + A.shape[-2:])
    finite = np.all(np.isfinite(batch.reshape(batch.shape[0], -1)), axis=1)
    out = np.full(batch.shape[:2], complex(math.inf, 0.0))
    if np.any(finite):
        out[finite] = np.linalg.eigvals(batch[finite])
    return out.reshape(A.shape[:-1])


def _moment_operators(algo: MemoryAlgorithm, lam: np.ndarray, self_noise) -> np.ndarray:
    """``T_lambda`` as (n, N^2, N^2) matrices in row-major vec form, N = M + 1; the self-noise
    term ``s lambda^2 (g g^T)(h h^T)`` is formed from ``lambda g`` (no overflow of lambda^2);
    ``self_noise`` a number or one per lambda."""
    N = algo.memory + 1
    S = algo.eigen_matrix(lam).reshape(lam.size, N, N)
    T = np.einsum("kij,kab->kiajb", S, S).reshape(lam.size, N * N, N * N)
    if np.any(np.asarray(self_noise) != 0.0):
        gt = lam[:, None] * algo.g[None, :]
        ggt = np.einsum("ki,kj->kij", gt, gt).reshape(lam.size, N * N)
        s = np.reshape(np.asarray(self_noise, dtype=float), (-1, 1, 1))
        T -= s * ggt[:, :, None] * np.outer(algo.h, algo.h).ravel()[None, None, :]
    return T


def _chunks(index: np.ndarray, N: int, square: bool):
    """Slices of ``index`` whose batch of (N^2 x N^2) (or N x N) matrices fits in _CHUNK_BYTES."""
    per = 4 * 8 * (N ** 4 if square else N * N)
    size = max(1, _CHUNK_BYTES // per)
    for start in range(0, index.size, size):
        yield index[start:start + size]


def check_grid(spectrum, lambda_low: float) -> np.ndarray:
    """Extra lambdas for continuum checks of an infinite spectrum (its tail nodes stand for a
    continuum of eigenvalues): log-spaced on ``[max(lambda_low, min node), lambda_max]``."""
    if not spectrum.infinite:
        return np.zeros(0)
    lo = max(lambda_low, float(spectrum.eigenvalues.min()))
    hi = spectrum.lambda_max
    if not lo < hi:
        return np.zeros(0)
    return np.geomspace(lo, hi, _GRID_POINTS)
