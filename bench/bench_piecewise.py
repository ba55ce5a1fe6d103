"""Piecewise-stationary schedules at long horizons: loss_at of a 3-piece schedule.

    python bench/bench_piecewise.py [--horizon 1e9] [--points 100] [--compare 2e5]

Problem: heavy ball on the default infinite power law Spectrum.power_law(1.5, 0.75) (4096 exact
head terms + quadrature tail), Gaussian noise B = 10; pieces: lr 0.1 for 10^4 steps, lr 0.03 until
10^6, lr 0.01 for ever (momentum 0.9). Rows, in one process (on a shared machine only ratios mean
anything):
  1. loss_at of the piecewise schedule at --points log-spaced steps to --horizon (target: well
     under 10 s), beside loss_at of the stationary first piece at the same steps (the ratio is
     the cost of the hand-overs);
  2. loss_curve of the equivalent per-step schedule to --compare against loss_at at log-spaced
     steps to --compare (ratio and max relative difference).
"""
from __future__ import annotations

import argparse

import numpy as np
from _timing import best_time

import memsgd as ms
from memsgd._steps import log_spaced_steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--horizon", type=float, default=1e9)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--compare", type=float, default=2e5)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    spec, noise = ms.Spectrum.power_law(1.5, 0.75), ms.Noise.gaussian(10)
    pieces = [(ms.heavy_ball(0.1, 0.9), 10_000), (ms.heavy_ball(0.03, 0.9), 990_000), (ms.heavy_ball(0.01, 0.9), None)]
    schedule = ms.Schedule.piecewise(pieces)
    print(f"schedule: {[(a, n) for a, n in pieces]}; {spec!r} ({spec.size} nodes); threads {ms._core.max_threads()}")
    steps = log_spaced_steps(int(args.horizon), args.points)
    t_pw, pw = best_time(lambda: ms.loss_at(schedule, spec, noise, steps), args.repeat)
    t_one, _ = best_time(lambda: ms.loss_at(pieces[0][0], spec, noise, steps), args.repeat)
    print(f"1. loss_at, 3 pieces, {steps.size} steps to {args.horizon:.0e}: {t_pw:.3g} s "
          f"(stationary first piece alone: {t_one:.3g} s, ratio {t_pw / t_one:.2f}); "
          f"max estimated relative error {np.max(pw.error[1:] / pw.loss[1:]):.1e}")
    compare = int(args.compare)
    near = np.unique(np.concatenate([log_spaced_steps(compare, args.points), [9_999, 10_000, 10_001]]))
    t_near, got = best_time(lambda: ms.loss_at(schedule, spec, noise, near), args.repeat)
    t_curve, curve = best_time(lambda: ms.loss_curve(schedule, spec, noise, compare), args.repeat)
    diff = np.max(np.abs(got.loss[1:] / curve.loss[near[1:]] - 1))
    print(f"2. loss_curve to {compare:.0e}: {t_curve:.3g} s; loss_at at {near.size} steps: {t_near:.3g} s "
          f"(ratio {t_near / t_curve:.2f}); max relative difference {diff:.2e}")


if __name__ == "__main__":
    main()
