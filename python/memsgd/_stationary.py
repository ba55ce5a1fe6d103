"""Argument checks of the computations defined for stationary problems only (constant
parameters and one batch size): the theory functions and loss_at."""
from __future__ import annotations

from ._validation import instance_of
from .algorithms import MemoryAlgorithm
from .noise import Noise
from .schedules import Schedule
from .spectrum import Spectrum

__all__ = ["stationary", "spectrum_and_noise"]

_THEORY = "stability and asymptotics are defined for constant parameters"


def stationary(algorithm, why: str = _THEORY, instead: str = "use schedule.at(t) for a frozen step") -> MemoryAlgorithm:
    """The algorithm, which must be stationary (a [`MemoryAlgorithm`][memsgd.MemoryAlgorithm]); ``why`` and
    ``instead`` complete the message that refuses a Schedule."""
    if isinstance(algorithm, Schedule):
        raise ValueError(f"algorithm must be stationary (a MemoryAlgorithm): {why}; {instead}")
    return instance_of(algorithm, MemoryAlgorithm, "algorithm")


def spectrum_and_noise(spectrum, noise, use: str = "stability and asymptotics (stationary theory)",
                       instead: str | None = None) -> None:
    """Types of the problem, and a noise with one batch size, which ``use`` needs."""
    instance_of(spectrum, Spectrum, "spectrum")
    instance_of(noise, Noise, "noise")
    if noise.per_step:
        raise ValueError(f"noise must have one batch size for {use}, got a per-step batch size"
                         + ("" if instead is None else f"; {instead}"))
