"""sweep() on executors: a thread pool, a process pool (spawn) and a real Dask LocalCluster with
2 worker processes give bitwise the local result; payloads that cannot travel are refused before
any work, naming the argument (docs/sweeps.md, "Executors").
"""
import functools
import json
import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Schedule, Spectrum, schedules, sweep
from memsgd.cli import main
from memsgd.experiments import tuning

from ._extras import need

need("xarray")


def power_law(nu):
    return Spectrum.power_law(nu, 0.5 * nu, size=50)


GRID = {"nu": [1.5, 2.5], "kick": [0.5, 1.0], "delta": [0.1, 0.3, 0.5], "batch_size": [1, 8]}
KW = dict(factory=functools.partial(schedules.am1_power_law, gamma=1.0, t0=10.0), grid=GRID,
          spectrum=power_law, noise=Noise.gaussian, steps=150, record=30)


@pytest.fixture(scope="module")
def local():
    return sweep(**KW)


def assert_bitwise(ds, ref):
    assert np.array_equal(ds["loss"].values, ref["loss"].values)
    assert np.array_equal(ds["diverged_at"].values, ref["diverged_at"].values)
    assert ds.attrs["fingerprint"] == ref.attrs["fingerprint"]


def lambda_schedule(lr):
    """A schedule whose generator is a lambda: plain pickle cannot ship it, cloudpickle can."""
    return Schedule(0, lambda t: (np.full(len(t), lr), np.zeros((len(t), 0)), np.zeros((len(t), 0)),
                                  np.zeros((len(t), 0, 0)), np.zeros((len(t), 0))))


class LockedGenerator:
    """A schedule generator holding a lock: neither pickle nor cloudpickle can ship it."""

    def __init__(self, lr):
        self.lr, self.lock = lr, threading.Lock()

    def __call__(self, t):
        n = len(t)
        return np.full(n, self.lr), np.zeros((n, 0)), np.zeros((n, 0)), np.zeros((n, 0, 0)), np.zeros((n, 0))


def test_thread_pool(local):
    with ThreadPoolExecutor(2) as pool:
        assert_bitwise(sweep(**KW, executor=pool, chunk_size=5), local)


@pytest.mark.slow
def test_process_pool_and_unpicklable_payloads(local):
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        spec = Spectrum.power_law(2.0, 1.0, size=20)
        # refused before any task is submitted (the pool has started no process yet)
        with pytest.raises(TypeError, match=r"factory returned an algorithm .* cannot serialise at grid "
                                            r"point \{lr=0.2\}.*lambda"):
            sweep(lambda_schedule, {"lr": [0.2, 0.4]}, spec, Noise.gaussian(2), 20, executor=pool)
        bad_spectrum = Spectrum.power_law(2.0, 1.0, size=20)
        object.__setattr__(bad_spectrum, "note", lambda: "not picklable")  # Spectrum is immutable otherwise
        with pytest.raises(TypeError, match="spectrum cannot be serialised"):
            sweep(memsgd.gd, {"lr": [0.2]}, bad_spectrum, Noise.gaussian(2), 20, executor=pool)
        assert not pool._processes  # nothing ran
        assert_bitwise(sweep(**KW, executor=pool, chunk_size=7), local)


@pytest.mark.slow
def test_dask_local_cluster(local, capsys):
    """A real Dask cluster of 2 worker processes, one thread each (also from `memsgd sweep`)."""
    distributed = need("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        assert_bitwise(sweep(**KW, executor=client, chunk_size=5), local)
        # the worker processes did the work
        assert sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values()) > 0
        # cloudpickle ships what plain pickle cannot
        spec = Spectrum.power_law(2.0, 1.0, size=20)
        ds = sweep(lambda_schedule, {"lr": [0.2, 0.4]}, spec, Noise.gaussian(2), 20, executor=client)
        want = memsgd.loss_curve(memsgd.gd(0.4), spec, Noise.gaussian(2), 20).loss
        assert np.array_equal(ds["loss"].values[1], want[ds["step"].values])
        with pytest.raises(TypeError, match="factory returned an algorithm that cloudpickle"):
            sweep(lambda lr: Schedule(0, LockedGenerator(lr)), {"lr": [0.2]}, spec, Noise.gaussian(2), 20,
                  executor=client)
        # tune on the cluster: the same trials as locally
        grid = {"lr": [0.2, 0.5, 1.0], "momentum": [0.5, 0.9]}
        on_cluster = tuning.tune(memsgd.heavy_ball, grid, spec, Noise.gaussian(2), 100, executor=client, chunk_size=2)
        here = tuning.tune(memsgd.heavy_ball, grid, spec, Noise.gaussian(2), 100)
        assert on_cluster.trials == here.trials and np.array_equal(on_cluster.curve, here.curve)
        # the command line, pointed at the scheduler's address
        args = ["sweep", "--lr", "0.1,0.5,1.9", "--momentum", "0,0.9", "--size", "30", "--steps", "100",
                "--json", "--no-progress"]
        assert main(args) == 0
        here = json.loads(capsys.readouterr().out)
        assert main(args + ["--executor", cluster.scheduler_address.replace("tcp://", "dask://")]) == 0
        there = json.loads(capsys.readouterr().out)
        for out in (here, there):
            del out["attrs"]["created"]
        assert there == here and len(here["points"]) == 6
