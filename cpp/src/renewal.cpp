#include "memsgd/renewal.hpp"

#include "memsgd/common.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <map>
#include <utility>
#include <vector>

#include <unsupported/Eigen/FFT>

namespace memsgd {

namespace {

// Cancellation is checked (and progress published) every this many outputs of the direct sum.
constexpr std::size_t kDirectPoll = 256;

// Publishes `done` outputs; true when the caller asked to stop.
bool poll(RunControl* control, std::size_t done) {
  if (control == nullptr) return false;
  control->steps_done.store(done, std::memory_order_relaxed);
  return control->cancel.load(std::memory_order_relaxed);
}

bool direct_sums(std::size_t n, const double* U, const double* U_prime, const double* V,
                 const double* V_prime, double* L, double* l, RunControl* control,
                 std::size_t base) {
  for (std::size_t t = 0; t < n; ++t) {
    if (t % kDirectPoll == 0 && poll(control, base + t)) return false;
    double acc_l = U_prime[t];
    double acc_L = U[t];
    for (std::size_t s = 0; s < t; ++s) {
      acc_l += l[s] * V_prime[t - s];
      acc_L += l[s] * V[t - s];
    }
    l[t] = acc_l;
    L[t] = acc_L;
  }
  poll(control, base + n);
  return true;
}

// Blocks at most this long are solved by direct summation: below it an FFT does not pay.
constexpr std::size_t kLeaf = 64;
// Largest ratio of |l| magnitudes allowed inside one FFT source piece (see add_block).
constexpr double kRange = 1e3;
// Exponential tilts r^j used in one FFT product stay below this (see tilt_rate).
constexpr double kMaxTilt = 1e150;
// Tilts with r^span below this are not worth the extra multiplications.
constexpr double kMinTilt = 4.0;
// A tilt may raise the kernel's sup norm by at most this factor (kernels that rise first).
constexpr double kTiltSlack = 16.0;

using FourierCoefficients = std::vector<std::complex<double>>;

std::size_t next_pow2(std::size_t n) {
  std::size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// out[i] = r^i for i < count, each within a few ulps (a pow every 64 entries, times a table).
void tilt_powers(double r, std::size_t count, std::vector<double>& out) {
  out.resize(count);
  double low[64];
  for (int i = 0; i < 64; ++i) low[i] = std::pow(r, i);
  for (std::size_t q = 0; q < count; q += 64) {
    const double high = std::pow(r, static_cast<double>(q));
    const std::size_t end = std::min(count, q + 64);
    for (std::size_t i = q; i < end; ++i) out[i] = high * low[i - q];
  }
}


// Online (relaxed) convolution for the pair of renewal equations. Blocks of l are
// convolved with both kernels as soon as they are known, so every output is assembled from
// block products of similar magnitude (a single FFT of the whole of l would carry the
// rounding error of l_0 into late, much smaller, losses).
class RenewalSolver {
 public:
  RenewalSolver(std::size_t n, const double* U, const double* U_prime, const double* V,
                const double* V_prime, double* L, double* l, RunControl* control, std::size_t base)
      : n_(n), U_(U), Up_(U_prime), V_(V), Vp_(V_prime), L_(L), l_(l), control_(control), base_(base),
        acc_l_(n, 0.0), acc_L_(n, 0.0) {
    fft_.SetFlag(Eigen::FFT<double>::HalfSpectrum);
  }

  bool cancelled() const { return cancelled_; }

  // Solves t in [lo, hi) (hi - lo a power of two) given that acc_l_, acc_L_ hold the
  // contributions of l[0..lo). Stops early (cancelled() is then true) when asked to.
  void solve(std::size_t lo, std::size_t hi) {
    if (lo >= n_ || cancelled_) return;
    if (hi - lo <= kLeaf) {
      const std::size_t end = std::min(hi, n_);
      for (std::size_t t = lo; t < end; ++t) {
        double vl = Up_[t] + acc_l_[t];
        double vL = U_[t] + acc_L_[t];
        for (std::size_t s = lo; s < t; ++s) {
          vl += l_[s] * Vp_[t - s];
          vL += l_[s] * V_[t - s];
        }
        l_[t] = vl;
        L_[t] = vL;
      }
      cancelled_ = poll(control_, base_ + end);
      return;
    }
    const std::size_t mid = lo + (hi - lo) / 2;
    solve(lo, mid);
    if (cancelled_) return;
    if (mid < n_) add_block(lo, mid, hi);
    solve(mid, hi);
  }

 private:
  // acc[t] += sum_{s in [lo, mid)} l[s] kernel[t - s] for t in [mid, hi).
  //
  // An FFT product carries an absolute error ~ eps |l block| |kernel|, so a block whose l
  // spans many orders of magnitude (the first blocks, lo = 0, of a fast-decaying l) would
  // swamp the later, much smaller, outputs. The sources are therefore cut into pieces of
  // bounded dynamic range (at most kRange between the largest |l| of a piece and that of
  // each dyadic chunk it absorbs); a single piece uses the cached kernel spectra.
  void add_block(std::size_t lo, std::size_t mid, std::size_t hi) {
    pieces_.clear();
    std::size_t a = lo;
    double piece_max = 0.0;
    for (std::size_t c0 = lo, width = kLeaf; c0 < mid; c0 += width, width = c0 - lo) {
      const std::size_t c1 = std::min(mid, c0 + width);
      double chunk_max = 0.0;
      for (std::size_t s = c0; s < c1; ++s) chunk_max = std::max(chunk_max, std::abs(l_[s]));
      if (c0 > a && chunk_max > 0.0 && chunk_max * kRange < piece_max) {
        pieces_.emplace_back(a, c0);
        a = c0;
        piece_max = 0.0;
      }
      piece_max = std::max(piece_max, chunk_max);
    }
    pieces_.emplace_back(a, mid);
    if (pieces_.size() == 1) {
      add_block_cyclic(lo, mid, hi);
    } else {
      for (const auto& p : pieces_) add_piece(p.first, p.second, mid, hi);
    }
  }

  // Exponential tilt: sum_s l_s K_{t-s} = r^-(t-a) sum_s (l_s r^(s-a)) (K_{t-s} r^(t-s)), so an
  // FFT product of tilted sequences gives outputs whose rounding error is relative to the
  // tilted, flatter, magnitudes. For kernels decaying like rho^d (finite spectra) the choice
  // r = 1/rho makes everything flat and keeps relative accuracy over many decades; for power
  // laws r is close to 1 and harmless. r is the largest value with max_j |K_(d0+j)| r^j at most
  // kTiltSlack max_j |K_(d0+j)| (the kernel's sup norm grows by a bounded factor), over both
  // kernels, and r^span is capped at kMaxTilt. Returns 1 when the tilt would change little.
  double tilt_rate(std::size_t d0, std::size_t seg, std::size_t span) const {
    double log_r = std::log(kMaxTilt) / static_cast<double>(span);
    const int kernels = (V_ == Vp_) ? 1 : 2;
    const double* kernel[2] = {Vp_, V_};
    bool any = false;
    for (int which = 0; which < kernels; ++which) {
      const double* K = kernel[which] + d0;
      const std::size_t m = std::min(seg, n_ > d0 ? n_ - d0 : 0);
      double H = 0.0;
      for (std::size_t j = 0; j < m; ++j) H = std::max(H, std::abs(K[j]));
      if (H == 0.0) continue;
      any = true;
      const double log_H = std::log(kTiltSlack * H);
      for (std::size_t j = 1; j < m; ++j) {
        const double a = std::abs(K[j]);
        if (a > 0.0) log_r = std::min(log_r, (log_H - std::log(a)) / static_cast<double>(j));
      }
    }
    if (!any || log_r * static_cast<double>(span) < std::log(kMinTilt)) return 1.0;
    return std::exp(log_r);
  }

  // One FFT product of the whole block: a cyclic convolution of length hi - lo suffices
  // (wrapped terms land below mid - lo); tilted kernel spectra are cached per length.
  void add_block_cyclic(std::size_t lo, std::size_t mid, std::size_t hi) {
    const std::size_t len = hi - lo;
    const Eigen::Index nfft = static_cast<Eigen::Index>(len);
    const KernelSpectra& ks = kernel_spectra(len);
    const bool tilted = ks.rate != 1.0;
    block_.assign(len, 0.0);
    for (std::size_t s = lo; s < mid; ++s) block_[s - lo] = l_[s];
    if (tilted)
      for (std::size_t i = 0; i < mid - lo; ++i) block_[i] *= ks.powers[i];
    bf_.resize(len / 2 + 1);
    prod_.resize(len / 2 + 1);
    fft_.fwd(bf_.data(), block_.data(), nfft);
    const std::size_t end = std::min(hi, n_);
    const int kernels = (V_ == Vp_) ? 1 : 2;
    for (int which = 0; which < kernels; ++which) {
      for (std::size_t i = 0; i < bf_.size(); ++i) prod_[i] = bf_[i] * ks.spectra[which][i];
      fft_.inv(block_.data(), prod_.data(), nfft);
      if (tilted)
        for (std::size_t t = mid; t < end; ++t) block_[t - lo] /= ks.powers[t - lo];
      accumulate(which, kernels, mid, end, lo);
    }
  }

  // Sources l[a..b) into outputs t in [mid, min(hi, n)): a linear convolution with the kernel
  // segment K[d_min .. d_max], d_min = mid - b + 1, d_max = end - 1 - a, tilted as above.
  void add_piece(std::size_t a, std::size_t b, std::size_t mid, std::size_t hi) {
    const std::size_t end = std::min(hi, n_);
    if (end <= mid) return;
    const std::size_t d_min = mid - b + 1;
    const std::size_t seg = (end - 1 - a) - d_min + 1;
    const std::size_t len = next_pow2(seg);
    const Eigen::Index nfft = static_cast<Eigen::Index>(len);
    const double r = tilt_rate(d_min, seg, seg);
    const bool tilted = r != 1.0;
    if (tilted) tilt_powers(r, seg, powers_);
    block_.assign(len, 0.0);
    for (std::size_t s = a; s < b; ++s) block_[s - a] = tilted ? l_[s] * powers_[s - a] : l_[s];
    bf_.resize(len / 2 + 1);
    prod_.resize(len / 2 + 1);
    kf_.resize(len / 2 + 1);
    fft_.fwd(bf_.data(), block_.data(), nfft);
    const double* kernel[2] = {Vp_, V_};
    const int kernels = (V_ == Vp_) ? 1 : 2;
    for (int which = 0; which < kernels; ++which) {
      kseg_.assign(len, 0.0);
      for (std::size_t j = 0; j < seg; ++j)
        kseg_[j] = tilted ? kernel[which][d_min + j] * powers_[j] : kernel[which][d_min + j];
      fft_.fwd(kf_.data(), kseg_.data(), nfft);
      for (std::size_t i = 0; i < bf_.size(); ++i) prod_[i] = bf_[i] * kf_[i];
      fft_.inv(block_.data(), prod_.data(), nfft);
      // block_[m] = r^m (true output at t = a + d_min + m)
      if (tilted)
        for (std::size_t t = mid; t < end; ++t) block_[t - a - d_min] /= powers_[t - a - d_min];
      accumulate(which, kernels, mid, end, a + d_min);
    }
  }

  // acc[which][t] += block_[t - offset] for t in [mid, end) (both accumulators if one kernel).
  void accumulate(int which, int kernels, std::size_t mid, std::size_t end, std::size_t offset) {
    double* acc = which == 0 ? acc_l_.data() : acc_L_.data();
    for (std::size_t t = mid; t < end; ++t) acc[t] += block_[t - offset];
    if (kernels == 1)
      for (std::size_t t = mid; t < end; ++t) acc_L_[t] += block_[t - offset];
  }

  struct KernelSpectra {
    double rate = 1.0;              // tilt r for this block length
    std::vector<double> powers;     // r^i, i < len (empty if r == 1)
    std::vector<FourierCoefficients> spectra;  // FFT of the tilted kernels V', V on d in [1, len)
  };

  const KernelSpectra& kernel_spectra(std::size_t len) {
    auto it = spectra_.find(len);
    if (it != spectra_.end()) return it->second;
    KernelSpectra ks;
    // kernel segment d in [1, len); tilt exponents up to len - 1
    ks.rate = tilt_rate(1, len - 1, len);
    if (ks.rate != 1.0) tilt_powers(ks.rate, len, ks.powers);
    for (const double* kernel : {Vp_, V_}) {
      std::vector<double> k(len, 0.0);
      for (std::size_t d = 1; d < len && d < n_; ++d)
        k[d] = ks.rate != 1.0 ? kernel[d] * ks.powers[d] : kernel[d];
      FourierCoefficients kf(len / 2 + 1);
      fft_.fwd(kf.data(), k.data(), static_cast<Eigen::Index>(len));
      ks.spectra.push_back(std::move(kf));
    }
    return spectra_.emplace(len, std::move(ks)).first->second;
  }

  std::size_t n_;
  const double *U_, *Up_, *V_, *Vp_;
  double *L_, *l_;
  RunControl* control_;
  std::size_t base_;
  bool cancelled_ = false;
  std::vector<double> acc_l_, acc_L_;
  std::map<std::size_t, KernelSpectra> spectra_;
  Eigen::FFT<double> fft_;
  std::vector<std::pair<std::size_t, std::size_t>> pieces_;
  std::vector<double> block_, kseg_, powers_;
  FourierCoefficients bf_, prod_, kf_;
};

bool fft_sums(std::size_t n, const double* U, const double* U_prime, const double* V,
              const double* V_prime, double* L, double* l, RunControl* control, std::size_t base) {
  if (n == 0) return true;
  RenewalSolver solver(n, U, U_prime, V, V_prime, L, l, control, base);
  solver.solve(0, next_pow2(n));
  return !solver.cancelled();
}

double max_abs(std::size_t n, const double* a) {
  double m = 0.0;
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i]));
  return m;
}

