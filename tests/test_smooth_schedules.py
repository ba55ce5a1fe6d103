"""loss_at(schedule, ..., approximate=m) on smooth schedules (issue 22, item 2): the piecewise-
stationary approximation graded in log-distance (memsgd._smooth_pieces), Richardson-extrapolated,
against the exact recursion (loss_curve on the same Schedule, an independent route: step by step).
The error estimate must bound the true error in every case."""
import numpy as np
import pytest

import memsgd as ms
from memsgd import lr_shapes
from memsgd._smooth_pieces import frozen_pieces, graded_boundaries

SPEC = ms.Spectrum.power_law(1.5, 0.75, head=64)
NOISE = ms.Noise.gaussian(10)


def _heavy_ball(shape, beta=0.9):
    def generator(t):
        lr = shape(np.asarray(t))
        n = len(t)
        return lr, np.full((n, 1), beta), lr.reshape(n, 1), np.full((n, 1, 1), beta), np.zeros((n, 1))
    return ms.Schedule(1, generator)


def _check(schedule, steps, per_efold, breaks=()):
    got = ms.loss_at(schedule, SPEC, NOISE, steps, exact_until=0, approximate=per_efold, breaks=breaks, warn=False)
    ref = ms.loss_curve(schedule, SPEC, NOISE, int(steps[-1])).loss[steps]
    true = np.abs(got.loss - ref)
    assert np.all(true <= got.error), (true / ref, got.error / ref)
    return true / ref, got.error / ref


def test_wsd_cooldown_against_recursion():
    T = 4000
    shape = lr_shapes.wsd(0.1, T, cooldown_fraction=0.25, cooldown="1-sqrt")
    rel, est = _check(_heavy_ball(shape), np.array([2000, T]), 8, breaks=(T - shape.cooldown_steps,))
    assert rel[0] < 1e-12            # the stable phase is one stationary piece: exact
    assert rel[1] < 1e-4 and est[1] < 1e-3


def test_cosine_against_recursion():
    T = 4000
    rel, est = _check(_heavy_ball(lr_shapes.cosine(0.1, T)), np.array([T]), 8)
    assert rel[0] < 1e-4 and est[0] < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cosine", "wsd 1-sqrt", "am1 power law", "dana decaying"])
def test_long_against_recursion(name):
    T = 30_000
    breaks = ()
    if name == "cosine":
        schedule = _heavy_ball(lr_shapes.cosine(0.1, T))
    elif name == "wsd 1-sqrt":
        shape = lr_shapes.wsd(0.1, T, cooldown_fraction=0.2, cooldown="1-sqrt")
        schedule, breaks = _heavy_ball(shape), (T - shape.cooldown_steps,)
    elif name == "am1 power law":
        schedule = ms.schedules.am1_power_law(kick=1.0, delta=0.45, lambda_max=SPEC.lambda_max)
    else:
        schedule = ms.schedules.dana_decaying(0.5, 1.0, 10.0, 1 / 1.5)
    rel, est = _check(schedule, np.array([T]), 16, breaks)
    assert est[0] < 1e-3


def test_graded_boundaries():
    b = graded_boundaries(1000, 4, breaks=(600,))
    assert b[0] == 0 and b[-1] == 1000 and 600 in b
    w = np.diff(b)
    d = np.minimum.reduce([b[:-1], np.abs(b[:-1] - 600), 1000 - b[:-1]])
    assert np.all(w >= 1) and np.all((w == 1) | (w <= d / 4))
    # about 2 m log(t) pieces per anchor
    assert len(graded_boundaries(10 ** 8, 8)) < 2 * 8 * np.log(10 ** 8) + 40


def test_frozen_pieces_midpoint_and_merge():
    shape = lr_shapes.wsd(1.0, 100, cooldown_fraction=0.5, cooldown="linear")
    schedule = _heavy_ball(shape)
    pieces = frozen_pieces(schedule, np.array([0, 50, 54, 55, 100]))
    assert pieces[0][1] == 50 and pieces[0][0].alpha == 1.0          # stable phase
    # [50, 54): mean of the lr at steps 51 and 52 (linear: that of the piece)
    assert abs(pieces[1][0].alpha - np.mean(shape.values(55)[50:54])) < 1e-15
    assert pieces[-1][1] is None and pieces[-1][0] is pieces[-2][0]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(approximate=4), ValueError, "approximate must be >= 8"),
    (dict(approximate=2.0), TypeError, "approximate must be an integer"),
    (dict(breaks=(5,)), ValueError, "approximate must be a number of pieces"),
    (dict(approximate=8, breaks=5), TypeError, "breaks must be a sequence"),
])
def test_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        ms.loss_at(_heavy_ball(lr_shapes.cosine(0.1, 100)), SPEC, NOISE, [50], **kwargs)
    with pytest.raises(ValueError, match="approximate and breaks must be left out"):
        ms.loss_at(ms.heavy_ball(0.1, 0.9), SPEC, NOISE, [50], approximate=8)


def test_exact_part_is_the_recursion():
    schedule = _heavy_ball(lr_shapes.cosine(0.1, 500))
    got = ms.loss_at(schedule, SPEC, NOISE, [10, 400], approximate=8)
    np.testing.assert_array_equal(got.loss, ms.loss_curve(schedule, SPEC, NOISE, 400).loss[[10, 400]])
    assert got.exact_until == 400
