#include "memsgd/long_horizon.hpp"

#include "memsgd/common.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include <Eigen/Dense>
#include <Eigen/Eigenvalues>

#include "engine.hpp"
#include "thread_policy.hpp"

namespace memsgd {
namespace {

using Complex = std::complex<double>;

// Delta_k of all components are stored when they take at most this many doubles.
constexpr std::size_t kStoreLimit = std::size_t(1) << 24;
// Newton iterations for a slow eigenvalue, and when it counts as slow: |delta| below this
// fraction of max |Delta_k entry|.
constexpr int kNewtonIterations = 30;
constexpr double kSlowFraction = 1e-3;
constexpr double kPi = 3.14159265358979323846;
// Ulps per coordinate (times P) of the componentwise condition that a slow pole may move: the
// rounding of Delta's entries and of an LU solve's backward error (calibrated in
// docs/long-horizons.md, "Accuracy").
constexpr double kPoleErrorUlps = 2.0;
// A pole whose condition is at most this times its size is known to relative accuracy.
constexpr double kRelativeCondition = 4.0;
constexpr int kSumColumns = 12;

int packed(int N, int i, int j) { return i * N - i * (i - 1) / 2 + (j - i); }

// expm1(x + iy), accurate when |s| is tiny: the real part is expm1(x) cos y - 2 sin^2(y/2).
Complex expm1(Complex s) {
  const double x = s.real(), y = s.imag();
  const double half = std::sin(0.5 * y);
  return {std::expm1(x) * std::cos(y) - 2.0 * half * half, std::exp(x) * std::sin(y)};
}

// log(1 + delta) with relative accuracy for small delta.
Complex log1p(Complex delta) {
  const double a = delta.real(), b = delta.imag();
  if (b == 0.0) {
    if (a > -1.0) return {std::log1p(a), 0.0};
    if (a == -1.0) return {-kInf, 0.0};
    return {std::log(-(1.0 + a)), kPi};
  }
  // |1 + delta|^2 - 1 = 2a + a^2 + b^2
  return {0.5 * std::log1p(a * (2.0 + a) + b * b), std::atan2(b, 1.0 + a)};
}

// Solves A x = b for the P x P complex matrix A (row-major, overwritten by its LU factors)
// and nrhs right-hand sides stored as columns of B (P x nrhs, row-major, overwritten by x).
// Partial pivoting.
template <class Scalar>
void lu_solve(int P, Scalar* A, int nrhs, Scalar* B) {
  for (int col = 0; col < P; ++col) {
    int piv = col;
    double best = std::abs(A[col * P + col]);
    for (int r = col + 1; r < P; ++r) {
      const double v = std::abs(A[r * P + col]);
      if (v > best) {
        best = v;
        piv = r;
      }
    }
    if (piv != col) {
      for (int c = 0; c < P; ++c) std::swap(A[col * P + c], A[piv * P + c]);
      for (int c = 0; c < nrhs; ++c) std::swap(B[col * nrhs + c], B[piv * nrhs + c]);
    }
    const Scalar inv = 1.0 / A[col * P + col];
    for (int r = col + 1; r < P; ++r) {
      const Scalar f = A[r * P + col] * inv;
      if (f == Scalar(0.0)) continue;
      for (int c = col + 1; c < P; ++c) A[r * P + c] -= f * A[col * P + c];
      for (int c = 0; c < nrhs; ++c) B[r * nrhs + c] -= f * B[col * nrhs + c];
    }
  }
  for (int r = P - 1; r >= 0; --r) {
    for (int c = 0; c < nrhs; ++c) {
      Scalar acc = B[r * nrhs + c];
      for (int k = r + 1; k < P; ++k) acc -= A[r * P + k] * B[k * nrhs + c];
      B[r * nrhs + c] = acc / A[r * P + r];
    }
  }
}

// The Schur partition Delta = [[a, r^T], [q, B]] of the first (E11) coordinate.
struct SchurPartition {
  double a;
  Eigen::VectorXd r, q;
  Eigen::MatrixXd B;
  SchurPartition(int P, const double* Delta) : a(Delta[0]), r(P - 1), q(P - 1), B(P - 1, P - 1) {
    const int n = P - 1;
    for (int i = 0; i < n; ++i) {
      r(i) = Delta[i + 1];
      q(i) = Delta[(i + 1) * P];
      for (int j = 0; j < n; ++j) B(i, j) = Delta[(i + 1) * P + j + 1];
    }
  }
};

// Newton's method for the eigenvalue of Delta near delta0 through the Schur complement of the
// first coordinate, f(d) = a + r^T (dI - B)^-1 q - d = 0; false when it does not converge. It
// stops when a step is below what f's rounding allows (2 eps (|a| + |r|^T |x| + |d|) / |f'|):
// an eigenvalue that is 0 by cancellation (a stability edge) has no relative accuracy to reach.
bool refine_slow(int P, const double* Delta, double delta0, double& delta) {
  if (P == 1) {
    delta = Delta[0];
    return true;
  }
  const SchurPartition S(P, Delta);
  const int n = P - 1;
  constexpr double eps = std::numeric_limits<double>::epsilon();
  double d = delta0;
  for (int it = 0; it < kNewtonIterations; ++it) {
    Eigen::MatrixXd A = d * Eigen::MatrixXd::Identity(n, n) - S.B;
    Eigen::PartialPivLU<Eigen::MatrixXd> lu(A);
    const Eigen::VectorXd x = lu.solve(S.q);     // (dI - B)^-1 q
    const Eigen::VectorXd x2 = lu.solve(x);      // (dI - B)^-2 q
    const double f = S.a + S.r.dot(x) - d;
    const double df = -S.r.dot(x2) - 1.0;
    if (!std::isfinite(f) || !std::isfinite(df) || df == 0.0) return false;
    const double step = f / df;
    d -= step;
    const double attainable = 2.0 * eps * (std::abs(S.a) + S.r.cwiseAbs().dot(x.cwiseAbs()) + std::abs(d)) / std::abs(df);
    if (std::abs(step) <= std::max(4.0 * eps * std::abs(d), attainable)) {
      delta = d;
      return std::isfinite(d);
    }
  }
  return false;
}

// Componentwise condition of the eigenvalue d of Delta: |u|^T |Delta| |v| / |u^T v| with the
// right and left eigenvectors v = (1, x), u = (1, y), x = (dI - B)^-1 q, y^T = r^T (dI - B)^-1.
// Relative perturbations of eps in Delta's entries (its construction) and the backward error of
// an LU solve move the pole by about eps times this. It is ~|d| for a slow mode whose smallness
// is structural (lambda -> 0: the first column of Delta is O(lambda)) and O(|Delta|) for a pole
// that is small by cancellation (a stability edge, where mu = 1 with O(1) entries); +inf when
// dI - B is singular (the E11 coordinate does not see the mode).
double eigenvalue_condition(int P, const double* Delta, double d) {
  if (P == 1) return std::abs(Delta[0]);
  const SchurPartition S(P, Delta);
  const int n = P - 1;
  Eigen::MatrixXd A = d * Eigen::MatrixXd::Identity(n, n) - S.B;
  Eigen::PartialPivLU<Eigen::MatrixXd> lu(A);
  const Eigen::VectorXd x = lu.solve(S.q);
  const Eigen::VectorXd y = lu.transpose().solve(S.r);
  Eigen::VectorXd u(P), v(P);
  u(0) = 1.0;
  v(0) = 1.0;
  u.tail(n) = y.cwiseAbs();
  v.tail(n) = x.cwiseAbs();
  double num = 0.0;
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < P; ++j) num += u(i) * std::abs(Delta[i * P + j]) * v(j);
  const double den = std::abs(1.0 + y.dot(x));
  const double cond = num / den;
  return std::isfinite(cond) ? cond : kInf;
}

}  // namespace

