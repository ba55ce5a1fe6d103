// Interface between the engines (engine.hpp) and the SIMD kernels, which are compiled once
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

// The affine state of weight decay (docs/math.md §9; the affine kernels below), per group:
//   eigenvalue[kLanes], half_weight_eigenvalue[kLanes], c2[kLanes] (the weight of mu mu^T in X),
//   [decay_scale[kLanes] (kappa, only with `scaled`)], C_0 .. C_{P-1}[kLanes] (the packed centered
// second moment), mu_0 .. mu_{N-1}[kLanes] (the first moment, see FixedStep), [q[kLanes] (only
// with `keep`: h^T X h of the uncentered X at this step's gradient point, kept from the step
// before, where it is the gradient-point loss's term)]. Padding lanes are all zero.
// Keeping q saves the 2 (e = 0) to P + N operations per group step of forming it again and costs
// one vector of memory traffic each way: the engine keeps it while the state is small enough to
// stay in cache (kAffineKeepBytes), where the operations set the speed, and not beyond, where
// memory bandwidth does (for M = 1 the state is then 13 doubles of traffic per component step
// against 15 with q, the plain step's 8 and the memory-2 reduction's 14).
inline constexpr double kAffineKeepBytes = 16e6;
constexpr int affine_node_vectors(bool scaled) { return scaled ? 4 : 3; }
constexpr int affine_group_doubles(int n, bool scaled, bool keep) {
  return (affine_node_vectors(scaled) + packed_size(n) + n + (keep ? 1 : 0)) * kLanes;
}

// Everything one step of a fixed-size kernel (N = M + 1 <= 4) needs, precomputed by the driver.
// Per component (docs/math.md §3):
//   S = S0 - lam g h^T,   Y = S X S^T + lam (noise_drive - self_noise lam h^T X h) g g^T,
// with noise_drive = coupling_t 2 l_t + label_t (l_t: the loss at the gradient point; label_t =
// sigma2/B_t, the label-noise source of docs/math.md §9). The direct form
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
  // the affine kernels only:
  double rho;           // the weight decay of this step
  double h[4];          // h of this step
  double h_next[4];     // h of the next step
  double force[4];      // -rho g
};

// Weight decay rho (docs/math.md §9; the affine kernels, KernelTable::affine_step). Per component
// the step matrix is S = S0 - (lam + kappa rho) g h^T and the first moment m feels the force
// f = -kappa rho w* g (kappa = 1, or the preconditioner's p_k on its transformed spectrum: the
// decay is p_k rho per component there). With m = kappa w* mu, mu_0 = (-1/kappa, 0, .., 0), the
// force on mu is -rho g for every component. The kernels carry the CENTERED second moment
// C = X - m m^T, whose step has no force terms:
//   mu' = S mu - rho g,
//   C'  = S C S^T + lam (noise_drive - self_noise lam h^T X h) g g^T,   h^T X h = h^T C h + c2 (h^T mu)^2,
// with c2 = kappa^2 (w*)^2, and L = 1/2 sum w lam (C_00 + c2 mu_0^2) (l with h'). h'^T X' h' may
// be kept for the next step's noise (q in the layout above).
// Cost for M = 1, e = 0: 30 vector operations per group step against the plain kernel's 23
// (lam + kappa rho 1, S mu with the force 4, q' 2; the loss sums q'), 32 without keeping q
// (h^T X h formed again: 2 more), 33 for the uncentered X with the force terms
// (S m) f^T + f (S m)^T + f f^T, and ~58 for the memory-(M+1) reduction (python/memsgd/_affine.py);
// memory: 8 vectors per group without q, 9 with, against the plain 5 (the reduction: 8).
// C is positive semi-definite and every sum above adds non-negative terms: no cancellation when
// the loss falls far below L_0. C_0 = 0 and X_0 = c2 E11 as in the plain model.
// lam + kappa rho is formed per component, not folded into S0 once per step: a rounded
// 1 - rho alpha would be one error common to all components, which the loss sum does not average
// out (a relative drift of ~t 1e-16 after t steps, against ~1e-15 this way).

// Where the groups of one step live: group g's eigenvalues and w lam / 2 (kLanes each) at
// nodes + g * node_stride, its state x_0 .. x_{P-1} (kLanes each) read from x_in + g * state_stride
// and written to x_out + g * state_stride (x_out may equal x_in). The engine keeps nodes and state
// interleaved (node_stride = state_stride = group_doubles(N), x_in = x_out = nodes + 2 kLanes);
// the adjoint's stored states are not in a span: recompute writes them densely (RecomputeFn).
struct GroupSpan {
  std::size_t groups;
  const double* nodes;
  std::size_t node_stride;
  const double* x_in;
  double* x_out;
  std::size_t state_stride;
};

// Advances blocks [block_begin, block_end) of `span` by one step and writes each block's partial
// sums: part_loss[b] = sum over the block of (w lam / 2) Y_00, part_gp[b] = the same with
// h_next^T Y h_next (not written by the e = 0 kernels, whose gradient-point loss equals the loss).
using StepFn = void (*)(const FixedStep& step, const GroupSpan& span, std::size_t block_begin,
                        std::size_t block_end, double* part_loss, double* part_gp);
// The adjoint's recomputation of stored states: on each block of [block_begin, block_end) in
// turn, takes steps[0 .. count) on `span` (in place: x_in = x_out, the block stays in cache
// through all the steps), without sums, and after step i streams the block's new state to the
// stored state at stored + i * stored_step (dense: group g at + g packed_size(N) kLanes).
// `streamed`: non-temporal stores, for stored states that go to main memory anyway (a segment
// larger than the cache: they must not evict the working set); otherwise plain stores, so that
// the backward pass finds them in cache. The same arithmetic as StepFn, so the same bits.
using RecomputeFn = void (*)(const FixedStep* steps, std::size_t count, const GroupSpan& span,
                             std::size_t block_begin, std::size_t block_end, double* stored,
                             std::size_t stored_step, bool streamed);

