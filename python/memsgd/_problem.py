"""Argument checks of a problem (algorithm, spectrum, noise, steps) for the step-by-step runs:
loss_curve, loss_curves, propagators and loss_gradient. They need the problem's classes, so they
sit above them (``_validation`` holds the checks of plain values; ``_stationary`` those of the
computations defined for constant parameters only)."""
from __future__ import annotations

from ._validation import instance_of, step_count
from .algorithms import MemoryAlgorithm
from .noise import Noise
from .schedules import Schedule
from .spectrum import Spectrum

__all__ = ["check_algorithm", "check_problem", "check_schedule_length", "check_batch_sizes"]


def check_algorithm(algorithm, name: str = "algorithm"):
    """A ``MemoryAlgorithm`` or a ``Schedule``."""
    return instance_of(algorithm, (MemoryAlgorithm, Schedule), name)


def check_schedule_length(algorithm, steps: int, name: str = "algorithm") -> None:
    """A schedule of finite length covers ``steps`` steps."""
    if isinstance(algorithm, Schedule) and algorithm.length is not None and steps > algorithm.length:
        raise ValueError(f"steps must be <= the schedule's length {algorithm.length} "
                         f"({name} is too short), got {steps}")


def check_batch_sizes(noise: Noise, steps: int, name: str = "noise") -> None:
    """A per-step batch size covers ``steps`` steps."""
    if noise.per_step and noise.batch_size.size < steps:
        raise ValueError(f"{name} has {noise.batch_size.size} per-step batch sizes, fewer than steps = {steps}")


def check_problem(algorithm, spectrum, noise, steps, name: str = "algorithm") -> int:
    """Types of the problem, ``steps`` (``memsgd._validation.step_count``), and a schedule and
    per-step batch sizes that cover them; returns the steps as an int."""
    check_algorithm(algorithm, name)
    instance_of(spectrum, Spectrum, "spectrum")
    instance_of(noise, Noise, "noise")
    steps = step_count(steps)
    check_schedule_length(algorithm, steps, name)
    check_batch_sizes(noise, steps)
    return steps