// log(rho) of an exponential rate rho >= 1 that matches the growth of l and L, or 0 when
// they do not grow. Growth comes from the inputs ((max|a| over the last quarter / max|a| over
// the second quarter)^(2/n), robust to oscillation) and from the renewal itself (the root of
// sum_d |V'_d| rho^-d = 1 when sum |V'| > 1, by bisection).
double log_growth_rate(std::size_t n, const double* const inputs[4]) {
  double log_rho = 0.0;
  if (n >= 8) {
    for (int i = 0; i < 4; ++i) {
      const double* a = inputs[i];
      const double early = max_abs(n / 2 - n / 4, a + n / 4);
      const double late = max_abs(n - 3 * n / 4, a + 3 * n / 4);
      if (early > 0.0 && late > early)
        log_rho = std::max(log_rho, 2.0 * (std::log(late) - std::log(early)) / static_cast<double>(n));
    }
  }
  const double* Vp = inputs[3];
  double total = 0.0;
  for (std::size_t d = 1; d < n; ++d) total += std::abs(Vp[d]);
  if (total > 1.0) {
    // f(x) = sum_d |V'_d| exp(-d x) - 1 decreases in x = log(rho); f(0) > 0.
    auto f = [&](double x) {
      double acc = 0.0;
      for (std::size_t d = 1; d < n; ++d) acc += std::abs(Vp[d]) * std::exp(-static_cast<double>(d) * x);
      return acc - 1.0;
    };
    double lo = 0.0, hi = std::log(2.0);
    while (f(hi) > 0.0 && hi < 700.0) {
      lo = hi;
      hi *= 2.0;
    }
    for (int it = 0; it < 60; ++it) {
      const double mid = 0.5 * (lo + hi);
      (f(mid) > 0.0 ? lo : hi) = mid;
    }
    log_rho = std::max(log_rho, hi);
  }
  return log_rho > 1e-9 ? log_rho : 0.0;
}

