// Internal: a lockstep run -- steps of which each needs every block of the step before -- on a
// team of threads, under the thread policy of thread_policy.hpp. evolve()'s single
// configurations and both passes of the adjoint run through it.
//
// A team has one barrier per step. The blocks are split in contiguous ranges; every thread
// combines the blocks' results itself (in block order, so all get the same bits and take the
// same decisions: the end of a run needs no extra barrier), and what thread 0 decides during
// step i (stop, continue alone) is published as "from step i" and read by the others after the
// barrier of step i; a thread already in step i+1 can only see i+1 or later. While thread 0
// runs alone, the others sleep at a gate and resume with thread 0's state when it reopens.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>

#ifdef MEMSGD_HAVE_OPENMP
#include <omp.h>
#endif

#include "team.hpp"
#include "thread_policy.hpp"

namespace memsgd {
namespace detail {

// What the policy needs to know of a lockstep run.
struct LockstepShape {
  std::size_t components = 0;  // split into blocks of per_block, contiguous block ranges per thread
  std::size_t per_block = 1;
  double step_muladds = 0.0;   // one step's multiply-adds on one thread (the static plan)
};

struct LockstepOptions {
  int threads = 1;                // at most this many (resolved, >= 1)
  bool adaptive = true;           // false: a team of `threads` from the first step, never given up
  // Tests: a team of `threads` from the first step that hands over to thread 0 alone every
  // `alternate_every` steps and reopens after as many (0: the policy decides).
  std::size_t alternate_every = 0;
  RunControl* control = nullptr;  // cancellation (polled by thread 0) and the policy's diagnostics
};

// Body, the computation:
//   struct Local;  copyable: what a thread carries from one step to the next (a member that
//                  resumes after thread 0 ran alone starts from thread 0's)
//   double weight(std::size_t i) const;   step i's work in plain steps (timing windows)
//   bool compute(int tid, std::size_t i, std::size_t b0, std::size_t b1, Local&);
//                  step i on blocks [b0, b1); false: cancelled
//   bool combine(int tid, std::size_t i, Local&);
//                  once every block of step i is done, in every thread (thread 0 also records);
//                  true: the run ends after step i
template <class Body>
class Lockstep {
 public:
  using Local = typename Body::Local;

  Lockstep(Body& body, std::size_t steps, const LockstepShape& shape, const LockstepOptions& opt)
      : body_(body), steps_(steps), shape_(shape), opt_(opt),
        blocks_((shape.components + shape.per_block - 1) / std::max<std::size_t>(shape.per_block, 1)) {}

  // Steps [0, steps). False when cancelled.
  bool run(Local local) {
    const int cap = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(std::max(opt_.threads, 1)),
                                                           std::max<std::size_t>(blocks_, 1)));
    adaptive_ = opt_.adaptive && opt_.alternate_every == 0 && !always_team();
    n_ = adaptive_ ? plan_lockstep(opt_.threads, shape_.components, shape_.per_block, shape_.step_muladds, steps_)
                   : cap;
    note_team_size(opt_.control, 1);
    std::size_t i = 0;
    if (n_ <= 1 || steps_ == 0) return alone(i, local, false) != Outcome::Cancelled;
    if (adaptive_) {  // alone first, timed: the team opens once it is measured to be worth a try
      const Outcome first = alone(i, local, true);
      if (first != Outcome::Switch) return first != Outcome::Cancelled;
    }
#ifdef MEMSGD_HAVE_OPENMP
    std::unique_ptr<Team> team;
    bool ok = true;
#pragma omp parallel num_threads(n_)
    {
#pragma omp single
      team = std::make_unique<Team>(omp_get_num_threads(), local);
      // (the implicit barrier of `single` publishes the team)
      const int tid = omp_get_thread_num();
      if (team->threads == 1) {
        std::size_t i1 = i;
        Local l1 = local;
        ok = alone(i1, l1, false) != Outcome::Cancelled;
      } else if (tid == 0) {
        ok = leader(*team, i, local);
      } else {
        member(*team, tid, i, local);
      }
    }
    return ok;
#else
    return alone(i, local, false) != Outcome::Cancelled;
#endif
  }

