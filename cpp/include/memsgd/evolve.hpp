// Exact second-moment recursion of SGD with memory on a quadratic (docs/math.md §3).
//
// Along each eigencomponent k the (M+1)x(M+1) second moment X_k of the state evolves by
//     X_k <- S_k X_k S_k^T + [lam_k (coupling_t 2 l_t + label_t) - self_noise_t lam_k^2 h^T X_k h] g g^T,
//     S_k = S0 - lam_k g h^T,  S0 = [[1, b^T], [0, D]],  g = (alpha, c),  h = (1, e),
// and every step produces the two weighted sums
//     L_t = 1/2 sum_k w_k lam_k (X_k)_00          the expected loss,
//     l_t = 1/2 sum_k w_k lam_k h^T X_k h         the expected loss at the gradient point w + e^T u,
// l_t drives the noise (the loss-coupled term is coupling_t lam_k 2 l_t, coupling_t = tau1/B_t,
// self_noise_t = tau2/B_t; label_t = sigma2/B_t is the label-noise source, docs/math.md §9). With
// coupling = 0 and another initial state the same recursion gives the signal and noise propagators
// (docs/math.md §4). The core knows nothing of Python.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace memsgd {

// A run has diverged at the first step t with L_t or l_t not finite, or L_t > kDivergenceFactor * L_0
// (L_0 > 0; with L_0 = 0 only a non-finite value counts). docs/math.md §8.
inline constexpr double kDivergenceFactor = 1e30;

// Runs take fewer steps than this (the binding refuses more; Python reads it as _core.MAX_STEPS).
inline constexpr std::int64_t kMaxSteps = std::int64_t(1) << 40;

// Per-step parameters of a memory-M algorithm. `steps_stored` is 1 for a stationary
// algorithm (the same parameters at every step) or >= the number of steps for a schedule.
// Layout (row-major, time first): alpha[t], b[t*M + i], c[t*M + i], D[(t*M + i)*M + j], e[t*M + i].
// weight_decay[t] (optional, nullptr: none): rho_t >= 0 of coupled L2 weight decay at the
// gradient point (docs/math.md §9), one per row. With some rho_t != 0 the engine carries the
// affine state (first moments and the centered second moment per component, cpp/src/kernels/
// kernel_api.hpp "Weight decay"); with every rho_t = 0 it is the plain run, bit for bit. Only
// evolve() takes it (the adjoint and the propagators use the reduction of python/memsgd/_affine.py).
struct AlgorithmParams {
  int memory = 0;
  std::size_t steps_stored = 1;
  const double* alpha = nullptr;
  const double* b = nullptr;
  const double* c = nullptr;
  const double* D = nullptr;
  const double* e = nullptr;
  const double* weight_decay = nullptr;
};

// Spectrum nodes: eigenvalue, weight (multiplicity or quadrature weight) and the scale of the
// initial second moment (c_k^2 for the loss and the signal propagator, lam_k for the noise one).
// decay_scale (optional, nullptr: 1): kappa_k > 0, the weight decay of component k is kappa_k rho_t
// (a diagonal preconditioner's p_k on its transformed spectrum, docs/math.md §9); used only with
// weight decay.
struct Nodes {
  std::size_t count = 0;
  const double* eigenvalue = nullptr;
  const double* weight = nullptr;
  const double* scale = nullptr;
  const double* decay_scale = nullptr;
};

// Noise weights of every step: coupling[t] = tau1/B_t, self_noise[t] = tau2/B_t and the label-noise
// source label[t] = sigma2/B_t (docs/math.md §9; nullptr: no label noise). `steps_stored` is 1 (the
// same at every step) or >= the number of steps, for all three arrays.
struct NoiseParams {
  std::size_t steps_stored = 1;
  const double* coupling = nullptr;
  const double* self_noise = nullptr;
  const double* label = nullptr;
};

// One configuration of a (batched) run.
struct Configuration {
  Nodes nodes;
  AlgorithmParams algorithm;
  NoiseParams noise;
};

enum class InitialState { E11,
                          GGt };

// Relative: the loss rule above. OverflowOnly: only a non-finite value stops the run
// (propagators, whose size says nothing about divergence).
enum class DivergenceRule { Relative,
                            OverflowOnly };

// Shared with a watching thread: the run publishes its progress and stops soon after `cancel`
// is set (the outputs are then incomplete and `evolve` throws Cancelled).
struct RunControl {
  std::atomic<std::uint64_t> steps_done{0};    // steps of the configuration in progress (single run)
  std::atomic<std::uint64_t> configs_done{0};  // finished configurations
  std::atomic<bool> cancel{false};
  // What the thread policy did (cpp/src/thread_policy.hpp), summed over the runs of a call:
  std::atomic<int> largest_team{0};           // most threads that worked together (1: alone)
  std::atomic<std::uint64_t> team_steps{0};   // lockstep steps run by a team of >= 2 threads
  std::atomic<std::uint32_t> team_tries{0};   // lockstep teams opened
  std::atomic<std::uint32_t> team_drops{0};   // teams given up for one thread (not faster than it)
};

