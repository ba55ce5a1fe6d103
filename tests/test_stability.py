"""Stability, noise sums and convergence (docs/math.md §5).

Independent checks: direct summation of the propagators (C++ T^n iteration), the plain-SGD and
memory-1 closed forms, brute-force eigenvalues of S_lambda on a dense grid, and what the exact
engine ``loss_curve`` actually does on both sides of V' = 1.
"""
import math

import numpy as np
import pytest

import memsgd as ms
from memsgd.theory import (jury_stable_memory1, memory1_coefficients, noise_sum_memory1, stability)
from memsgd.theory._components import Components

# Well-separated finite spectrum: T^n decays like (1 - 2 alpha_eff 0.1)^n, so 3000 terms of the
# propagator series leave a remainder far below 1e-13.
RNG = np.random.default_rng(11)
FINITE = ms.Spectrum(np.sort(RNG.uniform(0.1, 1.0, 25))[::-1], RNG.uniform(0.0, 2.0, 25))

M2 = ms.MemoryAlgorithm(0.3, [0.3, -0.1], [0.2, 0.4], [[0.6, 0.2], [-0.1, 0.3]], [0.2, -0.3])
ALGOS = {
    "sgd": ms.gd(0.9),
    "hb": ms.heavy_ball(0.1, 0.8),
    "nesterov": ms.nesterov(0.1, 0.8),
    "am1": ms.am1(0.05, 0.8, 0.4),
    "qhm": ms.qhm(0.5, 0.8, 0.7),
    "dana": ms.dana(0.2, 0.3, 0.3, 0.2),
    "M2-e": M2,
}
NOISES = {"gauss": ms.Noise.gaussian(4), "transl": ms.Noise.translation_invariant(6),
          "tau2=0": ms.Noise(3, 1.5, 0.0)}


@pytest.mark.parametrize("noise_name", sorted(NOISES))
@pytest.mark.parametrize("algo_name", sorted(ALGOS))
def test_noise_sums_equal_sum_of_propagators(algo_name, noise_name):
    algo, noise = ALGOS[algo_name], NOISES[noise_name]
    rep = stability(algo, FINITE, noise)
    assert rep.strictly_stable and rep.moment_stable
    props = ms.propagators(algo, FINITE, noise, 3000)
    assert props.V[-1] < 1e-20 * props.V[1]
    assert rep.noise_sum == pytest.approx(props.V.sum(), rel=1e-11)
    assert rep.noise_sum_prime == pytest.approx(props.V_prime.sum(), rel=1e-11)
    if np.all(algo.e == 0):
        assert rep.noise_sum == rep.noise_sum_prime
    assert rep.converges == (rep.noise_sum_prime < 1)
    assert rep.alpha_eff == pytest.approx(algo.alpha_eff, rel=1e-15)


def test_sgd_closed_forms():
    """tau2 = 0: V = (tau1/B) sum alpha lambda / (2 - alpha lambda) (docs/math.md §5); any tau2:
    per component lambda^2 Y = alpha^2 lambda^2 / (1 - (1 - alpha lambda)^2 + (tau2/B) alpha^2 lambda^2)."""
    lam = FINITE.eigenvalues
    a = 1.3
    rep = stability(ms.gd(a), FINITE, ms.Noise(5, 2.0, 0.0))
    assert rep.noise_sum == pytest.approx(2.0 / 5 * np.sum(a * lam / (2 - a * lam)), rel=1e-13)
    for tau2 in (-1.0, 1.0):
        rep = stability(ms.gd(a), FINITE, ms.Noise(5, 2.0, tau2))
        want = 2.0 / 5 * np.sum(a ** 2 * lam ** 2 / (1 - (1 - a * lam) ** 2 + tau2 / 5 * a ** 2 * lam ** 2))
        assert rep.noise_sum == pytest.approx(want, rel=1e-13)
    assert rep.max_spectral_radius == pytest.approx(np.max(np.abs(1 - a * lam)), rel=1e-14)


def test_sgd_on_infinite_power_law_uses_small_lambda_expansion():
    """Infinite power law (nodes down to lambda ~ 1e-36): strictly stable, and V equals the
    closed form sum m alpha lambda / (2 - alpha lambda) evaluated in floating point (which is
    accurate at tiny lambda); a naive linear solve there would be singular."""
    spec = ms.Spectrum.power_law(2.0, 1.0)
    assert spec.eigenvalues.min() < 1e-30
    lam, m = spec.eigenvalues, spec.weights
    rep = stability(ms.gd(1.0), spec, ms.Noise(10, 1.0, 0.0))
    assert rep.strictly_stable and rep.converges
    assert rep.noise_sum == pytest.approx(0.1 * np.sum(m * lam / (2 - lam)), rel=1e-12)
    assert rep.max_spectral_radius <= 1.0


