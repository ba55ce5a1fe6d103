"""sweep(..., method=...): loss_at per configuration at the recorded steps when every
configuration is stationary and the horizon is long (docs/sweeps.md, "Long horizons").

Independent check: the batched step-by-step engine (method="engine") on the same grid, including
diverging configurations; the asymptotic law at t = 1e9."""
import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import memsgd as ms
from memsgd import Noise, Spectrum, sweep
from tests._counting_executor import CountingExecutor
from tests.reference import recursion_rounding

from ._extras import need

need("xarray")

SPEC = Spectrum.power_law(2.0, 1.0, size=200)
# lr = 3 diverges (far beyond the stability region of heavy ball on lambda_max = 1)
GRID = {"lr": [0.05, 0.2, 3.0], "momentum": [0.5, 0.9]}
KW = dict(factory=ms.heavy_ball, grid=GRID, spectrum=SPEC, noise=Noise.gaussian(10), steps=20000, record=30)


@pytest.fixture(scope="module")
def both():
    return sweep(**KW, method="engine"), sweep(**KW, method="loss_at")


@pytest.mark.slow
def test_methods_agree_to_loss_at_accuracy(both):
    engine, at = both
    assert engine.attrs["method"].startswith("engine") and at.attrs["method"].startswith("loss_at")
    assert "loss_error" not in engine and "loss_error" in at
    np.testing.assert_array_equal(engine["step"].values, at["step"].values)
    ref, got, err = engine["loss"].values, at["loss"].values, at["loss_error"].values
    # diverging configurations: inf from the same step on, the same diverged_at
    np.testing.assert_array_equal(engine["diverged_at"].values, at["diverged_at"].values)
    assert np.sum(engine["diverged_at"].values >= 0) == 2
    np.testing.assert_array_equal(np.isinf(ref), np.isinf(got))
    ok = np.isfinite(ref)
    t = np.broadcast_to(at["step"].values, ref.shape)[ok]
    diff = np.abs(got[ok] - ref[ok])
    assert np.all(diff <= 1e-10 * ref[ok]), np.max(diff / ref[ok])
    assert np.all(diff <= err[ok] + recursion_rounding(ref[ok], t))
    assert np.all(err[~ok] == 0)


def test_loss_at_results_are_those_of_loss_at(both):
    _, at = both
    res = ms.loss_at(ms.heavy_ball(0.2, 0.9), SPEC, Noise.gaussian(10), at["step"].values)
    point = dict(lr=0.2, momentum=0.9)
    assert np.array_equal(at["loss"].sel(point).values, res.loss)
    assert np.array_equal(at["loss_error"].sel(point).values, res.error)


def test_auto_takes_loss_at_for_long_stationary_sweeps():
    grid = {"momentum": [0.8, 0.9]}
    spec = Spectrum.power_law(2.0, 1.0)
    ds = sweep(lambda momentum: ms.heavy_ball(0.1, momentum), grid, spec, Noise.gaussian(10), 10 ** 9,
               record=[10 ** 3, 10 ** 9])
    assert ds.attrs["method"].startswith("loss_at")
    for momentum in grid["momentum"]:
        algo = ms.heavy_ball(0.1, momentum)
        predicted = ms.asymptotics(algo, spec, Noise.gaussian(10)).predict(1e9)
        assert float(ds["loss"].sel(momentum=momentum, step=10 ** 9)) / predicted == pytest.approx(1.0, abs=1e-7)


def test_auto_keeps_the_engine_for_schedules_per_step_noise_and_short_runs(monkeypatch):
    monkeypatch.setattr(ms.sweeps, "AUTO_WORK", 1.0)  # every run counts as long
    spec = Spectrum.power_law(2.0, 1.0, size=20)

    def mixed(kind):
        return ms.gd(0.5) if kind == "gd" else ms.schedules.constant(ms.gd(0.5))

    ds = sweep(mixed, {"kind": ["gd", "schedule"]}, spec, Noise.gaussian(4), 50, record=5)
    assert ds.attrs["method"].startswith("engine")
    per_step = Noise.gaussian(np.full(60, 4.0))
    ds = sweep(ms.gd, {"lr": [0.3, 0.5]}, spec, per_step, 50, record=5)
    assert ds.attrs["method"].startswith("engine")
    ds = sweep(ms.gd, {"lr": [0.3, 0.5]}, spec, Noise.gaussian(4), 50, record=5)
    assert ds.attrs["method"].startswith("loss_at")


def test_short_runs_stay_on_the_engine():
    ds = sweep(ms.gd, {"lr": [0.3, 0.5]}, SPEC, Noise.gaussian(4), 1000, record=5)
    assert ds.attrs["method"].startswith("engine") and "loss_error" not in ds


def test_record_none_at_a_huge_horizon_is_refused():
    with pytest.raises(ValueError, match=r"record=None keeps every step: 2 x 1000000001 losses \(16 GB\)"):
        sweep(ms.gd, {"lr": [0.3, 0.5]}, Spectrum.power_law(2.0, 1.0), Noise.gaussian(4), 10 ** 9, record=None)
    with pytest.raises(ValueError, match="record=R"):
        sweep(ms.gd, {"lr": [0.3, 0.5]}, SPEC, Noise.gaussian(4), 100, record=None, method="loss_at")


def test_loss_at_refuses_schedules_naming_the_grid_point():
    def factory(kind):
        return ms.gd(0.5) if kind == "gd" else ms.schedules.constant(ms.gd(0.5))

    with pytest.raises(ValueError, match=r"a Schedule at grid point \{kind='schedule'\}"):
        sweep(factory, {"kind": ["gd", "schedule"]}, SPEC, Noise.gaussian(4), 100, record=5, method="loss_at")


