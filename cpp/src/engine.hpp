// Internal: the state of one configuration of the recursion of docs/math.md §3 and its
// per-component step, the one home of that step. evolve.cpp drives it for loss curves; the
// adjoint (adjoint.cpp) drives the same engine for its forward pass and for recomputing stored
// states, so its losses and states are those of evolve(), bit for bit.
//
// M <= 3: the SIMD kernels of the active path (kernels/kernels.inc); M >= 4: dense matrices per
// component (GeneralEngine). Components are summed in fixed 8-lane groups and fixed blocks of
// kBlockComponents, block partial sums in block order, so nothing depends on the thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/kernel_api.hpp"
#include "memsgd/evolve.hpp"
#include "simd_dispatch.hpp"

namespace memsgd {
namespace detail {

inline constexpr std::size_t kBlockComponents = kernels::kBlockGroups * kernels::kLanes;

inline std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

// Fixed pairwise order of 8 lanes: the same as the kernels' lane_sum.
inline double lane_sum(const double* a) {
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

inline double ordered_sum(const double* v, std::size_t n) {
  double s = 0.0;
  for (std::size_t i = 0; i < n; ++i) s += v[i];
  return s;
}

// Zeroed, 64-byte aligned doubles.
struct AlignedDoubles {
  explicit AlignedDoubles(std::size_t n)
      : size(n), data(static_cast<double*>(::operator new(std::max<std::size_t>(n, 1) * sizeof(double),
                                                          std::align_val_t(64)))) {
    std::fill(data, data + n, 0.0);
  }
  ~AlignedDoubles() { ::operator delete(data, std::align_val_t(64)); }
  AlignedDoubles(const AlignedDoubles&) = delete;
  AlignedDoubles& operator=(const AlignedDoubles&) = delete;
  std::size_t size;
  double* data;
};

// Row of the stored parameters used at step t (the last row repeats).
inline std::size_t algo_row(const AlgorithmParams& p, std::size_t t) { return std::min(t, p.steps_stored - 1); }
inline std::size_t noise_row(const NoiseParams& n, std::size_t t) { return std::min(t, n.steps_stored - 1); }

// The scalar noise drive of row nr given l_t: coupling 2 l_t + label (docs/math.md §9); without
// label noise exactly coupling 2 l_t (no addition, so the bits of a plain run never change).
inline double noise_drive(const NoiseParams& n, std::size_t nr, double l_t) {
  const double d = n.coupling[nr] * (2.0 * l_t);
  return n.label != nullptr ? d + n.label[nr] : d;
}

// True when some step decays the weights (weight_decay given and not all zero): the engines then
// carry the affine state of docs/math.md §9 (kernel_api.hpp, "Weight decay"); otherwise the plain
// state, so a run with rho = 0 everywhere gives the plain run's bits at the plain run's cost.
inline bool has_weight_decay(const AlgorithmParams& p) {
  if (p.weight_decay == nullptr) return false;
  for (std::size_t t = 0; t < p.steps_stored; ++t)
    if (p.weight_decay[t] != 0.0) return true;
  return false;
}

// rho of step t (0 without weight decay)
inline double weight_decay_at(const AlgorithmParams& p, std::size_t t) {
  return p.weight_decay != nullptr ? p.weight_decay[algo_row(p, t)] : 0.0;
}


inline bool shift_is_zero(const AlgorithmParams& p) {
  const std::size_t n = p.steps_stored * static_cast<std::size_t>(p.memory);
  for (std::size_t i = 0; i < n; ++i)
    if (p.e[i] != 0.0) return false;
  return true;
}

// S0 (row-major with leading dimension ld), g and h of step t (docs/math.md §2.1):
// S0 = [[1, b^T], [0, D]], g = (alpha, c), h = (1, e); S_lambda = S0 - lambda g h^T.
inline void step_parameters(const AlgorithmParams& a, std::size_t t, double* S0, std::size_t ld, double* g,
                            double* h) {
  const std::size_t M = static_cast<std::size_t>(a.memory), r = algo_row(a, t);
  for (std::size_t i = 0; i <= M; ++i)
    for (std::size_t j = 0; j <= M; ++j) S0[i * ld + j] = 0.0;
  S0[0] = 1.0;
  g[0] = a.alpha[r];
  h[0] = 1.0;
  for (std::size_t i = 0; i < M; ++i) {
    S0[i + 1] = a.b[r * M + i];
    g[i + 1] = a.c[r * M + i];
    h[i + 1] = a.e[r * M + i];
    for (std::size_t j = 0; j < M; ++j) S0[(i + 1) * ld + j + 1] = a.D[(r * M + i) * M + j];
  }
}

// The affine state starts from the deterministic w_0 = 0 (X_0 = c2 E11): no propagators.
inline void require_affine_initial_state(InitialState init) {
  if (init != InitialState::E11)
    throw std::invalid_argument("weight decay needs the initial state c2 E11 (propagators take the reduction)");
}

// X_0 / scale_k: E11, or g g^T with the step-0 g.
inline double initial_entry(const AlgorithmParams& p, InitialState init, int i, int j) {
  if (init == InitialState::E11) return (i == 0 && j == 0) ? 1.0 : 0.0;
  auto g = [&](int k) { return k == 0 ? p.alpha[0] : p.c[k - 1]; };
  return g(i) * g(j);
}

// h^T X_0 h / scale_k with the step-0 h.
inline double initial_gp(const AlgorithmParams& p, InitialState init) {
  if (init == InitialState::E11) return 1.0;
  double hg = p.alpha[0];
  for (int i = 0; i < p.memory; ++i) hg += p.e[i] * p.c[i];
  return hg * hg;
}

// State of one configuration and how to advance it; partial sums per block of kBlockComponents.
class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::size_t blocks() const = 0;
  // Blocks' partial sums of L_0 and l_0 (the initial state is set up by the constructor).
  virtual void initial_sums(double* part_loss, double* part_gp) const = 0;
  // Step t (gradient-point loss l_t) for blocks [b0, b1). False when cancelled mid-step.
  virtual bool step(int tid, std::size_t t, double l_t, std::size_t b0, std::size_t b1, double* part_loss,
                    double* part_gp, const std::atomic<bool>* cancel) = 0;
  // True when l_t = L_t (e = 0 at every step): the engine does not write part_gp.
  virtual bool gp_is_loss() const = 0;

  // Stored states (the adjoint's checkpoints): stored_doubles() doubles, blocks in order.
  virtual std::size_t stored_doubles() const = 0;
  // Copies blocks [b0, b1) of the current state into the stored state `dst`.
  virtual void store(double* dst, std::size_t b0, std::size_t b1) const = 0;
  // Recomputes stored states on blocks [b0, b1): from stored state `src` (of step t0), takes steps
  // t0 + i (gradient-point loss l[i]) for i < count and stores the state after step t0 + i at
  // first + i * stored_doubles(): the arithmetic of step(), so the bits step() produced. Overwrites
  // the current state. `streamed`: the stored states bypass the cache (see kernels::RecomputeFn).
  // False when cancelled.
  virtual bool recompute(int tid, std::size_t t0, std::size_t count, const double* l, const double* src,
                         double* first, std::size_t b0, std::size_t b1, const std::atomic<bool>* cancel,
                         bool streamed) = 0;
};

// M <= 3: the SIMD kernels of the active path on the group layout of kernel_api.hpp, nodes and
// state interleaved per group; with weight decay the affine kernels on the affine layout.
class FixedEngine final : public Engine {
 public:
  FixedEngine(const Configuration& cfg, InitialState init, const kernels::KernelTable* table)
      : cfg_(cfg),
        N_(cfg.algorithm.memory + 1),
        P_(kernels::packed_size(N_)),
        affine_(has_weight_decay(cfg.algorithm)),
        scaled_(affine_ && cfg.nodes.decay_scale != nullptr),
        keep_(affine_ && keep_affine_q(cfg.nodes.count, N_, scaled_)),
        G_(static_cast<std::size_t>(affine_ ? kernels::affine_group_doubles(N_, scaled_, keep_)
                                            : kernels::group_doubles(N_))),
        state_offset_(static_cast<std::size_t>(affine_ ? kernels::affine_node_vectors(scaled_) : 2) * kernels::kLanes),
        groups_(ceil_div(cfg.nodes.count, kernels::kLanes)),
        blocks_(ceil_div(groups_, kernels::kBlockGroups)),
        e_zero_(cfg.algorithm.memory == 0 || shift_is_zero(cfg.algorithm)),
        data_(groups_ * G_),
        table_(table),
        fn_(affine_ ? table->affine_step[N_ - 1][e_zero_ ? 1 : 0][scaled_ ? 1 : 0][keep_ ? 1 : 0]
                    : table->step[N_ - 1][e_zero_ ? 1 : 0]),
        recompute_(table->recompute[N_ - 1][e_zero_ ? 1 : 0]) {
    constexpr int kLanes = kernels::kLanes;
    const Nodes& nd = cfg.nodes;
    const AlgorithmParams& a = cfg.algorithm;
    double x0[10];
    for (int i = 0, p = 0; i < N_; ++i)
      for (int j = i; j < N_; ++j, ++p) x0[p] = initial_entry(a, init, i, j);
    if (affine_) require_affine_initial_state(init);
    for (std::size_t k = 0; k < nd.count; ++k) {
      double* base = data_.data + (k / kLanes) * G_ + (k % kLanes);
      const double lam = nd.eigenvalue[k], sc = nd.scale[k];
      base[0] = lam;
      base[kLanes] = 0.5 * nd.weight[k] * lam;
      if (affine_) {  // c2 kappa^2 [and kappa], then C_0 = 0, mu_0 = -e_1 / kappa (X_0 = c2 E11) [, q_0]
        const std::size_t state = state_offset_ / kLanes;
        const double kappa = scaled_ ? nd.decay_scale[k] : 1.0;
        const double c2 = scaled_ ? sc * (kappa * kappa) : sc, mu0 = scaled_ ? -1.0 / kappa : -1.0;
        base[2 * kLanes] = c2;
        if (scaled_) base[3 * kLanes] = kappa;
        base[(state + P_) * kLanes] = mu0;
        if (keep_) base[(state + P_ + N_) * kLanes] = c2 * (mu0 * mu0);  // as the kernels form h^T X h
        continue;
      }
      for (int p = 0; p < P_; ++p) base[(2 + p) * kLanes] = sc * x0[p];
    }
    gp0_ = initial_gp(cfg.algorithm, init);
    x00_ = x0[0];
    stationary_ = cfg.algorithm.steps_stored == 1 && cfg.noise.steps_stored == 1;
    if (stationary_) fill(fixed_, 0, 0.0);
  }

