"""LossCurve.growth_rate / grows_exponentially: sustained exponential growth below the divergence
threshold, checked against closed forms and the frozen-time noise sum V' of memsgd.stability."""
import math

import numpy as np
import pytest

from memsgd import LossCurve, Noise, Spectrum, gd, loss_curve, schedules, stability
from tests.reference import mean_loss

from ._extras import need

LAM = np.linspace(0.2, 1.0, 10)


def _sgd_renewal_rate(lam, alpha, coupling):
    """rho with sum_n V_n rho^-n = 1 for SGD with tau2 = 0, where V_n = coupling sum lam^2 alpha^2
    (1 - alpha lam)^(2(n-1)) (docs/math.md §4): sum_k coupling lam^2 alpha^2 / (rho - (1 - alpha lam)^2) = 1.
    The loss of the renewal equation L = U + L * V grows (or decays) like rho^t."""
    q = (1 - alpha * lam) ** 2
    f = lambda r: np.sum(coupling * lam ** 2 * alpha ** 2 / (r - q)) - 1.0
    lo, hi = q.max() * (1 + 1e-15) + 1e-300, 100.0
    for _ in range(300):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return hi


@pytest.mark.parametrize("batch", [4, 6])
def test_growth_rate_is_the_renewal_rate(batch):
    spec, noise = Spectrum(LAM, np.ones(10)), Noise(batch, 1.0, 0.0)
    rho = _sgd_renewal_rate(LAM, 1.0, 1.0 / batch)
    curve = loss_curve(gd(1.0), spec, noise, 300)
    unstable = stability(gd(1.0), spec, noise).noise_sum_prime > 1  # independent: theory's closed forms
    assert unstable == (rho > 1)
    assert curve.diverged_at is None
    assert curve.growth_rate == pytest.approx(math.log(rho), rel=1e-9)
    assert curve.grows_exponentially == unstable
    # the losses are the exact ones (the diagnostic changes nothing)
    L_ref, _ = mean_loss(lambda t: gd(1.0).parameters(), LAM, np.ones(10), np.ones(10), 1.0, 0.0, batch, 300)
    np.testing.assert_allclose(curve.loss, L_ref, rtol=1e-10)


def test_am1_above_delta_max_grows_once_frozen_time_noise_sum_exceeds_one():
    # issue 12 item 2 on a fast case: AM1 power law with delta = 0.9 > 1 - 1/nu = 1/3. The frozen-time
    # V'(t) of schedule.at(t) (theory, independent of the engine) crosses 1 between t = 100 and 300.
    spec, noise = Spectrum.power_law(1.5, 0.75, size=300), Noise.gaussian(10)
    schedule = schedules.am1_power_law(1.0, 0.9)
    v_prime = {t: stability(schedule.at(t), spec, noise).noise_sum_prime for t in (0, 30, 100, 300, 1000)}
    assert v_prime[100] < 1 < v_prime[300]
    curve = loss_curve(schedule, spec, noise, 1000)
    assert curve.diverged_at is None and curve.loss[-1] < 1e30 * curve.loss[0]   # not (yet) diverged ...
    assert curve.grows_exponentially and curve.growth_rate > 0.01                 # ... but flagged
    early = LossCurve(curve.loss[:101], None, curve.gradient_point_loss[:101])    # V' < 1 up to t = 100
    assert not early.grows_exponentially and early.growth_rate < 0


def test_converging_and_short_runs_are_not_flagged():
    curve = loss_curve(gd(0.5), Spectrum(LAM, np.ones(10)), Noise.none(), 200)
    assert curve.growth_rate < 0 and not curve.grows_exponentially
    short = loss_curve(gd(1.0), Spectrum(LAM, np.ones(10)), Noise(4, 1.0, 0.0), 10)
    assert math.isnan(short.growth_rate) and not short.grows_exponentially


def test_diverged_run_is_flagged():
    curve = loss_curve(gd(1.0), Spectrum(LAM, np.ones(10)), Noise(2, 1.0, 0.0), 300)
    assert curve.diverged_at is not None
    assert curve.growth_rate == math.inf and curve.grows_exponentially


def test_batched_curves_carry_the_same_diagnostic():
    # loss_curves: every step recorded gives LossCurve's numbers exactly; log-spaced records fit
    # the same rate on the recorded steps of the last quarter (the loss is e^(r t) there up to a
    # decaying correction, so the rates agree to ~1e-3); too few recorded steps there give nan.
    from memsgd import loss_curves
    spec, noise = Spectrum(LAM, np.ones(10)), Noise(4, 1.0, 0.0)
    algos = [gd(1.0), gd(0.5), gd(2.3)]                # grows (V' > 1), converges, diverges
    single = [loss_curve(a, spec, noise, 400) for a in algos]
    dense = loss_curves(algos, spec, noise, 400)
    np.testing.assert_array_equal(dense.growth_rate, [c.growth_rate for c in single])
    np.testing.assert_array_equal(dense.grows_exponentially, [c.grows_exponentially for c in single])
    assert list(dense.grows_exponentially) == [True, False, True] and single[2].diverged_at is not None
    sparse = loss_curves(algos, spec, noise, 400, record=np.unique(np.geomspace(1, 400, 200).astype(int)))
    assert list(sparse.grows_exponentially) == [True, False, True]
    assert sparse.growth_rate[0] == pytest.approx(single[0].growth_rate, rel=1e-3)
    few = loss_curves(algos, spec, noise, 400, record=[1, 10, 100, 350, 400])
    assert np.isnan(few.growth_rate[0]) and not few.grows_exponentially[0] and few.grows_exponentially[2]


def test_sweep_growth_rates_with_log_spaced_records_fit_the_renewal_rate():
    # issue 18 item 17: with record=100 (log-spaced) a sweep keeps fewer than 5 steps in the last
    # quarter, and growth_rates returned nan/False for every point, silently. The fit now reaches
    # back to the last 5 recorded steps (inside the last half of the run).
    xr = need("xarray")
    from memsgd import growth_rates, sweep
    from memsgd._steps import log_spaced_steps
    spec, noise, T = Spectrum(LAM, np.ones(10)), Noise(4, 1.0, 0.0), 400
    kept = log_spaced_steps(T, 50)
    assert np.count_nonzero(kept >= 300) < 5 <= np.count_nonzero(kept >= 200)
    ds = sweep(gd, {"lr": [1.0, 0.5, 2.3]}, spec, noise, T, record=50)   # grows, converges, diverges
    g = growth_rates(ds)
    assert isinstance(g, xr.Dataset)
    assert list(g["grows_exponentially"].values) == [True, False, True]
    rho = _sgd_renewal_rate(LAM, 1.0, 0.25)     # the closed form, independent of the fit
    assert g["growth_rate"].values[0] == pytest.approx(math.log(rho), rel=1e-3)
    assert g["growth_rate"].values[1] < 0 and g["growth_rate"].values[2] == math.inf


def test_sweep_growth_rates_say_why_when_the_records_are_too_sparse():
    need("xarray")
    from memsgd import growth_rates, sweep
    ds = sweep(gd, {"lr": [1.0, 0.5]}, Spectrum(LAM, np.ones(10)), Noise(4, 1.0, 0.0), 400, record=12)
    with pytest.warns(UserWarning, match=r"growth_rates: only \d recorded steps? lie in the last half of the run "
                                         r"\[200, 400\], fewer than the 5 .*record=400"):
        g = growth_rates(ds)
    assert np.all(np.isnan(g["growth_rate"].values)) and not g["grows_exponentially"].values.any()
