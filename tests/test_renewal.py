"""Robustness of the renewal solvers (issue 12 items 3, 11, 13; issue 13 "conditioning in one place").

References: the exact recursion ``loss_curve`` (which does not cancel) and plain Python sums.
"""
import warnings

import numpy as np
import pytest

import memsgd as ms
from memsgd import _core
from memsgd.renewal import RenewalCancellationWarning

from ._extras import requires


def cancelling_problem(steps=400):
    """tau2 > 0 makes the moment map negative (mu = (1 - a lam)^2 - (tau2/B) a^2 lam^2 < 0): the
    propagators alternate in sign and the renewal sums cancel by up to ~90 orders of magnitude."""
    algo, spec, noise = ms.gd(1.3115), ms.Spectrum([1.3404], [0.1]), ms.Noise(2, 1, 1)
    return ms.propagators(algo, spec, noise, steps), ms.loss_curve(algo, spec, noise, steps).loss


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_cancellation_is_bounded_and_reported(method):
    props, exact = cancelling_problem()
    assert np.any(props.U < 0) and np.any(props.V < 0)
    with pytest.warns(RenewalCancellationWarning, match="loss_curve"):
        L, error = ms.loss_from_propagators(props, method=method, return_error=True)
    assert not np.any(np.isnan(L)) and np.all(np.isfinite(error))
    # the estimate bounds the true error everywhere...
    assert np.all(np.abs(L - exact) <= error)
    # ...and every negative (impossible) loss is flagged as meaningless
    negative = L < 0
    assert negative.sum() > 50 and np.all(error[negative] > np.abs(L[negative]))
    # where the estimate says the value is good, it is
    good = error < 1e-6 * np.abs(L)
    assert good.sum() >= 10
    np.testing.assert_allclose(L[good], exact[good], rtol=1e-6)