  std::size_t blocks() const override { return blocks_; }
  bool gp_is_loss() const override { return e_zero_; }

  void initial_sums(double* part_loss, double* part_gp) const override {
    // lane k % 8 adds the components of its lane in order, as the kernels do
    constexpr int kLanes = kernels::kLanes;
    const Nodes& nd = cfg_.nodes;
    for (std::size_t b = 0; b < blocks_; ++b) {
      double acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0}, accg[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (std::size_t k = b * kBlockComponents; k < std::min(nd.count, (b + 1) * kBlockComponents); ++k) {
        const double wl = 0.5 * nd.weight[k] * nd.eigenvalue[k];
        acc[k % kLanes] += wl * (nd.scale[k] * x00_);
        accg[k % kLanes] += wl * (nd.scale[k] * gp0_);
      }
      part_loss[b] = lane_sum(acc);
      if (!e_zero_) part_gp[b] = lane_sum(accg);
    }
  }

  bool step(int, std::size_t t, double l_t, std::size_t b0, std::size_t b1, double* part_loss, double* part_gp,
            const std::atomic<bool>*) override {
    const kernels::GroupSpan span{groups_, data_.data, G_, data_.data + state_offset_, data_.data + state_offset_, G_};
    fn_(step_at(t, l_t), span, b0, b1, part_loss, part_gp);
    return true;
  }

