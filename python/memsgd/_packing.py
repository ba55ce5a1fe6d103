"""Array packing for the core: per-step parameter and noise arrays of a run, their sizes (for the
memory guard, ``_validation.require_memory``), and the chunking of configurations by those sizes."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .algorithms import MemoryAlgorithm

__all__ = ["spectrum_arrays", "parameter_arrays", "weight_decay_array", "core_algorithm", "noise_arrays",
           "parameter_bytes", "noise_bytes", "per_configuration",
           "chunks", "CHUNK_PARAMETER_BYTES"]

# Per-step parameter arrays of schedules are built per chunk of configurations, at most this many
# bytes at a time (stationary configurations need none and go in one call).
CHUNK_PARAMETER_BYTES = 2e9


def spectrum_arrays(spectrum, scales=None, decay_scale=None) -> tuple:
    """The spectrum entry of every ``_core`` run: ``(eigenvalues, weights, scales)``, the scales of the
    initial second moment ``c_k^2`` unless given (``lambda_k`` for the noise propagators), plus the
    per-component weight-decay scale ``kappa_k`` as a fourth array when given (the engine's affine
    state, ``memsgd._affine.forward_problem``)."""
    arrays = (spectrum.eigenvalues, spectrum.weights, spectrum.coefficients2 if scales is None else scales)
    return arrays if decay_scale is None else arrays + (decay_scale,)


def parameter_arrays(algorithm, steps: int):
    """The algorithm entry of every ``_core`` call: per-step parameter arrays ``(alpha, b, c, D, e)``,
    one row for a stationary algorithm (what the core's stationary maps take)."""
    if isinstance(algorithm, MemoryAlgorithm):
        M = algorithm.memory
        return (np.array([algorithm.alpha]), algorithm.b.reshape(1, M), algorithm.c.reshape(1, M),
                algorithm.D.reshape(1, M, M), algorithm.e.reshape(1, M))
    if algorithm.length == 0:  # steps == 0 here: the core needs a row, which it never uses
        M = algorithm.memory
        return (np.zeros(1), np.zeros((1, M)), np.zeros((1, M)), np.zeros((1, M, M)), np.zeros((1, M)))
    return algorithm.parameters(max(steps, 1))


def weight_decay_array(algorithm, steps: int):
    """The per-step weight decay ``rho_t`` for the core's affine state (rows as
    ``parameter_arrays``), or None without weight decay (the core's plain state). For an
    algorithm of ``memsgd._affine.forward_problem`` (readout and preconditioner transformed away)."""
    if not np.any(algorithm.weight_decay):
        return None
    if isinstance(algorithm, MemoryAlgorithm):
        return np.array([algorithm.weight_decay])
    if algorithm.length == 0:
        return np.zeros(1)
    return algorithm.weight_decays(max(steps, 1))


def core_algorithm(algorithm, steps: int) -> tuple:
    """The algorithm entry of the engine's runs (``_core.evolve``, ``_core.evolve_batch``):
    ``(alpha, b, c, D, e)``, plus the weight decay (``weight_decay_array``) as a sixth array when
    there is some (the affine state)."""
    rho = weight_decay_array(algorithm, steps)
    arrays = tuple(parameter_arrays(algorithm, steps))
    return arrays if rho is None else arrays + (rho,)


def noise_arrays(noise, steps: int):
    """The noise entry of every ``_core`` call: ``(tau1/B_t, tau2/B_t, sigma2/B_t)``, one entry each for
    a constant batch size; the label-noise source is None without label noise (the core then adds
    nothing)."""
    if not noise.per_step:
        label = np.array([noise.label_source]) if noise.label_noise != 0.0 else None
        return np.array([noise.coupling]), np.array([noise.self_noise]), label
    n = max(steps, 1)  # the core needs an entry even for steps = 0
    label = noise.label_coefficients(n) if noise.label_noise != 0.0 else None
    return (*noise.coefficients(n), label)


def parameter_bytes(algorithm, steps: int) -> float:
    """Bytes of the per-step parameter arrays Python builds for the core (0 for stationary)."""
    if isinstance(algorithm, MemoryAlgorithm):
        return 0.0
    M = algorithm.memory
    return 8.0 * max(steps, 1) * (1 + 3 * M + M * M + (1 if np.any(algorithm.weight_decay) else 0))


def noise_bytes(noise, steps: int) -> float:
    """Bytes of the per-step noise arrays (0 for a constant batch size; a third array with label noise)."""
    return (24.0 if noise.label_noise else 16.0) * steps if noise.per_step else 0.0


def per_configuration(value, kind, name: str, count: int) -> list:
    """One shared ``kind`` object, or a sequence of exactly ``count`` of them."""
    if isinstance(value, kind):
        return [value] * count
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a {kind.__name__} or a sequence of {count} of them, "
                        f"got {type(value).__name__}")
    items = list(value)
    if len(items) != count:
        raise ValueError(f"{name} must be one {kind.__name__} or a sequence with one per algorithm "
                         f"({count}), got {len(items)}")
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise TypeError(f"{name}[{i}] must be a {kind.__name__}, got {type(item).__name__}")
    return items


def chunks(param_bytes) -> list:
    """Split configurations [0, C) so that each chunk's per-step arrays stay under
    ``CHUNK_PARAMETER_BYTES``: a list of ``(start, stop)``."""
    out, start, acc = [], 0, 0.0
    for i, b in enumerate(param_bytes):
        if i > start and acc + b > CHUNK_PARAMETER_BYTES:
            out.append((start, i))
            start, acc = i, 0.0
        acc += b
    out.append((start, len(param_bytes)))
    return out