def test_a_configuration_loss_at_cannot_do_names_its_grid_point():
    """A memory that rotates without decay keeps the contour from starting (docs/long-horizons.md)."""
    D = [[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]]
    rotating = ms.MemoryAlgorithm(0.3, [0.0, 0.0], [0.1, 0.2], D)

    def factory(kind):
        return ms.gd(0.5) if kind == "gd" else rotating

    with pytest.raises(ValueError, match=r"loss_at failed at grid point \{kind='rotating'\}.*do not decay"):
        sweep(factory, {"kind": ["gd", "rotating"]}, Spectrum.power_law(2.0, 1.0, size=20), Noise.gaussian(4),
              10 ** 9, record=3, method="loss_at")


@pytest.mark.parametrize("method, exc", [("fast", ValueError), (1, TypeError), (None, TypeError)])
def test_bad_method(method, exc):
    with pytest.raises(exc, match="method must be one of"):
        sweep(ms.gd, {"lr": [0.3]}, SPEC, Noise.gaussian(4), 10, method=method)


def test_store_is_not_mixed_between_methods(tmp_path):
    need("zarr")
    store = tmp_path / "s.zarr"
    kw = dict(factory=ms.gd, grid={"lr": [0.3, 0.5]}, spectrum=SPEC, noise=Noise.gaussian(4), steps=3000, record=8)
    first = sweep(**kw, store=store, method="loss_at").load()
    assert "loss_error" in first
    with CountingExecutor() as counting:
        again = sweep(**kw, store=store, method="loss_at", executor=counting).load()
    assert counting.configurations == 0  # resumed: nothing recomputed
    assert np.array_equal(again["loss"].values, first["loss"].values)
    assert np.array_equal(again["loss_error"].values, first["loss_error"].values)
    with pytest.raises(ms.StoreMismatchError, match="method"):
        sweep(**kw, store=store, method="engine")
    direct = sweep(**kw, method="loss_at")
    assert np.array_equal(direct["loss"].values, first["loss"].values)


@pytest.mark.slow
def test_loss_at_tasks_on_a_process_pool():
    kw = dict(factory=functools.partial(ms.heavy_ball, momentum=0.8), grid={"lr": [0.1, 0.2, 0.3]},
              spectrum=SPEC, noise=Noise.gaussian(4), steps=5000, record=6, method="loss_at")
    local = sweep(**kw)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        remote = sweep(**kw, executor=pool, chunk_size=1)
    assert np.array_equal(remote["loss"].values, local["loss"].values)
    assert np.array_equal(remote["loss_error"].values, local["loss_error"].values)
    assert remote.attrs["fingerprint"] == local.attrs["fingerprint"]


def test_command_line_method(capsys):
    import json

    from memsgd.cli import main
    argv = ["sweep", "--algo", "heavy_ball", "--lr", "0.1,0.2", "--momentum", "0.8", "--size", "100",
            "--steps", "3000", "--record", "5", "--json"]
    assert main(argv + ["--method", "loss_at"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["attrs"]["method"].startswith("loss_at")
    spec = Spectrum.power_law(2.0, 1.0, size=100)
    for point in out["points"]:
        res = ms.loss_at(ms.heavy_ball(point["lr"], 0.8), spec, Noise.gaussian(10), [3000])
        assert point["final_loss"] == res.loss[0]
    assert main(argv + ["--method", "engine"]) == 0
    assert json.loads(capsys.readouterr().out)["attrs"]["method"].startswith("engine")


EDGE_KW = dict(factory=ms.heavy_ball, grid={"lr": [3.0, 0.1], "momentum": [0.5]},
               spectrum=Spectrum([1.0, 0.5, 0.5, 0.1], [1.0] * 4), noise=Noise.none(), steps=10 ** 9,
               record=np.array([10, 10 ** 9]), method="loss_at")


@pytest.mark.parametrize("executor", ["local", "process"])
def test_loss_at_warnings_reach_the_caller(executor):
    """heavy ball (3, 0.5) sits at the stability edge of lambda = 1: loss_at's estimate at 1e9 is
    above 1e-6 relative and it warns. A worker process's warnings would be lost: the sweep warns
    once in the caller, naming the grid point and the step, and keeps the message in attrs."""
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) if executor == "process" else None
    try:
        with pytest.warns(RuntimeWarning) as record:
            ds = sweep(**EDGE_KW, executor=pool)
    finally:
        if pool is not None:
            pool.shutdown()
    messages = [str(w.message) for w in record]
    assert len(messages) == 1, messages
    assert "grid point {lr=3.0, momentum=0.5} step 1000000000" in messages[0]
    assert ds.attrs["loss_at_warnings"] == messages
    error, loss = ds["loss_error"].values, ds["loss"].values
    assert error[0, 0, 1] > 1e-6 * loss[0, 0, 1]
    assert np.all(np.delete(error.ravel(), 1) <= 1e-6 * np.delete(loss.ravel(), 1))  # (0 <= 0 at lr = 0.1, 1e9)


def test_loss_at_warning_from_a_resumed_store(tmp_path):
    """The accuracy warning comes from loss and loss_error, so a store that is complete (nothing
    left to compute) still gives it."""
    need("zarr")
    store = str(tmp_path / "edge.zarr")
    with pytest.warns(RuntimeWarning, match=r"grid point \{lr=3.0, momentum=0.5\} step 1000000000"):
        first = sweep(**EDGE_KW, store=store)
    with pytest.warns(RuntimeWarning, match=r"grid point \{lr=3.0, momentum=0.5\} step 1000000000"):
        again = sweep(**EDGE_KW, store=store)
    assert again.attrs["loss_at_warnings"] == first.attrs["loss_at_warnings"]
    np.testing.assert_array_equal(again["loss"].values, first["loss"].values)
