"""Per-component states of a stationary piece of a piecewise schedule (numpy), for loss_at.

Along component k (docs/math.md §9, notation of ``memsgd._affine_states``) the second moments
``X_k`` (packed: ``x_ij = X_ij``, i <= j) and the first moments ``y_k = w*_k m_k`` evolve by

    y' = S_k y + f_k,    X' = T_k(X) + C_k y + b_k g g^T + 2 (tau1/B) lambda_k l_t g g^T,
    l_t = 1/2 sum_k m_k lambda_k h^T X_k h,   L_t = 1/2 sum_k m_k lambda_k (X_k)_00.

Two ways to carry the state from step 0 of a piece to its step n:

* ``run`` -- the recursion itself (short pieces, and the first steps of every piece, where
  the contour is not valid yet); O(n K P^2).
* ``contour_state`` -- the coefficient of ``z^n`` of the per-component generating functions
  (docs/math.md §8), in ``s = -log z`` with ``sigma = expm1(s)``:

      y(s) = e^s (sigma - E_k)^-1 (y(0) + f_k / sigma),
      X(s) = (sigma - Delta_k)^-1 [e^s X(0) + C_k y(s) + e^s b_k / sigma + 2 (tau1/B) lambda_k l(s) g g^T],

  with ``Delta_k = T_k - I`` formed from ``E_k = S_k - I`` without cancellation (as the core does)
  and ``l(s)`` the generating function of the coupling ``l_t`` that the core's sums give
  (``U'(s) / (1 - V'(s))``). It uses the nodes of loss_at's hyperbola, so its cost does not grow
  with n. A component whose slowest homogeneous mode has decayed by ``e^-45`` (below a double's
  resolution) keeps only the driven part: its ``T_k^n X(0)`` would otherwise be rounding of the
  contour sum at the size of ``X(0)``. (Relative to the loss's own decay ``e^(c n)``, c the
  centre of the contour: a finite spectrum's loss may itself fall by e^-100.)
"""
from __future__ import annotations

import math

import numpy as np

from ._affine_states import hh_weights, packed_outer

__all__ = ["Maps", "run", "contour_state", "piece_loss"]

_EPS = np.finfo(float).eps
# Homogeneous parts smaller than e^-_DROP times their start are left out of the contour state.
_DROP = 45.0


class Maps:
    """``E_k = S_k - I`` (K, N, N) and ``Delta_k = T_k - I`` (K, P, P) in packed coordinates for the
    stationary algorithm ``algo`` (plain: its readout and preconditioner already reduced) with weight
    decay ``rho`` on eigenvalues ``lam``, and the sources of the affine model."""

    def __init__(self, algo, lam, c2, rho: float, self_noise: float, coupling: float, label: float):
        N = algo.memory + 1
        g, h = algo.g, algo.h
        S0mI = algo.S0 - np.eye(N)
        self.N, self.P = N, N * (N + 1) // 2
        self.g, self.h, self.rho, self.lam, self.coupling = g, h, float(rho), lam, float(coupling)
        self.E = S0mI[None] - (lam + rho)[:, None, None] * np.outer(g, h)[None]
        self.S = self.E + np.eye(N)[None]
        iu, ju = np.triu_indices(N)
        basis = np.zeros((self.P, N, N))
        basis[np.arange(self.P), iu, ju] = 1.0
        basis[np.arange(self.P), ju, iu] = 1.0
        EX = np.einsum("kab,pbc->kpac", self.E, basis)
        D = EX + EX.transpose(0, 1, 3, 2) + np.einsum("kpab,kcb->kpac", EX, self.E)
        hXh = np.einsum("a,pab,b->p", h, basis, h)
        D = D - (self_noise * lam ** 2)[:, None, None, None] * hXh[None, :, None, None] * np.outer(g, g)[None, None]
        self.Delta = D[:, :, iu, ju].transpose(0, 2, 1)     # (K, P_out, P_in)
        self.ggt = packed_outer(g)
        self.hhw = hh_weights(h)
        self.second_source = lam * label + rho ** 2 * c2      # b_k (along g g^T)
        self.first_source = -rho * c2                         # f_k (along g)

    def coupling_drive(self, x: np.ndarray, y) -> np.ndarray:
        """``C_k y = -rho (S_k y g^T + g y^T S_k^T)`` packed (0 without weight decay)."""
        if y is None or not self.rho:
            return 0.0
        return -2.0 * self.rho * packed_outer(np.einsum("kab,kb->ka", self.S, y), np.broadcast_to(self.g, y.shape))


