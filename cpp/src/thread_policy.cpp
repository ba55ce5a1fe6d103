// The thread policy (see thread_policy.hpp for the rules and the cost model).
#include "thread_policy.hpp"

#include "engine.hpp"  // kBlockComponents

#include <cmath>
#include <ctime>
#include <limits>
#include <mutex>
#include <utility>

#ifdef MEMSGD_HAVE_OPENMP
#include <omp.h>
#endif

namespace memsgd {
namespace detail {

std::int64_t thread_cpu_ns() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
  timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
#endif
  return now_ns();
}

double largest_share(std::size_t components, std::size_t per_block, int n) {
  if (components == 0 || n <= 1) return 1.0;
  const std::size_t blocks = (components + per_block - 1) / per_block;
  std::size_t largest = 0;
  for (int tid = 0; tid < n; ++tid) {
    const std::size_t c0 = std::min(components, first_block(blocks, tid, n) * per_block);
    const std::size_t c1 = std::min(components, first_block(blocks, tid + 1, n) * per_block);
    largest = std::max(largest, c1 - c0);
  }
  return static_cast<double>(largest) / static_cast<double>(components);
}

bool team_may_pay(double solo_ns, std::size_t components, std::size_t per_block, int n) {
  if (n <= 1 || !(solo_ns > 0.0)) return false;
  return largest_share(components, per_block, n) * solo_ns + kBarrierNs <= kTeamGain * solo_ns;
}

int plan_lockstep(int threads, std::size_t components, std::size_t per_block, double step_muladds,
                  std::size_t steps) {
  const std::size_t blocks = (components + per_block - 1) / per_block;
  int n = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(std::max(threads, 1)), blocks));
  if (n <= 1) return 1;
  const double solo_ns = step_muladds * kNominalNsPerMulAdd;
  if (solo_ns * static_cast<double>(steps) < kMinLockstepNs) return 1;
  // the largest team the model lets pay (a smaller one may where a larger one's barrier does not)
  for (; n >= 2; --n)
    if (team_may_pay(solo_ns, components, per_block, n)) return n;
  return 1;
}

int plan_tasks(int threads, std::size_t tasks, double total_muladds) {
  const int n = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(std::max(threads, 1)), tasks));
  if (n <= 1 || total_muladds * kNominalNsPerMulAdd < kMinTasksNs) return 1;
  return n;
}

int tasks_team(int threads, std::size_t tasks, double total_muladds) {
  if (always_team()) return static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(std::max(threads, 1)), tasks));
  const int n = plan_tasks(threads, tasks, total_muladds);
  return n > 1 && cores_look_busy(now_ns()) ? 1 : n;
}

double contour_node_muladds(int moment_size, std::size_t components) {
  const double P = moment_size;
  return 4.0 * (P * P * P / 3.0 + 2.0 * P * P) * static_cast<double>(components);
}

namespace {

// After a team failed to beat one thread, lockstep runs (this one and later ones) stay alone
// until g_next_try; the back-off doubles on every failure and halves when a team pays, so in a
// loop of runs on a busy machine one run per second at most pays for a try.
constexpr std::int64_t kFirstBackoffNs = 20000000;   // 20 ms
constexpr std::int64_t kMaxBackoffNs = 1000000000;   // 1 s
std::atomic<std::int64_t> g_next_try{0};
std::atomic<std::int64_t> g_backoff{kFirstBackoffNs / 2};

std::atomic<bool> g_always_team{false};

std::mutex g_seen_mutex;
double g_seen_wall = 0.0, g_seen_cpu = 0.0;  // decayed sums
std::int64_t g_seen_at = 0;

}  // namespace

void note_lone_window(std::int64_t now, std::int64_t wall_ns, std::int64_t cpu_ns) {
  std::lock_guard<std::mutex> lock(g_seen_mutex);
  const double decay = std::exp(-static_cast<double>(std::max<std::int64_t>(now - g_seen_at, 0)) / kBusyMemoryNs);
  g_seen_wall = g_seen_wall * decay + static_cast<double>(wall_ns);
  g_seen_cpu = g_seen_cpu * decay + static_cast<double>(std::min(cpu_ns, wall_ns));
  g_seen_at = now;
}

