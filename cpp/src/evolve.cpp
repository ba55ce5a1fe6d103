#include "memsgd/evolve.hpp"

#include "memsgd/common.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#if !defined(_WIN32)
#include <unistd.h>  // sysconf
#endif

#ifdef MEMSGD_HAVE_OPENMP
#include <omp.h>
#endif

#include "engine.hpp"
#include "fork_guard.hpp"
#include "team.hpp"

namespace memsgd {
namespace {

using detail::Engine;
using detail::ordered_sum;

// -- one configuration on a team of threads ---------------------------------------------------

double divergence_limit(DivergenceRule rule, double L0) {
  return (rule == DivergenceRule::Relative && L0 > 0.0 && std::isfinite(L0)) ? kDivergenceFactor * L0 : kInf;
}

bool is_diverged(double L, double l, double limit) { return !(std::isfinite(L) && std::isfinite(l)) || L > limit; }

// Writes the recorded steps of one configuration; from a divergence on, +inf.
class Recorder {
 public:
  Recorder(const Recording& rec, std::size_t steps, double* loss, double* gp)
      : rec_(rec), steps_(steps), loss_(loss), gp_(gp) {}

  void write(std::size_t s, double L, double l) {
    if (rec_.steps == nullptr) {
      loss_[s] = L;
      if (gp_ != nullptr) gp_[s] = l;
      return;
    }
    while (next_ < rec_.count && static_cast<std::size_t>(rec_.steps[next_]) == s) {
      loss_[next_] = L;
      if (gp_ != nullptr) gp_[next_] = l;
      ++next_;
    }
  }

  void diverge_at(std::size_t s) {
    diverged_at_ = static_cast<std::int64_t>(s);
    if (rec_.steps == nullptr) {
      std::fill(loss_ + s, loss_ + steps_ + 1, kInf);
      if (gp_ != nullptr) std::fill(gp_ + s, gp_ + steps_ + 1, kInf);
      return;
    }
    for (; next_ < rec_.count; ++next_) {
      loss_[next_] = kInf;
      if (gp_ != nullptr) gp_[next_] = kInf;
    }
  }

  std::int64_t diverged_at() const { return diverged_at_; }