  std::size_t stored_doubles() const override { return groups_ * stored_unit(); }
  // stored_doubles() of the engine for `memory` on `nodes` components, before one is built
  static std::size_t stored_doubles(int memory, std::size_t nodes) {
    return ceil_div(nodes, kernels::kLanes) * kernels::kLanes * static_cast<std::size_t>(kernels::packed_size(memory + 1));
  }

  void store(double* dst, std::size_t b0, std::size_t b1) const override {
    require_plain("store");
    const std::size_t g1 = std::min(groups_, b1 * kernels::kBlockGroups), u = stored_unit();
    for (std::size_t g = b0 * kernels::kBlockGroups; g < g1; ++g)
      std::memcpy(dst + g * u, data_.data + g * G_ + 2 * kernels::kLanes, u * sizeof(double));
  }

  bool recompute(int, std::size_t t0, std::size_t count, const double* l, const double* src, double* first,
                 std::size_t b0, std::size_t b1, const std::atomic<bool>* cancel, bool streamed) override {
    require_plain("recompute");
    const std::size_t g1 = std::min(groups_, b1 * kernels::kBlockGroups), u = stored_unit();
    for (std::size_t g = b0 * kernels::kBlockGroups; g < g1; ++g)
      std::memcpy(data_.data + g * G_ + 2 * kernels::kLanes, src + g * u, u * sizeof(double));
    std::vector<kernels::FixedStep> steps(count);
    for (std::size_t i = 0; i < count; ++i) steps[i] = step_at(t0 + i, l[i]);
    double* state = data_.data + 2 * kernels::kLanes;
    const kernels::GroupSpan span{groups_, data_.data, G_, state, state, G_};
    for (std::size_t b = b0; b < b1; ++b) {
      if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) return false;
      recompute_(steps.data(), count, span, b, b + 1, first, stored_doubles(), streamed);
    }
    return true;
  }