namespace {

// (decayed wall, decayed CPU) time seen
std::pair<double, double> seen(std::int64_t now) {
  std::lock_guard<std::mutex> lock(g_seen_mutex);
  const double decay = std::exp(-static_cast<double>(std::max<std::int64_t>(now - g_seen_at, 0)) / kBusyMemoryNs);
  return {g_seen_wall * decay, g_seen_cpu * decay};
}

}  // namespace

bool cores_look_idle(std::int64_t now) {
  const auto [wall, cpu] = seen(now);
  return wall >= kMinObservedNs && cpu >= kMinOnCpu * wall;
}

bool cores_look_busy(std::int64_t now) {
  const auto [wall, cpu] = seen(now);
  return wall >= kMinObservedNs && cpu < kMinOnCpu * wall;
}

TaskWatch::TaskWatch() {
#ifdef MEMSGD_HAVE_OPENMP
  lead_ = omp_get_thread_num() == 0;
#else
  lead_ = true;
#endif
  if (lead_) {
    wall_ = now_ns();
    cpu_ = thread_cpu_ns();
  }
}

TaskWatch::~TaskWatch() {
  if (!lead_) return;
  const std::int64_t now = now_ns();
  if (now - wall_ >= kMinTaskWatchNs) note_lone_window(now, now - wall_, thread_cpu_ns() - cpu_);
}

bool always_team() { return g_always_team.load(std::memory_order_relaxed); }

bool team_allowed(std::int64_t now) { return now >= g_next_try.load(std::memory_order_relaxed); }

void team_failed(std::int64_t now) {
  const std::int64_t b = std::min<std::int64_t>(2 * g_backoff.load(std::memory_order_relaxed), kMaxBackoffNs);
  g_backoff.store(b, std::memory_order_relaxed);
  g_next_try.store(now + b, std::memory_order_relaxed);
}

void team_paid() {
  const std::int64_t b = std::max<std::int64_t>(g_backoff.load(std::memory_order_relaxed) / 2, kFirstBackoffNs / 2);
  g_backoff.store(b, std::memory_order_relaxed);
}

void note_team_size(RunControl* control, int threads) {
  if (control == nullptr) return;
  int cur = control->largest_team.load(std::memory_order_relaxed);
  while (threads > cur && !control->largest_team.compare_exchange_weak(cur, threads, std::memory_order_relaxed)) {
  }
}

void note_team_try(RunControl* control) {
  if (control != nullptr) control->team_tries.fetch_add(1, std::memory_order_relaxed);
}

void note_team_drop(RunControl* control) {
  if (control != nullptr) control->team_drops.fetch_add(1, std::memory_order_relaxed);
}

void note_team_steps(RunControl* control, std::uint64_t steps) {
  if (control != nullptr && steps != 0) control->team_steps.fetch_add(steps, std::memory_order_relaxed);
}

}  // namespace detail

ThreadPolicyState thread_policy_state() {
  const std::int64_t now = detail::now_ns();
  const auto [wall, cpu] = detail::seen(now);
  ThreadPolicyState s;
  s.seen_seconds = wall * 1e-9;
  s.on_cpu = wall > 0.0 ? cpu / wall : 0.0;
  s.cores_look_idle = detail::cores_look_idle(now);
  s.cores_look_busy = detail::cores_look_busy(now);
  s.backoff_seconds = std::max<std::int64_t>(detail::g_next_try.load(std::memory_order_relaxed) - now, 0) * 1e-9;
  return s;
}

void set_always_team(bool on) { detail::g_always_team.store(on, std::memory_order_relaxed); }

int planned_threads(ParallelWork work, int memory, std::size_t nodes, std::size_t steps, std::size_t configs,
                    int threads) {
  const int n = resolve_threads(threads);
  if (work == ParallelWork::ContourSums) {
    const int P = (memory + 1) * (memory + 2) / 2;
    return detail::plan_tasks(n, steps, static_cast<double>(steps) * detail::contour_node_muladds(P, nodes));
  }
  const double step = step_cost(memory) * static_cast<double>(nodes);
  // as evolve() does: one configuration per thread, or one after another each in lockstep
  if (configs >= 2 && static_cast<std::size_t>(n) <= configs)
    return detail::plan_tasks(n, configs, step * static_cast<double>(steps) * static_cast<double>(configs));
  return detail::plan_lockstep(n, nodes, detail::kBlockComponents, step, steps);
}

}  // namespace memsgd
