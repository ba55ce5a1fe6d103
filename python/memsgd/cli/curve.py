"""`memsgd curve`: the exact loss curve of a preset on a power-law problem."""
from __future__ import annotations

import math

from ..dynamics import loss_curve
from . import _common


def register(sub) -> None:
    p = sub.add_parser("curve", help="exact expected loss L_t of a preset on a power-law problem",
                       description="Print L_t at log-spaced t for mini-batch SGD with memory (exact engine).")
    _common.add_problem_args(p)
    _common.add_algorithm_args(p)
    _common.add_noise_args(p)
    p.add_argument("--steps", type=int, default=10000, help="number of steps T, default 10000")
    p.add_argument("--points", type=int, default=20, help="table rows (log-spaced t), default 20")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plot", metavar="FILE.png", help="write a log-log plot of the whole curve")
    p.set_defaults(func=run)


def run(args) -> int:
    spectrum = _common.spectrum_from_args(args)
    algo = _common.algorithm_from_args(args)
    noise = _common.noise_from_args(args)
    curve = loss_curve(algo, spectrum, noise, args.steps)
    times = _common.log_times(args.steps, args.points)
    if args.json:
        _common.dump_json({
            "problem": repr(spectrum), "algorithm": repr(algo), "alpha_eff": algo.alpha_eff,
            "batch_size": noise.batch_size if not math.isinf(noise.batch_size) else "inf",
            "t": times, "loss": curve.loss[times], "diverged_at": curve.diverged_at})
    else:
        print(f"# {spectrum!r}\n# {algo!r}  (alpha_eff = {algo.alpha_eff:.6g})\n# batch size {noise.batch_size}")
        _common.print_table(["t", "L_t"], [(int(t), f"{curve.loss[t]:.6e}") for t in times])
        if curve.diverged:
            print(f"# diverged at step {curve.diverged_at}")
    if args.plot:
        from ..plotting import plot_curves
        plot_curves({args.algo: curve.loss}, args.plot, title=repr(spectrum))
        if not args.json:
            print(f"# wrote {args.plot}")
    return 0
