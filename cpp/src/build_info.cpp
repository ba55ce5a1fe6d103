#include "memsgd/build_info.hpp"

#include <stdexcept>

#include "memsgd/evolve.hpp"
#include "memsgd/simd.hpp"
#include "simd_dispatch.hpp"

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
  return detail::kernels_for(path)->fma_probe(iterations);
}

}  // namespace memsgd
