"""Label noise (docs/math.md §9): the engine, the batched engine and the adjoint against the
plain-numpy recursion of tests/reference.py extended with sigma2, NQM's closed form and a Monte
Carlo of real mini-batch SGD on Gaussian data with noisy labels (written here, not memsgd's)."""
import math
import pickle

import numpy as np
import pytest

import memsgd
from memsgd import MemoryAlgorithm, Noise, Schedule, Spectrum, _core, loss_curve, loss_curves
from memsgd.gradient import loss_gradient

from . import reference

RTOL = 1e-12


def _problem(M, K=9, seed=0, e_zero=False):
    rng = np.random.default_rng(seed)
    lam = np.sort(rng.uniform(0.02, 1.0, K))[::-1] * min(1.0, 3.0 / K)
    c2 = rng.uniform(0.1, 1.0, K)
    weights = rng.uniform(0.5, 2.0, K)
    alpha = rng.uniform(0.2, 0.5)
    b = rng.uniform(-0.4, 0.4, M)
    c = rng.uniform(-0.4, 0.4, M)
    D = rng.uniform(-0.4, 0.4, (M, M)) / max(M, 1)
    e = np.zeros(M) if e_zero else rng.uniform(-0.4, 0.4, M)
    return Spectrum(lam, c2, weights), (alpha, b, c, D, e)


