"""loss_at: exact losses at long horizons by contour inversion of the loss generating function.

Independent checks: the C++ recursion ``loss_curve`` at every step, the plain-numpy recursion of
tests/reference.py, the FFT renewal of the propagators, and the asymptotic laws of
docs/math.md §6 at t = 1e9..1e11 (ratio -> 1 at the predicted rate).
"""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import memsgd as ms
from memsgd.long_horizon import DIVERGENCE_FACTOR, LossAt, loss_at, supports_loss_at
from tests.reference import mean_loss, recursion_rounding
from tests.test_multistep import random_algorithm


def empirical_spectrum():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((300, 40)) * np.geomspace(1.0, 0.03, 40)
    y = x @ rng.standard_normal(40) + 0.05 * rng.standard_normal(300)
    return ms.Spectrum.from_features(x, y)


def random_finite_spectrum():
    rng = np.random.default_rng(12)
    return ms.Spectrum(np.sort(rng.uniform(1e-3, 0.3, 120))[::-1], rng.uniform(0, 1, 120))


M2 = ms.MemoryAlgorithm(0.25, [0.2, -0.15], [0.3, 0.1], [[0.5, 0.3], [-0.2, 0.4]], [0.1, 0.25])
# Held out: none of these problems was used to design or tune the contour.
PROBLEMS = {
    "sgd": (ms.gd(0.6), lambda: ms.Spectrum.power_law(1.3, 0.9, size=1500), ms.Noise.gaussian(3), 20000),
    "heavy-ball-0.99": (ms.heavy_ball(0.02, 0.99), lambda: ms.Spectrum.power_law(2.0, 0.5, size=400),
                        ms.Noise.gaussian(20), 100000),
    "nesterov-tau2": (ms.nesterov(0.2, 0.8), lambda: ms.Spectrum.power_law(1.8, 1.2, size=300),
                      ms.Noise(3, 1.2, 0.3), 20000),
    "memory2-e": (M2, random_finite_spectrum, ms.Noise(4, 0.8, -0.4), 20000),
    "hb-translation-invariant": (ms.heavy_ball(0.2, 0.8), lambda: ms.Spectrum.power_law(1.6, 0.8, size=500),
                                 ms.Noise.translation_invariant(5), 20000),
    "am1-empirical": (ms.am1(0.05, 0.8, 0.3), empirical_spectrum, ms.Noise.gaussian(6), 20000),
    # general-M kernel (M = 4, P = 15 moment coordinates) with e != 0
    "memory4-e": (random_algorithm(np.random.default_rng(2), 4, with_e=True),
                  lambda: ms.Spectrum.power_law(1.5, 1.0, size=60), ms.Noise(6, 1.0, -0.5), 20000),
    # a defective moment map: heavy ball exactly at critical damping, lambda = (1 - sqrt(beta))^2 / lr
    "critical-damping": (ms.heavy_ball(0.5, 0.36), lambda: ms.Spectrum([1.0, 0.32, 0.1, 0.01], [1.0] * 4),
                         ms.Noise.gaussian(8), 20000),
    "infinite-quadrature": (ms.heavy_ball(0.15, 0.85), lambda: ms.Spectrum.power_law(1.7, 0.6, head=256),
                            ms.Noise.gaussian(4), 20000),
}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_matches_recursion_at_every_step(name):
    algo, make_spec, noise, T = PROBLEMS[name]
    spec = make_spec()
    curve = ms.loss_curve(algo, spec, noise, T)
    assert curve.diverged_at is None
    got = loss_at(algo, spec, noise, np.arange(T + 1))
    assert got.diverged_at is None and got.exact_until < T // 2
    late = got.steps > got.exact_until
    ref = curve.loss[late]
    diff = np.abs(got.loss[late] - ref)
    # within the stated accuracy, and within the error estimate (plus the recursion's own rounding)
    assert np.all(diff <= 1e-10 * ref), f"max relative difference {np.max(diff / ref):.2e}"
    assert np.all(diff <= 4 * (got.error[late] + recursion_rounding(ref, got.steps[late])))
    assert np.all(got.error[late] <= 1e-9 * ref)
    np.testing.assert_array_equal(got.loss[~late], curve.loss[~late])  # the recursion itself


