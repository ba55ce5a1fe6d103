// Generating functions of the propagators of a stationary algorithm (docs/math.md §4, §8), the
// per-component pieces of the long-horizon inversion (python/memsgd/long_horizon.py).
//
// Along component k the second moment evolves without the loss-coupled term by the linear map
//     T_k(X) = S_k X S_k^T - self_noise lambda_k^2 (h^T X h) g g^T,   S_k = S0 - lambda_k g h^T,
// on symmetric (M+1)x(M+1) matrices, written here in the P = (M+1)(M+2)/2 coordinates x_ij = X_ij,
// i <= j. Everything is computed from Delta_k = T_k - I, whose entries are formed from
// E_k = S_k - I = (S0 - I) - lambda_k g h^T without cancellation, so that the slow eigenvalue
// 1 - 2 alpha_eff lambda_k + O(lambda_k^2) of T_k keeps full relative accuracy in
// delta = mu - 1 even at lambda_k ~ 1e-55, and
//     (I - z T_k)^-1 = e^s (sigma I - Delta_k)^-1,     z = e^-s,  sigma = expm1(s),
// is solved with the small differences sigma - delta computed, not formed from 1 - z mu.
//
// The affine model (docs/math.md §9). Weight decay rho shifts the step matrices,
// S_k = S0 - (lambda_k + rho) g h^T (the self-noise keeps lambda_k^2), and adds first moments
// y_k (times w*_k): y' = S_k y + f_k, which feed the second moments through
//     X' = T_k(X) + C_k y + b_k,     C_k y = -rho (S_k y g^T + g y^T S_k^T),
// with constant sources f_k (along g) and b_k (along g g^T: the label noise and rho^2 w*^2).
// generating_sums takes any initial (X_k, y_k) and sources per component (AffineInput): the
// plain model is X_k = E11, y_k = 0, no sources; the deviation from a fixed point has no sources.
// The core knows nothing of Python.
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "memsgd/evolve.hpp"  // AlgorithmParams, RunControl

namespace memsgd {

// The P x P matrices Delta_k of a stationary algorithm (params.steps_stored == 1) on the
// eigenvalues lambda[0..count-1].
// With shift = rho (weight decay) the maps are those of S_k = S0 - (lambda_k + rho) g h^T with the
// self-noise of lambda_k.
class MomentMaps {
 public:
  MomentMaps(const double* lambda, std::size_t count, const AlgorithmParams& params, double self_noise,
             double shift = 0.0);

  int size() const { return P_; }              // P
  int dimension() const { return N_; }         // N = M + 1
  std::size_t count() const { return count_; }
  double shift() const { return shift_; }
  // Delta_k into out (P x P, row-major).
  void delta(std::size_t k, double* out) const;
  // E_k = S_k - I into out (N x N, row-major): the map of the first moments, minus I.
  void first_moment(std::size_t k, double* out) const;
  const double* g() const { return g_.data(); }
  // Coordinates of E11 and g g^T, and the weights w with <h h^T, X> = sum_c w_c x_c.
  const double* e11() const { return e11_.data(); }
  const double* ggt() const { return ggt_.data(); }
  const double* hh_weights() const { return hhw_.data(); }