@pytest.mark.parametrize("tau2", [-1.0, 0.0, 1.0])
@pytest.mark.parametrize("algo_name", ["hb", "nesterov", "am1", "qhm", "dana"])
def test_memory1_noise_sum_closed_form_matches_general_path(algo_name, tau2):
    algo = ALGOS[algo_name]
    noise = ms.Noise(4, 1.0, tau2)
    for spec in (FINITE, ms.Spectrum.power_law(2.0, 1.0), ms.Spectrum.power_law(1.3, 0.5, scale=2.0)):
        rep = stability(algo, spec, noise)
        closed = noise_sum_memory1(algo, spec, noise)
        assert closed == pytest.approx(rep.noise_sum_prime, rel=1e-10)


def test_small_lambda_expansion_is_continuous_at_threshold():
    """Memory M >= 2: per-component sums just above (linear solve) and below (expansion)
    lambda_tiny agree; the threshold balances the two errors (~ sqrt(eps / (1 - rho(D))))."""
    slow_m2 = ms.MemoryAlgorithm(0.001, [0.99, 0.0], [0.001, 0.0], [[0.99, 0.0], [0.0, 0.5]])
    for algo in (ALGOS["M2-e"], slow_m2):
        comp = Components(algo)
        assert comp.stable0
        lam = np.array([comp.lambda_tiny * (1 - 1e-9), comp.lambda_tiny * (1 + 1e-9)])
        y00, yhh, z00, zhh = comp.sums(lam, signal=True)
        assert lam[0] < comp.lambda_tiny <= lam[1]
        for arr in (y00, yhh, z00, zhh):
            assert arr[0] == pytest.approx(arr[1], rel=1e-6)


def test_closed_forms_equal_linear_solve_for_memory_0_and_1():
    """The memory-0/1 closed forms of the noiseless sums (y00, yhh, z00, zhh) against the
    (M+1)^2 linear solve of the general path, on lambdas where the solve is well conditioned."""
    lam = np.geomspace(1e-3, 1.0, 40)
    for name in ("sgd", "hb", "nesterov", "am1", "qhm", "dana"):
        algo = ALGOS[name]
        comp = Components(algo)
        closed = comp.sums(lam, signal=True)
        solved = comp._solved_sums(lam, signal=True) if algo.memory >= 2 else _solve_sums(comp, lam)
        for a, b in zip(closed, solved):
            np.testing.assert_allclose(a, b, rtol=1e-11, err_msg=name)


def _solve_sums(comp, lam):
    """The general (M+1)^2 linear solve applied to a memory-0/1 algorithm (tiny threshold off)."""
    comp.lambda_tiny = 0.0
    return Components._solved_sums(comp, lam, True)


def _brute_force_stable(algo, lambda_max, n=1500):
    """rho(S_lambda) < 1 on a dense log grid of [1e-7, lambda_max] (numpy eigenvalues), and the
    margin min |1 - rho| over lambda >= 1e-2 (near 0, rho -> 1 for every stable algorithm)."""
    lam = np.concatenate([np.geomspace(1e-7, lambda_max, n), [lambda_max]])
    rho = np.max(np.abs(np.linalg.eigvals(algo.eigen_matrix(lam))), axis=1)
    return bool(np.all(rho < 1)), float(np.min(np.abs(1 - rho[lam >= 1e-2])))


def test_jury_conditions_match_brute_force_and_general_path():
    rng = np.random.default_rng(5)
    spec = ms.Spectrum.power_law(2.0, 1.0, head=64)
    checked = stable_count = 0
    for _ in range(200):
        beta = rng.uniform(-1.2, 1.2)
        a0, a1 = rng.uniform(-1, 2), rng.uniform(-1, 1)
        algo = ms.Multistep([beta], [a0, a1]).to_matrix()
        assert memory1_coefficients(algo) == pytest.approx((beta, a0, a1), abs=1e-12)
        brute, margin = _brute_force_stable(algo, 1.0)
        if margin < 1e-3:
            continue  # too close to the boundary for a grid to decide
        checked += 1
        jury = jury_stable_memory1(beta, a0, a1, 1.0)
        general = stability(algo, spec, ms.Noise.none()).strictly_stable
        assert jury == brute == general, (beta, a0, a1)
        stable_count += jury
    assert checked > 150 and 20 < stable_count < checked - 20


def test_heavy_ball_stability_boundary():
    """HB: strictly stable on (0, lambda_max] iff 0 <= beta < 1 and a lambda_max < 2 (1 + beta)."""
    spec = ms.Spectrum.power_law(2.0, 1.0, scale=1.0)
    assert stability(ms.heavy_ball(3.79, 0.9), spec, ms.Noise.none()).strictly_stable
    assert not stability(ms.heavy_ball(3.81, 0.9), spec, ms.Noise.none()).strictly_stable
    assert jury_stable_memory1(*memory1_coefficients(ms.heavy_ball(3.79, 0.9)), 1.0)
    assert not jury_stable_memory1(*memory1_coefficients(ms.heavy_ball(3.81, 0.9)), 1.0)
    # negative alpha_eff: unstable at small lambda, decided analytically
    rep = stability(ms.MemoryAlgorithm(-0.1, [], [], [[]]), spec, ms.Noise.none())
    assert not rep.strictly_stable and not rep.converges and math.isinf(rep.noise_sum)


