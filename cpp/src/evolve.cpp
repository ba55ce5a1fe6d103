#include "memsgd/evolve.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#ifdef MEMSGD_HAVE_OPENMP
#include <omp.h>
#endif

namespace memsgd {
namespace {

// Components are processed in fixed blocks; block partial sums are added in block order,
// so the arithmetic never depends on how blocks are shared among threads.
constexpr std::size_t kBlock = 1024;
// Below this much work per step a parallel region costs more than it saves.
constexpr std::size_t kParallelWork = 16384;

#define MEMSGD_UNROLL _Pragma("GCC unroll 16")

constexpr double kInf = std::numeric_limits<double>::infinity();

// S0, g, h of one step for a fixed state size N = M + 1 (docs/math.md §2.1).
template <int N>
struct Coeffs {
  double S0[N][N];
  double g[N];
  double h[N];
};

template <int N>
Coeffs<N> coeffs_at(const AlgorithmParams& p, std::size_t t) {
  constexpr int M = N - 1;
  const std::size_t s = std::min(t, p.steps_stored - 1);
  Coeffs<N> q{};
  q.S0[0][0] = 1.0;
  q.g[0] = p.alpha[s];
  q.h[0] = 1.0;
  for (int i = 0; i < M; ++i) {
    q.S0[0][i + 1] = p.b[s * M + i];
    q.S0[i + 1][0] = 0.0;
    q.g[i + 1] = p.c[s * M + i];
    q.h[i + 1] = p.e[s * M + i];
    for (int j = 0; j < M; ++j) q.S0[i + 1][j + 1] = p.D[(s * M + i) * M + j];
  }
  return q;
}

constexpr int packed_index(int N, int i, int j) { return i * N - i * (i - 1) / 2 + (j - i); }

// Sets X_k = scale_k * X0 for k in [k0, k1) and returns the block's r0, r1.
template <int N>
void init_block(const Coeffs<N>& q, InitialState init, const Nodes& nodes, double* X,
                std::size_t k0, std::size_t k1, double& out0, double& out1) {
  const std::size_t K = nodes.count;
  double x0[N][N];
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j)
      x0[i][j] = (init == InitialState::E11) ? (i == 0 && j == 0 ? 1.0 : 0.0) : q.g[i] * q.g[j];
  double hx0h = 0.0;
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) hx0h += q.h[i] * x0[i][j] * q.h[j];
  double s0 = 0.0, s1 = 0.0;
  for (std::size_t k = k0; k < k1; ++k) {
    const double sc = nodes.scale[k];
    for (int i = 0; i < N; ++i)
      for (int j = i; j < N; ++j) X[packed_index(N, i, j) * K + k] = sc * x0[i][j];
    const double wl = nodes.weight[k] * nodes.eigenvalue[k] * sc;
    s0 += wl * x0[0][0];
    s1 += wl * hx0h;
  }
  out0 = s0;
  out1 = s1;
}

// One step for components [k0, k1): X <- S X S^T + noise g g^T with the step's coefficients
// `cur`, then the block's r0 and r1 of the new state, r1 with the next step's h.
template <int N>
void step_block(const Coeffs<N>& cur, const Coeffs<N>& nxt, double a_t, const EvolveOptions& o,
                const Nodes& nodes, double* X, std::size_t k0, std::size_t k1, double& out0,
                double& out1) {
  const std::size_t K = nodes.count;
  const double* lam = nodes.eigenvalue;
  const double* w = nodes.weight;
  const double coupling_a = o.coupling * a_t;
  const double self_noise = o.self_noise;
  double s0 = 0.0, s1 = 0.0;
#pragma omp simd reduction(+ : s0, s1)
  for (std::size_t k = k0; k < k1; ++k) {
    const double l = lam[k];
    double x[N][N];
    MEMSGD_UNROLL
    for (int i = 0; i < N; ++i)
      MEMSGD_UNROLL
      for (int j = i; j < N; ++j) {
        x[i][j] = X[packed_index(N, i, j) * K + k];
        x[j][i] = x[i][j];
      }
    double S[N][N];
    MEMSGD_UNROLL
    for (int i = 0; i < N; ++i)
      MEMSGD_UNROLL
      for (int j = 0; j < N; ++j) S[i][j] = cur.S0[i][j] - l * cur.g[i] * cur.h[j];
    double hxh = 0.0;
    MEMSGD_UNROLL
    for (int i = 0; i < N; ++i) {
      double row = 0.0;
      MEMSGD_UNROLL
      for (int j = 0; j < N; ++j) row += x[i][j] * cur.h[j];
      hxh += cur.h[i] * row;
    }
    double Z[N][N];
    MEMSGD_UNROLL
    for (int i = 0; i < N; ++i)
      MEMSGD_UNROLL
      for (int j = 0; j < N; ++j) {
        double acc = 0.0;
        MEMSGD_UNROLL
        for (int m = 0; m < N; ++m) acc += S[i][m] * x[m][j];
        Z[i][j] = acc;
      }
    const double noise = l * (coupling_a - self_noise * l * hxh);
    double y[N][N];
    MEMSGD_UNROLL
    for (int i = 0; i < N; ++i)
      MEMSGD_UNROLL
      for (int j = i; j < N; ++j) {
        double acc = 0.0;
        MEMSGD_UNROLL
        for (int m = 0; m < N; ++m) acc += Z[i][m] * S[j][m];
        y[i][j] = acc + noise * cur.g[i] * cur.g[j];
        y[j][i] = y[i][j];
        X[packed_index(N, i, j) * K + k] = y[i][j];
      }
    double hyh = 0.0;
    MEMSGD_UNROLL
    for (int i = 0; i < N; ++i) {
      double row = 0.0;
      MEMSGD_UNROLL
      for (int j = 0; j < N; ++j) row += y[i][j] * nxt.h[j];
      hyh += nxt.h[i] * row;
    }
    const double wl = w[k] * l;
    s0 += wl * y[0][0];
    s1 += wl * hyh;
  }
  out0 = s0;
  out1 = s1;
}

