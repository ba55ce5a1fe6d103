"""sweep over the affine model's grid axes (label_noise, weight_decay): results bitwise those of
loss_curve per point, stores fingerprint the new fields (and keep the old fingerprints of plain
sweeps), method='loss_at' takes them too."""
import functools
import hashlib

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum, loss_curve, sweep
from memsgd.sweeps import StoreMismatchError, _algorithm_digest, _noise_digest

from ._extras import need

xr = need("xarray")

SPEC = Spectrum.power_law(2.0, 1.0, size=40)
FACTORY = functools.partial(memsgd.heavy_ball, momentum=0.5)   # takes lr and weight_decay


def test_grid_axes_label_noise_and_weight_decay():
    grid = {"lr": [0.2, 0.5], "weight_decay": [0.0, 0.05], "label_noise": [0.0, 0.3], "batch_size": [2, 8]}
    ds = sweep(FACTORY, grid, SPEC, Noise.gaussian, 100, record=20)
    assert set(ds.loss.dims) == {"lr", "weight_decay", "label_noise", "batch_size", "step"}
    steps = ds.step.values
    for lr in grid["lr"]:
        for wd in grid["weight_decay"]:
            for s2 in grid["label_noise"]:
                for B in grid["batch_size"]:
                    exact = loss_curve(FACTORY(lr=lr, weight_decay=wd), SPEC, Noise.gaussian(B, label_noise=s2), 100)
                    got = ds.loss.sel(lr=lr, weight_decay=wd, label_noise=s2, batch_size=B).values
                    assert np.array_equal(got, exact.loss[steps])
    # the axes matter: every point differs from its neighbour along them
    assert np.all(ds.loss.isel(step=-1).diff("weight_decay") != 0)
    assert np.all(ds.loss.isel(step=-1).diff("label_noise") != 0)


def _old_sha(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\x00")
    return h.hexdigest()


def test_fingerprints_include_the_new_fields_and_keep_the_old_ones():
    # the digest of a plain noise / algorithm is the one written before the affine model existed
    # (the formula transcribed here), so old stores still resume
    n = Noise.gaussian(4)
    assert _noise_digest(n) == _old_sha(float(4).hex(), 1.0.hex(), (-1.0).hex())
    hb = memsgd.heavy_ball(0.3, 0.5)
    flat = np.concatenate(([hb.alpha], hb.b, hb.c, hb.D.ravel(), hb.e))
    assert _algorithm_digest(hb, 10) == hashlib.sha256(b"algorithm 1:" + flat.tobytes()).digest()
    # and every new field changes the digest
    assert _noise_digest(Noise.gaussian(4, label_noise=0.1)) != _noise_digest(n)
    assert _noise_digest(Noise.gaussian(4, label_noise=0.1)) != _noise_digest(Noise.gaussian(4, label_noise=0.2))
    digests = {_algorithm_digest(a, 10) for a in (
        hb, memsgd.heavy_ball(0.3, 0.5, weight_decay=0.1), memsgd.heavy_ball(0.3, 0.5, weight_decay=0.2),
        memsgd.MemoryAlgorithm(*hb.parameters(), readout=[0.5]),
        memsgd.MemoryAlgorithm(*hb.parameters(), preconditioner=0.5))}
    assert len(digests) == 5
    T = 10
    arrays = [np.tile(np.asarray(x), (T,) + (1,) * np.ndim(x)) for x in hb.parameters()]
    sched = [memsgd.Schedule.from_arrays(*arrays, weight_decay=w) for w in (None, np.full(T, 0.1), np.full(T, 0.2))]
    assert len({_algorithm_digest(s, T) for s in sched}) == 3


def test_store_refuses_a_sweep_with_other_label_noise_or_weight_decay(tmp_path):
    need("zarr")
    store = tmp_path / "s"
    kw = dict(grid={"lr": [0.2, 0.4]}, spectrum=SPEC, steps=50, record=10, store=str(store))
    first = sweep(FACTORY, noise=Noise.gaussian(4, label_noise=0.1), **kw).load()
    again = sweep(FACTORY, noise=Noise.gaussian(4, label_noise=0.1), **kw).load()   # resumes
    assert np.array_equal(first.loss.values, again.loss.values)
    with pytest.raises(StoreMismatchError, match="noise"):
        sweep(FACTORY, noise=Noise.gaussian(4, label_noise=0.2), **kw)
    with pytest.raises(StoreMismatchError, match="algorithms"):
        sweep(functools.partial(memsgd.heavy_ball, momentum=0.5, weight_decay=0.01),
              noise=Noise.gaussian(4, label_noise=0.1), **kw)


def test_method_loss_at_takes_label_noise_and_weight_decay():
    """method='loss_at' over the new grid axes equals the engine to its error estimate (it refused
    them before loss_at took them); a short run under 'auto' keeps the engine."""
    grid = {"lr": [0.2, 0.5], "weight_decay": [0.0, 0.05], "label_noise": [0.0, 0.3], "batch_size": [4]}
    engine = sweep(FACTORY, grid, SPEC, Noise.gaussian, 3000, record=12, method="engine")
    at = sweep(FACTORY, grid, SPEC, Noise.gaussian, 3000, record=12, method="loss_at")
    assert at.attrs["method"].startswith("loss_at") and np.array_equal(at.step.values, engine.step.values)
    ref, got, err = engine["loss"].values, at["loss"].values, at["loss_error"].values
    assert np.all(np.abs(got - ref) <= err + 1e-13 * ref) and np.max(np.abs(got / ref - 1)) < 1e-10
    ds = sweep(FACTORY, {"lr": [0.2]}, SPEC, Noise.gaussian(4, label_noise=0.1), 100, record=5, method="auto")
    assert ds.attrs["method"].startswith("engine")
    with pytest.raises(ValueError, match="preconditioner together with weight decay") as info:
        sweep(lambda lr: memsgd.MemoryAlgorithm(lr, [], [], np.zeros((0, 0)), weight_decay=0.1, preconditioner=0.3),
              {"lr": [0.2]}, SPEC, Noise.gaussian(4), 100, record=5, method="loss_at")
    assert "\n" not in str(info.value)
