// The fused optimizer step of memsgd.torch: a short elementwise program run over many arrays in
// one pass each, on the active SIMD path (cpp/src/kernels/elementwise.inc).
#pragma once

#include <cstdint>
#include <vector>

namespace memsgd {

// Operation k of the program is (kind, dst, a, c) = codes[4k .. 4k + 4) with scalar s =
// scalars[k], on registers: 0 .. streams-1 are the arrays of a tensor, streams .. registers-1
// temporaries. Kinds (one IEEE operation per element, s rounded to the element type first):
//   0: r[dst] = r[a] * s     1: r[dst] = r[a] * s + r[c] (fused where the path has FMA)
//   2: r[dst] = r[a] / s
// Tensor t's arrays are pointers[t * streams .. (t + 1) * streams), streams =
// pointers.size() / sizes.size(), each of sizes[t] floats (is_double false) or doubles.
// Work is split into chunks of contiguous elements over `threads` threads; every element sees
// the same operations whatever the split, so the result does not depend on the thread count.
// Throws std::invalid_argument for a malformed program.
void elementwise_step(const std::vector<std::int32_t>& codes, const std::vector<double>& scalars,
                      int registers, const std::vector<std::uintptr_t>& pointers,
                      const std::vector<std::int64_t>& sizes, bool is_double, int threads);

}  // namespace memsgd
