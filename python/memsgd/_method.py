"""Which method computes a loss: the step-by-step engine or [`memsgd.loss_at`][memsgd.loss_at].

Both give the exact discrete-time loss (docs/long-horizons.md): the engine
([`memsgd.loss_curve`][memsgd.loss_curve], [`memsgd.loss_curves`][memsgd.loss_curves]) at a cost of ``steps x nodes x
step_cost(M)`` scalar updates, ``loss_at`` at a cost that does not grow with the step but only
for stationary algorithms with one batch size. ``"auto"`` (``memsgd curve``, [`memsgd.sweep`][memsgd.sweeps.sweep])
keeps the engine while a run is short and switches to ``loss_at`` above ``AUTO_WORK``.
"""
from __future__ import annotations

import numpy as np

from . import _core

__all__ = ["METHODS", "AUTO_WORK", "check_method", "engine_work"]

METHODS = ("auto", "engine", "loss_at")

# "auto" uses loss_at when one configuration's step-by-step run exceeds this many scalar updates.
# The engine does ~4e10 updates/s on two cores (AVX2; measured with bench/bench_engine.py), so this
# is ~2.5 s there, T ~ 1.1e6 steps on the default infinite power law (K = 4437, memory 1).
# loss_at costs ~0.1-0.3 s at any horizon on that problem (a few hundred LU solves per
# component), so above this line it is the faster method by 10x and more; below it the engine is
# fast enough and gives every step bitwise.
AUTO_WORK = 1e11


def check_method(method, name: str = "method") -> str:
    if not isinstance(method, str):
        raise TypeError(f"{name} must be one of {', '.join(map(repr, METHODS))}, got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    return method


def engine_work(algorithm, spectrum, steps: int) -> float:
    """Scalar updates of a step-by-step run: ``steps x nodes x step_cost(memory)`` (weight decay
    runs one more auxiliary vector, docs/math.md §9; read without importing the objects: a leaf)."""
    decays = bool(np.any(getattr(algorithm, "weight_decay", 0.0)))
    return float(steps) * spectrum.size * _core.step_cost(algorithm.memory + decays)
