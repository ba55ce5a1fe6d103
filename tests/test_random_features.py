"""Spectrum.random_features: the exact problem of a given W, and the deterministic equivalent.

References here never import memsgd: least squares on the population covariance, plain sums for
the equivalent's self-consistent equation, and Monte Carlo over sampled feature matrices.
"""
import math

import numpy as np
import pytest
from scipy import optimize

from memsgd import Spectrum
from memsgd import random_features as rf

from .reference import random_features_given_w


def population(alpha, beta, v):
    j = np.arange(1, v + 1, dtype=np.float64)
    return j ** (-2 * alpha), j ** (-beta)


# -- a given W: exact ---------------------------------------------------------------------------

@pytest.mark.parametrize("alpha,beta,v,d", [(0.6, 0.4, 60, 20), (1.0, 0.7, 40, 40), (0.8, 1.5, 30, 45),
                                        (0.3, 0.9, 400, 100)])
def test_given_w_against_the_eigendecomposition_of_w_h_w(alpha, beta, v, d):
    """Spectrum.random_features(W=...) against tests/reference.py (eigh of K = W^T H W, the normal
    equations by lstsq, the floor as a residual): eigenvalues, c^2 and F0 to 1e-10."""
    lam, b = population(alpha, beta, v)
    W = np.random.default_rng(3).standard_normal((v, d)) / math.sqrt(d)
    spec = Spectrum.random_features(alpha, beta, W=W)
    mu, c2, F0 = random_features_given_w(alpha, beta, W)
    # the floor's two forms agree: 1/2 (b^T H b - theta^T K theta) = the residual
    K = W.T @ (lam[:, None] * W)
    theta = np.linalg.solve(K, W.T @ (lam * b)) if v >= d else None
    if theta is not None:
        assert 0.5 * (np.sum(lam * b * b) - theta @ K @ theta) == pytest.approx(F0, rel=1e-9)
    assert spec.size == mu.size
    np.testing.assert_allclose(spec.eigenvalues, mu, rtol=1e-10)
    np.testing.assert_allclose(spec.coefficients2, c2, rtol=1e-10, atol=1e-10 * c2.max())
    assert spec.floor == pytest.approx(F0, rel=1e-10, abs=1e-15)
    assert spec.label_noise == 2 * spec.floor
    assert np.all(spec.weights == 1.0)
    # the excess risk at theta = 0 plus the floor is the full risk 1/2 b^T H b
    assert spec.initial_loss + spec.floor == pytest.approx(0.5 * np.sum(lam * b * b), rel=1e-10)


def test_seed_samples_w_with_variance_one_over_d():
    spec = Spectrum.random_features(1.0, 0.7, 30, 90, seed=5)
    W = np.random.default_rng(5).standard_normal((90, 30)) / math.sqrt(30)
    same = Spectrum.random_features(1.0, 0.7, W=W)
    np.testing.assert_array_equal(spec.eigenvalues, same.eigenvalues)
    assert spec.floor == same.floor
    assert spec.random_features_info.kind == "sampled" and same.random_features_info.kind == "given"


def test_equivalent_is_cached_and_read_only():
    model = rf.deterministic_equivalent(1.0, 0.7, 64, None)
    assert rf.deterministic_equivalent(1.0, 0.7, 64, None) is model
    np.testing.assert_array_equal(Spectrum.random_features(1.0, 0.7, 64).eigenvalues, model.eigenvalues)
    with pytest.raises(ValueError):
        model.eigenvalues[0] = 1.0


def test_plain_spectra_have_no_floor():
    spec = Spectrum.power_law(2.0, 1.0, size=10)
    assert spec.floor == 0.0 and spec.label_noise == 0.0 and spec.random_features_info is None


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(alpha=0.4, beta=1.0, d=10), ValueError, "v must be finite when 2 alpha <= 1"),
    (dict(alpha=1.0, beta=0.7, d=10, v=10), ValueError, "v must be > d"),
    (dict(alpha=1.0, beta=0.7, d=10, seed=1), ValueError, "give a finite v"),
    (dict(alpha=1.0, beta=0.7, d=10, v=20, seed=1, W=np.ones((20, 10))), ValueError, "at most one"),
    (dict(alpha=1.0, beta=0.7, d=3, W=np.ones((20, 10))), ValueError, "d must equal"),
    (dict(alpha=1.0, beta=0.7, d=None, W=np.ones(20)), ValueError, "W must be 2-dimensional"),
    (dict(alpha=-1.0, beta=0.7, d=10), ValueError, "alpha must be > 0"),
    (dict(alpha=1.0, beta="x", d=10), TypeError, "beta must be a real number"),
    (dict(alpha=1.0, beta=0.7, d=2.5), TypeError, "d must be an integer"),
    (dict(alpha=0.3, beta=0.1, d=10), ValueError, "v must be finite"),
])
def test_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        Spectrum.random_features(**kwargs)


