// Internal: the one thread policy of the core -- how many threads a run uses, and when a team
// of threads is given up for one thread. Every parallel driver asks here: the lockstep runs
// (one barrier per step: evolve()'s single configurations, the adjoint's forward and backward
// passes; lockstep.hpp) and the runs of independent tasks (evolve()'s configuration-parallel
// batches, the long-horizon contour nodes). docs/engine.md, "Threads", says it for users.
//
// The cost model. A lockstep step costs one thread s (ns); a team of n threads costs
//     share(n) s + kBarrierNs,
// share(n) = the largest member's fraction of the components (blocks are split in contiguous
// ranges, the last block may be short). A team is worth trying only when that is at most
// kTeamGain s. Before a run, s is nominal: the step's multiply-adds times kNominalNsPerMulAdd,
// about an AVX2 core's rate (slower than the AVX-512 kernels, so that there this static plan
// errs toward allowing a team); a run shorter than kMinLockstepNs (nominal) never opens one. During the run, s is
// measured: the run starts alone and times windows of kWindowNs; after each window it opens a
// team only when
//   - the model says so with the measured s,
//   - lone threads were on a CPU for at least kMinOnCpu of the wall time of the last ~100 ms of
//     windows of this process (when they were not, the machine has no idle core and a second
//     thread would only queue behind others; cores_look_idle),
//   - at least kMinRemainingNs of work is left, and the process-wide back-off has expired.
// A team is timed over windows too and kept only while it beats the best measured lone window
// by kTeamGain; otherwise the run continues alone and later tries wait for a back-off that
// doubles (20 ms .. 1 s, halved when a team pays). Results never depend on any of this.
//
// Independent tasks need no barrier: a team pays unless the whole run is too short to pay for
// starting threads (kMinTasksNs, nominal) or the cores look busy (measured as above, where there
// are measurements: a team's end waits for its slowest member, and on a busy machine that is
// one that waits for a CPU). Thread 0's time at work on tasks counts as a lone window.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "memsgd/evolve.hpp"
#include "team.hpp"  // now_ns

namespace memsgd {
namespace detail {

// static plans only: about an AVX2 core (AVX-512 kernels do ~0.03, the x86-64 baseline ~0.2)
inline constexpr double kNominalNsPerMulAdd = 0.1;
// one step's hand-over between cores, optimistic (2 threads doing 2.1e9 component-steps/s at
// K = 4e3 on an AMD EPYC VM put it near 0.7 us): the timing windows have the last word
inline constexpr double kBarrierNs = 500.0;
inline constexpr double kTeamGain = 0.85;                 // a team must be 15% faster than one thread
inline constexpr std::int64_t kWindowNs = 2000000;        // 2 ms timing windows
inline constexpr double kMinRemainingNs = 4.0 * kWindowNs;  // try a team only with this much left
inline constexpr double kMinLockstepNs = 10e6;            // nominal: shorter lockstep runs stay alone
inline constexpr double kMinTasksNs = 1e6;                // nominal: smaller task sets stay alone
inline constexpr double kMinOnCpu = 0.9;                  // lone thread's CPU time / wall time

// CPU time of the calling thread; where no such clock exists, the wall clock (the thread then
// counts as always on a CPU: teams are judged by their timing windows alone).
std::int64_t thread_cpu_ns();

// The largest member's fraction of `components` when `blocks` blocks of `per_block` components
// are split in contiguous ranges over n threads (the split of lockstep.hpp).
double largest_share(std::size_t components, std::size_t per_block, int n);
inline std::size_t first_block(std::size_t blocks, int tid, int n) {
  return blocks * static_cast<std::size_t>(tid) / static_cast<std::size_t>(n);
}

// The cost model: a team of n pays over a lone thread that takes solo_ns per step.
bool team_may_pay(double solo_ns, std::size_t components, std::size_t per_block, int n);

// The most threads a lockstep run may use (it starts alone and measures before it opens a
// team): 1 when the static model says no team can pay, else min(threads, blocks).
// `threads` is resolved (>= 1); `step_muladds` the multiply-adds of one step on one thread.
int plan_lockstep(int threads, std::size_t components, std::size_t per_block, double step_muladds,
                  std::size_t steps);

// Threads for `tasks` independent tasks of `total_muladds` multiply-adds together: the static
// plan, and what a run uses (the plan, or one thread where the cores look busy).
int plan_tasks(int threads, std::size_t tasks, double total_muladds);
int tasks_team(int threads, std::size_t tasks, double total_muladds);

// Multiply-adds of one contour node of generating_sums(): K complex P x P solves, 2 right-hand sides.
double contour_node_muladds(int moment_size, std::size_t components);

// What the lone threads of lockstep runs saw of the machine, process-wide: CPU time over wall
// time of their timing windows, both decaying with a time constant of kBusyMemoryNs. Cores look
// idle when at least kMinObservedNs (decayed) were seen, at least kMinOnCpu of it on a CPU: a
// thread that waits for a CPU itself leaves no idle core for a second one.
inline constexpr double kBusyMemoryNs = 100e6;
inline constexpr double kMinObservedNs = 10e6;
inline constexpr std::int64_t kMinTaskWatchNs = 100000;  // shorter task loops are not noted
void note_lone_window(std::int64_t now, std::int64_t wall_ns, std::int64_t cpu_ns);
bool cores_look_idle(std::int64_t now);
bool cores_look_busy(std::int64_t now);  // measured so (no measurements: not busy)

// Thread 0's time at work in a region of independent tasks (or a lone loop over them), from
// construction to destruction: a lone window for note_lone_window. Other threads: nothing.
class TaskWatch {
 public:
  TaskWatch();
  ~TaskWatch();
  TaskWatch(const TaskWatch&) = delete;
  TaskWatch& operator=(const TaskWatch&) = delete;

 private:
  bool lead_;
  std::int64_t wall_ = 0, cpu_ = 0;
};

// memsgd::set_always_team (tests): teams from the first step, never given up.
bool always_team();

// Process-wide back-off between tries of a lockstep team.
bool team_allowed(std::int64_t now);
void team_failed(std::int64_t now);
void team_paid();

// Diagnostics in a RunControl (nullptr: none).
void note_team_size(RunControl* control, int threads);
void note_team_try(RunControl* control);
void note_team_drop(RunControl* control);
void note_team_steps(RunControl* control, std::uint64_t steps);

}  // namespace detail
}  // namespace memsgd
