#include "memsgd/evolve.hpp"

#include "memsgd/common.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <optional>
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
#include "lockstep.hpp"
#include "thread_policy.hpp"

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

// One configuration as a lockstep computation (lockstep.hpp): step t on a range of blocks, the
// partial sums double-buffered by the parity of the step; every thread adds them up itself (in
// block order) and so knows l_t and whether the run diverged.
class ConfigRun {
 public:
  struct Local {
    double l = 0.0;  // l_t, the gradient-point loss that drives step t
  };

  ConfigRun(Engine& engine, std::size_t steps, Recorder& recorder, const RunOptions& opt, bool report_steps)
      : engine_(engine), steps_(steps), recorder_(recorder), opt_(opt), report_steps_(report_steps),
        blocks_(engine.blocks()), gp_is_loss_(engine.gp_is_loss()), part_loss_(2 * blocks_), part_gp_(2 * blocks_) {}

  // Runs to the end on up to `threads` threads (the thread policy decides). Returns false when
  // cancelled. `step_muladds`: one step's multiply-adds (the policy's cost model).
  bool run(int threads, std::size_t components, double step_muladds) {
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
    detail::LockstepOptions lo;
    lo.threads = std::max(threads, 1);
    lo.adaptive = opt_.adaptive_threads;
    lo.alternate_every = opt_.alternate_every;
    lo.control = opt_.control;
    detail::Lockstep<ConfigRun> lockstep(*this, steps_, {components, detail::kBlockComponents, step_muladds}, lo);
    return lockstep.run(Local{l0});
  }

  // -- the lockstep body --
  double weight(std::size_t) const { return 1.0; }

  bool compute(int tid, std::size_t t, std::size_t b0, std::size_t b1, Local& local) {
    const std::size_t off = (t & 1) * blocks_;
    return engine_.step(tid, t, local.l, b0, b1, part_loss_.data() + off, part_gp_.data() + off, cancel_flag());
  }

  bool combine(int tid, std::size_t t, Local& local) {
    const std::size_t off = (t & 1) * blocks_;
    const double L = ordered_sum(part_loss_.data() + off, blocks_);
    local.l = gp_is_loss_ ? L : ordered_sum(part_gp_.data() + off, blocks_);
    return tid == 0 ? after_step(t, L, local.l) : is_diverged(L, local.l, limit_);
  }

 private:
  const std::atomic<bool>* cancel_flag() const { return opt_.control != nullptr ? &opt_.control->cancel : nullptr; }

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

  Engine& engine_;
  std::size_t steps_;
  Recorder& recorder_;
  const RunOptions& opt_;
  bool report_steps_;
  std::size_t blocks_;
  bool gp_is_loss_;
  std::vector<double> part_loss_, part_gp_;  // [parity * blocks + block]
  double limit_ = kInf;
};

}  // namespace

namespace detail {

void validate_configuration(const Configuration& c, std::size_t i, std::size_t count, std::size_t steps) {
  const std::string where = count > 1 ? " (configuration " + std::to_string(i) + ")" : "";
  require(c.nodes.count > 0, "spectrum must have at least one node" + where);
  require(c.nodes.eigenvalue && c.nodes.weight && c.nodes.scale, "spectrum arrays must be given" + where);
  const auto finite_positive = [](double x) { return std::isfinite(x) && x > 0.0; };
  const auto finite_nonnegative = [](double x) { return std::isfinite(x) && x >= 0.0; };
  if (c.nodes.decay_scale != nullptr)
    require(all_of(c.nodes.decay_scale, c.nodes.count, finite_positive), "decay scale must be finite and > 0" + where);
  require(c.algorithm.memory >= 0, "memory must be >= 0" + where);
  require(c.algorithm.steps_stored >= 1, "algorithm parameters need at least one row" + where);
  require(c.algorithm.steps_stored == 1 || c.algorithm.steps_stored >= steps,
          "schedule has " + std::to_string(c.algorithm.steps_stored) + " rows of parameters, fewer than steps = " +
              std::to_string(steps) + where);
  require(c.algorithm.alpha != nullptr && (c.algorithm.memory == 0 || (c.algorithm.b && c.algorithm.c &&
                                                                       c.algorithm.D && c.algorithm.e)),
          "algorithm parameter arrays must be given" + where);
  if (c.algorithm.weight_decay != nullptr)
    require(all_of(c.algorithm.weight_decay, c.algorithm.steps_stored, finite_nonnegative),
            "weight decay must be finite and >= 0" + where);
  require(c.noise.steps_stored >= 1 && c.noise.coupling && c.noise.self_noise,
          "noise arrays must have at least one entry" + where);
  if (c.noise.label != nullptr)
    require(all_of(c.noise.label, c.noise.steps_stored, finite_nonnegative), "label noise must be finite and >= 0" + where);
  require(c.noise.steps_stored == 1 || c.noise.steps_stored >= steps,
          "per-step noise has " + std::to_string(c.noise.steps_stored) + " entries, fewer than steps = " +
              std::to_string(steps) + where);
}

double step_muladds(const Configuration& config) {
  return step_cost(config.algorithm.memory) * static_cast<double>(config.nodes.count);
}

bool run_configuration(Engine& engine, const Configuration& config, std::size_t steps, const Recording& recording,
                       const RunOptions& options, int threads, bool report_steps, double* loss, double* gp,
                       std::int64_t& diverged_at) {
  Recorder recorder(recording, steps, loss, gp);
  ConfigRun run(engine, steps, recorder, options, report_steps);
  const bool ok = run.run(threads, config.nodes.count, step_muladds(config));
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
    return detail::run_configuration(*engine, configs[i], steps, recording, options, team_threads, report_steps,
                                     outputs.loss + i * R,
                                     outputs.gradient_point_loss ? outputs.gradient_point_loss + i * R : nullptr,
                                     outputs.diverged_at[i]);
  };

  // As many configurations as threads: one per thread, no synchronisation (unless all of them
  // together are too little work to pay for starting threads); fewer: one after another, each a
  // lockstep run on up to `threads` threads.
  double work = 0.0;
  for (std::size_t i = 0; i < count; ++i) work += detail::step_muladds(configs[i]) * static_cast<double>(steps);
  const int parallel = static_cast<std::size_t>(threads) > count ? 1 : detail::tasks_team(threads, count, work);
  bool cancelled = false;
  if (parallel <= 1) {
    const int team = count == 1 || static_cast<std::size_t>(threads) > count ? threads : 1;
    std::optional<detail::TaskWatch> watch;  // configurations one after another on this thread
    if (team == 1 && count > 1) watch.emplace();
    for (std::size_t i = 0; i < count && !cancelled; ++i) {
      cancelled = !run_one(i, team, count == 1);
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
#pragma omp parallel num_threads(parallel)
    {
      const detail::TaskWatch watch;
      if (omp_get_thread_num() == 0) detail::note_team_size(options.control, omp_get_num_threads());
#pragma omp for schedule(dynamic, 1) nowait
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
