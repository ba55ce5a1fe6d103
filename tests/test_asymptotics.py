"""Asymptotics and phases (docs/math.md §6), checked against exact curves from the C++ engine."""
import math

import numpy as np
import pytest

import memsgd as ms
from memsgd.theory import asymptotics, fit_exponent, phase_boundary, stability

# Same alpha_eff = 1 for all three (docs/math.md §6).
SAME_ALPHA_EFF = {"sgd": ms.gd(1.0), "hb": ms.heavy_ball(0.1, 0.9), "am1": ms.am1(0.05, 0.9, 0.5)}


@pytest.fixture(scope="module")
def signal_curves():
    spec = ms.Spectrum.power_law(2.0, 1.0)          # zeta = 1/2 < 3/2: signal phase
    noise = ms.Noise.gaussian(10)
    return spec, noise, {k: ms.loss_curve(a, spec, noise, 20000).loss for k, a in SAME_ALPHA_EFF.items()}


@pytest.mark.parametrize("name", sorted(SAME_ALPHA_EFF))
def test_signal_phase_prediction_within_2_percent(signal_curves, name):
    spec, noise, curves = signal_curves
    algo = SAME_ALPHA_EFF[name]
    assert algo.alpha_eff == pytest.approx(1.0, rel=1e-14)
    asy = asymptotics(algo, spec, noise)
    assert asy.phase == "signal" and asy.exponent == pytest.approx(0.5, rel=1e-15)
    assert asy.noise_sum == pytest.approx(stability(algo, spec, noise).noise_sum, rel=1e-15)
    L = curves[name]
    assert L[20000] / asy.predict(20000) == pytest.approx(1.0, abs=0.02)
    assert L[4000] / asy.predict(4000) == pytest.approx(1.0, abs=0.02)   # docs/math.md §6 quotes 0.995
    assert fit_exponent(L, 2000, 20000) == pytest.approx(0.5, abs=0.01)


def test_signal_phase_constant_formula_by_hand():
    """C = (Q / (2 kappa)) Gamma(zeta + 1) (2 alpha_eff Lam)^-zeta / (1 - V)."""
    spec = ms.Spectrum.power_law(1.5, 0.6, scale=2.0, q=3.0)
    noise = ms.Noise(8, 1.0, 0.0)
    algo = ms.heavy_ball(0.05, 0.8)
    V = stability(algo, spec, noise).noise_sum   # checked against propagator sums in test_stability
    zeta = 0.4
    want = 3.0 / (2 * 0.6) * math.gamma(zeta + 1) * (2 * algo.alpha_eff * 2.0) ** (-zeta) / (1 - V)
    asy = asymptotics(algo, spec, noise)
    assert asy.noise_sum == pytest.approx(V, rel=1e-10)
    assert asy.constant == pytest.approx(want, rel=1e-10)
    L = ms.loss_curve(algo, spec, noise, 20000).loss
    assert L[20000] / asy.predict(20000) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("name", sorted(SAME_ALPHA_EFF))
def test_noise_phase_exponent_recovered(name):
    spec = ms.Spectrum.power_law(2.0, 4.0)          # zeta = 2 > 3/2: noise phase
    noise = ms.Noise.gaussian(10)
    algo = SAME_ALPHA_EFF[name]
    asy = asymptotics(algo, spec, noise)
    assert asy.phase == "noise" and asy.exponent == pytest.approx(1.5, rel=1e-15)
    L = ms.loss_curve(algo, spec, noise, 20000).loss
    assert fit_exponent(L, 2000, 20000) == pytest.approx(asy.exponent, abs=0.05)
    # the constant converges slowly (relative corrections ~ t^-(zeta - 3/2)): 5% at t = 2e4
    assert L[20000] / asy.predict(20000) == pytest.approx(1.0, abs=0.05)


def test_signal_sum_equals_sum_of_U_propagators():
    spec = ms.Spectrum.power_law(2.0, 4.0, size=30)   # lambda_min ~ 1e-3: U_n ~ exp(-2e-3 n)
    noise = ms.Noise.gaussian(10)
    algo = ms.heavy_ball(0.1, 0.9)
    asy = asymptotics(algo, spec, noise)
    props = ms.propagators(algo, spec, noise, 40000)
    assert props.U[-1] < 1e-25 * props.U[0]
    assert asy.signal_sum == pytest.approx(props.U.sum(), rel=1e-10)


def test_noiseless_is_signal_phase_for_any_zeta():
    spec = ms.Spectrum.power_law(2.0, 4.0)
    asy = asymptotics(ms.gd(1.0), spec, ms.Noise.none())
    assert asy.phase == "signal" and asy.exponent == 2.0 and asy.noise_sum == 0
    L = ms.loss_curve(ms.gd(1.0), spec, ms.Noise.none(), 20000).loss
    assert L[20000] / asy.predict(20000) == pytest.approx(1.0, abs=0.02)


def test_phase_boundary():
    assert phase_boundary(2.0) == 1.5
    spec = ms.Spectrum.power_law(2.0, 3.0)      # zeta = 1.5 exactly
    asy = asymptotics(ms.gd(1.0), spec, ms.Noise.gaussian(10))
    assert asy.phase == "noise" and asy.exponent == 1.5 and math.isnan(asy.constant)
    with pytest.raises(ValueError, match="nu"):
        phase_boundary(-1.0)


def test_asymptotics_validation():
    finite = ms.Spectrum([1.0, 0.5], [1.0, 1.0])
    with pytest.raises(ValueError, match="spectrum must be a power law"):
        asymptotics(ms.gd(1.0), finite, ms.Noise.gaussian(10))
    spec = ms.Spectrum.power_law(2.0, 1.0)
    with pytest.raises(ValueError, match="converge"):
        asymptotics(ms.gd(1.0), spec, ms.Noise(1, 20.0, 0.0))
    with pytest.raises(ValueError, match="stationary"):
        asymptotics(ms.schedules.constant(ms.gd(1.0)), spec, ms.Noise.gaussian(10))


def test_fit_exponent_exact_power_law_and_validation():
    t = np.arange(1, 1001, dtype=float)
    L = np.concatenate([[1.0], 3.0 * t ** -0.7])
    assert fit_exponent(L, 10, 1000) == pytest.approx(0.7, rel=1e-12)
    with pytest.raises(ValueError, match="t_min"):
        fit_exponent(L, 0, 10)
    with pytest.raises(ValueError, match="t_max"):
        fit_exponent(L, 10, 5000)
