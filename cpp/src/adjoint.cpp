// The adjoint: evolve()'s engine forward with checkpoints, then segments backward (recompute
// with the engine's step, adjoint steps). Formulas: memsgd/adjoint.hpp; the backward step of
// M <= 3 is the SIMD kernel kernels/adjoint_backward.inc, that of larger M GeneralBackward below.
#include "memsgd/adjoint.hpp"

#include "memsgd/common.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine.hpp"
#include "lockstep.hpp"
#include "thread_policy.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace memsgd {
namespace {

using detail::Engine;
using detail::kBlockComponents;
using kernels::AdjointSums;
using kernels::kLanes;

// Uninitialised, 64-byte aligned storage for states: every entry is written before it is read,
// and zeroing hundreds of MB would cost a pass over memory. Large buffers ask Linux for
// transparent huge pages (far fewer page faults and TLB misses for the stored states).
class Buffer {
 public:
  explicit Buffer(std::size_t n) {
    if (n == 0) return;
    const std::size_t bytes = n * sizeof(double);
    std::size_t align = 64;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr std::size_t kHuge = std::size_t(2) << 20;
    if (bytes >= 2 * kHuge) align = kHuge;
#endif
    void* p = nullptr;
    if (posix_memalign(&p, align, bytes) != 0) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align > 64) madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure only costs speed
#endif
    p_ = static_cast<double*>(p);
  }
  ~Buffer() { std::free(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  double* data() const { return p_; }

 private:
  double* p_ = nullptr;
};

// Bytes of recomputed states a segment may hold and still be read back from cache by the
// backward pass: half the last-level cache (Linux sysfs), at most 16 MB; 4 MB where unknown.
std::size_t segment_cache_budget() {
  static const std::size_t budget = [] {
    std::size_t best_level = 0, bytes = 0;
    for (int i = 0; i < 8; ++i) {
      const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
      std::ifstream level_file(dir + "level"), size_file(dir + "size");
      std::size_t level = 0, size = 0;
      std::string unit;
      if (!(level_file >> level) || !(size_file >> size)) continue;
      size_file >> unit;  // "32768K" reads as 32768 then "K"
      if (!unit.empty() && (unit[0] == 'K' || unit[0] == 'k')) size <<= 10;
      if (!unit.empty() && (unit[0] == 'M' || unit[0] == 'm')) size <<= 20;
      if (level >= best_level) best_level = level, bytes = size;
    }
    constexpr std::size_t kMax = std::size_t(16) << 20, kUnknown = std::size_t(4) << 20;
    return bytes >= (std::size_t(1) << 20) ? std::min(bytes / 2, kMax) : kUnknown;
  }();
  return budget;
}

// The checkpointing of a horizon H for states of `state_bytes` (CheckpointPlan): a segment whose
// recomputed states stay in cache saves their round trip through main memory between the
// recomputation and the backward pass (1.5x faster overall at K ~ 1e4).
CheckpointPlan choose_checkpointing(std::size_t horizon, std::size_t checkpoint_every, std::size_t state_bytes) {
  const std::size_t H = std::max<std::size_t>(horizon, 1);
  CheckpointPlan plan;
  plan.cache_budget = segment_cache_budget();
  auto fits = [&](std::size_t c) { return (c - 1) * state_bytes <= plan.cache_budget; };
  auto stored = [&](std::size_t c) { return detail::ceil_div(H, c) + c; };
  if (checkpoint_every) {
    plan.every = std::max<std::size_t>(1, std::min(checkpoint_every, H));
  } else {
    plan.every = std::min(default_checkpoint_interval(horizon), H);
    if (!fits(plan.every)) {
      const std::size_t shorter = plan.cache_budget / std::max<std::size_t>(state_bytes, 1) + 1;
      if (shorter >= 2 && stored(shorter) <= 2 * stored(plan.every)) plan.every = shorter;
    }
  }
  plan.streamed = !fits(plan.every);
  return plan;
}

// Segments [sC, min((s+1)C, horizon)), s < segments; the backward pass runs them last to first.
// The last step with a nonzero weight (0 if none): the backward pass starts there.
std::size_t horizon_of(const double* w, std::size_t steps) {
  std::size_t h = 0;
  for (std::size_t t = 0; t <= steps; ++t)
    if (w[t] != 0.0) h = t;
  return h;
}

struct Plan {
  Plan(std::size_t horizon, const CheckpointPlan& c)
      : horizon(horizon), every(c.every), segments((horizon + c.every - 1) / c.every), streamed(c.streamed) {}
  std::size_t begin(std::size_t s) const { return s * every; }
  std::size_t end(std::size_t s) const { return std::min(begin(s) + every, horizon); }
  std::size_t horizon, every, segments;
  bool streamed;
};

// Where the stored state of step t lives: checkpoints ckpt[s] = X_{sC} (s < segments), and the
// C - 1 states of the segment in work, seg[i] = X_{sC + 1 + i}.
struct Storage {
  Storage(const Plan& plan, std::size_t state)
      : plan(plan), state(state), ckpt(plan.segments * state), seg((plan.every - 1) * state) {}
  double* at(std::size_t s, std::size_t t) const {
    return t == plan.begin(s) ? ckpt.data() + s * state : seg.data() + (t - plan.begin(s) - 1) * state;
  }
  const Plan& plan;
  std::size_t state;
  Buffer ckpt, seg;
};

// The engine's forward run, storing the checkpoints and the last segment's states (which the
// backward pass then does not recompute) right after each thread has stepped its blocks.
class Storing final : public Engine {
 public:
  Storing(Engine& inner, const Storage& storage) : inner_(inner), storage_(storage) {}
  std::size_t blocks() const override { return inner_.blocks(); }
  void initial_sums(double* part_loss, double* part_gp) const override { inner_.initial_sums(part_loss, part_gp); }
  bool gp_is_loss() const override { return inner_.gp_is_loss(); }
  std::size_t stored_doubles() const override { return inner_.stored_doubles(); }
  void store(double* dst, std::size_t b0, std::size_t b1) const override { inner_.store(dst, b0, b1); }
  bool recompute(int tid, std::size_t t0, std::size_t count, const double* l, const double* src, double* first,
                 std::size_t b0, std::size_t b1, const std::atomic<bool>* cancel, bool streamed) override {
    return inner_.recompute(tid, t0, count, l, src, first, b0, b1, cancel, streamed);
  }

  bool step(int tid, std::size_t t, double l_t, std::size_t b0, std::size_t b1, double* part_loss, double* part_gp,
            const std::atomic<bool>* cancel) override {
    if (!inner_.step(tid, t, l_t, b0, b1, part_loss, part_gp, cancel)) return false;
    const Plan& p = storage_.plan;
    const std::size_t next = t + 1, s = next / p.every;
    if (next < p.horizon && (next == p.begin(s) || s + 1 == p.segments)) inner_.store(storage_.at(s, next), b0, b1);
    return true;
  }

 private:
  Engine& inner_;
  const Storage& storage_;
};

// One backward step over blocks, writing AdjointSums(N) partial sums per block.
class Backward {
 public:
  virtual ~Backward() = default;
  // Doubles of the backward state (Ytilde and whatever the kernel keeps with it).
  virtual std::size_t state_doubles() const = 0;
  // Ytilde = 0 on blocks [b0, b1) (Ytilde_H = 0: w_H enters with the first step).
  virtual void start(double* Y, std::size_t b0, std::size_t b1) const = 0;
  // Ytilde_{t+1} -> Ytilde_t given X_t, with step t's S0 (N x N row-major), g, h, h_next = h_{t+1},
  // the adjoint abar_next of a_{t+1} and the weight w_next of L_{t+1}; part[b * sums + r] for b in
  // [b0, b1).
  virtual void step(const double* S0, const double* g, const double* h, const double* h_next, double abar_next,
                    double w_next, double self_noise, const double* X, double* Y, std::size_t b0,
                    std::size_t b1, double* part) const = 0;
};

// M <= 3: the SIMD kernel of the engine's path; its state keeps a copy of the engine's nodes
// in each group (eigenvalue, w lam / 2, then Ytilde: one stream for the kernel to read).
class FixedBackward final : public Backward {
 public:
  explicit FixedBackward(const detail::FixedEngine& engine, int memory)
      : engine_(engine),
        N_(memory + 1),
        G_(static_cast<std::size_t>(kernels::group_doubles(N_))),
        fn_(engine.table()->backward[memory][engine.e_zero() ? 1 : 0]) {}

  std::size_t state_doubles() const override { return engine_.groups() * G_; }

  void start(double* Y, std::size_t b0, std::size_t b1) const override {
    const std::size_t g1 = std::min(engine_.groups(), b1 * kernels::kBlockGroups);
    for (std::size_t g = b0 * kernels::kBlockGroups; g < g1; ++g) {
      std::memcpy(Y + g * G_, engine_.nodes() + g * engine_.node_stride(), 2 * kLanes * sizeof(double));
      std::fill(Y + g * G_ + 2 * kLanes, Y + (g + 1) * G_, 0.0);
    }
  }

  void step(const double* S0, const double* g, const double* h, const double* h_next, double abar_next,
            double w_next, double self_noise, const double* X, double* Y, std::size_t b0, std::size_t b1,
            double* part) const override {
    kernels::AdjointStep a;
    std::memset(&a, 0, sizeof a);
    for (int i = 0, p = 0; i < N_; ++i) {
      a.g[i] = g[i];
      a.h[i] = h[i];
      for (int j = 0; j < N_; ++j) {
        a.S0[i][j] = S0[i * N_ + j];
        a.gh[i][j] = g[i] * h[j];
      }
      for (int j = i; j < N_; ++j, ++p) {
        a.hh[p] = (i == j ? 1.0 : 2.0) * h[i] * h[j];
        a.h_outer[p] = h[i] * h[j];
        a.hn_outer[p] = 2.0 * abar_next * h_next[i] * h_next[j];
      }
    }
    a.hn_outer[0] += w_next;
    a.self_noise = self_noise;
    const kernels::AdjointSpan span{engine_.groups(), Y, G_, Y + 2 * kLanes, G_, X};
    fn_(a, span, b0, b1, part);
  }

 private:
  const detail::FixedEngine& engine_;
  int N_;
  std::size_t G_;
  kernels::BackwardFn fn_;
};

// Any memory: dense N x N matrices per component (the GeneralEngine's stored layout), the
// formulas of kernels/adjoint_backward.inc with runtime loops.
class GeneralBackward final : public Backward {
 public:
  GeneralBackward(const detail::GeneralEngine& engine, int memory)
      : engine_(engine), N_(memory + 1), NN_(static_cast<std::size_t>(N_) * N_) {}

  std::size_t state_doubles() const override { return engine_.size() * NN_; }

  void start(double* Y, std::size_t b0, std::size_t b1) const override {
    std::fill(Y + std::min(engine_.size(), b0 * kBlockComponents) * NN_,
              Y + std::min(engine_.size(), b1 * kBlockComponents) * NN_, 0.0);
  }

  void step(const double* S0, const double* g, const double* h, const double* h_next, double abar_next,
            double w_next, double self_noise, const double* X, double* Y, std::size_t b0, std::size_t b1,
            double* part) const override {
    const int N = N_, M = N - 1;
    const std::size_t n = static_cast<std::size_t>(N);
    const AdjointSums R(N);
    const double* lam_all = engine_.eigenvalues();
    const double* wl_all = engine_.half_weight_eigenvalues();
    std::vector<double> acc(static_cast<std::size_t>(R.size)), S(NN_), Yh(NN_), P(NN_), Xh(n), Yg(n);
    for (std::size_t b = b0; b < b1; ++b) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const std::size_t k1 = std::min(engine_.size(), (b + 1) * kBlockComponents);
      for (std::size_t k = b * kBlockComponents; k < k1; ++k) {
        const double lam = lam_all[k], wl = wl_all[k], an = 2.0 * abar_next * wl;
        const double* x = X + k * NN_;
        double* y = Y + k * NN_;
        for (std::size_t i = 0; i < n; ++i)
          for (std::size_t j = 0; j < n; ++j) {
            Yh[i * n + j] = y[i * n + j] + an * h_next[i] * h_next[j] + (i + j == 0 ? wl * w_next : 0.0);
            S[i * n + j] = S0[i * n + j] - lam * g[i] * h[j];
          }
        double q = 0.0, hxh = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
          double yg = 0.0, xh = 0.0;
          for (std::size_t j = 0; j < n; ++j) {
            yg += Yh[i * n + j] * g[j];
            xh += x[i * n + j] * h[j];
          }
          Yg[i] = yg;
          Xh[i] = xh;
          q += g[i] * yg;
          hxh += h[i] * xh;
        }
        for (std::size_t i = 0; i < n; ++i)
          for (std::size_t j = 0; j < n; ++j) {
            double a = 0.0;
            for (std::size_t m = 0; m < n; ++m) a += Yh[i * n + m] * S[m * n + j];
            P[i * n + j] = a;
          }
        const double lam2 = lam * lam, lam2q = lam2 * q;
        for (std::size_t i = 0; i < n; ++i)
          for (std::size_t j = i; j < n; ++j) {
            double a = 0.0;
            for (std::size_t m = 0; m < n; ++m) a += S[m * n + i] * P[m * n + j];
            a -= lam2q * self_noise * h[i] * h[j];
            y[i * n + j] = a;
            y[j * n + i] = a;
          }
        for (std::size_t i = 0; i < n; ++i)
          for (std::size_t j = 0; j < n; ++j) {
            double w = 0.0;
            for (std::size_t m = 0; m < n; ++m) w += P[i * n + m] * x[m * n + j];
            if (j > 0) acc[static_cast<std::size_t>(R.A) + i * M + (j - 1)] += w;
            acc[static_cast<std::size_t>(R.B) + i * n + j] += lam * w;
          }
        for (std::size_t i = 0; i < n; ++i) {
          acc[static_cast<std::size_t>(R.U) + i] += lam * Yg[i];
          acc[static_cast<std::size_t>(R.V) + i] += lam2 * hxh * Yg[i];
        }
        for (std::size_t i = 1; i < n; ++i) {
          acc[static_cast<std::size_t>(R.Eq) + i - 1] += lam2q * Xh[i];
          acc[static_cast<std::size_t>(R.Rh) + i - 1] += wl * Xh[i];
        }
      }
      std::copy(acc.begin(), acc.end(), part + b * static_cast<std::size_t>(R.size));
    }
  }

