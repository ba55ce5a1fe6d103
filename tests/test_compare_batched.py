"""`reproduce compare` goes through the batched tune (one loss_curves run per method's grid, one
loss_curve per winner) and prints exactly the table of the previous implementation, where tune
was a loop of loss_curve (transcribed in test_tuning_batched.tune_by_loop)."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from memsgd import _sweep_run
from memsgd.experiments import compare, tuning
from tests.test_tuning_batched import tune_by_loop


@pytest.fixture(scope="module")
def by_loop():
    """compare.run with tune replaced by the old loop of loss_curve."""
    def looped(factory, grid, spectrum, noise, steps, objective="final", progress=None, label="", **kwargs):
        res = tune_by_loop(factory, grid, spectrum, noise, steps, objective)
        for i in range(len(res.trials)):
            progress(i + 1, len(res.trials), label)
        return res

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compare, "tune", looped)
        return compare.run(compare.small_config())


def _counting(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(len(args[0]) if name == "loss_curves" else 1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_compare_is_batched_and_its_table_unchanged(monkeypatch, by_loop):
    batched = _counting(monkeypatch, _sweep_run, "loss_curves")
    single = _counting(monkeypatch, tuning, "loss_curve")
    got = compare.run(compare.small_config())
    assert got["results"] == by_loop["results"]      # winners, losses, exponents, bitwise
    assert got["table"] == by_loop["table"]
    grids = compare.default_grids(2.0)
    # one batched run per (problem, batch size, method), over the method's whole grid
    assert sorted(batched) == sorted(len(tuning.grid_points(g)) for g in grids.values())
    assert len(single) == len(grids)                 # the winners' full curves


def test_compare_with_an_executor_and_chunks(by_loop):
    with ThreadPoolExecutor(2) as pool:
        got = compare.run(compare.small_config(), executor=pool, chunk_size=7)
    assert got["results"] == by_loop["results"] and got["table"] == by_loop["table"]


def test_compare_bad_executor_and_chunk_size():
    with pytest.raises(TypeError, match="executor"):
        compare.run(compare.small_config(), executor=object())
    with pytest.raises(ValueError, match="chunk_size"):
        compare.run(compare.small_config(), chunk_size=0)
