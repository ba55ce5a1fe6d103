"""Per-step batch sizes B_t in the engine (docs/math.md §8: step t uses tau1/B_t and tau2/B_t),
against the numpy reference recursion of tests/reference.py."""
import math
import zlib

import numpy as np
import pytest

import memsgd
from memsgd import MemoryAlgorithm, Noise, Spectrum, loss_curve, loss_curves, propagators
from tests.reference import mean_loss

RTOL = 1e-12
STEPS = 60


def _batches(rng, steps, with_inf):
    B = rng.integers(1, 40, steps).astype(float)
    if with_inf:
        B[rng.random(steps) < 0.3] = math.inf   # full-batch steps in between
    return B


ALGOS = {
    "gd": memsgd.gd(0.6),
    "heavy-ball": memsgd.heavy_ball(0.3, 0.6),
    "nesterov": memsgd.nesterov(0.3, 0.6),
    "memory-2": MemoryAlgorithm(0.3, [0.2, -0.1], [0.1, 0.2], [[0.5, 0.1], [-0.1, 0.4]], [0.1, -0.2]),
    "memory-4-general": MemoryAlgorithm(0.3, [0.2, 0.1, 0.05, 0.1], [0.1, 0.2, 0.1, 0.05],
                                        np.diag([0.5, 0.4, 0.3, 0.2]), [0.1, 0.0, -0.1, 0.05]),
}


@pytest.mark.parametrize("name", list(ALGOS))
@pytest.mark.parametrize("tau2", [-1.0, 0.0, 0.5])
@pytest.mark.parametrize("with_inf", [False, True])
def test_per_step_batch_matches_reference(name, tau2, with_inf):
    rng = np.random.default_rng(zlib.crc32(f"{name} {tau2} {with_inf}".encode()))
    algo = ALGOS[name]
    K = 30
    lam = rng.uniform(0.01, 1.0, K) * 2.0 / K
    c2 = rng.uniform(0.0, 1.0, K)
    w = rng.uniform(0.5, 2.0, K)
    B = _batches(rng, STEPS + 5, with_inf)           # longer than the run: the first STEPS are used
    noise = Noise(B, 1.0, tau2)
    curve = loss_curve(algo, Spectrum(lam, c2, w), noise, STEPS)
    at = lambda t: algo.parameters()
    L_ref, a_ref, scale = mean_loss(at, lam, c2, w, 1.0, tau2, B[:STEPS], STEPS, return_scale=True,
                                    dtype=np.longdouble)
    L64, _ = mean_loss(at, lam, c2, w, 1.0, tau2, B[:STEPS], STEPS)
    assert curve.diverged_at is None
    assert np.all(np.abs(curve.loss - L_ref) <= RTOL * scale + 2 * np.abs(L64 - L_ref))
    # the batch really varies the dynamics: a constant batch (the mean) gives another curve
    other = loss_curve(algo, Spectrum(lam, c2, w), Noise(int(np.mean(B[np.isfinite(B)])), 1.0, tau2), STEPS)
    if np.any(np.isfinite(B[:STEPS])):
        assert np.max(np.abs(other.loss - curve.loss) / scale) > 1e-6


def test_per_step_batch_with_a_schedule_and_batched_runs_agree_bitwise():
    rng = np.random.default_rng(5)
    spec = Spectrum.power_law(2.0, 1.0, size=3000)
    schedule = memsgd.schedules.am1_power_law(0.5, 0.3)
    noises = [Noise.gaussian(_batches(rng, 400, True)), Noise.gaussian(np.full(400, 7.0)), Noise.gaussian(7)]
    singles = [loss_curve(schedule, spec, n, 400).loss for n in noises]
    batch = loss_curves([schedule] * 3, spec, noises, 400)
    for i in range(3):
        assert np.array_equal(batch.loss[i], singles[i])
    # a constant per-step array is the constant batch size (up to the rounding of tau1 * (1/B))
    np.testing.assert_allclose(singles[1], singles[2], rtol=1e-13)


def test_per_step_batch_shorter_than_the_run_is_refused():
    noise = Noise.gaussian(np.full(10, 4.0))
    with pytest.raises(ValueError, match="noise has 10 per-step batch sizes, fewer than steps = 11"):
        loss_curve(memsgd.gd(0.1), Spectrum([1.0], [1.0]), noise, 11)
    with pytest.raises(ValueError, match=r"noise\[1\] has 10 per-step batch sizes, fewer than steps = 11"):
        loss_curves([memsgd.gd(0.1)] * 2, Spectrum([1.0], [1.0]), [Noise(4), noise], 11)
    assert loss_curve(memsgd.gd(0.1), Spectrum([1.0], [1.0]), noise, 10).loss.shape == (11,)


def test_propagators_refuse_per_step_noise():
    with pytest.raises(ValueError, match="noise must have a constant batch size"):
        propagators(memsgd.heavy_ball(0.1, 0.5), Spectrum([1.0], [1.0]), Noise.gaussian(np.full(10, 4.0)), 5)


def test_per_step_batch_with_zero_steps():
    curve = loss_curve(memsgd.gd(0.1), Spectrum([1.0], [2.0]), Noise.gaussian(np.array([3.0])), 0)
    assert curve.loss.tolist() == [1.0]