def test_matches_numpy_reference_memory2_e_tau2():
    """Independent of the C++ recursion: the plain-numpy transcription of docs/math.md §3."""
    spec = ms.Spectrum.power_law(1.7, 0.6, size=25)
    noise = ms.Noise(2, 1.3, -0.7)
    T = 3000
    ref = mean_loss(lambda t: (M2.alpha, M2.b, M2.c, M2.D, M2.e), spec.eigenvalues, spec.coefficients2,
                    spec.weights, noise.tau1, noise.tau2, noise.batch_size, T)[0]
    steps = np.arange(1, T + 1, 23)
    got = loss_at(M2, spec, noise, steps)
    late = steps > got.exact_until
    assert late.sum() > 50
    np.testing.assert_allclose(got.loss[late], ref[steps[late]], rtol=1e-10, atol=0)


def test_matches_fft_renewal_of_propagators():
    """Independent route through the loss expansion (docs/math.md §4); the T = 1e6 version of this
    check is in bench/bench_long.py."""
    algo, spec, noise = ms.heavy_ball(0.1, 0.85), ms.Spectrum.power_law(1.5, 1.0, size=300), ms.Noise.gaussian(8)
    T = 20000
    L = ms.loss_from_propagators(ms.propagators(algo, spec, noise, T), method="fft")
    steps = np.arange(2000, T + 1, 7)
    got = loss_at(algo, spec, noise, steps, exact_until=0)
    assert got.exact_until < 2000
    np.testing.assert_allclose(got.loss, L[steps], rtol=1e-10, atol=0)


@pytest.mark.parametrize("algo, nu, kappa, batch, phase", [
    (ms.heavy_ball(0.1, 0.9), 1.5, 0.75, 10, "signal"),
    (ms.heavy_ball(0.3, 0.7), 1.5, 2.5, 2, "noise"),
])
def test_tends_to_asymptotics_at_the_predicted_rate(algo, nu, kappa, batch, phase):
    """Exact / predicted -> 1 at t = 1e9..1e11, like t^-(1 - 1/nu) in the signal phase (the tail
    sum_{n > t} V_n ~ t^-(1 - 1/nu) of the noise kernel, docs/math.md §6) and like
    t^-min(zeta - zeta*, 1 - 1/nu) in the noise phase (zeta* = 2 - 1/nu the phase boundary,
    docs/theory.md); here zeta = kappa / nu = 5/3, zeta - zeta* = 1 - 1/nu = 1/3."""
    spec, noise = ms.Spectrum.power_law(nu, kappa, head=1024), ms.Noise.gaussian(batch)
    pred = ms.asymptotics(algo, spec, noise)
    assert pred.phase == phase
    zeta, boundary = kappa / nu, 2 - 1 / nu
    rate = (1 - 1 / nu) if phase == "signal" else min(zeta - boundary, 1 - 1 / nu)
    t = np.array([10 ** 9, 10 ** 10, 10 ** 11])
    got = loss_at(algo, spec, noise, t)
    gap = np.abs(got.loss / pred.predict(t) - 1)
    assert gap[0] < (1e-4 if phase == "signal" else 5e-3)
    assert np.all(np.diff(gap) < 0)
    slope = np.polyfit(np.log(t), np.log(gap), 1)[0]
    assert abs(slope + rate) < 0.02, slope
    assert np.all(got.error < 1e-8 * got.loss)


def test_infinite_spectrum_up_to_1e12():
    spec = ms.Spectrum.power_law(1.5, 0.75, head=512)
    t = np.array([0, 10, 10 ** 4, 10 ** 8, 10 ** 12])
    got = loss_at(ms.am1(0.05, 0.9, 0.5), spec, ms.Noise.gaussian(10), t)
    assert got.loss[0] == pytest.approx(spec.initial_loss, rel=1e-14)
    assert np.all(np.isfinite(got.loss)) and np.all(np.diff(got.loss) < 0) and got.loss[-1] > 0
    assert np.all(got.error <= 1e-10 * got.loss)
    assert got.diverged_at is None and got.rate <= 0


def test_diverging_noise_matches_recursion():
    """V' > 1: the loss crosses 1e30 L_0 beyond the recursion's part; the crossing is located on
    the contour and equals loss_curve's divergence step."""
    algo, spec, noise = ms.heavy_ball(0.02, 0.98), ms.Spectrum.power_law(1.6, 1.0, size=200), \
        ms.Noise.gaussian(1)
    assert ms.stability(algo, spec, noise).noise_sum_prime > 1
    curve = ms.loss_curve(algo, spec, noise, 60000)
    assert curve.diverged_at is not None
    steps = np.array([10, 1000, 5000, curve.diverged_at - 1, curve.diverged_at, 50000, 10 ** 12])
    got = loss_at(algo, spec, noise, steps)
    assert got.diverged_at == curve.diverged_at and got.exact_until < curve.diverged_at - 1
    assert got.rate > 0
    before = steps < curve.diverged_at
    np.testing.assert_allclose(got.loss[before], curve.loss[steps[before]], rtol=1e-10)
    assert got.loss[~before].tolist() == [np.inf] * 3
    assert got.loss[before][-1] <= DIVERGENCE_FACTOR * spec.initial_loss


