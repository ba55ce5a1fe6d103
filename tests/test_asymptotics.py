"""Asymptotics and phases (docs/math.md §6), checked against exact curves from the C++ engine."""
import math

import numpy as np
import pytest

import memsgd as ms
from memsgd import theory
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


# --- issue 12 item 8: e != 0 (docs/math.md §6.1) -------------------------------------------------
def test_gradient_shift_signal_phase_against_exact_curve():
    """Nesterov(0.2, 0.8), nu = 2.5, kappa = 1.2, Gaussian B = 4: exact / predicted = 1.00015 at
    t = 1e4 (docs/math.md §6.1). Tolerance 1e-3 there (and 1% at t = 1e3): tight enough that the e = 0
    formula U_t / (1 - V) (0.4% off) and U_t / (1 - V') (3% off) both fail."""
    spec, noise, algo = ms.Spectrum.power_law(2.5, 1.2), ms.Noise.gaussian(4), ms.nesterov(0.2, 0.8)
    asy = asymptotics(algo, spec, noise)
    assert asy.phase == "signal" and asy.exponent == pytest.approx(0.48, rel=1e-15)
    assert asy.noise_sum_prime != pytest.approx(asy.noise_sum, rel=0.1)     # e != 0 matters here
    L = ms.loss_curve(algo, spec, noise, 10000).loss
    assert L[10000] / asy.predict(10000) == pytest.approx(1.0, abs=1e-3)
    assert L[1000] / asy.predict(1000) == pytest.approx(1.0, abs=1e-2)
    V, Vp = asy.noise_sum, asy.noise_sum_prime
    u_const = asy.constant * (1 - Vp) / (1 - Vp + V)
    for wrong in (u_const / (1 - V), u_const / (1 - Vp)):
        assert abs(L[10000] / (wrong * 10000 ** -0.48) - 1) > 3e-3


def test_gradient_shift_noise_phase_fast_approach():
    """Noise phase where corrections decay like 1/t (nu = 2, kappa = 6, B = 3): exact / predicted
    within 1e-3 at t = 16000, the gap shrinking by ~2 per doubling of t; the constant uses
    sum U' (sum U differs by 14% here)."""
    spec, noise, algo = ms.Spectrum.power_law(2.0, 6.0), ms.Noise.gaussian(3), ms.nesterov(0.3, 0.7)
    asy = asymptotics(algo, spec, noise)
    assert asy.phase == "noise" and asy.exponent == pytest.approx(1.5, rel=1e-15)
    assert asy.signal_sum / asy.signal_sum_prime > 1.1
    L = ms.loss_curve(algo, spec, noise, 16000).loss
    gaps = np.array([abs(1 - L[t] / asy.predict(t)) for t in (4000, 8000, 16000)])
    assert gaps[-1] < 1e-3
    slopes = np.log2(gaps[:-1] / gaps[1:])
    assert np.all((slopes > 0.8) & (slopes < 1.2)), slopes


def test_gradient_shift_noise_phase_slow_trend():
    """Nesterov(0.3, 0.7), nu = 1.5, kappa = 2.5, B = 2 (docs/math.md §6.1: 0.928 at t = 1e4, approach
    ~ t^-1/3): the gap 1 - exact/predicted is positive and shrinks like a power of t whose local
    exponent rises towards 1/3 (a constant off by a few percent would make it level off instead)."""
    spec, noise, algo = ms.Spectrum.power_law(1.5, 2.5), ms.Noise.gaussian(2), ms.nesterov(0.3, 0.7)
    asy = asymptotics(algo, spec, noise)
    assert asy.phase == "noise" and asy.noise_sum_prime == pytest.approx(0.728, abs=1e-3)
    L = ms.loss_curve(algo, spec, noise, 32000).loss
    t = np.array([2000, 8000, 32000])
    gaps = 1 - L[t] / asy.predict(t)
    assert np.all(gaps > 0) and gaps[1] == pytest.approx(1 - 0.923, abs=0.01)
    slopes = np.log(gaps[:-1] / gaps[1:]) / np.log(4)
    assert 0.2 < slopes[0] < slopes[1] < 0.4, slopes


def test_gradient_shift_memory2_general_path():
    """A memory-2 algorithm with e != 0 (general linear-solve path), signal phase, within 1e-3 at 1e4."""
    M2 = ms.MemoryAlgorithm(0.3, [0.3, -0.1], [0.2, 0.4], [[0.6, 0.2], [-0.1, 0.3]], [0.2, -0.3])
    spec, noise = ms.Spectrum.power_law(2.5, 1.2, head=512), ms.Noise.gaussian(4)
    asy = asymptotics(M2, spec, noise)
    L = ms.loss_curve(M2, spec, noise, 10000).loss
    assert L[10000] / asy.predict(10000) == pytest.approx(1.0, abs=1e-3)


def test_e_zero_formulas_are_the_special_case():
    """With e = 0, V' = V and U' = U: the constants reduce to U_t/(1 - V) and V_t sum U / (1 - V)^2."""
    for spec in (ms.Spectrum.power_law(2.0, 1.0), ms.Spectrum.power_law(2.0, 4.0)):
        asy = asymptotics(ms.heavy_ball(0.1, 0.9), spec, ms.Noise.gaussian(10))
        assert asy.noise_sum_prime == asy.noise_sum
        if asy.phase == "noise":
            assert asy.signal_sum_prime == pytest.approx(asy.signal_sum, rel=1e-12)


