// Which instruction set the step kernels use. The kernels are compiled for every path the
// compiler supports (baseline x86-64 or aarch64, AVX2+FMA, AVX-512F) and the fastest one the CPU
// runs is chosen at load time; MEMSGD_SIMD=baseline|avx2|avx512|auto overrides the choice.
#pragma once

#include <string>
#include <vector>

namespace memsgd {

// Paths compiled into this build, slowest first.
std::vector<std::string> simd_paths_compiled();
// Compiled paths this CPU (and its operating system) can run.
std::vector<std::string> simd_paths_supported();
// The path in use.
std::string simd_path();
// Uses `name` ("auto" = the fastest supported) from the next run on. Throws
// std::invalid_argument for an unknown or uncompiled path or one this CPU lacks.
void set_simd_path(const std::string& name);
// Applies MEMSGD_SIMD if set (else "auto"); throws std::invalid_argument as set_simd_path,
// naming the variable.
void select_simd_path_from_environment();

}  // namespace memsgd
