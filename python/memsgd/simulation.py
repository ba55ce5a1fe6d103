"""Monte Carlo of real mini-batch SGD with memory: the independent check of the exact engine."""
from __future__ import annotations

import numpy as np

from ._validation import nonnegative_int, positive_int
from .algorithms import MemoryAlgorithm
from .dynamics import Algorithm, _parameter_arrays
from .schedules import Schedule
from .spectrum import Spectrum

__all__ = ["simulate_sgd"]


def simulate_sgd(algorithm: Algorithm, spectrum: Spectrum, batch_size, steps, runs, seed=0,
                 return_stderr: bool = False, chunk_runs: int = 64):
    """Monte Carlo mean loss of real mini-batch SGD with memory on Gaussian data.

    Inputs ``x ~ N(0, diag(eigenvalues))`` (the eigenbasis), targets ``y = <x, w*>`` with
    ``w*_k = sqrt(c_k^2)``, ``w_0 = u_0 = 0``; each step draws a fresh batch and applies the
    matrix-form update with the batch gradient ``(1/B) sum_i x_i x_i^T (w + e^T u - w*)``.
    Finite spectra only (unit weights). Returns the mean of ``L_t`` over ``runs``, shape
    (steps+1,); with ``return_stderr`` also its standard error.
    """
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum must be a Spectrum, got {type(spectrum).__name__}")
    if spectrum.infinite or not np.all(spectrum.weights == 1.0):
        raise ValueError("spectrum must be finite with unit weights for simulate_sgd (Monte Carlo needs real dimensions)")
    if not isinstance(algorithm, (MemoryAlgorithm, Schedule)):
        raise TypeError(f"algorithm must be a MemoryAlgorithm or a Schedule, got {type(algorithm).__name__}")
    B = positive_int(batch_size, "batch_size")
    steps = nonnegative_int(steps, "steps")
    runs = positive_int(runs, "runs")
    chunk_runs = positive_int(chunk_runs, "chunk_runs")
    if not (seed is None or isinstance(seed, (int, np.integer, np.random.SeedSequence))) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, a numpy SeedSequence or None, got {type(seed).__name__}")
    if isinstance(seed, (int, np.integer)) and seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    alpha, b, c, D, e = (_parameter_arrays(algorithm, steps) if isinstance(algorithm, Schedule)
                         else _parameter_arrays(algorithm, 1))
    stationary = isinstance(algorithm, MemoryAlgorithm)
    lam = spectrum.eigenvalues
    sqrt_lam = np.sqrt(lam)
    w_star = np.sqrt(spectrum.coefficients2)
    M, K = algorithm.memory, lam.size
    rng = np.random.default_rng(seed)
    sums = np.zeros(steps + 1)
    sq_sums = np.zeros(steps + 1)
    for start in range(0, runs, chunk_runs):
        R = min(chunk_runs, runs - start)
        r = np.tile(-w_star, (R, 1))          # w - w*
        u = np.zeros((R, M, K))
        losses = np.empty((steps + 1, R))
        losses[0] = 0.5 * (r ** 2) @ lam
        for t in range(steps):
            i = 0 if stationary else t
            point = r + np.einsum("m,rmk->rk", e[i], u)
            x = rng.standard_normal((R, B, K)) * sqrt_lam
            grad = np.einsum("rbk,rb->rk", x, np.einsum("rbk,rk->rb", x, point)) / B
            r_new = r + np.einsum("m,rmk->rk", b[i], u) - alpha[i] * grad
            u = np.einsum("mn,rnk->rmk", D[i], u) - c[i][None, :, None] * grad[:, None, :]
            r = r_new
            losses[t + 1] = 0.5 * (r ** 2) @ lam
        sums += losses.sum(axis=1)
        sq_sums += (losses ** 2).sum(axis=1)
    mean = sums / runs
    if not return_stderr:
        return mean
    var = np.maximum(sq_sums / runs - mean ** 2, 0.0) * runs / max(runs - 1, 1)
    return mean, np.sqrt(var / runs)
