"""Propagators U, U', V, V' and the renewal equations of the loss expansion (docs/math.md §4).

Independent checks: a direct numpy evaluation of T_k^n (below), the numpy mean-loss recursion of
tests/reference.py, and the C++ engine ``loss_curve``.
"""
import math

import numpy as np
import pytest

import memsgd as ms
from tests.reference import mean_loss, state_matrices


def numpy_propagators(algo, spec, noise, steps):
    """U_n, U'_n, V_n, V'_n by applying T_k(X) = S X S^T - (tau2/B) lambda^2 (h^T X h) g g^T
    to full (M+1)x(M+1) matrices, n = 0..steps (docs/math.md §4, transcribed)."""
    S0, g, h = state_matrices(algo.alpha, algo.b, algo.c, algo.D, algo.e)
    lam, c2, m = spec.eigenvalues, spec.coefficients2, spec.weights
    N = S0.shape[0]
    s = 0.0 if math.isinf(noise.batch_size) else noise.tau2 / noise.batch_size
    k1 = 0.0 if math.isinf(noise.batch_size) else noise.tau1 / noise.batch_size
    S = S0[None] - lam[:, None, None] * np.outer(g, h)[None]

    def T(X):
        hXh = np.einsum("i,kij,j->k", h, X, h)
        return (S @ X @ S.transpose(0, 2, 1)
                - (s * lam ** 2 * hXh)[:, None, None] * np.outer(g, g)[None])

    X = np.zeros((lam.size, N, N))
    X[:, 0, 0] = 1.0
    G = np.broadcast_to(np.outer(g, g), (lam.size, N, N)).copy()
    U, Up, V, Vp = (np.zeros(steps + 1) for _ in range(4))
    for n in range(steps + 1):
        U[n] = 0.5 * np.sum(m * lam * c2 * X[:, 0, 0])
        Up[n] = 0.5 * np.sum(m * lam * c2 * np.einsum("i,kij,j->k", h, X, h))
        if n >= 1:
            V[n] = k1 * np.sum(m * lam ** 2 * G[:, 0, 0])
            Vp[n] = k1 * np.sum(m * lam ** 2 * np.einsum("i,kij,j->k", h, G, h))
            G = T(G)
        X = T(X)
    return U, Up, V, Vp


def reference_loss(algo, spec, noise, steps):
    params = lambda t: (algo.alpha, algo.b, algo.c, algo.D, algo.e)
    tau1 = 0.0 if noise.is_noiseless else noise.tau1
    tau2 = 0.0 if noise.is_noiseless else noise.tau2
    return mean_loss(params, spec.eigenvalues, spec.coefficients2, spec.weights, tau1, tau2,
                     noise.batch_size, steps)[0]


