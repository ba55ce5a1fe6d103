"""Monte Carlo of real mini-batch SGD with memory: the independent check of the exact engine.

Inputs have independent coordinates along the eigenbasis, ``x_k = sqrt(lambda_k) z_k`` with
standardized ``z_k`` (zero mean, unit variance, fourth moment ``m4``). For such data the noise
operator ``Sigma(C) = E[x x^T C x x^T] - H C H`` has the diagonal

    Sigma(C)_kk = lambda_k Tr(H C) + (m4 - 2) lambda_k^2 C_kk

(the terms ``E[x_k^2 x_i x_j]`` vanish unless i = j, and ``E[x_k^4] = m4 lambda_k^2``), and the
exact mean-loss recursion (docs/math.md §3) only sees that diagonal, so the SE coefficients
``tau1 = 1, tau2 = 2 - m4`` give the exact expected loss (docs/theory.md "Which tau").

The affine model (docs/math.md §9) is simulated as it is defined, not through the reductions
the exact engine uses (``memsgd._affine``), so that the simulation checks them: noisy labels
``y = <x, w*> + eps``, the weight decay added to the batch gradient at the absolute gradient
point, the preconditioner multiplying the whole gradient per coordinate, the loss read at the
readout point ``w + r^T u``.
"""
from __future__ import annotations

import math
import numbers
from typing import Union

import numpy as np

from ._packing import parameter_arrays
from ._validation import instance_of, nonnegative_scalar, positive_int, real_scalar, require_memory, step_count
from .algorithms import MemoryAlgorithm
from .noise import Noise
from .schedules import Schedule
from .spectrum import Spectrum

__all__ = ["simulate_sgd", "noise_for_data", "FOURTH_MOMENTS"]

# Fourth moments E[z^4] of the standardized coordinate distributions simulate_sgd draws.
FOURTH_MOMENTS = {"gaussian": 3.0, "rademacher": 1.0, "uniform": 9.0 / 5.0, "laplace": 6.0}


def _gaussian(rng, shape):
    return rng.standard_normal(shape)


def _rademacher(rng, shape):
    return rng.integers(0, 2, size=shape).astype(np.float64) * 2.0 - 1.0


def _uniform(rng, shape):
    return rng.uniform(-math.sqrt(3.0), math.sqrt(3.0), size=shape)


def _laplace(rng, shape):
    return rng.laplace(0.0, 1.0 / math.sqrt(2.0), size=shape)


_SAMPLERS = {"gaussian": _gaussian, "rademacher": _rademacher, "uniform": _uniform, "laplace": _laplace}


def noise_for_data(data, batch_size) -> Noise:
    """The SE noise that is exact for [`simulate_sgd`][memsgd.simulate_sgd] with ``data``:
    ``Noise(batch_size, 1, 2 - m4)``.

    ``data``: a name in ``FOURTH_MOMENTS`` or the fourth moment ``m4 >= 1`` of a user sampler's
    standardized coordinates (``m4 >= (E z^2)^2 = 1``, so ``tau2 = 2 - m4 <= 1 = tau1``).

    Examples:
        >>> from memsgd.simulation import noise_for_data
        >>> noise_for_data("gaussian", 10)     # E z^4 = 3
        Noise(batch_size=10, tau1=1, tau2=-1)
        >>> noise_for_data("rademacher", 10)   # E z^4 = 1
        Noise(batch_size=10, tau1=1, tau2=1)
    """
    if isinstance(data, str):
        if data not in FOURTH_MOMENTS:
            raise ValueError(f"data must be one of {sorted(FOURTH_MOMENTS)} or a fourth moment, got {data!r}")
        m4 = FOURTH_MOMENTS[data]
    else:
        m4 = real_scalar(data, "data (fourth moment)")
        if m4 < 1:
            raise ValueError(f"a fourth moment of unit-variance data is >= 1, got {m4}")
    return Noise(batch_size, 1.0, 2.0 - m4)


