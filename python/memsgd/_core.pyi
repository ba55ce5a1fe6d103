"""
memsgd compiled core: the exact second-moment recursion, its adjoint, the stationary
moment maps of the long-horizon inversion, and the renewal solver.

Private to memsgd (the public API is memsgd.loss_curve, loss_curves, loss_at, loss_gradient,
loss_from_propagators). Every entry that runs the recursion or its maps takes the same
arguments in the same order::

    entry(spectrum, algorithm, noise, <inputs>, *, <options>, threads=0, control=None)

spectrum = (eigenvalues (K,), weights (K,), scales (K,)[, decay_scale (K,)]); algorithm =
(alpha (T,), b (T, M), c (T, M), D (T, M, M), e (T, M)[, weight_decay (T,)]), T = 1 for a
stationary algorithm; noise = (coupling (n,), self_noise (n,)[, label (n,) or None]), n = 1 or
>= steps. Arrays are float64 after conversion
from bool, integer or float dtypes (TypeError otherwise) and must be finite (ValueError).
Long runs release the GIL; a RunControl publishes their progress and cancels them (RuntimeError
"cancelled"). docs/math.md §3 (the recursion), §4 (propagators, renewal), §8 (the engine).
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['DIVERGENCE_FACTOR', 'MAX_STEPS', 'RunControl', 'build_info', 'elementwise_step', 'evolve', 'evolve_batch', 'fma_probe', 'generating_sums', 'gradient_bytes', 'gradient_checkpointing', 'loss_gradient', 'max_threads', 'moment_poles', 'physical_memory', 'planned_threads', 'set_always_team', 'set_simd_path', 'simd_path', 'solve_renewal', 'state_bytes', 'stationary_moments', 'step_cost', 'thread_limit', 'thread_policy_state']
class RunControl:
    """
    Progress of a running core call and a way to stop it from another thread.
    
    Pass one as ``control=`` to evolve, evolve_batch, loss_gradient, generating_sums or
    solve_renewal; read its counters from another thread while the call runs (it releases the GIL),
    and call cancel() to stop it: the call then raises RuntimeError("cancelled").
    """
    def __init__(self) -> None:
        ...
    def cancel(self) -> None:
        """
        Ask the running call to stop; it raises RuntimeError('cancelled') soon after.
        """
    @property
    def configs_done(self) -> int:
        """
        Configurations of an evolve_batch call finished so far.
        """
    @property
    def largest_team(self) -> int:
        """
        The most threads that worked together (the thread policy's choice; 1: alone).
        """
    @property
    def steps_done(self) -> int:
        """
        Steps (or nodes, or outputs) of the call finished so far.
        """
    @property
    def team_drops(self) -> int:
        """
        Lockstep teams given up for one thread (measured no faster than it).
        """
    @property
    def team_steps(self) -> int:
        """
        Lockstep steps run by a team of two or more threads.
        """
    @property
    def team_tries(self) -> int:
        """
        Lockstep teams opened (after the lone thread measured that one could pay).
        """
def build_info() -> dict:
    """
    This build: a dict with version, compiler, build_type, openmp, openmp_version, max_threads, native, architecture, simd_compiled, simd_supported, simd_active.
    """
def elementwise_step(codes: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], scalars: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], registers: typing.SupportsInt | typing.SupportsIndex, pointers: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], sizes: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], is_double: bool, *, threads: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Internal (memsgd.torch, fused=True; see memsgd.torch._fused): run an elementwise program over raw float/double arrays given by address. codes: 4 int32 per operation (kind, dst, a, c; kinds 0: r[dst] = r[a] s, 1: r[dst] = r[a] s + r[c], 2: r[dst] = r[a] / s), scalars: one per operation, registers: arrays per tensor plus temporaries, pointers: the arrays' addresses (tensor-major), sizes: elements per tensor, is_double: float64 (else float32), threads: at most this many (values below 1 mean 1). The caller guarantees the addresses and sizes. ValueError: a malformed program.
    """
def evolve(spectrum: typing.Any, algorithm: typing.Any, noise: typing.Any, steps: typing.SupportsInt | typing.SupportsIndex, *, initial_ggt: bool = False, overflow_only: bool = False, adaptive_threads: bool = True, alternate_every: typing.SupportsInt | typing.SupportsIndex = 0, threads: typing.SupportsInt | typing.SupportsIndex = 0, control: typing.Any = None) -> tuple:
    """
    One configuration, every step: the exact mean loss of SGD with memory (docs/math.md §3).
    
    Args:
        spectrum: (eigenvalues (K,), weights (K,), scales (K,)) or (eigenvalues, weights, scales,
            decay_scale (K,) or None), float64, K >= 1: the spectrum nodes, the scale of each node's
            initial second moment (c_k^2 for the loss) and kappa_k > 0, component k's weight decay
            kappa_k rho_t (a preconditioner's; None: 1).
        algorithm: (alpha (T,), b (T, M), c (T, M), D (T, M, M), e (T, M)) or (alpha, b, c, D, e,
            weight_decay (T,) or None), float64: the per-step parameters, T = 1 (stationary) or
            T >= steps; weight_decay rho_t >= 0 runs the affine state of weight decay (docs/math.md
            §9; all zero: the plain run, bit for bit).
        noise: (coupling (n,), self_noise (n,)) or (coupling, self_noise, label (n,) or None),
            float64: tau1/B_t, tau2/B_t and the label-noise source sigma2/B_t; n = 1 or n >= steps.
        steps: number of steps, 0 <= steps < MAX_STEPS.
        initial_ggt: start from g g^T (the noise propagator) instead of E11.
        overflow_only: only a non-finite value counts as divergence (propagators), not the
            relative rule L_t > DIVERGENCE_FACTOR L_0.
        adaptive_threads: False: a team of ``threads`` from the first step, never given up.
        alternate_every: tests: n > 0 runs such a team that hands over to one thread every n steps
            and back after n (0: the thread policy decides).
        threads: at most this many threads, 0: the default (max_threads()).
        control: a RunControl (steps_done, cancel; what the thread policy did) or None.
    
    Returns:
        (loss, gradient_point_loss, diverged_at): loss L_t and the gradient-point loss l_t, float64
        arrays of shape (steps + 1,), +inf from the divergence on; diverged_at the first diverged
        step, -1 when the run never diverged.
    
    Raises:
        TypeError: an argument of the wrong type (not a tuple, an array of complex or strings).
        ValueError: a wrong shape, a non-finite entry, steps, threads or alternate_every out of
            range, a run larger than physical memory.
        RuntimeError: cancelled through control.
    """
def evolve_batch(spectra: collections.abc.Sequence, algorithms: collections.abc.Sequence, noises: collections.abc.Sequence, steps: typing.SupportsInt | typing.SupportsIndex, record: typing.Any = None, *, threads: typing.SupportsInt | typing.SupportsIndex = 0, control: typing.Any = None) -> tuple:
    """
    C configurations at once, each on one thread, losses at the recorded steps only.
    
    Bitwise equal to evolve() of each configuration (the relative divergence rule, E11 start).
    
    Args:
        spectra: C entries (eigenvalues (K_i,), weights (K_i,), scales (K_i,)[, decay_scale]), as
            evolve's spectrum.
        algorithms: C entries (alpha (T_i,), b (T_i, M_i), c, D, e[, weight_decay]), as evolve's
            algorithm.
        noises: C entries (coupling (n_i,), self_noise (n_i,)[, label or None]), as evolve's noise.
        steps: number of steps of every configuration, 0 <= steps < MAX_STEPS.
        record: increasing int64 steps in [0, steps] (R of them), or None for every step.
        threads: at most this many threads, 0: the default (max_threads()).
        control: a RunControl (configs_done, cancel) or None.
    
        An array object shared by several configurations is converted and checked once.
    
    Returns:
        (loss, diverged_at): loss float64 (C, R) (R = steps + 1 without record), +inf from each
        configuration's divergence on; diverged_at int64 (C,), -1 where a run never diverged.
    
    Raises:
        TypeError: an entry that is not a tuple, an array of the wrong dtype.
        ValueError: lengths of spectra, algorithms and noises differ; a wrong shape, a non-finite
            entry, record not increasing within [0, steps], steps or threads out of range, a run
            larger than physical memory.
        RuntimeError: cancelled through control.
    """
def fma_probe(path: str, iterations: typing.SupportsInt | typing.SupportsIndex) -> float:
    """
    Peak probe of SIMD path `path`: `iterations` rounds of independent 8-lane multiply-adds; returns the flops done (time the call). ValueError: a path this CPU cannot run.
    """
def generating_sums(eigenvalues: typing.Any, algorithm: typing.Any, noise: typing.Any, u_weights: typing.Any, v_weights: typing.Any, order: typing.Any, s: typing.Any, n_slow: typing.Any, *, slow_delta: typing.Any = None, slow_error: typing.Any = None, shift: typing.SupportsFloat | typing.SupportsIndex = 0.0, second: typing.Any = None, first: typing.Any = None, second_source: typing.Any = None, first_source: typing.Any = None, first_slow_delta: typing.Any = None, first_slow_error: typing.Any = None, threads: typing.SupportsInt | typing.SupportsIndex = 0, control: typing.Any = None) -> numpy.typing.NDArray[numpy.complex128]:
    """
    Generating functions U, U', V, V' at complex nodes s = -log z (docs/math.md §4, §9).
    
    For each node, the weighted sums over the slow set (the first n_slow[j] components of order) and
    the fast set (the rest) of u = <E11, (I - zT_k)^-1 X_k(0)>, u' = <h h^T, ...> (weights u_weights)
    and v = z <E11, (I - zT_k)^-1 g g^T>, v' (weights v_weights). Sums run in the given order, so the
    result does not depend on the thread count.
    
    Args:
        eigenvalues: float64 (K,), K >= 1.
        algorithm: (alpha (1,), b (1, M), c (1, M), D (1, M, M), e (1, M)): one row.
        noise: (coupling (1,), self_noise (1,)[, label]): one entry; the maps use self_noise only.
        u_weights, v_weights: float64 (K,), finite.
        order: int64 (K,), a permutation of range(K).
        s: complex128 (nodes,), finite.
        n_slow: int64 (nodes,): the size of each node's slow set.
        slow_delta, slow_error: float64 (K,) from moment_poles, or None (together): the slow poles'
            uncertainty, for the error columns.
        shift: weight decay rho.
        second: float64 (K, P) initial second moments replacing E11, or None.
        first: float64 (K, M + 1) initial first moments (times w*), or None.
        second_source, first_source: float64 (K,) constant sources along g g^T and g, or None.
        first_slow_delta, first_slow_error: float64 (K,) from moment_poles(first_moments=True), or
            None (together).
        threads: at most this many threads, 0: the default (max_threads()).
        control: a RunControl (steps_done = nodes finished; cancel) or None.
    
    Returns:
        complex128 (nodes, 12): columns 0-7 (U_S, U'_S, V_S, V'_S, U_F, U'_F, V_F, V'_F); columns
        8-11 (real) bounds on the errors of (U_S, U'_S), (V_S, V'_S), (U_F, U'_F), (V_F, V'_F) from
        the slow poles' uncertainty (0 without slow_delta).
    
    Raises:
        TypeError: an argument of the wrong type.
        ValueError: a wrong shape, order not a permutation, a non-finite node or input, an optional
            pair given half.
        RuntimeError: cancelled through control.
    """
def gradient_bytes(memory: typing.SupportsInt | typing.SupportsIndex, nodes: typing.SupportsInt | typing.SupportsIndex, steps: typing.SupportsInt | typing.SupportsIndex, horizon: typing.SupportsInt | typing.SupportsIndex, checkpoint_every: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> float:
    """
    Bytes a loss_gradient run allocates (outputs for `steps`, stored states up to `horizon`, the engine's state); checkpoint_every 0: chosen as loss_gradient chooses it. A float.
    """
def gradient_checkpointing(memory: typing.SupportsInt | typing.SupportsIndex, nodes: typing.SupportsInt | typing.SupportsIndex, horizon: typing.SupportsInt | typing.SupportsIndex, checkpoint_every: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[int, bool, int]:
    """
    loss_gradient's checkpointing for `memory` on `nodes` components up to `horizon`: returns (every, streamed, cache_budget): the segment length (checkpoint_every, or chosen when 0), whether the recomputed states bypass the cache, and the cache budget in bytes. ValueError: memory < 0.
    """
def loss_gradient(spectrum: typing.Any, algorithm: typing.Any, noise: typing.Any, steps: typing.SupportsInt | typing.SupportsIndex, loss_weights: typing.Any, *, checkpoint_every: typing.SupportsInt | typing.SupportsIndex = 0, general_kernel: bool = False, alternate_every: typing.SupportsInt | typing.SupportsIndex = 0, threads: typing.SupportsInt | typing.SupportsIndex = 0, control: typing.Any = None) -> tuple:
    """
    Gradient of J = sum_t loss_weights[t] L_t with respect to every per-step parameter.
    
    The forward pass is evolve()'s run of the same configuration (the same losses bit for bit); the
    backward pass is the adjoint of the recursion, with checkpoints every checkpoint_every steps
    (docs/math.md §8, "Adjoint").
    
    Args:
        spectrum: (eigenvalues (K,), weights (K,), scales (K,)), as evolve's.
        algorithm: (alpha (T,), b (T, M), c (T, M), D (T, M, M), e (T, M)), as evolve's; weight
            decay only through the memory-(M+1) reduction (memsgd._affine), not as weight_decay.
        noise: (coupling (n,), self_noise (n,)[, label (n,) or None]), as evolve's.
        steps: number of steps, 0 <= steps < MAX_STEPS.
        loss_weights: float64 (steps + 1,), finite, >= 0; the backward pass starts at the last
            nonzero weight (the horizon).
        checkpoint_every: segment length C of the checkpointing, 0: chosen (about sqrt(horizon);
            gradient_checkpointing()).
        general_kernel: use the dense any-memory engine and backward step for every M (tests).
        alternate_every: tests: as evolve's, for both passes.
        threads: at most this many threads, 0: the default (max_threads()).
        control: a RunControl (steps_done: forward then backward steps; cancel) or None.
    
    Returns:
        (value, diverged_at, loss, d_alpha, d_b, d_c, d_D, d_e, d_coupling, d_self_noise,
        checkpoint_every, stored_states, d_label): value J (float, +inf when a weighted step
        diverged, the gradients then NaN); diverged_at as evolve's; loss (steps + 1,); the
        gradients float64 with ``steps`` rows: d_alpha (steps,), d_b, d_c, d_e (steps, M),
        d_D (steps, M, M), d_coupling, d_self_noise, d_label (steps,) (rows from the horizon on are
        0); checkpoint_every the segment length used; stored_states the peak number of K-component
        states held.
    
    Raises:
        TypeError: an argument of the wrong type.
        ValueError: a wrong shape, a non-finite or negative loss weight, steps, threads or
            checkpoint_every out of range, a run larger than physical memory.
        RuntimeError: cancelled through control.
    """
def max_threads() -> int:
    """
    Threads the core uses by default (OpenMP, at most thread_limit()), 1 without OpenMP.
    """
def moment_poles(eigenvalues: typing.Any, algorithm: typing.Any, noise: typing.Any, *, shift: typing.SupportsFloat | typing.SupportsIndex = 0.0, first_moments: bool = False) -> tuple:
    """
    Poles of the generating functions of a stationary algorithm (docs/math.md §4, §9).
    
    For every eigenvalue the values s = log(mu) of the eigenvalues mu of the moment map T_k on the
    P = (M+1)(M+2)/2 coordinates of a symmetric second moment; the real eigenvalue closest to 1 is
    refined to relative accuracy.
    
    Args:
        eigenvalues: float64 (K,), K >= 1.
        algorithm: (alpha (1,), b (1, M), c (1, M), D (1, M, M), e (1, M)): one row.
        noise: (coupling (1,), self_noise (1,)[, label]): one entry; the maps use self_noise only.
        shift: weight decay rho (the maps of S_k at lambda_k + rho, self-noise at lambda_k).
        first_moments: the first-moment maps S_k instead (N = M + 1 poles per eigenvalue).
    
    Returns:
        (poles, slow_delta, slow_error): poles complex128 (K, P) (or (K, M + 1)), imaginary parts in
        (-pi, pi], -inf for a zero eigenvalue; slow_delta float64 (K,) the real eigenvalue delta =
        mu - 1 closest to 0 (NaN if none); slow_error float64 (K,) how far a double-precision solve
        may move it.
    
    Raises:
        TypeError: an argument of the wrong type.
        ValueError: a wrong shape, more than one row or entry, a non-finite entry.
    """
def physical_memory() -> float:
    """
    Physical memory of this machine in bytes (0 if unknown).
    """
def planned_threads(work: str, memory: typing.SupportsInt | typing.SupportsIndex, nodes: typing.SupportsInt | typing.SupportsIndex, steps: typing.SupportsInt | typing.SupportsIndex, *, configs: typing.SupportsInt | typing.SupportsIndex = 1, threads: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
    """
    The most threads the thread policy lets a run use before it measures anything.
    
    Args:
        work: 'curves': ``configs`` curves (evolve, evolve_batch; loss_gradient's passes plan as one
            curve); 'contour': loss_at's contour sums (generating_sums) over ``steps`` nodes.
        memory: M >= 0.
        nodes: K >= 0 components.
        steps: steps (or contour nodes) >= 0.
        configs: configurations >= 1.
        threads: the threads requested, 0: the default (max_threads()).
    
    Returns:
        int: the threads planned (1: the run stays on one thread).
    
    Raises:
        ValueError: an unknown work, a size or threads out of range.
    """
def set_always_team(on: bool) -> None:
    """
    Tests: on=True makes every run that may use two or more threads use them from its first step (lockstep runs never give their team up; independent tasks run one per thread), whatever the thread policy's model and measurements say; process-wide. on=False restores the policy.
    """
def set_simd_path(name: str) -> None:
    """
    Use SIMD path `name` (auto, baseline, avx2, avx512) from the next run on. ValueError: a path unknown, not compiled, or not supported by this CPU.
    """
def simd_path() -> str:
    """
    The SIMD path the kernels use (baseline, avx2 or avx512).
    """
def solve_renewal(U: typing.Any, U_prime: typing.Any, V: typing.Any, V_prime: typing.Any, method: str = 'fft', *, with_error: bool = False, control: typing.Any = None) -> tuple:
    """
    Solve the renewal equations of the loss expansion (docs/math.md §4).
    
        l_t = U'_t + sum_{s<t} l_s V'_{t-s},        L_t = U_t + sum_{s<t} l_s V_{t-s},
    
    for t = 0..n-1 (V[0] and V'[0] are ignored). Passing the same array for U and U_prime (V and
    V_prime) convolves once.
    
    Args:
        U, U_prime, V, V_prime: float64 (n,), finite.
        method: 'fft' (relaxed convolution, O(n log^2 n)) or 'direct' (O(n^2)).
        with_error: also estimate the absolute error of L (4-5 more solves).
        control: a RunControl (steps_done over the 1-6 passes of n outputs; cancel) or None.
    
    Returns:
        (L, l, error): float64 (n,) each, +inf from the first overflow on; error None unless
        with_error.
    
    Raises:
        TypeError: an argument of the wrong type.
        ValueError: shapes differ, a non-finite entry, an unknown method.
        RuntimeError: cancelled through control.
    """
def state_bytes(memory: typing.SupportsInt | typing.SupportsIndex, nodes: typing.SupportsInt | typing.SupportsIndex, configs: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, weight_decay: bool = False) -> float:
    """
    Bytes of state the core allocates for a run of `configs` configurations of `memory` on `nodes` components with `threads` threads (outputs not included; weight_decay: the affine state); a float.
    """
def stationary_moments(eigenvalues: typing.Any, algorithm: typing.Any, noise: typing.Any, *, shift: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> tuple:
    """
    The fixed-point pieces of the moment maps at z = 1 (docs/math.md §9).
    
    Args:
        eigenvalues: float64 (K,), K >= 1.
        algorithm: (alpha (1,), b (1, M), c (1, M), D (1, M, M), e (1, M)): one row.
        noise: (coupling (1,), self_noise (1,)[, label]): one entry; the maps use self_noise only.
        shift: weight decay rho.
    
    Returns:
        (Y, mu): Y float64 (K, P), Y_k = (I - T_k)^-1 g g^T packed (x_ij, i <= j), the stationary
        second moment per unit noise drive; mu float64 (K, M + 1), mu_k = (I - S_k)^-1 (-shift g),
        the stationary first moment per unit w*_k. Inf or NaN where I - T_k or I - S_k is singular.
    
    Raises:
        TypeError: an argument of the wrong type.
        ValueError: a wrong shape, more than one row or entry, a non-finite entry.
    """
def step_cost(memory: typing.SupportsInt | typing.SupportsIndex) -> float:
    """
    Multiply-adds per component and step of the engine for `memory` (int >= 0); a float.
    """
def thread_limit() -> int:
    """
    The most threads a run uses (4 per processor; larger requests are capped), 1 without OpenMP.
    """
def thread_policy_state() -> dict:
    """
    What the thread policy has measured in this process, a dict: seen_seconds (lone-thread time seen lately, decaying over ~0.1 s), on_cpu (its CPU time / wall time), cores_look_idle (runs with a barrier per step may try a team), cores_look_busy (independent tasks stay on one thread), backoff_seconds (until a team may be tried again after one failed).
    """
DIVERGENCE_FACTOR: float = 1e+30
MAX_STEPS: int = 1099511627776