struct Cancelled {
  const char* what() const { return "run cancelled"; }
};

struct RunOptions {
  InitialState initial = InitialState::E11;
  DivergenceRule rule = DivergenceRule::Relative;
  int threads = 0;                    // at most this many threads; 0: max_threads()
  bool adaptive_threads = true;       // false: a team of `threads` from the first step, never given up
  // tests: a team of `threads` from the first step that hands over to one thread every
  // alternate_every steps and back after as many (0: the thread policy decides)
  std::size_t alternate_every = 0;
  RunControl* control = nullptr;      // optional progress / cancellation
};

// Which steps to write: `steps` increasing within [0, total steps], or every step when nullptr.
struct Recording {
  const std::int64_t* steps = nullptr;
  std::size_t count = 0;
};

// Outputs, one row of Recording::count (or steps + 1) entries per configuration:
// loss[i * R + r] = L at the r-th recorded step of configuration i; gradient_point_loss likewise
// (may be nullptr); diverged_at[i] = first diverged step or -1. Values are finite before
// diverged_at and +inf from there on; NaN never appears.
struct Outputs {
  double* loss = nullptr;
  double* gradient_point_loss = nullptr;
  std::int64_t* diverged_at = nullptr;
};

// Runs `count` configurations for `steps` steps. One configuration runs on one thread when there
// are at least as many configurations as threads (no synchronisation at all); otherwise they run
// one after another, each split over threads by components with one barrier per step.
// Bitwise identical for any thread count, any grouping of configurations into calls, and
// whether or not a step is recorded: components are summed in fixed 8-lane groups and fixed
// blocks, blocks in order. Throws std::invalid_argument on inconsistent input, Cancelled when
// cancelled through options.control.
void evolve(const Configuration* configs, std::size_t count, std::size_t steps,
            const Recording& recording, const RunOptions& options, const Outputs& outputs);

// Floating-point work of one step of one component, in multiply-adds: (M+1)(M+2)/2-sized
// formulas for M <= 3, dense (M+1)^3 products for the general kernel.
double step_cost(int memory);

// Bytes the core allocates for a run of `count` configurations of `memory` and spectrum size
// `nodes` on `threads` threads (state and constants, not the outputs); `weight_decay`: the
// affine state.
double state_bytes(int memory, std::size_t nodes, std::size_t count, int threads, bool weight_decay = false);

// Physical memory of this machine in bytes (0 if unknown).
double physical_memory_bytes();

// Throws std::length_error naming the size when a run's outputs (`output_bytes`, allocated by the
// caller) and state_bytes(...) together exceed physical memory: called before allocating anything.
void require_memory(double output_bytes, int memory, std::size_t nodes, std::size_t count, int threads,
                    bool weight_decay = false);

// The most threads a run uses: 4 per processor (more only oversubscribe, and libgomp aborts or
// crashes when asked for thousands of threads).
int thread_limit();
// Number of threads the core uses by default (1 without OpenMP), at most thread_limit().
int max_threads();
// The threads a run asks for: `requested` if > 0, else max_threads(), at most thread_limit();
// always 1 without OpenMP and in a process forked after the core started threads (libgomp's
// pool does not survive fork).
int resolve_threads(int requested);

// What the thread policy (cpp/src/thread_policy.hpp) lets a run use before it measures anything,
// for `threads` requested (0: the default): Curves: `configs` configurations of `memory` on
// `nodes` components for `steps` steps (evolve(); loss_gradient's passes plan as one curve);
// ContourSums: generating_sums() over `steps` contour nodes. 1: the run stays on one thread.
enum class ParallelWork { Curves,
                          ContourSums };
int planned_threads(ParallelWork work, int memory, std::size_t nodes, std::size_t steps, std::size_t configs,
                    int threads);

// What the thread policy has measured in this process (decisions it takes next read it).
struct ThreadPolicyState {
  double seen_seconds = 0.0;  // wall time of lone-thread windows seen lately (decaying, ~100 ms)
  double on_cpu = 0.0;        // their CPU time / wall time (0 when none)
  bool cores_look_idle = false;  // lockstep runs may try a team
  bool cores_look_busy = false;  // independent tasks stay on one thread
  double backoff_seconds = 0.0;  // until lockstep runs may try a team again (0: now)
};
ThreadPolicyState thread_policy_state();

// Tests: true makes every run that may use two or more threads use them from its first step
// (lockstep runs never give their team up; independent tasks run one per thread), whatever the
// cost model and the measurements say, so that tests of bitwise equality exercise teams on a
// busy machine too. Process-wide; false (the default) restores the policy.
void set_always_team(bool on);

}  // namespace memsgd