# -- the deterministic equivalent: against independent formulas --------------------------------

def tau_by_root(lam, d):
    """(1/d) sum lam t / (1 + lam t) = 1 (the equivalent's z = 0 point), plain numpy + brentq."""
    f = lambda lt: np.sum(lam * np.exp(lt) / (1 + lam * np.exp(lt))) / d - 1
    return math.exp(optimize.brentq(f, -50, 200, xtol=1e-15, rtol=1e-15))


@pytest.mark.parametrize("alpha,beta,d,v", [(1.0, 0.7, 200, 800), (0.33, 0.45, 100, 400), (0.75, 0.25, 300, 900),
                                            (1.5, 2.0, 150, 600)])
def test_equivalent_floor_and_edge_match_plain_sums(alpha, beta, d, v):
    lam, b = population(alpha, beta, v)
    spec = Spectrum.random_features(alpha, beta, d, v)
    tau = tau_by_root(lam, d)
    assert spec.floor == pytest.approx(0.5 * np.sum(lam * b ** 2 / (1 + lam * tau)), rel=1e-8)
    # lower edge: the maximum over s > 0 of z(s) = -1/s + (1/d) sum lam / (1 + lam s)
    z = lambda ls: -(-math.exp(-ls) + np.sum(lam / (1 + lam * math.exp(ls))) / d)
    res = optimize.minimize_scalar(z, bracket=(math.log(tau), math.log(tau) + 1), tol=1e-12)
    assert spec.random_features_info.edge == pytest.approx(-res.fun, rel=1e-8)
    # d eigenvalues in all, and the loss measure carries everything the floor does not
    assert spec.weights.sum() == pytest.approx(d, rel=1e-12)
    total = np.sum(lam * b ** 2)
    assert np.sum(spec.weights * spec.eigenvalues * spec.coefficients2) == pytest.approx(total - 2 * spec.floor,
                                                                                         rel=2e-4)


def test_infinite_v_is_the_limit_of_finite_v():
    # the data dimensions beyond v add about t I to K, t = (1/d) sum_{j > v} j^-2 ~ 1/(d v)
    d, v = 100, 10 ** 7
    inf = Spectrum.random_features(1.0, 0.7, d)
    big = Spectrum.random_features(1.0, 0.7, d, v)
    assert big.floor == pytest.approx(inf.floor, rel=1e-5)
    shift = inf.random_features_info.edge - big.random_features_info.edge
    assert shift == pytest.approx(1.0 / (d * (v + 0.5)), rel=0.01)


def functionals(spec, lr, times):
    """GD loss curve sum w mu c^2 exp(-2 lr mu t) and the noise-kernel sum w mu^2 exp(-2 lr mu t)."""
    x, w, c2 = spec.eigenvalues, spec.weights, spec.coefficients2
    e = np.exp(-2 * lr * x[None, :] * np.asarray(times)[:, None])
    return np.concatenate([e @ (w * x * c2), e @ (w * x * x)])


@pytest.mark.slow
def test_equivalent_rank_quadrature_matches_one_node_per_eigenvalue(monkeypatch):
    """The compressed rank quadrature against the same equivalent with one node per eigenvalue."""
    spec = Spectrum.random_features(1.0, 0.7, 2000)
    monkeypatch.setattr(rf, "_TOP_CELLS", 10 ** 9)
    rf.deterministic_equivalent.cache_clear()     # the equivalent is cached by its arguments
    full = Spectrum.random_features(1.0, 0.7, 2000)
    rf.deterministic_equivalent.cache_clear()
    # every eigenvalue its own cell (the separated top ones and the lowest with 4 nodes each)
    assert full.size > 2000 and spec.size < 400
    times = np.logspace(0, 8, 17)
    np.testing.assert_allclose(functionals(spec, 0.5, times), functionals(full, 0.5, times), rtol=1e-4)
    assert spec.floor == full.floor


# -- the deterministic equivalent against sampled models -----------------------------------------

