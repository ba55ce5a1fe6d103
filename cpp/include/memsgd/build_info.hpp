// What this build of the core is: version, compiler, OpenMP, SIMD paths.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace memsgd {

struct BuildInfo {
  std::string version;       // the package version the core was built for
  std::string compiler;      // e.g. "GNU 12.2.0"
  std::string build_type;    // CMake build type
  bool openmp = false;
  std::string openmp_version;  // _OPENMP as yyyymm, "" without OpenMP
  int max_threads = 1;
  bool native = false;       // built with -march=native (MEMSGD_NATIVE=ON)
  std::string architecture;  // x86_64, aarch64, ...
  std::vector<std::string> simd_compiled;
  std::vector<std::string> simd_supported;
  std::string simd_active;
};

BuildInfo build_info();

// Runs the multiply-add throughput probe of SIMD path `path` (which this CPU must support):
// `iterations` rounds of independent 8-lane multiply-adds. Returns the flops done (time the call).
double fma_probe(const std::string& path, std::uint64_t iterations);

}  // namespace memsgd
