"""Smooth schedules at long horizons: loss_at(schedule, approximate=m) against the exact recursion.

    python bench/bench_smooth.py [--horizons 1e4 1e5] [--per-efold 16]

Problem: Spectrum.power_law(1.5, 0.75, head=64) (875 nodes), Gaussian noise B = 10; schedules:
heavy ball (momentum 0.9) with a cosine lr (peak 0.1, to 0 at T), with WSD (peak 0.1, 20% 1-sqrt
cooldown, its start a break), and AM1 power law (kick 1, delta 0.45). Per row, in one process:
the loss at step T by the approximation (all steps approximated: exact_until=0) and by loss_curve,
the true relative error, the estimate (relative), the fine level's pieces, both times and their
ratio (on a shared machine only the ratio means anything).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import memsgd as ms
from memsgd import lr_shapes
from memsgd._smooth_pieces import frozen_pieces, graded_boundaries


def _heavy_ball(shape, beta=0.9):
    def generator(t):
        lr = shape(np.asarray(t))
        n = len(t)
        return lr, np.full((n, 1), beta), lr.reshape(n, 1), np.full((n, 1, 1), beta), np.zeros((n, 1))
    return ms.Schedule(1, generator)


def schedules(T, spec):
    wsd = lr_shapes.wsd(0.1, T, cooldown_fraction=0.2, cooldown="1-sqrt")
    return {"cosine (heavy ball)": (_heavy_ball(lr_shapes.cosine(0.1, T)), ()),
            "WSD 1-sqrt 20% (heavy ball)": (_heavy_ball(wsd), (T - wsd.cooldown_steps,)),
            "AM1 power law": (ms.schedules.am1_power_law(kick=1.0, delta=0.45, lambda_max=spec.lambda_max), ())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--horizons", type=float, nargs="+", default=[1e4, 1e5])
    ap.add_argument("--per-efold", type=int, default=16)
    ap.add_argument("--only", default=None, help="run only schedules whose name contains this")
    args = ap.parse_args(argv)
    spec, noise = ms.Spectrum.power_law(1.5, 0.75, head=64), ms.Noise.gaussian(10)
    print(f"{spec!r} ({spec.size} nodes), per_efold {args.per_efold}; threads {ms._core.max_threads()}")
    print("| schedule | T | pieces | true error | estimate | approximation (s) | loss_curve (s) |")
    print("|---|---|---|---|---|---|---|")
    for T in (int(h) for h in args.horizons):
        for name, (schedule, breaks) in schedules(T, spec).items():
            if args.only and args.only not in name:
                continue
            pieces = len(frozen_pieces(schedule, graded_boundaries(T, args.per_efold, breaks))) - 1
            t = time.perf_counter()
            got = ms.loss_at(schedule, spec, noise, [T], exact_until=0, approximate=args.per_efold, breaks=breaks,
                             warn=False)
            t_approx = time.perf_counter() - t
            t = time.perf_counter()
            ref = ms.loss_curve(schedule, spec, noise, T).loss[T]
            t_exact = time.perf_counter() - t
            true, est = abs(got.loss[0] / ref - 1), got.error[0] / ref
            flag = "" if true <= est else "  ESTIMATE FAILS"
            print(f"| {name} | {T:.0e} | {pieces} | {true:.1e} | {est:.1e} | {t_approx:.3g} | {t_exact:.3g} |{flag}",
                  flush=True)


if __name__ == "__main__":
    main()
