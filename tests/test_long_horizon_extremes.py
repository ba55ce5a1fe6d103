"""loss_at where the contour alone cannot be trusted: slow modes with tiny amplitudes, losses far
below L_0, a mode at the stability edge, and the rounding model of the recursion it hands over to
(docs/long-horizons.md, "Accuracy").

Independent references: exact rational arithmetic for noiseless memory-1 algorithms
(``L_t = 1/2 sum_k lambda_k c_k^2 ((S_k^t)_00)^2``, integer matrix powers of the dyadic float
inputs), the same in 60-digit mpmath at t up to 1e12, the 80-bit plain-numpy recursion of
tests/reference.py, and the C++ recursion ``loss_curve``.
"""
import warnings
from fractions import Fraction

import numpy as np
import pytest

import memsgd as ms
from memsgd import long_horizon
from memsgd.long_horizon import loss_at
from tests.reference import mean_loss, recursion_rounding, state_matrices
from tests.test_multistep import random_algorithm

from ._extras import requires

EPS = np.finfo(float).eps
EDGE = (ms.heavy_ball(3.0, 0.5), ms.Spectrum([1.0, 0.5, 0.5, 0.1], [1.0] * 4), ms.Noise.none())
EDGE_LOSS = 4.5  # lambda = 1: the iteration has the eigenvalue -1 (alpha lambda = 2 (1 + beta)), loss 1/2 * 3^2


def _step_matrices(algo, lam):
    S0, g, h = state_matrices(algo.alpha, algo.b, algo.c, algo.D, algo.e)
    N = g.size
    return [[[Fraction(float(S0[i, j])) - Fraction(float(l)) * Fraction(float(g[i])) * Fraction(float(h[j]))
              for j in range(N)] for i in range(N)] for l in lam]


def exact_noiseless_loss(algo, lam, c2, t):
    """L_t of a noiseless stationary algorithm in exact integer arithmetic (the state of a
    noiseless run is deterministic: X_t = S^t X_0 S^tT with X_0 = c^2 E11). Every input is a
    float, i.e. an integer over a power of two, so each term is an integer over a power of two
    and the sum is rounded once (int / int division rounds correctly)."""
    terms = []
    for S, l, c in zip(_step_matrices(algo, lam), lam, c2):
        N = len(S)
        den = max(x.denominator for row in S for x in row)  # powers of two: the largest divides by all
        A = [[int(x * den) for x in row] for row in S]
        P = [[int(i == j) for j in range(N)] for i in range(N)]
        n = int(t)
        while n:  # integer matrix power: no rounding
            if n & 1:
                P = [[sum(P[i][k] * A[k][j] for k in range(N)) for j in range(N)] for i in range(N)]
            A = [[sum(A[i][k] * A[k][j] for k in range(N)) for j in range(N)] for i in range(N)]
            n >>= 1
        weight = Fraction(float(l)) * Fraction(float(c)) / 2
        terms.append((weight.numerator * P[0][0] ** 2, weight.denominator.bit_length() - 1
                      + 2 * int(t) * (den.bit_length() - 1)))
    shift = max(e for _, e in terms)
    return sum(n << (shift - e) for n, e in terms) / (1 << shift)


def mp_noiseless_loss(algo, lam, c2, t, digits=60):
    """The same in ``digits``-digit arithmetic (for t up to 1e12, where exact integers are too long)."""
    import mpmath as mp
    with mp.workdps(digits):
        total = mp.mpf(0)
        for S, l, c in zip(_step_matrices(algo, lam), lam, c2):
            A = mp.matrix([[mp.mpf(x.numerator) / x.denominator for x in row] for row in S])
            total += mp.mpf(0.5) * mp.mpf(float(l)) * mp.mpf(float(c)) * (A ** int(t))[0, 0] ** 2
        return float(total)