@pytest.mark.parametrize("M", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("e_zero", [False, True])
@pytest.mark.parametrize("tau", [(1.0, -1.0), (0.0, 0.0), (0.6, 0.3)])
def test_loss_curve_matches_reference_with_label_noise(M, e_zero, tau):
    # memory 4 runs the general kernel; tau = (0, 0) is the NQM (label noise the only noise)
    spec, params = _problem(M, seed=M + 7 * e_zero, e_zero=e_zero)
    sigma2, B, T = 0.37, 3, 60
    curve = loss_curve(MemoryAlgorithm(*params), spec, Noise(B, *tau, label_noise=sigma2), T)
    L_ref, a_ref, scale = reference.mean_loss(lambda t: params, spec.eigenvalues, spec.coefficients2,
                                              spec.weights, *tau, B, T, return_scale=True,
                                              dtype=np.longdouble, sigma2=sigma2)
    assert curve.diverged_at is None
    assert np.all(np.abs(curve.loss - L_ref) <= RTOL * scale)
    assert np.all(np.abs(2 * curve.gradient_point_loss[:-1] - a_ref[:-1]) <= 4 * RTOL * scale[:-1])
    assert np.array_equal(curve.total, curve.loss + sigma2 / 2)
    # the label noise matters: without it the curve differs by far more than the tolerance
    plain = loss_curve(MemoryAlgorithm(*params), spec, Noise(B, *tau), T).loss
    assert np.max(np.abs(plain - curve.loss) / scale) > 1e-3


@pytest.mark.parametrize("M", [1, 4])
def test_schedule_and_per_step_batch_with_label_noise(M):
    spec, params = _problem(M, seed=3)
    T = 40
    rng = np.random.default_rng(5)
    arrays = tuple(np.asarray(p) * (1 + 0.2 * rng.uniform(-1, 1, (T,) + np.shape(p))) for p in params)
    batch = rng.integers(1, 9, T).astype(float)
    batch[7] = math.inf   # a step without noise: no label noise either
    sigma2 = 0.8
    curve = loss_curve(Schedule.from_arrays(*arrays), spec, Noise(batch, 1.0, 0.2, label_noise=sigma2), T)
    L_ref, _, scale = reference.mean_loss(lambda t: tuple(a[t] for a in arrays), spec.eigenvalues,
                                          spec.coefficients2, spec.weights, 1.0, 0.2, batch, T,
                                          return_scale=True, dtype=np.longdouble, sigma2=sigma2)
    assert np.all(np.abs(curve.loss - L_ref) <= RTOL * scale)


def test_nqm_closed_form():
    # Zhang et al. (2019): tau1 = tau2 = 0, sigma2 = 1, h_i = 1/i; constant-lr SGD has
    # E x_i^2(t) = s_i + (1 - a h_i)^(2t) (x_i(0)^2 - s_i), s_i = a sigma2 / (B (2 - a h_i)).
    K, B, a, T = 1000, 16, 1.5, 400
    h = 1.0 / np.arange(1, K + 1)
    x02 = np.ones(K)
    curve = loss_curve(memsgd.gd(a), Spectrum(h, x02), Noise(B, 0.0, 0.0, label_noise=1.0), T)
    s = a / (B * (2 - a * h))
    t = np.arange(T + 1)[:, None]
    expected = 0.5 * np.sum(h * (s + (1 - a * h) ** (2 * t) * (x02 - s)), axis=1)
    assert np.max(np.abs(curve.loss - expected) / expected) < 1e-12


def test_default_and_explicit_zero_label_noise_are_bitwise_equal():
    # The core's label source set to zeros (the addition performed) against no label source (the
    # unchanged plain path): bit for bit, fixed kernels (M <= 3, e = 0 and e != 0) and general one.
    for M, e_zero in [(0, True), (1, True), (1, False), (3, False), (5, False)]:
        spec, (alpha, b, c, D, e) = _problem(M, K=37, seed=M, e_zero=e_zero)
        spectrum = (spec.eigenvalues, spec.weights, spec.coefficients2)
        algorithm = (np.array([alpha]), b.reshape(1, M), c.reshape(1, M), D.reshape(1, M, M), e.reshape(1, M))
        coupling, self_noise = np.array([0.25]), np.array([-0.25])
        plain = _core.evolve(spectrum, algorithm, (coupling, self_noise), 80)
        zero = _core.evolve(spectrum, algorithm, (coupling, self_noise, np.zeros(1)), 80)
        assert np.array_equal(plain[0], zero[0]) and np.array_equal(plain[1], zero[1])
        w = np.ones(81)
        g_plain = _core.loss_gradient(spectrum, algorithm, (coupling, self_noise), 80, w)
        g_zero = _core.loss_gradient(spectrum, algorithm, (coupling, self_noise, np.zeros(1)), 80, w)
        for x, y in zip(g_plain, g_zero):
            assert np.array_equal(np.asarray(x), np.asarray(y))
    spec, params = _problem(2, seed=1)
    a = loss_curve(MemoryAlgorithm(*params), spec, Noise(4), 50)
    b = loss_curve(MemoryAlgorithm(*params), spec, Noise(4, label_noise=0.0), 50)
    assert np.array_equal(a.loss, b.loss) and np.array_equal(a.total, a.loss)


def test_loss_curves_mixed_label_noise_equal_loss_curve():
    spec, params = _problem(1, seed=2)
    algo = MemoryAlgorithm(*params)
    noises = [Noise(4), Noise(4, label_noise=0.5), Noise(np.full(30, 3.0), 1.0, 0.0, label_noise=2.0),
              Noise(2, 0.0, 0.0, label_noise=1.0)]
    curves = loss_curves([algo] * 4, spec, noises, 30)
    for i, n in enumerate(noises):
        one = loss_curve(algo, spec, n, 30)
        assert np.array_equal(curves.loss[i], one.loss)
        assert np.array_equal(curves.total[i], one.total)
    assert np.array_equal(curves.label_noise, [0.0, 0.5, 2.0, 1.0])


def test_gradient_with_label_noise_matches_complex_step():
    # d value / d(every parameter) and d value / d(sigma2/B_t) against the complex step of the
    # reference; d value / d(1/B_t) includes the sigma2 term.
    M, T = 2, 6
    rng = np.random.default_rng(11)
    spec, params = _problem(M, K=5, seed=11)
    arrays = [np.asarray(p) * (1 + 0.2 * rng.uniform(-1, 1, (T,) + np.shape(p))) for p in params]
    batch = rng.integers(2, 6, T).astype(float)   # >= 2: the finite differences stay above B = 1
    sigma2 = 0.6
    noise = Noise(batch, 0.7, 0.4, label_noise=sigma2)
    weights = rng.uniform(0, 1, T + 1)
    g = loss_gradient(Schedule.from_arrays(*arrays), spec, noise, T, weights)
    c1, c2 = noise.coefficients(T)
    lab = sigma2 / batch

    def value(arr, n1, n2, n3):
        L = reference.mean_loss_per_step(*arr, spec.eigenvalues, spec.coefficients2, spec.weights, n1, n2, T,
                                         label=n3)
        return weights @ L

    assert g.value == pytest.approx(value(arrays, c1, c2, lab).real, rel=1e-13)
    h = 1e-30
    names = ["alpha", "b", "c", "D", "e", "coupling", "self_noise", "label"]
    for k, name in enumerate(names):
        base = arrays[k] if k < 5 else (c1, c2, lab)[k - 5]
        ref = np.zeros(base.shape)
        for idx in np.ndindex(base.shape):
            arr = [a.astype(complex) for a in arrays]
            noi = [c1.astype(complex), c2.astype(complex), lab.astype(complex)]
            target = arr[k] if k < 5 else noi[k - 5]
            target[idx] += h * 1j
            ref[idx] = value(arr, *noi).imag / h
        got = getattr(g, name)
        assert np.max(np.abs(got - ref)) <= 1e-11 * np.max(np.abs(ref)), name
        if name == "label":
            d_label = ref
        if name == "coupling":
            d_c1 = ref
        if name == "self_noise":
            d_c2 = ref
    batch_ref = 0.7 * d_c1 + 0.4 * d_c2 + sigma2 * d_label
    assert np.max(np.abs(g.batch - batch_ref)) <= 1e-11 * np.max(np.abs(batch_ref))
    # and central differences of loss_curve in 1/B_t (the engine, independent of the adjoint)
    v = rng.uniform(-1, 1, T)
    eps = 1e-6
    inv = 1 / batch

    def J(x):
        return weights @ loss_curve(Schedule.from_arrays(*arrays), spec,
                                    Noise(1 / x, 0.7, 0.4, label_noise=sigma2), T).loss

    fd = (J(inv + eps * v) - J(inv - eps * v)) / (2 * eps)
    assert g.contract(batch=v) == pytest.approx(fd, rel=1e-6)


def test_monte_carlo_real_sgd_with_noisy_labels():
    # Heavy ball on Gaussian data x ~ N(0, diag(lam)), labels y = <w*, x> + eps, Var eps = sigma2,
    # batch B: the mean excess loss over many independent runs against the exact curve.
    rng = np.random.default_rng(0)
    lam = np.array([1.0, 0.6, 0.3, 0.15, 0.05])
    wstar = rng.standard_normal(lam.size)
    sigma2, B, T, runs = 0.5, 2, 25, 40000
    a, beta = 0.25, 0.5
    w = np.zeros((runs, lam.size))
    u = np.zeros_like(w)
    losses = np.empty((T + 1, runs))
    for t in range(T + 1):
        losses[t] = 0.5 * np.sum(lam * (w - wstar) ** 2, axis=1)
        if t == T:
            break
        x = rng.standard_normal((runs, B, lam.size)) * np.sqrt(lam)
        y = x @ wstar + np.sqrt(sigma2) * rng.standard_normal((runs, B))
        resid = np.einsum("rbk,rk->rb", x, w) - y
        grad = np.einsum("rb,rbk->rk", resid, x) / B
        u = beta * u - a * grad
        w = w + u
    exact = loss_curve(memsgd.heavy_ball(a, beta), Spectrum(lam, wstar ** 2), Noise.gaussian(B, label_noise=sigma2),
                       T).loss
    mean = losses.mean(axis=1)
    se = losses.std(axis=1, ddof=1) / math.sqrt(runs)
    z = (mean[1:] - exact[1:]) / se[1:]
    assert np.max(np.abs(z)) < 4.5, z
    # the floor is visible: without label noise the prediction is off by many standard errors
    plain = loss_curve(memsgd.heavy_ball(a, beta), Spectrum(lam, wstar ** 2), Noise.gaussian(B), T).loss
    assert np.max(np.abs((mean[1:] - plain[1:]) / se[1:])) > 20


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan, -1e-300])
def test_bad_label_noise_is_one_line_value_error(bad):
    for make in (lambda: Noise(4, label_noise=bad), lambda: Noise.gaussian(4, label_noise=bad),
                 lambda: Noise.translation_invariant(4, label_noise=bad)):
        with pytest.raises(ValueError, match="label_noise") as info:
            make()
        assert "\n" not in str(info.value)
    with pytest.raises(TypeError, match="label_noise"):
        Noise(4, label_noise="1")


