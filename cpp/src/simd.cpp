#include "memsgd/simd.hpp"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include "kernels/kernel_api.hpp"
#include "simd_dispatch.hpp"

namespace memsgd {
namespace {

struct Path {
  const char* name;
  const kernels::KernelTable* (*table)();
  bool (*cpu_has)();
};

bool always() { return true; }

#if defined(__x86_64__) || defined(_M_X64)
bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
bool cpu_has_avx512() {
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f");
}
#endif

// Slowest first; "auto" takes the last supported one.
const Path kPaths[] = {
    {"baseline", &kernels::baseline::table, &always},
#if defined(MEMSGD_KERNELS_AVX2)
    {"avx2", &kernels::avx2::table, &cpu_has_avx2},
#endif
#if defined(MEMSGD_KERNELS_AVX512)
    {"avx512", &kernels::avx512::table, &cpu_has_avx512},
#endif
};

const Path* fastest_supported() {
  const Path* best = &kPaths[0];
  for (const Path& p : kPaths)
    if (p.cpu_has()) best = &p;
  return best;
}

std::atomic<const Path*> g_active{nullptr};

const Path* active() {
  const Path* p = g_active.load(std::memory_order_acquire);
  if (p == nullptr) {
    p = fastest_supported();
    g_active.store(p, std::memory_order_release);
  }
  return p;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

std::vector<std::string> simd_paths_compiled() {
  std::vector<std::string> out;
  for (const Path& p : kPaths) out.emplace_back(p.name);
  return out;
}

std::vector<std::string> simd_paths_supported() {
  std::vector<std::string> out;
  for (const Path& p : kPaths)
    if (p.cpu_has()) out.emplace_back(p.name);
  return out;
}

std::string simd_path() { return active()->name; }

namespace {

const Path& supported_path(const std::string& name) {
  for (const Path& p : kPaths) {
    if (name != p.name) continue;
    if (!p.cpu_has())
      throw std::invalid_argument("SIMD path '" + name + "' is compiled but this CPU lacks it (supported: " +
                                  joined(simd_paths_supported()) + ")");
    return p;
  }
  throw std::invalid_argument("SIMD path must be one of auto, " + joined(simd_paths_compiled()) +
                              " (the paths compiled into this build), got '" + name + "'");
}

}  // namespace

void set_simd_path(const std::string& name) {
  g_active.store(name == "auto" ? fastest_supported() : &supported_path(name), std::memory_order_release);
}

void select_simd_path_from_environment() {
  const char* env = std::getenv("MEMSGD_SIMD");
  if (env == nullptr || *env == '\0') {
    set_simd_path("auto");
    return;
  }
  try {
    set_simd_path(env);
  } catch (const std::invalid_argument& err) {
    throw std::invalid_argument(std::string("environment variable MEMSGD_SIMD: ") + err.what());
  }
}

namespace detail {
const kernels::KernelTable* active_kernels() { return active()->table(); }
const kernels::KernelTable* kernels_for(const std::string& name) {
  return (name == "auto" ? *fastest_supported() : supported_path(name)).table();
}
}  // namespace detail

}  // namespace memsgd
