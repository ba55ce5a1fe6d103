"""sweep(): labelled results over a Cartesian grid (docs/sweeps.md).

Independent checks: every point is bitwise ``loss_curve(...)`` at the recorded steps (a separate,
single-curve path through the engine), one point also against the plain-numpy recursion of
tests/reference.py (1e-12 relative to the second moment, as in test_engine.py); exponents against
a closed-form power law and against ``fit_exponent`` on full curves.
"""
import functools
import math

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum, fitted_exponents, loss_curve, schedules, sweep
from memsgd._steps import log_spaced_steps

from ._extras import need
from .reference import mean_loss

need("xarray")   # sweep() returns an xarray Dataset: the sweep extra

SPEC = Spectrum.power_law(2.0, 1.0, size=60)
LRS = [0.1, 0.5, 1.9]            # 1.9 with momentum 0.9 and B = 1 diverges
MOMENTA = [0.0, 0.9]
BATCHES = [1, 10, math.inf]


def gaussian(batch_size):
    return Noise.gaussian(batch_size)


@pytest.fixture(scope="module")
def hb_grid():
    grid = {"lr": LRS, "momentum": MOMENTA, "batch_size": BATCHES}
    return grid, sweep(memsgd.heavy_ball, grid, SPEC, gaussian, 200, record=25)


def test_every_point_is_loss_curve_bitwise(hb_grid):
    grid, ds = hb_grid
    assert ds["loss"].dims == ("lr", "momentum", "batch_size", "step")
    assert ds["diverged_at"].dims == ("lr", "momentum", "batch_size")
    steps = log_spaced_steps(200, 25)
    assert np.array_equal(ds["step"].values, steps) and ds["step"].dtype == np.int64
    for name, values in grid.items():
        assert np.array_equal(ds[name].values, np.asarray(values, dtype=float))
    for i, lr in enumerate(LRS):
        for j, m in enumerate(MOMENTA):
            for k, b in enumerate(BATCHES):
                c = loss_curve(memsgd.heavy_ball(lr, m), SPEC, Noise.gaussian(b), 200)
                assert np.array_equal(ds["loss"].values[i, j, k], c.loss[steps]), (lr, m, b)
                assert ds["diverged_at"].values[i, j, k] == (-1 if c.diverged_at is None else c.diverged_at)


def test_a_point_against_the_numpy_reference(hb_grid):
    _, ds = hb_grid
    lr, m, b = 0.5, 0.9, 10
    a = memsgd.heavy_ball(lr, m)
    L, _, scale = mean_loss(lambda t: a.parameters(), SPEC.eigenvalues, SPEC.coefficients2, SPEC.weights,
                            1.0, -1.0, b, 200, return_scale=True)
    steps = ds["step"].values
    got = ds["loss"].sel(lr=lr, momentum=m, batch_size=b).values
    assert np.all(np.abs(got - L[steps]) <= 1e-12 * scale[steps])


def test_divergence_marks_only_its_own_point(hb_grid):
    _, ds = hb_grid
    div = ds["diverged_at"].values
    assert div[2, 1, 0] > 0 and np.count_nonzero(div >= 0) < div.size  # some diverge, not all
    steps = ds["step"].values
    for idx in np.ndindex(div.shape):
        row = ds["loss"].values[idx]
        if div[idx] < 0:
            assert np.all(np.isfinite(row))
        else:
            assert np.all(np.isinf(row[steps >= div[idx]])) and np.all(np.isfinite(row[steps < div[idx]]))


def test_provenance_attributes(hb_grid):
    _, ds = hb_grid
    a = ds.attrs
    assert a["memsgd_version"] == memsgd.__version__
    assert a["steps"] == 200 and a["grid_axes"] == ["lr", "momentum", "batch_size"]
    assert a["factory"] == "memsgd.algorithms.heavy_ball(lr, momentum)"
    assert a["spectrum"] == repr(SPEC) and a["noise"].endswith("gaussian(batch_size)")
    assert len(a["fingerprint"]) == 64 and len(a["fingerprint_spectrum"]) == 64
    assert "created" in a and "record" in a


