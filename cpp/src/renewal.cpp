#include "memsgd/renewal.hpp"

#include <algorithm>
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

using Spectrum = std::vector<std::complex<double>>;

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
  // acc[t] += sum_{s in [lo, mid)} l[s] kernel[t - s] for t in [mid, hi). A cyclic
  // convolution of length hi - lo suffices: wrapped terms land below mid - lo.
  void add_block(std::size_t lo, std::size_t mid, std::size_t hi) {
    const std::size_t len = hi - lo;
    const Eigen::Index nfft = static_cast<Eigen::Index>(len);
    std::vector<double> block(len, 0.0);
    for (std::size_t s = lo; s < mid; ++s) block[s - lo] = l_[s];
    Spectrum bf(len / 2 + 1), prod(len / 2 + 1);
    fft_.fwd(bf.data(), block.data(), nfft);
    const std::size_t end = std::min(hi, n_);
    const auto& spectra = kernel_spectra(len);
    double* acc[2] = {acc_l_.data(), acc_L_.data()};
    const int kernels = (V_ == Vp_) ? 1 : 2;
    for (int which = 0; which < kernels; ++which) {
      for (std::size_t i = 0; i < bf.size(); ++i) prod[i] = bf[i] * spectra[which][i];
      fft_.inv(block.data(), prod.data(), nfft);
      for (std::size_t t = mid; t < end; ++t) acc[which][t] += block[t - lo];
      if (kernels == 1)
        for (std::size_t t = mid; t < end; ++t) acc[1][t] += block[t - lo];
    }
  }

  const std::vector<Spectrum>& kernel_spectra(std::size_t len) {
    auto it = spectra_.find(len);
    if (it != spectra_.end()) return it->second;
    std::vector<Spectrum> both;
    for (const double* kernel : {Vp_, V_}) {
      std::vector<double> k(len, 0.0);
      for (std::size_t d = 1; d < len && d < n_; ++d) k[d] = kernel[d];
      Spectrum kf(len / 2 + 1);
      fft_.fwd(kf.data(), k.data(), static_cast<Eigen::Index>(len));
      both.push_back(std::move(kf));
    }
    return spectra_.emplace(len, std::move(both)).first->second;
  }

  std::size_t n_;
  const double *U_, *Up_, *V_, *Vp_;
  double *L_, *l_;
  std::vector<double> acc_l_, acc_L_;
  std::map<std::size_t, std::vector<Spectrum>> spectra_;
  Eigen::FFT<double> fft_;
};

std::size_t next_pow2(std::size_t n) {
  std::size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

void renewal_fft(std::size_t n, const double* U, const double* U_prime, const double* V,
                 const double* V_prime, double* L, double* l) {
  if (n == 0) return;
  RenewalSolver(n, U, U_prime, V, V_prime, L, l).solve(0, next_pow2(n));
}

}  // namespace memsgd
