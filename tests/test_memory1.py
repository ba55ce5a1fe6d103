"""Memory-1 geometry and noise regions (issue 12 item 9; the paper's Theorem 6.2 and eq. (26)).

Independent checks: numpy eigenvalues of S_lambda on dense grids, the classical heavy-ball
circle |z| = sqrt(beta), the general (M+1)^2 linear solve of the noise sums, and Theorem 7's
statement about which AM1 families keep V' bounded as 1 - beta -> 0.
"""
import math

import numpy as np
import pytest

import memsgd as ms
from memsgd.theory import (
    memory1_coefficients,
    memory1_eigenvalues,
    memory1_geometry,
    memory1_noise_regions,
    stability,
    stability_profile,
)

from ._extras import need


def _numpy_eigenvalues(algo, lam):
    return np.linalg.eigvals(algo.eigen_matrix(lam))


def _random_memory1(rng):
    kind = rng.integers(3)
    if kind == 0:
        return ms.heavy_ball(rng.uniform(0.01, 2.0), rng.uniform(-0.9, 0.99))
    if kind == 1:
        return ms.am1(rng.uniform(0.0, 0.5), rng.uniform(0.0, 0.99), rng.uniform(0.0, 2.0))
    return ms.Multistep([rng.uniform(-0.9, 0.99)], [rng.uniform(-1, 2), rng.uniform(-1, 1)]).to_matrix()


def test_eigenvalues_match_numpy():
    rng = np.random.default_rng(1)
    lam = np.geomspace(1e-4, 10.0, 50)
    for _ in range(30):
        algo = _random_memory1(rng)
        got = np.sort_complex(memory1_eigenvalues(algo, lam))
        want = np.sort_complex(_numpy_eigenvalues(algo, lam))
        np.testing.assert_allclose(got, want, atol=1e-7 * (1 + np.abs(want).max()))   # double roots: ~sqrt(eps)


def test_slow_eigenvalue_is_accurate_in_gap_regime():
    """1 - z of the slow root at lambda = 1e-20, 1 - beta = 3e-8: against the series-free mpmath root."""
    mp = need("mpmath")
    algo = ms.heavy_ball(1e-3, 1 - 3e-8)
    z = memory1_eigenvalues(algo, np.array([1e-20]))[0]
    slow = z[np.argmax(z.real)].real
    beta, a0, a1 = (mp.mpf(v) for v in memory1_coefficients(algo))
    with mp.workdps(60):
        lam = mp.mpf(1e-20)
        # chi(1 - w) = w^2 - (1 - beta + lam a0) w + lam (a0 + a1) = 0, the small root w
        s, p = 1 - beta + lam * a0, lam * (a0 + a1)
        w = (s - mp.sqrt(s * s - 4 * p)) / 2
    assert (1.0 - slow) == pytest.approx(float(w), rel=1e-6)   # 1 - z itself is rounded once, near 1
    assert 0 < 1.0 - slow


def test_heavy_ball_circle_is_sqrt_beta():
    """Classical result: heavy ball's complex eigenvalues have |z| = sqrt(beta), for lambda between
    (1 - sqrt(beta))^2 / a and (1 + sqrt(beta))^2 / a."""
    a, beta = 0.3, 0.64
    geo = memory1_geometry(ms.heavy_ball(a, beta))
    assert geo.kind == "circle" and geo.center == 0.0
    assert geo.radius == pytest.approx(math.sqrt(beta), rel=1e-15)
    assert geo.complex_interval == pytest.approx(((1 - 0.8) ** 2 / a, (1 + 0.8) ** 2 / a), rel=1e-14)