// -- the adjoint's backward step (docs/math.md §8 "Adjoint"; cpp/src/kernels/adjoint_backward.inc) --
//
// Per component, with the step's S = S0 - lam g h^T and Yhat = dJ/dX_{t+1} (J = sum_t w_t L_t):
//   Yhat  = Ytilde + (w lam / 2) [2 abar_{t+1} h' h'^T + w_{t+1} E11]   (h' = h_{t+1}; a_{t+1} and L_{t+1} terms)
//   q     = g^T Yhat g,   W = Yhat S X_t
//   Ytilde_t = S^T Yhat S - tau2/B_t lam^2 q h h^T                        (stored in place)
// and per block the sums (layout AdjointSums) from which the driver forms the gradient of step t.
// Yhat S is formed as Yhat S0 - lam (Yhat g) h^T in its first column (S0's is E1): the same
// value, with one product fewer.
struct AdjointStep {
  double S0[4][4];
  double gh[4][4];      // g_i h_j
  double g[4];
  double h[4];
  double hh[10];        // weights of the packed entries of X in h^T X h
  double h_outer[10];   // h_i h_j, packed
  double hn_outer[10];  // h'_i h'_j, packed, times 2 abar_{t+1}; entry 0 also + w_{t+1}
  double self_noise;    // tau2/B_t
};

// Sums over the components of one backward step (each entry a sum over components k):
//   A  = sum W[:, 1:]                     N x M   (row-major)
//   B  = sum lam W                        N x N
//   U  = sum lam Yhat g                   N
//   V  = sum lam^2 (h^T X h) Yhat g       N
//   Eq = sum lam^2 q (X h)[1:]            M
//   Rh = sum (w lam / 2) (X h)[1:]        M
struct AdjointSums {
  explicit constexpr AdjointSums(int n)
      : N(n), M(n - 1), A(0), B(n * (n - 1)), U(B + n * n), V(U + n), Eq(V + n), Rh(Eq + n - 1), size(Rh + n - 1) {}
  int N, M, A, B, U, V, Eq, Rh, size;
};

// The backward pass's state Ytilde (group g at y + g * y_stride, read and written), the nodes
// (as GroupSpan's) and the stored X_t (dense: group g at x + g packed_size(N) kLanes).
struct AdjointSpan {
  std::size_t groups;
  const double* nodes;
  std::size_t node_stride;
  double* y;
  std::size_t y_stride;
  const double* x;
};

// One backward step on blocks [block_begin, block_end): Ytilde_{t+1} -> Ytilde_t in place, and
// part_sums[b * AdjointSums(N).size + r] = sum r over block b.
using BackwardFn = void (*)(const AdjointStep& step, const AdjointSpan& span, std::size_t block_begin,
                            std::size_t block_end, double* part_sums);

// -- elementwise programs (the fused optimizer step; cpp/src/kernels/elementwise.inc) ----------
//
// A short program of elementwise operations on registers: registers 0 .. streams-1 are the
// arrays of one tensor (parameter, gradient, buffers), the rest are block-sized temporaries.
// Each operation is one IEEE operation per element on values of the stream type T (float or
// double; the scalar s is rounded to T first, as torch rounds a Python scalar):
//   kMul: r[dst] = r[a] * s        kFma: r[dst] = r[a] * s + r[c] (one rounding where the path
//   kDiv: r[dst] = r[a] / s        has FMA, like torch's add(c, a, alpha=s); two on baseline)
// The program runs over the elements block by block, every operation on a block before the next
// block, so each array crosses main memory once however many operations touch it.
struct ElementwiseOp {
  std::int32_t kind;
  std::int32_t dst, a, c;
  double s;
};
enum ElementwiseKind : std::int32_t { kElementwiseMul = 0,
                                      kElementwiseFma = 1,
                                      kElementwiseDiv = 2 };
inline constexpr std::size_t kElementwiseBlock = 512;
// Runs ops[0 .. n_ops) on elements [begin, end) of arrays streams[0 .. n_streams); scratch
// holds (registers - n_streams) * kElementwiseBlock elements of T.
using ElementwiseFn = void (*)(const ElementwiseOp* ops, int n_ops, void* const* streams, int n_streams,
                               std::size_t begin, std::size_t end, void* scratch);

struct KernelTable {
  // [N - 1][e_is_zero]; [0][0] is unused (M = 0 has no shift e).
  StepFn step[kMaxFixedMemory + 1][2];
  // Weight decay: the same signature on the affine layout (affine_group_doubles; GroupSpan's
  // nodes carry c2 [and kappa], its state C, mu [, q]; see FixedStep).
  // [N - 1][e_is_zero][scaled][keep]; [0][0] is unused.
  StepFn affine_step[kMaxFixedMemory + 1][2][2][2];
  RecomputeFn recompute[kMaxFixedMemory + 1][2];
  BackwardFn backward[kMaxFixedMemory + 1][2];
  // Peak probe: `iterations` rounds of independent kLanes-wide multiply-adds (fused where the
  // path has FMA); returns the flops done (time it for the throughput).
  double (*fma_probe)(std::uint64_t iterations);
  // elementwise programs on float ([0]) and double ([1]) arrays
  ElementwiseFn elementwise[2];
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