MomentMaps::MomentMaps(const double* lambda, std::size_t count, const AlgorithmParams& params,
                       double self_noise, double shift)
    : N_(params.memory + 1), P_((params.memory + 1) * (params.memory + 2) / 2), count_(count),
      lambda_(lambda), self_noise_(self_noise), shift_(shift) {
  require(params.steps_stored == 1, "MomentMaps needs a stationary algorithm");
  const int N = N_;
  S0mI_.assign(N * N, 0.0);
  g_.assign(N, 0.0);
  h_.assign(N, 0.0);
  detail::step_parameters(params, 0, S0mI_.data(), static_cast<std::size_t>(N), g_.data(), h_.data());
  for (int i = 0; i < N; ++i) S0mI_[i * N + i] -= 1.0;  // S0 - I: row 0 is (0, b^T)
  e11_.assign(P_, 0.0);
  e11_[0] = 1.0;
  ggt_.resize(P_);
  hhw_.resize(P_);
  for (int i = 0; i < N; ++i)
    for (int j = i; j < N; ++j) {
      ggt_[packed(N, i, j)] = g_[i] * g_[j];
      hhw_[packed(N, i, j)] = (i == j ? 1.0 : 2.0) * h_[i] * h_[j];
    }
  const std::size_t PP = static_cast<std::size_t>(P_) * P_;
  if (count_ * PP <= kStoreLimit) {
    std::vector<double> all(count_ * PP);  // built by delta() while the store is still empty
    for (std::size_t k = 0; k < count_; ++k) delta(k, all.data() + k * PP);
    stored_.swap(all);
  }
}