@pytest.mark.parametrize("algo_name", ["sgd", "hb", "am1", "nesterov"])
def test_converges_agrees_with_loss_curve_across_batch_size(algo_name):
    """Vary B: the smallest B with V' < 1 converges in the exact engine, the next smaller diverges."""
    algo = {"sgd": ms.gd(1.0), "hb": ms.heavy_ball(0.1, 0.9), "am1": ms.am1(0.05, 0.9, 0.5),
            "nesterov": ms.nesterov(0.1, 0.9)}[algo_name]
    spec = ms.Spectrum.power_law(1.5, 1.0, size=200)
    reports = {B: stability(algo, spec, ms.Noise.gaussian(B)) for B in range(1, 6)}
    B_ok = min(B for B, r in reports.items() if r.converges)
    assert B_ok > 1 and not reports[B_ok - 1].converges
    for B in (B_ok - 1, B_ok):
        curve = ms.loss_curve(algo, spec, ms.Noise.gaussian(B), 20000)
        L = curve.loss
        if reports[B].converges:
            assert curve.diverged_at is None and L[20000] < L[10000] < L[5000] < L[0]
        else:
            assert curve.diverged_at is not None or L[20000] > 1e6 * L[0]


@pytest.mark.parametrize("algo_name", ["sgd", "hb", "am1", "nesterov"])
def test_converges_agrees_with_loss_curve_at_V_prime_095_and_105(algo_name):
    """tau2 = 0 makes V' linear in tau1: put V' at 0.95 and 1.05 exactly."""
    algo = {"sgd": ms.gd(1.0), "hb": ms.heavy_ball(0.1, 0.9), "am1": ms.am1(0.05, 0.9, 0.5),
            "nesterov": ms.nesterov(0.1, 0.9)}[algo_name]
    spec = ms.Spectrum.power_law(1.5, 1.0, size=200)
    v1 = stability(algo, spec, ms.Noise(1, 1.0, 0.0)).noise_sum_prime
    for target in (0.95, 1.05):
        noise = ms.Noise(1, target / v1, 0.0)
        rep = stability(algo, spec, noise)
        assert rep.noise_sum_prime == pytest.approx(target, rel=1e-12)
        L = ms.loss_curve(algo, spec, noise, 20000).loss
        if target < 1:
            assert rep.converges and L[20000] < 1e-4 * L[1000]
        else:
            assert not rep.converges and not (L[20000] < 1e6 * L[1000])


def test_moment_instability_is_reported_and_matches_engine():
    """SGD with tau2 > 0 and B = 1: T = (1 - a lam)^2 - a^2 lam^2 < -1 near a lam = 2, so the
    second moments blow up although S is stable."""
    spec = ms.Spectrum(np.array([1.9, 0.5]), np.array([1.0, 1.0]))
    noise = ms.Noise.translation_invariant(1)        # tau2 = 1: T = (1 - lam)^2 - lam^2 at a = 1
    rep = stability(ms.gd(1.0), spec, noise)
    assert rep.strictly_stable and not rep.moment_stable and not rep.converges
    assert rep.max_moment_radius == pytest.approx(abs(0.9 ** 2 - 1.9 ** 2), rel=1e-12)
    assert ms.loss_curve(ms.gd(1.0), spec, noise, 5000).diverged_at is not None
    # Gaussian self-noise (tau2 = -1): T = (1 - lam)^2 + lam^2 = 4.42 at lam = 1.9; the closed
    # form sees it as the denominator 1 + (tau2/B) lambda^2 r <= 0
    gauss = ms.Noise(1, 1.0, -1.0)
    rep = stability(ms.heavy_ball(1.0, 0.0), spec, gauss)
    assert not rep.moment_stable and math.isinf(rep.noise_sum)
    assert math.isinf(noise_sum_memory1(ms.heavy_ball(1.0, 0.0), spec, gauss))


def test_noiseless_report():
    rep = stability(ALGOS["hb"], FINITE, ms.Noise.none())
    assert rep.noise_sum == 0 and rep.noise_sum_prime == 0 and rep.converges


def test_stability_validation():
    with pytest.raises(ValueError, match="stationary"):
        stability(ms.schedules.constant(ms.gd(0.1)), FINITE, ms.Noise.none())
    with pytest.raises(TypeError, match="algorithm"):
        stability("sgd", FINITE, ms.Noise.none())
    with pytest.raises(TypeError, match="spectrum"):
        stability(ms.gd(0.1), [1.0], ms.Noise.none())
    with pytest.raises(TypeError, match="noise"):
        stability(ms.gd(0.1), FINITE, 10)
    with pytest.raises(ValueError, match="memory 1"):
        memory1_coefficients(ms.gd(0.1))
    with pytest.raises(ValueError, match="lambda_max"):
        jury_stable_memory1(0.5, 0.1, 0.0, -1.0)
    with pytest.raises(TypeError, match="beta"):
        jury_stable_memory1("x", 0.1, 0.0, 1.0)