def test_callable_spectrum_and_schedules_called_once_per_distinct_value():
    calls = []

    def spectrum(nu):
        calls.append(nu)
        return Spectrum.power_law(nu, 0.5 * nu, size=40)

    factory = functools.partial(schedules.am1_power_law, gamma=1.0, t0=10.0)
    grid = {"nu": [1.5, 2.5], "kick": [0.5, 1.0], "delta": [0.1, 0.3, 0.5]}
    ds = sweep(factory, grid, spectrum, Noise.gaussian(5), 120, record=np.array([0, 7, 50, 119, 120]))
    assert sorted(calls) == [1.5, 2.5]                   # not once per point
    assert np.array_equal(ds["step"].values, [0, 7, 50, 119, 120])
    for i, nu in enumerate(grid["nu"]):
        spec = Spectrum.power_law(nu, 0.5 * nu, size=40)
        for j, kick in enumerate(grid["kick"]):
            for k, d in enumerate(grid["delta"]):
                c = loss_curve(schedules.am1_power_law(kick, d, 1.0, 10.0), spec, Noise.gaussian(5), 120)
                assert np.array_equal(ds["loss"].values[i, j, k], c.loss[[0, 7, 50, 119, 120]])


def test_record_none_keeps_every_step_and_mixed_memory():
    grid = {"which": ["gd", "hb", "qhm"]}
    make = {"gd": lambda: memsgd.gd(0.5), "hb": lambda: memsgd.heavy_ball(0.2, 0.8),
            "qhm": lambda: memsgd.qhm(0.5, 0.9, 0.7)}
    ds = sweep(lambda which: make[which](), grid, SPEC, Noise.gaussian(3), 50, record=None)
    assert ds["loss"].shape == (3, 51) and list(ds["which"].values) == ["gd", "hb", "qhm"]
    for i, w in enumerate(grid["which"]):
        assert np.array_equal(ds["loss"].values[i], loss_curve(make[w](), SPEC, Noise.gaussian(3), 50).loss)


def test_result_does_not_depend_on_chunking_or_threads(hb_grid):
    grid, ref = hb_grid
    for kwargs in (dict(chunk_size=1), dict(chunk_size=5, threads=1), dict(chunk_size=1000, threads=2)):
        ds = sweep(memsgd.heavy_ball, grid, SPEC, gaussian, 200, record=25, **kwargs)
        assert np.array_equal(ds["loss"].values, ref["loss"].values)
        assert np.array_equal(ds["diverged_at"].values, ref["diverged_at"].values)


def test_progress_callable_reaches_the_total():
    seen = []
    sweep(memsgd.gd, {"lr": [0.1, 0.2, 0.3, 0.4, 0.5]}, SPEC, Noise.none(), 10, chunk_size=2,
          progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]


def test_result_memory_is_per_recorded_step():
    ds = sweep(memsgd.gd, {"lr": [0.5, 1.0]}, SPEC, Noise.gaussian(1), 100_000, record=30, chunk_size=1)
    assert ds["loss"].shape == (2, ds["step"].size) and ds["step"].size <= 30
    assert ds["step"].values[-1] == 100_000


# ---------------------------------------------------------------------------------- exponents


def test_fitted_exponents_of_an_exact_power_law():
    xr = need("xarray")
    t = log_spaced_steps(10_000, 200)
    p = np.array([0.3, 0.7, 1.6])
    with np.errstate(divide="ignore"):
        L = 3.0 * np.where(t > 0, t, 1).astype(float)[None, :] ** (-p[:, None])
    L[1, -5:] = np.inf  # "diverged": no exponent
    da = xr.DataArray(L, dims=("p", "step"), coords={"p": p, "step": t})
    got = fitted_exponents(da, 100, 10_000)
    assert abs(got.values[0] - 0.3) <= 1e-12 and abs(got.values[2] - 1.6) <= 1e-12
    assert np.isnan(got.values[1])
    with pytest.raises(ValueError, match="window"):
        fitted_exponents(da, 10_000.5, 10_001)