  // The adjoint differentiates the plain model only (weight decay through the reduction of
  // python/memsgd/_affine.py): loss_gradient refuses weight decay before it gets here.
  void require_plain(const char* what) const {
    if (affine_) throw std::logic_error(std::string(what) + ": stored states of the affine engine are not supported");
  }

  // For the adjoint's backward kernels: the nodes (eigenvalue, w lam / 2) of every group.
  std::size_t groups() const { return groups_; }
  const double* nodes() const { return data_.data; }
  std::size_t node_stride() const { return G_; }
  bool e_zero() const { return e_zero_; }
  const kernels::KernelTable* table() const { return table_; }

 private:
  std::size_t stored_unit() const { return static_cast<std::size_t>(P_) * kernels::kLanes; }

  // Step t's kernel arguments given l_t: the precomputed stationary step with its noise drive,
  // or the schedule's step t.
  kernels::FixedStep step_at(std::size_t t, double l_t) const {
    kernels::FixedStep s;
    if (stationary_) {
      s = fixed_;
      s.noise_drive = noise_drive(cfg_.noise, 0, l_t);
    } else {
      fill(s, t, l_t);
    }
    return s;
  }

  void fill(kernels::FixedStep& s, std::size_t t, double l_t) const {
    const AlgorithmParams& a = cfg_.algorithm;
    const int N = a.memory + 1;
    const std::size_t nr = noise_row(cfg_.noise, t);
    std::memset(&s, 0, sizeof s);
    double g[4], h[4], gn[4], hn[4], S0n[16];
    step_parameters(a, t, &s.S0[0][0], 4, g, h);
    step_parameters(a, t + 1, S0n, 4, gn, hn);  // only h of step t + 1 is used
    if (affine_) {
      s.rho = weight_decay_at(a, t);
      for (int i = 0; i < N; ++i) {
        s.force[i] = -s.rho * g[i];
        s.h[i] = h[i];
        s.h_next[i] = hn[i];
      }
    }
    for (int i = 0, p = 0; i < N; ++i) {
      for (int j = 0; j < N; ++j) s.gh[i][j] = g[i] * h[j];
      for (int j = i; j < N; ++j, ++p) {
        s.gg[p] = g[i] * g[j];
        s.hh[p] = (i == j ? 1.0 : 2.0) * h[i] * h[j];
        s.hh_next[p] = (i == j ? 1.0 : 2.0) * hn[i] * hn[j];
      }
    }
    s.noise_drive = noise_drive(cfg_.noise, nr, l_t);
    s.self_noise = cfg_.noise.self_noise[nr];
  }

