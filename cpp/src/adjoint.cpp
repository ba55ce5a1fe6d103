#include "memsgd/adjoint.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <stdexcept>
#include <vector>

#include "memsgd/adjoint_step.hpp"

#ifdef MEMSGD_HAVE_OPENMP
#include <omp.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace memsgd {
namespace {

using adjoint_detail::packed;
using adjoint_detail::StepCoeffs;
using adjoint_detail::SumLayout;

// As in the engine: fixed component blocks whose partial sums are added in block order, so the
// result does not depend on the thread count.
constexpr std::size_t kBlock = 1024;
constexpr std::size_t kParallelWork = 16384;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool is_diverged(double r0, double limit) { return !(r0 <= limit); }

bool report_step(RunControl* control, std::size_t done) {
  if (control == nullptr) return false;
  control->steps_done.store(done, std::memory_order_relaxed);
  return control->cancel.load(std::memory_order_relaxed);
}

// Row t of the gradient from the step's sums over all components (layout: SumLayout(n));
// returns abar_t = c1_t Q1, the adjoint of a_t.
double write_gradient_row(int n, const double* s, double a_t, double c1, std::size_t t, const GradientOutputs& out) {
  const SumLayout L(n);
  const int M = n - 1;
  const double abar = c1 * s[L.Q1];
  out.alpha[t] = 2.0 * s[L.G];
  for (int i = 0; i < M; ++i) {
    out.c[t * M + i] = 2.0 * s[L.G + i + 1];
    out.e[t * M + i] = 2.0 * s[L.E + i] + 2.0 * abar * s[L.Rh + i];
    out.b[t * M + i] = 2.0 * s[L.A + i];
    for (int j = 0; j < M; ++j) out.D[(t * M + i) * M + j] = 2.0 * s[L.A + (i + 1) * M + j];
  }
  out.coupling[t] = a_t * s[L.Q1];
  out.self_noise[t] = -s[L.Q2];
  return abar;
}

// ---------------------------------------------------------------------------------------------
// Fixed state size N = M + 1 (M <= 3): structure-of-arrays storage of the packed upper triangle,
// entry p of component k at X[p * K + k]; the loop over k vectorises.
template <int N, bool ZeroE>
class FixedKernel {
 public:
  static constexpr int P = N * (N + 1) / 2;
  static constexpr int R = SumLayout(N).size;
  using Coeffs = StepCoeffs<N>;

  FixedKernel(const Nodes& nodes, const AlgorithmParams& params) : nodes_(nodes), params_(params) {}

  std::size_t state_doubles() const { return static_cast<std::size_t>(P) * nodes_.count; }
  int sums() const { return R; }
  Coeffs coeffs(std::size_t t) const { return adjoint_detail::step_coeffs<N>(params_, t); }

  // X_0 = c_k^2 E11 on [k0, k1); r0 = sum m lam (X)_00, r1 = sum m lam h^T X h.
  void init(const Coeffs&, double* X, std::size_t k0, std::size_t k1, double& r0, double& r1) const {
    const std::size_t K = nodes_.count;
    double s0 = 0.0;
    for (std::size_t k = k0; k < k1; ++k) {
      for (int p = 0; p < P; ++p) X[p * K + k] = 0.0;
      X[k] = nodes_.scale[k];
      s0 += nodes_.weight[k] * nodes_.eigenvalue[k] * nodes_.scale[k];
    }
    r0 = s0;
    r1 = s0;  // h_0 = 1 on the only nonzero entry
  }