 private:
  Recording rec_;
  std::size_t steps_;
  double* loss_;
  double* gp_;
  std::size_t next_ = 0;
  std::int64_t diverged_at_ = -1;
};

// Shared by the threads of one run. One barrier per step: the partial sums are double-buffered
// by the parity of the step, every thread adds them up itself (in block order, so all get the
// same bits and take the same divergence decision), and what thread 0 decides during step t
// (stop, continue alone) is published as "from step t" and read by the others after the
// barrier of step t; a thread already in step t+1 can only publish t+1 or later.
//
// Adaptive thread count: a run starts alone and opens the team only after 2 ms (a short run
// never pays for waking threads). Thread 0 then compares, over windows of about 2 ms, the wall
// time per step with what one thread alone would need (all blocks at the fastest member's time
// per block). When the team does not beat that by 15% (steps too small, or a core shared with
// another process), thread 0 continues alone and the others sleep; the team is tried again after
// a process-wide back-off (see g_team_next_try).
struct Team {
  Team(int n, std::size_t blocks, bool spin_only)
      : threads(n), barrier(n, spin_only), part_loss(2 * blocks), part_gp(2 * blocks), timing(static_cast<std::size_t>(n)) {}

  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
  int threads;
  detail::Barrier barrier;
  std::vector<double> part_loss, part_gp;  // [parity * blocks + block]
  std::atomic<std::int64_t> stop_from{kNever};
  std::atomic<std::int64_t> solo_from{kNever};
  // the gate where members sleep while thread 0 runs alone
  std::atomic<std::uint32_t> gate{0};
  std::atomic<std::uint32_t> gate_sleepers{0};
  std::size_t resume_step = 0;
  double resume_gp = 0.0;
  bool finished = false;
  struct alignas(64) Timing {
    std::atomic<std::int64_t> compute_ns{0};
    std::atomic<std::int64_t> samples{0};
  };
  std::vector<Timing> timing;
};

// Process-wide memory of whether teams pay: after a team failed to beat one thread, runs (this
// one and later ones) stay alone until g_team_next_try, the back-off doubling on every failure
// (20 ms .. 1 s) and resetting when a team pays. In a loop of runs on a busy machine, one run per
// back-off period pays for trying a team.
constexpr std::int64_t kFirstBackoffNs = 20000000;   // 20 ms
constexpr std::int64_t kMaxBackoffNs = 1000000000;   // 1 s
std::atomic<std::int64_t> g_team_next_try{0};
std::atomic<std::int64_t> g_team_backoff{kFirstBackoffNs};

void team_failed() {
  const std::int64_t b = std::min<std::int64_t>(2 * g_team_backoff.load(std::memory_order_relaxed), kMaxBackoffNs);
  g_team_backoff.store(b, std::memory_order_relaxed);
  g_team_next_try.store(detail::now_ns() + b, std::memory_order_relaxed);
}

void team_paid() {
  g_team_backoff.store(kFirstBackoffNs / 2, std::memory_order_relaxed);
  g_team_next_try.store(0, std::memory_order_relaxed);
}

void lower_to(std::atomic<std::int64_t>& a, std::int64_t v) {
  std::int64_t cur = a.load(std::memory_order_relaxed);
  while (v < cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

class ConfigRun {
 public:
  ConfigRun(Engine& engine, std::size_t steps, Recorder& recorder, const RunOptions& opt, bool report_steps)
      : engine_(engine), steps_(steps), recorder_(recorder), opt_(opt), report_steps_(report_steps),
        blocks_(engine.blocks()), gp_is_loss_(engine.gp_is_loss()) {}

  // Runs to the end on up to `threads` threads. Returns false when cancelled.
  bool run(int threads) {
    std::vector<double> p0(blocks_), p1(blocks_);
    engine_.initial_sums(p0.data(), p1.data());
    const double L0 = ordered_sum(p0.data(), blocks_);
    const double l0 = gp_is_loss_ ? L0 : ordered_sum(p1.data(), blocks_);
    limit_ = divergence_limit(opt_.rule, L0);
    if (is_diverged(L0, l0, limit_)) {
      recorder_.diverge_at(0);
      return true;
    }
    recorder_.write(0, L0, l0);
    if (steps_ == 0) return true;
    threads = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(std::max(threads, 1)), blocks_));
    std::size_t t = 0;
    double l = l0;
    if (threads <= 1) return alone(t, l, 0) != Outcome::Cancelled;
    // Start alone: a run that ends within the warm-up (or before the back-off of a team that did
    // not pay expires) never pays for starting one.
    const Outcome warm =
        opt_.adaptive_threads
            ? alone(t, l, std::max(detail::now_ns() + kWarmupNs, g_team_next_try.load(std::memory_order_relaxed)))
            : Outcome::Switch;
    if (warm != Outcome::Switch) return warm != Outcome::Cancelled;
#ifdef MEMSGD_HAVE_OPENMP
    std::unique_ptr<Team> team;
    bool ok = true;
#pragma omp parallel num_threads(threads)
    {
#pragma omp single
      team = std::make_unique<Team>(omp_get_num_threads(), blocks_, opt_.spin_only);
      // (the implicit barrier of `single` publishes the team)
      const int tid = omp_get_thread_num();
      if (team->threads == 1) {
        std::size_t t1 = t;
        double l1 = l;
        ok = alone(t1, l1, 0) != Outcome::Cancelled;
      } else if (tid == 0) {
        ok = leader(*team, t, l);
      } else {
        member(*team, tid, t, l);
      }
    }
    return ok;
#else
    return alone(t, l, 0) != Outcome::Cancelled;
#endif
  }

 private:
  enum class Outcome { Ended, Cancelled, Switch };

  void my_blocks(int tid, int n, std::size_t& b0, std::size_t& b1) const {
    b0 = blocks_ * static_cast<std::size_t>(tid) / static_cast<std::size_t>(n);
    b1 = blocks_ * static_cast<std::size_t>(tid + 1) / static_cast<std::size_t>(n);
  }

  const std::atomic<bool>* cancel_flag() const { return opt_.control != nullptr ? &opt_.control->cancel : nullptr; }
  bool cancelled() const { return opt_.control != nullptr && opt_.control->cancel.load(std::memory_order_relaxed); }

  // Thread 0's bookkeeping after step t produced (L, l) = (L_{t+1}, l_{t+1}). True when the run is over.
  bool after_step(std::size_t t, double L, double l) {
    if (report_steps_ && opt_.control != nullptr) opt_.control->steps_done.store(t + 1, std::memory_order_relaxed);
    if (is_diverged(L, l, limit_)) {
      recorder_.diverge_at(t + 1);
      return true;
    }
    recorder_.write(t + 1, L, l);
    return false;
  }

  // Thread 0 alone from step t (l = l_t) until the end, or Switch once the clock passes
  // `until_ns` (0: never); t and l then describe the next step.
  Outcome alone(std::size_t& t, double& l, std::int64_t until_ns) {
    std::vector<double> pl(blocks_), pg(blocks_);
    for (; t < steps_; ++t) {
      if (until_ns != 0 && (t & 7) == 0 && detail::now_ns() >= until_ns) return Outcome::Switch;
      if (!engine_.step(0, t, l, 0, blocks_, pl.data(), pg.data(), cancel_flag()) || cancelled())
        return Outcome::Cancelled;
      const double L = ordered_sum(pl.data(), blocks_);
      l = gp_is_loss_ ? L : ordered_sum(pg.data(), blocks_);
      if (after_step(t, L, l)) return Outcome::Ended;
    }
    return Outcome::Ended;
  }

  bool leader(Team& team, std::size_t t, double l) {
    for (;;) {
      Outcome out = in_team(team, 0, t, l);
      if (out == Outcome::Switch) {
        out = alone(t, l, g_team_next_try.load(std::memory_order_relaxed));
        if (out == Outcome::Switch) {  // wake the team for step t
          team.resume_step = t;
          team.resume_gp = l;
          team.solo_from.store(Team::kNever, std::memory_order_relaxed);
          detail::publish_change(&team.gate, &team.gate_sleepers);
          continue;
        }
        team.finished = true;
        detail::publish_change(&team.gate, &team.gate_sleepers);
      }
      return out != Outcome::Cancelled;
    }
  }

  void member(Team& team, int tid, std::size_t t, double l) {
    for (std::uint32_t parked = 0;; ++parked) {
      if (in_team(team, tid, t, l) != Outcome::Switch) return;
      // asleep while thread 0 runs alone (a short spin: waking late only delays the next try)
      detail::wait_for_change(&team.gate, parked, &team.gate_sleepers, false, detail::kGateSpinNs);
      if (team.finished) return;
      t = team.resume_step;
      l = team.resume_gp;
    }
  }

  // Steps from t on the team. Switch: thread 0 continues alone from step t (l = l_t).
  Outcome in_team(Team& team, int tid, std::size_t& t, double& l) {
    const int n = team.threads;
    std::size_t b0, b1;
    my_blocks(tid, n, b0, b1);
    const bool adaptive = opt_.adaptive_threads;
    std::int64_t window_start = 0;
    std::size_t window_steps = 0;
    if (tid == 0 && adaptive) {
      window_start = detail::now_ns();
      reset_timing(team);
    }
    for (; t < steps_; ++t) {
      const std::size_t parity = t & 1;
      double* pl = team.part_loss.data() + parity * blocks_;
      double* pg = team.part_gp.data() + parity * blocks_;
      const bool sample = adaptive && (t & 1) == 0;
      const std::int64_t c0 = sample ? detail::now_ns() : 0;
      if (!engine_.step(tid, t, l, b0, b1, pl, pg, cancel_flag())) lower_to(team.stop_from, static_cast<std::int64_t>(t));
      if (sample) {
        auto& tm = team.timing[static_cast<std::size_t>(tid)];
        tm.compute_ns.fetch_add(detail::now_ns() - c0, std::memory_order_relaxed);
        tm.samples.fetch_add(1, std::memory_order_relaxed);
      }
      if (tid == 0) {
        if (cancelled()) lower_to(team.stop_from, static_cast<std::int64_t>(t));
        if (adaptive && ++window_steps >= 2) {
          const std::int64_t now = detail::now_ns();
          if (now - window_start >= kWindowNs) {
            if (team_pays(team, now - window_start, window_steps)) {
              team_paid();
            } else {
              team_failed();
              team.solo_from.store(static_cast<std::int64_t>(t), std::memory_order_relaxed);
            }
            window_start = now;
            window_steps = 0;
            reset_timing(team);
          }
        }
      }
      team.barrier.wait();
      const double L = ordered_sum(pl, blocks_);
      l = gp_is_loss_ ? L : ordered_sum(pg, blocks_);
      if (team.stop_from.load(std::memory_order_relaxed) <= static_cast<std::int64_t>(t)) return Outcome::Cancelled;
      const bool over = tid == 0 ? after_step(t, L, l) : is_diverged(L, l, limit_);
      if (over) return Outcome::Ended;
      if (team.solo_from.load(std::memory_order_relaxed) <= static_cast<std::int64_t>(t)) {
        ++t;
        return Outcome::Switch;
      }
    }
    return Outcome::Ended;
  }

  static void reset_timing(Team& team) {
    for (auto& tm : team.timing) {
      tm.compute_ns.store(0, std::memory_order_relaxed);
      tm.samples.store(0, std::memory_order_relaxed);
    }
  }

  bool team_pays(const Team& team, std::int64_t wall_ns, std::size_t steps) const {
    double best = kInf;  // the fastest member's ns per block
    for (int i = 0; i < team.threads; ++i) {
      const auto& tm = team.timing[static_cast<std::size_t>(i)];
      const std::int64_t ns = tm.compute_ns.load(std::memory_order_relaxed);
      const std::int64_t samples = tm.samples.load(std::memory_order_relaxed);
      std::size_t b0, b1;
      my_blocks(i, team.threads, b0, b1);
      if (samples == 0) return false;  // a member that timed no step in the window is stalled
      if (b1 == b0) continue;
      best = std::min(best, static_cast<double>(ns) / static_cast<double>(samples) / static_cast<double>(b1 - b0));
    }
    if (!std::isfinite(best)) return true;
    const double alone = best * static_cast<double>(blocks_);
    const double per_step = static_cast<double>(wall_ns) / static_cast<double>(steps);
    return per_step < 0.85 * alone;
  }

  static constexpr std::int64_t kWarmupNs = 2000000;          // 2 ms alone before any team
  static constexpr std::int64_t kWindowNs = 2000000;          // 2 ms

  Engine& engine_;
  std::size_t steps_;
  Recorder& recorder_;
  const RunOptions& opt_;
  bool report_steps_;
  std::size_t blocks_;
  bool gp_is_loss_;
  double limit_ = kInf;
};

}  // namespace

namespace detail {

void validate_configuration(const Configuration& c, std::size_t i, std::size_t count, std::size_t steps) {
  const std::string where = count > 1 ? " (configuration " + std::to_string(i) + ")" : "";
  require(c.nodes.count > 0, "spectrum must have at least one node" + where);
  require(c.nodes.eigenvalue && c.nodes.weight && c.nodes.scale, "spectrum arrays must be given" + where);
  if (c.nodes.decay_scale != nullptr)
    for (std::size_t k = 0; k < c.nodes.count; ++k)
      require(std::isfinite(c.nodes.decay_scale[k]) && c.nodes.decay_scale[k] > 0.0,
              "decay scale must be finite and > 0" + where);
  require(c.algorithm.memory >= 0, "memory must be >= 0" + where);
  require(c.algorithm.steps_stored >= 1, "algorithm parameters need at least one row" + where);
  require(c.algorithm.steps_stored == 1 || c.algorithm.steps_stored >= steps,
          "schedule has " + std::to_string(c.algorithm.steps_stored) + " rows of parameters, fewer than steps = " +
              std::to_string(steps) + where);
  require(c.algorithm.alpha != nullptr && (c.algorithm.memory == 0 || (c.algorithm.b && c.algorithm.c &&
                                                                          c.algorithm.D && c.algorithm.e)),
          "algorithm parameter arrays must be given" + where);
  if (c.algorithm.weight_decay != nullptr)
    for (std::size_t t = 0; t < c.algorithm.steps_stored; ++t)
      require(std::isfinite(c.algorithm.weight_decay[t]) && c.algorithm.weight_decay[t] >= 0.0,
              "weight decay must be finite and >= 0" + where);
  require(c.noise.steps_stored >= 1 && c.noise.coupling && c.noise.self_noise,
          "noise arrays must have at least one entry" + where);
  if (c.noise.label != nullptr)
    for (std::size_t t = 0; t < c.noise.steps_stored; ++t)
      require(std::isfinite(c.noise.label[t]) && c.noise.label[t] >= 0.0,
              "label noise must be finite and >= 0" + where);
  require(c.noise.steps_stored == 1 || c.noise.steps_stored >= steps,
          "per-step noise has " + std::to_string(c.noise.steps_stored) + " entries, fewer than steps = " +
              std::to_string(steps) + where);
}

bool run_configuration(Engine& engine, std::size_t steps, const Recording& recording, const RunOptions& options,
                       int threads, bool report_steps, double* loss, double* gp, std::int64_t& diverged_at) {
  Recorder recorder(recording, steps, loss, gp);
  ConfigRun run(engine, steps, recorder, options, report_steps);
  const bool ok = run.run(threads);
  diverged_at = recorder.diverged_at();
  return ok;
}

}  // namespace detail

void evolve(const Configuration* configs, std::size_t count, std::size_t steps, const Recording& recording,
            const RunOptions& options, const Outputs& outputs) {
  require(outputs.loss != nullptr && outputs.diverged_at != nullptr, "outputs must be given");
  for (std::size_t i = 0; i < count; ++i) detail::validate_configuration(configs[i], i, count, steps);
  if (recording.steps != nullptr) {
    for (std::size_t r = 0; r < recording.count; ++r) {
      require(recording.steps[r] >= 0 && static_cast<std::size_t>(recording.steps[r]) <= steps,
              "record steps must lie within [0, steps]");
      require(r == 0 || recording.steps[r] > recording.steps[r - 1], "record steps must be strictly increasing");
    }
  }
  const std::size_t R = recording.steps != nullptr ? recording.count : steps + 1;
  const int threads = resolve_threads(options.threads);

  auto run_one = [&](std::size_t i, int team_threads, bool report_steps) -> bool {
    auto engine = detail::make_engine(configs[i], options.initial, team_threads);
    return detail::run_configuration(*engine, steps, recording, options, team_threads, report_steps,
                                     outputs.loss + i * R,
                                     outputs.gradient_point_loss ? outputs.gradient_point_loss + i * R : nullptr,
                                     outputs.diverged_at[i]);
  };

  bool cancelled = false;
  if (count == 1 || static_cast<std::size_t>(threads) > count || threads == 1) {
    for (std::size_t i = 0; i < count && !cancelled; ++i) {
      cancelled = !run_one(i, threads, count == 1);
      if (!cancelled && options.control != nullptr) options.control->configs_done.fetch_add(1, std::memory_order_relaxed);
    }
  } else {
#ifdef MEMSGD_HAVE_OPENMP
    // the most expensive configurations first, so that the last ones to finish are short
    std::vector<std::size_t> order(count);
    for (std::size_t i = 0; i < count; ++i) order[i] = i;
    auto cost = [&](std::size_t i) {
      return step_cost(configs[i].algorithm.memory) * static_cast<double>(configs[i].nodes.count);
    };
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cost(a) > cost(b); });
    std::exception_ptr error;
    std::atomic<bool> stop{false};
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (std::int64_t n = 0; n < static_cast<std::int64_t>(count); ++n) {
      if (stop.load(std::memory_order_relaxed)) continue;
      try {
        if (!run_one(order[static_cast<std::size_t>(n)], 1, false))
          stop.store(true);
        else if (options.control != nullptr)
          options.control->configs_done.fetch_add(1, std::memory_order_relaxed);
      } catch (...) {
#pragma omp critical(memsgd_evolve_error)
        if (!error) error = std::current_exception();
        stop.store(true);
      }
    }
    if (error) std::rethrow_exception(error);
#endif
  }
  if (cancelled || (options.control != nullptr && options.control->cancel.load())) throw Cancelled{};
}

