"""experiments.tuning.tune through the batched engine, checked point by point against separate
runs of loss_curve (the single-curve path through the engine) and the objectives' definitions:
``final`` is ``L_T``, ``mean_log`` the mean of ``log L_t`` over 50 log-spaced steps of [1, T], a
diverged or invalid point scores ``inf``, and the winner is the first point with the least score."""
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum, loss_curve, schedules
from memsgd.experiments import tuning

STEPS = 300


def heavy_ball_or_invalid(lr, momentum):
    if momentum >= 1.0:
        raise ValueError("momentum must be < 1")
    return memsgd.heavy_ball(lr, momentum)


def am1(kick, delta):
    return schedules.am1_power_law(kick, delta)


CASES = [
    (heavy_ball_or_invalid, {"lr": [0.3, 1.0, 2.5], "momentum": [0.0, 0.8, 1.2]}, Noise.gaussian(2)),
    (am1, {"kick": [0.5, 1.0, 1.9], "delta": [0.1, 0.4]}, Noise.gaussian(8)),
    (memsgd.gd, {"lr": [0.5, 1.0, 1.5, 2.5]}, Noise.none()),
]


def _points(grid):
    names = list(grid)
    return [dict(zip(names, combo)) for combo in np.array(np.meshgrid(*grid.values(), indexing="ij")).reshape(
        len(names), -1).T.tolist()]


def _mean_log_steps(T):
    # 51 log-spaced points of [0, T] (rounded, duplicates dropped), step 0 left out
    return np.unique(np.round(np.concatenate([[0.0], np.geomspace(1.0, T, 50)])).astype(np.int64))[1:]


def _score(curve, objective):
    if curve.diverged_at is not None or not np.all(np.isfinite(curve.loss)):
        return math.inf
    if objective == "final":
        return float(curve.loss[-1])
    return float(np.mean(np.log(curve.loss[_mean_log_steps(STEPS)])))


@pytest.mark.parametrize("objective", tuning.OBJECTIVES)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_tune_agrees_with_loss_curve_point_by_point(case, objective):
    factory, grid, noise = CASES[case]
    spec = Spectrum.power_law(2.0, 1.0, size=80)
    seen = []
    got = tuning.tune(factory, grid, spec, noise, STEPS, objective=objective,
                      progress=lambda d, t, label: seen.append((d, t)))
    points = _points(grid)
    assert [t["params"] for t in got.trials] == points
    scores = []
    for trial, params in zip(got.trials, points):
        try:
            algo = factory(**params)
        except ValueError:
            assert "invalid" in trial and trial["score"] == math.inf and trial["final_loss"] is None
            scores.append(math.inf)
            continue
        curve = loss_curve(algo, spec, noise, STEPS)
        assert trial["final_loss"] == float(curve.loss[-1])       # the batched engine is bitwise loss_curve
        assert trial["diverged_at"] == curve.diverged_at
        assert trial["score"] == pytest.approx(_score(curve, objective), rel=1e-13)
        scores.append(_score(curve, objective))
    best = int(np.argmin(scores))
    assert got.best == points[best] and got.score == got.trials[best]["score"]
    assert np.array_equal(got.curve, loss_curve(factory(**got.best), spec, noise, STEPS).loss)
    assert seen[-1] == (len(points), len(points)) and len(seen) == len(points)
    if case == 0:  # the grid has invalid and diverging points
        assert any("invalid" in t for t in got.trials) and any(t["diverged_at"] is not None for t in got.trials)
    with ThreadPoolExecutor(2) as pool:
        pooled = tuning.tune(factory, grid, spec, noise, STEPS, objective=objective, executor=pool, chunk_size=2)
    assert pooled.trials == got.trials and np.array_equal(pooled.curve, got.curve)


def test_tune_when_every_point_is_invalid():
    def never(lr):
        raise ValueError("no")

    res = tuning.tune(never, {"lr": [0.1, 0.2]}, Spectrum([1.0], [1.0]), Noise.none(), 5)
    assert res.best is None and res.curve is None and math.isinf(res.score) and len(res.trials) == 2


def test_tune_bad_executor_and_chunk_size():
    args = (memsgd.gd, {"lr": [0.5]}, Spectrum([1.0], [1.0]), Noise.none(), 5)
    with pytest.raises(TypeError, match="executor"):
        tuning.tune(*args, executor=object())
    with pytest.raises(ValueError, match="chunk_size"):
        tuning.tune(*args, chunk_size=0)