  Configuration cfg_;
  // Whether the affine kernels keep q = h^T X h for the next step (kernel_api.hpp): while the
  // state of this configuration stays within kAffineKeepBytes; the same bits either way.
  static bool keep_affine_q(std::size_t nodes, int N, bool scaled) {
    const double bytes = 8.0 * static_cast<double>(ceil_div(nodes, kernels::kLanes)) *
                         kernels::affine_group_doubles(N, scaled, true);
    return bytes <= kernels::kAffineKeepBytes;
  }

  int N_, P_;
  bool affine_, scaled_, keep_;
  std::size_t G_, state_offset_, groups_, blocks_;
  bool e_zero_;
  AlignedDoubles data_;
  const kernels::KernelTable* table_;
  kernels::StepFn fn_;
  kernels::RecomputeFn recompute_;
  double gp0_ = 1.0, x00_ = 1.0;  // h^T X_0 h and (X_0)_00 per unit scale
  bool stationary_ = false;
  kernels::FixedStep fixed_{};
};

// M >= 4 (or any M on request): dense (M+1)x(M+1) matrices per component (component-major), plain
// loops in a fixed order, the formulas of the fixed kernels (kernel_api.hpp) with the products
// S X and (S X) S^T as row operations (no reductions whose order a compiler could change). Checks
// for cancellation every row, so even one step with M in the thousands stops promptly.
class GeneralEngine final : public Engine {
 public:
  GeneralEngine(const Configuration& cfg, InitialState init, int threads)
      : cfg_(cfg),
        M_(cfg.algorithm.memory),
        N_(M_ + 1),
        NN_(static_cast<std::size_t>(N_) * N_),
        K_(cfg.nodes.count),
        blocks_(ceil_div(K_, kBlockComponents)),
        affine_(has_weight_decay(cfg.algorithm)),
        kappa_(cfg.nodes.decay_scale),
        X_(K_ * NN_),
        mu_(affine_ ? K_ * static_cast<std::size_t>(N_) : 0),
        lam_(cfg.nodes.eigenvalue),
        c2_(cfg.nodes.scale),
        wl_(K_),
        scratch_(static_cast<std::size_t>(std::max(threads, 1))) {
    if (affine_) require_affine_initial_state(init);
    for (std::size_t k = 0; k < K_; ++k) {
      wl_[k] = 0.5 * cfg.nodes.weight[k] * lam_[k];
      if (affine_) {  // C_0 = 0, mu_0 = -e_1 (X_0 = c2 E11)
        mu_[k * static_cast<std::size_t>(N_)] = -1.0;
        continue;
      }
      double* x = X_.data() + k * NN_;
      for (int i = 0; i < N_; ++i)
        for (int j = 0; j < N_; ++j) x[i * N_ + j] = cfg.nodes.scale[k] * initial_entry(cfg.algorithm, init, i, j);
    }
    for (auto& s : scratch_) s.resize(static_cast<std::size_t>(N_));
    stationary_ = cfg.algorithm.steps_stored == 1;
    if (stationary_) fixed_ = coefficients(0);
  }

  std::size_t blocks() const override { return blocks_; }
  bool gp_is_loss() const override { return false; }

