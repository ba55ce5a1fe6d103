"""Divergence is reported, not raised; extreme but valid inputs neither crash nor give NaN.

``diverged_at`` is checked against an independent first-crossing search on
``tests.reference.mean_loss`` (plain numpy, never imports memsgd).
"""
import math

import numpy as np
import pytest

import memsgd
from memsgd import (
    MemoryAlgorithm,
    Noise,
    Schedule,
    Spectrum,
    _core,
    am1,
    gd,
    heavy_ball,
    loss_curve,
    loss_from_propagators,
    nesterov,
    propagators,
    schedules,
)
from tests.reference import mean_loss

# docs/math.md §8: diverged at the first t with L_t > FACTOR * L_0 or not finite
FACTOR = 1e30


def test_divergence_factor_is_the_documented_one():
    assert _core.DIVERGENCE_FACTOR == FACTOR
    assert not hasattr(memsgd.dynamics, "DIVERGENCE_LIMIT")  # one definition, in the core


def _reference_first_divergence(algo, spec, noise, steps):
    """First t with L_t > 1e30 L_0 or not finite, from the numpy reference (None if never)."""
    params = algo.parameters() if isinstance(algo, MemoryAlgorithm) else None

    def at(t):
        return params if params is not None else algo.at(t).parameters()

    batch = noise.batch_size
    with np.errstate(all="ignore"):
        L, _ = mean_loss(at, spec.eigenvalues, spec.coefficients2, spec.weights, noise.tau1, noise.tau2,
                         batch, steps)
    bad = ~(L <= FACTOR * L[0])
    return (int(np.argmax(bad)) if bad.any() else None), L


def _unstable_heavy_ball():
    """heavy_ball(0.01, 1.3): deliberately unstable, so the preset warns (issue 18 item 19)."""
    with pytest.warns(UserWarning, match=r"\|momentum\| < 1"):
        return heavy_ball(0.01, 1.3)


UNSTABLE = [
    ("gd-lr-too-large", gd(2.5), Spectrum([1.0, 0.3], [1.0, 2.0]), Noise.none(), 200),
    ("sgd-noise-driven", gd(1.0), Spectrum(np.linspace(0.05, 1.0, 40), np.ones(40)), Noise.gaussian(1), 400),
    ("heavy-ball-momentum>1", _unstable_heavy_ball(), Spectrum([1.0, 0.1], [1.0, 1.0]), Noise(4), 400),
    ("nesterov-lr-too-large", nesterov(3.0, 0.5), Spectrum([1.0], [1.0]), Noise.none(), 200),
    ("am1-huge-kick", am1(0.01, 0.9, 1e6), Spectrum([1.0, 1e-3], [1.0, 1.0]), Noise(2), 50),
    ("memory-5-general-kernel", MemoryAlgorithm(0.5, [0.3, 0.1, 0.2, 0.1, 0.3], [0.2, 0.1, 0.3, 0.2, 0.1],
                                                np.diag([0.5, 0.6, 0.7, 0.8, 1.2])),
     Spectrum([1.0, 0.5], [1.0, 1.0]), Noise(8), 2000),
    ("jacobi-hb-with-noise", schedules.jacobi_heavy_ball(1.0),
     Spectrum(np.geomspace(1e-3, 1.0, 30), np.ones(30)), Noise.gaussian(1), 300),
]


@pytest.mark.parametrize("algo, spec, noise, steps", [u[1:] for u in UNSTABLE], ids=[u[0] for u in UNSTABLE])
def test_diverged_at_is_first_overflow(algo, spec, noise, steps):
    curve = loss_curve(algo, spec, noise, steps)
    expected, L_ref = _reference_first_divergence(algo, spec, noise, steps)
    assert expected is not None, "test case must actually diverge within the horizon"
    # A crossing within rounding of the threshold could legitimately land one step apart.
    limit = FACTOR * L_ref[0]
    assert abs(L_ref[expected - 1] / limit - 1) > 1e-9
    assert curve.diverged_at == expected
    assert curve.diverged
    d = curve.diverged_at
    assert np.all(np.isfinite(curve.loss[:d])) and np.all(curve.loss[:d] <= limit)
    assert np.all(np.isinf(curve.loss[d:])) and np.all(curve.loss[d:] > 0)
    assert not np.any(np.isnan(curve.loss))
    # Finite part agrees with the reference.
    np.testing.assert_allclose(curve.loss[:d], L_ref[:d], rtol=1e-9)