 private:
  const detail::GeneralEngine& engine_;
  int N_;
  std::size_t NN_;
};

// Row t of the gradient from the step's sums over all components (AdjointSums); returns
// abar_t = c1_t g^T U, the adjoint of a_t. `out` may be nullptr (only abar wanted).
// `label`: step t's label-noise source sigma2/B_t (docs/math.md §9), a constant added to c1 a_t.
double gradient_row(int N, const double* sum, const double* g, const double* h, double c1, double c2, double label,
                    double a_t, std::size_t t, const GradientOutputs* out) {
  const AdjointSums R(N);
  const int M = N - 1;
  double Q1 = 0.0, Q2 = 0.0;
  for (int i = 0; i < N; ++i) {
    Q1 += g[i] * sum[R.U + i];
    Q2 += g[i] * sum[R.V + i];
  }
  const double abar = c1 * Q1;
  if (out == nullptr) return abar;
  const double c1a = c1 * a_t + label;  // the noise drive of step t
  const std::size_t m = static_cast<std::size_t>(M);
  for (int i = 0; i < N; ++i) {
    double Bh = 0.0;
    for (int j = 0; j < N; ++j) Bh += sum[R.B + i * N + j] * h[j];
    const double dg = 2.0 * (c1a * sum[R.U + i] - c2 * sum[R.V + i]) - 2.0 * Bh;
    if (i == 0)
      out->alpha[t] = dg;
    else
      out->c[t * m + static_cast<std::size_t>(i - 1)] = dg;
  }
  for (int j = 0; j < M; ++j) out->b[t * m + static_cast<std::size_t>(j)] = 2.0 * sum[R.A + j];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < M; ++j)
      out->D[(t * m + static_cast<std::size_t>(i)) * m + static_cast<std::size_t>(j)] =
          2.0 * sum[R.A + (i + 1) * M + j];
  for (int i = 1; i < N; ++i) {
    double Btg = 0.0;
    for (int j = 0; j < N; ++j) Btg += sum[R.B + j * N + i] * g[j];
    out->e[t * m + static_cast<std::size_t>(i - 1)] =
        -2.0 * Btg - 2.0 * c2 * sum[R.Eq + i - 1] + 4.0 * abar * sum[R.Rh + i - 1];
  }
  out->coupling[t] = a_t * Q1;
  out->self_noise[t] = -Q2;
  out->label[t] = Q1;
  return abar;
}

