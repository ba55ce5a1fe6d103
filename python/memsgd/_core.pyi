"""
memsgd compiled core: exact second-moment recursion and renewal solvers
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['DIVERGENCE_FACTOR', 'MAX_STEPS', 'RunControl', 'build_info', 'elementwise_step', 'evolve', 'evolve_batch', 'fma_probe', 'generating_sums', 'gradient_bytes', 'gradient_checkpointing', 'loss_gradient', 'max_threads', 'moment_poles', 'physical_memory', 'planned_threads', 'set_always_team', 'set_simd_path', 'simd_path', 'solve_renewal', 'state_bytes', 'stationary_moments', 'step_cost', 'thread_limit', 'thread_policy_state']
class RunControl:
    """
    Progress of a running evolve()/evolve_batch() and a way to stop it from another thread.
    """
    def __init__(self) -> None:
        ...
    def cancel(self) -> None:
        ...
    @property
    def configs_done(self) -> int:
        ...
    @property
    def largest_team(self) -> int:
        """
        The most threads that worked together (the thread policy's choice; 1: alone).
        """
    @property
    def steps_done(self) -> int:
        ...
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
    Version, compiler, build type, OpenMP and SIMD paths of this build.
    """
def elementwise_step(codes: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], scalars: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], registers: typing.SupportsInt | typing.SupportsIndex, pointers: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], sizes: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], is_double: bool, threads: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Internal (memsgd.torch, fused=True; see memsgd.torch._fused): run an elementwise program over raw float/double arrays given by address. The caller guarantees the addresses and sizes.
    """
def evolve(eigenvalues: typing.Any, weights: typing.Any, scales: typing.Any, alpha: typing.Any, b: typing.Any, c: typing.Any, D: typing.Any, e: typing.Any, coupling: typing.Any, self_noise: typing.Any, steps: typing.SupportsInt | typing.SupportsIndex, *, initial_ggt: bool = False, overflow_only: bool = False, threads: typing.SupportsInt | typing.SupportsIndex = 0, adaptive_threads: bool = True, spin_only: bool = False, alternate_every: typing.SupportsInt | typing.SupportsIndex = 0, control: typing.Any = None, label: typing.Any = None, weight_decay: typing.Any = None, decay_scale: typing.Any = None) -> tuple:
    """
    One configuration, every step: returns (loss, gradient_point_loss, diverged_at), each output (steps+1,), diverged_at = -1 when the run never diverged. coupling/self_noise (and label = sigma2/B_t, the label-noise source, or None): (1,) or >= steps per-step entries. weight_decay: None or rho_t >= 0 per row of alpha (the affine state of weight decay); decay_scale: None or kappa_k > 0 per eigenvalue (component k decays by kappa_k rho_t). threads = 0: the default. adaptive_threads=False: a team of `threads` from the first step; alternate_every = n > 0 (tests): such a team that hands over to one thread every n steps and back after n.
    """
def evolve_batch(spectra: collections.abc.Sequence, algorithms: collections.abc.Sequence, noises: collections.abc.Sequence, steps: typing.SupportsInt | typing.SupportsIndex, record: typing.Any = None, *, threads: typing.SupportsInt | typing.SupportsIndex = 0, control: typing.Any = None) -> tuple:
    """
    C configurations: spectra[i] = (eigenvalues, weights, scales[, decay_scale]), algorithms[i] = (alpha, b, c, D, e) or (alpha, b, c, D, e, weight_decay (rows of alpha) or None), noises[i] = (coupling, self_noise) or (coupling, self_noise, label). Returns (loss (C, R), diverged_at (C,)) at the recorded steps (record: increasing int64 steps in [0, steps], or None for every step).
    """
def fma_probe(path: str, iterations: typing.SupportsInt | typing.SupportsIndex) -> float:
    """
    Peak probe of a SIMD path: iterations rounds of independent 8-lane multiply-adds; returns the flops done (time the call).
    """
def generating_sums(eigenvalues: typing.Any, u_weights: typing.Any, v_weights: typing.Any, order: typing.Any, alpha: typing.SupportsFloat | typing.SupportsIndex, b: typing.Any, c: typing.Any, D: typing.Any, e: typing.Any, self_noise: typing.SupportsFloat | typing.SupportsIndex, s: typing.Any, n_slow: typing.Any, slow_delta: typing.Any = None, slow_error: typing.Any = None, control: RunControl = None, threads: typing.SupportsInt | typing.SupportsIndex = 0, shift: typing.SupportsFloat | typing.SupportsIndex = 0.0, second: typing.Any = None, first: typing.Any = None, second_source: typing.Any = None, first_source: typing.Any = None, first_slow_delta: typing.Any = None, first_slow_error: typing.Any = None) -> numpy.typing.NDArray[numpy.complex128]:
    """
    Generating functions U, U', V, V' at complex nodes s = -log z, summed over the first n_slow components of order and over the rest: shape (nodes, 12), columns 8-11 (real) the errors of (U_S, U'_S), (V_S, V'_S), (U_F, U'_F), (V_F, V'_F) from the slow poles' uncertainty (slow_delta, slow_error from moment_poles; 0 without them). threads = 0: the default. The affine model: shift = weight decay rho; second (K, P) initial second moments replacing E11, first (K, M+1) initial first moments (times w*), second_source (K,) and first_source (K,) constant sources along g g^T and g; first_slow_delta/error from moment_poles(first_moments=True).
    """
def gradient_bytes(memory: typing.SupportsInt | typing.SupportsIndex, nodes: typing.SupportsInt | typing.SupportsIndex, steps: typing.SupportsInt | typing.SupportsIndex, horizon: typing.SupportsInt | typing.SupportsIndex, checkpoint_every: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex) -> float:
    """
    Bytes a loss_gradient run allocates: outputs, stored states and the engine's state.
    """
def gradient_checkpointing(memory: typing.SupportsInt | typing.SupportsIndex, nodes: typing.SupportsInt | typing.SupportsIndex, horizon: typing.SupportsInt | typing.SupportsIndex, checkpoint_every: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[int, bool, int]:
    """
    loss_gradient's checkpointing: (segment length, recomputed states bypass the cache, cache budget in bytes).
    """
def loss_gradient(eigenvalues: typing.Any, weights: typing.Any, scales: typing.Any, alpha: typing.Any, b: typing.Any, c: typing.Any, D: typing.Any, e: typing.Any, coupling: typing.Any, self_noise: typing.Any, loss_weights: typing.Any, steps: typing.SupportsInt | typing.SupportsIndex, *, checkpoint_every: typing.SupportsInt | typing.SupportsIndex = 0, general_kernel: bool = False, threads: typing.SupportsInt | typing.SupportsIndex = 0, alternate_every: typing.SupportsInt | typing.SupportsIndex = 0, control: typing.Any = None, label: typing.Any = None) -> tuple:
    """
    Gradient of sum_t loss_weights[t] L_t (forward pass: evolve()'s run; coupling/self_noise and label (or None): (1,) or >= steps per-step entries); returns (value, diverged_at, loss, d_alpha, d_b, d_c, d_D, d_e, d_coupling, d_self_noise, checkpoint_every, stored_states, d_label).
    """
def max_threads() -> int:
    """
    Threads the core uses by default (OpenMP, at most thread_limit()), 1 without OpenMP.
    """
def moment_poles(eigenvalues: typing.Any, alpha: typing.SupportsFloat | typing.SupportsIndex, b: typing.Any, c: typing.Any, D: typing.Any, e: typing.Any, self_noise: typing.SupportsFloat | typing.SupportsIndex, shift: typing.SupportsFloat | typing.SupportsIndex = 0.0, first_moments: bool = False) -> tuple:
    """
    Poles s = log(mu) of the generating functions: eigenvalues mu of every moment map T_k, shape (K, P), the slow one refined to relative accuracy; returns (poles, slow_delta (K,), slow_error (K,)): the real eigenvalue delta = mu - 1 closest to 0 (NaN if none) and how far a double-precision solve may move it. shift: weight decay rho (S_k at lambda_k + rho); first_moments=True: the same for the first-moment maps S_k, shape (K, M+1).
    """
def physical_memory() -> float:
    """
    Physical memory in bytes (0 if unknown).
    """
def planned_threads(work: str, memory: typing.SupportsInt | typing.SupportsIndex, nodes: typing.SupportsInt | typing.SupportsIndex, steps: typing.SupportsInt | typing.SupportsIndex, *, configs: typing.SupportsInt | typing.SupportsIndex = 1, threads: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
    """
    The most threads the thread policy lets a run use before it measures anything (1: it stays on one thread). work='curves': `configs` curves of `memory` on `nodes` components for `steps` steps (loss_curve, loss_curves; loss_gradient's passes plan as one curve); work='contour': loss_at's contour sums over `steps` contour nodes. threads = 0: the default.
    """
def set_always_team(on: bool) -> None:
    """
    Tests: on=True makes every run that may use two or more threads use them from its first step (lockstep runs never give their team up; independent tasks run one per thread), whatever the thread policy's model and measurements say; process-wide. on=False restores the policy.
    """
def set_simd_path(name: str) -> None:
    """
    Use SIMD path `name` (auto, baseline, avx2, avx512) from the next run on.
    """
def simd_path() -> str:
    """
    The SIMD path the kernels use.
    """
def solve_renewal(U: typing.Any, U_prime: typing.Any, V: typing.Any, V_prime: typing.Any, method: str = 'fft', control: RunControl = None, with_error: bool = False) -> tuple:
    """
    Solve the renewal equations; returns (L, l, error) with error the estimated absolute error of L (None unless with_error). control: RunControl (progress over 1-6 passes of n outputs, cancellation).
    """
def state_bytes(memory: typing.SupportsInt | typing.SupportsIndex, nodes: typing.SupportsInt | typing.SupportsIndex, configs: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex, weight_decay: bool = False) -> float:
    """
    Bytes of state the core allocates for a run (outputs not included); weight_decay: the affine state.
    """
def stationary_moments(eigenvalues: typing.Any, alpha: typing.SupportsFloat | typing.SupportsIndex, b: typing.Any, c: typing.Any, D: typing.Any, e: typing.Any, self_noise: typing.SupportsFloat | typing.SupportsIndex, shift: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> tuple:
    """
    (Y (K, P), mu (K, M+1)): Y_k = (I - T_k)^-1 g g^T packed (x_ij, i <= j) and mu_k = (I - S_k)^-1 (-shift g), the fixed-point pieces at z = 1.
    """
def step_cost(memory: typing.SupportsInt | typing.SupportsIndex) -> float:
    """
    Multiply-adds per component and step.
    """
def thread_limit() -> int:
    """
    The most threads a run uses (4 per processor; larger requests are capped), 1 without OpenMP.
    """
def thread_policy_state() -> dict:
    """
    What the thread policy has measured in this process: seen_seconds (lone-thread time seen lately, decaying over ~0.1 s) and on_cpu (its CPU time / wall time), cores_look_idle (runs with a barrier per step may try a team), cores_look_busy (independent tasks stay on one thread), backoff_seconds (until a team may be tried again after one failed).
    """
DIVERGENCE_FACTOR: float = 1e+30
MAX_STEPS: int = 1099511627776
