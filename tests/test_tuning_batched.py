"""experiments.tuning.tune through the batched engine gives exactly the results of the previous
implementation: a Python loop of loss_curve over the grid, transcribed here as the reference."""
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import memsgd
from memsgd import MemoryAlgorithm, Noise, Schedule, Spectrum, loss_curve, schedules
from memsgd.experiments import tuning


def tune_by_loop(factory, grid, spectrum, noise, steps, objective):
    """The loop tune() used to be (one loss_curve per point, scored on the full curve)."""
    trials, best, best_score, best_curve = [], None, math.inf, None
    for params in tuning.grid_points(grid):
        try:
            algo = factory(**params)
        except ValueError as exc:
            trials.append({"params": params, "score": math.inf, "final_loss": None, "diverged_at": None,
                           "invalid": str(exc)})
            continue
        assert isinstance(algo, (MemoryAlgorithm, Schedule))
        c = loss_curve(algo, spectrum, noise, steps)
        s = tuning.score_curve(c.loss, objective)
        trials.append({"params": params, "score": s, "final_loss": float(c.loss[-1]), "diverged_at": c.diverged_at})
        if s < best_score:
            best, best_score, best_curve = params, s, c.loss
    return tuning.TuneResult(best, best_score, trials, best_curve)


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


@pytest.mark.parametrize("objective", tuning.OBJECTIVES)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_tune_equals_the_loop_of_loss_curve(case, objective):
    factory, grid, noise = CASES[case]
    spec = Spectrum.power_law(2.0, 1.0, size=80)
    want = tune_by_loop(factory, grid, spec, noise, 300, objective)
    seen = []
    got = tuning.tune(factory, grid, spec, noise, 300, objective=objective,
                      progress=lambda d, t, label: seen.append((d, t)))
    assert got.trials == want.trials            # every score, final loss and divergence, bitwise
    assert got.best == want.best and got.score == want.score
    assert np.array_equal(got.curve, want.curve)
    assert seen[-1] == (len(want.trials), len(want.trials)) and len(seen) == len(want.trials)
    if case == 0:  # the grid has invalid and diverging points
        assert any("invalid" in t for t in got.trials) and any(t["diverged_at"] is not None for t in got.trials)
    with ThreadPoolExecutor(2) as pool:
        pooled = tuning.tune(factory, grid, spec, noise, 300, objective=objective, executor=pool, chunk_size=2)
    assert pooled.trials == want.trials and np.array_equal(pooled.curve, want.curve)


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
