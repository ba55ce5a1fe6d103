"""Hyperparameter tuning by the exact engine: evaluate every point of a small grid.

Each grid point is scored by the exact expected loss (the batched engine ``memsgd.loss_curves``),
so tuning is deterministic and free of sampling noise. A diverging curve scores ``inf``.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .._progress import Tracker
from .._steps import log_spaced_steps
from .._sweep_run import Configurations, chunk_tasks, executor_kind, run_tasks
from .._validation import instance_of, positive_int
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
    ``curve``: the winner's full loss curve (``None`` if every point diverged).

    Examples:
        >>> import memsgd
        >>> from memsgd.experiments.tuning import tune
        >>> res = tune(memsgd.gd, {"lr": [0.5, 1.0]}, memsgd.Spectrum.power_law(2.0, 1.0, size=50),
        ...            memsgd.Noise.gaussian(10), 100)
        >>> res.curve.shape, res.trials[0]["params"]
        ((101,), {'lr': 0.5})
    """

    best: Optional[dict[str, float]]
    score: float
    trials: list[dict] = field(default_factory=list)
    curve: Optional[np.ndarray] = field(default=None, repr=False)


def grid_points(grid: dict[str, Sequence[float]]) -> list[dict[str, float]]:
    """All combinations of a ``{name: values}`` grid, in lexicographic order.

    Examples:
        >>> from memsgd.experiments.tuning import grid_points
        >>> grid_points({"lr": [0.1, 0.2], "momentum": [0.9]})
        [{'lr': 0.1, 'momentum': 0.9}, {'lr': 0.2, 'momentum': 0.9}]
    """
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
    being low all along, not only at the end). ``inf`` for a diverged or non-finite curve.

    Examples:
        >>> import numpy as np
        >>> from memsgd.experiments.tuning import score_curve
        >>> score_curve(np.array([1.0, 0.5, 0.25]), "final")
        0.25
    """
    return _score_recorded(np.arange(loss.size), loss, objective)


def _mean_log_steps(T: int) -> np.ndarray:
    """The log-spaced steps in [1, T] that the ``mean_log`` objective averages over."""
    return log_spaced_steps(T, 51)[1:] if T >= 1 else np.zeros(1, dtype=np.int64)


def _scored_steps(steps: int) -> np.ndarray:
    """The steps [`score_curve`][memsgd.experiments.tuning.score_curve] reads, for either objective: ``0``, ``T`` and
    the log-spaced t."""
    return np.union1d([0, steps], _mean_log_steps(steps)).astype(np.int64)


def _score_recorded(kept: np.ndarray, loss: np.ndarray, objective: str) -> float:
    """[`score_curve`][memsgd.experiments.tuning.score_curve] of a curve known at the steps ``kept`` only (the same
    values, same order)."""
    T = int(kept[-1])
    if objective == "final":
        v = float(loss[-1])
        return v if math.isfinite(v) else math.inf
    vals = loss[np.searchsorted(kept, _mean_log_steps(T))]
    if not np.all(np.isfinite(vals) & (vals > 0)):
        return math.inf
    return float(np.mean(np.log(vals)))


def tune(factory: Callable[..., object], grid: dict[str, Sequence[float]], spectrum: Spectrum, noise: Noise,
         steps: int, objective: str = "final", progress=None, label: str = "", *, executor=None,
         chunk_size: Optional[int] = None) -> TuneResult:
    """Grid search: ``factory(**params)`` must return a ``MemoryAlgorithm`` or a ``Schedule``.

    Every combination of ``grid`` is run for ``steps`` steps by the batched exact engine
    ([`memsgd.loss_curves`][memsgd.loss_curves], keeping only the steps the objective reads) and scored by
    ``objective`` (``"final"``: loss at T; ``"mean_log"``: mean log-loss over log time); the lowest
    score wins (first in grid order on ties), and its full curve is recomputed by
    [`memsgd.loss_curve`][memsgd.loss_curve] (bitwise the same values). A factory that raises ``ValueError`` for a
    point (an invalid combination) scores ``inf`` for it. ``progress(done, total, label)`` is called
    as points finish. ``executor`` / ``chunk_size``: as in [`memsgd.sweep`][memsgd.sweeps.sweep] (docs/sweeps.md).

    Examples:
        >>> import memsgd
        >>> from memsgd.experiments.tuning import tune
        >>> res = tune(memsgd.heavy_ball, {"lr": [0.05, 0.1, 0.2], "momentum": [0.9]},
        ...            memsgd.Spectrum.power_law(2.0, 1.0, size=50), memsgd.Noise.gaussian(10), 200)
        >>> res.best, len(res.trials)
        ({'lr': 0.2, 'momentum': 0.9}, 3)
        >>> res.score == min(t["score"] for t in res.trials)
        True
    """
    if not callable(factory):
        raise TypeError(f"factory must be callable (params -> algorithm), got {type(factory).__name__}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    instance_of(spectrum, Spectrum, "spectrum")
    instance_of(noise, Noise, "noise")
    steps = positive_int(steps, "steps")
    if chunk_size is not None:
        chunk_size = positive_int(chunk_size, "chunk_size")
    executor_kind(executor)  # a bad executor is refused before any work
    points = grid_points(grid)
    tracker = Tracker(progress, len(points))
    trials: list[Optional[dict]] = [None] * len(points)
    valid, algorithms = [], []
    for k, params in enumerate(points):
        try:
            algo = factory(**params)
        except ValueError as exc:
            trials[k] = {"params": params, "score": math.inf, "final_loss": None, "diverged_at": None,
                         "invalid": str(exc)}
            tracker.step(label)
            continue
        if not isinstance(algo, (MemoryAlgorithm, Schedule)):
            raise TypeError(f"factory must return a MemoryAlgorithm or a Schedule, got {type(algo).__name__}")
        valid.append(k)
        algorithms.append(algo)
    if valid:
        kept = _scored_steps(steps)
        zeros = np.zeros(len(valid), dtype=np.int64)
        configs = Configurations(algorithms, [spectrum], zeros, [noise], zeros, steps, kept,
                                 describe=lambda i: f"grid point {points[valid[i]]}")
        tasks = chunk_tasks(configs, executor, chunk_size)

        def on_result(n, loss, diverged_at):
            for row, i in enumerate(tasks[n]):
                k = valid[i]
                trials[k] = {"params": points[k], "score": _score_recorded(kept, loss[row], objective),
                             "final_loss": float(loss[row, -1]),
                             "diverged_at": None if diverged_at[row] < 0 else int(diverged_at[row])}
                tracker.step(label)

        run_tasks(configs, tasks, executor, threads=None, on_result=on_result)
    best, best_score, best_curve = None, math.inf, None
    for k, trial in enumerate(trials):
        if trial["score"] < best_score:
            best, best_score = trial["params"], trial["score"]
            best_curve = k
    if best_curve is not None:
        best_curve = loss_curve(algorithms[valid.index(best_curve)], spectrum, noise, steps).loss
    return TuneResult(best, best_score, trials, best_curve)
