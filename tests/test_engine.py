"""The C++ mean-loss engine against the plain-numpy recursion of tests/reference.py."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memsgd
from memsgd import MemoryAlgorithm, Noise, Schedule, Spectrum, loss_curve

from .reference import mean_loss

# Exact identity up to rounding of two different summation orders; relative to the size of
# the state's second moment (L_t alone can be tiny when the residual passes through zero).
RTOL = 1e-12


@st.composite
def problems(draw):
    M = draw(st.integers(0, 4))
    K = draw(st.integers(1, 25))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lam = rng.uniform(0.01, 1.0, K) * min(1.0, 3.0 / K)  # mostly noise-stable, some diverge
    c2 = rng.uniform(0.0, 1.0, K)
    weights = rng.uniform(0.5, 2.0, K) if draw(st.booleans()) else np.ones(K)
    alpha = rng.uniform(0.05, 0.6)
    b = rng.uniform(-0.5, 0.5, M)
    c = rng.uniform(-0.5, 0.5, M)
    D = rng.uniform(-0.5, 0.5, (M, M)) / max(M, 1)
    e = rng.uniform(-0.5, 0.5, M) if draw(st.booleans()) else np.zeros(M)
    tau2 = draw(st.sampled_from([-1.0, 0.0, 0.5]))
    batch = draw(st.sampled_from([1, 7, math.inf]))
    scheduled = draw(st.booleans())
    return dict(M=M, lam=lam, c2=c2, weights=weights, alpha=alpha, b=b, c=c, D=D, e=e,
                tau2=tau2, batch=batch, scheduled=scheduled, rng=rng)


@settings(max_examples=80, deadline=None)
@given(problems())
def test_engine_matches_numpy_reference(p):
    steps = 40
    if p["scheduled"]:
        rng = p["rng"]
        # per-step parameters: the stationary ones jittered differently at every step
        jitter = lambda x: x * (1 + 0.2 * rng.uniform(-1, 1, (steps,) + np.shape(x)))
        arrays = (jitter(np.full((), p["alpha"])), jitter(p["b"]), jitter(p["c"]), jitter(p["D"]), jitter(p["e"]))
        algo = Schedule.from_arrays(*arrays)
        params_at = lambda t: tuple(a[t] for a in arrays)
    else:
        algo = MemoryAlgorithm(p["alpha"], p["b"], p["c"], p["D"], p["e"])
        params_at = lambda t: (p["alpha"], p["b"], p["c"], p["D"], p["e"])
    spec = Spectrum(p["lam"], p["c2"], p["weights"])
    noise = Noise(p["batch"], 1.0, p["tau2"])
    curve = loss_curve(algo, spec, noise, steps)
    L_ref, a_ref, scale = mean_loss(params_at, p["lam"], p["c2"], p["weights"], 1.0, p["tau2"], p["batch"], steps,
                                    return_scale=True, dtype=np.longdouble)
    # The same recursion in plain float64: how much rounding alone moves this problem (some
    # hypothesis problems amplify the rounding of S by 1e6). The engine must be as accurate as it.
    L64, a64 = mean_loss(params_at, p["lam"], p["c2"], p["weights"], 1.0, p["tau2"], p["batch"], steps)
    with np.errstate(all="ignore"):
        bad = ~(L_ref <= 1e30 * L_ref[0])
    n = int(np.argmax(bad)) if bad.any() else steps + 1  # first step the reference diverges
    assert curve.diverged_at == (n if n <= steps else None)
    # relative to the size of the whole second moment (see reference.mean_loss)
    tol = RTOL * scale[:n] + 2 * np.abs(L64[:n] - L_ref[:n])
    assert np.all(np.abs(curve.loss[:n] - L_ref[:n]) <= tol)
    e_size = (1 + np.max(np.abs(p["e"]), initial=0)) ** 2
    tol_a = 2 * RTOL * scale[:n - 1] * e_size + 2 * np.abs(a64[:n - 1] - a_ref[:n - 1])
    assert np.all(np.abs(2 * curve.gradient_point_loss[:n - 1] - a_ref[:n - 1]) <= tol_a)
    assert np.all(np.isinf(curve.loss[n:]))


def test_noiseless_is_gradient_descent_closed_form():
    # GD along lambda_k: residual (1 - a lambda)^t c_k, so L_t = 1/2 sum lambda c^2 (1 - a lambda)^(2t).
    spec = Spectrum.power_law(1.7, 0.8, size=500)
    a = 0.9
    curve = loss_curve(memsgd.gd(a), spec, Noise.none(), 300)
    t = np.arange(301)[:, None]
    expected = 0.5 * np.sum(spec.eigenvalues * spec.coefficients2 * (1 - a * spec.eigenvalues) ** (2 * t), axis=1)
    np.testing.assert_allclose(curve.loss, expected, rtol=1e-12)


def test_large_spectrum_uses_all_blocks():
    # More than one 1024-block and the parallel path: compare against the reference on a
    # problem large enough to be split across blocks.
    rng = np.random.default_rng(3)
    K = 5000
    lam = rng.uniform(0.5, 1, K) * np.arange(1, K + 1) ** -1.5  # summable: the noise stays stable
    c2 = rng.uniform(0, 1, K)
    algo = memsgd.heavy_ball(0.3, 0.6)
    curve = loss_curve(algo, Spectrum(lam, c2), Noise.gaussian(5), 30)
    L_ref, _ = mean_loss(lambda t: algo.parameters(), lam, c2, np.ones(K), 1.0, -1.0, 5, 30)
    np.testing.assert_allclose(curve.loss, L_ref, rtol=RTOL)


def test_infinite_power_law_matches_large_finite_sum():
    # kappa = 1.5: the part of a finite K = 1e6 problem beyond k = 1e6 carries ~K^-kappa/kappa
    # ~ 7e-10 of the loss, far below the 1e-6 tolerance asked of the tail quadrature.
    nu, kappa, steps = 2.0, 1.5, 200
    algo = memsgd.heavy_ball(0.2, 0.8)
    noise = Noise.gaussian(10)
    finite = loss_curve(algo, Spectrum.power_law(nu, kappa, size=10**6), noise, steps)
    infinite_spec = Spectrum.power_law(nu, kappa)
    infinite = loss_curve(algo, infinite_spec, noise, steps)
    assert infinite_spec.size < 10**4
    assert infinite_spec.quadrature_error < 1e-8
    np.testing.assert_allclose(infinite.loss, finite.loss, rtol=1e-6)


def test_infinite_power_law_initial_loss_is_zeta_function():
    from scipy.special import zeta
    for nu, kappa in [(2.0, 1.0), (1.5, 0.25), (3.0, 2.5)]:
        spec = Spectrum.power_law(nu, kappa, q=2.0)
        # the documented error estimate (Euler-Maclaurin junction + quadrature) bounds the error
        assert spec.quadrature_error < 1e-8
        assert spec.initial_loss == pytest.approx(0.5 * 2.0 * zeta(kappa + 1), rel=spec.quadrature_error)
        # second moment of the spectrum: sum lambda^2 c^2 = q sum k^-(kappa+1+nu)
        s2 = np.sum(spec.weights * spec.eigenvalues ** 2 * spec.coefficients2)
        assert s2 == pytest.approx(2.0 * zeta(kappa + 1 + nu), rel=spec.quadrature_error)


def test_divergence_reports_first_overflowing_step():
    spec = Spectrum.power_law(2.0, 1.0, size=100)
    curve = loss_curve(memsgd.gd(2.5), spec, Noise.none(), 400)
    # top mode: residual (1 - 2.5)^t, loss 1/2 * 1 * 1 * 1.5^(2t) + (decaying rest)
    L_ref, _ = mean_loss(lambda t: memsgd.gd(2.5).parameters(), spec.eigenvalues, spec.coefficients2,
                         np.ones(100), 0, 0, math.inf, 200)
    first = int(np.argmax(~(L_ref <= 1e30 * L_ref[0])))
    assert curve.diverged_at == first
    assert np.all(np.isfinite(curve.loss[:first]))
    assert np.all(np.isinf(curve.loss[first:]))


def test_memory_is_not_proportional_to_steps():
    # The engine returns O(T) outputs and keeps O(K) state; a long run on a tiny spectrum works.
    curve = loss_curve(memsgd.heavy_ball(0.2, 0.5), Spectrum([1.0], [1.0]), Noise.gaussian(100), 10**6)
    assert curve.loss.shape == (10**6 + 1,)
    assert np.all(np.isfinite(curve.loss))


@pytest.mark.parametrize("algo", [memsgd.heavy_ball(0.1, 0.9), memsgd.nesterov(0.1, 0.9), memsgd.am1(0.01, 0.99, 0.5)],
                         ids=["heavy-ball", "nesterov", "am1"])
def test_slow_modes_do_not_drift_over_long_runs(algo):
    # Eigenvalues down to 1e-6 evolve for 10^4 steps with little change. Float64 itself loses
    # ~1e-16 per step there (1 - lambda alpha rounds at 1e-16 absolute, ~1e-9 of the decay rate),
    # so the plain float64 recursion drifts ~1e-12 from the extended-precision one; the engine must
    # do as well as it. (A companion-basis formulation, whose basis vectors become parallel as
    # lambda -> 0, drifted 20x more: 1e-11 after 5000 steps.)
    lam = np.array([1e-6, 1e-4, 1e-2, 0.5])
    c2 = np.ones(4)
    steps = 10000
    curve = loss_curve(algo, Spectrum(lam, c2), Noise.gaussian(10), steps)
    at = lambda t: algo.parameters()
    L_ref, _ = mean_loss(at, lam, c2, np.ones(4), 1.0, -1.0, 10, steps, dtype=np.longdouble)
    L64, _ = mean_loss(at, lam, c2, np.ones(4), 1.0, -1.0, 10, steps)
    assert curve.diverged_at is None
    assert np.all(np.abs(curve.loss - L_ref) <= 2 * np.abs(L64 - L_ref) + 1e-14 * L_ref)
