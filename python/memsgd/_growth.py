"""The growth diagnostic of a loss curve: its exponential growth rate at the end of the run and
whether it grows like an unstable run (LossCurve.growth_rate / grows_exponentially, and
growth_rates of a sweep)."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

__all__ = ["growth", "MIN_STEPS", "RECORDED"]

# Runs shorter than this have no growth rate.
MIN_STEPS = 16
# Recorded steps a fit needs, within the last half of the run.
RECORDED = 5


def growth(loss: np.ndarray, diverged_at: Optional[int], steps: Optional[np.ndarray] = None):
    """``(rate, grows)`` of LossCurve.growth_rate / grows_exponentially; ``steps`` the recorded steps
    of ``loss`` (every step when None). The window is the last quarter of the run's steps. Recorded
    steps need at least 5 there; log-spaced ones are sparse at the end (record=100 over 1e4 steps
    keeps 4 in the last quarter), so the window then reaches back to the last 5 recorded steps,
    provided they lie in the last half of the run; else (nan, False)."""
    if diverged_at is not None:
        return math.inf, True
    T = loss.size - 1 if steps is None else (int(steps[-1]) if steps.size else 0)
    if T < MIN_STEPS:
        return math.nan, False
    w = -(-T // 4)
    if steps is None:  # every step: the last w + 1 >= 5 of them
        window, t = loss[T - w:], np.arange(T - w, T + 1, dtype=np.float64)
    else:
        inside = steps >= T - w
        if np.count_nonzero(inside) < RECORDED:
            if steps.size < RECORDED or steps[-RECORDED] < T - 2 * w:
                return math.nan, False
            w = T - int(steps[-RECORDED])
            inside = steps >= T - w
        window, t = loss[inside], steps[inside].astype(np.float64)
    if not np.all(window > 0):
        return math.nan, False
    y = np.log(window)
    tc = t - t.mean()
    rate = float(np.dot(tc, y - y.mean()) / np.dot(tc, tc))
    parts = [p.mean() for p in np.array_split(y, 4)]
    rising = all(b > a for a, b in zip(parts, parts[1:]))
    return rate, bool(rising and rate * w >= 1.0)