def test_unstable_step_size_diverges_in_the_recursion_part():
    spec = ms.Spectrum([1.0, 0.1], [1.0, 1.0])
    curve = ms.loss_curve(ms.gd(2.5), spec, ms.Noise.none(), 500)
    got = loss_at(ms.gd(2.5), spec, ms.Noise.none(), [5, 10 ** 6])
    assert got.diverged_at == curve.diverged_at is not None
    assert got.loss[0] == curve.loss[5] and got.loss[1] == np.inf


def test_oscillating_modes_with_positive_tau2():
    """Negative eigenvalues of the moment map (tau2 > 0): off-axis poles at Im s = pi; the
    contour starts once they have decayed and agrees with the recursion."""
    algo, spec, noise = ms.gd(1.3115), ms.Spectrum([1.3404, 0.5, 0.01], [0.1, 0.3, 1.0]), ms.Noise(2, 1, 1)
    T = 30000
    curve = ms.loss_curve(algo, spec, noise, T)
    got = loss_at(algo, spec, noise, np.arange(0, T + 1, 13))
    late = got.steps > got.exact_until
    assert late.sum() > 100
    np.testing.assert_allclose(got.loss[late], curve.loss[got.steps[late]], rtol=1e-10, atol=0)


def test_undamped_oscillation_needs_the_recursion():
    """A memory that rotates (|eigenvalue| = 1 off the real axis) never lets the contour start:
    small horizons come from the recursion, 1e9 is refused with the reason."""
    D = [[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]]
    algo = ms.MemoryAlgorithm(0.3, [0.0, 0.0], [0.1, 0.2], D)
    spec, noise = ms.Spectrum.power_law(2.0, 1.0, size=20), ms.Noise.gaussian(4)
    got = loss_at(algo, spec, noise, [10, 1000])
    np.testing.assert_array_equal(got.loss, ms.loss_curve(algo, spec, noise, 1000).loss[[10, 1000]])
    with pytest.raises(ValueError, match="do not decay"):
        loss_at(algo, spec, noise, [10 ** 9])


def test_noiseless_and_zero_signal():
    spec = ms.Spectrum.power_law(2.0, 1.0, size=50)
    got = loss_at(ms.heavy_ball(0.3, 0.6), spec, ms.Noise.none(), [0, 100, 10 ** 5])
    curve = ms.loss_curve(ms.heavy_ball(0.3, 0.6), spec, ms.Noise.none(), 10 ** 5)
    np.testing.assert_allclose(got.loss, curve.loss[[0, 100, 10 ** 5]], rtol=1e-10)
    zero = loss_at(ms.gd(0.5), ms.Spectrum([1.0, 0.5], [0.0, 0.0]), ms.Noise.gaussian(2), [0, 10 ** 9])
    assert zero.loss.tolist() == [0.0, 0.0] and zero.error.tolist() == [0.0, 0.0]


@pytest.mark.slow
def test_same_bits_for_any_thread_count():
    code = ("import numpy as np, memsgd as ms\n"
            "from memsgd.long_horizon import loss_at\n"
            "r = loss_at(ms.heavy_ball(0.1, 0.9), ms.Spectrum.power_law(1.5, 0.75, head=300), "
            "ms.Noise.gaussian(10), [10**3, 10**6, 10**9])\n"
            "print(ms._core.max_threads(), r.loss.tobytes().hex(), r.error.tobytes().hex())\n")
    outs = []
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert run.returncode == 0, run.stderr
        used, bits = run.stdout.split(" ", 1)
        if threads == "2" and used == "1":
            pytest.skip("core built without OpenMP: nothing to compare")
        assert used == threads
        outs.append(bits)
    assert outs[0] == outs[1]


def test_threads_argument_keeps_the_bits():
    args = (ms.heavy_ball(0.1, 0.9), ms.Spectrum.power_law(1.5, 0.75, head=300), ms.Noise.gaussian(10),
            [10 ** 2, 10 ** 4, 10 ** 9])
    one, two = loss_at(*args, threads=1), loss_at(*args, threads=2)
    assert one.exact_until < 10 ** 4
    assert np.array_equal(one.loss, two.loss) and np.array_equal(one.error, two.error)
    with pytest.raises(ValueError, match="threads"):
        loss_at(*args, threads=0)
    with pytest.raises(TypeError, match="threads"):
        loss_at(*args, threads=1.5)


