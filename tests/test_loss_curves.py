"""loss_curves: one core call for C configurations, bitwise equal to loss_curve at the recorded steps."""
import threading

import numpy as np
import pytest

import memsgd
from memsgd import LossCurves, MemoryAlgorithm, Noise, Spectrum, _core, loss_curve, loss_curves, schedules
from memsgd._steps import log_spaced_steps

from ._extras import requires

STEPS = 300
M5 = MemoryAlgorithm(0.2, [0.3, 0.1, 0.2, 0.1, 0.05], [0.1, 0.2, 0.1, 0.05, 0.1],
                     np.diag([0.5, 0.6, 0.7, 0.8, 0.3]), [0.0, 0.1, 0.0, 0.1, 0.0])
ALGOS = [memsgd.gd(0.5), memsgd.heavy_ball(0.3, 0.7), memsgd.nesterov(0.3, 0.6),
         MemoryAlgorithm(0.3, [0.2, -0.1], [0.1, 0.2], [[0.5, 0.1], [-0.1, 0.4]]),
         MemoryAlgorithm(0.3, [0.2, 0.1, 0.1], [0.1, 0.2, 0.1], 0.4 * np.eye(3), [0.1, 0.0, 0.2]),
         M5, schedules.am1_power_law(0.5, 0.3), schedules.schedule_free_sgd(0.5, 0.9),
         memsgd.gd(2.5)]                                           # the last one diverges
SPECTRA = [Spectrum.power_law(2.0, 1.0, size=2500), Spectrum.power_law(1.5, 0.75), Spectrum([1.0, 0.3], [1.0, 2.0])]


def _configs():
    rng = np.random.default_rng(0)
    specs = [SPECTRA[i % 3] for i in range(len(ALGOS))]
    noises = [Noise.gaussian(10), Noise(4, 1.0, 0.5), Noise.gaussian(rng.integers(1, 20, STEPS).astype(float))]
    noises = [noises[i % 3] for i in range(len(ALGOS))]
    return ALGOS, specs, noises


@pytest.mark.parametrize("record", [None, 40, np.array([0, 1, 7, 150, 299, 300])], ids=["all", "int", "array"])
def test_bitwise_equal_to_loss_curve(record):
    algos, specs, noises = _configs()
    out = loss_curves(algos, specs, noises, STEPS, record=record)
    steps = np.arange(STEPS + 1) if record is None else (log_spaced_steps(STEPS, 40) if isinstance(record, int)
                                                          else record)
    assert isinstance(out, LossCurves)
    assert out.steps.dtype == np.int64 and np.array_equal(out.steps, steps)
    assert out.loss.shape == (len(algos), steps.size) and out.loss.dtype == np.float64
    assert out.diverged_at.shape == (len(algos),) and out.diverged_at.dtype == np.int64
    for i, (a, s, n) in enumerate(zip(algos, specs, noises)):
        single = loss_curve(a, s, n, STEPS)
        assert np.array_equal(out.loss[i], single.loss[steps]), f"configuration {i} differs"
        assert out.diverged_at[i] == (-1 if single.diverged_at is None else single.diverged_at)
    assert out.diverged_at[-1] >= 0 and np.all(out.diverged_at[:-1] == -1)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_any_thread_count_and_any_chunking_give_the_same_bits(threads):
    algos, specs, noises = _configs()
    whole = loss_curves(algos, specs, noises, STEPS, record=30)
    out = loss_curves(algos, specs, noises, STEPS, record=30, threads=threads)
    assert np.array_equal(out.loss, whole.loss) and np.array_equal(out.diverged_at, whole.diverged_at)
    for cut in ([0, 1, 9], [0, 4, 5, 9], [0, 2, 3, 7, 9]):
        parts = [loss_curves(algos[a:b], specs[a:b], noises[a:b], STEPS, record=30, threads=threads)
                 for a, b in zip(cut, cut[1:])]
        assert np.array_equal(np.concatenate([p.loss for p in parts]), whole.loss)
        assert np.array_equal(np.concatenate([p.diverged_at for p in parts]), whole.diverged_at)


def test_fewer_configurations_than_threads_split_components():
    # one configuration on 2 and 3 threads (component-parallel path) equals the 1-thread run
    spec = Spectrum.power_law(1.5, 0.8, size=9000)
    one = loss_curves([memsgd.heavy_ball(0.4, 0.8)], spec, Noise(5), 200, threads=1)
    for threads in (2, 3):
        out = loss_curves([memsgd.heavy_ball(0.4, 0.8)], spec, Noise(5), 200, threads=threads)
        assert np.array_equal(out.loss, one.loss)


