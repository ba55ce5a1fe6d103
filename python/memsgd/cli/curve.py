"""`memsgd curve`: the exact loss curve of a preset on a power-law problem.

Short runs use the step-by-step engine (every step); long runs of stationary presets use
[`memsgd.loss_at`][memsgd.loss_at] (the same exact losses at the log-spaced table steps only, at a cost that
does not grow with --steps). The choice is ``_choose_method``'s (docs/cli.md).
"""
from __future__ import annotations

import math

import numpy as np

from .. import _method
from .._steps import log_spaced_steps
from ..dynamics import loss_curve
from ..long_horizon import MAX_STEP, loss_at, supports_loss_at
from ..schedules import Schedule
from . import _common

__all__ = ["register", "run"]

# "auto" also uses loss_at beyond this many steps whatever the work: the engine keeps every step
# of the curve (16 bytes each; 160 MB here).
AUTO_STEPS = 10 ** 7
# A schedule (engine only) is refused under "auto" beyond this many scalar updates (100x the
# auto threshold: several minutes on two cores) or steps (1.6 GB of losses); --method engine
# runs it anyway.
SCHEDULE_MAX_WORK = _common.LONG_WORK
SCHEDULE_MAX_STEPS = 10 ** 8
# With --plot the loss_at path evaluates at least this many log-spaced steps, so that the
# figure is a smooth curve however few table rows --points asks for.
PLOT_POINTS = 200


def register(sub) -> None:
    p = sub.add_parser("curve", help="exact expected loss L_t of a preset on a power-law problem",
                       description="Print L_t at log-spaced t for mini-batch SGD with memory: the exact "
                                   "engine (docs/math.md §3) step by step, or, for long runs of stationary "
                                   "presets, loss_at (docs/long-horizons.md) at the printed steps only.")
    _common.add_problem_args(p)
    _common.add_algorithm_args(p)
    _common.add_noise_args(p)
    p.add_argument("--steps", type=_common.int_type("--steps", 1), default=10000,
                   help="number of steps T (e.g. 100000 or 1e5; up to 1e12 with loss_at), default 10000")
    p.add_argument("--points", type=_common.int_type("--points", 2), default=20,
                   help="about this many table rows (log-spaced t, always 0 and T), default 20")
    p.add_argument("--method", choices=_method.METHODS, default="auto",
                   help="engine: every step, step by step (cost ~ T); loss_at: the printed steps only, by "
                        "contour integration (stationary presets; cost independent of T); auto (default): "
                        f"loss_at when the engine would need more than {_method.AUTO_WORK:.0e} scalar updates "
                        f"(T x nodes x cost per node; a few seconds) or T > {AUTO_STEPS:.0e}")
    p.add_argument("--json", action="store_true", help="machine-readable output (strict JSON: inf as null)")
    p.add_argument("--plot", metavar="FILE.png", help="write a log-log plot of the curve")
    _common.add_progress_arg(p)
    p.set_defaults(func=run)


def _choose_method(args, algo, spectrum, noise):
    """``(method, reason)``: the method that runs and, when chosen automatically, why."""
    work = _method.engine_work(algo, spectrum, args.steps)
    stationary = supports_loss_at(algo, noise)
    if stationary and args.method != "engine" and args.steps > MAX_STEP:
        raise ValueError(f"--steps must be <= 1e12 with loss_at, got {args.steps:.3g}")
    if args.method == "loss_at":
        if not stationary:
            raise ValueError(f"--method loss_at needs a stationary algorithm; --algo {args.algo} is a schedule "
                             "(its parameters change every step): use --method engine")
        return "loss_at", None
    if args.method == "engine":
        return "engine", None
    long_run = work > _method.AUTO_WORK or args.steps > AUTO_STEPS
    if stationary and long_run:
        return "loss_at", (f"chosen automatically: the engine would need {work:.2g} scalar updates"
                           + (f", more than {_method.AUTO_WORK:.0e}" if work > _method.AUTO_WORK else
                              f" but keep {args.steps:.3g} steps (more than {AUTO_STEPS:.0e})"))
    if not stationary and (work > SCHEDULE_MAX_WORK or args.steps > SCHEDULE_MAX_STEPS):
        seconds = _common.engine_seconds(algo, spectrum, noise, args.steps)
        why = (f"--algo {args.algo} is a schedule: its parameters change every step, so only the step-by-step "
               "engine applies (loss_at needs a stationary algorithm)")
        raise ValueError(
            f"{why}, and --steps {args.steps:.3g} would take "
            f"about {_common.describe_duration(seconds)} here ({work:.2g} scalar updates) and keep "
            f"{16e-9 * (args.steps + 1):.3g} GB of losses; use fewer --steps, or --method engine to run it anyway")
    return "engine", None


