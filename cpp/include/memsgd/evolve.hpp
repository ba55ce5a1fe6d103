// Exact second-moment recursion of SGD with memory on a quadratic (docs/math.md §3).
//
// Along each eigencomponent k the (M+1)x(M+1) second moment X_k of the state evolves by
//     X_k <- S_k X_k S_k^T + [coupling * lam_k * r1 - self_noise * lam_k^2 * h^T X_k h] g g^T,
//     S_k = S0 - lam_k g h^T,  S0 = [[1, b^T], [0, D]],  g = (alpha, c),  h = (1, e),
// and every step produces the two weighted sums
//     r0 = sum_k w_k lam_k (X_k)_00,        r1 = sum_k w_k lam_k h^T X_k h.
// With coupling = tau1/B and self_noise = tau2/B this is the mean-loss engine (L = r0/2,
// a_t = r1); with coupling = 0 it evaluates the signal and noise propagators (docs/math.md §4).
// The core knows nothing of Python.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace memsgd {

// Per-step parameters of a memory-M algorithm. `steps_stored` is 1 for a stationary
// algorithm (the same parameters at every step) or the number of steps for a schedule.
// Layout (row-major, time first): alpha[t], b[t*M + i], c[t*M + i], D[(t*M + i)*M + j], e[t*M + i].
struct AlgorithmParams {
  int memory = 0;
  std::size_t steps_stored = 1;
  const double* alpha = nullptr;
  const double* b = nullptr;
  const double* c = nullptr;
  const double* D = nullptr;
  const double* e = nullptr;
};

// Spectrum nodes: eigenvalue, weight (multiplicity or quadrature weight) and the scale of
// the initial second moment (c_k^2 for the signal, lam_k for the noise propagator).
struct Nodes {
  std::size_t count = 0;
  const double* eigenvalue = nullptr;
  const double* weight = nullptr;
  const double* scale = nullptr;
};

enum class InitialState { E11, GGt };

// Shared with a watching thread: the run publishes how many steps it has done and stops
// after the current step once `cancel` is set (the outputs are then incomplete).
struct RunControl {
  std::atomic<std::uint64_t> steps_done{0};
  std::atomic<bool> cancel{false};
};

struct EvolveOptions {
  double coupling = 0.0;    // tau1 / B
  double self_noise = 0.0;  // tau2 / B
  InitialState initial = InitialState::E11;
  double limit = 2e30;      // r0 above this (or not finite) marks divergence
  RunControl* control = nullptr;  // optional progress / cancellation
};

// Fills r0[0..steps] and r1[0..steps]. Returns the first step t with r0[t] > limit or not
// finite (r0 and r1 are +inf from there on), or -1 when the run stays finite. A cancelled
// run (options.control->cancel) returns early with the outputs only partly filled.
// Bitwise identical for any thread count: reductions use fixed blocks summed in order.
std::int64_t evolve(const Nodes& nodes, const AlgorithmParams& params, std::size_t steps,
                    const EvolveOptions& options, double* r0, double* r1);

// Number of threads the core would use (1 without OpenMP).
int max_threads();

}  // namespace memsgd
