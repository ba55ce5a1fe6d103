"""Everything a sweep ships to process pools and Dask workers survives pickle, cloudpickle and
deepcopy: every algorithm preset, every named schedule, Schedule.from_arrays, Noise (incl. per-step
batch sizes) and Spectrum (finite, power law, infinite, from features).

Independent check: the copy's exact loss curve is bitwise the original's (same engine, same
inputs), and its parameters / arrays are equal element by element; the copy keeps the original's
invariants (read-only arrays) and shares no memory with it.
"""
import copy
import pickle

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Schedule, Spectrum, loss_curve, schedules

from ._extras import need, requires


def _cloudpickle(o):
    cloudpickle = need("cloudpickle")
    return cloudpickle.loads(cloudpickle.dumps(o))


ROUND_TRIPS = {
    "pickle": lambda o: pickle.loads(pickle.dumps(o)),
    "cloudpickle": _cloudpickle,
    "deepcopy": copy.deepcopy,
}

ALGORITHMS = {
    "gd": lambda: memsgd.gd(0.7),
    "heavy_ball": lambda: memsgd.heavy_ball(0.3, 0.8),
    "nesterov": lambda: memsgd.nesterov(0.3, 0.8),
    "am1": lambda: memsgd.am1(0.2, 0.9, 0.5),
    "qhm": lambda: memsgd.qhm(0.5, 0.9, 0.7),
    "dana": lambda: memsgd.dana(0.1, 0.2, 0.05, 0.1),
    "heavy_ball_weight_decay": lambda: memsgd.heavy_ball(0.3, 0.8, weight_decay=0.01),
    "ema": lambda: memsgd.ema(memsgd.nesterov(0.3, 0.8, weight_decay=0.02), 0.9),
    "readout_preconditioner": lambda: memsgd.MemoryAlgorithm(0.2, [0.5], [0.2], [[0.5]], readout=[0.4],
                                                             preconditioner=0.25),
}

SCHEDULES = {
    "constant": lambda: schedules.constant(memsgd.heavy_ball(0.3, 0.8)),
    "jacobi_heavy_ball": lambda: schedules.jacobi_heavy_ball(0.5, lambda_max=1.0),
    "am1_power_law": lambda: schedules.am1_power_law(1.0, 0.3, 1.0, 10.0),
    "schedule_free_sgd": lambda: schedules.schedule_free_sgd(1.0, 0.9),
    "from_arrays": lambda: Schedule.from_arrays(
        np.linspace(0.5, 0.1, 40), np.full((40, 1), 0.5), np.linspace(0.1, 0.2, 40).reshape(40, 1),
        np.full((40, 1, 1), 0.5), np.zeros((40, 1))),
    "from_arrays_weight_decay": lambda: Schedule.from_arrays(
        np.linspace(0.5, 0.1, 40), np.full((40, 1), 0.5), np.linspace(0.1, 0.2, 40).reshape(40, 1),
        np.full((40, 1, 1), 0.5), np.zeros((40, 1)), weight_decay=np.linspace(0.0, 0.1, 40)),
    "am1_power_law_weight_decay": lambda: schedules.am1_power_law(1.0, 0.3, 1.0, 10.0, weight_decay=0.01),
    "ema_schedule": lambda: memsgd.ema(schedules.schedule_free_sgd(1.0, 0.9), 0.8),
}

SPECTRUM = Spectrum.power_law(2.0, 1.0, size=40)
NOISE = Noise.gaussian(4)
STEPS = 30


@pytest.mark.parametrize("how", ROUND_TRIPS)
@pytest.mark.parametrize("name", ALGORITHMS)
def test_algorithm_round_trip(name, how):
    algo = ALGORITHMS[name]()
    copied = ROUND_TRIPS[how](algo)
    assert type(copied) is memsgd.MemoryAlgorithm
    assert (copied.alpha, copied.weight_decay, copied.preconditioner) == (algo.alpha, algo.weight_decay,
                                                                         algo.preconditioner)
    assert repr(copied) == repr(algo)
    for field in ("b", "c", "D", "e", "readout"):
        a, b = getattr(algo, field), getattr(copied, field)
        assert np.array_equal(a, b) and a.shape == b.shape
        assert not b.flags.writeable, f"{field} became writeable after {how}"
        assert a.size == 0 or not np.shares_memory(a, b)
    want = loss_curve(algo, SPECTRUM, NOISE, STEPS).loss
    assert np.array_equal(loss_curve(copied, SPECTRUM, NOISE, STEPS).loss, want)


