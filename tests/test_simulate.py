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