double step_cost(int memory) {
  const double N = memory + 1.0, P = N * (N + 1.0) / 2.0;
  if (memory <= kernels::kMaxFixedMemory) return P * N + 4.0 * N + P + 3.0;
  const double M = memory;
  return M * M * M + 0.5 * M * M * (M + 1.0) + 8.0 * N * N;
}

double state_bytes(int memory, std::size_t nodes, std::size_t count, int threads, bool weight_decay) {
  const double N = memory + 1.0, K = static_cast<double>(nodes);
  const double live = std::min<double>(static_cast<double>(count), std::max(threads, 1));
  const double affine = weight_decay ? 1.0 : 0.0;  // c2, kappa, mu and q per component
  double per_config;
  if (memory <= kernels::kMaxFixedMemory) {
    constexpr double kLanes = kernels::kLanes;
    per_config = 8.0 * (std::ceil(K / kLanes) * kLanes) * (2.0 + N * (N + 1.0) / 2.0 + affine * (3.0 + N));
  } else {
    per_config = 8.0 * K * (N * N + 1.0 + affine * N) + 8.0 * std::max(threads, 1) * (3.0 * N * N + (6.0 + affine) * N);
  }
  return live * per_config + 64.0 * K / detail::kBlockComponents * std::max(threads, 1);
}

