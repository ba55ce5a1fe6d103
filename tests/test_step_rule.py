"""One rule for steps (issue 19 item 3, issue 18 item 19): a number of steps is an integer or a
float that is one exactly (``1e4``), everywhere a run takes steps; a list of steps (loss_at's
steps, the record of loss_curves and sweep) follows one rule too. Before, ``loss_curve(steps=1e4)``
and ``loss_curves(record=[1e2, 1e3])`` raised TypeError while loss_at took the same values."""
import numpy as np
import pytest

import memsgd as ms
from memsgd import Noise, Spectrum

from ._extras import need

SPEC = Spectrum.power_law(2.0, 1.0, size=40)
NOISE = Noise.gaussian(10)
HB = ms.heavy_ball(0.1, 0.9)
FAMILY = ms.design.make_family("heavy_ball", 100)

# name -> (call with steps, what to compare)
RUNS = {
    "loss_curve": lambda T: ms.loss_curve(HB, SPEC, NOISE, T).loss,
    "loss_curves": lambda T: ms.loss_curves([HB, ms.gd(0.5)], SPEC, NOISE, T).loss,
    "propagators": lambda T: ms.propagators(HB, SPEC, NOISE, T).V,
    "loss_gradient": lambda T: ms.loss_gradient(HB, SPEC, NOISE, T).alpha,
    "simulate_sgd": lambda T: ms.simulate_sgd(HB, SPEC, 4, T, 3, seed=1),
    "measured_exponents": lambda T: ms.theory.measured_exponents(HB, NOISE, [2.0], [0.5], T, size=30),
    "family_gradient": lambda T: ms.design.family_gradient(FAMILY, FAMILY.start, SPEC, NOISE, T)[1],
    "make_family": lambda T: ms.design.make_family("heavy_ball", T).start,
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_integral_floats_are_steps(name):
    assert np.array_equal(RUNS[name](1e2), RUNS[name](100))
    assert np.array_equal(RUNS[name](np.float64(100.0)), RUNS[name](np.int64(100)))


@pytest.mark.parametrize("name", sorted(RUNS))
def test_one_message_for_steps_that_are_not_integers(name):
    with pytest.raises(ValueError, match=r"^steps must be an integer \(e\.g\. 1000 or 1e3\), got 100\.5$"):
        RUNS[name](100.5)
    with pytest.raises(TypeError, match=r"^steps must be an integer \(e\.g\. 1000 or 1e3\), got str$"):
        RUNS[name]("100")
    with pytest.raises(TypeError, match=r"^steps must be an integer \(e\.g\. 1000 or 1e3\), got bool$"):
        RUNS[name](True)


def test_sweep_takes_integral_floats():
    need("xarray")
    grid = {"lr": [0.1, 0.2], "momentum": [0.9]}
    a = ms.sweep(ms.heavy_ball, grid, SPEC, NOISE, 1e3, record=[1e2, 1e3])
    b = ms.sweep(ms.heavy_ball, grid, SPEC, NOISE, 1000, record=[100, 1000])
    assert np.array_equal(a["loss"].values, b["loss"].values)
    assert a["step"].values.tolist() == [100, 1000]
    with pytest.raises(ValueError, match=r"^steps must be an integer \(e\.g\. 1000 or 1e3\), got 100\.5$"):
        ms.sweep(ms.heavy_ball, grid, SPEC, NOISE, 100.5)


def test_record_takes_the_steps_loss_at_takes():
    steps = [1e2, 1e3]
    recorded = ms.loss_curves([HB], SPEC, NOISE, 1e3, record=steps)
    assert recorded.steps.tolist() == [100, 1000] and recorded.steps.dtype == np.int64
    full = ms.loss_curve(HB, SPEC, NOISE, 1000).loss
    assert np.array_equal(recorded.loss[0], full[[100, 1000]])
    assert ms.loss_at(HB, SPEC, NOISE, steps).steps.tolist() == recorded.steps.tolist()
    # a float R is a number of log-spaced steps, like an int R
    assert np.array_equal(ms.loss_curves([HB], SPEC, NOISE, 1000, record=20.0).steps,
                          ms.loss_curves([HB], SPEC, NOISE, 1000, record=20).steps)


def test_step_lists_share_their_messages():
    with pytest.raises(ValueError, match="record must be strictly increasing"):
        ms.loss_curves([HB], SPEC, NOISE, 1000, record=[1e3, 1e2])
    with pytest.raises(ValueError, match="steps must be strictly increasing"):
        ms.loss_at(HB, SPEC, NOISE, [1e3, 1e2])
    with pytest.raises(ValueError, match="record must be integers, got 2.5"):
        ms.loss_curves([HB], SPEC, NOISE, 1000, record=[2.5, 10])
    with pytest.raises(ValueError, match="steps must be integers, got 2.5"):
        ms.loss_at(HB, SPEC, NOISE, [2.5, 10])
