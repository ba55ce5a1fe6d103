"""Spectra: power laws (finite and infinite) and empirical spectra from data."""
import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum, loss_curve


def test_finite_power_law_formulas():
    spec = Spectrum.power_law(1.5, 0.7, size=50, scale=2.0, q=3.0)
    k = np.arange(1, 51)
    np.testing.assert_allclose(spec.eigenvalues, 2.0 * k ** -1.5, rtol=1e-15)
    np.testing.assert_allclose(spec.eigenvalues * spec.coefficients2, 3.0 * k ** -1.7, rtol=1e-14)
    assert np.all(spec.weights == 1.0)
    assert spec.zeta == pytest.approx(0.7 / 1.5)
    assert spec.initial_loss == pytest.approx(0.5 * 3.0 * np.sum(k ** -1.7), rel=1e-14)


def test_infinite_power_law_has_head_and_weighted_tail():
    spec = Spectrum.power_law(2.0, 1.0, head=100)
    assert spec.infinite and spec.head == 100
    np.testing.assert_array_equal(spec.weights[:100], 1.0)
    assert np.all(spec.weights[100:] > 0)
    assert np.all(np.diff(spec.eigenvalues) < 0)  # nodes ordered by decreasing eigenvalue


def test_infeasible_target_infinite_c2_sum_is_fine():
    # kappa < nu - 1... here zeta < 1: sum c_k^2 diverges but L_0 and the dynamics are finite.
    spec = Spectrum.power_law(2.0, 0.5)
    assert np.isfinite(spec.initial_loss)
    curve = loss_curve(memsgd.gd(1.0), spec, Noise.gaussian(10), 1000)
    assert curve.diverged_at is None and np.all(np.isfinite(curve.loss))
    assert curve.loss[-1] < curve.loss[0]


def test_from_features_is_least_squares_excess_risk():
    rng = np.random.default_rng(0)
    n, d = 200, 8
    x = rng.standard_normal((n, d)) * np.linspace(1, 0.1, d)
    w_true = rng.standard_normal(d)
    y = x @ w_true + 0.1 * rng.standard_normal(n)
    spec = Spectrum.from_features(x, y)
    H = x.T @ x / n
    w_star = np.linalg.lstsq(x, y, rcond=None)[0]
    # L(0) = 1/2 w*^T H w*
    assert spec.initial_loss == pytest.approx(0.5 * w_star @ H @ w_star, rel=1e-12)
    np.testing.assert_allclose(np.sort(spec.eigenvalues), np.linalg.eigvalsh(H), rtol=1e-12)
    # one GD step from 0 with lr a: w1 = a X^T y / n = a H w*; loss of w1 from the spectrum
    a = 0.3
    w1 = a * H @ w_star
    direct = 0.5 * (w1 - w_star) @ H @ (w1 - w_star)
    assert loss_curve(memsgd.gd(a), spec, Noise.none(), 1).loss[1] == pytest.approx(direct, rel=1e-12)


def test_from_features_multi_output_sums_squares():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 4))
    y = rng.standard_normal((50, 3))
    spec = Spectrum.from_features(x, y)
    parts = [Spectrum.from_features(x, y[:, j]).initial_loss for j in range(3)]
    assert spec.initial_loss == pytest.approx(sum(parts), rel=1e-12)
