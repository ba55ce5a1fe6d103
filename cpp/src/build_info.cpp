#include "memsgd/build_info.hpp"

#include <stdexcept>

#include "kernels/kernel_api.hpp"
#include "memsgd/evolve.hpp"
#include "memsgd/simd.hpp"

#ifdef MEMSGD_HAVE_OPENMP
#include <omp.h>
#endif

#ifndef MEMSGD_VERSION
#define MEMSGD_VERSION "unknown"
#endif
#ifndef MEMSGD_COMPILER
#define MEMSGD_COMPILER "unknown"
#endif
#ifndef MEMSGD_BUILD_TYPE
#define MEMSGD_BUILD_TYPE "unknown"
#endif

namespace memsgd {

BuildInfo build_info() {
  BuildInfo b;
  b.version = MEMSGD_VERSION;
  b.compiler = MEMSGD_COMPILER;
  b.build_type = MEMSGD_BUILD_TYPE;
#ifdef MEMSGD_HAVE_OPENMP
  b.openmp = true;
  b.openmp_version = std::to_string(_OPENMP);
#endif
  b.max_threads = max_threads();
#ifdef MEMSGD_NATIVE_BUILD
  b.native = true;
#endif
#if defined(__x86_64__) || defined(_M_X64)
  b.architecture = "x86_64";
#elif defined(__aarch64__) || defined(_M_ARM64)
  b.architecture = "aarch64";
#else
  b.architecture = "other";
#endif
  b.simd_compiled = simd_paths_compiled();
  b.simd_supported = simd_paths_supported();
  b.simd_active = simd_path();
  return b;
}

double fma_probe(const std::string& path, std::uint64_t iterations) {
  const kernels::KernelTable* table = nullptr;
  bool supported = false;
  for (const auto& p : simd_paths_supported()) supported = supported || p == path;
  if (!supported) throw std::invalid_argument("SIMD path '" + path + "' is not supported on this CPU or not compiled");
  if (path == "baseline") table = kernels::baseline::table();
#if defined(MEMSGD_KERNELS_AVX2)
  if (path == "avx2") table = kernels::avx2::table();
#endif
#if defined(MEMSGD_KERNELS_AVX512)
  if (path == "avx512") table = kernels::avx512::table();
#endif
  return table->fma_probe(iterations);
}

}  // namespace memsgd
