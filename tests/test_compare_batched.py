"""`reproduce compare` goes through the batched tune (one loss_curves run per method's grid, one
loss_curve per winner); its results are checked against separate loss_curve runs of every grid
point: the winner has the least L_T, its loss and fitted exponent are those of its own curve, and
the diverged count and grid-edge marks follow from the grid."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from memsgd import Noise, Spectrum, _sweep_run, fit_exponent, loss_curve
from memsgd.experiments import compare, tuning

CONFIG = compare.small_config()


@pytest.fixture(scope="module")
def result():
    return compare.run(CONFIG)


def _counting(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(len(args[0]) if name == "loss_curves" else 1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_results_agree_with_loss_curve_on_every_grid_point(result):
    T = CONFIG.steps
    rows = result["results"]
    assert [(r["nu"], r["kappa"], r["batch_size"], r["method"]) for r in rows] == [
        (nu, kappa, B, m) for nu, kappa in CONFIG.problems for B in CONFIG.batch_sizes for m in CONFIG.methods]
    for r in rows:
        grid = compare.default_grids(r["nu"])[r["method"]]
        spec, noise = Spectrum.power_law(r["nu"], r["kappa"], head=CONFIG.head), Noise.gaussian(r["batch_size"])
        names = list(grid)
        points = [dict(zip(names, v)) for v in np.array(np.meshgrid(*grid.values(), indexing="ij")).reshape(
            len(names), -1).T.tolist()]
        curves = [loss_curve(compare.METHODS[r["method"]](**p), spec, noise, T) for p in points]
        finals = [np.inf if c.diverged_at is not None else c.loss[-1] for c in curves]
        best = int(np.argmin(finals))
        assert r["grid_size"] == len(points)
        assert r["diverged_points"] == sum(c.diverged_at is not None for c in curves)
        assert r["best_params"] == points[best] and r["final_loss"] == finals[best]
        assert r["fitted_exponent"] == fit_exponent(curves[best].loss, T / 10, T)
        edges = [k for k in names if len(grid[k]) >= 3 and points[best][k] in (min(grid[k]), max(grid[k]))]
        assert r["at_grid_edge"] == edges
        sgd = next(s for s in rows if s["method"] == "SGD" and s["batch_size"] == r["batch_size"])
        assert r["loss_over_sgd"] == pytest.approx(r["final_loss"] / sgd["final_loss"], rel=1e-15)
        line = next(ln for ln in result["table"].splitlines() if f" {r['method']} " in f" {ln} " and
                    f"{r['final_loss']:.3e}" in ln)
        assert f"{r['diverged_points']}/{r['grid_size']}" in line


def test_compare_is_batched(monkeypatch, result):
    batched = _counting(monkeypatch, _sweep_run, "loss_curves")
    single = _counting(monkeypatch, tuning, "loss_curve")
    got = compare.run(CONFIG)
    assert got["results"] == result["results"] and got["table"] == result["table"]
    grids = compare.default_grids(2.0)
    # one batched run per (problem, batch size, method), over the method's whole grid
    assert sorted(batched) == sorted(len(tuning.grid_points(g)) for g in grids.values())
    assert len(single) == len(grids)                 # the winners' full curves


def test_compare_with_an_executor_and_chunks(result):
    with ThreadPoolExecutor(2) as pool:
        got = compare.run(CONFIG, executor=pool, chunk_size=7)
    assert got["results"] == result["results"] and got["table"] == result["table"]


def test_compare_bad_executor_and_chunk_size():
    with pytest.raises(TypeError, match="executor"):
        compare.run(CONFIG, executor=object())
    with pytest.raises(ValueError, match="chunk_size"):
        compare.run(CONFIG, chunk_size=0)