double ordered_sum(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s;
}

bool is_diverged(double r0, double limit) { return !(r0 <= limit); }

// Publishes progress; true when the run should stop (cancelled from another thread).
bool report_step(RunControl* control, std::size_t done) {
  if (control == nullptr) return false;
  control->steps_done.store(done, std::memory_order_relaxed);
  return control->cancel.load(std::memory_order_relaxed);
}

template <int N>
std::int64_t evolve_fixed(const Nodes& nodes, const AlgorithmParams& params, std::size_t steps,
                          const EvolveOptions& o, double* r0, double* r1) {
  const std::size_t K = nodes.count;
  constexpr int P = N * (N + 1) / 2;
  std::vector<double> X(static_cast<std::size_t>(P) * K);
  const std::size_t nblocks = (K + kBlock - 1) / kBlock;
  std::vector<double> part0(nblocks), part1(nblocks);
  std::int64_t diverged = -1;
  const bool stationary = params.steps_stored == 1;
  const Coeffs<N> fixed = coeffs_at<N>(params, 0);
  const bool parallel = nblocks > 1 && K * P >= kParallelWork;
  (void)parallel;
  bool stop = false;  // cancelled; written in `single`, read by all after its barrier

#pragma omp parallel if (parallel)
  {
#pragma omp for schedule(static)
    for (std::size_t b = 0; b < nblocks; ++b)
      init_block<N>(fixed, o.initial, nodes, X.data(), b * kBlock, std::min(K, (b + 1) * kBlock),
                    part0[b], part1[b]);
#pragma omp single
    {
      r0[0] = ordered_sum(part0);
      r1[0] = ordered_sum(part1);
      if (is_diverged(r0[0], o.limit)) diverged = 0;
    }
    for (std::size_t t = 0; t < steps; ++t) {
      if (diverged >= 0 || stop) break;
      const Coeffs<N> cur = stationary ? fixed : coeffs_at<N>(params, t);
      const Coeffs<N> nxt = stationary ? fixed : coeffs_at<N>(params, t + 1);
      const double a_t = r1[t];
#pragma omp for schedule(static)
      for (std::size_t b = 0; b < nblocks; ++b)
        step_block<N>(cur, nxt, a_t, o, nodes, X.data(), b * kBlock,
                      std::min(K, (b + 1) * kBlock), part0[b], part1[b]);
#pragma omp single
      {
        r0[t + 1] = ordered_sum(part0);
        r1[t + 1] = ordered_sum(part1);
        if (is_diverged(r0[t + 1], o.limit)) diverged = static_cast<std::int64_t>(t + 1);
        stop = report_step(o.control, t + 1);
      }
    }
  }
  return diverged;
}

