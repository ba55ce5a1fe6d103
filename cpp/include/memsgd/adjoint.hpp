// Exact gradient of a weighted sum of mean losses through the second-moment recursion
// (docs/math.md §3 and §8 "Adjoint").
//
// Forward (per eigencomponent k, step t; the engine of evolve.hpp):
//     a_t       = sum_l m_l lam_l h_t^T X_{l,t} h_t  (= 2 l_t)
//     X_{k,t+1} = S_{k,t} X_{k,t} S_{k,t}^T + lam_k (c1_t a_t + s_t - c2_t lam_k h_t^T X_{k,t} h_t) g_t g_t^T
//     L_t       = 1/2 sum_k m_k lam_k (X_{k,t})_00,            J = sum_t w_t L_t,
// with c1_t = tau1/B_t, c2_t = tau2/B_t, s_t = sigma2/B_t (label noise, a source independent of
// the states: dJ/ds_t = sum_k lam_k g^T Yhat_{k,t+1} g). Given the parameters the recursion is linear in the
// states, so Yhat_{k,t} = dJ/dX_{k,t} runs backward with the transposed step:
//     Yhat_{k,t} = S^T Yhat_{k,t+1} S - c2_t lam_k^2 q_k h h^T + w_t (m_k lam_k / 2) E11 + abar_t m_k lam_k h h^T,
//     q_k = g^T Yhat_{k,t+1} g,   abar_t = c1_t sum_k lam_k q_k,
// and the gradient of step t's parameters contracts Yhat_{k,t+1} with the derivatives of that
// step's map (S_k = S0 - lam_k g h^T depends on alpha, b, c, D, e; a_t depends on e).
//
// The forward pass is evolve()'s run of the same configuration (the same engine, the same
// losses bit for bit, the same divergence rule: kDivergenceFactor relative to its own L_0). The
// states X_t are needed backward in time: the forward pass stores a checkpoint every C steps
// (C ~ sqrt(horizon)) and the states of the last segment; every other segment is recomputed from
// its checkpoint by the engine's own step, so memory is O((T/C + C) K (M+1)^2), not O(T K (M+1)^2).
#pragma once

#include <cstddef>
#include <cstdint>

#include "memsgd/evolve.hpp"

namespace memsgd {

struct GradientOptions {
  std::size_t checkpoint_every = 0;  // segment length C; 0: ceil(sqrt(horizon))
  int threads = 0;                   // at most this many threads; 0: max_threads()
  bool general_kernel = false;       // the dense (any-memory) engine and backward step for every M (testing)
  std::size_t alternate_every = 0;   // tests: forced teams handing over as RunOptions::alternate_every says
  RunControl* control = nullptr;     // progress (forward steps, then backward steps) and cancellation
};

// Output arrays, `steps` rows each (rows from the horizon on are zero):
// alpha[t], b[t*M+i], c[t*M+i], D[(t*M+i)*M+j], e[t*M+i], coupling[t] = dJ/dc1_t,
// self_noise[t] = dJ/dc2_t, label[t] = dJ/dlabel_t (the label-noise source sigma2/B_t; written
// whether or not the configuration has label noise); loss[0..steps] = L_t (+inf from the divergence on).
struct GradientOutputs {
  double* loss = nullptr;
  double* alpha = nullptr;
  double* b = nullptr;
  double* c = nullptr;
  double* D = nullptr;
  double* e = nullptr;
  double* coupling = nullptr;
  double* self_noise = nullptr;
  double* label = nullptr;
};

struct GradientResult {
  double value = 0.0;             // J = sum_t w_t L_t (+inf when a weighted step diverged)
  std::int64_t diverged_at = -1;  // evolve()'s first diverged step, -1 if none
  bool gradient_valid = false;    // false when J is infinite (the gradients are then NaN)
  std::size_t checkpoint_every = 0;
  std::size_t stored_states = 0;  // peak number of full K-component states held at once
};

// ceil(sqrt(horizon)): the segment length that minimises the stored states horizon/C + C.
std::size_t default_checkpoint_interval(std::size_t horizon);

// The checkpointing a loss_gradient run uses: segment length C (`checkpoint_every`, or chosen
// when it is 0: ceil(sqrt(horizon)), or a shorter segment whose recomputed states fit in
// `cache_budget` bytes if that at most doubles the stored states), and whether the recomputed
// states bypass the cache (`streamed`: they do not fit in it).
struct CheckpointPlan {
  std::size_t every = 1;
  bool streamed = false;
  std::size_t cache_budget = 0;
};
CheckpointPlan gradient_checkpointing(int memory, std::size_t nodes, std::size_t horizon,
                                      std::size_t checkpoint_every);

// Bytes a gradient run allocates: outputs (for `steps`), stored states and the engine's state.
double gradient_bytes(int memory, std::size_t nodes, std::size_t steps, std::size_t horizon,
                      std::size_t checkpoint_every, int threads);

// Throws std::length_error naming the size when gradient_bytes(...) exceeds physical memory
// (require_memory of evolve.hpp): called before the outputs are allocated. The horizon is the
// last t with weights[t] != 0.
void require_gradient_memory(const Configuration& config, const double* weights, std::size_t steps,
                             const GradientOptions& options);

// weights: steps + 1 entries, finite, >= 0. The backward pass runs from the last t with
// w_t != 0 (the horizon). Throws std::invalid_argument on bad input, Cancelled when cancelled
// through options.control. Deterministic for any thread count.
GradientResult loss_gradient(const Configuration& config, const double* weights, std::size_t steps,
                             const GradientOptions& options, const GradientOutputs& out);

}  // namespace memsgd
