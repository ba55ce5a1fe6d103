"""Exact mean-loss dynamics (MATH.md sections 3-4), thin over the C++ core.

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
from ._validation import nonnegative_int, positive_int
from .algorithms import MemoryAlgorithm
from .noise import Noise
from .schedules import Schedule
from .spectrum import Spectrum

__all__ = ["LossCurve", "Propagators", "loss_curve", "propagators", "loss_from_propagators",
           "simulate_sgd"]

# Losses above this count as divergence (API.md, Errors).
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
    """Signal and noise propagators of a stationary algorithm (MATH.md 4), each (steps+1,).

    ``U_n = 1/2 sum m lambda c^2 <E11, T^n E11>``, ``U'_n = 1/2 sum m lambda c^2 <hh^T, T^n E11>``,
    ``V_n = (tau1/B) sum m lambda^2 <E11, T^(n-1) gg^T>``, ``V'_n`` likewise with ``hh^T``;
    ``V[0] = V'[0] = 0``. ``e_is_zero`` tells that ``U' = U`` and ``V' = V``.
    """

    U: np.ndarray
    U_prime: np.ndarray
    V: np.ndarray
    V_prime: np.ndarray
    e_is_zero: bool = False

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
    """Exact expected loss ``L_0..L_steps`` of mini-batch SGD with memory (MATH.md 3).

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
    """Signal propagators U, U' and noise propagators V, V' for n = 0..steps (MATH.md 4).

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


def loss_from_propagators(props: Propagators, method: str = "fft") -> np.ndarray:
    """Solve the renewal equations of the loss expansion (P.19, Theorem 2)::

        l_t = U'_t + sum_{s<t} l_s V'_{t-s},     L_t = U_t + sum_{s<t} l_s V_{t-s}

    ``method="direct"``: O(T^2) summation; ``"fft"``: online divide-and-conquer convolution
    with FFT block products, O(T log^2 T). Returns ``L`` of shape (steps+1,).
    """
    if not isinstance(props, Propagators):
        raise TypeError(f"props must be Propagators, got {type(props).__name__}")
    if method not in ("direct", "fft"):
        raise ValueError(f"method must be 'direct' or 'fft', got {method!r}")
    arrays = [props.U, props.U_prime, props.V, props.V_prime]
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError("props must be finite (the propagators of a diverging algorithm cannot be summed)")
    if props.e_is_zero:  # U' = U, V' = V: pass the same arrays so the core convolves once
        arrays = [props.U, props.U, props.V, props.V]
    rho = _growth_rate(*arrays) if method == "fft" else 1.0
    if rho == 1.0:
        L, _ = _core.renewal(*arrays, method)
        return L
    # Exponential tilt: l_t rho^-t solves the same equations with every input times rho^-t,
    # so the FFT block products see non-growing sequences and keep their relative accuracy.
    log_tilt = -np.arange(arrays[0].size) * math.log(rho)
    tilt = np.exp(log_tilt)
    tilted = [a * tilt for a in arrays]
    if props.e_is_zero:
        tilted = [tilted[0], tilted[0], tilted[2], tilted[2]]
    L, _ = _core.renewal(*tilted, method)
    return L * np.exp(-log_tilt)


def _growth_rate(U, U_prime, V, V_prime) -> float:
    """A rate rho >= 1 matching the exponential growth of l and L, or 1 when they do not grow.

    Growth comes from the inputs (``(max|A| over the last quarter / max|A| over the second
    quarter)^(2/T)``, robust to oscillation) and from the renewal itself (the root of
    ``sum_n |V'_n| rho^-n = 1`` when ``sum |V'| > 1``, by bisection).
    """
    rho = 1.0
    T = U.size
    if T >= 8:
        for a in (U, U_prime, V, V_prime):
            mag = np.abs(a)
            early, late = mag[T // 4:T // 2].max(), mag[3 * T // 4:].max()
            if early > 0 and late > early:
                rho = max(rho, (late / early) ** (2.0 / T))
    weights = np.abs(V_prime[1:])
    n = np.arange(1, V_prime.size)
    if weights.sum() > 1.0:
        f = lambda r: np.sum(weights * np.exp(-n * math.log(r)))
        lo, hi = 1.0, 2.0
        while f(hi) > 1.0:
            lo, hi = hi, 2.0 * hi
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if f(mid) > 1.0 else (lo, mid)
        rho = max(rho, hi)
    return rho if rho > 1.0 + 1e-9 else 1.0


def simulate_sgd(algorithm: Algorithm, spectrum: Spectrum, batch_size, steps, runs, seed=0,
                 return_stderr: bool = False, chunk_runs: int = 64):
    """Monte Carlo mean loss of real mini-batch SGD with memory on Gaussian data.

    Inputs ``x ~ N(0, diag(eigenvalues))`` (the eigenbasis), targets ``y = <x, w*>`` with
    ``w*_k = sqrt(c_k^2)``, ``w_0 = u_0 = 0``; each step draws a fresh batch and applies the
    matrix-form update with the batch gradient ``(1/B) sum_i x_i x_i^T (w + e^T u - w*)``.
    Finite spectra only (unit weights). Returns the mean of ``L_t`` over ``runs``, shape
    (steps+1,); with ``return_stderr`` also its standard error.
    """
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum must be a Spectrum, got {type(spectrum).__name__}")
    if spectrum.infinite or not np.all(spectrum.weights == 1.0):
        raise ValueError("spectrum must be finite with unit weights for simulate_sgd (Monte Carlo needs real dimensions)")
    if not isinstance(algorithm, (MemoryAlgorithm, Schedule)):
        raise TypeError(f"algorithm must be a MemoryAlgorithm or a Schedule, got {type(algorithm).__name__}")
    B = positive_int(batch_size, "batch_size")
    steps = nonnegative_int(steps, "steps")
    runs = positive_int(runs, "runs")
    chunk_runs = positive_int(chunk_runs, "chunk_runs")
    if not (seed is None or isinstance(seed, (int, np.integer, np.random.SeedSequence))) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, a numpy SeedSequence or None, got {type(seed).__name__}")
    if isinstance(seed, (int, np.integer)) and seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    alpha, b, c, D, e = (_parameter_arrays(algorithm, steps) if isinstance(algorithm, Schedule)
                         else _parameter_arrays(algorithm, 1))
    stationary = isinstance(algorithm, MemoryAlgorithm)
    lam = spectrum.eigenvalues
    sqrt_lam = np.sqrt(lam)
    w_star = np.sqrt(spectrum.coefficients2)
    M, K = algorithm.memory, lam.size
    rng = np.random.default_rng(seed)
    sums = np.zeros(steps + 1)
    sq_sums = np.zeros(steps + 1)
    for start in range(0, runs, chunk_runs):
        R = min(chunk_runs, runs - start)
        r = np.tile(-w_star, (R, 1))          # w - w*
        u = np.zeros((R, M, K))
        losses = np.empty((steps + 1, R))
        losses[0] = 0.5 * (r ** 2) @ lam
        for t in range(steps):
            i = 0 if stationary else t
            point = r + np.einsum("m,rmk->rk", e[i], u)
            x = rng.standard_normal((R, B, K)) * sqrt_lam
            grad = np.einsum("rbk,rb->rk", x, np.einsum("rbk,rk->rb", x, point)) / B
            r_new = r + np.einsum("m,rmk->rk", b[i], u) - alpha[i] * grad
            u = np.einsum("mn,rnk->rmk", D[i], u) - c[i][None, :, None] * grad[:, None, :]
            r = r_new
            losses[t + 1] = 0.5 * (r ** 2) @ lam
        sums += losses.sum(axis=1)
        sq_sums += (losses ** 2).sum(axis=1)
    mean = sums / runs
    if not return_stderr:
        return mean
    var = np.maximum(sq_sums / runs - mean ** 2, 0.0) * runs / max(runs - 1, 1)
    return mean, np.sqrt(var / runs)