double physical_memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return static_cast<double>(pages) * static_cast<double>(page);
#endif
  return 0.0;
}

void require_memory(double output_bytes, int memory, std::size_t nodes, std::size_t count, int threads,
                    bool weight_decay) {
  const double state = state_bytes(memory, nodes, count, resolve_threads(threads), weight_decay);
  const double need = output_bytes + state, phys = physical_memory_bytes();
  if (phys > 0 && need > phys) {
    auto gb = [](double b) { return std::to_string(b / 1e9).substr(0, 6) + " GB"; };
    throw std::length_error("steps too large: the run needs " + gb(need) + " (outputs " + gb(output_bytes) +
                            ", state " + gb(state) + "), more than this machine's physical memory (" + gb(phys) + ")");
  }
}

int thread_limit() {
#ifdef MEMSGD_HAVE_OPENMP
  return 4 * std::max(omp_get_num_procs(), 1);
#else
  return 1;
#endif
}

int max_threads() {
#ifdef MEMSGD_HAVE_OPENMP
  return std::min(omp_get_max_threads(), thread_limit());
#else
  return 1;
#endif
}

int resolve_threads(int requested) {
#ifdef MEMSGD_HAVE_OPENMP
  // a child forked after this process started OpenMP threads cannot start any (fork_guard.hpp)
  if (detail::forked_after_threads()) return 1;
  const int threads = requested > 0 ? std::min(requested, thread_limit()) : max_threads();
  if (threads > 1) detail::note_thread_team();
  return threads;
#else
  (void)requested;
  return 1;
#endif
}

}  // namespace memsgd
