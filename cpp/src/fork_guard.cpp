#include "fork_guard.hpp"

#include <atomic>
#include <mutex>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define MEMSGD_HAVE_FORK 1
#endif

namespace memsgd {
namespace detail {
namespace {

std::atomic<bool> g_forked_after_threads{false};

#ifdef MEMSGD_HAVE_FORK
// Runs in the child, which has one thread: only async-signal-safe work (an atomic store).
void on_fork_child() { g_forked_after_threads.store(true, std::memory_order_relaxed); }
#endif

}  // namespace

void note_thread_team() {
#ifdef MEMSGD_HAVE_FORK
  static std::once_flag registered;
  std::call_once(registered, [] { pthread_atfork(nullptr, nullptr, &on_fork_child); });
#endif
}

bool forked_after_threads() { return g_forked_after_threads.load(std::memory_order_relaxed); }

}  // namespace detail
}  // namespace memsgd