  void initial_sums(double* part_loss, double* part_gp) const override {
    const Coefficients c0 = coefficients(0);
    for (std::size_t b = 0; b < blocks_; ++b) {
      double s0 = 0.0, s1 = 0.0;
      for (std::size_t k = b * kBlockComponents; k < std::min(K_, (b + 1) * kBlockComponents); ++k) {
        s0 += wl_[k] * second_moment_00(k);
        s1 += wl_[k] * second_moment_h(k, c0.h.data());
      }
      part_loss[b] = s0;
      part_gp[b] = s1;
    }
  }

  bool step(int tid, std::size_t t, double l_t, std::size_t b0, std::size_t b1, double* part_loss, double* part_gp,
            const std::atomic<bool>* cancel) override {
    Scratch& sc = scratch_[static_cast<std::size_t>(tid)];
    if (!stationary_) sc.coeffs = coefficients(t);
    const Coefficients& q = stationary_ ? fixed_ : sc.coeffs;
    const std::size_t nr = noise_row(cfg_.noise, t);
    const double drive = noise_drive(cfg_.noise, nr, l_t);
    const double self_noise = cfg_.noise.self_noise[nr];
    const bool check = cancel != nullptr && NN_ >= 4096;
    for (std::size_t b = b0; b < b1; ++b) {
      double s0 = 0.0, s1 = 0.0;
      for (std::size_t k = b * kBlockComponents; k < std::min(K_, (b + 1) * kBlockComponents); ++k) {
        if (!component(q, k, drive, self_noise, sc, check ? cancel : nullptr)) return false;
        s0 += wl_[k] * second_moment_00(k);
        s1 += wl_[k] * second_moment_h(k, q.h_next.data());
      }
      part_loss[b] = s0;
      part_gp[b] = s1;
    }
    return true;
  }

  std::size_t stored_doubles() const override { return K_ * NN_; }
  // stored_doubles() of the engine for `memory` on `nodes` components, before one is built
  static std::size_t stored_doubles(int memory, std::size_t nodes) {
    const std::size_t N = static_cast<std::size_t>(memory) + 1;
    return nodes * N * N;
  }

  void store(double* dst, std::size_t b0, std::size_t b1) const override {
    require_plain("store");
    const std::size_t k0 = std::min(K_, b0 * kBlockComponents), k1 = std::min(K_, b1 * kBlockComponents);
    std::memcpy(dst + k0 * NN_, X_.data() + k0 * NN_, (k1 - k0) * NN_ * sizeof(double));
  }

