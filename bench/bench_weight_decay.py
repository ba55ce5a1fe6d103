"""Cost of weight decay in ``loss_curve`` (issue 20, item 2): the engine's affine kernel against
the plain step of the same memory and against the memory-(M+1) reduction it replaced.

Weight decay makes the state affine (docs/math.md §9): the core carries per component the first
moment ``mu`` (over ``w*``) and the centered second moment ``C`` (cpp/src/kernels/kernel_api.hpp,
"Weight decay"). Before, ``loss_curve`` ran the exact reduction to a plain memory-(M+1)
algorithm (``memsgd._affine.plain_problem``), which ``loss_at``, the gradient and the
propagators still use. Targets: with ``weight_decay=0`` today's speed (the plain kernel itself
runs, bit for bit: ratio 1 up to noise), with weight decay at memory 1 at most 1.3x the plain
memory-1 step.

Per row, all variants run in this process, interleaved round by round (plain, rho = 0, affine,
reduction, plain, ...), and the best of ``--rounds`` (>= 5) rounds is kept. Times are the CPU
time of this process (``time.process_time``) on one thread (``threads=1``: the step's cost, not
the thread policy), so that a machine shared with other work does not count its preemptions;
cache and memory bandwidth are still shared, most visibly at K = 10^6. The ratios are the
result, not the nanoseconds.

    python bench/bench_weight_decay.py [--rounds 7] [--sizes 4000,100000,1000000] [--memory 0,1,2,3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import memsgd
from memsgd import MemoryAlgorithm, Noise, Spectrum, loss_curve
from memsgd._affine import plain_problem

RHO = 1e-3


def algorithm(M: int, weight_decay: float) -> MemoryAlgorithm:
    """gd (M = 0), heavy ball (M = 1), a generic stable memory-M method (M >= 2; as bench_engine)."""
    if M == 0:
        return memsgd.gd(0.5, weight_decay=weight_decay)
    if M == 1:
        return memsgd.heavy_ball(0.1, 0.9, weight_decay=weight_decay)
    return MemoryAlgorithm(0.2, np.full(M, 0.1), np.full(M, 0.1), 0.5 * np.eye(M) + 0.05, weight_decay=weight_decay)


def cpu_seconds(algo, spec, noise, steps):
    t0 = time.process_time()
    curve = loss_curve(algo, spec, noise, steps, progress=False, threads=1)
    seconds = time.process_time() - t0
    assert curve.diverged_at is None
    return seconds, curve


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (>= 5); the best of each is kept")
    p.add_argument("--sizes", default="4000,100000,1000000", help="spectrum sizes K, comma-separated")
    p.add_argument("--memory", default="0,1,2,3", help="memory sizes M, comma-separated (0..3)")
    p.add_argument("--work", type=float, default=3e7, help="component-steps per run (sets T = work / K)")
    a = p.parse_args(argv)
    if a.rounds < 5:
        p.error("--rounds must be >= 5")
    noise = Noise(10)
    args = sys.argv[1:] if argv is None else argv
    print(f"command: python bench/bench_weight_decay.py {' '.join(args)}".rstrip())
    print(f"memsgd {memsgd.__version__}, SIMD path {memsgd._core.simd_path()}, one thread, best of {a.rounds} "
          f"interleaved rounds, CPU time; rho = {RHO}; load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    header = (f"{'M':>2} {'K':>8} {'T':>6} {'plain ns':>9} {'rho=0':>7} {'affine':>7} {'reduction':>10} "
              f"{'reduction/affine':>17} {'max rel diff':>13}")
    print("columns: time per component-step of the plain memory-M step, then ratios to it")
    print(header)
    print("-" * len(header))
    for K in [int(float(x)) for x in a.sizes.split(",")]:
        spec = Spectrum.power_law(2.0, 1.0, size=K)
        T = max(int(a.work / K), 30)
        for M in [int(x) for x in a.memory.split(",")]:
            decayed = algorithm(M, RHO)
            runs = {"plain": (algorithm(M, 0.0), spec),
                    "rho=0": (MemoryAlgorithm(*decayed.parameters(), weight_decay=0.0), spec),
                    "affine": (decayed, spec),
                    "reduction": plain_problem(decayed, spec)}
            best = {k: np.inf for k in runs}
            curves = {}
            for _ in range(a.rounds):
                for name, (algo, s) in runs.items():
                    sec, curves[name] = cpu_seconds(algo, s, noise, T)
                    best[name] = min(best[name], sec)
            assert np.array_equal(curves["plain"].loss, curves["rho=0"].loss)
            diff = np.max(np.abs(curves["affine"].loss / curves["reduction"].loss - 1))
            r = {k: best[k] / best["plain"] for k in runs}
            print(f"{M:>2} {K:>8} {T:>6} {1e9 * best['plain'] / (K * T):>9.3f} {r['rho=0']:>7.3f} "
                  f"{r['affine']:>7.3f} {r['reduction']:>10.3f} {best['reduction'] / best['affine']:>17.2f} "
                  f"{diff:>13.1e}", flush=True)
    print("\nrho=0: weight_decay=0 (the plain kernel runs; its losses are asserted bitwise equal to plain). "
          "affine: the engine's weight-decay state. reduction: the memory-(M+1) plain algorithm of "
          "memsgd._affine (the path before). max rel diff: affine vs reduction losses. On a shared "
          "machine compare the ratios, and rerun on an idle one.")


if __name__ == "__main__":
    main()
