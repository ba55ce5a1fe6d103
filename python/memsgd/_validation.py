"""The one home of argument checks: library functions, experiment configs and the command line.

Every failure raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, broken
rule) whose message names the argument and the rule, before any work starts. The ``*_from_text``
helpers parse command-line text and raise ``ValueError`` in the same style.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from . import _core

__all__ = [
    "real_scalar", "positive_scalar", "nonnegative_scalar", "bounded_scalar",
    "nonnegative_int", "positive_int", "positive_ints", "nonnegative_scalars", "power_law_pairs", "fit_window",
    "float_array",
    "int_from_text", "float_from_text", "float_list_from_text", "batch_size_from_text", "require_memory",
    "step_array", "step_count", "thread_count", "progress_flag", "instance_of", "MAX_STEPS",
    "MEMORY_EIGENVALUE_RULE", "stable_memory_factor", "warn_unstable_memory",
]

# Runs take fewer steps than this: the core's limit (it refuses more).
MAX_STEPS = _core.MAX_STEPS


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


def bounded_scalar(value, name: str, low: float, high: float, *, low_open: bool = False,
                   high_open: bool = False) -> float:
    """A finite real number in the interval from ``low`` to ``high`` (each end closed unless
    ``*_open``), e.g. a momentum in [0, 1): ``bounded_scalar(m, "momentum", 0, 1, high_open=True)``."""
    value = real_scalar(value, name)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


# The stability rule of a memory-1 preset's memory: as lambda -> 0 the step matrix S_lambda tends
# to S_0, whose eigenvalues are 1 and D (the memory's own factor: heavy ball's, Nesterov's, AM1's
# and QHM's beta, DANA's 1 - Delta), so modes of small eigenvalues keep a root near D. |D| < 1 is
# therefore needed for strict stability on every spectrum that reaches down to 0 -- every power
# law (docs/math.md §5, "Tiny eigenvalues" and the Jury conditions); for heavy ball det S_lambda =
# beta at every lambda, so there on every spectrum. A finite spectrum of large eigenvalues alone can
# still be stable with |D| >= 1 for some presets, so the library warns; the command line, whose
# problems are power laws, refuses.
MEMORY_EIGENVALUE_RULE = ("|{d}| < 1 is needed for stability on any spectrum reaching down to lambda -> 0 "
                          "(every power law): the modes of small eigenvalues keep a root near {d} "
                          "(docs/math.md §5)")


def stable_memory_factor(value: float, name: str, factor: float, d: str = "momentum",
                         interval: str = "(-1, 1)") -> float:
    """``value`` if the memory factor it gives (``factor``: the momentum itself, DANA's
    ``1 - Delta``) has ``|factor| < 1``, else ValueError naming ``name``, its ``interval`` and
    the rule."""
    if not -1 < factor < 1:
        raise ValueError(f"{name} must be in {interval}: {MEMORY_EIGENVALUE_RULE.format(d=d)}; got {value:g}")
    return value


def warn_unstable_memory(value: float, what: str, d: str = "momentum") -> None:
    """A UserWarning (pointing at the caller of the preset) when ``|value| >= 1`` (see the rule above)."""
    if not -1 < value < 1:
        warnings.warn(f"{what} will not converge on a power law: {MEMORY_EIGENVALUE_RULE.format(d=d)}",
                      UserWarning, stacklevel=3)


def nonnegative_int(value, name: str) -> int:
    """A Python/numpy integer >= 0 (floats such as 10.0 are refused: step counts are counts)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def nonnegative_scalar(value, name: str, *, allow_inf: bool = False) -> float:
    """A real number >= 0 (finite unless ``allow_inf``)."""
    value = real_scalar(value, name, allow_inf=allow_inf)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def instance_of(value, types, name: str):
    """``value`` if it is an instance of ``types`` (a class or a tuple of classes), else a
    TypeError naming ``name`` and the classes (``spectrum must be a Spectrum, got list``)."""
    if isinstance(value, types):
        return value
    wanted = " or a ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
    raise TypeError(f"{name} must be a {wanted}, got {type(value).__name__}")


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


