"""Throughput of the exact engine (loss_curve) against a vectorised numpy recursion.

Prints component-steps per second for memory M = 0..3 at K = 2e4, T = 2e3, the same
problem through numpy (batched (M+1)x(M+1) matrices, what a researcher would write; run for
fewer steps since its rate does not depend on T), and the ratio. Both run in this process.

    python bench/bench_engine.py [--K 20000] [--steps 2000] [--numpy-steps 200] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from _timing import best_time

import memsgd
from memsgd import MemoryAlgorithm, Noise, Spectrum, loss_curve


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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--K", type=int, default=20000)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--numpy-steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    spec = Spectrum.power_law(2.0, 1.0, size=args.K)
    noise = Noise.gaussian(10)
    print(f"# K = {args.K}, T = {args.steps} (numpy: T = {args.numpy_steps}), Gaussian noise B = 10")
    print(f"# core threads: {memsgd._core.max_threads()}  (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    header = f"{'M':>2}  {'memsgd steps/s':>15}  {'numpy steps/s':>14}  {'ratio':>7}  {'max rel diff':>12}"
    print(header)
    for M in range(4):
        algo = algorithm(M)
        t_core, curve = best_time(lambda: loss_curve(algo, spec, noise, args.steps), args.repeats)
        t_np, ref = best_time(lambda: numpy_recursion(algo, spec.eigenvalues, spec.coefficients2, 1.0, -1.0, 10,
                                                      args.numpy_steps), 1)
        rate_core = args.K * args.steps / t_core
        rate_np = args.K * args.numpy_steps / t_np
        n = args.numpy_steps + 1
        diff = np.max(np.abs(curve.loss[:n] - ref) / np.abs(ref))
        print(f"{M:>2}  {rate_core:>15.3e}  {rate_np:>14.3e}  {rate_core / rate_np:>7.1f}  {diff:>12.1e}")
    print("# component-steps per second; ratio = memsgd / numpy; max rel diff over the numpy steps")


if __name__ == "__main__":
    main()