def piece_loss(x: np.ndarray, m_lam: np.ndarray) -> float:
    """``L = 1/2 sum m lambda X_00``."""
    return 0.5 * float(np.dot(m_lam, x[:, 0]))


def run(maps: Maps, m, x0, y0, steps: int, threshold: float = math.inf):
    """The recursion from ``(x0, y0)`` for ``steps`` steps: ``(L (steps+1,), x, y, diverged_at)``;
    after a divergence (L not finite or above ``threshold``) the losses are inf and the state is that
    of the step before."""
    wl = 0.5 * m * maps.lam
    # components last (contiguous vectors of length K): (P, P, K) maps, (P, K) states
    T = np.ascontiguousarray((maps.Delta + np.eye(maps.P)[None]).transpose(1, 2, 0))
    S = np.ascontiguousarray(maps.S.transpose(1, 2, 0))
    L = np.full(steps + 1, math.inf)
    x = np.ascontiguousarray(x0.T)
    y = None if y0 is None else np.ascontiguousarray(y0.T)
    drive = 2.0 * maps.coupling * maps.lam
    ggt, hhw, g = maps.ggt[:, None], maps.hhw, maps.g[:, None]
    for t in range(steps + 1):
        L[t] = float(np.dot(wl, x[0]))
        if not (L[t] <= threshold):
            L[t:] = math.inf
            return L, x.T.copy(), None if y is None else y.T.copy(), t
        if t == steps:
            break
        l = float(np.dot(wl, hhw @ x))
        x_new = (T * x[None]).sum(axis=1) + ggt * (drive * l + maps.second_source)[None]
        if y is not None:
            Sy = (S * y[None]).sum(axis=1)
            x_new -= 2.0 * maps.rho * packed_outer(Sy.T, np.broadcast_to(maps.g, Sy.T.shape)).T
            y = Sy + g * maps.first_source[None]
        x = x_new
    return L, x.T.copy(), None if y is None else y.T.copy(), None


def contour_state(maps: Maps, nodes, omega, l_values, n: int, x0, y0, sources: bool, homogeneous_rate):
    """``(x, y, x_error, y_error)`` at step n: ``Im sum_j omega_j F(s_j) e^(s_j n)`` over the
    nodes ``s_j`` (absolute: centre included) of two contours (``nodes``, ``omega``, ``l_values``:
    a pair of each, the reported one first); the error is their difference plus the rounding of the
    sums. ``homogeneous_rate`` (K,): the largest real part of the poles of component k's homogeneous
    parts (second and first moments) minus the centre c; below ``-_DROP / n`` that part is left out
    (it is then e^-45 below the scale ``e^(c n)`` that the contour resolves).
    ``sources``: whether the sources ``b_k``, ``f_k`` act (the source form) or not (the deviation
    from a fixed point)."""
    keep = homogeneous_rate * n > -_DROP
    results = []
    for s, w, lv in zip(nodes, omega, l_values):
        xs, ys, mods = [], [], []
        for j in range(s.size):
            sj = complex(s[j])
            sigma = np.expm1(sj)
            es = np.exp(sj)
            y_s = None
            rhs = np.zeros(x0.shape, complex)
            rhs[keep] = es * x0[keep]
            if y0 is not None:
                yr = np.zeros(y0.shape, complex)
                yr[keep] = y0[keep]
                if sources:
                    yr = yr + (maps.first_source / sigma)[:, None] * maps.g[None]
                y_s = es * np.linalg.solve(sigma * np.eye(maps.N)[None] - maps.E, yr[..., None])[..., 0]
                rhs = rhs + maps.coupling_drive(None, y_s)
            if sources:
                rhs = rhs + (es * maps.second_source / sigma)[:, None] * maps.ggt[None]
            rhs = rhs + (2.0 * maps.coupling * maps.lam * lv[j])[:, None] * maps.ggt[None]
            x_s = np.linalg.solve(sigma * np.eye(maps.P)[None] - maps.Delta, rhs[..., None])[..., 0]
            factor = w[j] * np.exp(sj * n)
            xs.append(factor * x_s)
            ys.append(None if y_s is None else factor * y_s)
            mods.append(abs(factor) * (np.abs(x_s) + 0.0))
        x = np.sum(xs, axis=0).imag
        y = None if y0 is None else np.sum(ys, axis=0).imag
        y_mod = None if y0 is None else np.sum([np.abs(v) for v in ys], axis=0)
        results.append((x, y, np.sum(mods, axis=0), y_mod))
    (x, y, xm, ym), (xc, yc, _, _) = results
    x_err = np.abs(x - xc) + 8 * _EPS * xm
    y_err = None if y is None else np.abs(y - yc) + 8 * _EPS * ym
    return x, y, x_err, y_err