 private:
  enum class Outcome { Ended,
                       Cancelled,
                       Switch };
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

  struct Team {
    Team(int n, const Local& local) : threads(n), barrier(n), resume_local(local) {}
    int threads;
    Barrier barrier;
    std::atomic<std::int64_t> stop_from{kNever};
    // The step after which thread 0 continues alone (compared for equality: never reset).
    std::atomic<std::int64_t> solo_from{kNever};
    std::atomic<std::uint32_t> gate{0};  // members sleep here while thread 0 runs alone
    std::atomic<std::uint32_t> gate_sleepers{0};
    std::atomic<int> parked{0};          // members at (or past) the gate
    std::size_t resume_step = 0;
    Local resume_local;
    bool finished = false;
  };

  // A timing window of thread 0: wall and CPU time since `start`, work done in plain steps.
  struct Window {
    void begin(std::int64_t now) {
      start = now;
      cpu_start = thread_cpu_ns();
      weight = 0.0;
    }
    std::int64_t start = 0, cpu_start = 0;
    double weight = 0.0;
  };

  static void lower_to(std::atomic<std::int64_t>& a, std::int64_t v) {
    std::int64_t cur = a.load(std::memory_order_relaxed);
    while (v < cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
    }
  }

  bool cancelled() const { return opt_.control != nullptr && opt_.control->cancel.load(std::memory_order_relaxed); }

  void account(std::size_t i) {
    weight_done_ += body_.weight(i);
    ++steps_done_;
  }

  // After a lone window of thread 0 ending at `now` before step i: is a team worth a try?
  bool try_team(std::int64_t now, std::size_t i) const {
    if (!team_allowed(now) || !cores_look_idle(now) || steps_done_ == 0) return false;
    const double step_ns = solo_best_ * weight_done_ / static_cast<double>(steps_done_);
    if (static_cast<double>(steps_ - i) * step_ns < kMinRemainingNs) return false;
    return team_may_pay(step_ns, shape_.components, shape_.per_block, n_);
  }

  // Thread 0 alone from step i until the end, or Switch before a step where the policy (timed)
  // or the alternation opens a team; i and local then describe that step.
  Outcome alone(std::size_t& i, Local& local, bool timed) {
    Window w;
    if (timed) w.begin(now_ns());
    const std::size_t first = i;
    for (; i < steps_; ++i) {
      if (opt_.alternate_every != 0 && i - first == opt_.alternate_every) return Outcome::Switch;
      if (timed && (i & 7) == 0) {
        const std::int64_t now = now_ns();
        if (now - w.start >= kWindowNs && w.weight > 0.0) {
          const double wall = static_cast<double>(now - w.start);
          solo_best_ = std::min(solo_best_, wall / w.weight);
          note_lone_window(now, now - w.start, thread_cpu_ns() - w.cpu_start);
          if (try_team(now, i)) return Outcome::Switch;
          w.begin(now);
        }
      }
      if (!body_.compute(0, i, 0, blocks_, local) || cancelled()) return Outcome::Cancelled;
      if (timed) w.weight += body_.weight(i);
      account(i);
      if (body_.combine(0, i, local)) return Outcome::Ended;
    }
    return Outcome::Ended;
  }