  // One step on [k0, k1) from Xin to Xout (which may alias). With Sums: the block's r0 and r1 of
  // the new state, r1 with the next step's h.
  template <bool Sums>
  void forward(const Coeffs& cur_in, const Coeffs& nxt_in, double coupling_a, double self_noise, const double* Xin,
               double* Xout, std::size_t k0, std::size_t k1, double& r0, double& r1) const {
    // Local copies: the compiler cannot tell that the stores to Xout leave them unchanged, and
    // would reload them for every component.
    const Coeffs cur = cur_in, nxt = nxt_in;
    const std::size_t K = nodes_.count;
    const double* lam = nodes_.eigenvalue;
    const double* w = nodes_.weight;
    double s0 = 0.0, s1 = 0.0;
#pragma omp simd reduction(+ : s0, s1)
    for (std::size_t k = k0; k < k1; ++k) {
      double x[N][N], y[N][N];
      MEMSGD_ADJ_UNROLL
      for (int i = 0; i < N; ++i)
        MEMSGD_ADJ_UNROLL
        for (int j = i; j < N; ++j) {
          x[i][j] = Xin[packed(N, i, j) * K + k];
          x[j][i] = x[i][j];
        }
      adjoint_detail::forward_component<N, ZeroE>(cur, lam[k], coupling_a, self_noise, x, y);
      MEMSGD_ADJ_UNROLL
      for (int i = 0; i < N; ++i)
        MEMSGD_ADJ_UNROLL
        for (int j = i; j < N; ++j) Xout[packed(N, i, j) * K + k] = y[i][j];
      if (Sums) {
        double hyh = ZeroE ? y[0][0] : 0.0;
        if (!ZeroE) {
          MEMSGD_ADJ_UNROLL
          for (int i = 0; i < N; ++i) {
            double row = 0.0;
            MEMSGD_ADJ_UNROLL
            for (int j = 0; j < N; ++j) row += y[i][j] * nxt.h[j];
            hyh += nxt.h[i] * row;
          }
        }
        const double wl = w[k] * lam[k];
        s0 += wl * y[0][0];
        s1 += wl * hyh;
      }
    }
    r0 = s0;
    r1 = s1;
  }

  // Copies components [k0, k1) of a whole state.
  void copy_block(const double* src, double* dst, std::size_t k0, std::size_t k1) const {
    const std::size_t K = nodes_.count;
    for (int p = 0; p < P; ++p) std::copy(src + p * K + k0, src + p * K + k1, dst + p * K + k0);
  }

  // Ytilde_H = (w_H / 2) lam E11: the adjoint of the last weighted state.
  void backward_start(double w_half, double* Y, std::size_t k0, std::size_t k1) const {
    const std::size_t K = nodes_.count;
    for (std::size_t k = k0; k < k1; ++k) {
      for (int p = 0; p < P; ++p) Y[p * K + k] = 0.0;
      Y[k] = w_half * nodes_.eigenvalue[k];
    }
  }

  // Ytilde_{t+1} -> Ytilde_t on [k0, k1) given X_t; the block's sums (SumLayout) into `sums`.
  void backward(const Coeffs& cur_in, const Coeffs& nxt_in, double abar_next, double coupling_a, double self_noise,
                double w_half, const double* X, double* Y, std::size_t k0, std::size_t k1, double* sums) const {
    const Coeffs cur = cur_in, nxt = nxt_in;  // local: see forward()
    const std::size_t K = nodes_.count;
    const double* lam = nodes_.eigenvalue;
    const double* wt = nodes_.weight;
    // Each component's terms go to a small scratch row per sum (a many-variable reduction
    // clause in the simd loop vectorises badly); the rows are added into V lanes per sum, and
    // the lanes summed in order at the end.
    constexpr std::size_t kChunk = R <= 16 ? 128 : 64;
    constexpr std::size_t V = 8;
    alignas(64) double terms[R * kChunk];
    alignas(64) double lanes[R * V];
    for (std::size_t r = 0; r < R * V; ++r) lanes[r] = 0.0;
    for (std::size_t c0 = k0; c0 < k1; c0 += kChunk) {
      const std::size_t c1 = std::min(k1, c0 + kChunk);
#pragma omp simd
      for (std::size_t k = c0; k < c1; ++k) {
        double x[N][N], y[N][N];
        MEMSGD_ADJ_UNROLL
        for (int i = 0; i < N; ++i)
          MEMSGD_ADJ_UNROLL
          for (int j = i; j < N; ++j) {
            x[i][j] = X[packed(N, i, j) * K + k];
            x[j][i] = x[i][j];
            y[i][j] = Y[packed(N, i, j) * K + k];
            y[j][i] = y[i][j];
          }
        const double l = lam[k];
        adjoint_detail::backward_component<N, ZeroE>(cur, nxt.h, abar_next * l, l, wt[k], coupling_a, self_noise,
                                                     w_half, x, y, terms + (k - c0), kChunk);
        MEMSGD_ADJ_UNROLL
        for (int i = 0; i < N; ++i)
          MEMSGD_ADJ_UNROLL
          for (int j = i; j < N; ++j) Y[packed(N, i, j) * K + k] = y[i][j];
      }
      const std::size_t n = c1 - c0, full = n - n % V;
      for (std::size_t r = 0; r < R; ++r) {
        const double* row = terms + r * kChunk;
        double* lane = lanes + r * V;
        for (std::size_t i = 0; i < full; i += V) {
#pragma omp simd
          for (std::size_t v = 0; v < V; ++v) lane[v] += row[i + v];
        }
        for (std::size_t i = full; i < n; ++i) lane[i - full] += row[i];
      }
    }
    for (std::size_t r = 0; r < R; ++r) {
      double acc = 0.0;
      for (std::size_t v = 0; v < V; ++v) acc += lanes[r * V + v];
      sums[r] = acc;
    }
  }

