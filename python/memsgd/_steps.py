"""Which steps to report: the one home of log-spaced step grids."""
from __future__ import annotations

import math

import numpy as np

from ._validation import nonnegative_int, positive_int

__all__ = ["log_spaced_steps"]


def log_spaced_steps(steps, points) -> np.ndarray:
    """About ``points`` distinct integer steps spread evenly in ``log t``, always including 0
    and ``steps``: ``[0] + unique(round(geomspace(1, steps, points - 1)))``, int64, increasing.

    Fewer than ``points`` entries come back where rounding merges small steps (every step is
    kept when ``points > steps``).
    """
    steps = nonnegative_int(steps, "steps")
    points = positive_int(points, "points")
    if points < 2:
        raise ValueError(f"points must be >= 2 (0 and steps are always included), got {points}")
    if steps == 0:
        return np.zeros(1, dtype=np.int64)
    if points > steps:
        return np.arange(steps + 1, dtype=np.int64)
    t = np.unique(np.round(np.exp(np.linspace(0.0, math.log(steps), points - 1))).astype(np.int64))
    t[-1] = steps
    return np.concatenate([np.zeros(1, dtype=np.int64), t])
