// Exact gradient of a weighted sum of mean losses through the second-moment recursion
// (docs/math.md §3 and §8 "Adjoint").
//
// Forward (per eigencomponent k, step t):
//     a_t       = sum_l m_l lam_l h_t^T X_{l,t} h_t
//     X_{k,t+1} = S_{k,t} X_{k,t} S_{k,t}^T + lam_k (c1_t a_t - c2_t lam_k h_t^T X_{k,t} h_t) g_t g_t^T
//     L_t       = 1/2 sum_k m_k lam_k (X_{k,t})_00,            J = sum_t w_t L_t,
// with c1_t = tau1/B_t, c2_t = tau2/B_t. Given the parameters the recursion is linear in the
// states, so dJ/dX runs backward with the transposed step. With Ybar_{k,t} = dJ/dX_{k,t} / m_k:
//     Ybar_{k,t} = S^T Ybar_{k,t+1} S - c2_t lam_k^2 q_k h h^T + (w_t/2) lam_k E11 + abar_t lam_k h h^T,
//     q_k = g^T Ybar_{k,t+1} g,   abar_t = c1_t sum_k m_k lam_k q_k,
// and the gradient of step t's parameters contracts Ybar_{k,t+1} with the derivatives of that
// step's map (S_k = S0 - lam_k g h^T depends on alpha, b, c, D, e; a_t depends on e).
// The states X_t are needed backward in time: checkpoints every C steps (C ~ sqrt(T)) are kept
// from the forward pass, and each segment's states are recomputed from its checkpoint, so the
// memory is O((T/C + C) K (M+1)^2) instead of O(T K (M+1)^2).
#pragma once

#include <cstddef>
#include <cstdint>

#include "memsgd/evolve.hpp"

namespace memsgd {

// Per-step noise weights c1_t = tau1/B_t and c2_t = tau2/B_t for t < steps.
struct NoiseSchedule {
  const double* coupling = nullptr;
  const double* self_noise = nullptr;
};

struct GradientOptions {
  std::size_t checkpoint_every = 0;  // segment length C; 0: ceil(sqrt(horizon))
  double limit = 2e30;               // 2 L_t above this (or not finite) marks divergence
  RunControl* control = nullptr;     // progress: forward steps, then recomputed + backward steps
  bool general_kernel = false;       // use the runtime-size kernel for every memory (testing)
};

// Output arrays, `steps` rows each (rows from the horizon on are zero):
// alpha[t], b[t*M+i], c[t*M+i], D[(t*M+i)*M+j], e[t*M+i], coupling[t] = dJ/dc1_t,
// self_noise[t] = dJ/dc2_t; loss[0..steps] = L_t (+inf from the divergence on).
struct GradientOutputs {
  double* loss = nullptr;
  double* alpha = nullptr;
  double* b = nullptr;
  double* c = nullptr;
  double* D = nullptr;
  double* e = nullptr;
  double* coupling = nullptr;
  double* self_noise = nullptr;
};

struct GradientResult {
  double value = 0.0;             // J = sum_t w_t L_t (+inf when a weighted step diverged)
  std::int64_t diverged_at = -1;  // first t with 2 L_t > limit or not finite, -1 if none
  bool gradient_valid = false;    // false when J is infinite (gradients are then NaN)
  std::size_t checkpoint_every = 0;
  std::size_t stored_states = 0;  // peak number of full K-component states held at once
};

// Memory needed besides the outputs, in doubles (checkpoints, one segment, working states).
double gradient_workspace(std::size_t nodes, int memory, std::size_t horizon, std::size_t checkpoint_every);

// The segment length used for a horizon when `checkpoint_every` is 0.
std::size_t default_checkpoint_interval(std::size_t horizon);

// weights: steps + 1 entries, finite, >= 0. The backward pass runs from the last t with
// w_t != 0 (the horizon). A cancelled run (control->cancel) returns early; outputs incomplete.
GradientResult loss_gradient(const Nodes& nodes, const AlgorithmParams& params, const NoiseSchedule& noise,
                             const double* weights, std::size_t steps, const GradientOptions& options,
                             const GradientOutputs& out);

}  // namespace memsgd
