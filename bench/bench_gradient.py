"""Cost of ``loss_gradient`` against one forward ``loss_curve`` of the same size, and its memory.

Each configuration runs in a fresh subprocess: it notes its RSS, runs ``loss_gradient`` once and
reads the peak RSS ("extra" = what the gradient needed), then times forward and gradient runs
alternately (``--repeats`` each, best of) so that both see the same machine load. The ratio is
gradient time / forward time. "model" is the adjoint's stored states (checkpoints every
~sqrt(T) steps plus one recomputed segment) and "O(TK)" what storing the whole trajectory would
take. Timings are of this machine at this moment: compare ratios, not seconds.

A second table runs AM1 (memory 1) at smaller K with K T = 2e8 component-steps (K ~ 5e3 is the
default infinite spectrum's size), where a segment of recomputed states can stay in cache
(``_core.gradient_checkpointing`` says which segment length each run used and whether its
states were streamed past the cache).

    python bench/bench_gradient.py              # K = 10^5, T = 10^4, memory 0, 1 (e = 0 and e != 0), 2
    python bench/bench_gradient.py --quick      # T = 2000, no second table
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

from _timing import child_env

CHILD = textwrap.dedent(r'''
    import json, sys, time
    from _timing import peak_rss_bytes, rss_bytes
    import memsgd
    from memsgd import Noise, Spectrum, loss_curve, loss_gradient

    K, T, which, repeats = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    spec = Spectrum.power_law(2.0, 1.0, size=K)
    noise = Noise.gaussian(10)
    algo = {"sgd": memsgd.gd(0.9),
            "am1": memsgd.schedules.am1_power_law(1.0, 0.4),
            "nesterov": memsgd.nesterov(0.2, 0.8),
            "memory2": memsgd.MemoryAlgorithm(0.2, [0.3, 0.1], [0.1, 0.05], [[0.5, 0.1], [0.0, 0.3]])}[which]
    tiny = Spectrum([1.0], [1.0])
    loss_gradient(algo, tiny, noise, 2)                   # load everything once

    before = rss_bytes()
    g = loss_gradient(algo, spec, noise, T, progress=False)
    peak = peak_rss_bytes()
    fwd, grad = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        c = loss_curve(algo, spec, noise, T, progress=False)
        fwd.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        g = loss_gradient(algo, spec, noise, T, progress=False)
        grad.append(time.perf_counter() - t0)
    assert c.diverged_at is None and abs(g.value / c.loss[-1] - 1) < 1e-12
    M = g.memory
    per_state = 8 * K * ((M + 1) * (M + 2) // 2 if M <= 3 else (M + 1) ** 2)
    print(json.dumps({"which": which, "M": M, "K": K, "T": T, "forward": min(fwd), "gradient": min(grad),
                      "extra": peak - before, "model": per_state * g.stored_states,
                      "trajectory": per_state * (T + 1), "stored_states": g.stored_states,
                      "checkpoint_every": g.checkpoint_every, "threads": memsgd._core.max_threads(),
                      "streamed": memsgd._core.gradient_checkpointing(M, K, T, g.checkpoint_every)[1]}))
''')


def measure(K, T, which, repeats, threads=None) -> dict:
    env = child_env(**({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(K), str(T), which, str(repeats)], capture_output=True,
                          text=True, check=True, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="T = 2000 instead of 10^4")
    p.add_argument("--size", type=int, default=100_000, help="K, default 10^5")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each, best of (default 3)")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the runs (default: all)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    a = p.parse_args(argv)
    T = 2000 if a.quick else 10_000
    rows = []
    print(f"loss_gradient vs loss_curve, K = {a.size}, T = {T}, best of {a.repeats} alternating runs "
          f"(shared machines give noisy seconds: read the ratio)")
    head = f"{'case':>9} {'M':>2} {'thr':>3} {'forward s':>10} {'gradient s':>11} {'ratio':>6} " \
           f"{'extra MB':>9} {'model MB':>9} {'O(TK) MB':>10} {'states':>7}"
    print(head)
    for which in ("sgd", "am1", "nesterov", "memory2"):
        r = measure(a.size, T, which, a.repeats, a.threads)
        rows.append(r)
        print(f"{which:>9} {r['M']:>2} {r['threads']:>3} {r['forward']:>10.3f} {r['gradient']:>11.3f} "
              f"{r['gradient'] / r['forward']:>6.2f} {r['extra'] / 1e6:>9.1f} {r['model'] / 1e6:>9.1f} "
              f"{r['trajectory'] / 1e6:>10.1f} {r['stored_states']:>7}", flush=True)
    print("(am1: memory 1 with e = 0; nesterov: memory 1 with e != 0, the general-h kernel; memory2: M = 2.\n"
          " extra = peak RSS growth during one loss_gradient; model = stored states x 8 K (M+1)(M+2)/2 bytes)")
    if not a.quick:
        print("\nAM1 at smaller K (K T = 2e8 component-steps)")
        print(f"{'K':>7} {'T':>7} {'thr':>3} {'forward s':>10} {'gradient s':>11} {'ratio':>6} {'segment':>8} "
              f"{'streamed':>8} {'states':>7}")
        for K in (1000, 2000, 5000, 20_000):
            T_k = 200_000_000 // K
            r = measure(K, T_k, "am1", a.repeats, a.threads)
            rows.append(r)
            print(f"{K:>7} {T_k:>7} {r['threads']:>3} {r['forward']:>10.3f} {r['gradient']:>11.3f} "
                  f"{r['gradient'] / r['forward']:>6.2f} {r['checkpoint_every']:>8} {str(r['streamed']):>8} "
                  f"{r['stored_states']:>7}",
                  flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