  double gradient(const double* s, double a_t, double c1, std::size_t t, const GradientOutputs& out) const {
    return write_gradient_row(N, s, a_t, c1, t, out);
  }

 private:
  const Nodes& nodes_;
  const AlgorithmParams& params_;
};

// ---------------------------------------------------------------------------------------------
// Any memory: full N x N matrices per component, component-major (X[k N^2 + i N + j]), the same
// formulas with runtime loops.
class GeneralKernel {
 public:
  struct Coeffs {
    std::vector<double> S0, g, h;
  };

  GeneralKernel(const Nodes& nodes, const AlgorithmParams& params)
      : nodes_(nodes), params_(params), N_(params.memory + 1), NN_(static_cast<std::size_t>(N_) * N_) {}

  std::size_t state_doubles() const { return NN_ * nodes_.count; }
  int sums() const { return SumLayout(N_).size; }

  Coeffs coeffs(std::size_t t) const {
    const int N = N_, M = N_ - 1;
    const std::size_t s = std::min(t, params_.steps_stored - 1);
    Coeffs q{std::vector<double>(NN_, 0.0), std::vector<double>(N), std::vector<double>(N)};
    q.S0[0] = 1.0;
    q.g[0] = params_.alpha[s];
    q.h[0] = 1.0;
    for (int i = 0; i < M; ++i) {
      q.S0[i + 1] = params_.b[s * M + i];
      q.g[i + 1] = params_.c[s * M + i];
      q.h[i + 1] = params_.e[s * M + i];
      for (int j = 0; j < M; ++j) q.S0[(i + 1) * N + j + 1] = params_.D[(s * M + i) * M + j];
    }
    return q;
  }

  void init(const Coeffs&, double* X, std::size_t k0, std::size_t k1, double& r0, double& r1) const {
    double s0 = 0.0;
    for (std::size_t k = k0; k < k1; ++k) {
      double* x = X + k * NN_;
      std::fill(x, x + NN_, 0.0);
      x[0] = nodes_.scale[k];
      s0 += nodes_.weight[k] * nodes_.eigenvalue[k] * nodes_.scale[k];
    }
    r0 = s0;
    r1 = s0;
  }