def test_error_estimate_is_small_without_cancellation():
    algo, spec, noise = ms.heavy_ball(0.1, 0.9), ms.Spectrum.power_law(2.0, 1.0, size=200), ms.Noise.gaussian(10)
    props = ms.propagators(algo, spec, noise, 3000)
    exact = ms.loss_curve(algo, spec, noise, 3000).loss
    for method in ("direct", "fft"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning for nonnegative propagators
            L, error = ms.loss_from_propagators(props, method=method, return_error=True)
        assert np.all(error <= 1e-12 * L)
        assert np.all(np.abs(L - exact) <= error + 1e-13 * exact)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_overflow_is_inf_never_nan(method):
    """Signal near 1e300: the FFT used to sum inputs to inf and return NaN (237 of 301 values)."""
    algo, spec, noise = ms.gd(1.0), ms.Spectrum([1.0, 0.5], [1e300, 1e300]), ms.Noise.gaussian(1)
    props = ms.propagators(algo, spec, noise, 300)
    assert np.all(np.isfinite(props.U)) and props.U.max() > 1e299
    L = ms.loss_from_propagators(props, method=method)
    assert not np.any(np.isnan(L))
    first = int(np.argmax(np.isinf(L)))
    assert first > 0 and np.all(np.isinf(L[first:])) and np.all(np.isfinite(L[:first]))
    direct = ms.loss_from_propagators(props, method="direct")
    np.testing.assert_array_equal(np.isinf(L), np.isinf(direct))
    np.testing.assert_allclose(L[:first], direct[:first], rtol=1e-12)


def test_fft_conditioning_lives_in_the_core():
    """The exponential tilt for growing solutions is applied by the core itself: a direct call of
    the compiled solver on growing propagators matches direct summation (it used to be applied by
    the Python wrapper, and the bare FFT lost ~20 digits here)."""
    algo = ms.MemoryAlgorithm(0.5, [0.0, 0.0, 0.5], [0.0, 0.0, -0.5], np.diag([0.0, 0.0, 0.875]))
    p = ms.propagators(algo, ms.Spectrum([1.0], [1.0]), ms.Noise(1, 1.0, 0.0), 129)
    arrays = (p.U, p.U_prime, p.V, p.V_prime)
    Ld, _, _ = _core.solve_renewal(*arrays, "direct")
    assert Ld[-1] > 1e20 * Ld[0]
    Lf, _, _ = _core.solve_renewal(*arrays, "fft")
    np.testing.assert_allclose(Lf, Ld, rtol=1e-10)


def test_direct_summation_responds_to_ctrl_c(ctrl_c):
    """n = 4e5 direct summation takes over a minute; Ctrl-C must stop it within seconds."""
    seconds, _ = ctrl_c('ms.loss_from_propagators(props, method="direct")', setup="""
        import numpy as np, memsgd as ms
        n = 400001
        t = np.arange(n) + 1.0
        V = 0.3 * t ** -1.5
        V[0] = 0.0
        props = ms.Propagators(t ** -0.5, t ** -0.5, V, V, e_is_zero=True)
        """, timeout=60)
    assert seconds < 10


@requires("tqdm")
def test_renewal_progress_bar(capsys):
    t = np.arange(3000) + 1.0
    V = 0.3 * t ** -1.5
    V[0] = 0.0
    props = ms.Propagators(t ** -0.5, t ** -0.5, V, V, e_is_zero=True)
    quiet = ms.loss_from_propagators(props, method="direct", progress=False)
    shown = ms.loss_from_propagators(props, method="direct", progress=True)
    assert np.array_equal(quiet, shown)
    assert "renewal" in capsys.readouterr().err


def test_propagators_from_lists():
    """Used to fail with AttributeError ('list' object has no attribute 'size')."""
    props = ms.Propagators([1.0, 0.5, 0.25], [1.0, 0.4, 0.2], [0, 0.1, 0.05], [0, 0.2, 0.1])
    assert props.steps == 2 and props.U.dtype == np.float64
    # plain-Python renewal
    U, Up, V, Vp = [1.0, 0.5, 0.25], [1.0, 0.4, 0.2], [0, 0.1, 0.05], [0, 0.2, 0.1]
    l, L = [], []
    for t in range(3):
        l.append(Up[t] + sum(l[s] * Vp[t - s] for s in range(t)))
        L.append(U[t] + sum(l[s] * V[t - s] for s in range(t)))
    for method in ("direct", "fft"):
        np.testing.assert_allclose(ms.loss_from_propagators(props, method=method), L, rtol=1e-15)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(U=[1.0, 0.5], U_prime=[1.0], V=[0, 0.1], V_prime=[0, 0.1]), ValueError, "same length"),
    (dict(U=[1.0, np.nan], U_prime=[1.0, 0.5], V=[0, 0.1], V_prime=[0, 0.1]), ValueError, "NaN"),
    (dict(U=[1.0, 0.5], U_prime=[1.0, 0.5], V=[0.2, 0.1], V_prime=[0, 0.1]), ValueError, "V\\[0\\]"),
    (dict(U=[], U_prime=[], V=[], V_prime=[]), ValueError, "empty"),
    (dict(U=[[1.0]], U_prime=[1.0], V=[0.0], V_prime=[0.0]), ValueError, "1-dimensional"),
    (dict(U=["a"], U_prime=[1.0], V=[0.0], V_prime=[0.0]), TypeError, "U"),
    (dict(U=[1.0, 0.5], U_prime=[1.0, 0.4], V=[0, 0.1], V_prime=[0, 0.1], e_is_zero=True), ValueError, "e_is_zero"),
    (dict(U=[1.0], U_prime=[1.0], V=[0.0], V_prime=[0.0], e_is_zero="no"), TypeError, "e_is_zero"),
])
def test_propagators_validate_their_fields(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ms.Propagators(**kwargs)


def test_loss_from_propagators_arguments():
    props = ms.Propagators([1.0], [1.0], [0.0], [0.0])
    with pytest.raises(ValueError, match="method"):
        ms.loss_from_propagators(props, method=["fft"])
    with pytest.raises(TypeError, match="progress"):
        ms.loss_from_propagators(props, progress="yes")