@pytest.mark.parametrize("how", ROUND_TRIPS)
@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_round_trip(name, how):
    sched = SCHEDULES[name]()
    copied = ROUND_TRIPS[how](sched)
    assert type(copied) is Schedule
    assert (copied.memory, copied.length, copied.name) == (sched.memory, sched.length, sched.name)
    assert np.array_equal(copied.weight_decays(STEPS), sched.weight_decays(STEPS))
    assert np.array_equal(copied.readout, sched.readout) and not copied.readout.flags.writeable
    for a, b in zip(sched.parameters(STEPS), copied.parameters(STEPS)):
        assert np.array_equal(a, b)
    want = loss_curve(sched, SPECTRUM, NOISE, STEPS).loss
    assert np.array_equal(loss_curve(copied, SPECTRUM, NOISE, STEPS).loss, want)


@pytest.mark.parametrize("how", ROUND_TRIPS)
@pytest.mark.parametrize("noise", [Noise.gaussian(10), Noise.translation_invariant(3), Noise.none(),
                                   Noise(7, 0.5, 0.25), Noise.gaussian(np.array([1.0, 2.0, np.inf, 8.0]))],
                         ids=["gaussian", "translation_invariant", "none", "custom", "per_step"])
def test_noise_round_trip(noise, how):
    copied = ROUND_TRIPS[how](noise)
    assert type(copied) is Noise and copied == noise and hash(copied) == hash(noise)
    for a, b in zip(noise.coefficients(4), copied.coefficients(4)):
        assert np.array_equal(a, b)
    if noise.per_step:
        assert not copied.batch_size.flags.writeable
    with pytest.raises(AttributeError):
        copied.tau1 = 3.0


SPECTRA = {
    "finite": lambda: Spectrum([1.0, 0.5, 0.25], [1.0, 2.0, 0.0]),
    "power_law_finite": lambda: Spectrum.power_law(1.5, 0.75, size=30, scale=2.0, q=0.5),
    "power_law_infinite": lambda: Spectrum.power_law(2.0, 1.0, head=64),
    "from_features": lambda: Spectrum.from_features(
        np.random.default_rng(0).normal(size=(50, 5)), np.random.default_rng(1).normal(size=50)),
}


@pytest.mark.parametrize("how", ROUND_TRIPS)
@pytest.mark.parametrize("name", SPECTRA)
def test_spectrum_round_trip(name, how):
    spec = SPECTRA[name]()
    copied = ROUND_TRIPS[how](spec)
    assert type(copied) is Spectrum
    for field in ("eigenvalues", "coefficients2", "weights"):
        a, b = getattr(spec, field), getattr(copied, field)
        assert np.array_equal(a, b)
        assert not b.flags.writeable, f"{field} became writeable after {how}"
        assert not np.shares_memory(a, b)
    for attr in ("nu", "kappa", "scale", "q", "infinite", "head", "quadrature_error", "zeta"):
        assert getattr(copied, attr) == getattr(spec, attr)
    algo = memsgd.heavy_ball(0.2, 0.5)
    assert np.array_equal(loss_curve(algo, copied, NOISE, STEPS).loss, loss_curve(algo, spec, NOISE, STEPS).loss)


@requires("cloudpickle")
def test_schedule_on_a_lambda_does_not_pickle_but_cloudpickles():
    """What a process executor refuses (plain pickle) and Dask accepts (cloudpickle)."""
    sched = Schedule(0, lambda t: (np.full(len(t), 0.5), np.zeros((len(t), 0)), np.zeros((len(t), 0)),
                                   np.zeros((len(t), 0, 0)), np.zeros((len(t), 0))))
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(sched)
    copied = _cloudpickle(sched)
    assert np.array_equal(loss_curve(copied, SPECTRUM, NOISE, STEPS).loss,
                          loss_curve(sched, SPECTRUM, NOISE, STEPS).loss)