def test_fitted_exponents_agree_with_fit_exponent_on_full_curves():
    """Two estimators of the same slope (recorded log-spaced steps vs 200 steps of the full curve)."""
    spec = Spectrum.power_law(2.0, 1.0, head=256)
    grid = {"delta": [0.1, 0.3]}
    ds = sweep(functools.partial(schedules.am1_power_law, 1.0), grid, spec, Noise.gaussian(10), 5000, record=400)
    got = fitted_exponents(ds, 500, 5000)
    for i, d in enumerate(grid["delta"]):
        full = loss_curve(schedules.am1_power_law(1.0, d), spec, Noise.gaussian(10), 5000).loss
        assert abs(got.values[i] - memsgd.fit_exponent(full, 500, 5000)) <= 1e-4  # measured: 1e-5


def test_growth_rates_flag_growth_below_the_divergence_threshold():
    """growth_rates(ds) against LossCurve.growth_rate of each point's full curve: equal with every
    step recorded; to 1e-3 on sparse recorded steps (a fit on fewer points of e^(r t) plus a
    decaying correction). gd on 10 eigenvalues with tau2 = 0: lr 0.5 converges, lr 1 grows for
    B = 4 (V' > 1) and converges for B = 6, lr 2.3 diverges."""
    spec = Spectrum(np.linspace(0.2, 1.0, 10), np.ones(10))
    grid = {"lr": [0.5, 1.0, 2.3], "batch_size": [4, 6]}
    noise = lambda batch_size: Noise(batch_size, 1.0, 0.0)  # noqa: E731
    full = {(lr, B): loss_curve(memsgd.gd(lr), spec, noise(B), 400) for lr in grid["lr"] for B in grid["batch_size"]}
    every = memsgd.growth_rates(sweep(memsgd.gd, grid, spec, noise, 400, record=None))
    sparse = np.union1d(log_spaced_steps(400, 30), np.arange(300, 401, 10))   # 11 steps in [300, 400]
    logged = memsgd.growth_rates(sweep(memsgd.gd, grid, spec, noise, 400, record=sparse))
    assert every.growth_rate.dims == ("lr", "batch_size")
    for (lr, B), curve in full.items():
        at = {"lr": lr, "batch_size": B}
        assert float(every.growth_rate.sel(at)) == curve.growth_rate
        assert bool(every.grows_exponentially.sel(at)) == curve.grows_exponentially
        assert bool(logged.grows_exponentially.sel(at)) == curve.grows_exponentially
        if curve.diverged_at is None:
            assert float(logged.growth_rate.sel(at)) == pytest.approx(curve.growth_rate, rel=1e-3)
    assert full[(1.0, 4)].diverged_at is None and full[(1.0, 4)].grows_exponentially
    assert not full[(1.0, 6)].grows_exponentially and full[(2.3, 4)].diverged_at is not None
    with pytest.raises(TypeError, match="sweep Dataset"):
        memsgd.growth_rates(every)