def _batch_sizes(batch_size, steps: int) -> np.ndarray:
    """Per-step integer batch sizes B_0..B_{steps-1} from an int, an integer array or a Noise."""
    if isinstance(batch_size, Noise):
        batch_size = batch_size.batch_size
    if isinstance(batch_size, np.ndarray) and batch_size.ndim == 0:
        batch_size = batch_size[()]
    if isinstance(batch_size, numbers.Real) and not isinstance(batch_size, numbers.Integral) \
            and not isinstance(batch_size, (bool, np.bool_)) and float(batch_size).is_integer():
        batch_size = int(batch_size)   # a Noise stores per-run batch sizes as numbers
    if not isinstance(batch_size, (list, tuple, np.ndarray)):
        return np.full(steps, positive_int(batch_size, "batch_size"), dtype=np.int64)
    raw = np.asarray(batch_size)
    if raw.ndim != 1 or raw.dtype.kind not in "iuf":
        raise TypeError(f"batch_size must be an integer or a 1-D array of per-step integers, got {raw.dtype} "
                        f"of shape {raw.shape}")
    if raw.size < steps:
        raise ValueError(f"batch_size has {raw.size} per-step entries, fewer than steps = {steps}")
    b = raw[:steps].astype(np.float64)
    if not np.all(np.isfinite(b)) or np.any(b != np.round(b)) or np.any(b < 1):
        raise ValueError("batch_size must hold per-step integers >= 1 for a simulation (a batch is a count "
                         "of samples; inf has no samples to draw)")
    return b.astype(np.int64)


def _sampler(data):
    if isinstance(data, str):
        if data not in _SAMPLERS:
            raise ValueError(f"data must be one of {sorted(_SAMPLERS)} or a callable sampler, got {data!r}")
        return _SAMPLERS[data]
    if callable(data):
        def draw(rng, shape):
            z = np.asarray(data(rng, shape), dtype=np.float64)
            if z.shape != shape:
                raise ValueError(f"data sampler must return an array of shape {shape}, got {z.shape}")
            if not np.all(np.isfinite(z)):
                raise ValueError("data sampler returned non-finite values")
            return z
        return draw
    raise TypeError(f"data must be a distribution name or a callable (rng, shape) -> array, got {type(data).__name__}")