// From the first non-finite (overflowed) l_t or L_t on, both are +inf: an overflow is a
// divergence, and inf - inf would otherwise leak NaN into later sums.
void overflow_to_inf(std::size_t n, double* L, double* l) {
  for (std::size_t t = 0; t < n; ++t) {
    if (!std::isfinite(L[t]) || !std::isfinite(l[t])) {
      std::fill(L + t, L + n, kInf);
      std::fill(l + t, l + n, kInf);
      return;
    }
  }
}

}  // namespace

bool solve_renewal(std::size_t n, const double* U, const double* U_prime, const double* V,
                   const double* V_prime, double* L, double* l, const RenewalOptions& options) {
  if (n == 0) return true;
  const bool same_source = U == U_prime, same_kernel = V == V_prime;
  // The equations are linear in (U, U'): scale them by an exact power of two so that their
  // largest magnitude is ~1 (sums of inputs near 1e300 would overflow inside an FFT).
  const double umax = std::max(max_abs(n, U), max_abs(n, U_prime));
  const int shift = (umax > 0.0 && std::isfinite(umax)) ? -std::ilogb(umax) : 0;
  // Exponential tilt (FFT only): l_t rho^-t solves the same equations with every input
  // multiplied by rho^-t, so block products see non-growing sequences and keep relative accuracy.
  const double* inputs[4] = {U, U_prime, V, V_prime};
  const double log_rho = options.method == RenewalMethod::Fft ? log_growth_rate(n, inputs) : 0.0;
  std::vector<double> work[4];
  const double* in[4];
  for (int i = 0; i < 4; ++i) {
    if ((i == 1 && same_source) || (i == 3 && same_kernel)) {
      in[i] = in[i - 1];
      continue;
    }
    const bool is_source = i < 2;
    if ((!is_source || shift == 0) && log_rho == 0.0) {
      in[i] = inputs[i];
      continue;
    }
    work[i].resize(n);
    for (std::size_t t = 0; t < n; ++t) {
      const double tilt = log_rho == 0.0 ? 1.0 : std::exp(-static_cast<double>(t) * log_rho);
      work[i][t] = (is_source ? std::ldexp(inputs[i][t], shift) : inputs[i][t]) * tilt;
    }
    in[i] = work[i].data();
  }
  const bool done = options.method == RenewalMethod::Fft
                        ? fft_sums(n, in[0], in[1], in[2], in[3], L, l, options.control, options.progress_base)
                        : direct_sums(n, in[0], in[1], in[2], in[3], L, l, options.control, options.progress_base);
  if (!done) return false;
  if (shift != 0 || log_rho != 0.0) {
    const double log_shift = -static_cast<double>(shift) * std::log(2.0);
    for (std::size_t t = 0; t < n; ++t) {
      // one exponential for both factors: the tilt alone may overflow where the result does not
      const double factor = std::exp(static_cast<double>(t) * log_rho + log_shift);
      L[t] = L[t] == 0.0 ? 0.0 : L[t] * factor;
      l[t] = l[t] == 0.0 ? 0.0 : l[t] * factor;
    }
  }
  overflow_to_inf(n, L, l);
  return true;
}