void fill_rows(const GradientOutputs& out, std::size_t steps, std::size_t M, double v) {
  std::fill(out.alpha, out.alpha + steps, v);
  std::fill(out.b, out.b + steps * M, v);
  std::fill(out.c, out.c + steps * M, v);
  std::fill(out.D, out.D + steps * M * M, v);
  std::fill(out.e, out.e + steps * M, v);
  std::fill(out.coupling, out.coupling + steps, v);
  std::fill(out.self_noise, out.self_noise + steps, v);
  std::fill(out.label, out.label + steps, v);
}

// The backward pass as a lockstep computation (lockstep.hpp): step i is the adjoint step of
// t = horizon - 1 - i, over every segment from the last to the first; the first backward step of
// a segment first recomputes the segment's states on the same blocks. Every thread adds the
// blocks' sums in block order, so all agree bit for bit on abar.
class BackwardRun {
 public:
  struct Local {
    double abar_next = 0.0;  // the adjoint of a_{t+1}
    std::vector<double> summed, S0, g, h, S0n, gn, hn;
  };

  BackwardRun(Engine& engine, const Backward& backward, const Configuration& cfg, const Storage& storage,
              const double* w, const double* gp, std::size_t steps_before, const GradientOptions& options,
              const GradientOutputs& out)
      : engine_(engine), backward_(backward), cfg_(cfg), storage_(storage), plan_(storage.plan), w_(w), gp_(gp),
        steps_before_(steps_before), control_(options.control), alternate_every_(options.alternate_every), out_(out),
        N_(cfg.algorithm.memory + 1),
        blocks_(engine.blocks()), R_(static_cast<std::size_t>(AdjointSums(N_).size)), Y_(backward.state_doubles()),
        parts_(2 * blocks_ * R_) {}

