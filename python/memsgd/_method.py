"""Which method computes a loss: the step-by-step engine or :func:`memsgd.loss_at`.

Both give the exact discrete-time loss (docs/long-horizons.md): the engine
(:func:`memsgd.loss_curve`, :func:`memsgd.loss_curves`) at a cost of ``steps x nodes x
step_cost(M)`` scalar updates, ``loss_at`` at a cost that does not grow with the step but only
for stationary algorithms with one batch size. ``"auto"`` (``memsgd curve``, :func:`memsgd.sweep`)
keeps the engine while a run is short and switches to ``loss_at`` above :data:`AUTO_WORK`.
"""
from __future__ import annotations

import math
import time

from . import _core

__all__ = ["METHODS", "AUTO_WORK", "LONG_WORK", "check_method", "engine_work", "engine_seconds", "describe_duration"]

METHODS = ("auto", "engine", "loss_at")

# "auto" uses loss_at when one configuration's step-by-step run exceeds this many scalar updates.
# The engine does ~4e10 updates/s on two cores (AVX2; measured with bench/bench_engine.py), so this
# is ~2.5 s there, T ~ 1.1e6 steps on the default infinite power law (K = 4437, memory 1).
# loss_at costs ~0.1-0.3 s at any horizon on that problem (a few hundred LU solves per
# component), so above this line it is the faster method by 10x and more; below it the engine is
# fast enough and gives every step bitwise.
AUTO_WORK = 1e11
# The command line refuses step-by-step runs beyond this many scalar updates (100x AUTO_WORK:
# several minutes on two cores) before starting them, saying how long they would take, unless
# the user asks for the engine explicitly (``curve --method engine``).
LONG_WORK = 100 * AUTO_WORK


def check_method(method, name: str = "method") -> str:
    if not isinstance(method, str):
        raise TypeError(f"{name} must be one of {', '.join(map(repr, METHODS))}, got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    return method


def engine_work(algorithm, spectrum, steps: int) -> float:
    """Scalar updates of a step-by-step run: ``steps x nodes x step_cost(memory)``."""
    return float(steps) * spectrum.size * _core.step_cost(algorithm.memory)


# The calibration run of engine_seconds does about this much work (~10 ms).
_CALIBRATION_WORK = 4e8


def engine_seconds(algorithm, spectrum, noise, steps: int) -> float:
    """Wall time a step-by-step run of ``steps`` steps would take on this machine, extrapolated
    from a short run of the same configuration (for messages; not reproducible)."""
    from .dynamics import loss_curve

    per_step = max(engine_work(algorithm, spectrum, 1), 1.0)
    probe = int(min(steps, max(16, math.ceil(_CALIBRATION_WORK / per_step))))
    start = time.perf_counter()
    loss_curve(algorithm, spectrum, noise, probe, progress=False)
    return (time.perf_counter() - start) * steps / max(probe, 1)


def describe_duration(seconds: float) -> str:
    """E.g. ``40 s``, ``12 min``, ``3.1 h``, ``5.2 days``."""
    if seconds < 90:
        return f"{seconds:.2g} s"
    if seconds < 5400:
        return f"{seconds / 60:.2g} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.2g} h"
    return f"{seconds / 86400:.2g} days"
