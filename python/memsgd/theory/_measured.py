"""Loss exponents measured on exact curves over a grid of power laws (docs/math.md §6), in one
batched run of the exact engine."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .._validation import instance_of, positive_scalar, step_count
from ..algorithms import MemoryAlgorithm
from ..dynamics import loss_curves
from ..noise import Noise
from ..schedules import Schedule
from ..spectrum import Spectrum
from ._fitting import MIN_MEASURE_STEPS, exponent_at, fitted_steps, number_list

__all__ = ["measured_exponents", "MIN_MEASURE_STEPS"]


def measured_exponents(algorithm, noise: Noise, nus, zetas, steps: int, *, size=None, scale=1.0, q=1.0,
                       threads: Optional[int] = None, progress: Optional[bool] = None) -> np.ndarray:
    """Exponents fitted on the exact loss over a grid of power laws ``(nu, zeta)``, ``kappa = zeta nu``.

    ``p[i, j]`` is the slope of ``-log L_t`` against ``log t`` over ``[T/10, T]`` (``T = steps``) of
    ``algorithm`` on ``Spectrum.power_law(nus[i], zetas[j] * nus[i], size, scale, q)`` with ``noise``:
    bitwise ``fit_exponent(loss_curve(...).loss, T/10, T)``. All curves come from one call of
    [`memsgd.loss_curves`][memsgd.loss_curves], which keeps only the (at most 200) steps the fit reads. ``nan``
    where the run diverged within T (docs/math.md §8) or the loss is not positive at a fitted step.
    Without divergence an unstable run gives a negative exponent (the loss grows).

    ``algorithm``: a ``MemoryAlgorithm`` or a ``Schedule``; ``threads``, ``progress`` as in
    [`memsgd.loss_curves`][memsgd.loss_curves] (progress over grid points). Returns an array ``(len(nus), len(zetas))``.

    Examples:
        Noiseless SGD at ``alpha_eff = 1`` on ``nu = 2, zeta = 0.5``: the fitted exponent over
        ``[T/10, T]`` approaches the predicted ``zeta``:

        >>> import memsgd
        >>> from memsgd.theory import measured_exponents
        >>> exponents = measured_exponents(memsgd.gd(1.0), memsgd.Noise.none(), [2.0], [0.5], 2000)
        >>> exponents.shape, bool(abs(exponents[0, 0] - 0.5) < 0.01)
        ((1, 1), True)
    """
    instance_of(algorithm, (MemoryAlgorithm, Schedule), "algorithm")
    instance_of(noise, Noise, "noise")
    nus = [positive_scalar(v, "nus") for v in number_list(nus, "nus")]
    zetas = [positive_scalar(v, "zetas") for v in number_list(zetas, "zetas")]
    steps = step_count(steps, minimum=1)
    if steps < MIN_MEASURE_STEPS:
        raise ValueError(f"steps must be >= {MIN_MEASURE_STEPS} (the exponent is fitted on [steps/10, steps]), "
                         f"got {steps}")
    fitted = fitted_steps(steps / 10, steps)
    spectra = [Spectrum.power_law(nu, zeta * nu, size=size, scale=scale, q=q) for nu in nus for zeta in zetas]
    curves = loss_curves([algorithm] * len(spectra), spectra, noise, steps, fitted, threads=threads,
                         progress=progress)
    out = np.full(len(spectra), math.nan)
    for i, (loss, diverged_at) in enumerate(zip(curves.loss, curves.diverged_at)):
        if diverged_at < 0 and np.all(np.isfinite(loss) & (loss > 0)):
            out[i] = exponent_at(fitted, loss)
    return out.reshape(len(nus), len(zetas))