def positive_ints(values, name: str) -> tuple:
    """A non-empty sequence of integers >= 1 (e.g. the batch sizes of an experiment)."""
    values = _sequence(values, name)
    return tuple(positive_int(v, f"{name}[{i}]") for i, v in enumerate(values))


def nonnegative_scalars(values, name: str) -> tuple:
    """A non-empty sequence of finite real numbers >= 0 (e.g. schedule exponents delta)."""
    values = _sequence(values, name)
    return tuple(nonnegative_scalar(v, f"{name}[{i}]") for i, v in enumerate(values))


def power_law_pairs(values, name: str) -> tuple:
    """A non-empty sequence of power-law exponent pairs ``(nu > 1, kappa > 0)`` (docs/math.md §1)."""
    values = _sequence(values, name)
    out = []
    for i, pair in enumerate(values):
        if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
            raise ValueError(f"{name}[{i}] must be a pair (nu, kappa), got {pair!r}")
        nu = real_scalar(pair[0], f"{name}[{i}] nu")
        kappa = real_scalar(pair[1], f"{name}[{i}] kappa")
        if not nu > 1 or not kappa > 0:
            raise ValueError(f"{name}[{i}] must satisfy nu > 1 and kappa > 0, got {tuple(pair)!r}")
        out.append((nu, kappa))
    return tuple(out)


def fit_window(value, steps: int, name: str = "fit_window") -> tuple:
    """A pair ``(t_min, t_max)`` of steps with ``0 < t_min < t_max <= steps``."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (t_min, t_max), got {value!r}") from None
    if not 0 < lo < hi <= steps:
        raise ValueError(f"{name} must satisfy 0 < t_min < t_max <= steps = {steps}, got {tuple(value)}")
    return lo, hi


def _sequence(values, name: str):
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a sequence, got {type(values).__name__}")
    if len(values) == 0:
        raise ValueError(f"{name} must not be empty")
    return values


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
    if raw.dtype.kind == "b":
        raise TypeError(f"{name} must be an array of real numbers, got booleans")
    if raw.dtype.kind in "USVMm":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {raw.dtype}")
    if raw_objects.dtype.kind == "O":
        bad = next((x for x in raw_objects.flat if isinstance(x, (str, bytes, complex, bool, np.bool_))), None)
        if bad is not None:
            raise TypeError(f"{name} must be an array of real numbers, got an element of type {type(bad).__name__}")
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


# --- command-line text -------------------------------------------------------------------------

def int_from_text(text: str, name: str, minimum: int = 0) -> int:
    """An integer written as ``100000``, ``1e5`` or ``100000.0`` (integral values only, so
    ``1.5`` is refused), at least ``minimum``."""
    text = str(text).strip()
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{name} must be an integer (e.g. 100000 or 1e5), got {text!r}") from None
        if not math.isfinite(number) or number != math.floor(number):
            raise ValueError(f"{name} must be an integer (e.g. 100000 or 1e5), got {text!r}") from None
        value = int(number)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def float_from_text(text: str, name: str, *, positive: bool = False, nonnegative: bool = False) -> float:
    """A finite real number (``> 0`` if ``positive``, ``>= 0`` if ``nonnegative``)."""
    text = str(text).strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {text!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {text}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {text}")
    return value


def float_list_from_text(text: str, name: str) -> list:
    """A non-empty comma-separated list of finite numbers, e.g. ``"1.5,2,3"``."""
    values = [float_from_text(v, name) for v in str(text).split(",") if v.strip()]
    if not values:
        raise ValueError(f"{name} must list at least one number, got {text!r}")
    return values


def batch_size_from_text(text: str, name: str):
    """A batch size: an integer >= 1 (``10``, ``1e3``) or ``inf`` (no noise), as an int or ``math.inf``."""
    if str(text).strip().lower() in ("inf", "infinity", "none"):
        return math.inf
    try:
        return int_from_text(text, name, minimum=1)
    except ValueError:
        raise ValueError(f"{name} must be an integer >= 1 (e.g. 10 or 1e3) or 'inf' for no noise, "
                         f"got {str(text).strip()!r}") from None


def require_memory(need, what: str) -> None:
    """Refuse, before allocating, work whose arrays need more than this machine's physical
    memory (``ValueError`` naming the size needed). The one memory guard of the Python side.

    ``need``: bytes, or a dict ``part name -> bytes`` of every array the work holds at once (the
    message lists the parts). Unknown physical memory: no check.
    """
    parts = need if isinstance(need, dict) else None
    total = float(sum(parts.values())) if parts is not None else float(need)
    phys = _core.physical_memory()  # the core's reading, as its own guards use
    if phys > 0 and total > phys:
        detail = "" if parts is None else " (" + ", ".join(f"{name} {b / 1e9:.3g} GB" for name, b in parts.items()
                                                          if b > 0) + ")"
        raise ValueError(f"{what} is too large: it needs {total / 1e9:.3g} GB of memory{detail}, more than this "
                         f"machine's physical memory ({phys / 1e9:.3g} GB)")


def step_count(value, name: str = "steps", *, minimum: int = 0) -> int:
    """A number of steps: an integer, or a float that is one exactly (``1e4``), in
    ``[minimum, MAX_STEPS)``. The one rule for the steps of every run (loss_curve, loss_curves,
    propagators, loss_gradient, simulate_sgd, sweep, optimize_schedule); bools are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, numbers.Real)):
        raise TypeError(f"{name} must be an integer (e.g. 1000 or 1e3), got {type(value).__name__}")
    if not isinstance(value, numbers.Integral):
        number = float(value)
        if not math.isfinite(number) or number != math.floor(number):
            raise ValueError(f"{name} must be an integer (e.g. 1000 or 1e3), got {number!r}")
        value = number
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value >= MAX_STEPS:
        raise ValueError(f"{name} must be < 2**40, got {value}")
    return value


