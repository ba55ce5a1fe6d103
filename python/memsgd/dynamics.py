"""Exact mean-loss dynamics (docs/math.md §3-4), thin over the C++ core.

Along eigencomponent k the second moment ``X_k`` of the state ``(w - w*, u)`` obeys

    l_t       = 1/2 sum_k m_k lambda_k h^T X_{k,t} h        (loss at the gradient point w + e^T u)
    X_{k,t+1} = S_k X_{k,t} S_k^T + (1/B_t) [tau1 lambda_k 2 l_t - tau2 lambda_k^2 h^T X_{k,t} h + sigma2 lambda_k] g g^T
    L_t       = 1/2 sum_k m_k lambda_k (X_{k,t})_00,        X_{k,0} = c_k^2 E11,

(``sigma2``: the label-noise variance, docs/math.md §9; ``L_t`` is the excess risk, the population
risk is ``L_t + sigma2/2``),

exact for the expected loss of mini-batch SGD with memory on Gaussian data. A run has diverged
at the first step with ``L_t > DIVERGENCE_FACTOR * L_0`` or a non-finite value (docs/math.md §8);
the core decides it, and its losses are ``inf`` from there on.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from . import _core
from ._progress import run_watched
from ._steps import recorded_steps
from ._validation import float_array, instance_of, nonnegative_int, positive_int
from .algorithms import MemoryAlgorithm
from .noise import Noise
from .schedules import Schedule, _scale_hint
from .spectrum import Spectrum

__all__ = ["LossCurve", "LossCurves", "Propagators", "loss_curve", "loss_curves", "propagators"]

# The core refuses more steps than this (and any run whose arrays exceed physical memory).
MAX_STEPS = 2 ** 40

Algorithm = Union[MemoryAlgorithm, Schedule]


@dataclass(frozen=True)
class LossCurve:
    """``loss[t] = L_t`` for t = 0..steps; ``gradient_point_loss[t] = l_t``, the expected loss at
    the gradient point ``w + e^T u`` (equal to ``loss`` when e = 0), which drives the noise.

    ``diverged_at`` is the first step with ``L_t > 1e30 L_0`` or a non-finite value (both arrays
    are ``inf`` from there on), or None. ``loss`` is the excess risk; with label noise of variance
    ``label_noise`` (docs/math.md §9) the population risk is :attr:`total`.
    """

    loss: np.ndarray
    diverged_at: Optional[int]
    gradient_point_loss: np.ndarray = field(repr=False)
    label_noise: float = field(default=0.0, repr=False)

    @property
    def total(self) -> np.ndarray:
        """``loss + label_noise / 2``: the population risk (excess risk plus the irreducible label noise)."""
        return self.loss + 0.5 * self.label_noise

    @property
    def steps(self) -> int:
        return self.loss.size - 1

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def growth_rate(self) -> float:
        """Per-step exponential growth rate of the loss at the end of the run.

        The least-squares slope ``r`` of ``ln L_t`` against ``t`` over the last quarter of the
        run, ``t`` in ``[T - w, T]`` with ``w = ceil(T/4)`` (so ``L_t ~ C e^(r t)`` there). ``+inf``
        for a diverged run; ``nan`` for runs shorter than 16 steps or a non-positive loss in the
        window. A stationary run whose noise is unstable (``V' > 1``, docs/math.md §5) has
        ``r = ln rho`` asymptotically, ``rho`` the root of ``sum_n V'_n rho^-n = 1``.
        """
        return _growth(self.loss, self.diverged_at)[0]

    @property
    def grows_exponentially(self) -> bool:
        """True when the run diverged or the loss shows sustained exponential growth at its end:
        over the last quarter (see :attr:`growth_rate`) the mean of ``ln L`` rises from each of four
        equal parts to the next, and ``L`` grows at least e-fold (``growth_rate * w >= 1``).

        The losses themselves are exact and unchanged; this flags runs that have not (yet) crossed
        the divergence threshold but grow like an unstable one (frozen-time ``V' > 1``). A run that
        converges or settles on a plateau does not qualify.
        """
        return _growth(self.loss, self.diverged_at)[1]


@dataclass(frozen=True)
class LossCurves:
    """Loss curves of C configurations at the recorded steps (see :func:`loss_curves`).

    ``steps`` (R,) int64; ``loss`` (C, R) float64, ``loss[i, r] = L_{steps[r]}`` of configuration i
    (``inf`` from its divergence on); ``diverged_at`` (C,) int64, -1 where the run did not diverge;
    ``label_noise`` (C,) the label-noise variance of each configuration's noise (zeros by default).
    """

    steps: np.ndarray
    loss: np.ndarray
    diverged_at: np.ndarray
    label_noise: Optional[np.ndarray] = field(default=None, repr=False)

    def __post_init__(self):
        if self.label_noise is None:
            object.__setattr__(self, "label_noise", np.zeros(np.shape(self.loss)[0]))

    @property
    def total(self) -> np.ndarray:
        """(C, R) ``loss + label_noise / 2`` per configuration: the population risk."""
        return self.loss + 0.5 * np.asarray(self.label_noise)[:, None]

    @property
    def growth_rate(self) -> np.ndarray:
        """(C,) :attr:`LossCurve.growth_rate` of each configuration, fitted on the recorded steps in
        the last quarter of the run, or on the last 5 recorded steps when the quarter has fewer
        (``nan`` when those do not lie in the last half; ``inf`` if diverged)."""
        return np.array([_growth(row, None if d < 0 else int(d), self.steps)[0]
                         for row, d in zip(self.loss, self.diverged_at)], dtype=np.float64)

    @property
    def grows_exponentially(self) -> np.ndarray:
        """(C,) bool, :attr:`LossCurve.grows_exponentially` of each configuration on the recorded
        steps, in the window of :attr:`growth_rate` (False where it has no fit)."""
        return np.array([_growth(row, None if d < 0 else int(d), self.steps)[1]
                         for row, d in zip(self.loss, self.diverged_at)], dtype=bool)


@dataclass(frozen=True)
class Propagators:
    """Signal and noise propagators of a stationary algorithm (docs/math.md §4), each (steps+1,).

    ``U_n = 1/2 sum m lambda c^2 <E11, T^n E11>``, ``U'_n = 1/2 sum m lambda c^2 <hh^T, T^n E11>``,
    ``V_n = (tau1/B) sum m lambda^2 <E11, T^(n-1) gg^T>``, ``V'_n`` likewise with ``hh^T``;
    ``V[0] = V'[0] = 0``. ``e_is_zero`` tells that ``U' = U`` and ``V' = V``. The recursion stops
    only on overflow: from the first non-finite value on, all four are ``inf``.
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


# -- growth diagnostic -------------------------------------------------------------------------

_GROWTH_MIN_STEPS = 16
_GROWTH_RECORDED = 5    # recorded steps a fit needs, within the last half of the run


def _growth(loss: np.ndarray, diverged_at: Optional[int], steps: Optional[np.ndarray] = None):
    """(rate, grows) of LossCurve.growth_rate / grows_exponentially; ``steps`` the recorded steps of
    ``loss`` (every step when None). The window is the last quarter of the run's steps. Recorded
    steps need at least 5 there; log-spaced ones are sparse at the end (record=100 over 1e4
    steps keeps 4 in the last quarter), so the window then reaches back to the last 5 recorded
    steps, provided they lie in the last half (_GROWTH_RECORDED); else (nan, False)."""
    if diverged_at is not None:
        return math.inf, True
    T = loss.size - 1 if steps is None else (int(steps[-1]) if steps.size else 0)
    if T < _GROWTH_MIN_STEPS:
        return math.nan, False
    w = -(-T // 4)
    if steps is None:  # every step: the last w + 1 >= 5 of them
        window, t = loss[T - w:], np.arange(T - w, T + 1, dtype=np.float64)
    else:
        inside = steps >= T - w
        if np.count_nonzero(inside) < _GROWTH_RECORDED:
            if steps.size < _GROWTH_RECORDED or steps[-_GROWTH_RECORDED] < T - 2 * w:
                return math.nan, False
            w = T - int(steps[-_GROWTH_RECORDED])
            inside = steps >= T - w
        window, t = loss[inside], steps[inside].astype(np.float64)
    if not np.all(window > 0):
        return math.nan, False
    y = np.log(window)
    tc = t - t.mean()
    rate = float(np.dot(tc, y - y.mean()) / np.dot(tc, tc))
    parts = [p.mean() for p in np.array_split(y, 4)]
    rising = all(b > a for a, b in zip(parts, parts[1:]))
    return rate, bool(rising and rate * w >= 1.0)


# -- argument checks ---------------------------------------------------------------------------

def _check_algorithm(algorithm, name="algorithm"):
    instance_of(algorithm, (MemoryAlgorithm, Schedule), name)


def _check_steps(steps) -> int:
    steps = nonnegative_int(steps, "steps")
    if steps >= MAX_STEPS:
        raise ValueError(f"steps must be < 2**40, got {steps}")
    return steps


def _check_problem(algorithm, spectrum, noise, steps, name="algorithm"):
    _check_algorithm(algorithm, name)
    instance_of(spectrum, Spectrum, "spectrum")
    instance_of(noise, Noise, "noise")
    steps = _check_steps(steps)
    _check_schedule_length(algorithm, steps, name)
    if noise.per_step and noise.batch_size.size < steps:
        raise ValueError(f"noise has {noise.batch_size.size} per-step batch sizes, fewer than steps = {steps}")
    return steps


def _check_schedule_length(algorithm, steps: int, name: str):
    if isinstance(algorithm, Schedule) and algorithm.length is not None and steps > algorithm.length:
        raise ValueError(f"steps must be <= the schedule's length {algorithm.length} "
                         f"({name} is too short), got {steps}")


def _check_threads(threads) -> int:
    """The core's thread argument: 0 for the default (all cores)."""
    if threads is None:
        return 0
    return positive_int(threads, "threads")


def _check_progress(progress):
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None, got {type(progress).__name__}")


# -- memory ------------------------------------------------------------------------------------

def _parameter_bytes(algorithm, steps: int) -> float:
    """Bytes of the per-step parameter arrays Python builds for the core (0 for stationary)."""
    if isinstance(algorithm, MemoryAlgorithm):
        return 0.0
    M = algorithm.memory
    return 8.0 * max(steps, 1) * (1 + 3 * M + M * M)


def _noise_bytes(noise: Noise, steps: int) -> float:
    return (24.0 if noise.label_noise else 16.0) * steps if noise.per_step else 0.0


def _require_memory(parts: dict, what: str):
    """Refuse a run whose peak memory exceeds physical memory, before allocating anything.

    ``parts``: name -> bytes of every array the run holds at once (outputs, core state,
    per-step parameters); ``what`` describes the run's size for the message.
    """
    physical = _core.physical_memory()
    total = float(sum(parts.values()))
    if physical > 0 and total > physical:
        detail = ", ".join(f"{name} {_gb(b)}" for name, b in parts.items() if b > 0)
        raise ValueError(f"steps too large ({what}): the run needs about {_gb(total)} ({detail}), more than "
                         f"this machine's physical memory ({_gb(physical)})")


def _gb(b: float) -> str:
    return f"{b / 1e9:.3g} GB"


# -- core calls --------------------------------------------------------------------------------

def _parameter_arrays(algorithm: Algorithm, steps: int):
    """Per-step parameter arrays for the core: one row for a stationary algorithm."""
    if isinstance(algorithm, MemoryAlgorithm):
        M = algorithm.memory
        return (np.array([algorithm.alpha]), algorithm.b.reshape(1, M), algorithm.c.reshape(1, M),
                algorithm.D.reshape(1, M, M), algorithm.e.reshape(1, M))
    if algorithm.length == 0:  # steps == 0 here: the core needs a row, which it never uses
        M = algorithm.memory
        return (np.zeros(1), np.zeros((1, M)), np.zeros((1, M)), np.zeros((1, M, M)), np.zeros((1, M)))
    return algorithm.parameters(max(steps, 1))


def _noise_arrays(noise: Noise, steps: int):
    """``(tau1/B_t, tau2/B_t, sigma2/B_t)`` for the core: one entry for a constant batch size; the
    label-noise source is None without label noise (the core then adds nothing)."""
    if not noise.per_step:
        label = np.array([noise.label_source]) if noise.label_noise != 0.0 else None
        return np.array([noise.coupling]), np.array([noise.self_noise]), label
    n = max(steps, 1)  # the core needs an entry even for steps = 0
    label = noise.label_coefficients(n) if noise.label_noise != 0.0 else None
    return (*noise.coefficients(n), label)


# Runs of more scalar updates than this go through a watched worker thread (progress bar,
# Ctrl-C); shorter ones call the core directly. About 0.1 s of work.
_WATCH_WORK = 1e8
# Auto progress bars (progress=None) from about this much work: several seconds.
_BAR_WORK = 5e9


def _watched(call, work: float, progress, total: int, desc: str, unit: str, counter: str):
    """``call(control)`` with a progress bar over ``total`` units and Ctrl-C cancellation.

    The core releases the GIL and publishes its progress in a ``RunControl`` (``counter``: the
    attribute to show); this thread polls it and turns Ctrl-C into a cancellation of the run.
    """
    show = progress if progress is not None else (None if work >= _BAR_WORK else False)
    if show is False and work < _WATCH_WORK:
        return call(None)
    return run_watched(call, total, desc, unit, show, counter)


def _evolve(arrays, coupling, self_noise, steps: int, memory: int, nodes: int, progress, desc: str,
            threads: int, **options):
    work = float(steps) * nodes * _core.step_cost(memory)

    def call(control):
        return _core.evolve(*arrays, coupling, self_noise, steps, threads=threads, control=control, **options)

    return _watched(call, work, progress, steps, desc, "step", "steps_done")


def loss_curve(algorithm: Algorithm, spectrum: Spectrum, noise: Noise, steps: int,
               progress: Optional[bool] = None, *, threads: Optional[int] = None) -> LossCurve:
    """Exact expected loss ``L_0..L_steps`` of mini-batch SGD with memory (docs/math.md §3).

    Works for stationary algorithms and schedules (per-step parameters), any memory M
    (specialised SIMD kernels for M <= 3), any shift e, and per-step batch sizes
    (``Noise(batch_size=array)``: step t uses ``tau1/B_t``, ``tau2/B_t``, docs/math.md §8).
    Cost O(steps K (M+1)^2) for M <= 3, O(steps K (M+1)^3) above; memory O(K (M+1)^2 + steps).
    Deterministic: identical bits for any number of threads, and equal to :func:`loss_curves`.

    ``progress``: ``True`` shows a progress bar, ``False`` never, ``None`` (default) when the
    run is long (about 5 s or more) and stderr is a terminal. Long runs can be interrupted
    with Ctrl-C (KeyboardInterrupt) whether or not a bar is shown.
    ``threads``: at most this many threads (default: all cores); the core uses one where more
    do not pay.
    """
    steps = _check_problem(algorithm, spectrum, noise, steps)
    threads = _check_threads(threads)
    _check_progress(progress)
    M, K = algorithm.memory, spectrum.size
    _require_memory({"loss and gradient-point loss": 16.0 * (steps + 1),
                     "per-step parameters": _parameter_bytes(algorithm, steps),
                     "per-step noise": _noise_bytes(noise, steps),
                     "state": _core.state_bytes(M, K, 1, threads or _core.max_threads())},
                    f"steps = {steps}")
    params = _parameter_arrays(algorithm, steps)
    coupling, self_noise, label = _noise_arrays(noise, steps)
    loss, gp, diverged = _evolve((spectrum.eigenvalues, spectrum.weights, spectrum.coefficients2, *params),
                                 coupling, self_noise, steps, M, K, progress, "loss_curve", threads, label=label)
    hint = _scale_hint(algorithm, spectrum) if diverged >= 0 else None
    if hint is not None:  # a schedule built for another problem's scale: say so, not just diverged_at
        warnings.warn(f"loss_curve: diverged at step {diverged}; {hint}", UserWarning, stacklevel=2)
    return LossCurve(loss, None if diverged < 0 else int(diverged), gp, noise.label_noise)


def propagators(algorithm: MemoryAlgorithm, spectrum: Spectrum, noise: Noise, steps: int,
                progress: Optional[bool] = None, *, threads: Optional[int] = None) -> Propagators:
    """Signal propagators U, U' and noise propagators V, V' for n = 0..steps (docs/math.md §4).

    Stationary algorithms and a constant batch size only (two-time propagators of schedules
    are not offered here). ``progress`` and ``threads`` as in :func:`loss_curve`.
    """
    if isinstance(algorithm, Schedule):
        raise ValueError("algorithm must be stationary (a MemoryAlgorithm): propagators of a Schedule "
                         "are two-time objects; use loss_curve")
    steps = _check_problem(algorithm, spectrum, noise, steps)
    if noise.per_step:
        raise ValueError("noise must have a constant batch size: propagators are defined for stationary "
                         "dynamics only (use loss_curve for a per-step batch size)")
    threads = _check_threads(threads)
    _check_progress(progress)
    M, K = algorithm.memory, spectrum.size
    _require_memory({"propagators": 8.0 * 6 * (steps + 1),
                     "state": _core.state_bytes(M, K, 1, threads or _core.max_threads())},
                    f"steps = {steps}")
    params = _parameter_arrays(algorithm, steps)
    lam = spectrum.eigenvalues
    no_coupling, self_noise = np.zeros(1), np.array([noise.self_noise])
    s0, s1, _ = _evolve((lam, spectrum.weights, spectrum.coefficients2, *params), no_coupling, self_noise,
                        steps, M, K, progress, "signal propagators", threads, overflow_only=True)
    V = np.zeros(steps + 1)
    V_prime = np.zeros(steps + 1)
    if steps > 0 and noise.coupling != 0.0:
        # V_n = (tau1/B) sum m lambda^2 <E11, T^(n-1) gg^T>: the loss (1/2 sum m lambda X_00) of the
        # recursion started from lambda g g^T, times 2 tau1/B.
        n0, n1, _ = _evolve((lam, spectrum.weights, lam, *params), no_coupling, self_noise, steps - 1, M, K,
                            progress, "noise propagators", threads, initial_ggt=True, overflow_only=True)
        V[1:] = 2.0 * noise.coupling * n0
        V_prime[1:] = 2.0 * noise.coupling * n1
    return Propagators(s0, s1, V, V_prime, bool(np.all(algorithm.e == 0)))


# -- batched ------------------------------------------------------------------------------------

def _per_configuration(value, kind, name: str, count: int) -> list:
    """One shared ``kind`` object, or a sequence of exactly ``count`` of them."""
    if isinstance(value, kind):
        return [value] * count
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a {kind.__name__} or a sequence of {count} of them, "
                        f"got {type(value).__name__}")
    items = list(value)
    if len(items) != count:
        raise ValueError(f"{name} must be one {kind.__name__} or a sequence with one per algorithm "
                         f"({count}), got {len(items)}")
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise TypeError(f"{name}[{i}] must be a {kind.__name__}, got {type(item).__name__}")
    return items


# Per-step parameter arrays of schedules are built per chunk of configurations, at most this many
# bytes at a time (stationary configurations need none and go in one call).
_CHUNK_PARAMETER_BYTES = 2e9


def loss_curves(algorithms, spectrum, noise, steps: int, record=None, *, threads: Optional[int] = None,
                progress: Optional[bool] = None) -> LossCurves:
    """Exact loss curves of C configurations in one core call (docs/math.md §3).

    Args:
        algorithms: a sequence of C ``MemoryAlgorithm`` / ``Schedule`` (memory sizes may differ).
        spectrum: one shared ``Spectrum``, or a sequence of C of them.
        noise: one shared ``Noise``, or a sequence of C of them.
        steps: horizon T.
        record: ``None`` (every step 0..T), an int R (the steps ``log_spaced_steps(T, R)``, about
            R steps evenly spaced in log t, always 0 and T), or an increasing int array in [0, T].
        threads: at most this many threads (default: all cores).
        progress: a bar over configurations (``None``: for long runs on a terminal).

    ``loss[i]`` is bitwise equal to ``loss_curve(algorithms[i], spectrum_i, noise_i, T).loss[steps]``
    for any thread count and any split of the configurations into calls. Configurations run in
    parallel, one per thread (each vectorised over components), or one after another split over
    components when there are fewer configurations than threads. Memory O(C R + K (M+1)^2 threads)
    (plus the per-step parameters of schedules, built in chunks).
    """
    if isinstance(algorithms, (MemoryAlgorithm, Schedule)):
        raise TypeError("algorithms must be a sequence of MemoryAlgorithm / Schedule (for one algorithm, "
                        "use loss_curve or pass [algorithm])")
    if isinstance(algorithms, (str, bytes)) or not isinstance(algorithms, (Sequence, np.ndarray)):
        raise TypeError(f"algorithms must be a sequence of MemoryAlgorithm / Schedule, got {type(algorithms).__name__}")
    algos = list(algorithms)
    if not algos:
        raise ValueError("algorithms must not be empty")
    for i, a in enumerate(algos):
        _check_algorithm(a, f"algorithms[{i}]")
    C = len(algos)
    specs = _per_configuration(spectrum, Spectrum, "spectrum", C)
    noises = _per_configuration(noise, Noise, "noise", C)
    steps = _check_steps(steps)
    for i, (a, n) in enumerate(zip(algos, noises)):
        _check_schedule_length(a, steps, f"algorithms[{i}]")
        if n.per_step and n.batch_size.size < steps:
            raise ValueError(f"noise[{i}] has {n.batch_size.size} per-step batch sizes, fewer than steps = {steps}")
    rec = None if record is None else recorded_steps(record, steps)  # None: every step
    threads = _check_threads(threads)
    _check_progress(progress)
    R = steps + 1 if rec is None else rec.size
    max_M = max(a.memory for a in algos)
    max_K = max(s.size for s in specs)
    param_bytes = [_parameter_bytes(a, steps) + _noise_bytes(n, steps) for a, n in zip(algos, noises)]
    chunks = _chunks(param_bytes)
    _require_memory({"recorded losses": 8.0 * C * (R + 1),
                     "per-step parameters": max(sum(param_bytes[a:b]) for a, b in chunks),
                     "state": _core.state_bytes(max_M, max_K, C, threads or _core.max_threads())},
                    f"{C} configurations of steps = {steps}")

    spectrum_arrays: dict = {}
    for s in specs:
        spectrum_arrays.setdefault(id(s), (s.eigenvalues, s.weights, s.coefficients2))
    work = float(steps) * sum(s.size * _core.step_cost(a.memory) for a, s in zip(algos, specs))
    loss = np.empty((C, R))
    diverged = np.empty(C, dtype=np.int64)

    def call(control):
        # one RunControl for every chunk: configs_done keeps counting across them
        for a, b in chunks:
            param_cache, noise_cache = {}, {}
            alg = [param_cache.setdefault(id(x), _parameter_arrays(x, steps)) for x in algos[a:b]]
            noi = [noise_cache.setdefault(id(n), _noise_arrays(n, steps)) for n in noises[a:b]]
            spe = [spectrum_arrays[id(s)] for s in specs[a:b]]
            loss[a:b], diverged[a:b] = _core.evolve_batch(spe, alg, noi, steps, rec, threads=threads,
                                                          control=control)
        return loss, diverged

    _watched(call, work, progress, C, "loss_curves", "config", "configs_done")
    steps_out = np.arange(steps + 1, dtype=np.int64) if rec is None else rec
    return LossCurves(steps_out, loss, diverged, np.array([n.label_noise for n in noises]))


def _chunks(param_bytes):
    """Split configurations [0, C) so that each chunk's per-step arrays stay under the budget."""
    out, start, acc = [], 0, 0.0
    for i, b in enumerate(param_bytes):
        if i > start and acc + b > _CHUNK_PARAMETER_BYTES:
            out.append((start, i))
            start, acc = i, 0.0
        acc += b
    out.append((start, len(param_bytes)))
    return out