 private:
  int N_, P_;
  std::size_t count_;
  const double* lambda_;
  double self_noise_, shift_;
  std::vector<double> S0mI_, g_, h_;  // S0 - I (N x N), g, h
  std::vector<double> e11_, ggt_, hhw_;
  std::vector<double> stored_;         // all Delta_k when small enough, else built on demand
};

// Poles of the generating functions: for every component the P values s = log(mu) = log1p(delta)
// of the eigenvalues mu = 1 + delta of T_k (out: count x P, row-major; complex logs, imaginary
// part in (-pi, pi]). A real eigenvalue near 1 (|delta| small against Delta_k) is refined by
// Newton's method on the Schur complement of the E11 coordinate,
//     delta = a + r^T (delta I - B)^-1 q,       Delta_k = [[a, r^T], [q, B]],
// so that it keeps relative accuracy (the sign of a slow pole at lambda ~ 1e-55 is right).
// A zero eigenvalue (mu = 0) gives s = -inf.
// slow_delta, slow_error (optional, count entries): that real eigenvalue delta (NaN when T_k has
// no real eigenvalue) and how far rounding may move it in a double-precision solve with Delta_k
// beyond relative accuracy: 2 P eps times the excess of its componentwise condition
// |u|^T |Delta_k| |v| / |u^T v| (u, v its left and right eigenvectors; always >= |delta|) over
// 4 |delta|. That is 0 for a slow mode at small lambda (its smallness is structural), but
// O(eps |Delta_k|) for a pole that is small by cancellation (a mode at the stability edge), whose
// effect on L_t grows like t.
void moment_poles(const MomentMaps& maps, std::complex<double>* out, double* slow_delta = nullptr,
                  double* slow_error = nullptr);

// The same for the first-moment maps S_k: out (count x N) the poles log(nu) of the eigenvalues nu
// of S_k, slow_delta and slow_error those of its real eigenvalue closest to 1 (E_k = S_k - I).
void first_moment_poles(const MomentMaps& maps, std::complex<double>* out, double* slow_delta = nullptr,
                        double* slow_error = nullptr);

// The fixed point pieces at z = 1 (s = 0), by the solves the contour uses at sigma = 0:
// Y (count x P) = (I - T_k)^-1 g g^T (the stationary second moment per unit noise drive), and
// mu (count x N) = (I - S_k)^-1 (-rho g) (the stationary first moment per unit w*_k; 0 without
// weight decay). Inf or NaN where I - T_k or I - S_k is singular.
void stationary_moments(const MomentMaps& maps, double* Y, double* mu);

// Per-component initial states and constant sources of the affine model (all optional, count
// rows each): second (count x P) X_k(0), replacing E11; first (count x N) y_k(0); second_source
// (count) the coefficient b_k of g g^T added at every step; first_source (count) the coefficient
// f_k of g added to y at every step; first_slow_delta, first_slow_error as from
// first_moment_poles (the uncertainty of the slow first-moment pole, for the error bounds).
struct AffineInput {
  const double* second = nullptr;
  const double* first = nullptr;
  const double* second_source = nullptr;
  const double* first_source = nullptr;
  const double* first_slow_delta = nullptr;
  const double* first_slow_error = nullptr;
};

// For each node s_j (s = -log z) the weighted sums, over the components order[0..n_slow_j) (the
// "slow" set S) and order[n_slow_j..count) (the "fast" set F) separately, of
//     u   = <E11,   (I - zT)^-1 E11>,      u'  = <h h^T, (I - zT)^-1 E11>        (weight wu_k)
// (with affine input, E11 replaced by the transform of the affine state from (X_k(0), y_k(0)),
//     X(z) = (I - zT)^-1 [X(0) + C (sigma - E)^-1 (y(0) + f / sigma) + b / sigma],
// so that u = sum_t <E11, X_t> z^t: the sources put a pole at z = 1, s = 0)
//     v   = z <E11, (I - zT)^-1 g g^T>,    v'  = z <h h^T, (I - zT)^-1 g g^T>    (weight wv_k)
// into out[12 j + 0..7] = (U_S, U'_S, V_S, V'_S, U_F, U'_F, V_F, V'_F). These are the
// generating functions sum_n U_n z^n, ... of docs/math.md §4 restricted to S and F.
// out[12 j + 8..11] (real): bounds on the errors of (U_S, U'_S), (V_S, V'_S), (U_F, U'_F) and
// (V_F, V'_F) that the uncertainty of the slow poles causes, sum over the set of
// (|u_k| + |u'_k|) slow_error_k / |sigma - slow_delta_k|, likewise for v (0 when slow_delta is
// null; slow_delta, slow_error as from moment_poles).
// Sums run over components in the given order for every node, so results do not depend on the
// thread count. control (optional): steps_done = nodes finished; cancel stops early (returns false).
// threads: at most this many OpenMP threads (0: the default, max_threads()). Throws
// std::invalid_argument when order is not a permutation of 0..count-1 or a node is not finite.
bool generating_sums(const MomentMaps& maps, const double* wu, const double* wv,
                     const std::int64_t* order, std::size_t nodes, const std::complex<double>* s,
                     const std::int64_t* n_slow, const double* slow_delta, const double* slow_error,
                     std::complex<double>* out, RunControl* control, int threads = 0,
                     const AffineInput& affine = AffineInput());

}  // namespace memsgd
