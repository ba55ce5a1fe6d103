// Internal: how threads wait for each other inside one run.
//
// A thread that must wait spins for a short while (a step on an idle machine ends within
// microseconds) and then sleeps in the kernel (futex on Linux, yield elsewhere), so a waiting
// thread never keeps spinning on a core that another process needs. OpenMP's own barrier would
// spin for GOMP_SPINCOUNT iterations (about a millisecond) on every step.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#endif

namespace memsgd {
namespace detail {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

using Clock = std::chrono::steady_clock;

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// Sleeps while *word == expected (may return spuriously).
inline void sleep_while_equal(std::atomic<std::uint32_t>* word, std::uint32_t expected) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
#else
  (void)word;
  (void)expected;
  std::this_thread::yield();
#endif
}

inline void wake_all(std::atomic<std::uint32_t>* word) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
#else
  (void)word;
#endif
}

// How long a waiting thread spins before it sleeps: longer than a futex wake-up takes (tens of
// microseconds in a VM), or one late wake-up makes the partner wait past its own spin, sleep, and
// need a wake-up in turn, on every step from then on. A partner that is descheduled for a time
// slice (milliseconds) still finds this thread asleep, and the team's adaptive policy
// (evolve.cpp) then continues on one thread.
inline constexpr std::int64_t kSpinNs = 200000;

// Waits until *word != value: spins up to spin_ns, then sleeps.
// `sleepers` counts sleeping waiters so that the waker can skip the system call.
// Threads parked while the leader runs alone spin only briefly: a late wake-up there only delays
// the next try of the team.
inline constexpr std::int64_t kGateSpinNs = 5000;

inline void wait_for_change(std::atomic<std::uint32_t>* word, std::uint32_t value,
                            std::atomic<std::uint32_t>* sleepers, std::int64_t spin_ns = kSpinNs) {
  const std::int64_t start = now_ns();
  for (std::uint32_t n = 1;; ++n) {
    if (word->load(std::memory_order_acquire) != value) return;
    cpu_relax();
    if ((n & 63u) == 0 && now_ns() - start > spin_ns) break;
  }
  sleepers->fetch_add(1, std::memory_order_seq_cst);
  while (word->load(std::memory_order_seq_cst) == value) sleep_while_equal(word, value);
  sleepers->fetch_sub(1, std::memory_order_relaxed);
}

inline void publish_change(std::atomic<std::uint32_t>* word, std::atomic<std::uint32_t>* sleepers) {
  word->fetch_add(1, std::memory_order_seq_cst);
  if (sleepers->load(std::memory_order_seq_cst) != 0) wake_all(word);
}

// Central barrier for a fixed number of threads; reusable.
class Barrier {
 public:
  explicit Barrier(int threads) : threads_(static_cast<std::uint32_t>(threads)) {}

  void wait() {
    const std::uint32_t gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == threads_) {
      arrived_.store(0, std::memory_order_relaxed);
      publish_change(&generation_, &sleepers_);
      return;
    }
    wait_for_change(&generation_, gen, &sleepers_);
  }

 private:
  alignas(64) std::atomic<std::uint32_t> arrived_{0};
  alignas(64) std::atomic<std::uint32_t> generation_{0};
  std::atomic<std::uint32_t> sleepers_{0};
  std::uint32_t threads_;
};

}  // namespace detail
}  // namespace memsgd