def sampled(alpha, beta, d, v, seeds):
    """(eigenvalues, mu c^2, F0) of sampled W, by least squares through the SVD of H^(1/2) W."""
    lam, b = population(alpha, beta, v)
    out = []
    for seed in seeds:
        W = np.random.default_rng(seed).standard_normal((v, d)) / math.sqrt(d)
        U, S, _ = np.linalg.svd(np.sqrt(lam)[:, None] * W, full_matrices=False)
        g = np.sqrt(lam) * b
        p = U.T @ g
        out.append((S ** 2, p ** 2, 0.5 * np.sum((g - U @ p) ** 2)))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.7), (0.33, 0.45), (1.0, 2.0), (0.75, 0.25), (0.4, 1.0), (0.2, 1.0)])
def test_equivalent_matches_the_mean_of_sampled_models(alpha, beta):
    """One (alpha, beta) in every phase (II, Ib, III, Ia, IV, Ic); d = 100, v = 400, 40 sampled W:
    floor, smallest eigenvalue and GD loss curves within
    4 standard errors of the Monte Carlo mean plus the equivalent's O(1/d) bias (2 %)."""
    d, v, n = 100, 400, 40
    spec = Spectrum.random_features(alpha, beta, d, v)
    samples = sampled(alpha, beta, d, v, range(100, 100 + n))

    def close(value, draws, bias=0.02):
        draws = np.asarray(draws)
        se = draws.std(ddof=1) / math.sqrt(n)
        assert abs(value - draws.mean()) <= 4 * se + bias * abs(draws.mean()), (value, draws.mean(), se)

    close(spec.floor, [s[2] for s in samples])
    close(spec.random_features_info.smallest, [s[0].min() for s in samples])
    lr = 0.5 / spec.lambda_max
    start = np.mean([np.sum(nu) for _, nu, _ in samples])
    for t in np.logspace(0, 5, 16):
        draws = [np.sum(nu * np.exp(-2 * lr * mu * t)) for mu, nu, _ in samples]
        if np.mean(draws) < 1e-6 * start:
            break       # an exponential tail (below 2 alpha = 1 the spectrum is flat): nothing left to compare
        close(np.sum(spec.weights * spec.eigenvalues * spec.coefficients2 * np.exp(-2 * lr * spec.eigenvalues * t)),
              draws)


# -- SGD on the features of one W: the residual is label noise -------------------------------------

def test_sgd_on_the_features_of_one_w_matches_the_engine_with_label_noise():
    """Real mini-batch SGD on z = W^T x (x ~ N(0, H), y = <b, x>, v = 40, d = 12), 20000 runs:
    the mean population risk 1/2 E (y - <theta, z>)^2 against the engine's L_t + F0 with label
    noise 2 F0 (docs/math.md §10), within 5 standard errors at every recorded step."""
    import memsgd

    alpha, beta, v, d, B, lr, T, runs = 0.8, 0.3, 40, 12, 2, 0.4, 60, 20000
    lam, b = population(alpha, beta, v)
    rng = np.random.default_rng(11)
    W = rng.standard_normal((v, d)) / math.sqrt(d)
    spec = Spectrum.random_features(alpha, beta, W=W)
    noise = memsgd.Noise.gaussian(B, label_noise=spec.label_noise)
    lr = lr / spec.lambda_max
    curve = memsgd.loss_curve(memsgd.gd(lr), spec, noise, T)

    K, g = W.T @ (lam[:, None] * W), W.T @ (lam * b)
    full = 0.5 * np.sum(lam * b ** 2)
    theta = np.zeros((runs, d))
    risks = np.empty((T + 1, runs))
    for t in range(T + 1):
        # population risk of each run, exactly: 1/2 theta^T K theta - theta^T W^T H b + 1/2 b^T H b
        risks[t] = 0.5 * np.einsum("ri,ij,rj->r", theta, K, theta) - theta @ g + full
        if t == T:
            break
        x = rng.standard_normal((runs, B, v)) * np.sqrt(lam)
        z, y = x @ W, x @ b
        grad = np.einsum("rbi,rb->ri", z, np.einsum("rbi,ri->rb", z, theta) - y) / B
        theta -= lr * grad
    mean, se = risks.mean(axis=1), risks.std(axis=1, ddof=1) / math.sqrt(runs)
    assert np.all(np.abs(curve.total - mean) <= 5 * se + 1e-12), np.max(np.abs(curve.total - mean)[1:] / se[1:])
    assert curve.total[-1] == pytest.approx(spec.floor + curve.loss[-1])
    # the floor matters: without label noise the engine is off by many standard errors
    plain = memsgd.loss_curve(memsgd.gd(lr), spec, memsgd.Noise.gaussian(B), T).loss + spec.floor
    assert np.max(np.abs(plain - mean)[1:] / se[1:]) > 10