  bool leader(Team& team, std::size_t i, Local local) {
    Outcome out;
    for (;;) {
      note_team_size(opt_.control, team.threads);
      note_team_try(opt_.control);
      out = in_team(team, 0, i, local);
      if (out != Outcome::Switch) break;
      note_team_drop(opt_.control);
      // the team reopens only once every member is parked: one still on its way from the step
      // where thread 0 went alone must not find the team running again
      do {
        out = alone(i, local, adaptive_);
      } while (out == Outcome::Switch && team.parked.load(std::memory_order_acquire) != team.threads - 1);
      if (out != Outcome::Switch) break;
      team.resume_step = i;  // wake the team for step i
      team.resume_local = local;
      publish_change(&team.gate, &team.gate_sleepers);
    }
    // members parked at the gate (or on their way there: a member parks after the step where
    // thread 0 went alone even when that step also ended the run) leave
    team.finished = true;
    publish_change(&team.gate, &team.gate_sleepers);
    return out != Outcome::Cancelled;
  }

  void member(Team& team, int tid, std::size_t i, Local local) {
    for (std::uint32_t opened = 0;; ++opened) {
      if (in_team(team, tid, i, local) != Outcome::Switch) return;
      team.parked.fetch_add(1, std::memory_order_acq_rel);
      // asleep while thread 0 runs alone (a short spin: waking late only delays the next try)
      wait_for_change(&team.gate, opened, &team.gate_sleepers, kGateSpinNs);
      if (team.finished) return;
      i = team.resume_step;
      local = team.resume_local;
      team.parked.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  // Steps from i on the team. Switch: thread 0 continues alone from step i.
  Outcome in_team(Team& team, int tid, std::size_t& i, Local& local) {
    const int n = team.threads;
    const std::size_t b0 = first_block(blocks_, tid, n), b1 = first_block(blocks_, tid + 1, n);
    const bool timed = tid == 0 && adaptive_;
    const std::size_t first = i;
    Window w;
    if (timed) w.begin(now_ns());
    std::uint64_t team_steps = 0;
    Outcome out = Outcome::Ended;
    for (; i < steps_; ++i) {
      if (!body_.compute(tid, i, b0, b1, local)) lower_to(team.stop_from, static_cast<std::int64_t>(i));
      if (tid == 0) {
        ++team_steps;
        account(i);
        if (cancelled()) lower_to(team.stop_from, static_cast<std::int64_t>(i));
        if (opt_.alternate_every != 0 && i + 1 - first == opt_.alternate_every)
          team.solo_from.store(static_cast<std::int64_t>(i), std::memory_order_relaxed);
        if (timed) {
          w.weight += body_.weight(i);
          const std::int64_t now = (i & 7) == 0 ? now_ns() : w.start;
          if (now - w.start >= kWindowNs) {
            // kept while it beats the best lone window by kTeamGain
            if (static_cast<double>(now - w.start) / w.weight <= kTeamGain * solo_best_) {
              team_paid();
            } else {
              team_failed(now);
              team.solo_from.store(static_cast<std::int64_t>(i), std::memory_order_relaxed);
            }
            w.begin(now);
          }
        }
      }
      team.barrier.wait();
      if (team.stop_from.load(std::memory_order_relaxed) <= static_cast<std::int64_t>(i)) {
        out = Outcome::Cancelled;
        break;
      }
      // A member that parks does not read step i's results: thread 0, alone, may overwrite them.
      const bool solo = team.solo_from.load(std::memory_order_relaxed) == static_cast<std::int64_t>(i);
      if ((tid == 0 || !solo) && body_.combine(tid, i, local)) break;
      if (solo) {
        ++i;
        out = Outcome::Switch;
        break;
      }
    }
    if (tid == 0) note_team_steps(opt_.control, team_steps);
    return out;
  }

  Body& body_;
  std::size_t steps_;
  LockstepShape shape_;
  LockstepOptions opt_;
  std::size_t blocks_;
  bool adaptive_ = true;
  int n_ = 1;
  // thread 0's measurements
  double solo_best_ = std::numeric_limits<double>::infinity();  // ns per plain step, best lone window
  double weight_done_ = 0.0;   // plain steps done, for the mean weight of a step
  std::size_t steps_done_ = 0;
};

}  // namespace detail
}  // namespace memsgd