  template <bool Sums>
  void forward(const Coeffs& cur, const Coeffs& nxt, double coupling_a, double self_noise, const double* Xin,
               double* Xout, std::size_t k0, std::size_t k1, double& r0, double& r1) const {
    const int N = N_;
    std::vector<double> S(NN_), Z(NN_), x(NN_);
    double s0 = 0.0, s1 = 0.0;
    for (std::size_t k = k0; k < k1; ++k) {
      const double l = nodes_.eigenvalue[k];
      std::copy(Xin + k * NN_, Xin + (k + 1) * NN_, x.begin());
      double* y = Xout + k * NN_;
      for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j) S[i * N + j] = cur.S0[i * N + j] - l * cur.g[i] * cur.h[j];
      const double hxh = quad(x.data(), cur.h.data());
      for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j) {
          double acc = 0.0;
          for (int m = 0; m < N; ++m) acc += S[i * N + m] * x[m * N + j];
          Z[i * N + j] = acc;
        }
      const double noise = l * (coupling_a - self_noise * l * hxh);
      for (int i = 0; i < N; ++i)
        for (int j = i; j < N; ++j) {
          double acc = 0.0;
          for (int m = 0; m < N; ++m) acc += Z[i * N + m] * S[j * N + m];
          acc += noise * cur.g[i] * cur.g[j];
          y[i * N + j] = acc;
          y[j * N + i] = acc;
        }
      if (Sums) {
        const double wl = nodes_.weight[k] * l;
        s0 += wl * y[0];
        s1 += wl * quad(y, nxt.h.data());
      }
    }
    r0 = s0;
    r1 = s1;
  }

  void copy_block(const double* src, double* dst, std::size_t k0, std::size_t k1) const {
    std::copy(src + k0 * NN_, src + k1 * NN_, dst + k0 * NN_);
  }

  void backward_start(double w_half, double* Y, std::size_t k0, std::size_t k1) const {
    for (std::size_t k = k0; k < k1; ++k) {
      double* y = Y + k * NN_;
      std::fill(y, y + NN_, 0.0);
      y[0] = w_half * nodes_.eigenvalue[k];
    }
  }

  void backward(const Coeffs& cur, const Coeffs& nxt, double abar_next, double coupling_a, double self_noise,
                double w_half, const double* X, double* Y, std::size_t k0, std::size_t k1, double* sums) const {
    const int N = N_, M = N_ - 1;
    const SumLayout L(N);
    std::vector<double> acc(static_cast<std::size_t>(L.size), 0.0), S(NN_), Yb(NN_), P(NN_), Xh(N), Yg(N), StYg(N);
    for (std::size_t k = k0; k < k1; ++k) {
      const double l = nodes_.eigenvalue[k], m = nodes_.weight[k];
      const double* x = X + k * NN_;
      double* yt = Y + k * NN_;
      for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j) {
          Yb[i * N + j] = yt[i * N + j] + abar_next * l * nxt.h[i] * nxt.h[j];
          S[i * N + j] = cur.S0[i * N + j] - l * cur.g[i] * cur.h[j];
        }
      double hxh = 0.0, gyg = 0.0;
      for (int i = 0; i < N; ++i) {
        double r = 0.0, s = 0.0;
        for (int j = 0; j < N; ++j) {
          r += x[i * N + j] * cur.h[j];
          s += Yb[i * N + j] * cur.g[j];
        }
        Xh[i] = r;
        Yg[i] = s;
        hxh += cur.h[i] * r;
        gyg += cur.g[i] * s;
      }
      for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j) {
          double a = 0.0;
          for (int q = 0; q < N; ++q) a += Yb[i * N + q] * S[q * N + j];
          P[i * N + j] = a;
        }
      const double self_q = self_noise * l * l * gyg;
      for (int i = 0; i < N; ++i)
        for (int j = i; j < N; ++j) {
          double a = 0.0;
          for (int q = 0; q < N; ++q) a += S[q * N + i] * P[q * N + j];
          a -= self_q * cur.h[i] * cur.h[j];
          if (i == 0 && j == 0) a += w_half * l;
          yt[i * N + j] = a;
          yt[j * N + i] = a;
        }
      const double noise = l * (coupling_a - self_noise * l * hxh);
      const double ml = m * l, mn = m * noise, mql2 = ml * l * gyg;
      for (int i = 0; i < N; ++i) {
        double a = 0.0;
        for (int q = 0; q < N; ++q) a += S[q * N + i] * Yg[q];
        StYg[i] = a;
      }
      for (int i = 0; i < N; ++i) {
        for (int j = 1; j < N; ++j) {
          double a = 0.0;
          for (int q = 0; q < N; ++q) a += P[i * N + q] * x[q * N + j];
          acc[L.A + i * M + (j - 1)] += m * a;
        }
        double wh = 0.0;
        for (int q = 0; q < N; ++q) wh += P[i * N + q] * Xh[q];
        acc[L.G + i] += mn * Yg[i] - ml * wh;
      }
      const double lq = self_noise * l * gyg;
      for (int i = 1; i < N; ++i) {
        double wg = 0.0;
        for (int q = 0; q < N; ++q) wg += x[i * N + q] * StYg[q];
        acc[L.E + i - 1] += -ml * (wg + lq * Xh[i]);
        acc[L.Rh + i - 1] += ml * Xh[i];
      }
      acc[L.Q1] += ml * gyg;
      acc[L.Q2] += mql2 * hxh;
    }
    std::copy(acc.begin(), acc.end(), sums);
  }

  double gradient(const double* s, double a_t, double c1, std::size_t t, const GradientOutputs& out) const {
    return write_gradient_row(N_, s, a_t, c1, t, out);
  }

 private:
  double quad(const double* A, const double* v) const {
    double s = 0.0;
    for (int i = 0; i < N_; ++i) {
      double row = 0.0;
      for (int j = 0; j < N_; ++j) row += A[i * N_ + j] * v[j];
      s += v[i] * row;
    }
    return s;
  }

  const Nodes& nodes_;
  const AlgorithmParams& params_;
  int N_;
  std::size_t NN_;
};

