"""Argument checks shared by the public functions. Every failure names the argument and the rule."""
from __future__ import annotations

import math
import numbers

import numpy as np


def real_scalar(value, name: str, *, allow_inf: bool = False) -> float:
    """A real number (not bool), finite unless ``allow_inf``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def positive_scalar(value, name: str, *, allow_inf: bool = False) -> float:
    value = real_scalar(value, name, allow_inf=allow_inf)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def nonnegative_int(value, name: str) -> int:
    """A Python/numpy integer >= 0 (floats such as 10.0 are refused: step counts are counts)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def positive_int(value, name: str) -> int:
    value = nonnegative_int(value, name)
    if value == 0:
        raise ValueError(f"{name} must be >= 1, got 0")
    return value


def float_array(value, name: str, *, ndim: int | None = None, allow_empty: bool = True,
                finite: bool = True) -> np.ndarray:
    """Copy ``value`` into a C-contiguous float64 array, checking rank and finiteness."""
    if value is None:
        raise TypeError(f"{name} must be an array of real numbers, not None")
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested sequences and the like
        raise TypeError(f"{name} must be an array of real numbers ({exc})") from None
    if raw.dtype.kind == "c":
        raise TypeError(f"{name} must be real, got complex values")
    if raw.dtype.kind in "USVMm" or (
            raw.dtype.kind == "O" and any(isinstance(x, (str, bytes, complex)) for x in raw.flat)):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {raw.dtype}")
    try:
        # order="C": a C-contiguous copy that keeps 0-d values 0-d (np.ascontiguousarray
        # would silently turn a scalar into shape (1,)).
        arr = np.array(raw, dtype=np.float64, copy=True, order="C")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of real numbers ({exc})") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values (no NaN or inf)")
    return arr


def step_array(value, name: str, *, max_step: int) -> np.ndarray:
    """A strictly increasing, non-empty int64 array of steps in [0, max_step].

    Accepts integers and integral floats (``1e9``); a scalar gives one step. Rejects bools,
    non-integral or non-finite values, negative steps, repeats and steps above ``max_step``.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be integers, got bool")
    raw = np.asarray(value)
    if raw.dtype.kind == "b" or (raw.dtype.kind == "O" and any(isinstance(x, (bool, np.bool_)) for x in raw.flat)):
        raise TypeError(f"{name} must be integers, got bools")
    if raw.ndim > 1:
        raise ValueError(f"{name} must be a 1-d array of steps, got shape {raw.shape}")
    arr = raw.reshape(-1) if raw.dtype.kind in "iu" else float_array(value, name, finite=False).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} must contain at least one step")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite integers")
        if np.any(arr != np.floor(arr)):
            bad = arr[arr != np.floor(arr)][0]
            raise ValueError(f"{name} must be integers, got {bad!r}")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0, got {arr[arr < 0][0]}")
    if np.any(arr > max_step):
        raise ValueError(f"{name} must be <= {max_step:g}, got {arr.max():g}")
    steps = arr.astype(np.int64)
    if np.any(np.diff(steps) <= 0):
        raise ValueError(f"{name} must be strictly increasing")
    return steps
