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


# --- issue 12 items 7, 12, 13 --------------------------------------------------------------------
def test_spectrum_is_immutable():
    """Setting nu on a data spectrum used to turn it into a 'power law' for asymptotics."""
    data = Spectrum([1.0, 0.5], [1.0, 1.0])
    for name, value in (("nu", 2.0), ("kappa", 1.0), ("scale", 1.0), ("q", 1.0), ("infinite", True),
                        ("head", 3), ("quadrature_error", 0.0), ("_lam", np.ones(2)), ("extra", 1)):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(data, name, value)
    assert not data.is_power_law and data.nu is None
    with pytest.raises(ValueError, match="read-only"):
        data.eigenvalues[0] = 3.0
    import copy
    import pickle
    law = Spectrum.power_law(2.0, 1.0, head=32)
    for clone in (pickle.loads(pickle.dumps(law)), copy.deepcopy(law)):
        assert clone.nu == 2.0 and clone.infinite and clone.head == 32
        np.testing.assert_array_equal(clone.eigenvalues, law.eigenvalues)


def test_head_is_for_infinite_power_laws_only():
    with pytest.raises(ValueError, match="head applies to the infinite power law"):
        Spectrum.power_law(2.0, 1.0, size=10, head=999)


def test_bool_eigenvalues_refused():
    with pytest.raises(TypeError, match="eigenvalues must be an array of real numbers, got booleans"):
        Spectrum([True, True], [1.0, 1.0])
    with pytest.raises(TypeError, match="coefficients2 must be an array of real numbers, got booleans"):
        Spectrum([1.0], np.array([True]))


def test_from_features_refuses_y_without_columns():
    with pytest.raises(ValueError, match=r"y must have at least one output column, got shape \(3, 0\)"):
        Spectrum.from_features(np.eye(3), np.ones((3, 0)))


@pytest.mark.parametrize("s", [1e-120, 1e120])
def test_from_features_is_scale_covariant_near_the_float_range(s):
    """x and y scaled by s: eigenvalues scale by s^2, c^2 are unchanged (y/s... w* = (sy/sx) w); the
    products X^T X would underflow/overflow without the internal scaling."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((20, 4)), rng.standard_normal(20)
    ref = Spectrum.from_features(x, y)
    big = Spectrum.from_features(s * x, s * y)
    np.testing.assert_allclose(big.eigenvalues, s * s * ref.eigenvalues, rtol=1e-12)
    np.testing.assert_allclose(big.coefficients2, ref.coefficients2, rtol=1e-10)


def test_from_features_says_what_overflows():
    """x ~ 1e200 used to be reported as 'zero variance'; now the message names the overflow."""
    x = np.array([[1e200, 0.0], [0.0, 1e200], [1.0, 1.0]])
    with pytest.raises(ValueError, match="x is too large.*overflows"):
        Spectrum.from_features(x, np.ones(3))
    with pytest.raises(ValueError, match="x is too small.*underflow"):
        Spectrum.from_features(np.array([[1e-200, 0.0], [0.0, 1e-200]]), np.ones(2))
    with pytest.raises(ValueError, match="x must have at least one direction of nonzero variance"):
        Spectrum.from_features(np.zeros((3, 2)), np.ones(3))


@pytest.mark.parametrize("nu", [75.0, 100.0, 200.0])
def test_steep_power_laws_build(nu):
    """nu >= 75 gave ZeroDivisionError (eigenvalues underflowing in the head): the exact head now stops
    at the 1e-280 floor and a frozen node carries the rest. L_0 = q zeta(kappa + 1) / 2 within the
    reported quadrature error."""
    from scipy.special import zeta
    spec = Spectrum.power_law(nu, 1.0)
    assert spec.infinite and spec.eigenvalues.min() >= 1e-281 and np.all(np.isfinite(spec.coefficients2))
    assert spec.initial_loss == pytest.approx(0.5 * zeta(2.0), rel=max(2 * spec.quadrature_error, 1e-12))
    assert spec.quadrature_error < 1e-3
    with pytest.raises(ValueError, match="too small"):
        Spectrum.power_law(nu, 1.0, size=10 ** 4)     # 1e4^-nu <= 1e-300: below the floor
    with pytest.raises(ValueError, match="nu = 1000 is too large"):
        Spectrum.power_law(1000.0, 1.0)


def test_huge_python_int_named():
    with pytest.raises(ValueError, match="eigenvalues must contain only finite values .*too large for float64"):
        Spectrum([10 ** 400], [1.0])


def test_power_law_too_large_fails_fast_with_size():
    """size=10**9 would allocate ~56 GB: refused before allocating, with the size needed."""
    import tracemalloc
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"size=1000000000000\) is too large: it needs 5\.6e\+04 GB"):
        Spectrum.power_law(2.0, 1.0, size=10 ** 12)
    with pytest.raises(ValueError, match=r"head=10000000000000\) is too large"):
        Spectrum.power_law(2.0, 1.0, head=10 ** 13)
    assert tracemalloc.get_traced_memory()[1] < 10e6
    tracemalloc.stop()


def test_from_features_with_a_transposed_x_says_so():
    # issue 18 item 19: a (features, samples) x got "y must have shape (5,) ..." -- a message about y
    rng = np.random.default_rng(3)
    x = rng.normal(size=(100, 5))
    y = x @ np.arange(1.0, 6.0)
    with pytest.raises(ValueError, match=r"x has shape \(5, 100\), y has 100 rows; x looks transposed: pass x\.T"):
        Spectrum.from_features(x.T, y)
    with pytest.raises(ValueError, match=r"one row per sample .* x has shape \(100, 5\), y has 50 rows$"):
        Spectrum.from_features(x, y[:50])
    with pytest.raises(ValueError, match=r"y must have shape \(100,\) or \(100, outputs\)"):
        Spectrum.from_features(x, np.ones((100, 2, 2)))


def test_exact_mean_loss_with_a_transposed_x_says_so():
    from memsgd.experiments.empirical import exact_mean_loss
    x = np.random.default_rng(4).normal(size=(40, 3))
    with pytest.raises(ValueError, match=r"got \(3,\); x looks transposed .* pass x\.T"):
        exact_mean_loss(memsgd.gd(0.1), x.T, np.ones(3), 1, 3)