  // False when cancelled.
  bool run(int threads) {
    backward_.start(Y_.data(), 0, blocks_);
    const std::size_t n = static_cast<std::size_t>(N_);
    Local local;
    local.summed.resize(R_);
    for (auto* v : {&local.S0, &local.S0n}) v->resize(n * n);
    for (auto* v : {&local.g, &local.h, &local.gn, &local.hn}) v->resize(n);
    detail::LockstepOptions lo;
    lo.threads = std::max(threads, 1);
    lo.control = control_;
    lo.alternate_every = alternate_every_;
    detail::Lockstep<BackwardRun> lockstep(
        *this, plan_.horizon, {cfg_.nodes.count, kBlockComponents, detail::step_muladds(cfg_)}, lo);
    return lockstep.run(std::move(local));
  }

  // -- the lockstep body --
  // a segment's first backward step also recomputes its other states
  double weight(std::size_t i) const { return 1.0 + static_cast<double>(recomputed(i)); }

  bool compute(int tid, std::size_t i, std::size_t b0, std::size_t b1, Local& local) {
    const std::size_t t = plan_.horizon - 1 - i, s = t / plan_.every, t0 = plan_.begin(s);
    bool ok = true;
    if (recomputed(i) > 0)
      ok = engine_.recompute(tid, t0, recomputed(i), gp_ + t0, storage_.at(s, t0), storage_.at(s, t0 + 1), b0, b1,
                             tid == 0 ? cancel_flag() : nullptr, plan_.streamed);
    const std::size_t n = static_cast<std::size_t>(N_);
    detail::step_parameters(cfg_.algorithm, t, local.S0.data(), n, local.g.data(), local.h.data());
    detail::step_parameters(cfg_.algorithm, t + 1, local.S0n.data(), n, local.gn.data(), local.hn.data());
    const double c2 = cfg_.noise.self_noise[detail::noise_row(cfg_.noise, t)];
    backward_.step(local.S0.data(), local.g.data(), local.h.data(), local.hn.data(), local.abar_next, w_[t + 1], c2,
                   storage_.at(s, t), Y_.data(), b0, b1, part(i));
    return ok;
  }