def test_divergence_is_relative_to_the_initial_loss():
    # GD with lr 3 on lambda = 1: L_t = 4^t L_0 exactly; 4^49 < 1e30 < 4^50, whatever L_0 is.
    for c2 in (1.0, 1.9e30, 1e-200):
        curve = loss_curve(gd(3.0), Spectrum([1.0], [c2]), Noise.none(), 60)
        assert curve.loss[0] == pytest.approx(0.5 * c2)
        assert curve.diverged_at == 50
        np.testing.assert_allclose(curve.loss[:50], 0.5 * c2 * 4.0 ** np.arange(50), rtol=1e-13)


def test_large_initial_loss_is_not_divergence():
    # issue 12 item 1: L_0 = 5e39 is a well-posed problem, not a divergence at step 0
    curve = loss_curve(gd(1e-21), Spectrum([1e20], [1e20]), Noise.gaussian(1), 5)
    assert curve.diverged_at is None
    # residual (1 - 0.1)^t; noise adds tau1/B lambda a_t alpha^2 = 1e-22 a_t (relative 1e-2 per step)
    L_ref, _ = mean_loss(lambda t: gd(1e-21).parameters(), [1e20], [1e20], [1.0], 1.0, -1.0, 1, 5)
    np.testing.assert_allclose(curve.loss, L_ref, rtol=1e-13)


def test_propagators_of_diverging_algorithm_have_no_nan():
    props = propagators(_unstable_heavy_ball(), Spectrum([1.0, 0.1], [1.0, 1.0]), Noise(4), 3000)
    for arr in (props.U, props.U_prime, props.V, props.V_prime):
        assert not np.any(np.isnan(arr))


def test_stable_algorithm_does_not_diverge():
    curve = loss_curve(heavy_ball(0.1, 0.9), Spectrum.power_law(2.0, 1.0, size=200), Noise(10), 500)
    assert curve.diverged_at is None and np.all(np.isfinite(curve.loss))


# -- extreme but valid inputs ---------------------------------------------------------------

WIDE = Spectrum(np.geomspace(1e3, 1e-300, 64), np.ones(64))


@pytest.mark.parametrize("algo", [gd(1e-4), heavy_ball(1e-5, 0.9), am1(1e-7, 0.99, 1e-4), nesterov(1e-5, 0.9),
                                  MemoryAlgorithm(1e-5, [0.1] * 4, [1e-5] * 4, 0.5 * np.eye(4))],
                         ids=["gd", "hb", "am1", "nesterov", "M4"])
@pytest.mark.parametrize("noise", [Noise.none(), Noise.gaussian(1), Noise.translation_invariant(1)],
                         ids=["none", "gauss-B1", "ti-B1"])
def test_eigenvalues_spanning_1e300(algo, noise):
    curve = loss_curve(algo, WIDE, noise, 200)
    assert not np.any(np.isnan(curve.loss))
    assert curve.diverged_at is None
    assert np.all(curve.loss > 0)
    # the 1e-300 modes do not move: the loss never falls below their share of L_0
    frozen = 0.5 * np.sum(WIDE.eigenvalues[WIDE.eigenvalues < 1e-200] * 1.0)
    assert np.all(curve.loss >= frozen * (1 - 1e-12))