M2 = ms.MemoryAlgorithm(0.3, [0.3, -0.1], [0.2, 0.4], [[0.6, 0.2], [-0.1, 0.3]], [0.2, -0.3])
CASES = {
    "sgd-gauss": (ms.gd(0.8), ms.Noise.gaussian(4)),
    "hb-transl": (ms.heavy_ball(0.1, 0.85), ms.Noise.translation_invariant(3)),
    "nesterov-e": (ms.nesterov(0.1, 0.9), ms.Noise(5, 1.0, 0.5)),
    "am1-gauss": (ms.am1(0.05, 0.9, 0.4), ms.Noise.gaussian(10)),
    "M2-e-tau2": (M2, ms.Noise(2, 1.3, -0.7)),
    "M2-noiseless": (M2, ms.Noise.none()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_propagators_match_numpy_T_powers(name):
    algo, noise = CASES[name]
    spec = ms.Spectrum.power_law(1.5, 0.8, size=40)
    steps = 60
    props = ms.propagators(algo, spec, noise, steps)
    ref = numpy_propagators(algo, spec, noise, steps)
    for got, want, label in zip((props.U, props.U_prime, props.V, props.V_prime), ref, "U U' V V'".split()):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300, err_msg=label)
    assert props.V[0] == 0 and props.V_prime[0] == 0
    assert props.e_is_zero == bool(np.all(algo.e == 0))


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_from_propagators_reproduces_loss_curve(name, method):
    algo, noise = CASES[name]
    spec = ms.Spectrum.power_law(2.0, 1.0, size=300)
    steps = 500
    L = ms.loss_from_propagators(ms.propagators(algo, spec, noise, steps), method=method)
    curve = ms.loss_curve(algo, spec, noise, steps)
    assert curve.diverged_at is None
    np.testing.assert_allclose(L, curve.loss, rtol=1e-10, atol=0)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_loss_from_propagators_matches_numpy_recursion_with_e_M2_tau2(method):
    """Independent of the C++ engine: the plain-numpy recursion of tests/reference.py."""
    algo, noise = CASES["M2-e-tau2"]
    spec = ms.Spectrum.power_law(1.7, 0.6, size=25)
    steps = 150
    L = ms.loss_from_propagators(ms.propagators(algo, spec, noise, steps), method=method)
    np.testing.assert_allclose(L, reference_loss(algo, spec, noise, steps), rtol=1e-10, atol=0)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_infinite_power_law_with_quadrature_weights(method):
    algo = ms.am1(0.05, 0.9, 0.5)
    noise = ms.Noise.gaussian(10)
    spec = ms.Spectrum.power_law(2.0, 1.0, head=256)
    assert np.any(spec.weights != 1.0)
    steps = 3000
    L = ms.loss_from_propagators(ms.propagators(algo, spec, noise, steps), method=method)
    np.testing.assert_allclose(L, ms.loss_curve(algo, spec, noise, steps).loss, rtol=1e-10, atol=0)


@pytest.mark.parametrize("p, q", [(0.5, 1.6), (3.0, 2.5)])
def test_fft_and_direct_agree_on_long_power_law_kernels(p, q):
    """The renewal solvers alone on synthetic power-law kernels, across many FFT block levels.
    (3.0, 2.5): l spans ~13 decades, so the FFT path must split its source blocks by magnitude
    (a single FFT product per block gave 2e-5 relative error at n = 1e5 before that)."""
    from memsgd import _core
    n = 20001
    t = np.arange(n) + 1.0
    U = t ** -p
    V = 0.3 * t ** -q
    V[0] = 0.0
    Up = 1.1 * t ** -(p + 0.1)
    Vp = 0.25 * t ** -(q - 0.2)
    Vp[0] = 0.0
    Ld, ld, _ = _core.solve_renewal(U, Up, V, Vp, "direct")
    Lf, lf, _ = _core.solve_renewal(U, Up, V, Vp, "fft")
    np.testing.assert_allclose(Lf, Ld, rtol=1e-11)
    np.testing.assert_allclose(lf, ld, rtol=1e-11)
    # the direct solver against a plain python recursion on the first 200 terms
    l = np.zeros(200)
    for k in range(200):
        l[k] = Up[k] + np.dot(l[:k], Vp[k:0:-1])
    np.testing.assert_allclose(ld[:200], l, rtol=1e-13)
    L = U[:200] + np.array([np.dot(l[:k], V[k:0:-1]) for k in range(200)])
    np.testing.assert_allclose(Ld[:200], L, rtol=1e-13)


@pytest.mark.parametrize("n", [0, 1, 2, 63, 64, 65, 129, 1000])
def test_renewal_edge_lengths(n):
    from memsgd import _core
    rng = np.random.default_rng(n)
    U, Up = rng.uniform(0.5, 1, n), rng.uniform(0.5, 1, n)
    V, Vp = rng.uniform(0, 1, n) / max(n, 1), rng.uniform(0, 1, n) / max(n, 1)
    Ld, ld, _ = _core.solve_renewal(U, Up, V, Vp, "direct")
    Lf, lf, _ = _core.solve_renewal(U, Up, V, Vp, "fft")
    assert Ld.shape == (n,) and Lf.shape == (n,)
    np.testing.assert_allclose(Lf, Ld, rtol=1e-12)
    np.testing.assert_allclose(lf, ld, rtol=1e-12)


def test_propagators_and_renewal_validation():
    spec = ms.Spectrum.power_law(2.0, 1.0, size=10)
    props = ms.propagators(ms.gd(0.5), spec, ms.Noise.gaussian(4), 20)
    with pytest.raises(ValueError, match="method"):
        ms.loss_from_propagators(props, method="slow")
    with pytest.raises(TypeError, match="props"):
        ms.loss_from_propagators(np.zeros(3))
    sched = ms.schedules.constant(ms.gd(0.5))
    with pytest.raises(ValueError, match="stationary"):
        ms.propagators(sched, spec, ms.Noise.gaussian(4), 10)
    diverging = ms.propagators(ms.gd(3.0), spec, ms.Noise.gaussian(4), 2000)
    with pytest.raises(ValueError, match="finite"):
        ms.loss_from_propagators(diverging)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_exponentially_decaying_loss_keeps_relative_accuracy(method):
    """Finite, well-conditioned spectrum: L_t falls by ~45 decades over 3000 steps. The FFT path
    tilts its block products exponentially (renewal.cpp) and stays at ~1e-14 relative (without
    the tilt: 1e-3 at t = 1000)."""
    rng = np.random.default_rng(0)
    spec = ms.Spectrum(np.sort(rng.uniform(0.05, 1, 30))[::-1], rng.uniform(0, 1, 30))
    algo, noise = CASES["M2-e-tau2"][0], ms.Noise(5, 1.0, 0.7)
    steps = 3000
    curve = ms.loss_curve(algo, spec, noise, steps)
    assert curve.loss[-1] < 1e-40 * curve.loss[0]
    L = ms.loss_from_propagators(ms.propagators(algo, spec, noise, steps), method=method)
    np.testing.assert_allclose(L, curve.loss, rtol=1e-12, atol=0)


@pytest.mark.slow
def test_fft_matches_direct_on_random_convergent_problems():
    """Random memory 0-3 algorithms (with and without e), random SE noise, finite and infinite
    spectra: the FFT path equals direct summation to 1e-11 relative wherever L > 1e-280."""
    from memsgd import _core
    from tests.test_multistep import random_algorithm
    checked = 0
    for seed in range(24):
        rng = np.random.default_rng(seed)
        algo = random_algorithm(rng, int(rng.integers(0, 4)), with_e=bool(rng.integers(2)))
        K = int(rng.integers(5, 60))
        spec = (ms.Spectrum(rng.uniform(0.01, 1, K), rng.uniform(0, 1, K)) if seed % 2 else
                ms.Spectrum.power_law(rng.uniform(1.2, 3), rng.uniform(0.2, 3), head=128))
        B, tau1, tau2 = int(rng.integers(1, 20)), rng.uniform(0, 2), rng.uniform(-1, 1)
        noise = ms.Noise(B, tau1, min(tau2, tau1))   # tau2 <= tau1: a realizable noise
        if not ms.stability(algo, spec, noise).converges:
            continue
        p = ms.propagators(algo, spec, noise, 2500)
        Ld, _, _ = _core.solve_renewal(p.U, p.U_prime, p.V, p.V_prime, "direct")
        Lf, _, _ = _core.solve_renewal(p.U, p.U_prime, p.V, p.V_prime, "fft")
        ok = Ld > 1e-280
        np.testing.assert_allclose(Lf[ok], Ld[ok], rtol=1e-11, atol=0, err_msg=f"seed {seed}")
        checked += 1
    assert checked >= 12