void MomentMaps::delta(std::size_t k, double* out) const {
  const int N = N_, P = P_;
  const std::size_t PP = static_cast<std::size_t>(P) * P;
  if (!stored_.empty()) {
    std::copy(stored_.begin() + k * PP, stored_.begin() + (k + 1) * PP, out);
    return;
  }
  const double lam = lambda_[k];
  // E = (S0 - I) - (lam + shift) g h^T
  double Ebuf[64];
  std::vector<double> Evec;
  double* E = Ebuf;
  if (N * N > 64) {
    Evec.resize(N * N);
    E = Evec.data();
  }
  first_moment(k, E);
  const double noise = self_noise_ * lam * lam;  // the self-noise of the data part: lambda, not lambda + rho
  // Column (a, b): Delta(X) for the symmetric basis matrix X with x_ab = x_ba = 1,
  //   E X + X E^T + E X E^T - noise (h^T X h) g g^T, read off on i <= j.
  for (int a = 0; a < N; ++a)
    for (int b = a; b < N; ++b) {
      const int col = packed(N, a, b);
      const double hxh = a == b ? h_[a] * h_[a] : 2.0 * h_[a] * h_[b];
      for (int i = 0; i < N; ++i)
        for (int j = i; j < N; ++j) {
          // X = e_a e_b^T + e_b e_a^T (a < b) or e_a e_a^T (a == b)
          double y = 0.0;
          if (j == b) y += E[i * N + a];  // (E X)_ij
          if (a != b && j == a) y += E[i * N + b];
          if (i == a) y += E[j * N + b];  // (X E^T)_ij
          if (a != b && i == b) y += E[j * N + a];
          y += E[i * N + a] * E[j * N + b];  // (E X E^T)_ij
          if (a != b) y += E[i * N + b] * E[j * N + a];
          y -= noise * hxh * g_[i] * g_[j];
          out[packed(N, i, j) * P + col] = y;
        }
    }
}

void MomentMaps::first_moment(std::size_t k, double* out) const {
  const int N = N_;
  const double mu = lambda_[k] + shift_;   // lam itself when shift = 0
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) out[i * N + j] = S0mI_[i * N + j] - mu * g_[i] * h_[j];
}

namespace {

// The poles log1p(eigenvalues) of the P x P matrix D (a Delta_k or an E_k) into out[0..P), the
// real eigenvalue closest to 0 refined when small, its value and uncertainty (see moment_poles).
void poles_of(int P, std::vector<double>& D, std::complex<double>* out, double* slow_delta, double* slow_error) {
  constexpr double eps = std::numeric_limits<double>::epsilon();
  {
    Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> Dm(D.data(), P, P);
    Eigen::VectorXcd ev(P);
    if (P == 1) {
      ev(0) = D[0];
    } else {
      Eigen::EigenSolver<Eigen::MatrixXd> solver(Dm, false);
      if (solver.info() != Eigen::Success) throw std::runtime_error("eigenvalues of a moment map did not converge");
      ev = solver.eigenvalues();
    }
    double scale = 0.0;
    for (double x : D) scale = std::max(scale, std::abs(x));
    // the real eigenvalue closest to 0, refined when small against the matrix
    int slow = -1;
    for (int i = 0; i < P; ++i)
      if (ev(i).imag() == 0.0 && (slow < 0 || std::abs(ev(i).real()) < std::abs(ev(slow).real()))) slow = i;
    if (slow >= 0 && std::abs(ev(slow).real()) <= kSlowFraction * scale) {
      double refined;
      const double tol = 1e3 * eps * scale;
      if (refine_slow(P, D.data(), ev(slow).real(), refined) && std::abs(refined - ev(slow).real()) <= tol)
        ev(slow) = refined;
    }
    for (int i = 0; i < P; ++i) out[i] = log1p(Complex(ev(i)));
    if (slow_delta != nullptr) *slow_delta = slow >= 0 ? ev(slow).real() : kNaN;
    if (slow_error != nullptr) {
      // unseen by E11 (+inf): the unstructured bound eps P |Delta|
      double cond = slow >= 0 ? eigenvalue_condition(P, D.data(), ev(slow).real()) : 0.0;
      if (!std::isfinite(cond)) cond = P * scale;
      // cond >= |delta|; up to kRelativeCondition |delta| the pole keeps relative accuracy, which
      // the rounding allowance of every sum covers (long_horizon.py): only the excess counts
      const double excess = slow >= 0 ? std::max(0.0, cond - kRelativeCondition * std::abs(ev(slow).real())) : cond;
      *slow_error = kPoleErrorUlps * P * eps * excess;
    }
  }
}

}  // namespace

