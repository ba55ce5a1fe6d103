#include "memsgd/renewal.hpp"

#include <algorithm>
#include <cmath>
#include <utility>
#include <complex>
#include <map>
#include <vector>

#include <unsupported/Eigen/FFT>

namespace memsgd {

void renewal_direct(std::size_t n, const double* U, const double* U_prime, const double* V,
                    const double* V_prime, double* L, double* l) {
  for (std::size_t t = 0; t < n; ++t) {
    double acc_l = U_prime[t];
    double acc_L = U[t];
    for (std::size_t s = 0; s < t; ++s) {
      acc_l += l[s] * V_prime[t - s];
      acc_L += l[s] * V[t - s];
    }
    l[t] = acc_l;
    L[t] = acc_L;
  }
}

namespace {

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

using Spectrum = std::vector<std::complex<double>>;

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
                const double* V_prime, double* L, double* l)
      : n_(n), U_(U), Up_(U_prime), V_(V), Vp_(V_prime), L_(L), l_(l),
        acc_l_(n, 0.0), acc_L_(n, 0.0) {
    fft_.SetFlag(Eigen::FFT<double>::HalfSpectrum);
  }

  // Solves t in [lo, hi) (hi - lo a power of two) given that acc_l_, acc_L_ hold the
  // contributions of l[0..lo).
  void solve(std::size_t lo, std::size_t hi) {
    if (lo >= n_) return;
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
      return;
    }
    const std::size_t mid = lo + (hi - lo) / 2;
    solve(lo, mid);
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
    std::vector<Spectrum> spectra;  // FFT of the tilted kernels V', V on d in [1, len)
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
      Spectrum kf(len / 2 + 1);
      fft_.fwd(kf.data(), k.data(), static_cast<Eigen::Index>(len));
      ks.spectra.push_back(std::move(kf));
    }
    return spectra_.emplace(len, std::move(ks)).first->second;
  }

  std::size_t n_;
  const double *U_, *Up_, *V_, *Vp_;
  double *L_, *l_;
  std::vector<double> acc_l_, acc_L_;
  std::map<std::size_t, KernelSpectra> spectra_;
  Eigen::FFT<double> fft_;
  std::vector<std::pair<std::size_t, std::size_t>> pieces_;
  std::vector<double> block_, kseg_, powers_;
  Spectrum bf_, prod_, kf_;
};

}  // namespace

void renewal_fft(std::size_t n, const double* U, const double* U_prime, const double* V,
                 const double* V_prime, double* L, double* l) {
  if (n == 0) return;
  RenewalSolver(n, U, U_prime, V, V_prime, L, l).solve(0, next_pow2(n));
}

}  // namespace memsgd