  bool combine(int tid, std::size_t i, Local& local) {
    const std::size_t t = plan_.horizon - 1 - i, nr = detail::noise_row(cfg_.noise, t);
    const double* p = part(i);
    for (std::size_t r = 0; r < R_; ++r) {
      double a = 0.0;
      for (std::size_t b = 0; b < blocks_; ++b) a += p[b * R_ + r];
      local.summed[r] = a;
    }
    const double label = cfg_.noise.label != nullptr ? cfg_.noise.label[nr] : 0.0;
    local.abar_next = gradient_row(N_, local.summed.data(), local.g.data(), local.h.data(), cfg_.noise.coupling[nr],
                                   cfg_.noise.self_noise[nr], label, 2.0 * gp_[t], t, tid == 0 ? &out_ : nullptr);
    if (tid == 0 && control_ != nullptr) control_->steps_done.store(steps_before_ + i + 1, std::memory_order_relaxed);
    return false;
  }

 private:
  const std::atomic<bool>* cancel_flag() const { return control_ != nullptr ? &control_->cancel : nullptr; }
  double* part(std::size_t i) { return parts_.data() + (i & 1) * blocks_ * R_; }

  // States step i recomputes before its backward step: the segment's C - 1 inner states at its
  // first backward step (the last segment was stored by the forward pass).
  std::size_t recomputed(std::size_t i) const {
    const std::size_t t = plan_.horizon - 1 - i, s = t / plan_.every, t1 = plan_.end(s);
    return (t + 1 == t1 && s + 1 != plan_.segments && t1 > plan_.begin(s) + 1) ? t1 - plan_.begin(s) - 1 : 0;
  }

