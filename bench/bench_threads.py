"""The thread policy: every core entry point at its default threads against ``threads=1``.

The policy (docs/engine.md, "Threads") must never make a run slower than one thread by more
than 5 % -- on short runs, or on a machine whose cores are busy with other work -- and keep the
gain of a second core where it pays. Each case times the default and ``threads=1`` in
interleaved rounds (alternating which goes first) in this process and prints

    ratio = time(default threads) / time(threads=1)        (< 1: the default is faster)

as the ratio of the best times and the median of the per-round ratios. ``--load`` adds a
busy-looping child process pinned to the last CPU (``os.sched_setaffinity``) while the cases
run: one core is then shared, as on a machine that runs something else.

Cases (heavy ball lr 0.1, momentum 0.9 unless named; Gaussian noise B = 10; power-law spectrum
nu = 2, kappa = 1 of K nodes):

    a/a         the loop below at threads=1 on both sides: the noise floor of a ratio here
    loop        a loop of 20 short loss_curve calls, K = 4857, T = 2000
    long        one loss_curve, K = 1e5, T = 2000 (a second core should pay here)
    curves      loss_curves of 8 algorithms, K = 4857, T = 2000
    gradient    a loop of 4 loss_gradient calls of AM1 at the size of `memsgd reproduce schedules`
                (K = 1375, T = 10^4)
    grad-long   one loss_gradient, K = 1e5, T = 1000
    loss_at     loss_at at steps 10^3..10^9, K = 4857
    optimize    optimize_schedule("heavy_ball", K = 1375, T = 2000, 8 iterations)

    python bench/bench_threads.py [--load] [--quick] [--rounds 7] [--cases loop,long,...]

The machine may be shared: the ratios are what to compare (each is taken within one process).
"""
from __future__ import annotations

import argparse
import inspect
import multiprocessing
import os
import statistics
import sys
import time

import memsgd
from memsgd import Noise, Spectrum, _core, loss_at, loss_curve, loss_curves, loss_gradient, optimize_schedule

HB = memsgd.heavy_ball(0.1, 0.9)
NOISE = Noise.gaussian(10)


def _spin():
    while True:
        pass


class BusyCore:
    """A child process that busy-loops on the last CPU while the block runs."""

    def __enter__(self):
        self.proc = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
        self.proc.start()
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(self.proc.pid, {cpu})
        time.sleep(0.2)
        return cpu

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.join()


def cases(quick: bool):
    scale = 0.1 if quick else 1.0
    small = Spectrum.power_law(2.0, 1.0, size=4857)
    big = Spectrum.power_law(2.0, 1.0, size=int(1e5 * scale))
    sched = Spectrum.power_law(2.0, 1.0, head=1024)          # K = 1375: reproduce schedules
    am1 = memsgd.schedules.am1_power_law(1.0, 0.4)
    algos = [memsgd.heavy_ball(0.1, 0.8 + 0.02 * i) for i in range(8)]
    T = int(2000 * scale)
    has_threads = "threads" in inspect.signature(optimize_schedule).parameters
    out = {
        "a/a": lambda th: [loss_curve(HB, small, NOISE, 2000, progress=False, threads=1) for _ in range(20)],
        "loop": lambda th: [loss_curve(HB, small, NOISE, 2000, progress=False, threads=th) for _ in range(20)],
        "long": lambda th: loss_curve(HB, big, NOISE, T, progress=False, threads=th),
        "curves": lambda th: loss_curves(algos, small, NOISE, T, threads=th),
        "gradient": lambda th: [loss_gradient(am1, sched, NOISE, int(10000 * scale), progress=False, threads=th)
                                for _ in range(4)],
        "grad-long": lambda th: loss_gradient(HB, big, NOISE, int(1000 * scale), progress=False, threads=th),
        "loss_at": lambda th: loss_at(HB, small, NOISE, [10 ** k for k in range(3, 10)], progress=False,
                                      threads=th),
    }
    if has_threads:
        out["optimize"] = lambda th: optimize_schedule("heavy_ball", sched, NOISE, T, max_iterations=8,
                                                       progress=False, threads=th)
    return out


def measure(fn, rounds: int):
    """Interleaved rounds of fn(None) (the default) and fn(1): (best default, best one, median ratio)."""
    fn(None)
    fn(1)                                    # warm caches, imports, the OpenMP pool
    tdef, tone = [], []
    for r in range(rounds):
        order = (None, 1) if r % 2 == 0 else (1, None)
        for th in order:
            t0 = time.perf_counter()
            fn(th)
            (tdef if th is None else tone).append(time.perf_counter() - t0)
    ratios = [a / b for a, b in zip(tdef, tone)]
    return min(tdef), min(tone), statistics.median(ratios)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    p.add_argument("--load", action="store_true", help="also run with a busy process pinned to the last CPU")
    p.add_argument("--cases", default=None, help="comma-separated subset of the cases")
    args = p.parse_args(argv)
    table = cases(args.quick)
    names = args.cases.split(",") if args.cases else list(table)
    info = _core.build_info()
    print(f"# {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"# memsgd {memsgd.__version__}, SIMD {info['simd_active']}, {len(os.sched_getaffinity(0))} CPUs, "
          f"default threads {_core.max_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
          f"load average {os.getloadavg()[0]:.2f} at start")
    print("# ratio = time(default threads) / time(threads=1): best of each, and median of per-round ratios")
    settings = [False, True] if args.load else [False]
    print(f"{'case':<10} {'machine':<10} {'default s':>10} {'threads=1 s':>12} {'ratio(best)':>12} "
          f"{'ratio(median)':>14}")
    for busy in settings:
        for name in names:
            if name not in table:
                print(f"{name:<10} (not available in this version)")
                continue
            if busy:
                with BusyCore():
                    res = measure(table[name], args.rounds)
            else:
                res = measure(table[name], args.rounds)
            td, t1, med = res
            print(f"{name:<10} {'+busy CPU' if busy else 'as is':<10} {td:>10.3f} {t1:>12.3f} {td / t1:>12.2f} "
                  f"{med:>14.2f}", flush=True)
    print(f"# load average {os.getloadavg()[0]:.2f} at the end (this machine may be shared: rerun idle)")


if __name__ == "__main__":
    main()
