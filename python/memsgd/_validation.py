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


def nonnegative_scalar(value, name: str, *, allow_inf: bool = False) -> float:
    value = real_scalar(value, name, allow_inf=allow_inf)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def boolean(value, name: str, *, allow_none: bool = False):
    """A Python/numpy bool (``None`` too when ``allow_none``); 0/1 and other truthy values refused."""
    if allow_none and value is None:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool{' or None' if allow_none else ''}, got {type(value).__name__}")
    return bool(value)


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
    if isinstance(value, (list, tuple)) and raw.dtype.kind not in "bUSVMmO":
        try:  # numpy casts [True, 0.5] to floats: look at the Python elements themselves
            raw_objects = np.asarray(value, dtype=object)
        except (TypeError, ValueError):
            raw_objects = raw
    else:
        raw_objects = raw
    if raw.dtype.kind in "bUSVMm":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {raw.dtype}")
    if raw_objects.dtype.kind == "O":
        bad = next((x for x in raw_objects.flat if isinstance(x, (str, bytes, complex, bool, np.bool_))), None)
        if bad is not None:
            raise TypeError(f"{name} must be an array of real numbers, got an element of type {type(bad).__name__}")
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