def quiet_loss_at(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        return loss_at(*args, **kwargs)


# -- tiny amplitudes, losses far below L_0 ------------------------------------------------------

def test_exact_closed_form_reference_is_right():
    """The rational reference itself against the C++ recursion where both are exact enough."""
    algo, lam, c2 = ms.heavy_ball(0.1, 0.9), [1.0, 1e-3], [1.0, 0.5]
    curve = ms.loss_curve(algo, ms.Spectrum(lam, c2), ms.Noise.none(), 300)
    for t in (0, 1, 7, 300):
        assert exact_noiseless_loss(algo, lam, c2, t) == pytest.approx(curve.loss[t], rel=1e-13, abs=0)


@pytest.mark.slow
def test_slow_mode_with_a_tiny_amplitude():
    """The slow mode (lambda = 1e-3) starts at 1e-150: up to step ~3400 the fast, oscillating mode
    still carries the loss. The contour alone gave 2.0e-155 and 1.2e-156 (the slow mode only)."""
    algo, lam, c2 = ms.heavy_ball(0.1, 0.9), [1.0, 1e-3], [1.0, 1e-150]
    got = quiet_loss_at(algo, ms.Spectrum(lam, c2), ms.Noise.none(), [1600, 3000, 10 ** 4])
    ref = np.array([exact_noiseless_loss(algo, lam, c2, t) for t in (1600, 3000, 10 ** 4)])
    assert ref[0] == pytest.approx(2.558e-74, rel=1e-3, abs=0) and ref[1] == pytest.approx(1.342e-138, rel=1e-3, abs=0)
    np.testing.assert_allclose(got.loss, ref, rtol=1e-12, atol=0)
    assert np.all(np.abs(got.loss - ref) <= got.error)
    assert got.exact_until >= 3000


def test_vanishing_slow_mode_with_noise():
    """lambda = 1e-290 carries 5e-286 of the loss for ever; at step 1600 the fast mode's 8e-67
    dominates (the contour alone gave 5.3e-286, below any warning)."""
    algo, spec, noise = ms.heavy_ball(0.1, 0.9), ms.Spectrum([1.0, 1e-290], [1.0, 1e5]), ms.Noise.gaussian(10)
    got = quiet_loss_at(algo, spec, noise, [1600])
    ref = mean_loss(lambda t: (algo.alpha, algo.b, algo.c, algo.D, algo.e), spec.eigenvalues, spec.coefficients2,
                    spec.weights, noise.tau1, noise.tau2, noise.batch_size, 1600, dtype=np.longdouble)[0][1600]
    assert ref == pytest.approx(8.1e-67, rel=1e-2, abs=0)
    assert got.loss[0] == pytest.approx(ref, rel=1e-12, abs=0) and abs(got.loss[0] - ref) <= got.error[0]


def _random_problem(seed):
    rng = np.random.default_rng(seed)
    K = int(rng.integers(2, 12))
    lam = np.sort(10 ** rng.uniform(-4, 0, K))[::-1]
    c2 = 10 ** rng.uniform(-200, 1, K)
    kind = int(rng.integers(5))
    if kind == 0:
        algo = ms.heavy_ball(float(rng.uniform(0.05, 0.5)), float(rng.uniform(0.5, 0.95)))
    elif kind == 1:
        algo = ms.gd(float(rng.uniform(0.1, 1.5)))
    elif kind == 2:
        algo = ms.nesterov(float(rng.uniform(0.05, 0.5)), float(rng.uniform(0.5, 0.95)))
    elif kind == 3:
        algo = ms.am1(float(rng.uniform(0.01, 0.2)), float(rng.uniform(0.5, 0.95)), float(rng.uniform(0, 0.5)))
    else:
        algo = random_algorithm(rng, 2, with_e=True)
    B = [np.inf, 1.0, 5.0, 50.0][int(rng.integers(4))]
    noise = ms.Noise(B, 1.0, float(rng.uniform(-0.5, 0.5))) if np.isfinite(B) else ms.Noise.none()
    return algo, ms.Spectrum(lam, c2), noise


def _check_random(seed, T=20000, problem=_random_problem):
    """loss_at against the recursion at 60 steps up to T: never negative, within the error estimate
    and to 1e-8. The problem (algo, spec, noise) when its run converges, else False."""
    algo, spec, noise = problem(seed)
    curve = ms.loss_curve(algo, spec, noise, T)
    if curve.diverged_at is not None:
        return False
    steps = np.unique(np.geomspace(1, T, 60).round().astype(np.int64))
    got = quiet_loss_at(algo, spec, noise, steps)
    ref = curve.loss[steps]
    assert np.all(got.loss >= 0)
    diff = np.abs(got.loss - ref)
    assert np.all(diff <= got.error + recursion_rounding(ref, steps) + 1e-300), seed
    with np.errstate(divide="ignore", invalid="ignore"):
        assert np.all(np.where(ref > 1e-290, diff / ref, 0.0) <= 1e-8), seed
    return algo, spec, noise


@pytest.mark.parametrize("seeds", [range(0, 15), range(15, 30)])
def test_random_finite_spectra_with_amplitudes_down_to_1e_200(seeds):
    """c_k^2 log-uniform in [1e-200, 10] on random finite spectra (the contour alone returned
    -0.0566 where the truth is 8.7e-72): against the recursion at 60 steps up to 2e4, never
    negative, within the error estimate, no warning."""
    assert sum(bool(_check_random(seed)) for seed in seeds) >= 10  # most of them do not diverge


@pytest.mark.slow
def test_random_finite_spectra_with_amplitudes_down_to_1e_200_many():
    assert sum(bool(_check_random(seed)) for seed in range(30, 120)) >= 60


def _random_affine_problem(seed):
    """The random problem with label noise (sigma2 log-uniform in [1e-3, 1]), weight decay (rho
    log-uniform in [1e-4, 0.1]) or both; an infinite batch becomes B = 10 without coupled noise
    (tau1 = tau2 = 0, the NQM's noise)."""
    algo, spec, noise = _random_problem(seed)
    rng = np.random.default_rng(10_000 + seed)
    kind = int(rng.integers(3))
    sigma2 = float(10 ** rng.uniform(-3, 0)) if kind != 1 else 0.0
    rho = float(10 ** rng.uniform(-4, -1)) if kind != 0 else 0.0
    if np.isfinite(noise.batch_size):
        noise = ms.Noise(noise.batch_size, noise.tau1, noise.tau2, label_noise=sigma2)
    else:
        noise = ms.Noise(10, 0.0, 0.0, label_noise=sigma2)
    return ms.MemoryAlgorithm(algo.alpha, algo.b, algo.c, algo.D, algo.e, weight_decay=rho), spec, noise


def _check_random_affine(seed, T=20000):
    """_check_random on the affine problems, and at 1e6, 1e9, 1e12 against the floor of the
    stationary moment equations (stability) when the run converges, else inf."""
    problem = _check_random(seed, T, problem=_random_affine_problem)
    if not problem:
        return False
    algo, spec, noise = problem
    far = quiet_loss_at(algo, spec, noise, [10 ** 6, 10 ** 9, 10 ** 12])
    rep = ms.stability(algo, spec, noise)
    if rep.converges:
        assert far.loss[-1] == pytest.approx(rep.noise_floor, rel=1e-12, abs=1e-300), seed
        assert far.floor == pytest.approx(rep.noise_floor, rel=1e-12, abs=1e-300), seed
    else:
        assert far.diverged_at is not None and np.isinf(far.loss[-1]), seed
    return True


@pytest.mark.parametrize("seeds", [range(0, 15), range(15, 30)])
def test_random_finite_spectra_with_label_noise_and_weight_decay(seeds):
    """The random problems above with label noise and/or weight decay: against the recursion, never
    negative, within the error estimate, no warning; the floor at 1e12 (issue 20 item 5)."""
    assert sum(_check_random_affine(seed) for seed in seeds) >= 10


@pytest.mark.slow
def test_random_finite_spectra_with_label_noise_and_weight_decay_many():
    assert sum(_check_random_affine(seed) for seed in range(30, 150)) >= 80


def test_random_tiny_amplitudes_against_80_bit_reference():
    """Independent of the C++ recursion: the plain-numpy recursion in 80-bit arithmetic."""
    for seed in (0, 3, 22):
        algo, spec, noise = _random_problem(seed)
        T = 2500
        ref = mean_loss(lambda t: (algo.alpha, algo.b, algo.c, algo.D, algo.e), spec.eigenvalues,
                        spec.coefficients2, spec.weights, noise.tau1, noise.tau2, noise.batch_size, T,
                        dtype=np.longdouble)[0]
        steps = np.arange(300, T + 1, 37)
        got = quiet_loss_at(algo, spec, noise, steps)
        assert np.all(np.abs(got.loss - ref[steps]) <= got.error + 1e-300)
        np.testing.assert_allclose(got.loss, ref[steps], rtol=1e-10, atol=1e-300)


def test_unresolvable_beyond_the_recursion_raises_naming_the_step(monkeypatch):
    """Where the recursion cannot go, a value with no correct digit is refused, never returned."""
    monkeypatch.setattr(long_horizon, "_ENGINE_MAX", 2000)
    algo, spec = ms.heavy_ball(0.1, 0.9), ms.Spectrum([1.0, 1e-3], [1.0, 1e-150])
    with pytest.raises(ValueError, match="cannot resolve the loss at step 3000:.*fallen far below"):
        loss_at(algo, spec, ms.Noise.none(), [1600, 3000])


# -- the stability edge ---------------------------------------------------------------------------

def test_stability_edge_reference():
    algo, spec, _ = EDGE
    exact = exact_noiseless_loss(algo, spec.eigenvalues, spec.coefficients2, 4000)
    assert exact == pytest.approx(EDGE_LOSS, rel=1e-15, abs=0)


def test_stability_edge_takes_the_recursion():
    """The contour's estimate there exceeds 1e-8 (the pole at mu = 1 is known to O(eps) only):
    the recursion serves the steps (it was 4.50000037 at 1e7 with a too small error)."""
    got = quiet_loss_at(*EDGE, [1000, 10 ** 5, 10 ** 6])
    assert got.exact_until == 10 ** 6
    np.testing.assert_allclose(got.loss, EDGE_LOSS, rtol=1e-13)
    assert np.all(np.abs(got.loss - EDGE_LOSS) <= got.error)


def test_stability_edge_beyond_the_recursion_warns_and_bounds(monkeypatch):
    monkeypatch.setattr(long_horizon, "_ENGINE_MAX", 10 ** 6)
    with pytest.warns(RuntimeWarning, match=r"at step 10000000\)") as record:
        got = loss_at(*EDGE, [1000, 10 ** 7])
    assert len(record) == 1 and got.warnings == (str(record[0].message),)
    assert np.all(np.abs(got.loss - EDGE_LOSS) <= got.error)
    assert got.error[1] > 1e-6 * EDGE_LOSS and got.error[0] < 1e-8 * EDGE_LOSS


def test_stability_edge_up_to_1e12():
    """Errors grow like t; the estimate bounds them, warns, and refuses 1e12 (no correct digit
    guaranteed). The contour alone gave 4.5111 at 1e12."""
    with pytest.warns(RuntimeWarning, match=r"worst .* at step 100000000000,"):
        got = loss_at(*EDGE, [10 ** 9, 10 ** 11])
    assert np.all(np.abs(got.loss - EDGE_LOSS) <= got.error)
    with pytest.raises(ValueError, match="cannot resolve the loss at step 1000000000000:.*stability edge"):
        loss_at(*EDGE, [10 ** 12])


@requires("mpmath")
def test_near_the_stability_edge_against_mpmath():
    """Inexact parameters: the edge holds only up to rounding, the loss drifts slowly."""
    algo, lam, c2 = ms.heavy_ball(2.6, 0.3), [1.0, 0.2], [1.0, 1.0]
    t = np.array([10 ** 9, 10 ** 11, 10 ** 12])
    with pytest.warns(RuntimeWarning, match="estimated relative error"):
        got = loss_at(algo, ms.Spectrum(lam, c2), ms.Noise.none(), t)
    ref = np.array([mp_noiseless_loss(algo, lam, c2, x) for x in t])
    assert np.all(np.abs(got.loss - ref) <= got.error)


@requires("mpmath")
@pytest.mark.parametrize("algo", [ms.heavy_ball(0.1, 0.9), ms.nesterov(0.2, 0.8), ms.heavy_ball(0.01, 0.99)])
def test_small_eigenvalues_against_mpmath_up_to_1e12(algo):
    """Slow modes at lambda ~ 1e-12 keep relative accuracy (the structure of Delta_k): the pole
    uncertainty does not spoil them."""
    lam, c2 = [1e-10, 3e-11, 1e-12], [1.0, 1.0, 1.0]
    t = np.array([10 ** 4, 10 ** 9, 10 ** 11, 10 ** 12])
    got = quiet_loss_at(algo, ms.Spectrum(lam, c2), ms.Noise.none(), t)
    ref = np.array([mp_noiseless_loss(algo, lam, c2, x) for x in t])
    np.testing.assert_allclose(got.loss, ref, rtol=1e-12, atol=0)
    assert np.all(np.abs(got.loss - ref) <= got.error)
    assert np.all(got.error <= 1e-10 * ref)


# -- the recursion's rounding ----------------------------------------------------------------------

ROUNDING = {
    # one slow component: its multiplier's rounding drifts the loss like 0.5-0.8 eps t
    "sgd-one-mode": (ms.gd(0.37), ms.Spectrum([7.3e-4], [1.0]), ms.Noise.none()),
    "am1-one-mode": (ms.am1(0.01, 0.99, 0.5), ms.Spectrum([2e-3], [1.0]), ms.Noise.none()),
    # an underdamped mode alone, noiseless: the loss passes near zero every ~300 steps
    "oscillating": (ms.heavy_ball(0.001, 0.999), ms.Spectrum([1e-2], [1.0]), ms.Noise.none()),
    "hb-noise": (ms.heavy_ball(0.001, 0.999), ms.Spectrum([1e-2, 0.5], [1.0, 1.0]), ms.Noise.gaussian(2)),
}


def _rounding_check(name, T):
    algo, spec, noise = ROUNDING[name]
    ref = mean_loss(lambda t: (algo.alpha, algo.b, algo.c, algo.D, algo.e), spec.eigenvalues, spec.coefficients2,
                    spec.weights, noise.tau1, noise.tau2, noise.batch_size, T, dtype=np.longdouble)[0]
    steps = np.arange(0, T + 1)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = loss_at(algo, spec, noise, steps, exact_until=T)
    # only near the zeros of the oscillating loss is the error above 1e-6 relative (and says so)
    assert [str(w.message)[:39] for w in record] == (["loss_at: estimated relative error above"]
                                                     if name == "oscillating" else [])
    assert got.exact_until == T
    diff = np.abs(got.loss - ref)
    assert np.all(diff <= got.error + 1e-300), name
    return diff, ref, steps


@pytest.mark.parametrize("name", ["sgd-one-mode", "am1-one-mode"])
def test_recursion_rounding_model_against_80_bit_reference(name):
    """The recursion's error (LossAt.error of its steps) bounds the 80-bit reference's distance;
    the former model 32 eps (1 + sqrt t) |L| does not (it was 3x too small near 1e5)."""
    diff, ref, steps = _rounding_check(name, 20000)
    assert np.any(diff > 32 * EPS * (1 + np.sqrt(steps)) * ref)
    assert np.all(diff <= recursion_rounding(ref, steps) + 1e-300)


def test_recursion_rounding_near_zeros_of_an_oscillating_loss():
    """Near a zero of the oscillation the relative error of the recursion is large; the error
    is that of the envelope (the max of |L| over half a period before and after the step)."""
    diff, ref, steps = _rounding_check("oscillating", 20000)
    assert np.max(diff / ref) > 1e-9  # really large relative errors at the near-zeros


def test_recursion_rounding_with_noise():
    _rounding_check("hb-noise", 5000)


@pytest.mark.slow
def test_recursion_rounding_model_to_1e5():
    """The worst drift measured (0.8 eps t, AM1 on one slow mode) at t = 1e5."""
    diff, ref, steps = _rounding_check("am1-one-mode", 10 ** 5)
    assert np.all(diff <= recursion_rounding(ref, steps) + 1e-300)