// Uninitialised storage for states: every entry is written before it is read, and zeroing
// hundreds of MB would cost a pass over memory. Large buffers ask Linux for transparent huge
// pages (far fewer page faults and TLB misses when the checkpoints are written and read).
class Buffer {
 public:
  explicit Buffer(std::size_t n) {
    if (n == 0) return;
    const std::size_t bytes = n * sizeof(double);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr std::size_t kHuge = std::size_t(2) << 20;
    if (bytes >= 2 * kHuge) {
      void* p = nullptr;
      if (posix_memalign(&p, kHuge, bytes) == 0) {
        madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure only costs speed
        p_ = static_cast<double*>(p);
        return;
      }
    }
#endif
    p_ = static_cast<double*>(std::malloc(bytes));
    if (p_ == nullptr) throw std::bad_alloc();
  }
  ~Buffer() { std::free(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  double* data() const { return p_; }

 private:
  double* p_ = nullptr;
};

double ordered_sum(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s;
}

// The driver: forward pass with checkpoints, then segments backward (recompute, adjoint steps).
template <class Kernel>
GradientResult run(const Kernel& ker, const Nodes& nodes, const NoiseSchedule& noise, const double* w,
                   std::size_t steps, const GradientOptions& o, const GradientOutputs& out) {
  using Coeffs = typename Kernel::Coeffs;
  const std::size_t K = nodes.count;
  const std::size_t S = ker.state_doubles();
  const std::size_t R = static_cast<std::size_t>(ker.sums());
  const std::size_t nblocks = (K + kBlock - 1) / kBlock;
  std::size_t horizon = 0;
  for (std::size_t t = 0; t <= steps; ++t)
    if (w[t] != 0.0) horizon = t;
  const std::size_t C = std::max<std::size_t>(
      1, std::min(o.checkpoint_every ? o.checkpoint_every : default_checkpoint_interval(horizon),
                  std::max<std::size_t>(horizon, 1)));
  const std::size_t nseg = (horizon + C - 1) / C;

  GradientResult res;
  res.checkpoint_every = C;
  res.stored_states = nseg + (C > 1 ? C - 1 : 0) + 2;
  Buffer ckpt(nseg * S), X(S);
  std::vector<double> a(steps + 1, kInf), part0(nblocks), part1(nblocks);
  double* L = out.loss;
  const bool parallel = nblocks > 1 && S >= kParallelWork;
  (void)parallel;
  std::int64_t diverged = -1;
  bool stop = false;

  // ---- forward pass: L_t, a_t, checkpoints X_{sC} ----
  {
    const Coeffs q0 = ker.coeffs(0);
#pragma omp parallel if (parallel)
    {
#pragma omp for schedule(static)
      for (std::size_t b = 0; b < nblocks; ++b) {
        const std::size_t k0 = b * kBlock, k1 = std::min(K, k0 + kBlock);
        ker.init(q0, X.data(), k0, k1, part0[b], part1[b]);
      }
#pragma omp single
      {
        const double r0 = ordered_sum(part0);
        L[0] = 0.5 * r0;
        a[0] = ordered_sum(part1);
        if (is_diverged(r0, o.limit)) diverged = 0;
        if (nseg > 0) std::copy(X.data(), X.data() + S, ckpt.data());
      }
      for (std::size_t t = 0; t < steps; ++t) {
        if (diverged >= 0 || stop) break;
        const Coeffs cur = ker.coeffs(t), nxt = ker.coeffs(t + 1);
        const double ca = noise.coupling[t] * a[t], sn = noise.self_noise[t];
        const bool save = (t + 1) % C == 0 && (t + 1) / C < nseg;
        double* dst = save ? ckpt.data() + ((t + 1) / C) * S : nullptr;
#pragma omp for schedule(static)
        for (std::size_t b = 0; b < nblocks; ++b) {
          const std::size_t k0 = b * kBlock, k1 = std::min(K, k0 + kBlock);
          ker.template forward<true>(cur, nxt, ca, sn, X.data(), X.data(), k0, k1, part0[b], part1[b]);
          if (save) ker.copy_block(X.data(), dst, k0, k1);
        }
#pragma omp single
        {
          const double r0 = ordered_sum(part0);
          L[t + 1] = 0.5 * r0;
          a[t + 1] = ordered_sum(part1);
          if (is_diverged(r0, o.limit)) diverged = static_cast<std::int64_t>(t + 1);
          stop = report_step(o.control, t + 1);
        }
      }
    }
  }
  if (stop) return res;
  res.diverged_at = diverged;
  if (diverged >= 0) std::fill(L + diverged, L + steps + 1, kInf);

  double value = 0.0;
  for (std::size_t t = 0; t <= horizon; ++t)
    if (w[t] != 0.0) value += w[t] * L[t];
  res.value = value;
  if (diverged >= 0 && static_cast<std::size_t>(diverged) <= horizon) {
    res.value = kInf;
    return res;  // caller fills the gradient with NaN
  }
  res.gradient_valid = true;
  if (nseg == 0) return res;

  // ---- backward pass, segment by segment ----
  Buffer Y(S), seg((C - 1) * S);
  std::vector<double> part(nblocks * R), summed(R);
  std::vector<Coeffs> cs;
  cs.reserve(C + 1);
  double abar_next = 0.0;
  std::size_t done = steps;
#pragma omp parallel if (parallel)
  {
#pragma omp for schedule(static)
    for (std::size_t b = 0; b < nblocks; ++b)
      ker.backward_start(0.5 * w[horizon], Y.data(), b * kBlock, std::min(K, (b + 1) * kBlock));
    for (std::size_t s = nseg; s-- > 0;) {
      if (stop) break;
      const std::size_t t0 = s * C, t1 = std::min(t0 + C, horizon);
#pragma omp single
      {
        cs.clear();
        for (std::size_t t = t0; t <= t1; ++t) cs.push_back(ker.coeffs(t));
      }
      auto state = [&](std::size_t t) -> double* {
        return t == t0 ? ckpt.data() + s * S : seg.data() + (t - t0 - 1) * S;
      };
      // Recompute X_{t0+1} .. X_{t1-1} block by block (the a_t are known: no reductions).
#pragma omp for schedule(static)
      for (std::size_t b = 0; b < nblocks; ++b) {
        const std::size_t k0 = b * kBlock, k1 = std::min(K, k0 + kBlock);
        double d0, d1;
        for (std::size_t t = t0; t + 1 < t1; ++t)
          ker.template forward<false>(cs[t - t0], cs[t - t0 + 1], noise.coupling[t] * a[t], noise.self_noise[t],
                                      state(t), state(t + 1), k0, k1, d0, d1);
      }
      for (std::size_t t = t1; t-- > t0;) {
        const Coeffs& cur = cs[t - t0];
        const Coeffs& nxt = cs[t - t0 + 1];
        const double ca = noise.coupling[t] * a[t], sn = noise.self_noise[t];
        const double abar = abar_next;  // read before the single below rewrites it
#pragma omp for schedule(static)
        for (std::size_t b = 0; b < nblocks; ++b) {
          const std::size_t k0 = b * kBlock, k1 = std::min(K, k0 + kBlock);
          ker.backward(cur, nxt, abar, ca, sn, 0.5 * w[t], state(t), Y.data(), k0, k1, part.data() + b * R);
        }
#pragma omp single
        {
          for (std::size_t r = 0; r < R; ++r) {
            double acc = 0.0;
            for (std::size_t b = 0; b < nblocks; ++b) acc += part[b * R + r];
            summed[r] = acc;
          }
          abar_next = ker.gradient(summed.data(), a[t], noise.coupling[t], t, out);
          ++done;
          if (report_step(o.control, done)) stop = true;
        }
        if (stop) break;
      }
    }
  }
  return res;
}

template <bool ZeroE>
GradientResult dispatch_fixed(const Nodes& nodes, const AlgorithmParams& params, const NoiseSchedule& noise,
                              const double* w, std::size_t steps, const GradientOptions& o,
                              const GradientOutputs& out) {
  switch (params.memory) {
    case 0: return run(FixedKernel<1, ZeroE>(nodes, params), nodes, noise, w, steps, o, out);
    case 1: return run(FixedKernel<2, ZeroE>(nodes, params), nodes, noise, w, steps, o, out);
    case 2: return run(FixedKernel<3, ZeroE>(nodes, params), nodes, noise, w, steps, o, out);
    default: return run(FixedKernel<4, ZeroE>(nodes, params), nodes, noise, w, steps, o, out);
  }
}

}  // namespace

std::size_t default_checkpoint_interval(std::size_t horizon) {
  if (horizon <= 1) return 1;
  auto c = static_cast<std::size_t>(std::ceil(std::sqrt(static_cast<double>(horizon))));
  return std::max<std::size_t>(c, 1);
}

double gradient_workspace(std::size_t nodes, int memory, std::size_t horizon, std::size_t checkpoint_every) {
  const double N = memory + 1.0;
  const double per_state = static_cast<double>(nodes) * (memory <= 3 ? N * (N + 1) / 2 : N * N);
  const std::size_t C = std::max<std::size_t>(
      1, std::min(checkpoint_every ? checkpoint_every : default_checkpoint_interval(horizon),
                  std::max<std::size_t>(horizon, 1)));
  const double nseg = std::ceil(static_cast<double>(horizon) / static_cast<double>(C));
  return per_state * (nseg + static_cast<double>(C) + 1.0);
}

GradientResult loss_gradient(const Nodes& nodes, const AlgorithmParams& params, const NoiseSchedule& noise,
                             const double* weights, std::size_t steps, const GradientOptions& options,
                             const GradientOutputs& out) {
  if (nodes.count == 0) throw std::invalid_argument("spectrum must have at least one node");
  if (params.memory < 0) throw std::invalid_argument("memory must be >= 0");
  if (params.steps_stored == 0) throw std::invalid_argument("at least one step of parameters is required");
  if (params.steps_stored != 1 && params.steps_stored < steps)
    throw std::invalid_argument("schedule has fewer steps of parameters than steps");
  const std::size_t M = static_cast<std::size_t>(params.memory);
  // Rows the backward pass never reaches (from the horizon on) stay zero.
  std::fill(out.alpha, out.alpha + steps, 0.0);
  std::fill(out.b, out.b + steps * M, 0.0);
  std::fill(out.c, out.c + steps * M, 0.0);
  std::fill(out.D, out.D + steps * M * M, 0.0);
  std::fill(out.e, out.e + steps * M, 0.0);
  std::fill(out.coupling, out.coupling + steps, 0.0);
  std::fill(out.self_noise, out.self_noise + steps, 0.0);
  bool zero_e = true;
  for (std::size_t i = 0; i < params.steps_stored * M; ++i) zero_e = zero_e && params.e[i] == 0.0;
  GradientResult res;
  if (options.general_kernel || params.memory > 3) {
    res = run(GeneralKernel(nodes, params), nodes, noise, weights, steps, options, out);
  } else if (zero_e) {
    res = dispatch_fixed<true>(nodes, params, noise, weights, steps, options, out);
  } else {
    res = dispatch_fixed<false>(nodes, params, noise, weights, steps, options, out);
  }
  if (!res.gradient_valid) {
    std::fill(out.alpha, out.alpha + steps, kNaN);
    std::fill(out.b, out.b + steps * M, kNaN);
    std::fill(out.c, out.c + steps * M, kNaN);
    std::fill(out.D, out.D + steps * M * M, kNaN);
    std::fill(out.e, out.e + steps * M, kNaN);
    std::fill(out.coupling, out.coupling + steps, kNaN);
    std::fill(out.self_noise, out.self_noise + steps, kNaN);
  }
  return res;
}

}  // namespace memsgd
