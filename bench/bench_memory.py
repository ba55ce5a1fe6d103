"""Peak memory of ``loss_curve``: O(K (M+1)^2 + T), not O(T K).

Each configuration runs in a fresh subprocess. It builds the spectrum, notes its current RSS
(/proc/self/statm), runs ``loss_curve`` and reads the peak RSS (``resource.getrusage``, which
on Linux reports kilobytes). "extra" = peak - RSS before the call: what the call itself needed.
The model column is the state the recursion keeps, ``8 bytes x (K (M+1)(M+2)/2 + 2 (T+1))``
(packed second moments, the returned loss and gradient-point loss); a solver that stored the trajectory
would need ``8 T K`` bytes (80 GB at K = 10^6, T = 10^4).

    python bench/bench_memory.py            # the full table (about two minutes on one core)
    python bench/bench_memory.py --quick    # smaller T at K = 10^6
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

from _timing import child_env

CHILD = textwrap.dedent(r'''
    import json, sys, time
    from _timing import peak_rss_bytes, rss_bytes
    import numpy as np
    from memsgd import Noise, Spectrum, heavy_ball, loss_curve

    K, T = int(sys.argv[1]), int(sys.argv[2])
    spec = Spectrum.power_law(2.0, 1.0, size=K)          # stable with B = 8 at any K
    algo, noise = heavy_ball(0.5, 0.8), Noise(8)
    loss_curve(algo, Spectrum([1.0], [1.0]), noise, 2)       # load everything once

    before = rss_bytes()
    t0 = time.perf_counter()
    curve = loss_curve(algo, spec, noise, T)
    seconds = time.perf_counter() - t0
    peak = peak_rss_bytes()
    assert curve.loss.shape == (T + 1,) and curve.diverged_at is None
    print(json.dumps({"K": K, "T": T, "before": before, "peak": peak, "seconds": seconds}))
''')


def measure(K: int, T: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(K), str(T)], capture_output=True, text=True,
                          check=True, env=child_env())
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="skip T = 10^4 at K = 10^6")
    a = p.parse_args(argv)
    big_T = 1000 if a.quick else 10_000
    configs = [(10**6, 10), (10**6, 100), (10**6, 1000), (10**6, big_T),
               (10**4, big_T), (10**5, big_T)]
    configs = list(dict.fromkeys(configs))
    M = 1
    P = (M + 1) * (M + 2) // 2
    print(f"loss_curve peak memory, heavy ball (M = {M}), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    header = (f"{'K':>9} {'T':>7} {'peak RSS MB':>12} {'extra MB':>9} {'model O(K) MB':>14} "
              f"{'O(TK) would be MB':>18} {'seconds':>8}")
    print(header)
    print("-" * len(header))
    rows = []
    for K, T in configs:
        r = measure(K, T)
        extra = max(r["peak"] - r["before"], 0) / 1e6
        model = 8 * (P * K + 2 * (T + 1)) / 1e6
        full = 8.0 * T * K / 1e6
        rows.append((K, T, extra))
        print(f"{K:>9} {T:>7} {r['peak'] / 1e6:>12.1f} {extra:>9.1f} {model:>14.1f} {full:>18.0f} "
              f"{r['seconds']:>8.2f}", flush=True)
    k6 = [e for K, T, e in rows if K == 10**6]
    print(f"\nat K = 10^6: extra memory from T = 10 to T = {big_T}: {min(k6):.1f} .. {max(k6):.1f} MB "
          f"(T grew {big_T // 10}x): O(K), not O(T K)")


if __name__ == "__main__":
    main()
