"""`memsgd curve`: the exact loss curve of a preset on a power-law problem."""
from __future__ import annotations

from .._steps import log_spaced_steps
from ..dynamics import loss_curve
from ..schedules import Schedule
from . import _common

__all__ = ["register", "run"]


def register(sub) -> None:
    p = sub.add_parser("curve", help="exact expected loss L_t of a preset on a power-law problem",
                       description="Print L_t at log-spaced t for mini-batch SGD with memory (exact engine, "
                                   "docs/math.md §3).")
    _common.add_problem_args(p)
    _common.add_algorithm_args(p)
    _common.add_noise_args(p)
    p.add_argument("--steps", type=_common.int_type("--steps", 1), default=10000,
                   help="number of steps T (e.g. 100000 or 1e5), default 10000")
    p.add_argument("--points", type=_common.int_type("--points", 2), default=20,
                   help="about this many table rows (log-spaced t, always 0 and T), default 20")
    p.add_argument("--json", action="store_true", help="machine-readable output (strict JSON: inf as null)")
    p.add_argument("--plot", metavar="FILE.png", help="write a log-log plot of the whole curve")
    _common.add_progress_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    spectrum = _common.spectrum_from_args(args)
    algo = _common.algorithm_from_args(args)
    noise = _common.noise_from_args(args)
    algo_text, problem_text, noise_text = (_common.algorithm_label(args), _common.problem_label(args),
                                           _common.noise_label(noise))
    curve = loss_curve(algo, spectrum, noise, args.steps, progress=args.progress)
    times = log_spaced_steps(args.steps, args.points)
    alpha_eff = None if isinstance(algo, Schedule) else algo.alpha_eff
    if args.json:
        _common.dump_json({
            "problem": problem_text, "algorithm": algo_text, "alpha_eff": alpha_eff,
            "batch_size": noise.batch_size, "tau1": noise.tau1, "tau2": noise.tau2,
            "t": times, "loss": curve.loss[times], "diverged_at": curve.diverged_at})
    else:
        print(f"# {problem_text}\n# {algo_text}"
              + ("" if alpha_eff is None else f"  (alpha_eff = {alpha_eff:.6g})") + f"\n# {noise_text}")
        _common.print_table(["t", "L_t"], [(int(t), f"{curve.loss[t]:.6e}") for t in times])
        if curve.diverged:
            print(f"# diverged at step {curve.diverged_at}")
    if args.plot:
        from ..plotting import plot_curves
        plot_curves({args.algo: curve.loss}, args.plot, title=f"{algo_text}, {noise_text}\n{problem_text}")
        if not args.json:
            print(f"# wrote {args.plot}")
    return 0