  bool recompute(int tid, std::size_t t0, std::size_t count, const double* l, const double* src, double* first,
                 std::size_t b0, std::size_t b1, const std::atomic<bool>* cancel, bool /*streamed*/) override {
    require_plain("recompute");
    Scratch& sc = scratch_[static_cast<std::size_t>(tid)];
    const bool check = cancel != nullptr && NN_ >= 4096;
    const std::size_t k0 = std::min(K_, b0 * kBlockComponents), k1 = std::min(K_, b1 * kBlockComponents);
    std::memcpy(X_.data() + k0 * NN_, src + k0 * NN_, (k1 - k0) * NN_ * sizeof(double));
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t t = t0 + i;
      if (!stationary_) sc.coeffs = coefficients(t);
      const Coefficients& q = stationary_ ? fixed_ : sc.coeffs;
      const std::size_t nr = noise_row(cfg_.noise, t);
      const double drive = noise_drive(cfg_.noise, nr, l[i]);
      const double self_noise = cfg_.noise.self_noise[nr];
      for (std::size_t k = k0; k < k1; ++k)
        if (!component(q, k, drive, self_noise, sc, check ? cancel : nullptr)) return false;
      std::memcpy(first + i * stored_doubles() + k0 * NN_, X_.data() + k0 * NN_, (k1 - k0) * NN_ * sizeof(double));
      if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) return false;
    }
    return true;
  }

  // For the adjoint's backward step.
  std::size_t size() const { return K_; }
  const double* eigenvalues() const { return lam_; }
  const double* half_weight_eigenvalues() const { return wl_.data(); }

 private:
  struct Coefficients {
    std::vector<double> S0, gh, gg, h, h_next, force;  // N x N row-major; N vectors
    double rho = 0.0;
  };
  struct Scratch {
    void resize(std::size_t N) {
      S.assign(N * N, 0.0);
      St.assign(N * N, 0.0);
      Z.assign(N * N, 0.0);
      m.assign(N, 0.0);
    }
    std::vector<double> S, St, Z, m;
    Coefficients coeffs;
  };

  void require_plain(const char* what) const {
    if (affine_) throw std::logic_error(std::string(what) + ": stored states of the affine engine are not supported");
  }

  // h^T mu_k (the first moment over w*_k at h)
  double mean_h(std::size_t k, const double* h) const {
    const double* m = mu_.data() + k * static_cast<std::size_t>(N_);
    double s = 0.0;
    for (int i = 0; i < N_; ++i) s += h[i] * m[i];
    return s;
  }
  // X_00 and h^T X h of component k: the plain X, or C + c2 mu mu^T with weight decay
  double second_moment_00(std::size_t k) const {
    const double x00 = X_[k * NN_];
    if (!affine_) return x00;
    const double m0 = mu_[k * static_cast<std::size_t>(N_)];
    return x00 + c2_[k] * (m0 * m0);
  }
  double second_moment_h(std::size_t k, const double* h) const {
    const double q = quad(X_.data() + k * NN_, h);
    if (!affine_) return q;
    const double hm = mean_h(k, h);
    return q + c2_[k] * (hm * hm);
  }

  Coefficients coefficients(std::size_t t) const {
    const std::size_t N = static_cast<std::size_t>(N_);
    std::vector<double> g(N), h(N), S0n(N * N), gn(N);
    Coefficients q;
    q.S0.assign(N * N, 0.0);
    q.h_next.resize(N);
    step_parameters(cfg_.algorithm, t, q.S0.data(), N, g.data(), h.data());
    step_parameters(cfg_.algorithm, t + 1, S0n.data(), N, gn.data(), q.h_next.data());
    q.force.assign(N, 0.0);
    if (affine_) {
      q.rho = weight_decay_at(cfg_.algorithm, t);
      for (std::size_t i = 0; i < N; ++i) q.force[i] = -q.rho * g[i];
    }
    q.gh.resize(N * N);
    q.gg.resize(N * N);
    for (std::size_t i = 0; i < N; ++i)
      for (std::size_t j = 0; j < N; ++j) {
        q.gh[i * N + j] = g[i] * h[j];
        q.gg[i * N + j] = g[i] * g[j];
      }
    q.h = h;
    return q;
  }

  double quad(const double* x, const double* h) const {
    double s = 0.0;
    for (int i = 0; i < N_; ++i) {
      double row = 0.0;
      for (int j = 0; j < N_; ++j) row += x[i * N_ + j] * h[j];
      s += h[i] * row;
    }
    return s;
  }

  // X <- S X S^T + noise g g^T for component k, S = S0 - lam g h^T; with weight decay X is the
  // centered C, S = S0 - (lam + kappa rho) g h^T, the noise sees h^T C h + c2 (h^T mu)^2 and
  // mu <- S mu + kappa force (kernel_api.hpp; here mu = m / w*, unscaled by kappa).
  bool component(const Coefficients& q, std::size_t k, double noise_drive, double self_noise, Scratch& sc,
                 const std::atomic<bool>* cancel) {
    const int N = N_;
    const std::size_t n = static_cast<std::size_t>(N);
    const double lam = lam_[k];
    const double kappa = kappa_ != nullptr ? kappa_[k] : 1.0;
    const double lam_s = affine_ ? lam + kappa * q.rho : lam;  // S = S0 - (lam + kappa rho) g h^T (kernel_api.hpp)
    double* x = X_.data() + k * NN_;
    double* S = sc.S.data();
    double* St = sc.St.data();
    double* Z = sc.Z.data();
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) {
        const double v = q.S0[i * n + j] - lam_s * q.gh[i * n + j];
        S[i * n + j] = v;
        St[j * n + i] = v;
      }
    const double hxh = affine_ ? second_moment_h(k, q.h.data()) : quad(x, q.h.data());
    // Z = S X by rows: Z_i = sum_m S_im X_m
    for (int i = 0; i < N; ++i) {
      double* z = Z + i * n;
      std::fill(z, z + n, 0.0);
      for (int m = 0; m < N; ++m) {
        const double sim = S[i * n + m];
        const double* xm = x + m * n;
        for (int j = 0; j < N; ++j) z[j] += sim * xm[j];
      }
      if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) return false;
    }
    // Y = Z S^T on and above the diagonal: Y_i = sum_m Z_im (S^T)_m, then mirrored
    const double noise = lam * (noise_drive - self_noise * lam * hxh);
    for (int i = 0; i < N; ++i) {
      double* y = x + i * n;
      std::fill(y + i, y + n, 0.0);
      const double* z = Z + i * n;
      for (int m = 0; m < N; ++m) {
        const double zim = z[m];
        const double* stm = St + m * n;
        for (int j = i; j < N; ++j) y[j] += zim * stm[j];
      }
      for (int j = i; j < N; ++j) y[j] += noise * q.gg[i * n + j];
      if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) return false;
    }
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < i; ++j) x[i * n + j] = x[j * n + i];
    if (affine_) {  // mu <- S mu + force
      double* mu = mu_.data() + k * n;
      double* m = sc.m.data();
      for (int i = 0; i < N; ++i) {
        double acc = kappa * q.force[i];
        for (int j = 0; j < N; ++j) acc += S[i * n + j] * mu[j];
        m[i] = acc;
      }
      std::copy(m, m + n, mu);
    }
    return true;
  }

  Configuration cfg_;
  int M_, N_;
  std::size_t NN_, K_, blocks_;
  bool affine_;
  const double* kappa_;  // the per-component factor of rho (nullptr: 1)
  std::vector<double> X_, mu_;
  const double* lam_;
  const double* c2_;
  std::vector<double> wl_;
  std::vector<Scratch> scratch_;
  bool stationary_ = false;
  Coefficients fixed_;
};