bool renewal_error_bound(std::size_t n, const double* U, const double* U_prime, const double* V,
                         const double* V_prime, const double* L, const double* l, double* error,
                         const RenewalOptions& options) {
  if (n == 0) return true;
  const bool same_kernel = V == V_prime, one_equation = same_kernel && U == U_prime;
  const double eps = std::numeric_limits<double>::epsilon();
  const double gamma = options.method == RenewalMethod::Fft
                           ? eps * (4.0 * std::log2(static_cast<double>(n) + 1.0) + 16.0)
                           : eps * (2.0 * std::sqrt(static_cast<double>(n)) + 16.0);
  RenewalOptions pass = options;
  auto next = [&](const double* a, const double* ap, const double* k, const double* kp, double* out,
                  double* out_l) {
    const bool ok = solve_renewal(n, a, ap, k, kp, out, out_l, pass);
    pass.progress_base += n;
    return ok;
  };
  auto absolute = [n](const double* a) {
    std::vector<double> out(n);
    for (std::size_t t = 0; t < n; ++t) out[t] = std::abs(a[t]);
    return out;
  };
  const std::vector<double> zeros(n, 0.0);
  const double* none = zeros.data();
  // Every plain convolution below, sum_{s<t} a_s k_{t-s}, is the L-part of a renewal whose l-part
  // is forced to a (source a, kernel 0): the solver's splitting and tilting keep it accurate
  // across many decades.
  std::vector<double> absl = absolute(l), absV = absolute(V), absVp = absolute(V_prime);
  std::vector<double> scratch(n);
  // Resolvent of V': r = delta + r * V'; a perturbation rho of the l-equation changes l by rho * r.
  std::vector<double> delta(n, 0.0), r(n);
  delta[0] = 1.0;
  if (!next(delta.data(), delta.data(), V_prime, V_prime, r.data(), scratch.data())) return false;
  std::vector<double> absr = absolute(r.data());
  // Magnitudes of the terms of each sum: B for L, A for l.
  std::vector<double> B(n), A;
  const std::vector<double> absU = absolute(U);
  if (!next(absU.data(), absl.data(), absV.data(), none, B.data(), scratch.data())) return false;
  if (one_equation) {
    A = B;
  } else {
    A.resize(n);
    const std::vector<double> absUp = absolute(U_prime);
    if (!next(absUp.data(), absl.data(), absVp.data(), none, A.data(), scratch.data())) return false;
  }
  // Rounding error of l: E = gamma A * |r| (r_0 = 1 included); of L: gamma B + E * |V|.
  for (std::size_t t = 0; t < n; ++t) {
    A[t] *= gamma;
    B[t] *= gamma;
  }
  std::vector<double> E(n);
  if (!next(A.data(), A.data(), absr.data(), none, E.data(), scratch.data())) return false;
  if (!next(B.data(), E.data(), absV.data(), none, error, scratch.data())) return false;
  return true;
}

}  // namespace memsgd
