"""Fitting loss exponents: the steps a fit reads and the slope at them. Shared by the predicted
side ([`fit_exponent`][memsgd.fit_exponent], phase_diagram in ``_asymptotics``) and the measured side
(``_measured``), which sit above it."""
from __future__ import annotations

import numpy as np

from .._validation import float_array

__all__ = ["fitted_steps", "exponent_at", "number_list", "MIN_MEASURE_STEPS"]

# A measured exponent is fitted on [T/10, T]: below this the window is a handful of steps.
MIN_MEASURE_STEPS = 10


def fitted_steps(t_min: float, t_max: float) -> np.ndarray:
    """The steps [`fit_exponent`][memsgd.fit_exponent] reads: at most 200 integers log-spaced over the integer steps
    of ``[t_min, t_max]`` (so that the fit weighs ``log t`` evenly), increasing, distinct."""
    first, last = int(np.ceil(t_min)), int(np.floor(t_max))   # no array of every step: T may be 1e12
    count = last - first + 1
    if count < 2:
        raise ValueError("the window [t_min, t_max] must contain at least two integer steps")
    return np.unique(np.round(np.geomspace(first, last, min(count, 200))).astype(np.int64))


def exponent_at(steps: np.ndarray, loss: np.ndarray) -> float:
    """``p``, minus the least-squares slope of ``log L`` against ``log t`` at the given steps
    (``loss[i] = L_{steps[i]}``, finite and > 0)."""
    slope = np.polyfit(np.log(steps), np.log(loss), 1)[0]
    return float(-slope)


def number_list(values, name):
    """A non-empty 1-D sequence of finite numbers (a grid axis such as ``nus``), as floats."""
    arr = float_array(values, name)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {arr.shape}")
    return [float(v) for v in arr]
