"""Cost of weight decay in the engine (issue 20, item 2): with ``weight_decay=0`` today's speed,
with weight decay at memory 1 at most 1.3x today's plain step.

Weight decay makes the state affine (docs/math.md §9): the core carries per component the first
moment ``mu`` (over ``w*``) and the centered second moment ``C`` (cpp/src/kernels/kernel_api.hpp,
"Weight decay"); ``loss_curve``, ``loss_curves`` and ``sweep`` run it. The exact reduction to a
plain memory-(M+1) algorithm (``memsgd._affine.plain_problem``), the path before and still that of
``loss_gradient`` and the propagators, is the comparison.

Per row, every variant runs in this one process, interleaved round by round, and the best of
``--rounds`` (>= 7) rounds is kept; the ratios are the result, not the nanoseconds:

- ``plain/base``: the plain memory-M step of this build against the plain step of a baseline
  build (``--baseline-core``: the ``_core*.so`` of another checkout, e.g. main, loaded beside this
  one; both run through ``_core.evolve`` with the same arrays, and their losses are asserted
  bitwise equal);
- ``rho=0``: ``weight_decay=0`` given explicitly (the plain kernel runs: losses asserted bitwise
  equal to the plain ones);
- ``affine``: the weight-decay kernel (rho = 1e-3) against the plain step of the same memory (the
  issue's target for M = 1: <= 1.3);
- ``reduction`` and ``red/aff``: the memory-(M+1) reduction against the plain step and against the
  affine kernel; ``max rel diff``: the affine losses against the reduction's.

One thread: CPU time of this process (``time.process_time``), so that preemption by other work
on a shared machine does not count. Two threads: wall-clock time (``time.perf_counter``), since
CPU time would hide what the second thread buys; that is noisier on a loaded machine. Cache and
memory bandwidth are shared with other work either way, most visibly at K = 10^6.

    git worktree add /tmp/memsgd-main main && (cd /tmp/memsgd-main && <build memsgd._core>)
    python bench/bench_weight_decay.py --baseline-core /tmp/memsgd-main/python/memsgd/_core*.so \\
        [--rounds 7] [--sizes 4000,100000,1000000] [--memory 0,1,2,3] [--threads 1,2]
"""
from __future__ import annotations

import argparse
import glob
import importlib.machinery
import importlib.util
import os
import sys
import time

import numpy as np

import memsgd
from memsgd import MemoryAlgorithm, Noise, Spectrum, _core
from memsgd._affine import plain_problem
from memsgd._packing import noise_arrays, parameter_arrays, spectrum_arrays, weight_decay_array

RHO = 1e-3


def algorithm(M: int, weight_decay: float) -> MemoryAlgorithm:
    """gd (M = 0), heavy ball (M = 1), a generic stable memory-M method (M >= 2; as bench_engine)."""
    if M == 0:
        return memsgd.gd(0.5, weight_decay=weight_decay)
    if M == 1:
        return memsgd.heavy_ball(0.1, 0.9, weight_decay=weight_decay)
    return MemoryAlgorithm(0.2, np.full(M, 0.1), np.full(M, 0.1), 0.5 * np.eye(M) + 0.05, weight_decay=weight_decay)


def load_core(path: str):
    """Another build's ``_core`` extension as a separate module (its init symbol is PyInit__core)."""
    name = "memsgd_baseline._core"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path, loader=loader))
    loader.exec_module(module)
    return module


def core_call(core, algo, spec, noise, steps, threads, decay):
    """One ``core.evolve`` run (as loss_curve packs it), in the calling convention of `core`'s build."""
    spectrum, params = spectrum_arrays(spec), tuple(parameter_arrays(algo, steps))
    noise = noise_arrays(noise, steps)[:2]
    rho = None
    if decay:
        rho = weight_decay_array(algo, steps)
        if rho is None:    # rho = 0 given explicitly
            rho = np.zeros(1)
    if "spectrum" not in core.evolve.__doc__.split("\n", 1)[0]:
        # a build before the one calling convention (flat arrays, weight decay as a keyword)
        kwargs = {"threads": threads} if rho is None else {"threads": threads, "weight_decay": rho}
        return lambda: core.evolve(*spectrum, *params, *noise, steps, **kwargs)
    algorithm = params if rho is None else params + (rho,)
    return lambda: core.evolve(spectrum, algorithm, noise, steps, threads=threads)