def test_core_refuses_negative_label_source():
    gd_row = (np.ones(1), np.zeros((1, 0)), np.zeros((1, 0)), np.zeros((1, 0, 0)), np.zeros((1, 0)))
    with pytest.raises(ValueError, match="label noise"):
        _core.evolve((np.ones(1), np.ones(1), np.ones(1)), gd_row, (np.zeros(1), np.zeros(1), -np.ones(1)), 3)
    with pytest.raises(ValueError, match="label"):
        _core.evolve((np.ones(1), np.ones(1), np.ones(1)), gd_row, (np.zeros(1), np.zeros(1), np.ones(2)), 3)


def test_noise_value_semantics_with_label_noise():
    n = Noise(4, 1.0, 0.5, label_noise=0.3)
    assert pickle.loads(pickle.dumps(n)) == n
    assert n != Noise(4, 1.0, 0.5) and hash(n) != hash(Noise(4, 1.0, 0.5))
    assert "label_noise=0.3" in repr(n) and "label_noise" not in repr(Noise(4))
    assert n.label_source == 0.3 / 4
    assert np.array_equal(Noise(np.array([2.0, math.inf]), label_noise=1.0).label_coefficients(2), [0.5, 0.0])
    assert not Noise(4, 0.0, 0.0, label_noise=1.0).is_noiseless
    assert Noise(4, 0.0, 0.0).is_noiseless and Noise(math.inf, label_noise=1.0).is_noiseless
    assert Noise.gaussian(2, label_noise=0.5).label_noise == 0.5


def test_loss_at_takes_label_noise():
    # (was refused; tests/test_long_horizon_affine.py checks the values against closed forms)
    spec = Spectrum.power_law(2.0, 1.0, size=50)
    noise = Noise.gaussian(4, label_noise=0.5)
    assert memsgd.supports_loss_at(memsgd.gd(0.5), noise)
    got = memsgd.loss_at(memsgd.gd(0.5), spec, noise, [10, 300])
    np.testing.assert_allclose(got.loss, memsgd.loss_curve(memsgd.gd(0.5), spec, noise, 300).loss[[10, 300]],
                               rtol=1e-12)
