#include "memsgd/evolve.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#if !defined(_WIN32)
#include <unistd.h>  // sysconf
#endif

#ifdef MEMSGD_HAVE_OPENMP
#include <omp.h>
#endif

#include "kernels/kernel_api.hpp"
#include "simd_dispatch.hpp"
#include "team.hpp"

namespace memsgd {
namespace {

using kernels::FixedStep;
using kernels::kBlockGroups;
using kernels::kLanes;
constexpr std::size_t kBlockComponents = kBlockGroups * kLanes;
constexpr double kInf = std::numeric_limits<double>::infinity();

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

// Fixed pairwise order of 8 lanes: the same as kernels::lane_sum.
double lane_sum(const double* a) {
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

double ordered_sum(const double* v, std::size_t n) {
  double s = 0.0;
  for (std::size_t i = 0; i < n; ++i) s += v[i];
  return s;
}

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
std::size_t algo_row(const AlgorithmParams& p, std::size_t t) { return std::min(t, p.steps_stored - 1); }
std::size_t noise_row(const NoiseParams& n, std::size_t t) { return std::min(t, n.steps_stored - 1); }

bool shift_is_zero(const AlgorithmParams& p) {
  const std::size_t n = p.steps_stored * static_cast<std::size_t>(p.memory);
  for (std::size_t i = 0; i < n; ++i)
    if (p.e[i] != 0.0) return false;
  return true;
}

// X_0 / scale_k: E11, or g g^T with the step-0 g.
double initial_entry(const AlgorithmParams& p, InitialState init, int i, int j) {
  if (init == InitialState::E11) return (i == 0 && j == 0) ? 1.0 : 0.0;
  auto g = [&](int k) { return k == 0 ? p.alpha[0] : p.c[k - 1]; };
  return g(i) * g(j);
}

// h^T X_0 h / scale_k with the step-0 h.
double initial_gp(const AlgorithmParams& p, InitialState init) {
  if (init == InitialState::E11) return 1.0;
  double hg = p.alpha[0];
  for (int i = 0; i < p.memory; ++i) hg += p.e[i] * p.c[i];
  return hg * hg;
}

// -- the two engines ------------------------------------------------------------------------

// State of one configuration and how to advance it; partial sums per block of 1024 components.
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
};

// M <= 3: the SIMD kernels of the active path on the group layout of kernel_api.hpp.
class FixedEngine final : public Engine {
 public:
  FixedEngine(const Configuration& cfg, InitialState init, const kernels::KernelTable* table)
      : cfg_(cfg),
        N_(cfg.algorithm.memory + 1),
        P_(kernels::packed_size(N_)),
        groups_(ceil_div(cfg.nodes.count, kLanes)),
        blocks_(ceil_div(groups_, kBlockGroups)),
        e_zero_(cfg.algorithm.memory == 0 || shift_is_zero(cfg.algorithm)),
        data_(groups_ * static_cast<std::size_t>(kernels::group_doubles(N_))),
        fn_(table->step[N_ - 1][e_zero_ ? 1 : 0]) {
    const Nodes& nd = cfg.nodes;
    const AlgorithmParams& a = cfg.algorithm;
    const std::size_t G = static_cast<std::size_t>(kernels::group_doubles(N_));
    double x0[10];
    for (int i = 0, p = 0; i < N_; ++i)
      for (int j = i; j < N_; ++j, ++p) x0[p] = initial_entry(a, init, i, j);
    for (std::size_t k = 0; k < nd.count; ++k) {
      double* base = data_.data + (k / kLanes) * G + (k % kLanes);
      const double lam = nd.eigenvalue[k], sc = nd.scale[k];
      base[0] = lam;
      base[kLanes] = 0.5 * nd.weight[k] * lam;
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

  bool step(int, std::size_t t, double l_t, std::size_t b0, std::size_t b1, double* part_loss,
            double* part_gp, const std::atomic<bool>*) override {
    if (stationary_) {
      FixedStep s = fixed_;
      s.noise_drive = cfg_.noise.coupling[0] * (2.0 * l_t);
      fn_(s, data_.data, groups_, b0, b1, part_loss, part_gp);
    } else {
      FixedStep s;
      fill(s, t, l_t);
      fn_(s, data_.data, groups_, b0, b1, part_loss, part_gp);
    }
    return true;
  }

 private:
  void fill(FixedStep& s, std::size_t t, double l_t) const {
    const AlgorithmParams& a = cfg_.algorithm;
    const int M = a.memory, N = M + 1;
    const std::size_t r = algo_row(a, t), rn = algo_row(a, t + 1), nr = noise_row(cfg_.noise, t);
    std::memset(&s, 0, sizeof s);
    double g[4] = {a.alpha[r], 0, 0, 0}, h[4] = {1.0, 0, 0, 0}, hn[4] = {1.0, 0, 0, 0};
    s.S0[0][0] = 1.0;
    for (int i = 0; i < M; ++i) {
      s.S0[0][i + 1] = a.b[r * M + i];
      g[i + 1] = a.c[r * M + i];
      h[i + 1] = a.e[r * M + i];
      hn[i + 1] = a.e[rn * M + i];
      for (int j = 0; j < M; ++j) s.S0[i + 1][j + 1] = a.D[(r * M + i) * M + j];
    }
    for (int i = 0, p = 0; i < N; ++i) {
      for (int j = 0; j < N; ++j) s.gh[i][j] = g[i] * h[j];
      for (int j = i; j < N; ++j, ++p) {
        s.gg[p] = g[i] * g[j];
        s.hh[p] = (i == j ? 1.0 : 2.0) * h[i] * h[j];
        s.hh_next[p] = (i == j ? 1.0 : 2.0) * hn[i] * hn[j];
      }
    }
    s.noise_drive = cfg_.noise.coupling[nr] * (2.0 * l_t);
    s.self_noise = cfg_.noise.self_noise[nr];
  }

  Configuration cfg_;
  int N_, P_;
  std::size_t groups_, blocks_;
  bool e_zero_;
  AlignedDoubles data_;
  kernels::StepFn fn_;
  double gp0_ = 1.0, x00_ = 1.0;  // h^T X_0 h and (X_0)_00 per unit scale
  bool stationary_ = false;
  FixedStep fixed_{};
};

// M >= 4: dense (M+1)x(M+1) matrices per component (component-major), plain loops in a fixed
// order, the formulas of the fixed kernels (kernel_api.hpp) with the products S X and (S X) S^T
// as row operations (no reductions whose order a compiler could change). Checks for
// cancellation every row, so even one step with M in the thousands stops promptly.
class GeneralEngine final : public Engine {
 public:
  GeneralEngine(const Configuration& cfg, InitialState init, int threads)
      : cfg_(cfg),
        M_(cfg.algorithm.memory),
        N_(M_ + 1),
        NN_(static_cast<std::size_t>(N_) * N_),
        K_(cfg.nodes.count),
        blocks_(ceil_div(K_, kBlockComponents)),
        X_(K_ * NN_),
        lam_(cfg.nodes.eigenvalue),
        wl_(K_),
        scratch_(static_cast<std::size_t>(threads)) {
    for (std::size_t k = 0; k < K_; ++k) {
      wl_[k] = 0.5 * cfg.nodes.weight[k] * lam_[k];
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
        const double* x = X_.data() + k * NN_;
        s0 += wl_[k] * x[0];
        s1 += wl_[k] * quad(x, c0.h.data());
      }
      part_loss[b] = s0;
      part_gp[b] = s1;
    }
  }

  bool step(int tid, std::size_t t, double l_t, std::size_t b0, std::size_t b1, double* part_loss,
            double* part_gp, const std::atomic<bool>* cancel) override {
    Scratch& sc = scratch_[static_cast<std::size_t>(tid)];
    if (!stationary_) sc.coeffs = coefficients(t);
    const Coefficients& q = stationary_ ? fixed_ : sc.coeffs;
    const std::size_t nr = noise_row(cfg_.noise, t);
    const double noise_drive = cfg_.noise.coupling[nr] * (2.0 * l_t);
    const double self_noise = cfg_.noise.self_noise[nr];
    const bool check = cancel != nullptr && NN_ >= 4096;
    for (std::size_t b = b0; b < b1; ++b) {
      double s0 = 0.0, s1 = 0.0;
      for (std::size_t k = b * kBlockComponents; k < std::min(K_, (b + 1) * kBlockComponents); ++k) {
        double* x = X_.data() + k * NN_;
        if (!component(q, lam_[k], noise_drive, self_noise, x, sc, check ? cancel : nullptr)) return false;
        s0 += wl_[k] * x[0];
        s1 += wl_[k] * quad(x, q.h_next.data());
      }
      part_loss[b] = s0;
      part_gp[b] = s1;
    }
    return true;
  }

 private:
  struct Coefficients {
    std::vector<double> S0, gh, gg, h, h_next;  // N x N row-major; N vectors
  };
  struct Scratch {
    void resize(std::size_t N) {
      S.assign(N * N, 0.0);
      St.assign(N * N, 0.0);
      Z.assign(N * N, 0.0);
    }
    std::vector<double> S, St, Z;
    Coefficients coeffs;
  };

  Coefficients coefficients(std::size_t t) const {
    const AlgorithmParams& a = cfg_.algorithm;
    const std::size_t r = algo_row(a, t), rn = algo_row(a, t + 1);
    const std::size_t M = static_cast<std::size_t>(M_), N = M + 1;
    std::vector<double> g(N), h(N);
    Coefficients q;
    q.S0.assign(N * N, 0.0);
    q.S0[0] = 1.0;
    q.h_next.resize(N);
    g[0] = a.alpha[r];
    h[0] = q.h_next[0] = 1.0;
    for (std::size_t i = 0; i < M; ++i) {
      q.S0[i + 1] = a.b[r * M + i];
      g[i + 1] = a.c[r * M + i];
      h[i + 1] = a.e[r * M + i];
      q.h_next[i + 1] = a.e[rn * M + i];
      for (std::size_t j = 0; j < M; ++j) q.S0[(i + 1) * N + j + 1] = a.D[(r * M + i) * M + j];
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

  // X <- S X S^T + noise g g^T for one component, S = S0 - lam g h^T.
  bool component(const Coefficients& q, double lam, double noise_drive, double self_noise, double* x,
                 Scratch& sc, const std::atomic<bool>* cancel) const {
    const int N = N_;
    const std::size_t n = static_cast<std::size_t>(N);
    double* S = sc.S.data();
    double* St = sc.St.data();
    double* Z = sc.Z.data();
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) {
        const double v = q.S0[i * n + j] - lam * q.gh[i * n + j];
        S[i * n + j] = v;
        St[j * n + i] = v;
      }
    const double hxh = quad(x, q.h.data());
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
    return true;
  }

  Configuration cfg_;
  int M_, N_;
  std::size_t NN_, K_, blocks_;
  std::vector<double> X_;
  const double* lam_;
  std::vector<double> wl_;
  std::vector<Scratch> scratch_;
  bool stationary_ = false;
  Coefficients fixed_;
};

std::unique_ptr<Engine> make_engine(const Configuration& cfg, InitialState init, int threads) {
  if (cfg.algorithm.memory <= kernels::kMaxFixedMemory)
    return std::make_unique<FixedEngine>(cfg, init, detail::active_kernels());
  return std::make_unique<GeneralEngine>(cfg, init, threads);
}

// -- one configuration on a team of threads ---------------------------------------------------

double divergence_limit(DivergenceRule rule, double L0) {
  return (rule == DivergenceRule::Relative && L0 > 0.0 && std::isfinite(L0)) ? kDivergenceFactor * L0 : kInf;
}

bool is_diverged(double L, double l, double limit) { return !(std::isfinite(L) && std::isfinite(l)) || L > limit; }

// Writes the recorded steps of one configuration; from a divergence on, +inf.
class Recorder {
 public:
  Recorder(const Recording& rec, std::size_t steps, double* loss, double* gp)
      : rec_(rec), steps_(steps), loss_(loss), gp_(gp) {}

  void write(std::size_t s, double L, double l) {
    if (rec_.steps == nullptr) {
      loss_[s] = L;
      if (gp_ != nullptr) gp_[s] = l;
      return;
    }
    while (next_ < rec_.count && static_cast<std::size_t>(rec_.steps[next_]) == s) {
      loss_[next_] = L;
      if (gp_ != nullptr) gp_[next_] = l;
      ++next_;
    }
  }

  void diverge_at(std::size_t s) {
    diverged_at_ = static_cast<std::int64_t>(s);
    if (rec_.steps == nullptr) {
      std::fill(loss_ + s, loss_ + steps_ + 1, kInf);
      if (gp_ != nullptr) std::fill(gp_ + s, gp_ + steps_ + 1, kInf);
      return;
    }
    for (; next_ < rec_.count; ++next_) {
      loss_[next_] = kInf;
      if (gp_ != nullptr) gp_[next_] = kInf;
    }
  }

  std::int64_t diverged_at() const { return diverged_at_; }

 private:
  Recording rec_;
  std::size_t steps_;
  double* loss_;
  double* gp_;
  std::size_t next_ = 0;
  std::int64_t diverged_at_ = -1;
};

// Shared by the threads of one run. One barrier per step: the partial sums are double-buffered
// by the parity of the step, every thread adds them up itself (in block order, so all get the
// same bits and take the same divergence decision), and what thread 0 decides during step t
// (stop, continue alone) is published as "from step t" and read by the others after the
// barrier of step t; a thread already in step t+1 can only publish t+1 or later.
//
// Adaptive thread count: a run starts alone and opens the team only after 2 ms (a short run
// never pays for waking threads). Thread 0 then compares, over windows of about 2 ms, the wall
// time per step with what one thread alone would need (all blocks at the fastest member's time
// per block). When the team does not beat that by 15% (steps too small, or a core shared with
// another process), thread 0 continues alone and the others sleep; the team is tried again after
// a process-wide back-off (see g_team_next_try).
struct Team {
  Team(int n, std::size_t blocks, bool spin_only)
      : threads(n), barrier(n, spin_only), part_loss(2 * blocks), part_gp(2 * blocks), timing(static_cast<std::size_t>(n)) {}

  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
  int threads;
  detail::Barrier barrier;
  std::vector<double> part_loss, part_gp;  // [parity * blocks + block]
  std::atomic<std::int64_t> stop_from{kNever};
  std::atomic<std::int64_t> solo_from{kNever};
  // the gate where members sleep while thread 0 runs alone
  std::atomic<std::uint32_t> gate{0};
  std::atomic<std::uint32_t> gate_sleepers{0};
  std::size_t resume_step = 0;
  double resume_gp = 0.0;
  bool finished = false;
  struct alignas(64) Timing {
    std::atomic<std::int64_t> compute_ns{0};
    std::atomic<std::int64_t> samples{0};
  };
  std::vector<Timing> timing;
};

// Process-wide memory of whether teams pay: after a team failed to beat one thread, runs (this
// one and later ones) stay alone until g_team_next_try, the back-off doubling on every failure
// (20 ms .. 1 s) and resetting when a team pays. In a loop of runs on a busy machine, one run per
// back-off period pays for trying a team.
constexpr std::int64_t kFirstBackoffNs = 20000000;   // 20 ms
constexpr std::int64_t kMaxBackoffNs = 1000000000;   // 1 s
std::atomic<std::int64_t> g_team_next_try{0};
std::atomic<std::int64_t> g_team_backoff{kFirstBackoffNs};

void team_failed() {
  const std::int64_t b = std::min<std::int64_t>(2 * g_team_backoff.load(std::memory_order_relaxed), kMaxBackoffNs);
  g_team_backoff.store(b, std::memory_order_relaxed);
  g_team_next_try.store(detail::now_ns() + b, std::memory_order_relaxed);
}

void team_paid() {
  g_team_backoff.store(kFirstBackoffNs / 2, std::memory_order_relaxed);
  g_team_next_try.store(0, std::memory_order_relaxed);
}

void lower_to(std::atomic<std::int64_t>& a, std::int64_t v) {
  std::int64_t cur = a.load(std::memory_order_relaxed);
  while (v < cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

class ConfigRun {
 public:
  ConfigRun(Engine& engine, std::size_t steps, Recorder& recorder, const RunOptions& opt, bool report_steps)
      : engine_(engine), steps_(steps), recorder_(recorder), opt_(opt), report_steps_(report_steps),
        blocks_(engine.blocks()), gp_is_loss_(engine.gp_is_loss()) {}

  // Runs to the end on up to `threads` threads. Returns false when cancelled.
  bool run(int threads) {
    std::vector<double> p0(blocks_), p1(blocks_);
    engine_.initial_sums(p0.data(), p1.data());
    const double L0 = ordered_sum(p0.data(), blocks_);
    const double l0 = gp_is_loss_ ? L0 : ordered_sum(p1.data(), blocks_);
    limit_ = divergence_limit(opt_.rule, L0);
    if (is_diverged(L0, l0, limit_)) {
      recorder_.diverge_at(0);
      return true;
    }
    recorder_.write(0, L0, l0);
    if (steps_ == 0) return true;
    threads = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(std::max(threads, 1)), blocks_));
    std::size_t t = 0;
    double l = l0;
    if (threads <= 1) return alone(nullptr, t, l, 0) != Outcome::Cancelled;
    // Start alone: a run that ends within the warm-up (or before the back-off of a team that did
    // not pay expires) never pays for starting one.
    const Outcome warm =
        opt_.adaptive_threads
            ? alone(nullptr, t, l, std::max(detail::now_ns() + kWarmupNs, g_team_next_try.load(std::memory_order_relaxed)))
            : Outcome::Switch;
    if (warm != Outcome::Switch) return warm != Outcome::Cancelled;
#ifdef MEMSGD_HAVE_OPENMP
    std::unique_ptr<Team> team;
    bool ok = true;
#pragma omp parallel num_threads(threads)
    {
#pragma omp single
      team = std::make_unique<Team>(omp_get_num_threads(), blocks_, opt_.spin_only);
      // (the implicit barrier of `single` publishes the team)
      const int tid = omp_get_thread_num();
      if (team->threads == 1) {
        std::size_t t1 = t;
        double l1 = l;
        ok = alone(nullptr, t1, l1, 0) != Outcome::Cancelled;
      } else if (tid == 0) {
        ok = leader(*team, t, l);
      } else {
        member(*team, tid, t, l);
      }
    }
    return ok;
#else
    return alone(nullptr, t, l, 0) != Outcome::Cancelled;
#endif
  }

 private:
  enum class Outcome { Ended, Cancelled, Switch };

  void my_blocks(int tid, int n, std::size_t& b0, std::size_t& b1) const {
    b0 = blocks_ * static_cast<std::size_t>(tid) / static_cast<std::size_t>(n);
    b1 = blocks_ * static_cast<std::size_t>(tid + 1) / static_cast<std::size_t>(n);
  }

  const std::atomic<bool>* cancel_flag() const { return opt_.control != nullptr ? &opt_.control->cancel : nullptr; }
  bool cancelled() const { return opt_.control != nullptr && opt_.control->cancel.load(std::memory_order_relaxed); }

  // Thread 0's bookkeeping after step t produced (L, l) = (L_{t+1}, l_{t+1}). True when the run is over.
  bool after_step(std::size_t t, double L, double l) {
    if (report_steps_ && opt_.control != nullptr) opt_.control->steps_done.store(t + 1, std::memory_order_relaxed);
    if (is_diverged(L, l, limit_)) {
      recorder_.diverge_at(t + 1);
      return true;
    }
    recorder_.write(t + 1, L, l);
    return false;
  }

  // Thread 0 alone from step t (l = l_t) until the end, or Switch once the clock passes
  // `until_ns` (0: never); t and l then describe the next step.
  Outcome alone(Team*, std::size_t& t, double& l, std::int64_t until_ns) {
    std::vector<double> pl(blocks_), pg(blocks_);
    for (; t < steps_; ++t) {
      if (until_ns != 0 && (t & 7) == 0 && detail::now_ns() >= until_ns) return Outcome::Switch;
      if (!engine_.step(0, t, l, 0, blocks_, pl.data(), pg.data(), cancel_flag()) || cancelled())
        return Outcome::Cancelled;
      const double L = ordered_sum(pl.data(), blocks_);
      l = gp_is_loss_ ? L : ordered_sum(pg.data(), blocks_);
      if (after_step(t, L, l)) return Outcome::Ended;
    }
    return Outcome::Ended;
  }

  bool leader(Team& team, std::size_t t, double l) {
    for (;;) {
      Outcome out = in_team(team, 0, t, l);
      if (out == Outcome::Switch) {
        out = alone(&team, t, l, g_team_next_try.load(std::memory_order_relaxed));
        if (out == Outcome::Switch) {  // wake the team for step t
          team.resume_step = t;
          team.resume_gp = l;
          team.solo_from.store(Team::kNever, std::memory_order_relaxed);
          detail::publish_change(&team.gate, &team.gate_sleepers);
          continue;
        }
        team.finished = true;
        detail::publish_change(&team.gate, &team.gate_sleepers);
      }
      return out != Outcome::Cancelled;
    }
  }

  void member(Team& team, int tid, std::size_t t, double l) {
    for (std::uint32_t parked = 0;; ++parked) {
      if (in_team(team, tid, t, l) != Outcome::Switch) return;
      // asleep while thread 0 runs alone (a short spin: waking late only delays the next try)
      detail::wait_for_change(&team.gate, parked, &team.gate_sleepers, false, detail::kGateSpinNs);
      if (team.finished) return;
      t = team.resume_step;
      l = team.resume_gp;
    }
  }

  // Steps from t on the team. Switch: thread 0 continues alone from step t (l = l_t).
  Outcome in_team(Team& team, int tid, std::size_t& t, double& l) {
    const int n = team.threads;
    std::size_t b0, b1;
    my_blocks(tid, n, b0, b1);
    const bool adaptive = opt_.adaptive_threads;
    std::int64_t window_start = 0;
    std::size_t window_steps = 0;
    if (tid == 0 && adaptive) {
      window_start = detail::now_ns();
      reset_timing(team);
    }
    for (; t < steps_; ++t) {
      const std::size_t parity = t & 1;
      double* pl = team.part_loss.data() + parity * blocks_;
      double* pg = team.part_gp.data() + parity * blocks_;
      const bool sample = adaptive && (t & 1) == 0;
      const std::int64_t c0 = sample ? detail::now_ns() : 0;
      if (!engine_.step(tid, t, l, b0, b1, pl, pg, cancel_flag())) lower_to(team.stop_from, static_cast<std::int64_t>(t));
      if (sample) {
        auto& tm = team.timing[static_cast<std::size_t>(tid)];
        tm.compute_ns.fetch_add(detail::now_ns() - c0, std::memory_order_relaxed);
        tm.samples.fetch_add(1, std::memory_order_relaxed);
      }
      if (tid == 0) {
        if (cancelled()) lower_to(team.stop_from, static_cast<std::int64_t>(t));
        if (adaptive && ++window_steps >= 2) {
          const std::int64_t now = detail::now_ns();
          if (now - window_start >= kWindowNs) {
            if (team_pays(team, now - window_start, window_steps)) {
              team_paid();
            } else {
              team_failed();
              team.solo_from.store(static_cast<std::int64_t>(t), std::memory_order_relaxed);
            }
            window_start = now;
            window_steps = 0;
            reset_timing(team);
          }
        }
      }
      team.barrier.wait();
      const double L = ordered_sum(pl, blocks_);
      l = gp_is_loss_ ? L : ordered_sum(pg, blocks_);
      if (team.stop_from.load(std::memory_order_relaxed) <= static_cast<std::int64_t>(t)) return Outcome::Cancelled;
      const bool over = tid == 0 ? after_step(t, L, l) : is_diverged(L, l, limit_);
      if (over) return Outcome::Ended;
      if (team.solo_from.load(std::memory_order_relaxed) <= static_cast<std::int64_t>(t)) {
        ++t;
        return Outcome::Switch;
      }
    }
    return Outcome::Ended;
  }

  static void reset_timing(Team& team) {
    for (auto& tm : team.timing) {
      tm.compute_ns.store(0, std::memory_order_relaxed);
      tm.samples.store(0, std::memory_order_relaxed);
    }
  }

  bool team_pays(const Team& team, std::int64_t wall_ns, std::size_t steps) const {
    double best = kInf;  // the fastest member's ns per block
    for (int i = 0; i < team.threads; ++i) {
      const auto& tm = team.timing[static_cast<std::size_t>(i)];
      const std::int64_t ns = tm.compute_ns.load(std::memory_order_relaxed);
      const std::int64_t samples = tm.samples.load(std::memory_order_relaxed);
      std::size_t b0, b1;
      my_blocks(i, team.threads, b0, b1);
      if (samples == 0) return false;  // a member that timed no step in the window is stalled
      if (b1 == b0) continue;
      best = std::min(best, static_cast<double>(ns) / static_cast<double>(samples) / static_cast<double>(b1 - b0));
    }
    if (!std::isfinite(best)) return true;
    const double alone = best * static_cast<double>(blocks_);
    const double per_step = static_cast<double>(wall_ns) / static_cast<double>(steps);
    return per_step < 0.85 * alone;
  }

  static constexpr std::int64_t kWarmupNs = 2000000;          // 2 ms alone before any team
  static constexpr std::int64_t kWindowNs = 2000000;          // 2 ms

  Engine& engine_;
  std::size_t steps_;
  Recorder& recorder_;
  const RunOptions& opt_;
  bool report_steps_;
  std::size_t blocks_;
  bool gp_is_loss_;
  double limit_ = kInf;
};

// -- validation -------------------------------------------------------------------------------

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

void validate(const Configuration& c, std::size_t i, std::size_t count, std::size_t steps) {
  const std::string where = count > 1 ? " (configuration " + std::to_string(i) + ")" : "";
  require(c.nodes.count > 0, "spectrum must have at least one node" + where);
  require(c.nodes.eigenvalue && c.nodes.weight && c.nodes.scale, "spectrum arrays must be given" + where);
  require(c.algorithm.memory >= 0, "memory must be >= 0" + where);
  require(c.algorithm.steps_stored >= 1, "algorithm parameters need at least one row" + where);
  require(c.algorithm.steps_stored == 1 || c.algorithm.steps_stored >= steps,
          "schedule has " + std::to_string(c.algorithm.steps_stored) + " rows of parameters, fewer than steps = " +
              std::to_string(steps) + where);
  require(c.algorithm.alpha != nullptr && (c.algorithm.memory == 0 || (c.algorithm.b && c.algorithm.c &&
                                                                          c.algorithm.D && c.algorithm.e)),
          "algorithm parameter arrays must be given" + where);
  require(c.noise.steps_stored >= 1 && c.noise.coupling && c.noise.self_noise,
          "noise arrays must have at least one entry" + where);
  require(c.noise.steps_stored == 1 || c.noise.steps_stored >= steps,
          "per-step noise has " + std::to_string(c.noise.steps_stored) + " entries, fewer than steps = " +
              std::to_string(steps) + where);
}

}  // namespace

void evolve(const Configuration* configs, std::size_t count, std::size_t steps, const Recording& recording,
            const RunOptions& options, const Outputs& outputs) {
  require(outputs.loss != nullptr && outputs.diverged_at != nullptr, "outputs must be given");
  for (std::size_t i = 0; i < count; ++i) validate(configs[i], i, count, steps);
  if (recording.steps != nullptr) {
    for (std::size_t r = 0; r < recording.count; ++r) {
      require(recording.steps[r] >= 0 && static_cast<std::size_t>(recording.steps[r]) <= steps,
              "record steps must lie within [0, steps]");
      require(r == 0 || recording.steps[r] > recording.steps[r - 1], "record steps must be strictly increasing");
    }
  }
  const std::size_t R = recording.steps != nullptr ? recording.count : steps + 1;
  int threads = options.threads > 0 ? options.threads : max_threads();
#ifndef MEMSGD_HAVE_OPENMP
  threads = 1;
#endif

  auto run_one = [&](std::size_t i, int team_threads, bool report_steps) -> bool {
    const Configuration& c = configs[i];
    auto engine = make_engine(c, options.initial, team_threads);
    Recorder recorder(recording, steps, outputs.loss + i * R,
                      outputs.gradient_point_loss ? outputs.gradient_point_loss + i * R : nullptr);
    ConfigRun run(*engine, steps, recorder, options, report_steps);
    const bool ok = run.run(team_threads);
    outputs.diverged_at[i] = recorder.diverged_at();
    return ok;
  };

  bool cancelled = false;
  if (count == 1 || static_cast<std::size_t>(threads) > count || threads == 1) {
    for (std::size_t i = 0; i < count && !cancelled; ++i) {
      cancelled = !run_one(i, threads, count == 1);
      if (!cancelled && options.control != nullptr) options.control->configs_done.fetch_add(1, std::memory_order_relaxed);
    }
  } else {
#ifdef MEMSGD_HAVE_OPENMP
    // the most expensive configurations first, so that the last ones to finish are short
    std::vector<std::size_t> order(count);
    for (std::size_t i = 0; i < count; ++i) order[i] = i;
    auto cost = [&](std::size_t i) {
      return step_cost(configs[i].algorithm.memory) * static_cast<double>(configs[i].nodes.count);
    };
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cost(a) > cost(b); });
    std::exception_ptr error;
    std::atomic<bool> stop{false};
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (std::int64_t n = 0; n < static_cast<std::int64_t>(count); ++n) {
      if (stop.load(std::memory_order_relaxed)) continue;
      try {
        if (!run_one(order[static_cast<std::size_t>(n)], 1, false))
          stop.store(true);
        else if (options.control != nullptr)
          options.control->configs_done.fetch_add(1, std::memory_order_relaxed);
      } catch (...) {
#pragma omp critical(memsgd_evolve_error)
        if (!error) error = std::current_exception();
        stop.store(true);
      }
    }
    if (error) std::rethrow_exception(error);
    cancelled = stop.load() && options.control != nullptr && options.control->cancel.load();
#endif
  }
  if (cancelled || (options.control != nullptr && options.control->cancel.load())) throw Cancelled{};
}

double step_cost(int memory) {
  const double N = memory + 1.0, P = N * (N + 1.0) / 2.0;
  if (memory <= kernels::kMaxFixedMemory) return P * N + 4.0 * N + P + 3.0;
  const double M = memory;
  return M * M * M + 0.5 * M * M * (M + 1.0) + 8.0 * N * N;
}

double state_bytes(int memory, std::size_t nodes, std::size_t count, int threads) {
  const double N = memory + 1.0, K = static_cast<double>(nodes);
  const double live = std::min<double>(static_cast<double>(count), std::max(threads, 1));
  double per_config;
  if (memory <= kernels::kMaxFixedMemory) {
    per_config = 8.0 * (std::ceil(K / kLanes) * kLanes) * (2.0 + N * (N + 1.0) / 2.0);
  } else {
    per_config = 8.0 * K * (N * N + 1.0) + 8.0 * std::max(threads, 1) * (3.0 * N * N + 6.0 * N);
  }
  return live * per_config + 64.0 * K / kBlockComponents * std::max(threads, 1);
}

double physical_memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return static_cast<double>(pages) * static_cast<double>(page);
#endif
  return 0.0;
}

void require_memory(double output_bytes, int memory, std::size_t nodes, std::size_t count, int threads) {
  const double state = state_bytes(memory, nodes, count, threads > 0 ? threads : max_threads());
  const double need = output_bytes + state, phys = physical_memory_bytes();
  if (phys > 0 && need > phys) {
    auto gb = [](double b) { return std::to_string(b / 1e9).substr(0, 6) + " GB"; };
    throw std::length_error("steps too large: the run needs " + gb(need) + " (outputs " + gb(output_bytes) +
                            ", state " + gb(state) + "), more than this machine's physical memory (" + gb(phys) + ")");
  }
}

int max_threads() {
#ifdef MEMSGD_HAVE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace memsgd
