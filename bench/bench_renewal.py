"""Renewal solvers of the loss expansion (docs/math.md §4): direct O(T^2) vs online FFT O(T log^2 T).

    python bench/bench_renewal.py [--sizes 1000,10000,100000,1000000] [--direct-budget 60]

Kernels are the propagators of heavy ball (alpha_eff = 1, B = 10, Gaussian noise) on the infinite
power law nu = 2, kappa = 1 for T <= 10^4 and, beyond, synthetic power laws with the same
exponents (U_t ~ t^-zeta, V_t ~ t^-(2 - 1/nu)) so the bench times the solver, not the propagators.
Direct is run only where its time, extrapolated as t^2 from the largest size timed so far, stays
under --direct-budget seconds; where both run, the max relative difference is printed. Timings
use the best of --repeat runs (one for direct above 10^4).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from _timing import best_time

import memsgd as ms
from memsgd import _core


def kernels(T: int):
    n = T + 1
    if T <= 10 ** 4:
        p = ms.propagators(ms.heavy_ball(0.1, 0.9), ms.Spectrum.power_law(2.0, 1.0), ms.Noise.gaussian(10), T)
        return p.U, p.V
    t = np.arange(n) + 1.0
    U = 0.37 * t ** -0.5
    V = 0.02 * t ** -1.5
    V[0] = 0.0
    return U, V


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--direct-budget", type=float, default=60.0, help="seconds, default 60")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'T':>9} {'direct [s]':>12} {'fft [s]':>10} {'speedup':>8} {'max rel diff':>13}")
    ref = None  # (T, seconds) of the largest direct run
    for T in sizes:
        U, V = kernels(T)
        t_fft, (L_fft, _, _) = best_time(lambda: _core.solve_renewal(U, U, V, V, "fft"), args.repeat)
        estimate = 0.0 if ref is None else ref[1] * (T / ref[0]) ** 2
        if estimate < args.direct_budget:
            t_dir, (L_dir, _, _) = best_time(lambda: _core.solve_renewal(U, U, V, V, "direct"),
                                          args.repeat if T <= 10 ** 4 else 1)
            ref = (T, t_dir)
            diff = float(np.max(np.abs(L_fft / L_dir - 1)))
            print(f"{T:>9} {t_dir:>12.4g} {t_fft:>10.4g} {t_dir / t_fft:>8.1f} {diff:>13.2e}")
        else:
            print(f"{T:>9} {f'(~{estimate:.0f} s)':>12} {t_fft:>10.4g} {'-':>8} {'-':>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
