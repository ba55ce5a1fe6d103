"""The loss expansion as a pair of renewal equations (docs/math.md §4), solved in the core.

    l_t = U'_t + sum_{s<t} l_s V'_{t-s},        L_t = U_t + sum_{s<t} l_s V_{t-s}
"""
from __future__ import annotations

import math

import numpy as np

from . import _core
from .dynamics import Propagators

__all__ = ["loss_from_propagators"]


def loss_from_propagators(props: Propagators, method: str = "fft") -> np.ndarray:
    """Solve the renewal equations of the loss expansion (P.19, Theorem 2)::

        l_t = U'_t + sum_{s<t} l_s V'_{t-s},     L_t = U_t + sum_{s<t} l_s V_{t-s}

    ``method="direct"``: O(T^2) summation; ``"fft"``: online divide-and-conquer convolution
    with FFT block products, O(T log^2 T). Returns ``L`` of shape (steps+1,).
    """
    if not isinstance(props, Propagators):
        raise TypeError(f"props must be Propagators, got {type(props).__name__}")
    if method not in ("direct", "fft"):
        raise ValueError(f"method must be 'direct' or 'fft', got {method!r}")
    arrays = [props.U, props.U_prime, props.V, props.V_prime]
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError("props must be finite (the propagators of a diverging algorithm cannot be summed)")
    if props.e_is_zero:  # U' = U, V' = V: pass the same arrays so the core convolves once
        arrays = [props.U, props.U, props.V, props.V]
    rho = _growth_rate(*arrays) if method == "fft" else 1.0
    if rho == 1.0:
        L, _ = _core.renewal(*arrays, method)
        return L
    # Exponential tilt: l_t rho^-t solves the same equations with every input times rho^-t,
    # so the FFT block products see non-growing sequences and keep their relative accuracy.
    log_tilt = -np.arange(arrays[0].size) * math.log(rho)
    tilt = np.exp(log_tilt)
    tilted = [a * tilt for a in arrays]
    if props.e_is_zero:
        tilted = [tilted[0], tilted[0], tilted[2], tilted[2]]
    L, _ = _core.renewal(*tilted, method)
    return L * np.exp(-log_tilt)


def _growth_rate(U, U_prime, V, V_prime) -> float:
    """A rate rho >= 1 matching the exponential growth of l and L, or 1 when they do not grow.

    Growth comes from the inputs (``(max|A| over the last quarter / max|A| over the second
    quarter)^(2/T)``, robust to oscillation) and from the renewal itself (the root of
    ``sum_n |V'_n| rho^-n = 1`` when ``sum |V'| > 1``, by bisection).
    """
    rho = 1.0
    T = U.size
    if T >= 8:
        for a in (U, U_prime, V, V_prime):
            mag = np.abs(a)
            early, late = mag[T // 4:T // 2].max(), mag[3 * T // 4:].max()
            if early > 0 and late > early:
                rho = max(rho, (late / early) ** (2.0 / T))
    weights = np.abs(V_prime[1:])
    n = np.arange(1, V_prime.size)
    if weights.sum() > 1.0:
        f = lambda r: np.sum(weights * np.exp(-n * math.log(r)))
        lo, hi = 1.0, 2.0
        while f(hi) > 1.0:
            lo, hi = hi, 2.0 * hi
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if f(mid) > 1.0 else (lo, mid)
        rho = max(rho, hi)
    return rho if rho > 1.0 + 1e-9 else 1.0
