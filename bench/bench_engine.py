"""Throughput of the exact engine against numpy, JAX, the FMA peak, and a native build.

Tables (component-steps per second; ratios are taken in this process, on this machine):

1. memory M = 0..3 at K = 2e4: memsgd vs a vectorised numpy recursion (batched (M+1)x(M+1)
   matrices, what a researcher would write; run for fewer steps since its rate does not depend
   on T).
2. M = 1 (heavy ball, Gaussian noise B = 10) at K in {4e3, 2e4, 1e5, 1e6}, for every SIMD path
   this CPU runs: memsgd vs a hand-written JAX ``lax.scan`` of the same recursion in float64
   (``jax_enable_x64``; skipped without JAX), and the fraction of the FMA peak.
   Flops: the M = 1, e = 0 kernel does 14 fused multiply-adds and 9 multiplies per component
   and step (2 for the lam-dependent column of S, 8 for Z = S X, 3 for the noise weight, 9 for
   Y = Z S^T + noise g g^T, 1 for the loss), i.e. 37 flops. The peak is measured, not quoted:
   ``_core.fma_probe`` runs independent chains of 8-lane fused multiply-adds on one thread with
   the fastest SIMD path (2 flops each; tests/test_simd.py checks in the disassembly that the
   loop does every multiply-add the probe counts); peak = that rate x the threads the engine
   used (the thread policy may run it alone: the column "thr" is the largest team of the timed
   runs). The baseline x86-64 path has no FMA instruction, so its fraction is of the machine's
   FMA peak too.
3. with ``--native``: the portable build (baseline code + run-time chosen kernels) against a
   ``-march=native`` build of the same sources (built into build/native on first use), both
   loaded in this process.

    python bench/bench_engine.py [--quick] [--threads N] [--native]

The machine may be shared: compare ratios, not absolute rates, and rerun on an idle machine.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _jax_baseline import compiled, heavy_ball_curve
from _timing import best_time

import memsgd
from memsgd import MemoryAlgorithm, Noise, Spectrum, _core, loss_curve

ROOT = Path(__file__).resolve().parents[1]
FLOPS_M1 = 37          # per component-step, M = 1, e = 0 (see the module docstring)


def algorithm(M: int) -> MemoryAlgorithm:
    if M == 0:
        return memsgd.gd(0.5)
    if M == 1:
        return memsgd.heavy_ball(0.1, 0.9)
    return MemoryAlgorithm(0.2, np.full(M, 0.1), np.full(M, 0.1), 0.5 * np.eye(M) + 0.05)


def numpy_recursion(algo: MemoryAlgorithm, lam, c2, tau1, tau2, batch, steps):
    """The mean-loss recursion of docs/math.md §3, vectorised over components with numpy matmul."""
    N = algo.memory + 1
    g, h = algo.g, algo.h
    S = algo.S0[None] - lam[:, None, None] * np.outer(g, h)[None]
    St = np.transpose(S, (0, 2, 1)).copy()
    ggT = np.outer(g, g)
    X = np.zeros((lam.size, N, N))
    X[:, 0, 0] = c2
    loss = np.empty(steps + 1)
    for t in range(steps + 1):
        hXh = np.einsum("i,kij,j->k", h, X, h)
        loss[t] = 0.5 * lam @ X[:, 0, 0]
        if t == steps:
            break
        a = lam @ hXh
        noise = (tau1 * lam * a - tau2 * lam ** 2 * hXh) / batch
        X = S @ X @ St + noise[:, None, None] * ggT
    return loss


def fma_peak(path: str, seconds: float = 0.02, repeats: int = 15) -> float:
    """Measured single-thread FMA peak of a SIMD path, flops/s: the best of ``repeats`` probes of
    about ``seconds`` each (short probes are rarely interrupted on a shared machine)."""
    iters = 1 << 12
    while True:
        t0 = time.perf_counter()
        _core.fma_probe(path, iters)
        if time.perf_counter() - t0 > seconds:
            break
        iters *= 2
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        flops = _core.fma_probe(path, iters)
        best = max(best, flops / (time.perf_counter() - t0))
    return best


def heavy_ball_args(spec, steps):
    hb = memsgd.heavy_ball(0.1, 0.9)
    # _core.evolve's (spectrum, algorithm, noise, steps)
    return ((spec.eigenvalues, spec.weights, spec.coefficients2),
            (np.array([hb.alpha]), hb.b.reshape(1, 1), hb.c.reshape(1, 1), hb.D.reshape(1, 1, 1), hb.e.reshape(1, 1)),
            (np.array([0.1]), np.array([-0.1])), steps)


def steps_for(K: int, budget: float) -> int:
    return max(50, int(budget / K))


def table_numpy(args):
    K, T = args.K, args.steps
    spec = Spectrum.power_law(2.0, 1.0, size=K)
    noise = Noise.gaussian(10)
    print(f"\n## memsgd vs numpy, K = {K}, T = {T} (numpy: T = {args.numpy_steps}), Gaussian noise B = 10")
    print(f"{'M':>2}  {'memsgd steps/s':>15}  {'numpy steps/s':>14}  {'ratio':>7}  {'max rel diff':>12}")
    for M in range(4):
        algo = algorithm(M)
        t_core, curve = best_time(lambda: loss_curve(algo, spec, noise, T, threads=args.threads), args.repeats)
        t_np, ref = best_time(lambda: numpy_recursion(algo, spec.eigenvalues, spec.coefficients2, 1.0, -1.0, 10,
                                                      args.numpy_steps), args.repeats)
        rate_core, rate_np = K * T / t_core, K * args.numpy_steps / t_np
        n = args.numpy_steps + 1
        diff = np.max(np.abs(curve.loss[:n] - ref) / np.abs(ref))
        print(f"{M:>2}  {rate_core:>15.3e}  {rate_np:>14.3e}  {rate_core / rate_np:>7.1f}  {diff:>12.1e}")


def table_jax(args):
    try:
        import jax  # noqa: F401
        have_jax = True
    except ImportError:
        have_jax = False
    paths = _core.build_info()["simd_supported"]
    probes = {p: fma_peak(p) for p in paths}
    peak = max(probes.values())             # the machine's multiply-add peak, one thread
    threads = args.threads or _core.max_threads()
    print(f"\n## M = 1 (heavy ball, B = 10): memsgd vs JAX lax.scan (float64), up to {threads} engine thread(s)")
    print("# measured single-thread multiply-add throughput: "
          + ", ".join(f"{p} {probes[p] / 1e9:.1f} GFLOP/s" for p in paths) + f"; FMA peak = {peak / 1e9:.1f}")
    print(f"# {FLOPS_M1} flops per component-step; % peak = rate x {FLOPS_M1} / (peak x thr), thr = the most "
          "threads the timed runs used")
    if not have_jax:
        print("# JAX not installed: the JAX column is skipped (pip install 'memsgd[jax]')")
    print(f"{'K':>8}  {'path':>8}  {'thr':>3}  {'memsgd c-steps/s':>16}  {'% FMA peak':>10}  {'JAX c-steps/s':>14}  "
          f"{'memsgd/JAX':>10}  {'max rel diff':>12}")
    original = _core.simd_path()
    try:
        for K in args.jax_K:
            spec = Spectrum.power_law(2.0, 1.0, size=K)
            T = steps_for(K, args.budget)
            jax_rate, jax_loss = None, None
            if have_jax:
                run = compiled(heavy_ball_curve(spec, 10.0, T), 0.1, 0.9)
                t_jax, jax_loss = best_time(run, args.repeats)
                jax_rate = K * T / t_jax
            for path in paths:
                _core.set_simd_path(path)
                control = _core.RunControl()
                t, out = best_time(lambda: _core.evolve(*heavy_ball_args(spec, T), threads=args.threads or 0,
                                                        control=control), args.repeats)
                rate = K * T / t
                used = max(control.largest_team, 1)
                pct = 100 * rate * FLOPS_M1 / (peak * used)
                jr = f"{jax_rate:>14.3e}" if jax_rate else f"{'-':>14}"
                ratio = f"{rate / jax_rate:>10.2f}" if jax_rate else f"{'-':>10}"
                diff = (f"{np.max(np.abs(out[0][:T] - jax_loss) / out[0][:T]):>12.1e}" if jax_loss is not None
                        else f"{'-':>12}")
                print(f"{K:>8}  {path:>8}  {used:>3}  {rate:>16.3e}  {pct:>10.0f}  {jr}  {ratio}  {diff}", flush=True)
    finally:
        _core.set_simd_path(original)


def load_native_core():
    """The ``_core`` module of a -march=native build of this tree (build/native, brought up to date)."""
    import pybind11
    build = ROOT / "build" / "native"
    if not (build / "CMakeCache.txt").exists():
        print(f"# configuring the native variant in {build} ...", flush=True)
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                        "-DMEMSGD_NATIVE=ON", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
                        f"-DPython_EXECUTABLE={sys.executable}"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, stdout=subprocess.DEVNULL)
    so = sorted(build.glob("_core*.so"))
    spec = importlib.util.spec_from_file_location("memsgd_native._core", so[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build_info()["native"], "build/native is not a -march=native build"
    return module


def table_native(args):
    native = load_native_core()
    print(f"\n## portable build ({_core.simd_path()} kernels chosen at run time) vs -march=native build, "
          f"M = 1 and M = 4 (general kernel)")
    print(f"{'K':>8}  {'M':>2}  {'portable c-steps/s':>18}  {'native c-steps/s':>16}  {'portable/native':>15}  bitwise")
    for K in args.jax_K:
        spec = Spectrum.power_law(2.0, 1.0, size=K)
        for M in (1, 4):
            T = steps_for(K, args.budget / (1 if M == 1 else 20))
            a = algorithm(M)
            arrays = ((spec.eigenvalues, spec.weights, spec.coefficients2),
                      (np.array([a.alpha]), a.b.reshape(1, M), a.c.reshape(1, M), a.D.reshape(1, M, M),
                       a.e.reshape(1, M)),
                      (np.array([0.1]), np.array([-0.1])), T)
            t_p, out_p = best_time(lambda: _core.evolve(*arrays, threads=args.threads or 0), args.repeats)
            t_n, out_n = best_time(lambda: native.evolve(*arrays, threads=args.threads or 0), args.repeats)
            same = np.array_equal(out_p[0], out_n[0])
            print(f"{K:>8}  {M:>2}  {K * T / t_p:>18.3e}  {K * T / t_n:>16.3e}  {t_n / t_p:>15.2f}  {same}", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--K", type=int, default=20000)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--numpy-steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="engine threads (default: all cores)")
    p.add_argument("--budget", type=float, default=4e8, help="component-steps per timed run")
    p.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    p.add_argument("--native", action="store_true", help="also compare with a -march=native build")
    args = p.parse_args(argv)
    args.jax_K = [4000, 20000, 100000, 1000000]
    if args.quick:
        args.K, args.steps, args.numpy_steps, args.repeats, args.budget = 4000, 200, 20, 1, 2e7
        args.jax_K = [4000, 20000]
    info = _core.build_info()
    print(f"# memsgd {memsgd.__version__}, {info['compiler']}, SIMD paths {info['simd_supported']} "
          f"(in use: {info['simd_active']}), {info['max_threads']} threads by default "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), load average "
          f"{os.getloadavg()[0]:.2f}")
    table_numpy(args)
    table_jax(args)
    if args.native:
        table_native(args)
    print("\n# component-steps per second; ratios from this process. On a shared machine rerun idle.")


if __name__ == "__main__":
    main()