def simulate_sgd(algorithm: Union[MemoryAlgorithm, Schedule], spectrum: Spectrum, batch_size, steps, runs, seed=0,
                 return_stderr: bool = False, chunk_runs: int = 64, data="gaussian", *, label_noise=None):
    """Monte Carlo mean loss of real mini-batch SGD with memory.

    Inputs ``x_k = sqrt(lambda_k) z_k`` in the eigenbasis with i.i.d. standardized ``z_k`` drawn by
    ``data``: ``"gaussian"`` (default), ``"rademacher"`` (+-1), ``"uniform"`` (on [-sqrt 3, sqrt 3]),
    ``"laplace"`` (scale 1/sqrt 2), or a callable ``data(rng, shape) -> array`` of independent,
    zero-mean, unit-variance samples. Targets ``y = <x, w*>`` with ``w*_k = sqrt(c_k^2)``,
    ``w_0 = u_0 = 0``; each step draws a fresh batch and applies the matrix-form update with the batch
    gradient ``(1/B_t) sum_i x_i x_i^T (w + e^T u - w*)``. ``batch_size``: an integer, a 1-D array of
    per-step integers ``B_t`` (step t uses ``B_t`` samples) or a [`Noise`][memsgd.Noise] (its batch size).
    The exact engine with [`noise_for_data`][memsgd.simulation.noise_for_data] (``tau1 = 1, tau2 = 2 - m4``)
    gives the expected loss of this process exactly. Finite spectra only (unit weights). Returns the mean of
    ``L_t`` over ``runs``, shape (steps+1,); with ``return_stderr`` also its standard error.

    The affine model (docs/math.md §9), literally: ``label_noise`` ``sigma2`` (default: that of
    ``batch_size`` when it is a [`Noise`][memsgd.Noise], else 0) draws ``y = <x, w*> + eps`` with Gaussian
    ``eps`` of variance ``sigma2``; the algorithm's weight decay ``rho_t`` adds ``rho_t (w + e^T u)``
    (absolute weights at the gradient point) to the batch gradient, its preconditioner multiplies
    that whole gradient along ``e_k`` by ``(lambda_k / lambda_max)^(-p)``, and ``L_t`` is the excess
    risk ``1/2 sum lambda_k (w + r^T u - w*)_k^2`` at its readout ``r`` (the population risk adds
    ``sigma2 / 2``).

    Examples:
        Monte Carlo of real SGD against the exact expected loss (Rademacher data: ``tau2 = 1``):

        >>> import numpy as np, memsgd
        >>> spec = memsgd.Spectrum([1.0, 0.5], [1.0, 1.0])
        >>> mean, stderr = memsgd.simulate_sgd(memsgd.gd(0.5), spec, 4, 10, runs=4000, seed=0,
        ...                                    data="rademacher", return_stderr=True)
        >>> from memsgd.simulation import noise_for_data
        >>> exact = memsgd.loss_curve(memsgd.gd(0.5), spec, noise_for_data("rademacher", 4), 10).loss
        >>> bool(np.all(np.abs(mean - exact) <= 5 * stderr + 1e-15))
        True
    """
    instance_of(spectrum, Spectrum, "spectrum")
    if spectrum.infinite or not np.all(spectrum.weights == 1.0):
        raise ValueError("spectrum must be finite with unit weights for simulate_sgd "
                         "(Monte Carlo needs real dimensions)")
    instance_of(algorithm, (MemoryAlgorithm, Schedule), "algorithm")
    steps = step_count(steps)
    batches = _batch_sizes(batch_size, steps)
    runs = positive_int(runs, "runs")
    chunk_runs = positive_int(chunk_runs, "chunk_runs")
    draw = _sampler(data)
    if steps:   # one step holds a batch of chunk x B_t x K samples, and two temporaries of that size
        require_memory(3 * 8.0 * min(chunk_runs, runs) * int(batches.max()) * spectrum.size,
                       f"simulate_sgd with batch size {int(batches.max())} on {spectrum.size} dimensions")
    if not (seed is None or isinstance(seed, (int, np.integer, np.random.SeedSequence))) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, a numpy SeedSequence or None, got {type(seed).__name__}")
    if isinstance(seed, (int, np.integer)) and seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if label_noise is None:
        label_noise = batch_size.label_noise if isinstance(batch_size, Noise) else 0.0
    sigma = np.sqrt(nonnegative_scalar(label_noise, "label_noise"))
    alpha, b, c, D, e = (parameter_arrays(algorithm, steps) if isinstance(algorithm, Schedule)
                         else parameter_arrays(algorithm, 1))
    stationary = isinstance(algorithm, MemoryAlgorithm)
    rho = (np.full(max(steps, 1), algorithm.weight_decay) if stationary else algorithm.weight_decays(steps))
    readout = algorithm.readout
    lam = spectrum.eigenvalues
    sqrt_lam = np.sqrt(lam)
    w_star = np.sqrt(spectrum.coefficients2)
    precond = (lam / lam.max()) ** (-algorithm.preconditioner)
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
            B = int(batches[t])
            point = r + np.einsum("m,rmk->rk", e[i], u)             # gradient point minus w*
            x = draw(rng, (R, B, K)) * sqrt_lam
            residual = np.einsum("rbk,rk->rb", x, point)            # <x, q> - y = <x, q - w*> - eps
            if sigma:
                residual -= sigma * rng.standard_normal((R, B))
            grad = np.einsum("rbk,rb->rk", x, residual) / B
            if rho[i]:
                grad += rho[i] * (point + w_star)                   # at the absolute gradient point
            grad *= precond
            r_new = r + np.einsum("m,rmk->rk", b[i], u) - alpha[i] * grad
            u = np.einsum("mn,rnk->rmk", D[i], u) - c[i][None, :, None] * grad[:, None, :]
            r = r_new
            read = r + np.einsum("m,rmk->rk", readout, u) if M else r
            losses[t + 1] = 0.5 * (read ** 2) @ lam
        sums += losses.sum(axis=1)
        sq_sums += (losses ** 2).sum(axis=1)
    mean = sums / runs
    if not return_stderr:
        return mean
    var = np.maximum(sq_sums / runs - mean ** 2, 0.0) * runs / max(runs - 1, 1)
    return mean, np.sqrt(var / runs)