  Engine& engine_;
  const Backward& backward_;
  const Configuration& cfg_;
  const Storage& storage_;
  const Plan& plan_;
  const double* w_;
  const double* gp_;
  std::size_t steps_before_;
  RunControl* control_;
  std::size_t alternate_every_;
  const GradientOutputs& out_;
  int N_;
  std::size_t blocks_, R_;
  Buffer Y_;
  std::vector<double> parts_;  // [parity][block][sum]
};

}  // namespace

std::size_t default_checkpoint_interval(std::size_t horizon) {
  if (horizon <= 1) return 1;
  return static_cast<std::size_t>(std::ceil(std::sqrt(static_cast<double>(horizon))));
}

CheckpointPlan gradient_checkpointing(int memory, std::size_t nodes, std::size_t horizon,
                                      std::size_t checkpoint_every) {
  require(memory >= 0, "memory must be >= 0");
  return choose_checkpointing(horizon, checkpoint_every, 8 * detail::stored_state_doubles(memory, nodes));
}

double gradient_bytes(int memory, std::size_t nodes, std::size_t steps, std::size_t horizon,
                      std::size_t checkpoint_every, int threads) {
  const double M = memory, T = static_cast<double>(steps);
  const std::size_t C =
      choose_checkpointing(horizon, checkpoint_every, 8 * detail::stored_state_doubles(memory, nodes)).every;
  const double segments = std::ceil(static_cast<double>(horizon) / static_cast<double>(C));
  const double stored = segments + static_cast<double>(C - 1) + 1.0;  // checkpoints, one segment, Ytilde
  const double outputs = 8.0 * (2.0 * (T + 1.0) + T * (4.0 + 3.0 * M + M * M));
  const double sums = 16.0 * static_cast<double>(detail::ceil_div(nodes, kBlockComponents)) *
                      static_cast<double>(AdjointSums(memory + 1).size);
  return outputs + sums + 8.0 * stored * static_cast<double>(detail::stored_state_doubles(memory, nodes)) +
         state_bytes(memory, nodes, 1, resolve_threads(threads));
}