# ---------------------------------------------------------------------------------- bad input


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if any configuration reaches the engine."""
    import memsgd._sweep_run as run

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(run, "_compute", forbidden)
    monkeypatch.setattr(run, "_compute_serialized", forbidden)


class NotAnExecutor:
    def submit(self, fn, *args):
        raise AssertionError("never called")


BAD = [
    (dict(grid={}), ValueError, "grid"),
    (dict(grid=[("lr", [0.1])]), TypeError, "grid"),
    (dict(grid={"lr": [[0.1, 0.2]]}), ValueError, r"grid\['lr'\] must be 1-D"),
    (dict(grid={"lr": 0.1}), ValueError, r"grid\['lr'\] must be 1-D"),
    (dict(grid={"lr": []}), ValueError, r"grid\['lr'\] must not be empty"),
    (dict(grid={"lr": [0.1, float("nan")]}), ValueError, r"grid\['lr'\]"),
    (dict(grid={"lr": [0.1], "step": [1]}), ValueError, "reserved"),
    (dict(grid={"lr": [0.1], "momentum": [0.5]}), ValueError, "momentum.*not taken"),
    (dict(factory=lambda lr: "sgd"), TypeError, "factory must return a MemoryAlgorithm"),
    (dict(factory=lambda lr, momentum: memsgd.gd(lr)), ValueError, "factory takes 'momentum'"),
    (dict(factory=None), TypeError, "factory"),
    (dict(spectrum=lambda nu: SPEC), ValueError, "spectrum takes 'nu'"),
    (dict(spectrum=[1.0, 0.5]), TypeError, "spectrum"),
    (dict(spectrum=lambda lr: "spec"), TypeError, "spectrum must return a Spectrum"),
    (dict(noise=lambda batch: Noise.gaussian(batch)), ValueError, "noise takes 'batch'"),
    (dict(noise=lambda lr: Noise.gaussian(np.ones(3))), ValueError, "noise has 3 per-step"),
    (dict(record=np.array([0, 5, 300])), ValueError, "record"),
    (dict(record=np.array([0, 50, 20])), ValueError, "record.*increasing"),
    (dict(record=np.array([0.0, 5.5])), ValueError, "record must be integers"),
    (dict(record=1), ValueError, "record"),
    (dict(record=True), TypeError, "record"),
    (dict(steps=-1), ValueError, "steps"),
    (dict(steps=10.5), ValueError, "steps must be an integer"),
    (dict(steps="10"), TypeError, "steps must be an integer"),
    (dict(executor=NotAnExecutor()), TypeError, "executor"),
    (dict(executor="processes:2"), TypeError, "executor"),
    (dict(chunk_size=0), ValueError, "chunk_size"),
    (dict(threads=0), ValueError, "threads"),
    (dict(progress="yes"), TypeError, "progress"),
    (dict(factory=lambda lr: schedules.Schedule.from_arrays(np.ones(5), np.zeros((5, 0)), np.zeros((5, 0)),
                                                             np.zeros((5, 0, 0)))), ValueError, "length 5"),
]


@pytest.mark.parametrize("kwargs,error,match", BAD, ids=[f"{i}-{b[2][:20]}" for i, b in enumerate(BAD)])
def test_bad_input_is_refused_before_any_work(no_work, kwargs, error, match):
    args = dict(factory=memsgd.gd, grid={"lr": [0.1, 0.2]}, spectrum=SPEC, noise=Noise.gaussian(2), steps=100)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        sweep(**args)


def test_factory_errors_name_the_grid_point(no_work):
    with pytest.raises(ValueError, match=r"factory failed at grid point \{lr=-1.0\}: lr"):
        sweep(lambda lr: memsgd.gd(lr) if lr > 0 else memsgd.gd(float("nan")),
              {"lr": [0.5, -1.0]}, SPEC, Noise.none(), 10)


def test_without_the_sweep_extra(monkeypatch):
    """xarray missing: sweep() says which extra to install; the batched engine and tune still work."""
    import sys

    from memsgd.experiments import tuning
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r"memsgd\[sweep\]"):
        sweep(memsgd.gd, {"lr": [0.5]}, SPEC, Noise.none(), 10)
    assert memsgd.loss_curves([memsgd.gd(0.5)], SPEC, Noise.none(), 10, record=3).loss.shape == (1, 3)
    assert tuning.tune(memsgd.gd, {"lr": [0.5, 1.0]}, SPEC, Noise.none(), 10).best == {"lr": 1.0}
