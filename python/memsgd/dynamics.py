"""Exact mean-loss dynamics (docs/math.md §3-4), thin over the C++ core.

Along eigencomponent k the second moment ``X_k`` of the state ``(w - w*, u)`` obeys

    l_t       = 1/2 sum_k m_k lambda_k h^T X_{k,t} h        (loss at the gradient point w + e^T u)
    X_{k,t+1} = S_k X_{k,t} S_k^T
                + (1/B_t) [tau1 lambda_k 2 l_t - tau2 lambda_k^2 h^T X_{k,t} h + sigma2 lambda_k] g g^T
    L_t       = 1/2 sum_k m_k lambda_k (X_{k,t})_00,        X_{k,0} = c_k^2 E11,

(``sigma2``: the label-noise variance, docs/math.md §9; ``L_t`` is the excess risk, the population
risk is ``L_t + sigma2/2``),

exact for the expected loss of mini-batch SGD with memory on Gaussian data. A run has diverged
at the first step with ``L_t > DIVERGENCE_FACTOR * L_0`` or a non-finite value (docs/math.md §8);
the core decides it, and its losses are ``inf`` from there on.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from . import _core
from ._affine import forward_problem, has_weight_decay, plain_problem
from ._growth import growth
from ._packing import (
    chunks,
    core_algorithm,
    noise_arrays,
    noise_bytes,
    parameter_arrays,
    parameter_bytes,
    per_configuration,
    spectrum_arrays,
)
from ._problem import check_algorithm, check_batch_sizes, check_problem, check_schedule_length
from ._progress import watched
from ._steps import recorded_steps
from ._validation import float_array, progress_flag, require_memory, step_count, thread_count
from .algorithms import MemoryAlgorithm
from .noise import Noise
from .schedules import Schedule, _scale_hint
from .spectrum import Spectrum

__all__ = ["LossCurve", "LossCurves", "Propagators", "loss_curve", "loss_curves", "propagators"]

Algorithm = Union[MemoryAlgorithm, Schedule]


@dataclass(frozen=True)
class LossCurve:
    """``loss[t] = L_t`` for t = 0..steps; ``gradient_point_loss[t] = l_t``, the expected loss at
    the gradient point ``w + e^T u`` (equal to ``loss`` when e = 0), which drives the noise.

    ``diverged_at`` is the first step with ``L_t > 1e30 L_0`` or a non-finite value (both arrays
    are ``inf`` from there on), or None. ``loss`` is the excess risk; with label noise of variance
    ``label_noise`` (docs/math.md §9) the population risk is ``total``.

    Examples:
        >>> import memsgd
        >>> import math
        >>> from memsgd.long_horizon import DIVERGENCE_FACTOR
        >>> curve = memsgd.loss_curve(memsgd.gd(2.5), memsgd.Spectrum([1.0], [2.0]), memsgd.Noise.none(), 100)
        >>> curve.grows_exponentially                          # |1 - 2.5| > 1: L_t = 2.25^t L_0
        True
        >>> curve.diverged_at == math.ceil(math.log(DIVERGENCE_FACTOR) / math.log(2.25))  # past 1e30 L_0
        True
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
        return growth(self.loss, self.diverged_at)[0]

    @property
    def grows_exponentially(self) -> bool:
        """True when the run diverged or the loss shows sustained exponential growth at its end:
        over the last quarter (see ``growth_rate``) the mean of ``ln L`` rises from each of four
        equal parts to the next, and ``L`` grows at least e-fold (``growth_rate * w >= 1``).

        The losses themselves are exact and unchanged; this flags runs that have not (yet) crossed
        the divergence threshold but grow like an unstable one (frozen-time ``V' > 1``). A run that
        converges or settles on a plateau does not qualify.
        """
        return growth(self.loss, self.diverged_at)[1]


