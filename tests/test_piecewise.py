"""Schedule.piecewise and loss_at on it (issue 22, item 2): exact at and around every switch.

Reference: the exact recursion, loss_curve on the same Schedule (step by step, the parameters of
the piece each step falls in). loss_at instead runs each piece by its own contour from the
per-component state that the previous piece hands over (memsgd._piece_states)."""
import numpy as np
import pytest

import memsgd as ms

SPEC = ms.Spectrum.power_law(1.5, 1.0, size=300)


def _around(switches, extra=()):
    return np.unique([1, 2, 100, *extra, *[s + d for s in switches for d in (-1, 0, 1, 2, 1500)]])


CASES = {
    # switches beyond the contour's start: states handed over by the contour
    "heavy ball": ([(ms.heavy_ball(0.3, 0.8), 3000), (ms.heavy_ball(0.1, 0.8), 40_000),
                    (ms.heavy_ball(0.02, 0.9), None)], ms.Noise.gaussian(8)),
    "weight decay and label noise": ([(ms.heavy_ball(0.3, 0.8, weight_decay=1e-3), 3000),
                                      (ms.heavy_ball(0.1, 0.8, weight_decay=1e-3), 40_000),
                                      (ms.heavy_ball(0.02, 0.9, weight_decay=1e-3), None)],
                                     ms.Noise.gaussian(8, label_noise=0.1)),
    "nesterov, am1, label noise": ([(ms.nesterov(0.3, 0.8), 5000), (ms.am1(0.05, 0.9, 0.1), 30_000),
                                    (ms.heavy_ball(0.01, 0.0), None)], ms.Noise.gaussian(4, label_noise=0.01)),
    # short pieces: states handed over by the recursion; memory 0
    "sgd, short pieces": ([(ms.gd(0.5), 10), (ms.gd(0.1), 300), (ms.gd(1.0), 7), (ms.gd(0.05), None)],
                          ms.Noise.gaussian(4, label_noise=0.05)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_switches_against_recursion(name):
    pieces, noise = CASES[name]
    schedule = ms.Schedule.piecewise(pieces)
    steps = _around(schedule.switches, extra=(60_000,))
    got = ms.loss_at(schedule, SPEC, noise, steps)
    ref = ms.loss_curve(schedule, SPEC, noise, int(steps[-1])).loss[steps]
    rel = np.abs(got.loss / ref - 1)
    assert rel.max() < 1e-10, (name, rel.max(), steps[np.argmax(rel)])
    # the error estimate covers the difference (plus the recursion's own rounding, eps (32 sqrt t + 4 t))
    rounding = np.finfo(float).eps * (32 * (1 + np.sqrt(steps)) + 4 * steps) * ref
    assert np.all(np.abs(got.loss - ref) <= 10 * got.error + 16 * rounding)
    assert np.all(got.error <= 1e-10 * got.loss)


def test_equal_pieces_are_the_stationary_run_at_1e12():
    """A schedule whose pieces are one algorithm is that algorithm: the state handed over by the
    contour at 10^7 and 10^10 must reproduce the stationary loss_at to 1e12 (second route:
    one contour, no hand-over)."""
    algo, noise = ms.heavy_ball(0.1, 0.9), ms.Noise.gaussian(10, label_noise=0.01)
    spec = ms.Spectrum.power_law(1.5, 0.75, head=256)
    schedule = ms.Schedule.piecewise([(algo, 10 ** 7), (algo, 10 ** 10 - 10 ** 7), (algo, None)])
    steps = np.array([10 ** 3, 10 ** 7 - 1, 10 ** 7, 10 ** 7 + 1, 10 ** 9, 10 ** 10, 10 ** 10 + 1, 10 ** 12])
    got = ms.loss_at(schedule, spec, noise, steps)
    one = ms.loss_at(algo, spec, noise, steps)
    rel = np.abs(got.loss / one.loss - 1)
    assert rel.max() < 1e-10, rel
    assert np.all(np.abs(got.loss - one.loss) <= 10 * (got.error + one.error))


def test_one_piece_is_the_algorithm():
    algo, noise = ms.heavy_ball(0.1, 0.9), ms.Noise.gaussian(10)
    got = ms.loss_at(ms.Schedule.piecewise([(algo, None)]), SPEC, noise, [10, 10 ** 6])
    np.testing.assert_array_equal(got.loss, ms.loss_at(algo, SPEC, noise, [10, 10 ** 6]).loss)


def test_divergence_in_a_later_piece():
    noise = ms.Noise.gaussian(2)
    schedule = ms.Schedule.piecewise([(ms.gd(0.2), 500), (ms.gd(2.5), None)])
    got = ms.loss_at(schedule, SPEC, noise, [10, 499, 500, 10 ** 6], warn=False)
    ref = ms.loss_curve(schedule, SPEC, noise, 2000)
    assert got.diverged_at == ref.diverged_at
    assert np.isinf(got.loss[-1]) and abs(got.loss[1] / ref.loss[499] - 1) < 1e-12


def test_schedule_parameters_and_pickle():
    import pickle
    a, b = ms.heavy_ball(0.5, 0.9), ms.nesterov(0.05, 0.8)
    s = ms.Schedule.piecewise([(a, 3), (b, None)])
    alpha, bb, c, D, e = s.parameters(5)
    np.testing.assert_array_equal(alpha, [0.5, 0.5, 0.5, 0.05, 0.05])
    np.testing.assert_array_equal(e[:, 0], [0, 0, 0, 0.8, 0.8])
    assert s.switches == (3,) and s.pieces[1] == (b, None)
    assert pickle.loads(pickle.dumps(s)).switches == (3,)
    assert ms.Schedule.from_arrays(*s.parameters(5)).pieces is None


@pytest.mark.parametrize("pieces, error, match", [
    ([], ValueError, "at least one"),
    ([(ms.gd(0.1), 10)], ValueError, r"pieces\[0\] steps must be None"),
    ([(ms.gd(0.1), None), (ms.gd(0.1), None)], ValueError, r"pieces\[0\] steps must be a positive integer"),
    ([(ms.gd(0.1), 0), (ms.gd(0.1), None)], ValueError, r"pieces\[0\] steps must be >= 1"),
    ([(ms.gd(0.1), -3), (ms.gd(0.1), None)], ValueError, r"pieces\[0\] steps must be >= 0"),
    ([(ms.gd(0.1), 1.5), (ms.gd(0.1), None)], TypeError, r"pieces\[0\] steps must be an integer"),
    ([(ms.gd(0.1), 5), (ms.heavy_ball(0.1, 0.9), None)], ValueError, r"pieces\[1\] algorithm must have the memory"),
    ([(ms.gd(0.1), 5), (ms.gd(0.1, weight_decay=0.1), None)], ValueError, "weight_decay of pieces"),
    ([(ms.gd(0.1), 5), ("sgd", None)], TypeError, r"pieces\[1\] algorithm must be"),
    ([(ms.gd(0.1),)], TypeError, r"pieces\[0\] must be an \(algorithm, steps\) pair"),
])
def test_validation(pieces, error, match):
    with pytest.raises(error, match=match) as info:
        ms.Schedule.piecewise(pieces)
    assert "\n" not in str(info.value)


def test_loss_at_refusals():
    s = ms.Schedule.piecewise([(ms.gd(0.1), 5), (ms.gd(0.05), None)])
    with pytest.raises(ValueError, match="exact_until must be None for a piecewise schedule"):
        ms.loss_at(s, SPEC, ms.Noise.gaussian(4), [10], exact_until=100)
    r = ms.heavy_ball(0.1, 0.5, )
    s = ms.Schedule.piecewise([(ms.MemoryAlgorithm(0.1, [0.5], [0.1], [[0.5]], readout=[1.0]), 5),
                               (ms.MemoryAlgorithm(0.05, [0.5], [0.1], [[0.5]], readout=[1.0]), None)])
    with pytest.raises(ValueError, match="no readout and no preconditioner"):
        ms.loss_at(s, SPEC, ms.Noise.gaussian(4), [10])
    with pytest.raises(ValueError, match="loss_at inverts the generating function"):
        ms.loss_at(ms.schedules.constant(r), SPEC, ms.Noise.gaussian(4), [10])


def test_supports_loss_at_and_sweep_take_piecewise_schedules():
    """supports_loss_at says True for a piecewise schedule (the exact route), False for a smooth
    one; a sweep with method='loss_at' over piecewise schedules matches the step-by-step engine."""
    pytest.importorskip("xarray")
    noise = ms.Noise.gaussian(8)
    smooth = ms.schedules.am1_power_law(kick=1.0, delta=0.45)
    assert not ms.supports_loss_at(smooth, noise)
    assert not ms.supports_loss_at(ms.Schedule.piecewise([(ms.gd(0.1), 5), (ms.gd(0.05), None)]),
                                   ms.Noise.gaussian([4] * 10))

    def factory(lr, drop):
        return ms.Schedule.piecewise([(ms.heavy_ball(lr, 0.8), 2000), (ms.heavy_ball(lr * drop, 0.8), None)])

    assert ms.supports_loss_at(factory(0.1, 0.3), noise)
    kw = dict(factory=factory, grid={"lr": [0.05, 0.2], "drop": [0.1, 0.5]}, spectrum=SPEC, noise=noise,
              steps=6000, record=20)
    fast, slow = ms.sweep(**kw, method="loss_at"), ms.sweep(**kw, method="engine")
    a, b = np.asarray(fast.loss), np.asarray(slow.loss)
    assert np.max(np.abs(a / b - 1)) < 1e-10
