"""sweep(store=...): blocks written as they finish, resumption after a crash or a hard kill
(nothing recomputed, result bitwise equal to an uninterrupted in-memory run), and refusal of a
store written by another sweep (docs/sweeps.md, "Stores and resuming").

What was recomputed is measured by counting the configurations each executor task returns.
"""
import json
import os
import signal
import subprocess
import sys
import warnings
from concurrent.futures import Executor, Future

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum, StoreMismatchError, sweep
from tests._counting_executor import CountingExecutor

from ._extras import need

xr = need("xarray")
zarr = need("zarr")

GRID = {"lr": [0.1, 0.3, 0.6, 1.0, 1.9], "momentum": [0.0, 0.5, 0.9], "batch_size": [1, 4]}
C = 5 * 3 * 2
KW = dict(factory=memsgd.heavy_ball, grid=GRID, spectrum=Spectrum.power_law(2.0, 1.0, size=60),
          noise=Noise.gaussian, steps=200, record=25)


@pytest.fixture(scope="module")
def reference():
    return sweep(**KW)


class CrashingExecutor(Executor):
    """Runs tasks synchronously (payloads pickled, as for a process pool); task ``fail_at``
    fails as a crashed worker would."""

    _max_workers = 1

    def __init__(self, fail_at):
        self.fail_at, self.submitted = fail_at, 0

    def submit(self, fn, *args, **kwargs):
        self.submitted += 1
        f = Future()
        if self.submitted == self.fail_at:
            f.set_exception(RuntimeError("simulated worker crash"))
        else:
            f.set_result(fn(*args, **kwargs))
        return f


def computed_mask(store):
    return np.asarray(zarr.open_group(str(store), mode="r")["computed"][...])


def assert_same_sweep(ds, ref):
    assert np.array_equal(ds["loss"].values, ref["loss"].values)
    assert np.array_equal(ds["diverged_at"].values, ref["diverged_at"].values)
    assert ds["loss"].dims == ref["loss"].dims
    for name in list(GRID) + ["step"]:
        assert np.array_equal(ds[name].values, ref[name].values)
    assert {k: v for k, v in ds.attrs.items() if k != "created"} == \
        {k: v for k, v in ref.attrs.items() if k != "created"}