def test_supports_loss_at():
    assert supports_loss_at(ms.gd(0.1), ms.Noise.gaussian(4))
    assert not supports_loss_at(ms.schedules.constant(ms.gd(0.1)), ms.Noise.gaussian(4))
    assert not supports_loss_at(ms.gd(0.1), ms.Noise.gaussian(np.full(10, 4.0)))
    assert not supports_loss_at("gd", ms.Noise.gaussian(4))


def test_result_fields():
    r = loss_at(ms.gd(0.5), ms.Spectrum([1.0, 0.1], [1.0, 1.0]), ms.Noise.gaussian(4), [3, 10 ** 4])
    assert isinstance(r, LossAt) and r.steps.dtype == np.int64 and r.steps.tolist() == [3, 10 ** 4]
    assert r.loss.shape == r.error.shape == (2,) and not r.diverged
    assert np.all(r.relative_error < 1e-9)


@pytest.mark.parametrize("steps, exc, match", [
    ([5, 3], ValueError, "increasing"),
    ([3, 3], ValueError, "increasing"),
    ([-1, 3], ValueError, ">= 0"),
    ([1.5], ValueError, "integers"),
    ([np.nan], ValueError, "finite"),
    ([10 ** 13], ValueError, "<= 1e\\+12"),
    ([], ValueError, "at least one"),
    ([[1, 2]], ValueError, "1-d"),
    ([True, False], TypeError, "integers"),
    ("10", TypeError, "steps"),
])
def test_bad_steps(steps, exc, match):
    with pytest.raises(exc, match=match):
        loss_at(ms.gd(0.5), ms.Spectrum([1.0], [1.0]), ms.Noise.gaussian(4), steps)


def test_integral_floats_are_steps():
    r = loss_at(ms.gd(0.5), ms.Spectrum([1.0, 0.1], [1.0, 1.0]), ms.Noise.gaussian(4), [1e3, 1e9])
    assert r.steps.tolist() == [1000, 10 ** 9]


def test_bad_problem():
    spec, noise = ms.Spectrum([1.0], [1.0]), ms.Noise.gaussian(4)
    with pytest.raises(ValueError, match="loss_curve"):
        loss_at(ms.schedules.constant(ms.gd(0.1)), spec, noise, [10])
    with pytest.raises(ValueError, match="per-step|one batch size"):
        loss_at(ms.gd(0.1), spec, ms.Noise.gaussian(np.full(20, 4.0)), [10])
    with pytest.raises(TypeError, match="algorithm"):
        loss_at("gd", spec, noise, [10])
    with pytest.raises(TypeError, match="spectrum"):
        loss_at(ms.gd(0.1), [1.0], noise, [10])
    with pytest.raises(TypeError, match="noise"):
        loss_at(ms.gd(0.1), spec, 4, [10])
    with pytest.raises(TypeError, match="exact_until"):
        loss_at(ms.gd(0.1), spec, noise, [10], exact_until=1.5)
    with pytest.raises(TypeError, match="progress"):
        loss_at(ms.gd(0.1), spec, noise, [10], progress="yes")


def test_hand_over_moves_when_the_contour_starts_too_early(monkeypatch):
    """Force the contour to start while the oscillating modes of heavy ball (|mu| = beta) are
    still alive: its estimate is not trusted there, so the recursion runs further (the hand-over
    moves) and the values are the recursion's, bit for bit."""
    from memsgd import long_horizon
    monkeypatch.setattr(long_horizon, "_SAFETY", 0.02)
    algo, spec, noise = ms.heavy_ball(0.02, 0.99), ms.Spectrum.power_law(2.0, 0.5, size=400), ms.Noise.gaussian(20)
    T = 5000
    curve = ms.loss_curve(algo, spec, noise, T)
    problem = long_horizon._Problem(algo, spec, noise, False)
    early = np.arange(2 * problem.t0 + 1, T + 1, 97)
    L, E, _ = problem.contour(early)
    assert np.max(np.abs(L - curve.loss[early]) / curve.loss[early]) > 1e-6  # the contour really is off here
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = loss_at(algo, spec, noise, np.arange(1, T + 1, 3))
    assert got.exact_until > 2 * problem.t0
    late = got.steps > got.exact_until
    np.testing.assert_array_equal(got.loss[~late], curve.loss[got.steps[~late]])
    dev = np.abs(got.loss[late] - curve.loss[got.steps[late]])
    assert np.all(dev <= 1e-10 * curve.loss[got.steps[late]])


