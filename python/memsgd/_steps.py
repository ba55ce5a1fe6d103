"""Which steps to report: the one home of log-spaced step grids."""
from __future__ import annotations

import math

import numpy as np

from ._validation import nonnegative_int, positive_int

__all__ = ["log_spaced_steps", "recorded_steps"]


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


def recorded_steps(record, steps) -> np.ndarray:
    """The steps a batched run keeps, as an increasing int64 array within ``[0, steps]``.

    ``record``: ``None`` (every step ``0..steps``), an int ``R >= 2`` (``log_spaced_steps(steps, R)``)
    or an increasing sequence of integer steps within ``[0, steps]``.
    """
    steps = nonnegative_int(steps, "steps")
    if record is None:
        return np.arange(steps + 1, dtype=np.int64)
    if isinstance(record, (bool, np.bool_)):
        raise TypeError("record must be None, an int or an array of integer steps, got bool")
    if isinstance(record, (int, np.integer)):
        record = int(record)
        if record < 2:
            raise ValueError(f"record must be >= 2 (0 and steps are always kept), got {record}")
        return log_spaced_steps(steps, record)
    try:
        arr = np.asarray(record)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"record must be None, an int or an array of integer steps ({exc})") from None
    if arr.dtype.kind not in "iu":
        raise TypeError(f"record must be None, an int or an array of integer steps, "
                        f"got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"record must be a non-empty 1-D array of steps, got shape {arr.shape}")
    if arr.min() < 0 or arr.max() > steps:
        raise ValueError(f"record steps must lie within [0, steps = {steps}], got {int(arr.min())}..{int(arr.max())}")
    if np.any(np.diff(arr) <= 0):
        raise ValueError("record steps must be strictly increasing")
    return arr.astype(np.int64)
