// Interface between the step driver (evolve.cpp) and the SIMD kernels, which are compiled once
// per instruction set (kernels_<path>.cpp) and chosen at run time (simd.cpp).
//
// ODR discipline: the kernel translation units are compiled with different -m flags, so they must
// not define any symbol with external linkage that another translation unit also defines (the
// linker would keep one copy, possibly the AVX-512 one, for every caller). This header therefore
// holds only plain data types and declarations; everything in a kernel unit lives in namespace
// memsgd::kernels::<path>, in an unnamed namespace except its one table() function.
// tests/test_simd.py disassembles the built module and checks that no AVX instruction lies outside
// memsgd::kernels::avx2 / avx512 (and no AVX-512 instruction outside avx512).
#pragma once

#include <cstddef>
#include <cstdint>

namespace memsgd {
namespace kernels {

// Components are processed in groups of kLanes (the SIMD lanes of every path, fixed so that the
// summation order never depends on the instruction set) and summed per block of kBlockGroups
// groups; block partial sums are then added in block order by the driver.
inline constexpr int kLanes = 8;
inline constexpr std::size_t kBlockGroups = 128;
inline constexpr int kMaxFixedMemory = 3;

// Group layout ("array of structures of arrays"): for each group of kLanes components,
//   eigenvalue[kLanes], half_weight_eigenvalue[kLanes] (= w lam / 2), x_0[kLanes] .. x_{P-1}[kLanes]
// where x_p is the packed upper triangle of X (row-major: (0,0), (0,1), .., (0,M), (1,1), ..).
// Padding lanes of the last group have eigenvalue = weight = state = 0.
constexpr int packed_size(int n) { return n * (n + 1) / 2; }
constexpr int group_doubles(int n) { return (2 + packed_size(n)) * kLanes; }

// Everything one step of a fixed-size kernel (N = M + 1 <= 4) needs, precomputed by the driver.
// Per component (docs/math.md §3):
//   S = S0 - lam g h^T,   Y = S X S^T + lam (noise_drive - self_noise lam h^T X h) g g^T,
// with noise_drive = coupling_t 2 l_t (l_t: the loss at the gradient point). The direct form
// keeps the rounding error relative to Y. Two cheaper rearrangements were tried and rejected:
// through S0 X S0^T (19 operations for M = 1) it loses accuracy when S contracts strongly; in
// the companion basis (r, s00 r + b u) of Cayley-Hamilton (18 operations) the basis vectors
// become parallel as lam -> 0 and the slow modes drift by ~1e-15 per step (1e-11 after 5000).
struct FixedStep {
  double S0[4][4];
  double gh[4][4];      // g_i h_j
  double gg[10];        // g_i g_j, packed
  double hh[10];        // weights of the packed entries of X in h^T X h
  double hh_next[10];   // the same for h' = h of the next step (h'^T Y h')
  double noise_drive;
  double self_noise;
};

// Advances blocks [block_begin, block_end) of `data` (group layout above, `groups` groups in all)
// by one step and writes each block's partial sums: part_loss[b] = sum over the block of
// (w lam / 2) Y_00, part_gp[b] = the same with h_next^T Y h_next (not written by the e = 0
// kernels, whose gradient-point loss equals the loss).
using StepFn = void (*)(const FixedStep& step, double* data, std::size_t groups,
                        std::size_t block_begin, std::size_t block_end, double* part_loss,
                        double* part_gp);

struct KernelTable {
  const char* name;
  // step[N - 1][e_is_zero]; step[0][0] is unused (M = 0 has no shift e).
  StepFn step[kMaxFixedMemory + 1][2];
  // Peak probe: `iterations` rounds of independent kLanes-wide multiply-adds (fused where the
  // path has FMA); returns the flops done (time it for the throughput).
  double (*fma_probe)(std::uint64_t iterations);
};

namespace baseline {
const KernelTable* table();
}
#if defined(__x86_64__) || defined(_M_X64)
namespace avx2 {
const KernelTable* table();
}
namespace avx512 {
const KernelTable* table();
}
#endif

}  // namespace kernels
}  // namespace memsgd