def test_contour_started_too_early_beyond_the_recursion_warns(monkeypatch):
    """The same when the recursion may not run past step 600: the later values come from the
    contour, whose error estimate covers the true deviation, and loss_at warns naming the step."""
    from memsgd import long_horizon
    monkeypatch.setattr(long_horizon, "_SAFETY", 0.02)
    monkeypatch.setattr(long_horizon, "_ENGINE_MAX", 600)
    algo, spec, noise = ms.heavy_ball(0.02, 0.99), ms.Spectrum.power_law(2.0, 0.5, size=400), ms.Noise.gaussian(20)
    T = 5000
    curve = ms.loss_curve(algo, spec, noise, T)
    with pytest.warns(RuntimeWarning, match=r"estimated relative error above 1e-06 at .* \(worst .* at step 601"):
        got = loss_at(algo, spec, noise, np.arange(1, T + 1, 3))
    assert got.exact_until == 600
    late = got.steps > got.exact_until
    dev = np.abs(got.loss[late] - curve.loss[got.steps[late]])
    assert np.max(dev / curve.loss[got.steps[late]]) > 1e-6   # the contour really is off here
    assert np.all(dev <= got.error[late])


def test_core_generating_sums_checks_its_own_input():
    # The core checks what it indexes with (a thin binding passes the arrays through).
    lam, w = np.array([1.0, 0.5, 0.25]), np.ones(3)
    # (algorithm, noise): one row, one entry
    args = ((np.array([1.0]), np.array([[0.5]]), np.array([[0.1]]), np.array([[[0.5]]]), np.array([[0.0]])),
            (np.zeros(1), np.array([-0.1])))
    s, split = np.array([0.1 + 0.2j]), np.zeros(1, dtype=np.int64)
    good = ms._core.generating_sums(lam, *args, w, w, np.array([2, 0, 1]), s, split, control=None, threads=0)
    assert good.shape == (1, 12) and np.all(np.isfinite(good)) and np.all(good[:, 8:] == 0)
    poles, slow, slow_error = ms._core.moment_poles(lam, *args)
    assert poles.shape == (3, 3) and slow.shape == slow_error.shape == (3,) and np.all(slow_error >= 0)
    slow_error = np.full(3, 1e-10)
    with_poles = ms._core.generating_sums(lam, *args, w, w, np.array([2, 0, 1]), s, split, slow_delta=slow,
                                          slow_error=slow_error)
    assert np.array_equal(with_poles[:, :8], good[:, :8])
    assert np.all(with_poles[:, 8:10] == 0) and np.all(with_poles[:, 10:].real > 0)  # all in the fast set
    with pytest.raises(ValueError, match="slow_delta must have shape"):
        ms._core.generating_sums(lam, *args, w, w, np.array([2, 0, 1]), s, split, slow_delta=slow[:2],
                                 slow_error=slow_error)
    for order in ([0, 0, 1], [0, 1, 3], [-1, 0, 1]):
        with pytest.raises(ValueError, match="permutation"):
            ms._core.generating_sums(lam, *args, w, w, np.array(order), s, split, control=None, threads=0)
    with pytest.raises(ValueError, match="s must be finite"):
        ms._core.generating_sums(lam, *args, w, w, np.array([0, 1, 2]), np.array([complex(np.nan, 0)]), split,
                                 control=None, threads=0)


# --- issue 18.13: a refusal names its cause ---------------------------------------------------

def test_exact_until_beyond_the_recursion_limit_names_the_argument():
    # was: "modes off the real axis that do not decay (... undamped rotating memory)" for a damped heavy ball
    spec = ms.Spectrum.power_law(2.0, 1.0, size=100)
    for until in (10 ** 12, 3 * 10 ** 7):
        with pytest.raises(ValueError, match=r"exact_until must be <= 2e\+07") as info:
            loss_at(ms.heavy_ball(0.1, 0.9), spec, ms.Noise(10), [10 ** 12], exact_until=until)
        assert "undamped" not in str(info.value) and "oscillating" not in str(info.value)


def test_slowly_damped_modes_are_not_called_undamped():
    # heavy ball with beta = 1 - 1e-5 on lambda in {1, 0.5}: a complex pair of modulus sqrt(beta) < 1,
    # damped, but too slowly for the contour to start within the recursion's reach
    algo, spec = ms.heavy_ball(0.01, 0.99999), ms.Spectrum([1.0, 0.5], [1.0, 1.0])
    assert np.all(np.abs(np.linalg.eigvals(algo.eigen_matrix(np.array([1.0, 0.5])))) < 1)
    for steps in ([3 * 10 ** 7], [10 ** 9]):
        with pytest.raises(ValueError, match="decay only like") as info:
            loss_at(algo, spec, ms.Noise.none(), steps)
        assert "do not decay" not in str(info.value)
