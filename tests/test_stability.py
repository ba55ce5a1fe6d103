"""Stability, noise sums and convergence (docs/math.md §5).

Independent checks: direct summation of the propagators (C++ T^n iteration), the plain-SGD and
memory-1 closed forms, brute-force eigenvalues of S_lambda on a dense grid, and what the exact
engine ``loss_curve`` actually does on both sides of V' = 1.
"""
import math

import numpy as np
import pytest

import memsgd as ms
from memsgd.theory import jury_stable_memory1, memory1_coefficients, noise_sum_memory1, stability
from memsgd.theory._components import Components

from ._extras import requires

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


# --- issue 12 item 5: 1 - beta -> 0 (the acceleration regime of Theorem 7) ----------------------
GAP_SPEC = ms.Spectrum.power_law(2.5, 1.5)


def test_heavy_ball_with_tiny_gap_is_strictly_stable_on_infinite_power_law():
    """heavy_ball(1e-3, 1 - 3e-8): Jury conditions hold (|beta| < 1, a > 0, a lambda < 2(1 + beta)),
    so it is strictly stable on all of (0, 1]; rounding of eigenvalues near 1 made it "unstable"."""
    algo = ms.heavy_ball(1e-3, 1 - 3e-8)
    assert jury_stable_memory1(*memory1_coefficients(algo), GAP_SPEC.lambda_max)
    rep = stability(algo, GAP_SPEC, ms.Noise.gaussian(10 ** 6))
    assert rep.strictly_stable and rep.moment_stable and rep.converges
    assert rep.max_spectral_radius <= 1.0 and rep.max_moment_radius <= 1.0
    # alpha_eff = 3.3e4: with B = 10 heavy ball is noise-unstable (V' >> 1, no acceleration for HB)
    assert not stability(algo, GAP_SPEC, ms.Noise.gaussian(10)).converges


@pytest.mark.parametrize("gap", [3e-8, 1e-10])
def test_am1_in_acceleration_regime_converges(gap):
    """AM1 with lr -> 0 and beta -> 1 at fixed kick (Theorem 7): strictly stable and V' < 1 with
    B = 10, and V' independent of how tiny 1 - beta is once alpha_eff is fixed by lr/(1 - beta)."""
    reports = [stability(ms.am1(0.03 * gap, 1 - gap, 1.0), GAP_SPEC, ms.Noise.gaussian(10)) for gap in (gap, 1e-4)]
    for rep in reports:
        assert rep.strictly_stable and rep.converges
    # alpha_eff = 1.03 in both; the noise sums differ only through the O(lambda (1 - beta)) corrections
    assert reports[0].noise_sum == pytest.approx(reports[1].noise_sum, rel=2e-3)


@requires("mpmath")
def test_gap_regime_per_component_sums_against_50_digit_reference():
    """The closed forms stay exact where 1 - beta = 3e-8: per-component sums against mpmath at
    80 digits (tests/reference.py; I - S (x) S has condition ~ 1/lambda) on lambdas from 1e-30 to 1,
    including the complex region."""
    from tests.reference import noiseless_sums_mp
    lam = np.concatenate([np.geomspace(1e-30, 1.0, 16), [1e-13, 2.25e-13, 3e-13]])
    for algo in (ms.heavy_ball(1e-3, 1 - 3e-8), ms.am1(1e-9, 1 - 3e-8, 1.0), ms.nesterov(1e-3, 1 - 3e-8)):
        comp = Components(algo)
        got = np.array(comp.sums(lam, signal=True))
        want = np.array([noiseless_sums_mp(*algo.parameters(), x, digits=80) for x in lam]).T
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=repr(algo))


@pytest.mark.parametrize("gap", [3e-8, 1e-5])
def test_memory2_embedding_in_gap_regime_agrees_with_memory1(gap):
    """The same class of defect for M >= 2 (general path: unit-circle crossings, linear solves):
    heavy ball / AM1 with a decoupled second memory (D = diag(beta, 0.5), b_2 = c_2 = 0) has the
    dynamics of the memory-1 algorithm, so the same stability and noise sums."""
    beta = 1 - gap
    for lr, kick in ((1e-3, 0.0), (1e-6, 1.0)):
        m1 = ms.am1(lr, beta, kick)
        m2 = ms.MemoryAlgorithm(lr + kick, [beta, 0.0], [lr, 0.0], [[beta, 0.0], [0.0, 0.5]])
        for noise in (ms.Noise.gaussian(10 ** 6), ms.Noise.translation_invariant(10 ** 6)):
            r1, r2 = stability(m1, GAP_SPEC, noise), stability(m2, GAP_SPEC, noise)
            assert r1.strictly_stable and r2.strictly_stable and r1.converges and r2.converges
            assert r2.noise_sum == pytest.approx(r1.noise_sum, rel=1e-8)