@pytest.mark.parametrize("seed", range(6))
def test_complex_pairs_lie_on_the_circle_and_only_in_the_interval(seed):
    """Dense lambda grid, numpy eigenvalues: a pair is complex exactly inside complex_interval, and
    every complex pair lies on |z - center| = radius (also |z|^2 = a2 = beta + lambda alpha1)."""
    rng = np.random.default_rng(seed)
    checked_circle = 0
    for _ in range(20):
        algo = _random_memory1(rng)
        beta, a0, a1 = memory1_coefficients(algo)
        geo = memory1_geometry(algo)
        lam = np.geomspace(1e-5, 1e3, 4000)
        z = _numpy_eigenvalues(algo, lam)
        is_complex = np.abs(z[:, 0].imag) > 1e-6 * (1 + np.abs(z[:, 0]))
        if geo.complex_interval is None:
            assert geo.kind == "real" and not np.any(is_complex)
            continue
        lo, hi = geo.complex_interval
        inside = (lam > lo * (1 + 1e-6)) & (lam < hi * (1 - 1e-6))
        clear = (np.abs(lam - lo) > 1e-4 * lo) & (np.abs(lam - hi) > 1e-4 * hi)  # double roots: sqrt(eps)
        np.testing.assert_array_equal(is_complex[clear], inside[clear], err_msg=repr(algo))
        zc = z[is_complex]
        modulus = np.broadcast_to(np.sqrt(beta + lam[is_complex, None] * a1), zc.shape)
        np.testing.assert_allclose(np.abs(zc), modulus, rtol=1e-10)
        if geo.kind == "circle":
            np.testing.assert_allclose(np.abs(zc - geo.center), np.full(zc.shape, geo.radius), rtol=1e-9, atol=1e-12)
            checked_circle += 1
        else:
            np.testing.assert_allclose(zc.real, np.full(zc.shape, (1 + beta) / 2), rtol=1e-12)
    assert checked_circle >= 3


def test_line_when_alpha0_is_zero():
    """alpha0 = 0 (multistep (beta, 0, alpha1)): the circle degenerates into Re z = (1 + beta)/2."""
    algo = ms.Multistep([0.5], [0.0, 0.2]).to_matrix()
    geo = memory1_geometry(algo)
    assert geo.kind == "line" and geo.complex_interval[1] == math.inf
    assert geo.complex_interval[0] == pytest.approx(0.5 ** 2 / (4 * 0.2), rel=1e-12)


def test_all_real_when_linear_root_between_roots_of_quadratic():
    """-alpha1/alpha0 in (beta, 1): both eigenvalues real for every lambda (Theorem 6.2a)."""
    algo = ms.Multistep([0.5], [1.0, -0.7]).to_matrix()    # z0 = 0.7 in (0.5, 1)
    geo = memory1_geometry(algo)
    assert geo.kind == "real" and geo.complex_interval is None
    z = _numpy_eigenvalues(algo, np.geomspace(1e-6, 1e4, 5000))
    assert np.all(np.abs(z.imag) < 1e-6)


# --- the three regions of the noise sum --------------------------------------------------------------
def _h2_by_solve(algo, lam):
    """lambda^2 h^T Y0 h by the general (M+1)^2 linear solve (not the closed form)."""
    from memsgd.theory._components import Components
    comp = Components(algo)
    comp.lambda_tiny = 0.0
    return Components._solved_sums(comp, lam, False)[1]


def test_regions_leading_forms_within_proven_factor_and_exact_split():
    """Per component, exact / leading lies in [1/2, 2] * 2 (1 + beta) / chi(-1) (max of two positive
    terms against their sum, in numerator and denominator); the exact region contributions add up to V'."""
    spec = ms.Spectrum.power_law(2.0, 1.0, head=512)
    noise = ms.Noise(10, 1.0, 0.0)
    for gap in (1e-2, 1e-4, 1e-6):
        algo = ms.am1(0.3 * gap, 1 - gap, 1.0)
        reg = memory1_noise_regions(algo, spec, noise)
        assert reg.lambda_1 < reg.lambda_2 and sum(reg.counts) == spec.size
        assert sum(reg.exact) == pytest.approx(stability(algo, spec, noise).noise_sum_prime, rel=1e-12)
        beta, a0, a1 = memory1_coefficients(algo)
        lam = np.geomspace(1e-8, 1.0, 300)
        exact = _h2_by_solve(algo, lam)
        q1, d1 = a0 + a1, a0 - a1
        lead = lam * np.maximum((1 + beta) * q1, -lam * a1 * d1) / (2 * (1 + beta) * np.maximum(1 - beta, -lam * a1))
        ratio = exact / lead * (2 * (1 + beta) - lam * d1) / (2 * (1 + beta))
        assert np.all(ratio >= 0.5 - 1e-12) and np.all(ratio <= 2 + 1e-12)
        # the regions' sums by the leading forms are within the same factors of the exact ones
        for e, l in zip(reg.exact, reg.leading):
            if e > 0:
                assert 0.5 / 1.2 <= e / l <= 2 * 1.2


