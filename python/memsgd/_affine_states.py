"""Per-component initial states and sources of the affine model for loss_at's generating functions.

Along component k (docs/math.md §9; weight decay rho, label noise sigma2, ``S_k = S0 - (lambda_k + rho)
g h^T``, ``T_k(X) = S_k X S_k^T - s lambda_k^2 (h^T X h) g g^T`` with ``s`` the self-noise) the
second moments ``X_k`` and the first moments ``y_k = w*_k m_k`` evolve by

    y' = S_k y + f_k,        X' = T_k(X) + C_k y + b_k + 2 (tau1/B) lambda_k l_t g g^T,
    C_k y = -rho (S_k y g^T + g y^T S_k^T),   f_k = -rho c_k^2 g,
    b_k = (lambda_k sigma2 / B + rho^2 c_k^2) g g^T,

from ``X_k(0) = c_k^2 E11``, ``y_k(0) = -c_k^2 e_1``; ``l_t = 1/2 sum m lambda h^T X h`` couples them.
The core's ``generating_sums`` takes any such initial states and constant sources per component.
Two ways to hand it this problem:

* **The deviation form** (a converging run): with the fixed point ``(X*_k, y*_k, l*)`` of the whole
  coupled system, ``D_k = X_k - X*_k`` and ``y_k - y*_k`` obey the same equations *without* sources
  and with ``l_t - l*`` in the coupling: the plain renewal structure of docs/math.md §4 from the
  initial state ``(c^2 E11 - X*_k, -c^2 e_1 - y*_k)``. So ``L_t = L_inf + (transient)``, the floor
  ``L_inf = 1/2 sum m lambda (X*_k)_00`` exact (the pole of ``L(z)`` at z = 1 removed analytically)
  and the transient's generating function regular at z = 1: the contour keeps its relative
  accuracy as it dies. The fixed point per component: ``y* = c^2 mu_k``, ``mu_k = (I - S_k)^-1 (-rho g)``,
  ``X* = c^2 mu mu^T + n_k Y_k``, ``Y_k = (I - T_k)^-1 g g^T`` (both from the core's solves at z = 1),
  ``n_k = (2 (tau1/B) l* + sigma2/B) lambda_k - s lambda_k^2 c^2 (h^T mu)^2``, and closing
  ``l* = 1/2 sum m lambda h^T X* h`` gives ``l* (1 - V'(1)) = 1/2 sum m lambda c^2 (h^T mu)^2 (1 - s
  lambda^2 h^T Y h) + (sigma2/2B) sum m lambda^2 h^T Y h``.
* **The source form** (a run that does not converge; the fixed point is not the limit): the
  initial state ``(c^2 E11, -c^2 e_1)`` with the sources ``b_k``, ``f_k``; their transform puts a
  pole at z = 1 (s = 0), which the contour then encloses (its centre is at ``max(c, 0)``).

The arrays are packed as the core's coordinates: ``x_ij = X_ij`` for ``i <= j`` (row-major upper
triangle). Both forms are exact; only the deviation form needs the fixed point.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["AffineStates", "packed_outer", "hh_weights", "fixed_point", "deviation_states", "source_states"]

_EPS = np.finfo(float).eps
# A fixed point known less well than this (relative) is not subtracted (the source form runs).
_TRUSTED = 1e-8
# Slow poles (delta = mu - 1) closer to 0 than this count in the fixed point's error bound.
_NEAR_POLE = 1e-3


@dataclass(frozen=True)
class AffineStates:
    """What ``_core.generating_sums`` takes per component (None: absent), and the floor subtracted.

    ``floor``: ``L_inf`` removed analytically (deviation form; 0 in the source form);
    ``gradient_point_floor``: ``l_inf``; ``floor_error``: a bound on the rounding of ``floor``."""

    second: np.ndarray
    first: Optional[np.ndarray] = None
    second_source: Optional[np.ndarray] = None
    first_source: Optional[np.ndarray] = None
    floor: float = 0.0
    gradient_point_floor: float = 0.0
    floor_error: float = 0.0

    @property
    def deviation(self) -> bool:
        return self.second_source is None and self.first_source is None


def _pairs(N: int):
    return np.triu_indices(N)


def packed_outer(a: np.ndarray, b: Optional[np.ndarray] = None) -> np.ndarray:
    """Packed coordinates of the symmetric ``(a b^T + b a^T) / 2`` per row (``a a^T`` when b is None)."""
    b = a if b is None else b
    i, j = _pairs(a.shape[-1])
    return 0.5 * (a[..., i] * b[..., j] + b[..., i] * a[..., j])


def hh_weights(h: np.ndarray) -> np.ndarray:
    """Weights w with ``h^T X h = sum_c w_c x_c`` in packed coordinates."""
    i, j = _pairs(h.size)
    return np.where(i == j, 1.0, 2.0) * h[i] * h[j]


def _e11(K: int, P: int) -> np.ndarray:
    x = np.zeros((K, P))
    x[:, 0] = 1.0
    return x


@dataclass(frozen=True)
class FixedPoint:
    """The stationary state of the coupled affine system (see the module docstring)."""

    second: np.ndarray        # (K, P) X*_k
    first: np.ndarray         # (K, N) y*_k = c^2 mu_k
    floor: float              # L_inf
    gradient_point_floor: float   # l_inf
    noise_sum_prime: float    # V'(1)
    floor_error: float


def fixed_point(Y, mu, lam, m, c2, h, coupling: float, self_noise: float, label: float,
                slow_delta=None, slow_error=None) -> Optional[FixedPoint]:
    """The fixed point from the core's ``stationary_moments`` (``Y``, ``mu``); None when it is not
    finite, ``V'(1) >= 1`` (the loss does not converge to it) or its rounding bound exceeds 1e-8
    relative (a mode next to the stability edge).

    ``floor_error`` bounds the rounding of ``L_inf``: a few ulps of the sum of the moduli of its
    terms, amplified by ``1 / (1 - V'(1))`` through ``l_inf``, plus the uncertainty of slow poles
    within 1e-3 of s = 0 (``slow_error / |slow_delta|`` relative, per component)."""
    w = hh_weights(h)
    ml = m * lam
    with np.errstate(all="ignore"):   # a singular I - T_k (a stability edge) gives inf / nan: None below
        Yhh, Y00 = Y @ w, Y[:, 0]
        hmu, mu0 = mu @ h, mu[:, 0]
        Vp1 = coupling * float(np.sum(ml * lam * Yhh))
        gp_terms = 0.5 * ml * c2 * hmu ** 2 * (1.0 - self_noise * lam ** 2 * Yhh)
        label_terms = 0.5 * label * ml * lam * Yhh
        l_inf = (float(np.sum(gp_terms)) + float(np.sum(label_terms))) / (1.0 - Vp1)
        n = (2.0 * coupling * l_inf + label) * lam - self_noise * lam ** 2 * c2 * hmu ** 2
        second = c2[:, None] * packed_outer(mu) + n[:, None] * Y
        first = c2[:, None] * mu
        floor_terms = 0.5 * ml * second[:, 0]
        floor = float(np.sum(floor_terms))
    if not (math.isfinite(floor) and math.isfinite(l_inf) and Vp1 < 1.0 and np.all(np.isfinite(second))):
        return None
    amplify = 1.0 + 2.0 * abs(Vp1) / (1.0 - Vp1)
    moduli = 0.5 * ml * (c2 * mu0 ** 2 + np.abs(n * Y00))
    rounding = 16 * _EPS * float(np.sum(moduli)) * amplify
    poles = 0.0
    if slow_delta is not None:
        # a pole near s = 0 (|delta| small: a stability edge, where it is 0 by cancellation) moved by
        # slow_error changes the solve at s = 0 by slow_error / |delta| relative; further away the
        # first-order estimate overstates it (a nearly defective pair moves apart, the solve does not)
        near = np.isfinite(slow_delta) & (slow_delta != 0) & (np.abs(slow_delta) < _NEAR_POLE)
        with np.errstate(all="ignore"):
            rel = np.where(near, slow_error / np.abs(slow_delta), 0.0)
        poles = float(np.sum(moduli * rel)) * amplify
    error = rounding + poles
    if not error <= _TRUSTED * abs(floor):   # next to a stability edge: not a floor to subtract
        return None
    return FixedPoint(second, first, floor, l_inf, Vp1, error)


def deviation_states(point: FixedPoint, c2, rho: float) -> AffineStates:
    """The deviation form: initial state ``(c^2 E11 - X*, -c^2 e_1 - y*)``, no sources."""
    K, P = point.second.shape
    second = c2[:, None] * _e11(K, P) - point.second
    first = None
    if rho:
        first = -point.first
        first[:, 0] -= c2
    return AffineStates(second, first, None, None, point.floor, point.gradient_point_floor, point.floor_error)


def source_states(lam, c2, N: int, rho: float, label: float) -> AffineStates:
    """The source form: initial state ``(c^2 E11, -c^2 e_1)`` with the per-step sources
    ``b = lambda sigma2/B + rho^2 c^2`` (along g g^T) and ``f = -rho c^2`` (along g)."""
    K, P = lam.size, N * (N + 1) // 2
    second = c2[:, None] * _e11(K, P)
    first = first_source = None
    if rho:
        first = np.zeros((K, N))
        first[:, 0] = -c2
        first_source = -rho * c2
    return AffineStates(second, first, lam * label + rho ** 2 * c2, first_source, 0.0, 0.0, 0.0)