def test_store_equals_in_memory_and_a_rerun_computes_nothing(tmp_path, reference):
    store = tmp_path / "sweep.zarr"
    first = CountingExecutor()
    with first:
        ds = sweep(**KW, store=store, executor=first, chunk_size=4)
    assert first.configurations == C
    assert_same_sweep(ds, reference)
    again = CountingExecutor()
    with again:
        ds2 = sweep(**KW, store=store, executor=again)
    assert again.configurations == 0
    assert_same_sweep(ds2, reference)
    assert ds2.attrs["created"] == ds.attrs["created"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raw = xr.open_zarr(store)   # the store is readable by xarray itself
    assert raw.attrs.pop("format") == "memsgd-sweep/2" and raw["computed"].values.all()
    assert_same_sweep(raw.drop_vars(["computed", "digest"]), reference)


def test_crash_midway_then_resume(tmp_path, reference):
    store = tmp_path / "sweep.zarr"
    with pytest.raises(RuntimeError, match="simulated worker crash"):
        sweep(**KW, store=store, chunk_size=2, executor=CrashingExecutor(fail_at=6))
    done = computed_mask(store)
    assert 0 < done.sum() < C
    # what finished before the crash is in the store, bitwise
    partial = xr.open_zarr(store)
    assert np.array_equal(partial["loss"].values[done], reference["loss"].values[done])
    resume = CountingExecutor()
    with resume:  # another chunk size: the store's blocks are kept
        ds = sweep(**KW, store=store, executor=resume, chunk_size=7)
    assert resume.configurations == C - done.sum()
    assert_same_sweep(ds, reference)


KILLED_CHILD = r"""
import os, signal, sys
from concurrent.futures import Executor, Future
import memsgd
from memsgd import Noise, Spectrum

class KillAfter(Executor):
    _max_workers = 1
    def __init__(self, n):
        self.n, self.submitted = n, 0
    def submit(self, fn, *args, **kwargs):
        self.submitted += 1
        if self.submitted > self.n:
            os.kill(os.getpid(), signal.SIGKILL)
        f = Future()
        f.set_result(fn(*args, **kwargs))
        return f

memsgd.sweep(memsgd.heavy_ball, GRID, Spectrum.power_law(2.0, 1.0, size=60), Noise.gaussian, 200, record=25,
             store=sys.argv[1], chunk_size=2, executor=KillAfter(7))
"""


@pytest.mark.slow
def test_hard_kill_midway_then_resume(tmp_path, reference):
    """SIGKILL in the middle of a sweep (no cleanup of any kind), then the same call resumes."""
    store = tmp_path / "sweep.zarr"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(memsgd.__file__)), env.get("PYTHONPATH", "")])
    script = KILLED_CHILD.replace("GRID", json.dumps(GRID))
    proc = subprocess.run([sys.executable, "-c", script, str(store)], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    done = computed_mask(store)
    assert 0 < done.sum() < C
    resume = CountingExecutor()
    with resume:
        ds = sweep(**KW, store=store, executor=resume)
    assert resume.configurations == C - done.sum()
    assert_same_sweep(ds, reference)


@pytest.mark.parametrize("change,what", [
    (dict(spectrum=Spectrum.power_law(2.0, 1.0, size=61)), "spectrum"),
    (dict(spectrum=lambda lr: Spectrum.power_law(2.0, 1.0, size=60)), None),   # same spectra: accepted
    (dict(noise=Noise.translation_invariant), "noise"),
    (dict(steps=201), "steps"),
    (dict(record=26), "record"),
    (dict(grid={**GRID, "lr": [0.1, 0.3, 0.6, 1.0, 1.8]}), "grid"),
    (dict(grid={**GRID, "batch_size": [1, 4, 8]}), "grid"),
    (dict(factory=memsgd.nesterov), "algorithms"),
])
def test_a_store_of_another_sweep_is_refused_untouched(tmp_path, reference, change, what):
    store = tmp_path / "sweep.zarr"
    sweep(**KW, store=store)
    before = sorted((p, os.path.getmtime(os.path.join(d, p))) for d, _, files in os.walk(store) for p in files)
    if what is None:
        # the same configurations by another route: not a different sweep
        assert_same_sweep(sweep(**{**KW, **change}, store=store), reference)
        return
    with pytest.raises(StoreMismatchError, match=f"different sweep.*{what}"):
        sweep(**{**KW, **change}, store=store)
    after = sorted((p, os.path.getmtime(os.path.join(d, p))) for d, _, files in os.walk(store) for p in files)
    assert after == before
    assert_same_sweep(sweep(**KW, store=store), reference)


def test_a_path_that_is_not_a_sweep_store_is_refused(tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "results.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a memsgd sweep store"):
        sweep(**KW, store=other)
    assert (other / "results.txt").read_text() == "keep me" and len(os.listdir(other)) == 1
    a_file = tmp_path / "file.zarr"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="not a memsgd sweep store"):
        sweep(**KW, store=a_file)
    with pytest.raises(TypeError, match="store"):
        sweep(**KW, store=3)


def test_empty_directory_and_string_axes(tmp_path):
    store = tmp_path / "empty"
    store.mkdir()
    make = {"hb": memsgd.heavy_ball, "nesterov": memsgd.nesterov}   # (an axis named "method" would clash with .sel's)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = sweep(lambda optimizer, lr: make[optimizer](lr, 0.9), {"optimizer": ["hb", "nesterov"], "lr": [0.1, 0.2]},
                   KW["spectrum"], Noise.gaussian(4), 50, record=10, store=store).load()
    assert list(ds["optimizer"].values) == ["hb", "nesterov"]
    want = memsgd.loss_curve(memsgd.nesterov(0.2, 0.9), KW["spectrum"], Noise.gaussian(4), 50).loss
    assert np.array_equal(ds["loss"].sel(optimizer="nesterov", lr=0.2).values, want[ds["step"].values])