// Which engine make_engine builds for `memory`: FixedEngine for M <= 3 unless `general` asks for
// the dense GeneralEngine.
inline bool uses_fixed_engine(int memory, bool general = false) {
  return !general && memory <= kernels::kMaxFixedMemory;
}

// The engine for a configuration (its type: uses_fixed_engine).
inline std::unique_ptr<Engine> make_engine(const Configuration& cfg, InitialState init, int threads,
                                           bool general = false) {
  if (uses_fixed_engine(cfg.algorithm.memory, general)) return std::make_unique<FixedEngine>(cfg, init, active_kernels());
  return std::make_unique<GeneralEngine>(cfg, init, threads);
}

// Doubles of one stored state (Engine::stored_doubles()) of the engine make_engine builds for
// `memory` on `nodes` components: what the adjoint's checkpoints cost, known before a run.
inline std::size_t stored_state_doubles(int memory, std::size_t nodes, bool general = false) {
  return uses_fixed_engine(memory, general) ? FixedEngine::stored_doubles(memory, nodes)
                                            : GeneralEngine::stored_doubles(memory, nodes);
}

// Throws std::invalid_argument when configuration i (of count) cannot run `steps` steps.
void validate_configuration(const Configuration& c, std::size_t i, std::size_t count, std::size_t steps);

// One step's multiply-adds of a configuration on one thread (the thread policy's cost model).
double step_muladds(const Configuration& config);

// Runs `engine` (made from `config`) for `steps` steps by evolve()'s rules (divergence, up to
// `threads` threads as the thread policy decides, cancellation through options.control; progress
// in control->steps_done when report_steps): loss / gp (may be nullptr) at the recorded steps,
// +inf from the divergence on. Returns false when cancelled; diverged_at = first diverged step or -1.
bool run_configuration(Engine& engine, const Configuration& config, std::size_t steps, const Recording& recording,
                       const RunOptions& options, int threads, bool report_steps, double* loss, double* gp,
                       std::int64_t& diverged_at);

}  // namespace detail
}  // namespace memsgd
