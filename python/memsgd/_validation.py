"""Argument checks shared by the public functions. Every failure names the argument and the rule."""
from __future__ import annotations

import math
import numbers
import os

import numpy as np


def real_scalar(value, name: str, *, allow_inf: bool = False) -> float:
    """A real number (not bool), finite unless ``allow_inf``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # a Python int beyond the float range, e.g. 10**400
        raise ValueError(f"{name} must be finite, got an integer too large for float64") from None
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
    if raw.dtype.kind == "b" or (raw.dtype.kind == "O" and any(isinstance(x, (bool, np.bool_)) for x in raw.flat)):
        raise TypeError(f"{name} must be an array of real numbers, got booleans")
    if raw.dtype.kind in "USVMm" or (
            raw.dtype.kind == "O" and any(isinstance(x, (str, bytes, complex)) for x in raw.flat)):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {raw.dtype}")
    try:
        # order="C": a C-contiguous copy that keeps 0-d values 0-d (np.ascontiguousarray
        # would silently turn a scalar into shape (1,)).
        arr = np.array(raw, dtype=np.float64, copy=True, order="C")
    except OverflowError:  # Python ints beyond the float range, e.g. [10**400]
        raise ValueError(f"{name} must contain only finite values (an integer is too large for float64)") from None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of real numbers ({exc})") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values (no NaN or inf)")
    return arr


def require_memory(nbytes: float, what: str) -> None:
    """Refuse, before allocating, work whose arrays need more than this machine's physical
    memory (``ValueError`` naming the size needed). Unknown physical memory: no check."""
    try:
        phys = float(os.sysconf("SC_PHYS_PAGES")) * float(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return
    if phys > 0 and nbytes > phys:
        raise ValueError(f"{what} is too large: it needs {nbytes / 1e9:.3g} GB of memory, more than this "
                         f"machine's physical memory ({phys / 1e9:.3g} GB)")
