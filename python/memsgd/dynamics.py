"""Exact mean-loss dynamics (docs/math.md §3-4), thin over the C++ core.

Along eigencomponent k the second moment ``X_k`` of the state ``(w - w*, u)`` obeys

    a_t       = sum_l m_l lambda_l h^T X_{l,t} h
    X_{k,t+1} = S_k X_{k,t} S_k^T + (1/B) [tau1 lambda_k a_t - tau2 lambda_k^2 h^T X_{k,t} h] g g^T
    L_t       = 1/2 sum_k m_k lambda_k (X_{k,t})_00,        X_{k,0} = c_k^2 E11,

exact for the expected loss of mini-batch SGD with memory on Gaussian data.
"""
from __future__ import annotations

import math
import sys
import threading
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from . import _core
from ._validation import float_array, nonnegative_int
from .algorithms import MemoryAlgorithm
from .noise import Noise
from .schedules import Schedule
from .spectrum import Spectrum

__all__ = ["LossCurve", "Propagators", "loss_curve", "propagators"]

# Losses above this count as divergence.
DIVERGENCE_LIMIT = 1e30
# The core refuses more steps than this (and any run whose outputs exceed physical memory).
MAX_STEPS = 2 ** 40
# Propagators are not losses: only an overflow (inf/NaN) stops their recursion.
_OVERFLOW = sys.float_info.max

Algorithm = Union[MemoryAlgorithm, Schedule]


@dataclass(frozen=True)
class LossCurve:
    """``loss[t] = L_t`` for t = 0..steps; ``diverged_at`` is the first step whose loss
    overflowed or exceeded 1e30 (losses are ``inf`` from there on), or None."""

    loss: np.ndarray
    diverged_at: Optional[int]
    noise_injection: np.ndarray = field(repr=False)  # a_t = sum_k m_k lambda_k h^T X_k h

    @property
    def steps(self) -> int:
        return self.loss.size - 1

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None


@dataclass(frozen=True)
class Propagators:
    """Signal and noise propagators of a stationary algorithm (docs/math.md §4), each (steps+1,).

    ``U_n = 1/2 sum m lambda c^2 <E11, T^n E11>``, ``U'_n = 1/2 sum m lambda c^2 <hh^T, T^n E11>``,
    ``V_n = (tau1/B) sum m lambda^2 <E11, T^(n-1) gg^T>``, ``V'_n`` likewise with ``hh^T``;
    ``V[0] = V'[0] = 0``. ``e_is_zero`` tells that ``U' = U`` and ``V' = V``.
    """

    U: np.ndarray
    U_prime: np.ndarray
    V: np.ndarray
    V_prime: np.ndarray
    e_is_zero: bool = False

    def __post_init__(self):
        # Also built by users (from lists, other dtypes): float64 1-d arrays of one length, no NaN.
        n = None
        for name in ("U", "U_prime", "V", "V_prime"):
            a = float_array(getattr(self, name), name, ndim=1, allow_empty=False, finite=False)
            if np.any(np.isnan(a)):
                raise ValueError(f"{name} must not contain NaN")
            n = a.size if n is None else n
            if a.size != n:
                raise ValueError(f"{name} must have the same length as U ({n}), got {a.size}")
            object.__setattr__(self, name, a)
        if self.V[0] != 0 or self.V_prime[0] != 0:
            raise ValueError("V[0] and V_prime[0] must be 0 (noise propagators start at n = 1)")
        if not isinstance(self.e_is_zero, (bool, np.bool_)):
            raise TypeError(f"e_is_zero must be a bool, got {type(self.e_is_zero).__name__}")
        object.__setattr__(self, "e_is_zero", bool(self.e_is_zero))
        if self.e_is_zero and not (np.array_equal(self.U, self.U_prime) and np.array_equal(self.V, self.V_prime)):
            raise ValueError("e_is_zero=True requires U_prime == U and V_prime == V")

    @property
    def steps(self) -> int:
        return self.U.size - 1


def _check_problem(algorithm, spectrum, noise, steps):
    if not isinstance(algorithm, (MemoryAlgorithm, Schedule)):
        raise TypeError(f"algorithm must be a MemoryAlgorithm or a Schedule, got {type(algorithm).__name__}")
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum must be a Spectrum, got {type(spectrum).__name__}")
    if not isinstance(noise, Noise):
        raise TypeError(f"noise must be a Noise, got {type(noise).__name__}")
    steps = nonnegative_int(steps, "steps")
    if steps >= MAX_STEPS:
        raise ValueError(f"steps must be < 2**40, got {steps}")
    return steps


def _parameter_arrays(algorithm: Algorithm, steps: int):
    """Per-step parameter arrays for the core: one row for a stationary algorithm."""
    if isinstance(algorithm, MemoryAlgorithm):
        M = algorithm.memory
        return (np.array([algorithm.alpha]), algorithm.b.reshape(1, M), algorithm.c.reshape(1, M),
                algorithm.D.reshape(1, M, M), algorithm.e.reshape(1, M))
    if algorithm.length is not None and steps > algorithm.length:
        raise ValueError(f"steps must be <= the schedule's length {algorithm.length} "
                         f"(schedule too short), got {steps}")
    if algorithm.length == 0:  # steps == 0 here: the core needs a row, which it never uses
        M = algorithm.memory
        return (np.zeros(1), np.zeros((1, M)), np.zeros((1, M)), np.zeros((1, M, M)), np.zeros((1, M)))
    return algorithm.parameters(max(steps, 1))


