"""Hyperparameter tuning by the exact engine: evaluate every point of a small grid.

Each grid point is scored by the exact expected loss (``memsgd.loss_curve``), so tuning is
deterministic and free of sampling noise. A diverging curve scores ``inf``.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .._progress import Tracker
from .._steps import log_spaced_steps
from .._validation import positive_int
from ..algorithms import MemoryAlgorithm
from ..dynamics import loss_curve
from ..noise import Noise
from ..schedules import Schedule
from ..spectrum import Spectrum
__all__ = ["OBJECTIVES", "TuneResult", "grid_points", "score_curve", "tune"]

OBJECTIVES = ("final", "mean_log")


@dataclass
class TuneResult:
    """``best``: the winning parameters; ``score``: its objective value; ``trials``: every
    grid point as ``{"params", "score", "final_loss", "diverged_at"}`` in grid order;
    ``curve``: the winner's full loss curve (``None`` if every point diverged)."""

    best: Optional[Dict[str, float]]
    score: float
    trials: List[dict] = field(default_factory=list)
    curve: Optional[np.ndarray] = field(default=None, repr=False)


def grid_points(grid: Dict[str, Sequence[float]]) -> List[Dict[str, float]]:
    """All combinations of a ``{name: values}`` grid, in lexicographic order."""
    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid must be a non-empty dict {parameter name: sequence of values}")
    names, values = [], []
    for name, vals in grid.items():
        vals = list(np.atleast_1d(np.asarray(vals, dtype=float)))
        if not vals:
            raise ValueError(f"grid[{name!r}] must contain at least one value")
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"grid[{name!r}] must contain finite numbers only")
        names.append(name)
        values.append([float(v) for v in vals])
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def score_curve(loss: np.ndarray, objective: str) -> float:
    """``final``: ``L_T``; ``mean_log``: mean of ``log L_t`` over log-spaced t in [1, T] (rewards
    being low all along, not only at the end). ``inf`` for a diverged or non-finite curve."""
    T = loss.size - 1
    if objective == "final":
        v = float(loss[-1])
        return v if math.isfinite(v) else math.inf
    t = log_spaced_steps(T, 51)[1:] if T >= 1 else np.array([0])
    vals = loss[t]
    if not np.all(np.isfinite(vals) & (vals > 0)):
        return math.inf
    return float(np.mean(np.log(vals)))


def tune(factory: Callable[..., object], grid: Dict[str, Sequence[float]], spectrum: Spectrum, noise: Noise,
         steps: int, objective: str = "final", progress=None, label: str = "") -> TuneResult:
    """Grid search: ``factory(**params)`` must return a ``MemoryAlgorithm`` or a ``Schedule``.

    Every combination of ``grid`` is run with :func:`memsgd.loss_curve` for ``steps`` steps and
    scored by ``objective`` (``"final"``: loss at T; ``"mean_log"``: mean log-loss over log time);
    the lowest score wins (first in grid order on ties). A factory that raises ``ValueError`` for a
    point (an invalid combination) scores ``inf`` for it. ``progress(done, total, label)`` is called
    after each point.
    """
    if not callable(factory):
        raise TypeError(f"factory must be callable (params -> algorithm), got {type(factory).__name__}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum must be a Spectrum, got {type(spectrum).__name__}")
    if not isinstance(noise, Noise):
        raise TypeError(f"noise must be a Noise, got {type(noise).__name__}")
    steps = positive_int(steps, "steps")
    points = grid_points(grid)
    tracker = Tracker(progress, len(points))
    trials, best, best_score, best_curve = [], None, math.inf, None
    for params in points:
        try:
            algo = factory(**params)
        except ValueError as exc:
            trials.append({"params": params, "score": math.inf, "final_loss": None, "diverged_at": None,
                           "invalid": str(exc)})
            tracker.step(label)
            continue
        if not isinstance(algo, (MemoryAlgorithm, Schedule)):
            raise TypeError(f"factory must return a MemoryAlgorithm or a Schedule, got {type(algo).__name__}")
        c = loss_curve(algo, spectrum, noise, steps)
        s = score_curve(c.loss, objective)
        trials.append({"params": params, "score": s, "final_loss": float(c.loss[-1]), "diverged_at": c.diverged_at})
        if s < best_score:
            best, best_score, best_curve = params, s, c.loss
        tracker.step(label)
    return TuneResult(best, best_score, trials, best_curve)