def test_shared_objects_and_sequences_are_the_same():
    spec, noise = SPECTRA[0], Noise.gaussian(8)
    a = loss_curves(ALGOS[:3], spec, noise, 50)
    b = loss_curves(ALGOS[:3], [spec] * 3, (noise,) * 3, 50)
    assert np.array_equal(a.loss, b.loss)


BAD = [
    ("record-out-of-range", dict(record=np.array([0, 301])), ValueError, r"record must be <= steps = 300, got 301"),
    ("record-negative", dict(record=np.array([-1, 3])), ValueError, "record must be >= 0, got -1"),
    ("record-not-increasing", dict(record=np.array([0, 5, 5])), ValueError, "record must be strictly increasing"),
    ("record-nonint", dict(record=np.array([0.0, 2.5])), ValueError, "record must be integers, got 2.5"),
    ("record-2d", dict(record=np.zeros((2, 2), dtype=int)), ValueError, "record must be a 1-d array of steps"),
    ("record-empty", dict(record=np.zeros(0, dtype=int)), ValueError, "record must contain at least one step"),
    ("record-one", dict(record=1), ValueError, "record must be >= 2"),
    ("record-bool", dict(record=True), TypeError, "record must be None, a number of steps or an array"),
    ("record-bools", dict(record=[True, False]), TypeError, "record must be integers, got bools"),
    ("record-str", dict(record="0,5"), TypeError, "record must be None, a number of steps or an array"),
    ("spectra-length", dict(spectrum=[SPECTRA[0]] * 2), ValueError,
     r"spectrum must be one Spectrum or a sequence with one per algorithm \(3\), got 2"),
    ("spectrum-type", dict(spectrum=[SPECTRA[0], 3, SPECTRA[0]]), TypeError,
     r"spectrum\[1\] must be a Spectrum, got int"),
    ("noise-length", dict(noise=[Noise(1)]), ValueError,
     "noise must be one Noise or a sequence with one per algorithm"),
    ("noise-type", dict(noise="gaussian"), TypeError, "noise must be a Noise or a sequence of 3 of them"),
    ("algorithm-type", dict(algorithms=[memsgd.gd(0.1), "sgd", memsgd.gd(0.1)]), TypeError,
     r"algorithms\[1\] must be a MemoryAlgorithm or a Schedule, got str"),
    ("algorithms-single", dict(algorithms=memsgd.gd(0.1)), TypeError, "algorithms must be a sequence"),
    ("algorithms-empty", dict(algorithms=[]), ValueError, "algorithms must not be empty"),
    ("threads-zero", dict(threads=0), ValueError, "threads must be a positive integer or None"),
    ("threads-float", dict(threads=2.0), TypeError, "threads must be a positive integer or None"),
    ("steps-negative", dict(steps=-1), ValueError, "steps must be >= 0"),
    ("schedule-too-short", dict(algorithms=[memsgd.gd(0.1), memsgd.Schedule.from_arrays(
        np.ones(5), np.zeros((5, 0)), np.zeros((5, 0)), np.zeros((5, 0, 0))), memsgd.gd(0.1)]), ValueError,
     r"algorithms\[1\] is too short"),
    ("progress-type", dict(progress="yes"), TypeError, "progress must be True, False or None"),
]


@pytest.mark.parametrize("kwargs, exc, match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_refused_before_any_work(kwargs, exc, match):
    args = dict(algorithms=ALGOS[:3], spectrum=SPECTRA[0], noise=Noise(4), steps=300)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        loss_curves(**args)


def test_memory_is_per_recorded_step_not_per_step():
    # 2**39 steps with 20 recorded ones: accepted (no O(steps) array), then cancelled. An O(C T)
    # output would be refused by the memory check before starting (test_resources.py).
    control = _core.RunControl()
    timer = threading.Timer(0.3, control.cancel)
    timer.start()
    rec = log_spaced_steps(2 ** 39, 20)
    alg = (np.array([0.1]), np.zeros((1, 0)), np.zeros((1, 0)), np.zeros((1, 0, 0)), np.zeros((1, 0)))
    with pytest.raises(RuntimeError, match="run cancelled"):
        _core.evolve_batch([(np.ones(1), np.ones(1), np.ones(1))] * 2, [alg] * 2,
                           [(np.zeros(1), np.zeros(1))] * 2, 2 ** 39, rec, control=control)
    assert control.configs_done < 2


@requires("tqdm")
def test_ctrl_c_interrupts_loss_curves_and_a_bar_shows_configurations(ctrl_c):
    seconds, err = ctrl_c("memsgd.loss_curves([memsgd.heavy_ball(0.1, 0.9)] * 4, spec, memsgd.Noise.gaussian(10), "
                          "10**7, record=10, progress=True)",
                          setup="import memsgd\nspec = memsgd.Spectrum.power_law(2.0, 1.0, size=20000)")
    assert seconds < 30
    assert "loss_curves" in err and "config" in err