@pytest.mark.slow
def test_crossings_match_jury_for_memory1_and_brute_force_for_memory2_and_3():
    """The unit-circle crossing test (general M) decides strict stability on (0, 1] and at nodes as
    the Jury conditions do (M = 1) and as dense eigenvalues on a grid do (M = 2, 3; cases within 1e-3
    of the boundary skipped)."""
    rng = np.random.default_rng(7)
    nodes = np.geomspace(1e-6, 1.0, 60)
    agreed = {1: 0, 2: 0, 3: 0}
    stable_seen = {1: 0, 2: 0, 3: 0}
    for trial in range(240):
        M = 1 + trial % 3
        if M == 1:
            algo = ms.Multistep([rng.uniform(-1.2, 1.2)], [rng.uniform(-1, 2), rng.uniform(-1, 1)]).to_matrix()
        else:
            D = rng.uniform(-0.6, 0.6, (M, M)) / M
            algo = ms.MemoryAlgorithm(rng.uniform(-0.5, 2.0), rng.uniform(-1, 1, M), rng.uniform(-1, 1, M), D,
                                      rng.uniform(-0.5, 0.5, M))
        brute, margin = _brute_force_stable(algo, 1.0)
        if margin < 1e-3:
            continue
        comp = Components(algo)
        comp.m1 = None                       # force the crossing path for memory 1 too
        continuum = comp.stable_up_to(1.0)
        at_nodes = comp.stable_nodes(nodes)
        rho = np.max(np.abs(np.linalg.eigvals(algo.eigen_matrix(nodes))), axis=1)
        assert continuum == brute, (trial, algo)
        np.testing.assert_array_equal(at_nodes, rho < 1, err_msg=repr(algo))
        if M == 1:
            assert continuum == jury_stable_memory1(*memory1_coefficients(algo), 1.0)
        agreed[M] += 1
        stable_seen[M] += continuum
    assert min(agreed.values()) > 40 and min(stable_seen.values()) > 5


# --- issue 12 item 4: eigenvalues near the top of the float range ---------------------------------
def _scaled(algo, s):
    """The same dynamics with lambda -> s lambda: g = (alpha, c) -> g / s (S_lambda depends on lambda g)."""
    return ms.MemoryAlgorithm(algo.alpha / s, algo.b, algo.c / s, algo.D, algo.e)


@pytest.mark.parametrize("algo_name", ["sgd", "hb", "nesterov", "am1", "M2-e"])
@pytest.mark.parametrize("noise", [ms.Noise.gaussian(10), ms.Noise.translation_invariant(10)], ids=["gauss", "transl"])
def test_huge_eigenvalues_give_the_scaled_report(algo_name, noise):
    """lambda ~ 1e160 (lambda^2 overflows) with alpha ~ 1e-160: the report equals the unscaled one."""
    algo = ALGOS[algo_name]
    spec = ms.Spectrum.power_law(2.0, 1.0, head=256)
    big = ms.Spectrum.power_law(2.0, 1.0, head=256, scale=1e160)
    want, got = stability(algo, spec, noise), stability(_scaled(algo, 1e160), big, noise)
    assert got.strictly_stable == want.strictly_stable and got.converges == want.converges
    assert got.noise_sum == pytest.approx(want.noise_sum, rel=1e-12)
    assert got.noise_sum_prime == pytest.approx(want.noise_sum_prime, rel=1e-12)
    assert got.alpha_eff == pytest.approx(want.alpha_eff * 1e-160, rel=1e-14)


# --- issue 12 item 12: fail fast instead of allocating K (M+1)^4 ---------------------------------
def test_large_memory_fails_fast_with_the_size_needed():
    import time
    import tracemalloc
    M = 40
    algo = ms.MemoryAlgorithm(0.1, np.full(M, 0.01), np.full(M, 0.01), 0.5 * np.eye(M))
    spec = ms.Spectrum(np.linspace(0.01, 1.0, 200), np.ones(200))
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"too large.*\(M\+1\)\^2 = 1681.*operations") as info:
        stability(algo, spec, ms.Noise.gaussian(10))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.perf_counter() - start < 5 and peak < 50e6   # before allocating (K M^4 would be ~20 GB)
    assert "MB per node" in str(info.value)
    # a moderate memory still runs, in bounded chunks
    M = 6
    algo = ms.MemoryAlgorithm(0.1, np.full(M, 0.01), np.full(M, 0.01), 0.5 * np.eye(M))
    assert stability(algo, spec, ms.Noise.gaussian(10)).converges


def test_finite_spectrum_nodes_decided_individually_for_memory1():
    """On a finite spectrum only its eigenvalues matter: momentum 1.2 with alpha1 < 0 makes
    a2 = beta + lambda alpha1 < 1 at large lambda, so nodes there are stable (numpy eigenvalues
    agree) although the algorithm is unstable near lambda = 0."""
    algo = ms.Multistep([1.2], [1.0, -0.9]).to_matrix()
    lam = np.array([0.5, 0.8])
    rho = np.max(np.abs(np.linalg.eigvals(algo.eigen_matrix(lam))), axis=1)
    assert np.all(rho < 1)
    rep = stability(algo, ms.Spectrum(lam, [1.0, 1.0]), ms.Noise.none())
    assert rep.strictly_stable and rep.max_spectral_radius == pytest.approx(rho.max(), rel=1e-12)
    assert not stability(algo, ms.Spectrum.power_law(2.0, 1.0, head=64, scale=0.8), ms.Noise.none()).strictly_stable


def test_memory_that_never_forgets_is_not_strictly_stable():
    """D with an eigenvalue 1 (alpha_eff = inf): roots stay on the unit circle for every lambda;
    reported unstable for memory 1 (Jury) and memory 2 (crossings), never a LinAlgError."""
    spec = ms.Spectrum.power_law(2.0, 1.0, size=50)
    for algo in (ms.MemoryAlgorithm(0.1, [1.0], [0.1], [[1.0]]),
                 ms.MemoryAlgorithm(0.1, [1.0, 0.0], [0.1, 0.0], [[1.0, 0.0], [0.0, 0.5]])):
        rep = stability(algo, spec, ms.Noise.gaussian(4))
        assert not rep.strictly_stable and not rep.converges and math.isinf(rep.noise_sum)
