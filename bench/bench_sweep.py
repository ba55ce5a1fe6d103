"""Batched engine (loss_curves) against loops, JAX, and the single-curve thread policy.

(a) a 64-configuration heavy-ball grid (8 learning rates x 8 momenta) on the default infinite
    power law nu = 1.5, kappa = 0.75 (about 4.9e3 nodes), T = 2000: one ``loss_curves`` call
    against a serial Python loop of ``loss_curve`` (with ``--threads`` threads, and with
    threads=1, which is what the old engine did at this size).
(b) the same grid as a JAX ``vmap`` of a hand-written ``lax.scan`` in float64 (skipped without JAX).
(c) one curve at K ~ 5e3: time per step of a fixed team of 2 threads synchronising every step
    (a waiting thread sleeps after a short spin), of the default (adaptive: the team only while it
    pays) and of one thread; on an idle machine and with one core busy (this script starts a
    spinning process).

    python bench/bench_sweep.py [--steps 2000] [--threads 2] [--quick]

Ratios are taken in this process. The machine may be shared: rerun on an idle one.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import numpy as np
from _jax_baseline import compiled, heavy_ball_curve
from _timing import best_time

import memsgd
from memsgd import Noise, Spectrum, _core, heavy_ball, loss_curve, loss_curves


def grid(n=8):
    lrs = np.geomspace(0.02, 0.5, n)
    momenta = np.linspace(0.0, 0.9, n)
    return [(lr, m) for lr in lrs for m in momenta]


def jax_grid(spec, params, batch, steps):
    """vmap over configurations of the hand-written heavy-ball lax.scan (float64)."""
    import jax
    import jax.numpy as jnp

    curve = heavy_ball_curve(spec, batch, steps)          # switches JAX to float64 first
    lrs = jnp.asarray([p[0] for p in params])
    betas = jnp.asarray([p[1] for p in params])
    return compiled(jax.vmap(curve), lrs, betas)


def part_ab(args, spec, noise):
    params = grid()
    algos = [heavy_ball(lr, m) for lr, m in params]
    C, K, T = len(algos), spec.size, args.steps
    work = C * K * T
    print(f"\n## (a, b) {C}-configuration heavy-ball grid, K = {K}, T = {T}, Gaussian noise B = 10, "
          f"{args.threads} threads")
    t_batch, batch = best_time(lambda: loss_curves(algos, spec, noise, T, threads=args.threads), args.repeats)
    t_rec, _ = best_time(lambda: loss_curves(algos, spec, noise, T, record=400, threads=args.threads), args.repeats)
    t_loop, loop = best_time(lambda: [loss_curve(a, spec, noise, T, threads=args.threads).loss for a in algos],
                             args.repeats)
    t_loop1, _ = best_time(lambda: [loss_curve(a, spec, noise, T, threads=1).loss for a in algos], args.repeats)
    assert all(np.array_equal(batch.loss[i], loop[i]) for i in range(C)), "batched != loop"
    rows = [("loss_curves (every step)", t_batch), ("loss_curves (record=400)", t_rec),
            (f"loop of loss_curve (threads={args.threads})", t_loop), ("loop of loss_curve (threads=1)", t_loop1)]
    try:
        run = jax_grid(spec, params, 10.0, T)
        t_jax, jl = best_time(run, args.repeats)
        ok = np.isfinite(batch.loss[:, :T])
        diff = np.max(np.abs(jl[ok] - batch.loss[:, :T][ok]) / batch.loss[:, :T][ok])
        rows.append((f"JAX vmap(lax.scan) (max rel diff {diff:.1e})", t_jax))
    except ImportError:
        print("# JAX not installed: (b) skipped (pip install 'memsgd[jax]')")
    print(f"{'method':<44}  {'seconds':>8}  {'c-steps/s':>10}  {'loss_curves is x faster':>23}")
    for name, t in rows:
        print(f"{name:<44}  {t:>8.3f}  {work / t:>10.3e}  {t / t_batch:>23.2f}")


def spin():
    while True:
        pass


def part_c(args, spec):
    hb = heavy_ball(0.1, 0.9)
    arrays = ((spec.eigenvalues, spec.weights, spec.coefficients2),
              (np.array([hb.alpha]), hb.b.reshape(1, 1), hb.c.reshape(1, 1), hb.D.reshape(1, 1, 1), hb.e.reshape(1, 1)),
              (np.array([0.1]), np.array([-0.1])))
    T = args.small_steps
    variants = [("2-thread team, spin-then-sleep barrier", dict(threads=2, adaptive_threads=False)),
                ("new default (adaptive, threads=2)", dict(threads=2)),
                ("one thread", dict(threads=1))]
    print(f"\n## (c) one curve, K = {spec.size}, M = 1, {T} steps: microseconds per step")
    print(f"{'strategy':<42}  {'idle':>8}  {'one core busy':>14}")
    results = {}
    for busy in (False, True):
        proc = None
        if busy:
            proc = multiprocessing.get_context("spawn").Process(target=spin, daemon=True)
            proc.start()
            time.sleep(0.2)
        try:
            for name, kw in variants:
                t, _ = best_time(lambda: _core.evolve(*arrays, T, **kw), args.repeats)
                results[(name, busy)] = 1e6 * t / T
        finally:
            if proc is not None:
                proc.terminate()
                proc.join()
    for name, _ in variants:
        print(f"{name:<42}  {results[(name, False)]:>8.2f}  {results[(name, True)]:>14.2f}")
    old, new = variants[0][0], variants[1][0]
    print(f"# default / fixed team time per step: idle {results[(new, False)] / results[(old, False)]:.2f}, "
          f"one core busy {results[(new, True)] / results[(old, True)]:.2f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--small-steps", type=int, default=20000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small runs (a smoke test)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.small_steps, args.repeats = 200, 2000, 1
    spec = Spectrum.power_law(1.5, 0.75)
    info = _core.build_info()
    print(f"# memsgd {memsgd.__version__}, SIMD {info['simd_active']}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    part_ab(args, spec, Noise.gaussian(10))
    part_c(args, spec)
    print("\n# ratios from this process; on a shared machine rerun idle")


if __name__ == "__main__":
    main()
