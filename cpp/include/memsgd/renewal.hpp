// Renewal equations of the loss expansion (docs/math.md §4):
//     l_t = U'_t + sum_{s<t} l_s V'_{t-s},        L_t = U_t + sum_{s<t} l_s V_{t-s},
// for t = 0..n-1, with V[0] and V'[0] ignored (propagators start at 1).
#pragma once

#include <cstddef>

namespace memsgd {

// Direct summation, O(n^2).
void renewal_direct(std::size_t n, const double* U, const double* U_prime, const double* V,
                    const double* V_prime, double* L, double* l);

// Online divide-and-conquer (relaxed) convolution with FFT block products (Eigen's FFT
// module), O(n log^2 n), both equations in the same pass. Block products keep relative
// accuracy for fast-decaying solutions: sources of large dynamic range are split into pieces,
// and products are exponentially tilted (see renewal.cpp). Agrees with renewal_direct to
// ~1e-13 relative on power-law and exponentially decaying problems.
void renewal_fft(std::size_t n, const double* U, const double* U_prime, const double* V,
                 const double* V_prime, double* L, double* l);

}  // namespace memsgd