# Runs of more scalar updates than this go through a watched worker thread (progress bar,
# Ctrl-C); shorter ones call the core directly. About 0.1 s of work.
_WATCH_WORK = 1e8
# Auto progress bars (progress=None) from about this much work: several seconds.
_BAR_WORK = 5e9


def _evolve(args, steps: int, work_per_step: int, progress, desc: str):
    """``_core.evolve(*args)``, watched from this thread when the run is long.

    The core releases the GIL and publishes its step count in a ``RunControl``; this thread
    polls it for the bar and turns Ctrl-C into a cancellation of the run.
    """
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None, got {type(progress).__name__}")
    work = float(steps) * work_per_step
    show = progress if progress is not None else (work >= _BAR_WORK and sys.stderr.isatty())
    if not show and work < _WATCH_WORK:
        return _core.evolve(*args)
    control = _core.RunControl()
    outcome = {}
    finished = threading.Event()  # not Thread.join: an interrupted join can return early later

    def target():
        try:
            outcome["value"] = _core.evolve(*args, control=control)
        except BaseException as exc:  # handed to the calling thread below
            outcome["error"] = exc
        finally:
            finished.set()

    from tqdm.auto import tqdm
    bar = tqdm(total=steps, desc=desc, unit="step", disable=not show, leave=False, mininterval=0.25)
    threading.Thread(target=target, name="memsgd-evolve", daemon=True).start()
    try:
        while not finished.wait(0.1):
            bar.update(control.steps_done - bar.n)
    except KeyboardInterrupt:
        control.cancel()  # the core stops after its current step
        while not finished.wait(0.1):
            pass
        raise
    finally:
        bar.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def loss_curve(algorithm: Algorithm, spectrum: Spectrum, noise: Noise, steps: int,
               progress: Optional[bool] = None) -> LossCurve:
    """Exact expected loss ``L_0..L_steps`` of mini-batch SGD with memory (docs/math.md §3).

    Works for stationary algorithms and schedules (per-step parameters), any memory M
    (specialised kernels for M <= 3), any shift e. Cost O(steps K (M+1)^2), memory
    O(K (M+1)^2). Deterministic: identical bits for any number of threads.

    ``progress``: ``True`` shows a progress bar, ``False`` never, ``None`` (default) when the
    run is long (about 5 s or more) and stderr is a terminal. Long runs can be interrupted
    with Ctrl-C (KeyboardInterrupt) whether or not a bar is shown.
    """
    steps = _check_problem(algorithm, spectrum, noise, steps)
    alpha, b, c, D, e = _parameter_arrays(algorithm, steps)
    r0, r1, diverged = _evolve(
        (spectrum.eigenvalues, spectrum.weights, spectrum.coefficients2, alpha, b, c, D, e, steps,
         noise.coupling, noise.self_noise, False, 2.0 * DIVERGENCE_LIMIT),
        steps, spectrum.size * (algorithm.memory + 1) ** 2, progress, "loss_curve")
    return LossCurve(0.5 * r0, None if diverged < 0 else int(diverged), r1)


def propagators(algorithm: MemoryAlgorithm, spectrum: Spectrum, noise: Noise, steps: int,
                progress: Optional[bool] = None) -> Propagators:
    """Signal propagators U, U' and noise propagators V, V' for n = 0..steps (docs/math.md §4).

    Stationary algorithms only (two-time propagators of schedules are not offered here).
    ``progress`` as in :func:`loss_curve`.
    """
    if isinstance(algorithm, Schedule):
        raise ValueError("algorithm must be stationary (a MemoryAlgorithm): propagators of a Schedule "
                         "are two-time objects; use loss_curve")
    steps = _check_problem(algorithm, spectrum, noise, steps)
    alpha, b, c, D, e = _parameter_arrays(algorithm, steps)
    lam = spectrum.eigenvalues
    args = (alpha, b, c, D, e)
    work = spectrum.size * (algorithm.memory + 1) ** 2
    s0, s1, _ = _evolve((lam, spectrum.weights, spectrum.coefficients2, *args, steps,
                         0.0, noise.self_noise, False, _OVERFLOW), steps, work, progress, "signal propagators")
    V = np.zeros(steps + 1)
    V_prime = np.zeros(steps + 1)
    if steps > 0 and noise.coupling != 0.0:
        n0, n1, _ = _evolve((lam, spectrum.weights, lam, *args, steps - 1,
                             0.0, noise.self_noise, True, _OVERFLOW), steps - 1, work, progress, "noise propagators")
        V[1:] = noise.coupling * n0
        V_prime[1:] = noise.coupling * n1
    arrays = [0.5 * s0, 0.5 * s1, V, V_prime]
    for arr in arrays:  # an overflowing (diverging) algorithm: report inf, never NaN
        arr[np.isnan(arr)] = math.inf
    return Propagators(*arrays, bool(np.all(algorithm.e == 0)))