def test_k_equals_one_and_steps_zero():
    spec = Spectrum([0.7], [2.0])
    for algo in (gd(0.5), heavy_ball(0.3, 0.5), schedules.am1_power_law(0.5, 0.3)):
        c0 = loss_curve(algo, spec, Noise(1), 0)
        assert c0.loss.shape == (1,) and c0.loss[0] == pytest.approx(0.7) and c0.diverged_at is None
        c = loss_curve(algo, spec, Noise(1), 50)
        assert c.loss.shape == (51,) and not np.any(np.isnan(c.loss))
    p = propagators(heavy_ball(0.3, 0.5), spec, Noise(1), 0)
    assert p.U.shape == (1,) and p.V[0] == 0.0


def test_empty_schedule_with_zero_steps():
    sched = Schedule.from_arrays(np.zeros(0), np.zeros((0, 1)), np.zeros((0, 1)), np.zeros((0, 1, 1)))
    curve = loss_curve(sched, Spectrum([1.0], [1.0]), Noise(1), 0)
    assert curve.loss.tolist() == [0.5]


def test_batch_size_one_and_infinite():
    spec = Spectrum.power_law(2.0, 1.0, size=100)
    c1 = loss_curve(gd(0.2), spec, Noise(1), 300)
    cinf = loss_curve(gd(0.2), spec, Noise(math.inf), 300)
    assert not np.any(np.isnan(c1.loss)) and not np.any(np.isnan(cinf.loss))
    assert np.all(c1.loss >= cinf.loss * (1 - 1e-12))


def test_huge_kick_on_tiny_spectrum_is_finite():
    # kick 1e12 times eigenvalues <= 1e-15: stable, nothing overflows
    spec = Spectrum(np.geomspace(1e-15, 1e-300, 20), np.ones(20))
    curve = loss_curve(am1(1e-3, 0.9, 1e12), spec, Noise(1), 100)
    assert curve.diverged_at is None and np.all(np.isfinite(curve.loss))


def test_tiny_and_huge_c2():
    spec = Spectrum([1.0, 1e-3], [1e-300, 1e28])    # L_0 = 5e24: large but below the 1e30 limit
    curve = loss_curve(heavy_ball(0.5, 0.5), spec, Noise(1), 100)
    assert curve.diverged_at is None and np.all(np.isfinite(curve.loss))


def test_infinite_power_law_is_finite():
    spec = Spectrum.power_law(1.5, 0.5)          # infinite: eigenvalues down to ~1e-280
    curve = loss_curve(am1(0.05, 0.95, 0.5), spec, Noise(4), 100)
    assert curve.diverged_at is None and np.all(np.isfinite(curve.loss))
    assert np.all(np.diff(curve.loss[10:]) <= 0)


def test_initial_loss_above_limit_diverges_at_zero():
    curve = loss_curve(gd(0.1), Spectrum([1.0], [1e31]), Noise(1), 10)   # L_0 = 5e30: not a divergence
    assert curve.diverged_at is None and np.all(np.isfinite(curve.loss))
    # only an overflowing L_0 diverges at 0 (Spectrum refuses one, so through the core)
    gd_row = (np.array([0.1]), np.zeros((1, 0)), np.zeros((1, 0)), np.zeros((1, 0, 0)), np.zeros((1, 0)))
    L, l, d = _core.evolve((np.array([1e300]), np.ones(1), np.array([1e300])), gd_row, (np.zeros(1), np.zeros(1)), 4)
    assert d == 0 and np.all(np.isinf(L)) and np.all(np.isinf(l))


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_fft_renewal_on_growing_propagators(method):
    """An unstable-but-valid algorithm whose loss grows ~1.5x per step and stays below 1e30:
    the propagator expansion must still reproduce the recursion."""
    algo = MemoryAlgorithm(0.5, [0.0, 0.0, 0.5], [0.0, 0.0, -0.5], np.diag([0.0, 0.0, 0.875]))
    spec, noise = Spectrum([1.0], [1.0]), Noise(1, 1.0, 0.0)
    curve = loss_curve(algo, spec, noise, 129)
    assert curve.diverged_at is None and curve.loss[-1] > 1e21
    L = loss_from_propagators(propagators(algo, spec, noise, 129), method=method)
    np.testing.assert_allclose(L, curve.loss, rtol=1e-10)
