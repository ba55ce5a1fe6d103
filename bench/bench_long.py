"""Long horizons: loss_at (contour inversion) against the exact recursion and the FFT renewal.

    python bench/bench_long.py [--horizon 1e9] [--compare 1e6] [--points 200] [--skip-fft]

Problem: heavy ball (lr 0.1, momentum 0.9, alpha_eff = 1), Gaussian noise B = 10, on the default
infinite power law Spectrum.power_law(1.5, 0.75) (4096 exact head terms + quadrature tail).
Rows, all in one process (timings are ratios against loss_curve run here; on a shared
machine only the ratios are meaningful):
  1. loss_at at --points log-spaced steps up to --horizon (target: < 5 s on 2 cores);
  2. loss_at and loss_curve up to --compare at the same log-spaced steps: time ratio and max
     relative difference (contour part, steps beyond loss_at's exact hand-over);
  3. the FFT renewal of the propagators (loss_from_propagators) up to --compare, same steps;
  4. loss_at / asymptotics() at the horizon (-> 1 like t^-(1 - 1/nu) in this signal phase).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from _timing import best_time

import memsgd as ms
from memsgd._steps import log_spaced_steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--horizon", type=float, default=1e9)
    ap.add_argument("--compare", type=float, default=1e6)
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-fft", action="store_true", help="skip row 3 (propagators take ~2x loss_curve)")
    args = ap.parse_args(argv)
    algo, spec, noise = ms.heavy_ball(0.1, 0.9), ms.Spectrum.power_law(1.5, 0.75), ms.Noise.gaussian(10)
    horizon, compare = int(args.horizon), int(args.compare)
    print(f"problem: {algo!r}, {noise!r}, {spec!r} ({spec.size} nodes); threads {ms._core.max_threads()}")
    print(f"{'row':<44} {'time [s]':>9} {'vs loss_curve':>14} {'max rel diff':>13}")

    steps = log_spaced_steps(horizon, args.points)
    t_far, far = best_time(lambda: ms.loss_at(algo, spec, noise, steps), args.repeat)
    print(f"{f'1. loss_at, {steps.size} steps to {horizon:.0e}':<44} {t_far:>9.3g} {'':>14} "
          f"{f'(est. {np.max(far.error[1:] / far.loss[1:]):.1e})':>13}")

    near_steps = log_spaced_steps(compare, args.points)
    t_near, near = best_time(lambda: ms.loss_at(algo, spec, noise, near_steps), args.repeat)
    t_curve, curve = best_time(lambda: ms.loss_curve(algo, spec, noise, compare), args.repeat)
    late = near_steps > near.exact_until
    diff = np.max(np.abs(near.loss[late] / curve.loss[near_steps[late]] - 1))
    print(f"{f'2. loss_curve to {compare:.0e}':<44} {t_curve:>9.3g} {1.0:>14.3g} {'':>13}")
    print(f"{f'   loss_at, {near_steps.size} steps to {compare:.0e}':<44} {t_near:>9.3g} "
          f"{t_near / t_curve:>14.3g} {diff:>13.2e}")
    print(f"   (loss_at: exact recursion to step {near.exact_until}, contour for {late.sum()} steps; "
          f"max estimated relative error {np.max(near.error[late] / near.loss[late]):.1e})")

    if not args.skip_fft:
        def fft():
            return ms.loss_from_propagators(ms.propagators(algo, spec, noise, compare), method="fft")
        t_fft, L_fft = best_time(fft, args.repeat)
        diff_fft = np.max(np.abs(near.loss[late] / L_fft[near_steps[late]] - 1))
        diff_fc = np.max(np.abs(L_fft[near_steps] / curve.loss[near_steps] - 1))
        print(f"{f'3. propagators + FFT renewal to {compare:.0e}':<44} {t_fft:>9.3g} {t_fft / t_curve:>14.3g} "
              f"{diff_fft:>13.2e}")
        print(f"   (FFT renewal vs loss_curve: max relative difference {diff_fc:.2e})")

    pred = ms.asymptotics(algo, spec, noise)
    ts = np.array([10 ** k for k in range(5, int(np.log10(horizon)) + 1)])
    ratio = far.loss[np.searchsorted(steps, ts)] / pred.predict(ts) if np.all(np.isin(ts, steps)) \
        else ms.loss_at(algo, spec, noise, ts).loss / pred.predict(ts)
    print(f"4. loss_at / asymptotics ({pred.phase} phase, exponent {pred.exponent:g}):")
    print("   " + "  ".join(f"t=1e{int(np.log10(t))}: {r:.6f}" for t, r in zip(ts, ratio)))
    gap = np.abs(ratio - 1)
    slope = np.polyfit(np.log(ts[-3:]), np.log(gap[-3:]), 1)[0]
    print(f"   |ratio - 1| ~ t^{slope:.3f} over the last three decades (predicted -(1 - 1/nu) = "
          f"{-(1 - 1 / spec.nu):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
