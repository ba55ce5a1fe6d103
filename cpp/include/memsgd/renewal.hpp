// Renewal equations of the loss expansion (docs/math.md §4):
//     l_t = U'_t + sum_{s<t} l_s V'_{t-s},        L_t = U_t + sum_{s<t} l_s V_{t-s},
// for t = 0..n-1, with V[0] and V'[0] ignored (propagators start at 1).
#pragma once

#include <cstddef>

#include "memsgd/evolve.hpp"  // RunControl

namespace memsgd {

enum class RenewalMethod {
  Direct,  // direct summation, O(n^2)
  Fft,     // online divide-and-conquer (relaxed) convolution with FFT block products, O(n log^2 n)
};

struct RenewalOptions {
  RenewalMethod method = RenewalMethod::Fft;
  // Optional: steps_done = progress_base + outputs finished so far; setting cancel stops the
  // solve early.
  RunControl* control = nullptr;
  std::size_t progress_base = 0;
};

// Solves both equations in one pass. All conditioning lives here: U and U' are scaled by an
// exact power of two (inputs near 1e300 do not overflow inside an FFT), and the FFT method
// tilts every input by rho^-t when the solution grows like rho^t (rho from the growth of the
// inputs and from the root of sum_d |V'_d| rho^-d = 1), so that block products keep relative
// accuracy; inside, the FFT solver splits sources of large dynamic range and tilts each block
// product for decaying kernels (see renewal.cpp). From the first overflowed (non-finite)
// output on, L and l are +inf (never NaN). Agrees with direct summation to ~1e-13 relative on
// power-law and exponentially decaying problems with nonnegative inputs.
// Returns false when cancelled through options.control (the outputs are then incomplete).
// Passing the same pointer for U and U_prime, and for V and V_prime (e = 0), convolves once.
bool solve_renewal(std::size_t n, const double* U, const double* U_prime, const double* V,
                   const double* V_prime, double* L, double* l, const RenewalOptions& options);

// Estimated absolute error of the L computed by solve_renewal (L, l its outputs), into
// error[0..n-1]. Each output is a sum whose rounding error is about gamma times the sum of the
// magnitudes of its terms (gamma = eps (2 sqrt(n) + 16) for direct summation, eps (4 log2(n) + 16)
// for the FFT): A = |U'| + |l| * |V'| for l, B = |U| + |l| * |V| for L. A perturbation rho of the
// l-equation changes l by rho * r, r = delta + r * V' the resolvent of V', so
//     E = gamma A * |r|  (error of l),      error = gamma B + E * |V|.
// With signed inputs (tau2 > 0, oscillating modes) the terms can exceed the loss by many
// orders of magnitude (cancellation): the estimate then exceeds |L| where L means nothing.
// Runs 4 solves (5 when e != 0), publishing progress from options.progress_base + k n.
// Returns false when cancelled.
bool renewal_error_bound(std::size_t n, const double* U, const double* U_prime, const double* V,
                         const double* V_prime, const double* L, const double* l, double* error,
                         const RenewalOptions& options);

}  // namespace memsgd
