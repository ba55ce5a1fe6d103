"""Argument checks shared by the theory functions."""
from __future__ import annotations

from ..algorithms import MemoryAlgorithm
from ..noise import Noise
from ..spectrum import Spectrum

__all__ = ["stationary", "spectrum_and_noise"]


def stationary(algorithm) -> MemoryAlgorithm:
    """The algorithm, which must be stationary (a :class:`~memsgd.MemoryAlgorithm`)."""
    if isinstance(algorithm, MemoryAlgorithm):
        return algorithm
    from ..schedules import Schedule
    if isinstance(algorithm, Schedule):
        raise ValueError("algorithm must be stationary (a MemoryAlgorithm): stability and asymptotics "
                         "are defined for constant parameters; use schedule.at(t) for a frozen step")
    raise TypeError(f"algorithm must be a MemoryAlgorithm, got {type(algorithm).__name__}")


def spectrum_and_noise(spectrum, noise) -> None:
    """Types of the problem, and a noise with one batch size (the theory is stationary)."""
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum must be a Spectrum, got {type(spectrum).__name__}")
    if not isinstance(noise, Noise):
        raise TypeError(f"noise must be a Noise, got {type(noise).__name__}")
    if noise.per_step:
        raise ValueError("noise must have one batch size for stability and asymptotics (stationary "
                         "theory), got a per-step batch size")