void moment_poles(const MomentMaps& maps, std::complex<double>* out, double* slow_delta, double* slow_error) {
  const int P = maps.size();
  std::vector<double> D(static_cast<std::size_t>(P) * P);
  for (std::size_t k = 0; k < maps.count(); ++k) {
    maps.delta(k, D.data());
    poles_of(P, D, out + k * P, slow_delta ? slow_delta + k : nullptr, slow_error ? slow_error + k : nullptr);
  }
}

void first_moment_poles(const MomentMaps& maps, std::complex<double>* out, double* slow_delta, double* slow_error) {
  const int N = maps.dimension();
  std::vector<double> E(static_cast<std::size_t>(N) * N);
  for (std::size_t k = 0; k < maps.count(); ++k) {
    maps.first_moment(k, E.data());
    poles_of(N, E, out + k * N, slow_delta ? slow_delta + k : nullptr, slow_error ? slow_error + k : nullptr);
  }
}

void stationary_moments(const MomentMaps& maps, double* Y, double* mu) {
  const int P = maps.size(), N = maps.dimension();
  const double* ggt = maps.ggt();
  const double* g = maps.g();
  const double rho = maps.shift();
  std::vector<double> D(static_cast<std::size_t>(P) * P), E(static_cast<std::size_t>(N) * N);
  for (std::size_t k = 0; k < maps.count(); ++k) {
    // (I - T) Y = g g^T, i.e. (0 I - Delta) Y = g g^T: the contour's solve at sigma = 0
    maps.delta(k, D.data());
    for (double& x : D) x = -x;
    double* y = Y + k * P;
    std::copy(ggt, ggt + P, y);
    lu_solve(P, D.data(), 1, y);
    // (I - S) mu = -rho g, i.e. E mu = rho g
    double* m = mu + k * N;
    if (rho == 0.0) {
      std::fill(m, m + N, 0.0);
      continue;
    }
    maps.first_moment(k, E.data());
    for (int i = 0; i < N; ++i) m[i] = rho * g[i];
    lu_solve(N, E.data(), 1, m);
  }
}