def run(args) -> int:
    spectrum = _common.spectrum_from_args(args)
    algo = _common.algorithm_from_args(args)
    noise = _common.noise_from_args(args)
    algo_text, problem_text, noise_text = (_common.algorithm_label(args), _common.problem_label(args),
                                           _common.noise_label(noise))
    method, reason = _choose_method(args, algo, spectrum, noise)
    times = log_spaced_steps(args.steps, args.points)
    if method == "engine":
        curve = loss_curve(algo, spectrum, noise, args.steps, progress=args.progress)
        loss, error, diverged_at, exact_until = curve.loss[times], None, curve.diverged_at, None
        growth = curve.growth_rate if curve.diverged_at is None and curve.grows_exponentially else None
        plotted = curve.loss
        described = "engine (exact recursion, step by step)"
    else:
        evaluated = np.union1d(times, log_spaced_steps(args.steps, PLOT_POINTS)) if args.plot else times
        try:
            res = loss_at(algo, spectrum, noise, evaluated, progress=args.progress)
        except ValueError as exc:
            raise ValueError(f"{exc} (here: fewer --steps, or --method engine)") from None
        rows = np.searchsorted(evaluated, times)
        loss, error, diverged_at, exact_until = res.loss[rows], res.error[rows], res.diverged_at, res.exact_until
        growth = None
        plotted = (evaluated, res.loss)
        described = (f"loss_at: exact recursion up to step {res.exact_until}, contour integral after"
                     if res.exact_until < args.steps else "loss_at: exact recursion (the horizon is short)")
    alpha_eff = None if isinstance(algo, Schedule) else algo.alpha_eff
    sigma2 = noise.label_noise
    if args.json:
        _common.dump_json({
            "problem": problem_text, "algorithm": algo_text, "alpha_eff": alpha_eff,
            "batch_size": noise.batch_size, "tau1": noise.tau1, "tau2": noise.tau2,
            "label_noise": sigma2, "weight_decay": args.weight_decay, "ema": args.ema, "method": method,
            "t": times, "loss": loss, "total": loss + 0.5 * sigma2, "error": error, "exact_until": exact_until,
            "diverged_at": diverged_at, "growth_rate": growth})
    else:
        print(f"# {problem_text}\n# {algo_text}"
              + ("" if alpha_eff is None else f"  (alpha_eff = {alpha_eff:.6g})") + f"\n# {noise_text}")
        print(f"# method: {described}" + ("" if reason is None else f"\n#   ({reason})"))
        if sigma2:
            print(f"# L_t: excess risk; L_t + sigma2/2: population risk (label noise sigma2 = {sigma2:g})")
        columns = ["t", "L_t"] + (["L_t + sigma2/2"] if sigma2 else []) + ([] if error is None else ["rel_error"])
        rows = []
        for i, (t, L) in enumerate(zip(times, loss)):
            row = [int(t), f"{L:.6e}"] + ([f"{L + 0.5 * sigma2:.6e}"] if sigma2 else [])
            rows.append(tuple(row + ([] if error is None else [_relative(L, error[i])])))
        _common.print_table(columns, rows)
        if error is not None:
            finite = np.isfinite(loss) & (loss != 0)
            if np.any(finite):
                worst = float(np.max(error[finite] / np.abs(loss[finite])))
                print(f"# estimated relative error of loss_at: at most {worst:.1e}")
        if diverged_at is not None:
            print(f"# diverged at step {diverged_at}")
        if growth is not None:
            print(f"# warning: the loss grows exponentially at the end (x e every {1 / growth:.3g} steps): "
                  "it will diverge; see LossCurve.growth_rate")
    if args.plot:
        from ..plotting import plot_curves
        plot_curves({args.algo: plotted}, args.plot, title=f"{algo_text}, {noise_text}\n{problem_text}",
                    diverged_at=None if diverged_at is None else {args.algo: diverged_at})
        if not args.json:
            print(f"# wrote {args.plot}")
    return 0


def _relative(loss: float, error: float) -> str:
    if not math.isfinite(loss):
        return "-"
    if loss == 0:
        return "0" if error == 0 else "inf"
    return f"{error / abs(loss):.1e}"
