// Internal: the kernel tables of the SIMD paths (simd.cpp).
#pragma once

#include <string>

#include "kernels/kernel_api.hpp"

namespace memsgd {
namespace detail {
const kernels::KernelTable* active_kernels();
// The table of the path `name` ("auto": the fastest this CPU supports; a named path must be
// compiled and supported by this CPU: std::invalid_argument otherwise).
const kernels::KernelTable* kernels_for(const std::string& name);
}  // namespace detail
}  // namespace memsgd