bool generating_sums(const MomentMaps& maps, const double* wu, const double* wv,
                     const std::int64_t* order, std::size_t nodes, const std::complex<double>* s,
                     const std::int64_t* n_slow, const double* slow_delta, const double* slow_error,
                     std::complex<double>* out, RunControl* control, int threads, const AffineInput& affine) {
  const std::size_t count = maps.count();
  {
    std::vector<char> seen(count, 0);
    for (std::size_t i = 0; i < count; ++i) {
      const std::int64_t k = order[i];
      if (k < 0 || static_cast<std::size_t>(k) >= count || seen[static_cast<std::size_t>(k)])
        throw std::invalid_argument("order must be a permutation of range(len(eigenvalues))");
      seen[static_cast<std::size_t>(k)] = 1;
    }
  }
  for (std::size_t j = 0; j < nodes; ++j)
    require(std::isfinite(s[j].real()) && std::isfinite(s[j].imag()), "s must be finite");
  const int P = maps.size();
  const std::size_t K = maps.count();
  // the thread policy (thread_policy.hpp): the nodes are independent tasks
  const int team = detail::tasks_team(resolve_threads(threads), nodes,
                                      static_cast<double>(nodes) * detail::contour_node_muladds(P, K));
  detail::note_team_size(control, team);
  const double* e11 = maps.e11();
  const double* ggt = maps.ggt();
  const double* hhw = maps.hh_weights();
  const int N = maps.dimension();
  const double* g = maps.g();
  const double rho = maps.shift();
  // the first moments reach the second ones only through the force's cross term (rho != 0)
  const bool with_first = rho != 0.0 && (affine.first != nullptr || affine.first_source != nullptr);
  std::atomic<std::size_t> done{0};
  std::atomic<bool> stop{false};
#pragma omp parallel num_threads(team)
  {
    const detail::TaskWatch watch;  // thread 0's time at work: what it saw of the machine
    std::vector<double> D(static_cast<std::size_t>(P) * P);
    std::vector<Complex> A(static_cast<std::size_t>(P) * P), B(static_cast<std::size_t>(P) * 2);
    std::vector<double> E(static_cast<std::size_t>(N) * N);
    std::vector<Complex> F(static_cast<std::size_t>(N) * N), y(N), Sy(N);
#pragma omp for schedule(dynamic) nowait
    for (std::int64_t j = 0; j < static_cast<std::int64_t>(nodes); ++j) {
      if (stop.load(std::memory_order_relaxed)) continue;
      const Complex sj = s[j];
      const Complex sigma = expm1(sj);
      const Complex es = std::exp(sj);
      const Complex per_step = 1.0 / sigma;  // z / (1 - z): a source added at every step
      Complex sums[8] = {};
      double pole[4] = {};  // error bounds from the slow poles' uncertainty: (u, v) over S, over F
      const std::size_t split = static_cast<std::size_t>(std::clamp<std::int64_t>(n_slow[j], 0, static_cast<std::int64_t>(K)));
      for (std::size_t idx = 0; idx < K; ++idx) {
        const std::size_t k = static_cast<std::size_t>(order[idx]);
        maps.delta(k, D.data());
        for (int r = 0; r < P; ++r) {
          for (int c = 0; c < P; ++c) A[r * P + c] = -D[r * P + c];
          A[r * P + r] += sigma;
          B[r * 2] = affine.second != nullptr ? affine.second[k * P + r] : e11[r];
          B[r * 2 + 1] = ggt[r];
        }
        if (affine.second_source != nullptr && affine.second_source[k] != 0.0)
          for (int r = 0; r < P; ++r) B[r * 2] += (affine.second_source[k] * ggt[r]) * per_step;
        if (with_first) {
          // y(s) = (sigma - E)^-1 (y(0) + f / sigma); its transform enters X through C y
          maps.first_moment(k, E.data());
          for (int r = 0; r < N; ++r) {
            for (int c = 0; c < N; ++c) F[r * N + c] = -E[r * N + c];
            F[r * N + r] += sigma;
            y[r] = affine.first != nullptr ? affine.first[k * N + r] : 0.0;
            if (affine.first_source != nullptr) y[r] += (affine.first_source[k] * g[r]) * per_step;
          }
          lu_solve(N, F.data(), 1, y.data());
          for (int r = 0; r < N; ++r) {  // S y = y + E y
            Complex acc = y[r];
            for (int c = 0; c < N; ++c) acc += E[r * N + c] * y[c];
            Sy[r] = acc;
          }
          for (int i = 0; i < N; ++i)  // C y = -rho (S y g^T + g (S y)^T) on i <= j
            for (int j = i; j < N; ++j) B[packed(N, i, j) * 2] -= rho * (Sy[i] * g[j] + g[i] * Sy[j]);
        }
        lu_solve(P, A.data(), 2, B.data());
        Complex hE = 0.0, hG = 0.0;
        for (int r = 0; r < P; ++r) {
          hE += hhw[r] * B[r * 2];
          hG += hhw[r] * B[r * 2 + 1];
        }
        // (I - zT)^-1 = e^s (sigma I - Delta)^-1; v carries an extra z = e^-s
        Complex* acc = sums + (idx < split ? 0 : 4);
        const Complex u = wu[k] * (es * B[0]), up = wu[k] * (es * hE), v = wv[k] * B[1], vp = wv[k] * hG;
        acc[0] += u;
        acc[1] += up;
        acc[2] += v;
        acc[3] += vp;
        if (slow_delta != nullptr && std::isfinite(slow_delta[k])) {
          // a pole moved by err changes the resolvent by err / |sigma - delta| relative
          const double eta = slow_error[k] / std::abs(sigma - slow_delta[k]);
          double* err = pole + (idx < split ? 0 : 2);
          err[0] += (std::abs(u) + std::abs(up)) * eta;
          err[1] += (std::abs(v) + std::abs(vp)) * eta;
        }
        if (with_first && affine.first_slow_delta != nullptr && std::isfinite(affine.first_slow_delta[k])) {
          // the slow first-moment pole moves u, u' only
          const double eta = affine.first_slow_error[k] / std::abs(sigma - affine.first_slow_delta[k]);
          pole[idx < split ? 0 : 2] += (std::abs(u) + std::abs(up)) * eta;
        }
      }
      for (int i = 0; i < 8; ++i) out[kSumColumns * j + i] = sums[i];
      for (int i = 0; i < 4; ++i) out[kSumColumns * j + 8 + i] = pole[i];
      const std::size_t finished = done.fetch_add(1) + 1;
      if (control != nullptr) {
        control->steps_done.store(finished, std::memory_order_relaxed);
        if (control->cancel.load(std::memory_order_relaxed)) stop.store(true);
      }
    }
  }
  return !stop.load();
}

}  // namespace memsgd
