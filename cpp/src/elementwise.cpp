// Driver of the elementwise programs (memsgd/elementwise.hpp): checks the program, splits the
// tensors into chunks and runs the active SIMD path's kernel on them.
#include "memsgd/elementwise.hpp"

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "simd_dispatch.hpp"

#ifdef MEMSGD_HAVE_OPENMP
#include <omp.h>
#endif

namespace memsgd {

namespace {

// Elements per chunk (a thread's unit of work) and the total below which one thread runs it
// all: torch's own grain size for elementwise kernels, so that a team is opened where torch's
// would be.
constexpr std::size_t kChunk = 32768;

struct Chunk {
  std::size_t tensor, begin, end;
};

}  // namespace

void elementwise_step(const std::vector<std::int32_t>& codes, const std::vector<double>& scalars,
                      int registers, const std::vector<std::uintptr_t>& pointers,
                      const std::vector<std::int64_t>& sizes, bool is_double, int threads) {
  using kernels::ElementwiseOp;
  if (codes.size() != 4 * scalars.size())
    throw std::invalid_argument("elementwise program: codes must hold 4 entries per scalar");
  if (sizes.empty()) return;
  if (pointers.size() % sizes.size() != 0)
    throw std::invalid_argument("elementwise program: pointers must hold the same number of arrays per tensor");
  const int streams = static_cast<int>(pointers.size() / sizes.size());
  if (streams < 1 || registers < streams || registers > streams + 64)
    throw std::invalid_argument("elementwise program: registers must be >= the arrays per tensor (" +
                                std::to_string(streams) + ") and add at most 64 temporaries");
  std::vector<ElementwiseOp> ops(scalars.size());
  for (std::size_t k = 0; k < ops.size(); ++k) {
    ops[k] = ElementwiseOp{codes[4 * k], codes[4 * k + 1], codes[4 * k + 2], codes[4 * k + 3], scalars[k]};
    const ElementwiseOp& op = ops[k];
    const auto bad = [&](int r) { return r < 0 || r >= registers; };
    if (op.kind < kernels::kElementwiseMul || op.kind > kernels::kElementwiseDiv || bad(op.dst) || bad(op.a) ||
        (op.kind == kernels::kElementwiseFma && bad(op.c)))
      throw std::invalid_argument("elementwise program: operation " + std::to_string(k) +
                                  " has an unknown kind or a register outside [0, " + std::to_string(registers) + ")");
  }
  std::vector<Chunk> chunks;
  std::size_t total = 0;
  for (std::size_t t = 0; t < sizes.size(); ++t) {
    if (sizes[t] < 0) throw std::invalid_argument("elementwise program: sizes must be >= 0");
    const std::size_t n = static_cast<std::size_t>(sizes[t]);
    for (std::size_t i = 0; i < static_cast<std::size_t>(streams); ++i)
      if (n > 0 && pointers[t * streams + i] == 0)
        throw std::invalid_argument("elementwise program: a null array pointer");
    for (std::size_t b = 0; b < n; b += kChunk) chunks.push_back({t, b, std::min(n, b + kChunk)});
    total += n;
  }
  std::vector<void*> arrays(pointers.size());
  for (std::size_t i = 0; i < pointers.size(); ++i) arrays[i] = reinterpret_cast<void*>(pointers[i]);
  const kernels::ElementwiseFn fn = detail::active_kernels()->elementwise[is_double ? 1 : 0];
  const std::size_t scratch_bytes =
      static_cast<std::size_t>(registers - streams) * kernels::kElementwiseBlock * (is_double ? sizeof(double) : sizeof(float));
  const auto run = [&](std::size_t c, std::vector<double>& scratch) {
    const Chunk& ch = chunks[c];
    fn(ops.data(), static_cast<int>(ops.size()), arrays.data() + ch.tensor * streams, streams, ch.begin, ch.end,
       scratch.data());
  };
  const int team = static_cast<int>(std::min<std::size_t>(std::max(threads, 1), chunks.size()));
#ifdef MEMSGD_HAVE_OPENMP
  if (team > 1 && total > kChunk) {
#pragma omp parallel num_threads(team)
    {
      std::vector<double> scratch(scratch_bytes / sizeof(double) + 1);
#pragma omp for schedule(static)
      for (std::size_t c = 0; c < chunks.size(); ++c) run(c, scratch);
    }
    return;
  }
#endif
  std::vector<double> scratch(scratch_bytes / sizeof(double) + 1);
  for (std::size_t c = 0; c < chunks.size(); ++c) run(c, scratch);
}

}  // namespace memsgd