def timed(run, clock):
    t0 = clock()
    loss, _, diverged = run()
    seconds = clock() - t0
    assert diverged < 0
    return seconds, loss


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline-core", default=None,
                   help="path (glob) of another build's _core*.so, e.g. main's, for the plain/base column")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (>= 7); the best of each is kept")
    p.add_argument("--sizes", default="4000,100000,1000000", help="spectrum sizes K, comma-separated")
    p.add_argument("--memory", default="0,1,2,3", help="memory sizes M, comma-separated (0..3)")
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    p.add_argument("--work", type=float, default=3e7, help="component-steps per run (sets T = work / K)")
    a = p.parse_args(argv)
    if a.rounds < 7:
        p.error("--rounds must be >= 7")
    base = None
    if a.baseline_core:
        found = sorted(glob.glob(a.baseline_core))
        if len(found) != 1:
            p.error(f"--baseline-core must name one file, found {len(found)}: {a.baseline_core}")
        base = load_core(found[0])
    noise = Noise(10)
    args = sys.argv[1:] if argv is None else argv
    print(f"command: python bench/bench_weight_decay.py {' '.join(args)}".rstrip())
    print(f"memsgd {memsgd.__version__}, SIMD path {_core.simd_path()}, best of {a.rounds} interleaved rounds; "
          f"rho = {RHO}; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print("baseline core: " + (f"{found[0]} (SIMD path {base.simd_path()})" if base else "none (--baseline-core)"))
    header = (f"{'thr':>3} {'M':>2} {'K':>8} {'T':>6} {'plain ns':>9} {'plain/base':>10} {'rho=0':>6} {'affine':>7} "
              f"{'reduction':>9} {'red/aff':>8} {'max rel diff':>12}")
    print("columns: time per component-step of the plain memory-M step (1 thread: CPU time; 2 threads: wall), "
          "then ratios of times")
    print(header)
    print("-" * len(header))
    for threads in [int(x) for x in a.threads.split(",")]:
        clock = time.process_time if threads == 1 else time.perf_counter
        for K in [int(float(x)) for x in a.sizes.split(",")]:
            spec = Spectrum.power_law(2.0, 1.0, size=K)
            T = max(int(a.work / K), 30)
            for M in [int(x) for x in a.memory.split(",")]:
                decayed = algorithm(M, RHO)
                plain = algorithm(M, 0.0)
                runs = {"plain": core_call(_core, plain, spec, noise, T, threads, False),
                        "rho=0": core_call(_core, MemoryAlgorithm(*decayed.parameters(), weight_decay=0.0), spec,
                                           noise, T, threads, True),
                        "affine": core_call(_core, decayed, spec, noise, T, threads, True),
                        "reduction": core_call(_core, *plain_problem(decayed, spec), noise, T, threads, False)}
                if base is not None:
                    runs["base"] = core_call(base, plain, spec, noise, T, threads, False)
                best = {k: np.inf for k in runs}
                loss = {}
                for _ in range(a.rounds):
                    for name, run in runs.items():
                        sec, loss[name] = timed(run, clock)
                        best[name] = min(best[name], sec)
                assert np.array_equal(loss["plain"], loss["rho=0"])
                if base is not None:
                    assert np.array_equal(loss["plain"], loss["base"]), "plain losses differ from the baseline's"
                diff = np.max(np.abs(loss["affine"] / loss["reduction"] - 1))
                r = {k: best[k] / best["plain"] for k in runs}
                vs_base = f"{best['plain'] / best['base']:>10.3f}" if base is not None else f"{'-':>10}"
                print(f"{threads:>3} {M:>2} {K:>8} {T:>6} {1e9 * best['plain'] / (K * T):>9.3f} {vs_base} "
                      f"{r['rho=0']:>6.3f} {r['affine']:>7.3f} {r['reduction']:>9.3f} "
                      f"{best['reduction'] / best['affine']:>8.2f} {diff:>12.1e}", flush=True)
    print("\nplain/base: this build's plain step over the baseline build's (bitwise equal losses asserted). "
          "rho=0: weight_decay=0 given (plain kernel; bitwise equal losses asserted), over plain. affine: the "
          "weight-decay kernel over plain (target M = 1: <= 1.3). reduction: the memory-(M+1) reduction over "
          "plain; red/aff = reduction over affine. On a shared machine compare the ratios, and rerun on an "
          "idle one.")


if __name__ == "__main__":
    main()
