"""Exact engine against Monte Carlo runs of real mini-batch SGD (Gaussian data, SE exact)."""
import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum, loss_curve, simulate_sgd

SIGMAS = 4.0  # agreement within 4 standard errors of the Monte Carlo mean at every step


@pytest.mark.parametrize("algo", [
    memsgd.gd(0.6),
    memsgd.heavy_ball(0.2, 0.7),
    memsgd.nesterov(0.2, 0.7),
    memsgd.schedules.am1_power_law(0.5, 0.4),
], ids=["sgd", "heavy_ball", "nesterov", "am1_schedule"])
def test_engine_within_sampling_error_of_simulation(algo):
    spec = Spectrum.power_law(1.5, 1.0, size=12)
    steps, batch = 40, 2
    mean, err = simulate_sgd(algo, spec, batch, steps, runs=3000, seed=11, return_stderr=True)
    exact = loss_curve(algo, spec, Noise.gaussian(batch), steps).loss
    assert exact[0] == pytest.approx(mean[0], rel=1e-12)  # deterministic start
    z = np.abs(mean[1:] - exact[1:]) / err[1:]
    assert z.max() < SIGMAS, f"max z-score {z.max():.2f} at step {1 + z.argmax()}"


def test_simulation_noise_matters():
    # The same check must be able to fail: the noiseless curve is far outside the error bars.
    spec = Spectrum.power_law(1.5, 1.0, size=12)
    algo = memsgd.heavy_ball(0.2, 0.7)
    mean, err = simulate_sgd(algo, spec, 1, 30, runs=3000, seed=5, return_stderr=True)
    noiseless = loss_curve(algo, spec, Noise.none(), 30).loss
    assert (np.abs(mean[1:] - noiseless[1:]) / err[1:]).max() > 10


def test_simulation_is_seeded():
    spec = Spectrum.power_law(2.0, 1.0, size=5)
    a = simulate_sgd(memsgd.gd(0.5), spec, 3, 10, runs=20, seed=4)
    b = simulate_sgd(memsgd.gd(0.5), spec, 3, 10, runs=20, seed=4)
    c = simulate_sgd(memsgd.gd(0.5), spec, 3, 10, runs=20, seed=5)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# --- non-Gaussian data (issue 12 item 10) ----------------------------------------------------------
# For independent standardized coordinates with fourth moment m4, Sigma(C)_kk = lambda_k Tr(HC) +
# (m4 - 2) lambda_k^2 C_kk, and the exact recursion only sees that diagonal: Noise(B, 1, 2 - m4) is
# exact. Checked against Monte Carlo at every step to SIGMAS standard errors (fixed seeds). The
# setting keeps the loss distribution's tails mild enough for a 4000-run mean (Laplace data with
# large steps has heavy-tailed losses whose sample mean and standard error are unreliable).
NON_GAUSSIAN = dict(algo=memsgd.heavy_ball(0.1, 0.7), spec=Spectrum.power_law(1.5, 1.0, size=12), batch=4, steps=25)
P_TWO_POINT = 0.3


def _two_point(rng, shape):
    """Standardized asymmetric two-point law: a w.p. p, -b w.p. 1 - p (mean 0, variance 1)."""
    p = P_TWO_POINT
    return np.where(rng.random(shape) < p, np.sqrt((1 - p) / p), -np.sqrt(p / (1 - p)))


M4_TWO_POINT = (P_TWO_POINT * ((1 - P_TWO_POINT) / P_TWO_POINT) ** 2
                + (1 - P_TWO_POINT) * (P_TWO_POINT / (1 - P_TWO_POINT)) ** 2)


@pytest.mark.parametrize("data, m4", [("gaussian", 3.0), ("rademacher", 1.0), ("uniform", 1.8), ("laplace", 6.0),
                                      (_two_point, M4_TWO_POINT)],
                         ids=["gaussian", "rademacher", "uniform", "laplace", "two-point-sampler"])
