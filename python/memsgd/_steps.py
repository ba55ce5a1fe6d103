"""Which steps to report: the one home of log-spaced step grids."""
from __future__ import annotations

import math
import numbers

import numpy as np

from ._validation import nonnegative_int, positive_int, step_array

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

    ``record``: ``None`` (every step ``0..steps``), a number ``R >= 2`` (``log_spaced_steps(steps, R)``)
    or an increasing sequence of steps within ``[0, steps]``, by the rule of
    ``memsgd._validation.step_array`` (the steps of ``loss_at``): integers or floats that are
    integers exactly (``[1e2, 1e3]``).
    """
    steps = nonnegative_int(steps, "steps")
    if record is None:
        return np.arange(steps + 1, dtype=np.int64)
    if isinstance(record, (bool, np.bool_)):
        raise TypeError("record must be None, a number of steps or an array of steps, got bool")
    if isinstance(record, numbers.Real) and not isinstance(record, numbers.Integral):
        number = float(record)
        if not math.isfinite(number) or number != math.floor(number):
            raise ValueError(f"record must be None, an integer or an array of steps, got {number!r}")
        record = int(number)
    if isinstance(record, numbers.Integral):
        record = int(record)
        if record < 2:
            raise ValueError(f"record must be >= 2 (0 and steps are always kept), got {record}")
        return log_spaced_steps(steps, record)
    if isinstance(record, (str, bytes)):
        raise TypeError("record must be None, a number of steps or an array of steps, got str")
    return step_array(record, "record", max_step=steps, max_name="steps")