void require_gradient_memory(const Configuration& config, const double* weights, std::size_t steps,
                             const GradientOptions& options) {
  const int memory = config.algorithm.memory;
  const std::size_t K = config.nodes.count;
  const int threads = resolve_threads(options.threads);
  const double all =
      gradient_bytes(memory, K, steps, horizon_of(weights, steps), options.checkpoint_every, threads);
  require_memory(all - state_bytes(memory, K, 1, threads), memory, K, 1, threads);
}

GradientResult loss_gradient(const Configuration& cfg, const double* w, std::size_t steps,
                             const GradientOptions& options, const GradientOutputs& out) {
  detail::validate_configuration(cfg, 0, 1, steps);
  require(!detail::has_weight_decay(cfg.algorithm),
          "the gradient takes weight decay through the memory-(M+1) reduction, not as weight_decay");
  require(w != nullptr, "weights must be given");
  for (std::size_t t = 0; t <= steps; ++t) {
    require(std::isfinite(w[t]), "weights must be finite");
    require(w[t] >= 0.0, "weights must be >= 0");
  }
  const std::size_t M = static_cast<std::size_t>(cfg.algorithm.memory);
  fill_rows(out, steps, M, 0.0);  // rows the backward pass never reaches (from the horizon on)
  const int threads = resolve_threads(options.threads);
  auto engine = detail::make_engine(cfg, InitialState::E11, threads, options.general_kernel);
  const std::size_t horizon = horizon_of(w, steps);
  const Plan plan(horizon, choose_checkpointing(horizon, options.checkpoint_every, 8 * engine->stored_doubles()));

  GradientResult res;
  res.checkpoint_every = plan.every;
  res.stored_states = plan.segments + (plan.every - 1) + 2;
  Storage storage(plan, engine->stored_doubles());
  if (plan.segments > 0) engine->store(storage.at(0, 0), 0, engine->blocks());

  // ---- forward: evolve()'s run, storing states ----
  std::vector<double> gp(steps + 1);
  RunOptions run;
  run.threads = threads;
  run.control = options.control;
  run.alternate_every = options.alternate_every;
  Storing storing(*engine, storage);
  if (!detail::run_configuration(storing, cfg, steps, Recording{}, run, threads, true, out.loss, gp.data(),
                                 res.diverged_at))
    throw Cancelled{};
  double value = 0.0;
  for (std::size_t t = 0; t <= plan.horizon; ++t)
    if (w[t] != 0.0) value += w[t] * out.loss[t];
  res.value = value;
  if (res.diverged_at >= 0 && static_cast<std::size_t>(res.diverged_at) <= plan.horizon) {
    res.value = kInf;
    fill_rows(out, steps, M, kNaN);
    return res;
  }
  res.gradient_valid = true;
  if (plan.segments == 0) return res;

  // ---- backward, segment by segment ----
  std::unique_ptr<Backward> backward;
  if (detail::uses_fixed_engine(cfg.algorithm.memory, options.general_kernel))  // make_engine's choice
    backward = std::make_unique<FixedBackward>(static_cast<detail::FixedEngine&>(*engine), cfg.algorithm.memory);
  else
    backward = std::make_unique<GeneralBackward>(static_cast<detail::GeneralEngine&>(*engine), cfg.algorithm.memory);
  BackwardRun backward_run(*engine, *backward, cfg, storage, w, gp.data(), steps, options, out);
  if (!backward_run.run(threads)) throw Cancelled{};
  return res;
}

}  // namespace memsgd