@dataclass(frozen=True)
class LossCurves:
    """Loss curves of C configurations at the recorded steps (see [`loss_curves`][memsgd.loss_curves]).

    ``steps`` (R,) int64; ``loss`` (C, R) float64, ``loss[i, r] = L_{steps[r]}`` of configuration i
    (``inf`` from its divergence on); ``diverged_at`` (C,) int64, -1 where the run did not diverge;
    ``label_noise`` (C,) the label-noise variance of each configuration's noise (zeros by default).

    Examples:
        >>> import memsgd
        >>> curves = memsgd.loss_curves([memsgd.heavy_ball(0.1, m) for m in (0.0, 0.5, 0.9)],
        ...                             memsgd.Spectrum.power_law(2.0, 1.0, size=100), memsgd.Noise.gaussian(10),
        ...                             1000, record=20)
        >>> curves.loss.shape == (3, curves.steps.size), int(curves.steps[-1])
        (True, 1000)
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
        """(C,) [`LossCurve.growth_rate`][memsgd.LossCurve.growth_rate] of each configuration, fitted on the recorded
        steps in
        the last quarter of the run, or on the last 5 recorded steps when the quarter has fewer
        (``nan`` when those do not lie in the last half; ``inf`` if diverged)."""
        return np.array([growth(row, None if d < 0 else int(d), self.steps)[0]
                         for row, d in zip(self.loss, self.diverged_at)], dtype=np.float64)

    @property
    def grows_exponentially(self) -> np.ndarray:
        """(C,) bool, [`LossCurve.grows_exponentially`][memsgd.LossCurve.grows_exponentially] of each configuration on
        the recorded
        steps, in the window of ``growth_rate`` (False where it has no fit)."""
        return np.array([growth(row, None if d < 0 else int(d), self.steps)[1]
                         for row, d in zip(self.loss, self.diverged_at)], dtype=bool)


@dataclass(frozen=True)
class Propagators:
    """Signal and noise propagators of a stationary algorithm (docs/math.md §4), each (steps+1,).

    ``U_n = 1/2 sum m lambda c^2 <E11, T^n E11>``, ``U'_n = 1/2 sum m lambda c^2 <hh^T, T^n E11>``,
    ``V_n = (tau1/B) sum m lambda^2 <E11, T^(n-1) gg^T>``, ``V'_n`` likewise with ``hh^T``;
    ``V[0] = V'[0] = 0``. ``e_is_zero`` tells that ``U' = U`` and ``V' = V``. The recursion stops
    only on overflow: from the first non-finite value on, all four are ``inf``.

    Label noise (docs/math.md §9) is a source: ``W_n = (sigma2/2B) sum m lambda^2 <E11, T^(n-1) gg^T>``
    (``W'_n`` with ``hh^T``; ``W[0] = 0``) enters the renewal pair through its cumulative sum,
    ``L_t = U_t + sum_{n=1}^t W_n + sum_{s<t} l_s V_{t-s}`` (and ``l`` with the primes). Zeros
    without label noise (the default).

    Examples:
        >>> import memsgd
        >>> props = memsgd.propagators(memsgd.heavy_ball(0.1, 0.9), memsgd.Spectrum([1.0], [2.0]),
        ...                            memsgd.Noise.gaussian(10), 100)
        >>> props.steps, props.U.shape, props.e_is_zero
        (100, (101,), True)
    """

    U: np.ndarray
    U_prime: np.ndarray
    V: np.ndarray
    V_prime: np.ndarray
    e_is_zero: bool = False
    W: Optional[np.ndarray] = None
    W_prime: Optional[np.ndarray] = None

    def __post_init__(self):
        # Also built by users (from lists, other dtypes): float64 1-d arrays of one length, no NaN.
        for name in ("W", "W_prime"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.zeros(np.size(self.U)))
        n = None
        for name in ("U", "U_prime", "V", "V_prime", "W", "W_prime"):
            a = float_array(getattr(self, name), name, ndim=1, allow_empty=False, finite=False)
            if np.any(np.isnan(a)):
                raise ValueError(f"{name} must not contain NaN")
            n = a.size if n is None else n
            if a.size != n:
                raise ValueError(f"{name} must have the same length as U ({n}), got {a.size}")
            object.__setattr__(self, name, a)
        if self.V[0] != 0 or self.V_prime[0] != 0:
            raise ValueError("V[0] and V_prime[0] must be 0 (noise propagators start at n = 1)")
        if self.W[0] != 0 or self.W_prime[0] != 0:
            raise ValueError("W[0] and W_prime[0] must be 0 (the label-noise source starts at n = 1)")
        if not isinstance(self.e_is_zero, (bool, np.bool_)):
            raise TypeError(f"e_is_zero must be a bool, got {type(self.e_is_zero).__name__}")
        object.__setattr__(self, "e_is_zero", bool(self.e_is_zero))
        if self.e_is_zero and not (np.array_equal(self.U, self.U_prime) and np.array_equal(self.V, self.V_prime)
                                   and np.array_equal(self.W, self.W_prime)):
            raise ValueError("e_is_zero=True requires U_prime == U, V_prime == V and W_prime == W")

    @property
    def steps(self) -> int:
        return self.U.size - 1


# -- core calls --------------------------------------------------------------------------------

def _evolve(spectrum: tuple, algorithm: tuple, noise: tuple, steps: int, memory: int, nodes: int, progress,
            desc: str, threads: int, **options):
    """``_core.evolve`` of the packed (spectrum, algorithm, noise) (module ``_packing``), watched."""
    work = float(steps) * nodes * _core.step_cost(memory)

    def call(control):
        return _core.evolve(spectrum, algorithm, noise, steps, threads=threads, control=control, **options)

    return watched(call, work, progress, steps, desc, "step", "steps_done")


def loss_curve(algorithm: Algorithm, spectrum: Spectrum, noise: Noise, steps: int,
               progress: Optional[bool] = None, *, threads: Optional[int] = None) -> LossCurve:
    """Exact expected loss ``L_0..L_steps`` of mini-batch SGD with memory (docs/math.md §3).

    Works for stationary algorithms and schedules (per-step parameters), any memory M
    (specialised SIMD kernels for M <= 3), any shift e, and per-step batch sizes
    (``Noise(batch_size=array)``: step t uses ``tau1/B_t``, ``tau2/B_t``, docs/math.md §8).
    Cost O(steps K (M+1)^2) for M <= 3, O(steps K (M+1)^3) above; memory O(K (M+1)^2 + steps).
    Deterministic: identical bits for any number of threads, and equal to [`loss_curves`][memsgd.loss_curves].

    ``progress``: ``True`` shows a progress bar, ``False`` never, ``None`` (default) when the
    run is long (about 5 s or more) and stderr is a terminal. Long runs can be interrupted
    with Ctrl-C (KeyboardInterrupt) whether or not a bar is shown.
    ``threads``: at most this many threads (a positive integer; default None: all cores); the
    core uses one where more do not pay (docs/engine.md, "Threads"), and never more than 4 per
    processor (larger values are capped: ``memsgd._core.thread_limit()``). The losses do not
    depend on it.

    Examples:
        Noiseless SGD on one mode: ``L_t = L_0 (1 - lr lambda)^(2t)``:

        >>> import memsgd
        >>> spec = memsgd.Spectrum([1.0], [2.0])                      # lambda = 1, L_0 = 1
        >>> memsgd.loss_curve(memsgd.gd(0.5), spec, memsgd.Noise.none(), 3).loss.tolist()
        [1.0, 0.25, 0.0625, 0.015625]

        Heavy ball on a power law with Gaussian mini-batch noise:

        >>> curve = memsgd.loss_curve(memsgd.heavy_ball(0.1, 0.9), memsgd.Spectrum.power_law(2.0, 1.0),
        ...                           memsgd.Noise.gaussian(10), 1000)
        >>> curve.loss.shape, curve.diverged_at is None, bool(curve.loss[-1] < curve.loss[0])
        ((1001,), True, True)
    """
    steps = check_problem(algorithm, spectrum, noise, steps)
    threads = thread_count(threads)
    progress_flag(progress)
    # readout and preconditioner transformed away; weight decay kept (the core's affine state)
    algorithm, spectrum, decay_scale = forward_problem(algorithm, spectrum)
    M, K, decay = algorithm.memory, spectrum.size, has_weight_decay(algorithm)
    require_memory({"loss and gradient-point loss": 16.0 * (steps + 1),
                    "per-step parameters": parameter_bytes(algorithm, steps),
                    "per-step noise": noise_bytes(noise, steps),
                    "state": _core.state_bytes(M, K, 1, threads or _core.max_threads(), weight_decay=decay)},
                   f"the run (steps = {steps})")
    loss, gp, diverged = _evolve(spectrum_arrays(spectrum, decay_scale=decay_scale), core_algorithm(algorithm, steps),
                                 noise_arrays(noise, steps), steps, M, K, progress, "loss_curve", threads)
    hint = _scale_hint(algorithm, spectrum) if diverged >= 0 else None
    if hint is not None:  # a schedule built for another problem's scale: say so, not just diverged_at
        warnings.warn(f"loss_curve: diverged at step {diverged}; {hint}", UserWarning, stacklevel=2)
    return LossCurve(loss, None if diverged < 0 else int(diverged), gp, noise.label_noise)


def propagators(algorithm: MemoryAlgorithm, spectrum: Spectrum, noise: Noise, steps: int,
                progress: Optional[bool] = None, *, threads: Optional[int] = None) -> Propagators:
    """Signal propagators U, U' and noise propagators V, V' for n = 0..steps (docs/math.md §4),
    and the label-noise source W, W' (docs/math.md §9; zeros without label noise).

    Stationary algorithms and a constant batch size only (two-time propagators of schedules
    are not offered here). Weight decay, readout and preconditioner: the propagators of the exact
    plain reduction (``memsgd._affine``), so [`memsgd.loss_from_propagators`][memsgd.loss_from_propagators] gives the
    loss
    curve. ``progress`` and ``threads`` as in [`loss_curve`][memsgd.loss_curve].

    Examples:
        Noiseless SGD on one mode: ``U_n = (1 - lr lambda)^(2n) L_0`` and no noise propagator.

        >>> import memsgd
        >>> spec = memsgd.Spectrum([1.0], [2.0])
        >>> props = memsgd.propagators(memsgd.gd(0.5), spec, memsgd.Noise.none(), 3)
        >>> props.U.tolist(), props.V.tolist()
        ([1.0, 0.25, 0.0625, 0.015625], [0.0, 0.0, 0.0, 0.0])

        With Gaussian noise and B = 2 the renewal equation built from them gives the engine's curve:

        >>> noisy = memsgd.propagators(memsgd.gd(0.5), spec, memsgd.Noise.gaussian(2), 3)
        >>> memsgd.loss_from_propagators(noisy).tolist()
        [1.0, 0.5, 0.25, 0.125]
        >>> memsgd.loss_curve(memsgd.gd(0.5), spec, memsgd.Noise.gaussian(2), 3).loss.tolist()
        [1.0, 0.5, 0.25, 0.125]
    """
    if isinstance(algorithm, Schedule):
        raise ValueError("algorithm must be stationary (a MemoryAlgorithm): propagators of a Schedule "
                         "are two-time objects; use loss_curve")
    steps = check_problem(algorithm, spectrum, noise, steps)
    if noise.per_step:
        raise ValueError("noise must have a constant batch size: propagators are defined for stationary "
                         "dynamics only (use loss_curve for a per-step batch size)")
    threads = thread_count(threads)
    progress_flag(progress)
    algorithm, spectrum = plain_problem(algorithm, spectrum)
    M, K = algorithm.memory, spectrum.size
    require_memory({"propagators": 8.0 * 8 * (steps + 1),
                    "state": _core.state_bytes(M, K, 1, threads or _core.max_threads())},
                   f"the run (steps = {steps})")
    params = parameter_arrays(algorithm, steps)
    lam = spectrum.eigenvalues
    no_coupling, self_noise = np.zeros(1), np.array([noise.self_noise])
    s0, s1, _ = _evolve(spectrum_arrays(spectrum), params, (no_coupling, self_noise), steps, M, K, progress,
                        "signal propagators", threads, overflow_only=True)
    V, V_prime, W, W_prime = (np.zeros(steps + 1) for _ in range(4))
    if steps > 0 and (noise.coupling != 0.0 or noise.label_source != 0.0):
        # V_n = (tau1/B) sum m lambda^2 <E11, T^(n-1) gg^T>: the loss (1/2 sum m lambda X_00) of the
        # recursion started from lambda g g^T, times 2 tau1/B; the label source W_n = that times sigma2/B.
        n0, n1, _ = _evolve(spectrum_arrays(spectrum, scales=lam), params, (no_coupling, self_noise), steps - 1,
                            M, K, progress, "noise propagators", threads, initial_ggt=True, overflow_only=True)
        if noise.coupling != 0.0:   # (0 * an overflowed inf would be NaN)
            V[1:] = 2.0 * noise.coupling * n0
            V_prime[1:] = 2.0 * noise.coupling * n1
        if noise.label_source != 0.0:
            W[1:] = noise.label_source * n0
            W_prime[1:] = noise.label_source * n1
    return Propagators(s0, s1, V, V_prime, bool(np.all(algorithm.e == 0)), W, W_prime)


# -- batched ------------------------------------------------------------------------------------

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

    Examples:
        Two learning rates in one call, the loss kept at steps 0, 2 and 4 (noiseless SGD on one mode:
        ``L_t = (1 - lr)^(2t)``):

        >>> import memsgd
        >>> curves = memsgd.loss_curves([memsgd.gd(0.5), memsgd.gd(0.25)], memsgd.Spectrum([1.0], [2.0]),
        ...                             memsgd.Noise.none(), 4, record=[0, 2, 4])
        >>> curves.loss.tolist()
        [[1.0, 0.0625, 0.00390625], [1.0, 0.31640625, 0.1001129150390625]]
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
        check_algorithm(a, f"algorithms[{i}]")
    C = len(algos)
    specs = per_configuration(spectrum, Spectrum, "spectrum", C)
    noises = per_configuration(noise, Noise, "noise", C)
    steps = step_count(steps)
    for i, (a, n) in enumerate(zip(algos, noises)):
        check_schedule_length(a, steps, f"algorithms[{i}]")
        check_batch_sizes(n, steps, f"noise[{i}]")
    algos, specs, decay_scales = _forward_problems(algos, specs)
    rec = None if record is None else recorded_steps(record, steps)  # None: every step
    threads = thread_count(threads)
    progress_flag(progress)
    R = steps + 1 if rec is None else rec.size
    max_M = max(a.memory for a in algos)
    max_K = max(s.size for s in specs)
    param_bytes = [parameter_bytes(a, steps) + noise_bytes(n, steps) for a, n in zip(algos, noises)]
    parts = chunks(param_bytes)
    any_decay = any(has_weight_decay(a) for a in algos)
    require_memory({"recorded losses": 8.0 * C * (R + 1),
                    "per-step parameters": max(sum(param_bytes[a:b]) for a, b in parts),
                    "state": _core.state_bytes(max_M, max_K, C, threads or _core.max_threads(),
                                               weight_decay=any_decay)},
                   f"the run of {C} configurations (steps = {steps})")

    packed_spectra: dict = {}
    for s, kappa in zip(specs, decay_scales):
        packed_spectra.setdefault((id(s), id(kappa)), spectrum_arrays(s, decay_scale=kappa))
    work = float(steps) * sum(s.size * _core.step_cost(a.memory) for a, s in zip(algos, specs))
    loss = np.empty((C, R))
    diverged = np.empty(C, dtype=np.int64)

    def call(control):
        # one RunControl for every chunk: configs_done keeps counting across them
        for a, b in parts:
            param_cache, noise_cache = {}, {}
            alg = [param_cache.setdefault(id(x), core_algorithm(x, steps)) for x in algos[a:b]]
            noi = [noise_cache.setdefault(id(n), noise_arrays(n, steps)) for n in noises[a:b]]
            spe = [packed_spectra[id(s), id(k)] for s, k in zip(specs[a:b], decay_scales[a:b])]
            loss[a:b], diverged[a:b] = _core.evolve_batch(spe, alg, noi, steps, rec, threads=threads,
                                                          control=control)
        return loss, diverged

    watched(call, work, progress, C, "loss_curves", "config", "configs_done")
    steps_out = np.arange(steps + 1, dtype=np.int64) if rec is None else rec
    return LossCurves(steps_out, loss, diverged, np.array([n.label_noise for n in noises]))


def _forward_problems(algos: list, specs: list):
    """``memsgd._affine.forward_problem`` of every configuration, each distinct (algorithm,
    spectrum) pair reduced once (shared objects stay shared: the core call caches by identity)."""
    done: dict = {}
    out_a, out_s, out_k = [], [], []
    for a, s in zip(algos, specs):
        key = (id(a), id(s))
        if key not in done:
            done[key] = forward_problem(a, s)
        out_a.append(done[key][0])
        out_s.append(done[key][1])
        out_k.append(done[key][2])
    return out_a, out_s, out_k