def thread_count(threads) -> int:
    """The core's thread argument of every entry point: ``None`` is 0 (the default, all cores); an
    integer >= 1 is capped at the core's limit (``_core.thread_limit()``, 4 per processor: more
    threads only oversubscribe the machine, and thousands crash OpenMP). Results do not depend on it."""
    if threads is None:
        return 0
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"threads must be a positive integer or None (all cores), got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be a positive integer or None (all cores), got {int(threads)}")
    return min(int(threads), _core.thread_limit())


def progress_flag(progress):
    """``progress`` of the library's runs: True (a bar), False (none) or None (automatic)."""
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None, got {type(progress).__name__}")
    return progress


def step_array(value, name: str, *, max_step: int, min_step: int = 0, max_name: str | None = None) -> np.ndarray:
    """A strictly increasing, non-empty int64 array of steps in [min_step, max_step]: the one rule
    for lists of steps (loss_at's steps, the record of loss_curves and sweep).

    Accepts integers and integral floats (``1e9``); a scalar gives one step. Rejects bools,
    non-integral or non-finite values, negative steps, repeats and steps above ``max_step``
    (``max_name`` names that bound in the message, e.g. ``"steps"``).
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
            raise ValueError(f"{name} must be integers, got {float(bad)!r}")
    if np.any(arr < min_step):
        raise ValueError(f"{name} must be >= {min_step}, got {arr[arr < min_step][0]:g}")
    if np.any(arr > max_step):
        bound = f"{max_step:g}" if max_name is None else f"{max_name} = {max_step}"
        raise ValueError(f"{name} must be <= {bound}, got {arr.max():g}")
    steps = arr.astype(np.int64)
    if np.any(np.diff(steps) <= 0):
        raise ValueError(f"{name} must be strictly increasing")
    return steps
