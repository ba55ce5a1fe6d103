"""Cost of weight decay in ``loss_curve`` (issue 20, item 2): the engine's affine kernel against
the plain step of the same memory and against the memory-(M+1) reduction it replaced.

Weight decay makes the state affine (docs/math.md §9): the core carries per component the first
moment ``mu`` (over ``w*``) and the centered second moment ``C`` (cpp/src/kernels/kernel_api.hpp,
"Weight decay"). Before, ``loss_curve`` ran the exact reduction to a plain memory-(M+1)
algorithm (``memsgd._affine.plain_problem``), which the gradient and ``loss_at`` still use.
Targets: with ``weight_decay=0`` today's speed (the plain kernel itself runs: ratio 1 up to
noise), with weight decay at memory 1 at most 1.3x the plain memory-1 step.

Per row, every variant runs in this process, interleaved round by round (plain, affine,
reduction, plain, ...), and the best of ``--rounds`` (>= 5) rounds is kept, so that a machine
shared with other work slows all of them alike; the ratios are the result, not the seconds.
One thread (``threads=1``): the step's cost, not the thread policy.

    python bench/bench_weight_decay.py [--rounds 7] [--sizes 4000,100000] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import memsgd
from memsgd import Noise, Spectrum, loss_curve
from memsgd._affine import plain_problem

RHO = 1e-3


def variants(M: int):
    """(name, algorithm, spectrum transform) of the rows' columns for memory M."""
    if M == 0:
        plain, decayed = memsgd.gd(0.5), memsgd.gd(0.5, weight_decay=RHO)
    else:
        plain, decayed = memsgd.heavy_ball(0.1, 0.9), memsgd.heavy_ball(0.1, 0.9, weight_decay=RHO)
    zero = memsgd.gd(0.5, weight_decay=0.0) if M == 0 else memsgd.heavy_ball(0.1, 0.9, weight_decay=0.0)
    return plain, zero, decayed


def one_run(algo, spec, noise, steps, threads):
    t0 = time.perf_counter()
    curve = loss_curve(algo, spec, noise, steps, progress=False, threads=threads)
    seconds = time.perf_counter() - t0
    assert curve.diverged_at is None
    return seconds, curve


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (>= 5); the best of each is kept")
    p.add_argument("--sizes", default="4000,100000", help="spectrum sizes K, comma-separated")
    p.add_argument("--work", type=float, default=1.5e8, help="component-steps per run (sets T = work / K)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    if a.rounds < 5:
        p.error("--rounds must be >= 5")
    noise = Noise(10)
    print(f"command: python bench/bench_weight_decay.py {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip())
    print(f"memsgd {memsgd.__version__}, SIMD path {memsgd._core.simd_path()}, threads={a.threads}, "
          f"rounds={a.rounds} (best of each, interleaved), rho = {RHO}; load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print("ratios against the plain step of the same memory M in the same round set; ns per component-step")
    header = (f"{'M':>2} {'K':>7} {'T':>6} {'plain ns':>9} {'rho=0':>7} {'affine':>7} {'reduction':>10} "
              f"{'reduction/affine':>17} {'max rel diff':>13}")
    print(header)
    print("-" * len(header))
    for K in [int(float(s)) for s in a.sizes.split(",")]:
        spec = Spectrum.power_law(2.0, 1.0, size=K)
        T = max(int(a.work / K), 50)
        for M in (0, 1):
            plain, zero, decayed = variants(M)
            reduced, reduced_spec = plain_problem(decayed, spec)
            runs = {"plain": (plain, spec), "rho=0": (zero, spec), "affine": (decayed, spec),
                    "reduction": (reduced, reduced_spec)}
            best = {k: np.inf for k in runs}
            curves = {}
            for _ in range(a.rounds):
                for name, (algo, s) in runs.items():
                    sec, curves[name] = one_run(algo, s, noise, T, a.threads)
                    best[name] = min(best[name], sec)
            assert np.array_equal(curves["plain"].loss, curves["rho=0"].loss)
            diff = np.max(np.abs(curves["affine"].loss / curves["reduction"].loss - 1))
            r = {k: best[k] / best["plain"] for k in runs}
            print(f"{M:>2} {K:>7} {T:>6} {1e9 * best['plain'] / (K * T):>9.3f} {r['rho=0']:>7.3f} "
                  f"{r['affine']:>7.3f} {r['reduction']:>10.3f} {best['reduction'] / best['affine']:>17.2f} "
                  f"{diff:>13.1e}", flush=True)
    print("\nrho=0: weight_decay=0 (the plain kernel; the losses are bitwise the plain ones). affine: the "
          "engine's weight-decay kernel. reduction: the memory-(M+1) plain algorithm of memsgd._affine. "
          "Timings from a shared machine are noisy: compare the ratios, and rerun on an idle machine.")


if __name__ == "__main__":
    main()
