// Internal: the kernel table of the SIMD path in use (simd.cpp).
#pragma once

#include "kernels/kernel_api.hpp"

namespace memsgd {
namespace detail {
const kernels::KernelTable* active_kernels();
}  // namespace detail
}  // namespace memsgd