// General memory: the same recursion with runtime-sized dense matrices per component
// (component-major storage), every entry computed by the same loop so that equal inputs
// round alike -- as in the fixed-size kernels, a state confined to an invariant subspace
// stays there (an unexcited unstable memory mode stays unexcited).
std::int64_t evolve_general(const Nodes& nodes, const AlgorithmParams& params, std::size_t steps,
                            const EvolveOptions& o, double* r0, double* r1) {
  const int N = params.memory + 1;
  const int M = params.memory;
  const std::size_t K = nodes.count;
  const std::size_t NN = static_cast<std::size_t>(N) * N;
  std::vector<double> X(NN * K);  // full matrices, component-major
  const std::size_t nblocks = (K + kBlock - 1) / kBlock;
  std::vector<double> part0(nblocks), part1(nblocks);
  std::int64_t diverged = -1;

  struct Step {
    std::vector<double> S0, g, h;
  };
  auto step_at = [&](std::size_t t) {
    const std::size_t s = std::min(t, params.steps_stored - 1);
    Step q{std::vector<double>(NN, 0.0), std::vector<double>(N), std::vector<double>(N)};
    q.S0[0] = 1.0;
    q.g[0] = params.alpha[s];
    q.h[0] = 1.0;
    for (int i = 0; i < M; ++i) {
      q.S0[i + 1] = params.b[s * M + i];
      q.g[i + 1] = params.c[s * M + i];
      q.h[i + 1] = params.e[s * M + i];
      for (int j = 0; j < M; ++j) q.S0[(i + 1) * N + j + 1] = params.D[(s * M + i) * M + j];
    }
    return q;
  };
  auto quad = [N](const double* A, const std::vector<double>& v) {
    double s = 0.0;
    for (int i = 0; i < N; ++i) {
      double row = 0.0;
      for (int j = 0; j < N; ++j) row += A[i * N + j] * v[j];
      s += v[i] * row;
    }
    return s;
  };
  {
    const Step q = step_at(0);
    for (std::size_t b = 0; b < nblocks; ++b) {
      double s0 = 0.0, s1 = 0.0;
      for (std::size_t k = b * kBlock; k < std::min(K, (b + 1) * kBlock); ++k) {
        double* x = X.data() + k * NN;
        for (int i = 0; i < N; ++i)
          for (int j = 0; j < N; ++j)
            x[i * N + j] = nodes.scale[k] * (o.initial == InitialState::E11
                                                 ? (i == 0 && j == 0 ? 1.0 : 0.0)
                                                 : q.g[i] * q.g[j]);
        const double wl = nodes.weight[k] * nodes.eigenvalue[k];
        s0 += wl * x[0];
        s1 += wl * quad(x, q.h);
      }
      part0[b] = s0;
      part1[b] = s1;
    }
    r0[0] = ordered_sum(part0);
    r1[0] = ordered_sum(part1);
    if (is_diverged(r0[0], o.limit)) diverged = 0;
  }
  for (std::size_t t = 0; t < steps && diverged < 0; ++t) {
    const Step cur = step_at(t), nxt = step_at(t + 1);
    const double a_t = r1[t];
#pragma omp parallel if (K * NN >= kParallelWork)
    {
      std::vector<double> S(NN), Z(NN);
#pragma omp for schedule(static)
      for (std::size_t b = 0; b < nblocks; ++b) {
        double s0 = 0.0, s1 = 0.0;
        for (std::size_t k = b * kBlock; k < std::min(K, (b + 1) * kBlock); ++k) {
          const double l = nodes.eigenvalue[k];
          double* x = X.data() + k * NN;
          for (int i = 0; i < N; ++i)
            for (int j = 0; j < N; ++j) S[i * N + j] = cur.S0[i * N + j] - l * cur.g[i] * cur.h[j];
          const double hxh = quad(x, cur.h);
          for (int i = 0; i < N; ++i)
            for (int j = 0; j < N; ++j) {
              double acc = 0.0;
              for (int m = 0; m < N; ++m) acc += S[i * N + m] * x[m * N + j];
              Z[i * N + j] = acc;
            }
          const double noise = l * (o.coupling * a_t - o.self_noise * l * hxh);
          for (int i = 0; i < N; ++i)
            for (int j = i; j < N; ++j) {
              double acc = 0.0;
              for (int m = 0; m < N; ++m) acc += Z[i * N + m] * S[j * N + m];
              acc += noise * cur.g[i] * cur.g[j];
              x[i * N + j] = acc;
              x[j * N + i] = acc;
            }
          const double wl = nodes.weight[k] * l;
          s0 += wl * x[0];
          s1 += wl * quad(x, nxt.h);
        }
        part0[b] = s0;
        part1[b] = s1;
      }
    }
    r0[t + 1] = ordered_sum(part0);
    r1[t + 1] = ordered_sum(part1);
    if (is_diverged(r0[t + 1], o.limit)) diverged = static_cast<std::int64_t>(t + 1);
    if (report_step(o.control, t + 1)) break;
  }
  return diverged;
}

}  // namespace

std::int64_t evolve(const Nodes& nodes, const AlgorithmParams& params, std::size_t steps,
                    const EvolveOptions& options, double* r0, double* r1) {
  if (nodes.count == 0) throw std::invalid_argument("spectrum must have at least one node");
  if (params.memory < 0) throw std::invalid_argument("memory must be >= 0");
  if (params.steps_stored == 0) throw std::invalid_argument("at least one step of parameters is required");
  if (params.steps_stored != 1 && params.steps_stored < steps)
    throw std::invalid_argument("schedule has fewer steps of parameters than steps");
  std::int64_t diverged;
  switch (params.memory) {
    case 0: diverged = evolve_fixed<1>(nodes, params, steps, options, r0, r1); break;
    case 1: diverged = evolve_fixed<2>(nodes, params, steps, options, r0, r1); break;
    case 2: diverged = evolve_fixed<3>(nodes, params, steps, options, r0, r1); break;
    case 3: diverged = evolve_fixed<4>(nodes, params, steps, options, r0, r1); break;
    default: diverged = evolve_general(nodes, params, steps, options, r0, r1); break;
  }
  if (diverged >= 0) {
    std::fill(r0 + diverged, r0 + steps + 1, kInf);
    std::fill(r1 + diverged, r1 + steps + 1, kInf);
  }
  return diverged;
}

int max_threads() {
#ifdef MEMSGD_HAVE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace memsgd