def test_non_gaussian_data_matches_engine_with_tau2_two_minus_m4(data, m4):
    p = NON_GAUSSIAN
    if isinstance(data, str):
        assert memsgd.simulation.FOURTH_MOMENTS[data] == m4
    noise = memsgd.simulation.noise_for_data(data if isinstance(data, str) else m4, p["batch"])
    assert (noise.tau1, noise.tau2) == (1.0, 2.0 - m4)
    mean, err = simulate_sgd(p["algo"], p["spec"], p["batch"], p["steps"], runs=4000, seed=3,
                             return_stderr=True, data=data)
    exact = loss_curve(p["algo"], p["spec"], noise, p["steps"]).loss
    z = np.abs(mean[1:] - exact[1:]) / err[1:]
    assert z.max() < SIGMAS, f"max z-score {z.max():.2f} at step {1 + z.argmax()}"
    if m4 != 3.0:  # the Gaussian coefficients (tau2 = -1) are measurably wrong for this data
        gauss = loss_curve(p["algo"], p["spec"], Noise.gaussian(p["batch"]), p["steps"]).loss
        assert (np.abs(mean[1:] - gauss[1:]) / err[1:]).max() > 3 * SIGMAS


def test_fourth_moments_of_the_samplers():
    """The tabulated m4 are those of the samplers: sample moments of 10^6 draws within 5 standard
    errors (<=: Rademacher's z^2 and z^4 are exactly 1)."""
    rng = np.random.default_rng(0)
    n = 1_000_000
    for name, m4 in memsgd.simulation.FOURTH_MOMENTS.items():
        z = memsgd.simulation._SAMPLERS[name](rng, (n,))
        for power, want in ((1, 0.0), (2, 1.0), (4, m4)):
            sample = z ** power
            assert abs(sample.mean() - want) <= 5 * sample.std() / np.sqrt(n), (name, power)


def test_per_step_batch_size_matches_reference_recursion():
    """Step t draws B_t samples (issue 10 item 2): Monte Carlo against the numpy reference recursion
    with per-step 1/B_t (tests/reference.py, independent of the engine), and not against a constant B."""
    from tests.reference import mean_loss
    spec = Spectrum.power_law(1.5, 1.0, size=10)
    algo = memsgd.heavy_ball(0.15, 0.6)
    steps = 30
    batches = np.tile([1, 8, 3], steps // 3 + 1)[:steps]
    mean, err = simulate_sgd(algo, spec, batches, steps, runs=4000, seed=2, return_stderr=True)
    params = lambda t: algo.parameters()
    ref, _ = mean_loss(params, spec.eigenvalues, spec.coefficients2, spec.weights, 1.0, -1.0, batches, steps)
    z = np.abs(mean[1:] - ref[1:]) / err[1:]
    assert z.max() < SIGMAS, f"max z-score {z.max():.2f} at step {1 + z.argmax()}"
    constant, _ = mean_loss(params, spec.eigenvalues, spec.coefficients2, spec.weights, 1.0, -1.0, 3, steps)
    assert (np.abs(mean[1:] - constant[1:]) / err[1:]).max() > 3 * SIGMAS
    # the same batch sizes given through a Noise
    again = simulate_sgd(algo, spec, Noise.gaussian(batches.astype(float)), steps, runs=50, seed=2)
    assert np.array_equal(again, simulate_sgd(algo, spec, batches, steps, runs=50, seed=2))


@pytest.mark.parametrize("batch, exc, fragment", [
    (np.array([2, 2.5, 2]), ValueError, "per-step integers"),
    (np.array([2, 0, 2]), ValueError, "per-step integers"),
    (np.array([2, np.inf, 2]), ValueError, "per-step integers"),
    (np.array([2, 2]), ValueError, "fewer than steps"),
    (np.array([[2, 2, 2]]), TypeError, "1-D array"),
])
def test_per_step_batch_validation(batch, exc, fragment):
    with pytest.raises(exc, match=fragment):
        simulate_sgd(memsgd.gd(0.1), Spectrum([1.0], [1.0]), batch, 3, 2)


def test_data_validation():
    spec = Spectrum([1.0], [1.0])
    with pytest.raises(ValueError, match="data must be one of"):
        simulate_sgd(memsgd.gd(0.1), spec, 1, 3, 2, data="cauchy")
    with pytest.raises(TypeError, match="data must be"):
        simulate_sgd(memsgd.gd(0.1), spec, 1, 3, 2, data=3)
    with pytest.raises(ValueError, match="shape"):
        simulate_sgd(memsgd.gd(0.1), spec, 1, 3, 2, data=lambda rng, shape: np.zeros(3))
    with pytest.raises(ValueError, match="fourth moment"):
        memsgd.simulation.noise_for_data(0.5, 4)


def test_huge_batch_fails_fast():
    with pytest.raises(ValueError, match="simulate_sgd with batch size 1000000000000 .* too large"):
        simulate_sgd(memsgd.gd(0.1), Spectrum([1.0, 0.5], [1.0, 1.0]), 10 ** 12, 3, 2)