# --- issue 12 item 7: boundary by tolerance, nu > 1 -----------------------------------------------
def test_phase_boundary_is_found_despite_rounding():
    """nu = 1.5, kappa = 2: kappa/nu = 1.3333333333333333 < 2 - 1/nu = 1.3333333333333335 in floating
    point; the boundary is exactly zeta = 4/3, so it is reported as the boundary (noise, nan)."""
    assert 2.0 / 1.5 < 2 - 1 / 1.5
    asy = asymptotics(ms.gd(1.0), ms.Spectrum.power_law(1.5, 2.0), ms.Noise.gaussian(10))
    assert asy.phase == "noise" and math.isnan(asy.constant) and asy.exponent == pytest.approx(4 / 3)
    assert theory.phase_of(1.5, 2.0 / 1.5) == "boundary"
    assert theory.phase_of(1.5, 4 / 3 * (1 - 1e-9)) == "signal"
    assert theory.phase_of(1.5, 4 / 3 * (1 + 1e-9)) == "noise"


@pytest.mark.parametrize("nu", [0.5, 1.0, -2.0])
def test_phase_boundary_needs_nu_above_one(nu):
    with pytest.raises(ValueError, match="nu must be"):
        phase_boundary(nu)


def test_phase_diagram_rows_are_the_library_values():
    algo, noise = ms.nesterov(0.1, 0.9), ms.Noise.gaussian(10)
    rows = theory.phase_diagram(algo, noise, [1.5, 2.0], [0.5, 2.0], size=None)
    assert [(r["nu"], r["zeta"]) for r in rows] == [(1.5, 0.5), (1.5, 2.0), (2.0, 0.5), (2.0, 2.0)]
    for r in rows:
        spec = ms.Spectrum.power_law(r["nu"], r["zeta"] * r["nu"])
        asy = asymptotics(algo, spec, noise)
        assert (r["phase"], r["exponent"]) == (asy.phase, asy.exponent)
        assert r["noise_sum_prime"] == asy.noise_sum_prime
    diverging = theory.phase_diagram(ms.gd(1.0), ms.Noise(1, 1.0, 0.0), [1.5], [0.5], size=200)
    assert diverging[0]["phase"] == "diverges" and math.isnan(diverging[0]["exponent"])
    with pytest.raises(ValueError, match="nu must be > 1"):
        theory.phase_diagram(algo, noise, [0.9], [0.5])


def test_asymptotics_with_huge_eigenvalues_equals_scaled_problem():
    """lambda ~ 1e160 (issue 12 item 4): V_t is written with (alpha_eff Lam)^(1/nu), no alpha_eff^2."""
    for kappa in (1.0, 4.0):   # signal and noise phase
        spec = ms.Spectrum.power_law(2.0, kappa, head=512)
        big = ms.Spectrum.power_law(2.0, kappa, head=512, scale=1e160)
        want = asymptotics(ms.heavy_ball(0.1, 0.9), spec, ms.Noise.gaussian(10))
        got = asymptotics(ms.heavy_ball(1e-161, 0.9), big, ms.Noise.gaussian(10))
        assert (got.phase, got.exponent) == (want.phase, want.exponent)
        assert got.constant == pytest.approx(want.constant, rel=1e-10)


def test_result_reprs_use_plain_numbers():
    """numpy scalars must not print as np.float64(...) (issue 13)."""
    spec = ms.Spectrum.power_law(2.0, 4.0, head=64)
    asy = asymptotics(ms.heavy_ball(0.1, 0.9), spec, ms.Noise.gaussian(10))
    rep = stability(ms.heavy_ball(0.1, 0.9), spec, ms.Noise.gaussian(10))
    for obj in (asy, rep, theory.memory1_geometry(ms.heavy_ball(0.1, 0.9)),
                theory.memory1_noise_regions(ms.am1(1e-3, 0.999, 1.0), spec, ms.Noise.gaussian(10))):
        assert "np." not in repr(obj) and "float64" not in repr(obj), repr(obj)


def test_gradient_shift_issue_example_and_why_conversion_is_wrong():
    """The audit's case, Nesterov(0.3, 0.7), nu = 2, kappa = 1, Gaussian B = 3: the e != 0 prediction
    (constant 0.41727) against the exact loss to 1e-4 at t = 1e4 (measured 1.00008); the algorithm
    converted with to_multistep().to_matrix() keeps P and Q but not the noisy dynamics, and its
    prediction (0.4476) is 7% off at every t."""
    spec, noise, algo = ms.Spectrum.power_law(2.0, 1.0), ms.Noise.gaussian(3), ms.nesterov(0.3, 0.7)
    asy = asymptotics(algo, spec, noise)
    assert asy.phase == "signal" and asy.exponent == pytest.approx(0.5, rel=1e-15)
    L = ms.loss_curve(algo, spec, noise, 10000).loss
    assert L[10000] / asy.predict(10000) == pytest.approx(1.0, abs=1e-4)
    assert L[1000] / asy.predict(1000) == pytest.approx(1.0, abs=2e-3)
    converted = asymptotics(algo.to_multistep().to_matrix(), spec, noise)
    for t in (1000, 10000):
        assert abs(L[t] / converted.predict(t) - 1) > 0.05