def test_regions_separate_as_alpha_eff_grows():
    """lambda_2 / lambda_1 = (1 + beta) alpha_eff / (alpha0 - alpha1): the middle region opens up as
    1 - beta -> 0 at fixed kick (the paper: lambda_1 << lambda_2 in the acceleration regime)."""
    spec = ms.Spectrum.power_law(2.0, 1.0, head=256)
    ratios = []
    for gap in (1e-2, 1e-4, 1e-6):
        algo = ms.am1(gap ** 0.5, 1 - gap, 1.0)    # alpha_eff = 1 + gap^-0.5
        reg = memory1_noise_regions(algo, spec, ms.Noise.gaussian(10))
        beta, a0, a1 = memory1_coefficients(algo)
        assert reg.lambda_2 / reg.lambda_1 == pytest.approx((1 + beta) * algo.alpha_eff / (a0 - a1), rel=1e-10)
        ratios.append(reg.lambda_2 / reg.lambda_1)
    assert ratios[0] < ratios[1] < ratios[2]


def test_theorem7_alpha_eff_power_of_gap():
    """AM1 with alpha_eff = (1 - beta)^-delta and fixed kick on nu = 2: V' stays bounded as
    1 - beta -> 0 for delta < 1 - 1/nu = 1/2 and grows without bound for delta > 1/2."""
    spec = ms.Spectrum.power_law(2.0, 1.0)
    noise = ms.Noise(10, 1.0, 0.0)
    def v_prime(delta, gap):
        kick = 1.0
        lr = ((gap ** -delta) - kick) * gap          # alpha_eff = kick + lr / (1 - beta)
        return stability(ms.am1(lr, 1 - gap, kick), spec, noise).noise_sum_prime
    below = [v_prime(0.3, g) for g in (1e-4, 1e-6, 1e-8)]
    above = [v_prime(0.8, g) for g in (1e-4, 1e-6, 1e-8)]
    assert max(below) < 1.5 * min(below)
    assert above[0] < above[1] < above[2] and above[2] > 10 * above[0]


def test_regions_validation():
    spec = ms.Spectrum.power_law(2.0, 1.0, head=64)
    with pytest.raises(ValueError, match="alpha1 < 0"):
        memory1_noise_regions(ms.heavy_ball(0.1, 0.9), spec, ms.Noise.gaussian(10))
    with pytest.raises(ValueError, match="lambda_1 < lambda_2"):
        memory1_noise_regions(ms.am1(0.0, 0.5, 1.0), spec, ms.Noise.gaussian(10))   # lambda_1 = lambda_2
    with pytest.raises(ValueError, match="memory 1"):
        memory1_geometry(ms.gd(0.1))


def test_stability_profile_consistent_with_geometry_and_report():
    spec = ms.Spectrum.power_law(2.0, 1.0, head=256)
    noise = ms.Noise.gaussian(10)
    algo = ms.am1(1e-3, 1 - 1e-4, 1.0)
    prof = stability_profile(algo, spec, noise, points=200)
    assert prof.geometry == memory1_geometry(algo) and prof.regions is not None
    assert np.all(prof.stable)
    lo, hi = prof.geometry.complex_interval
    cpx = np.abs(prof.eigenvalues[:, 0].imag) > 1e-9
    assert np.all((prof.lam[cpx] > lo * 0.999) & (prof.lam[cpx] < hi * 1.001))
    ok = prof.lam > 1e-6       # where the linear solve is accurate (its error grows like eps / lambda)
    x = _h2_by_solve(algo, prof.lam[ok])
    np.testing.assert_allclose(prof.noise_terms[ok], x / (1 - 0.1 * x), rtol=1e-9)
