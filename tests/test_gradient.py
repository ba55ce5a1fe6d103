"""loss_gradient: the adjoint against complex-step and finite differences through independent code.

Complex step: ``Im J(theta + i h v) / h`` through the plain-numpy recursion
``reference.mean_loss_per_step`` (no subtraction, so it is exact to rounding: tolerance 1e-11 of
the largest gradient entry). Finite differences: central differences of ``memsgd.loss_curve``
(the engine, independent of the adjoint's forward pass) along random directions, 1e-6 relative.
"""
import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import memsgd
from memsgd import MemoryAlgorithm, Noise, Schedule, Spectrum, _core, loss_curve
from memsgd.gradient import LossGradient, loss_gradient

from . import reference
from ._extras import requires

FIELDS = ("alpha", "b", "c", "D", "e")
CS_STEP = 1e-30      # complex step: no cancellation, any tiny step works
CS_RTOL = 1e-11      # relative to the largest |gradient entry| of the field
FD_RTOL = 1e-6


def random_problem(M, K=5, T=6, seed=0, zero_e=False, tau=(0.7, 0.4), per_step_batch=True):
    rng = np.random.default_rng(seed)
    lam = rng.uniform(0.05, 1.0, K)
    c2 = rng.uniform(0.1, 1.0, K)
    m = rng.uniform(0.5, 2.0, K)   # node weights as for quadrature nodes
    params = dict(alpha=rng.uniform(0.1, 0.5, T), b=rng.uniform(-0.5, 0.5, (T, M)),
                  c=rng.uniform(-0.5, 0.5, (T, M)), D=rng.uniform(-0.5, 0.5, (T, M, M)),
                  e=np.zeros((T, M)) if zero_e else rng.uniform(-0.5, 0.5, (T, M)))
    batch = rng.integers(1, 8, T).astype(float) if per_step_batch else 4
    noise = Noise(batch, *tau)
    weights = rng.uniform(0.0, 1.0, T + 1)
    return Spectrum(lam, c2, m), params, noise, weights


def schedule_of(params):
    return Schedule.from_arrays(*(params[f] for f in FIELDS))


def reference_value(spec, params, coupling, self_noise, weights, T):
    L = reference.mean_loss_per_step(*(params[f] for f in FIELDS), spec.eigenvalues, spec.coefficients2,
                                     spec.weights, coupling, self_noise, T)
    return weights @ L


def complex_step_gradients(spec, params, noise, weights, T):
    """Every per-step partial derivative of sum_t w_t L_t, one complex-step run each."""
    c1, c2 = noise.coefficients(T)
    out = {}
    for name in FIELDS + ("coupling", "self_noise"):
        base = params[name] if name in params else (c1 if name == "coupling" else c2)
        grad = np.zeros(base.shape)
        for idx in np.ndindex(base.shape):
            p = {f: params[f].astype(complex) for f in FIELDS}
            n1, n2 = c1.astype(complex), c2.astype(complex)
            target = p[name] if name in p else (n1 if name == "coupling" else n2)
            target[idx] += CS_STEP * 1j
            grad[idx] = reference_value(spec, p, n1, n2, weights, T).imag / CS_STEP
        out[name] = grad
    out["batch"] = noise.tau1 * out["coupling"] + noise.tau2 * out["self_noise"]
    return out


def max_rel(got, ref):
    scale = np.max(np.abs(ref)) if ref.size else 1.0
    return 0.0 if ref.size == 0 else float(np.max(np.abs(got - ref)) / scale)


@pytest.mark.parametrize("M", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("zero_e", [False, True])
def test_every_partial_derivative_matches_complex_step(M, zero_e):
    # e != 0 and e = 0 (separate kernels), tau2 != -1, per-step batch, quadrature-like weights,
    # a weighted sum of losses; memory 4 runs the general (runtime-size) kernel.
    T = 6
    spec, params, noise, weights = random_problem(M, T=T, seed=10 * M + zero_e, zero_e=zero_e)
    g = loss_gradient(schedule_of(params), spec, noise, T, weights)
    ref = complex_step_gradients(spec, params, noise, weights, T)
    c1, c2 = noise.coefficients(T)
    value = reference_value(spec, params, c1, c2, weights, T)
    assert g.value == pytest.approx(value, rel=1e-13)
    for name in FIELDS + ("coupling", "self_noise", "batch"):
        assert max_rel(getattr(g, name), ref[name]) < CS_RTOL, name


@pytest.mark.parametrize("M", [1, 2, 3])
def test_general_kernel_agrees_with_fixed_size_kernel(M):
    spec, params, noise, weights = random_problem(M, K=3000, T=30, seed=M)
    # batches 1000x larger: with 3000 components the small random batches make the noise unstable
    c1, c2 = Noise(1000 * noise.batch_size, noise.tau1, noise.tau2).coefficients(30)
    args = ((spec.eigenvalues, spec.weights, spec.coefficients2), tuple(params[f] for f in FIELDS), (c1, c2), 30,
            weights)
    fixed = _core.loss_gradient(*args, general_kernel=False)
    general = _core.loss_gradient(*args, general_kernel=True)
    assert fixed[1] == -1 and np.all(np.isfinite(fixed[3]))
    assert fixed[0] == pytest.approx(general[0], rel=1e-13)
    for a, b in zip(fixed[2:10], general[2:10]):
        assert max_rel(a, b) < 1e-12


def test_infinite_spectrum_directional_complex_step():
    # Quadrature nodes of an infinite power law (weights m_k != 1, eigenvalues down to ~1e-24).
    spec = Spectrum.power_law(2.0, 1.0, head=64)
    T = 40
    sched = memsgd.schedules.am1_power_law(1.0, 0.4, 1.0, 5.0)
    alpha, b, c, D, e = sched.parameters(T)
    e = np.full_like(e, 0.2)   # a gradient-point shift, so that every kernel term is exercised
    params = dict(alpha=alpha, b=b, c=c, D=D, e=e)
    noise = Noise.translation_invariant(5)
    weights = np.linspace(0.0, 1.0, T + 1)
    g = loss_gradient(schedule_of(params), spec, noise, T, weights)
    c1, c2 = noise.coefficients(T)
    rng = np.random.default_rng(3)
    for _ in range(3):
        v = {f: rng.standard_normal(params[f].shape) for f in FIELDS}
        p = {f: params[f] + CS_STEP * 1j * v[f] for f in FIELDS}
        ref = reference_value(spec, p, c1.astype(complex), c2.astype(complex), weights, T).imag / CS_STEP
        assert g.contract(**v) == pytest.approx(ref, rel=1e-11)


def central_difference(fun, h):
    return (fun(h) - fun(-h)) / (2 * h)


@pytest.mark.parametrize("M, zero_e", [(0, True), (1, False), (1, True), (2, False), (4, False)])
def test_directional_derivatives_match_finite_differences_of_loss_curve(M, zero_e):
    T, K = 50, 40
    spec, params, _, _ = random_problem(M, K=K, T=T, seed=100 + M, zero_e=zero_e)
    params["alpha"] *= 0.5   # keep 50 steps well inside the stable region
    noise = Noise(6, tau1=0.8, tau2=0.3)
    g = loss_gradient(schedule_of(params), spec, noise, T)
    assert g.value == pytest.approx(loss_curve(schedule_of(params), spec, noise, T).loss[-1], rel=1e-12)
    rng = np.random.default_rng(M)
    for _ in range(2):
        v = {f: rng.standard_normal(params[f].shape) for f in FIELDS}
        if zero_e:
            v["e"][:] = 0.0   # stay on the e = 0 path; de is checked by complex step

        def value(h, v=v):
            return loss_curve(schedule_of({f: params[f] + h * v[f] for f in FIELDS}), spec, noise, T).loss[-1]

        assert g.contract(**v) == pytest.approx(central_difference(value, 1e-5), rel=FD_RTOL)


def test_per_step_batch_finite_differences():
    # d value / d(1/B_t) against central differences of the reference recursion in 1/B_t.
    T = 40
    spec = Spectrum.power_law(2.0, 1.0, head=32)
    batch = np.geomspace(2, 40, T)
    noise = Noise.gaussian(batch)
    sched = memsgd.schedules.am1_power_law(0.8, 0.3)
    g = loss_gradient(sched, spec, noise, T, np.ones(T + 1))
    params = dict(zip(FIELDS, sched.parameters(T)))
    v = np.random.default_rng(0).standard_normal(T)

    def value(h):
        inv = 1.0 / batch + h * v
        return reference_value(spec, params, noise.tau1 * inv, noise.tau2 * inv, np.ones(T + 1), T)

    assert g.contract(batch=v) == pytest.approx(central_difference(value, 1e-6), rel=FD_RTOL)
    c1, c2 = noise.coefficients(T)
    assert g.value == pytest.approx(reference_value(spec, params, c1, c2, np.ones(T + 1), T), rel=1e-12)


def test_constant_algorithm_gradient_is_per_step_and_sums_to_the_stationary_derivative():
    # heavy ball(lr, beta): alpha = c = lr and b = D = beta at every step.
    spec = Spectrum.power_law(1.5, 0.7, size=200)
    noise = Noise.gaussian(8)
    T, lr, beta = 300, 0.3, 0.8
    g = loss_gradient(memsgd.heavy_ball(lr, beta), spec, noise, T)
    assert g.alpha.shape == (T,) and g.D.shape == (T, 1, 1)
    d_lr = float(np.sum(g.alpha) + np.sum(g.c))
    d_beta = float(np.sum(g.b) + np.sum(g.D))

    def at(lr_, beta_):
        return loss_curve(memsgd.heavy_ball(lr_, beta_), spec, noise, T).loss[-1]

    assert d_lr == pytest.approx(central_difference(lambda h: at(lr + h, beta), 1e-6), rel=FD_RTOL)
    assert d_beta == pytest.approx(central_difference(lambda h: at(lr, beta + h), 1e-6), rel=FD_RTOL)


def test_forward_losses_equal_loss_curve_bitwise():
    # The forward pass is loss_curve's run of the engine: the same bits, for every kernel (M = 0..3
    # with e = 0 and e != 0, the general one for M = 4), schedules, per-step batches, weights.
    spec = Spectrum.power_law(2.0, 1.0, head=256)
    per_step = Noise.gaussian(np.linspace(2.0, 40.0, 500))
    cases = [(memsgd.gd(0.9), Noise.gaussian(10)), (memsgd.nesterov(0.2, 0.8), per_step),
             (memsgd.schedules.am1_power_law(1.0, 0.45), Noise.translation_invariant(10)),
             (MemoryAlgorithm(0.2, [0.3, 0.1], [0.1, 0.05], [[0.5, 0.1], [0.0, 0.3]], [0.1, -0.2]), per_step),
             (MemoryAlgorithm(0.3, [0.2, 0.1, 0.05], [0.1, 0.1, 0.0], 0.5 * np.eye(3)), Noise.gaussian(10)),
             (MemoryAlgorithm(0.3, [0.2, 0.1, 0.05, 0.0], [0.1, 0.1, 0.0, 0.1], 0.5 * np.eye(4)), Noise.gaussian(10))]
    weights = np.linspace(0.0, 1.0, 501)
    for algo, noise in cases:
        curve = loss_curve(algo, spec, noise, 500)
        g = loss_gradient(algo, spec, noise, 500, weights, checkpoint_every=9)
        assert np.array_equal(g.loss, curve.loss), algo
        assert g.value == pytest.approx(weights @ curve.loss, rel=1e-14)


def test_checkpoint_interval_changes_nothing():
    spec, params, noise, weights = random_problem(1, K=50, T=37, seed=4)
    runs = [loss_gradient(schedule_of(params), spec, noise, 37, weights, checkpoint_every=c)
            for c in (None, 1, 5, 37, 100)]
    for r in runs[1:]:
        assert r.value == runs[0].value
        for f in FIELDS + ("batch",):
            assert np.array_equal(getattr(r, f), getattr(runs[0], f))
    assert runs[0].checkpoint_every == 7   # ceil(sqrt(37))
    assert runs[2].stored_states < 37      # O(sqrt(T)) states, not T


def test_segments_in_cache_or_streamed_give_the_same_bits():
    # Recomputed states go through the cache when the segment fits the cache budget, else with
    # non-temporal stores: only the speed differs. K = 20000, M = 1: 480 kB per stored state, so a
    # 60-step segment (28 MB) is streamed and a 5-step one (2 MB) is not, whatever the cache.
    spec = Spectrum.power_law(2.0, 1.0, size=20000)
    algo, noise, T = memsgd.schedules.am1_power_law(1.0, 0.4), Noise.gaussian(10), 240
    assert _core.gradient_checkpointing(1, 20000, T, 60)[:2] == (60, True)
    assert _core.gradient_checkpointing(1, 20000, T, 5)[:2] == (5, False)
    runs = [loss_gradient(algo, spec, noise, T, checkpoint_every=c) for c in (60, 5, None)]
    for r in runs[1:]:
        assert r.value == runs[0].value and np.array_equal(r.loss, runs[0].loss)
        for f in FIELDS + ("batch",):
            assert np.array_equal(getattr(r, f), getattr(runs[0], f))


@pytest.mark.parametrize("K,T", [(1000, 100_000), (5000, 40_000), (20_000, 10_000), (100_000, 10_000), (10**6, 10**6)])
def test_default_checkpointing_keeps_sqrt_memory(K, T):
    # ceil(sqrt(T)) minimises the stored states T/C + C; a shorter segment is taken only when it
    # fits the cache budget and at most doubles them, so memory stays O(sqrt(T) K).
    every, streamed, budget = _core.gradient_checkpointing(1, K, T)
    state = 8 * 3 * (-(-K // 8) * 8)
    c0 = math.ceil(math.sqrt(T))
    stored = lambda c: -(-T // c) + c  # noqa: E731
    assert stored(every) <= 2 * stored(c0)
    assert streamed == ((every - 1) * state > budget)
    if (c0 - 1) * state <= budget:
        assert every == c0 and not streamed
    assert every == c0 or not streamed
    if K == 1000:
        g = loss_gradient(memsgd.heavy_ball(0.1, 0.9), Spectrum.power_law(2.0, 1.0, size=K), Noise.gaussian(10), 400)
        assert g.checkpoint_every == _core.gradient_checkpointing(1, K, 400)[0]
    with pytest.raises(ValueError, match="memory"):
        _core.gradient_checkpointing(-1, K, T)


def test_rows_after_the_last_weighted_step_are_zero_and_value_is_the_weighted_sum():
    spec, params, noise, _ = random_problem(2, K=20, T=30, seed=5)
    w = np.zeros(31)
    w[[3, 10, 17]] = [0.5, 2.0, 1.0]
    g = loss_gradient(schedule_of(params), spec, noise, 30, w)
    assert g.value == pytest.approx(w @ g.loss, rel=1e-15)
    assert np.all(g.alpha[17:] == 0) and np.all(g.D[17:] == 0) and np.any(g.alpha[16] != 0)


def test_divergence_gives_inf_value_and_nan_gradient():
    spec = Spectrum.power_law(2.0, 1.0, size=100)
    algo = memsgd.gd(2.5)   # lambda_max = 1: |1 - 2.5| > 1
    curve = loss_curve(algo, spec, Noise.gaussian(10), 400)
    g = loss_gradient(algo, spec, Noise.gaussian(10), 400)
    assert curve.diverged_at is not None and g.diverged_at == curve.diverged_at
    assert g.value == np.inf and np.all(np.isnan(g.alpha)) and np.all(np.isinf(g.loss[g.diverged_at:]))
    # Weights that end before the divergence: the value and gradient are finite.
    w = np.zeros(401)
    w[5] = 1.0
    early = loss_gradient(algo, spec, Noise.gaussian(10), 400, w)
    assert np.isfinite(early.value) and np.all(np.isfinite(early.alpha))


def test_divergence_is_loss_curves_on_a_diverging_schedule():
    # The core decides divergence once (L_t > 1e30 L_0 or L_t, l_t not finite): loss_gradient's
    # diverged_at and losses are loss_curve's, and the gradient is NaN only when a weighted step
    # diverged.
    spec = Spectrum.power_law(2.0, 1.0, size=200)
    T = 300
    lr = np.where(np.arange(T) < 150, 0.5, 2.6)          # past 2 / lambda_max from step 150 on
    sched = Schedule.from_arrays(lr, np.zeros((T, 0)), np.zeros((T, 0)), np.zeros((T, 0, 0)))
    curve = loss_curve(sched, spec, Noise.gaussian(10), T)
    g = loss_gradient(sched, spec, Noise.gaussian(10), T)
    assert curve.diverged_at is not None and 150 < curve.diverged_at < T
    assert g.diverged_at == curve.diverged_at and np.array_equal(g.loss, curve.loss)
    assert g.value == np.inf and np.all(np.isnan(g.alpha))
    w = np.zeros(T + 1)
    w[curve.diverged_at - 1] = 1.0
    before = loss_gradient(sched, spec, Noise.gaussian(10), T, w)
    assert before.diverged_at == curve.diverged_at and before.value == curve.loss[curve.diverged_at - 1]
    assert np.all(np.isfinite(before.alpha))


def test_divergence_of_the_gradient_point_loss_alone():
    # With a huge shift e the gradient-point loss l_t overflows while L_t is still finite and far
    # below 1e30 L_0: the run has diverged there (regression: the adjoint used to watch L_t only,
    # through a limit passed from Python, and stopped one step later than loss_curve).
    spec = Spectrum(np.linspace(0.5, 1.0, 20), np.full(20, 1e270))
    algo = MemoryAlgorithm(3.0, [0.5], [-3.0], [[0.5]], [1e12])
    curve = loss_curve(algo, spec, Noise.none(), 60)
    d = curve.diverged_at
    assert d is not None and np.isfinite(curve.loss[d - 1]) and curve.loss[d - 1] < 1e10 * curve.loss[0]
    g = loss_gradient(algo, spec, Noise.none(), 60)
    assert g.diverged_at == d and np.array_equal(g.loss, curve.loss)


def test_large_initial_loss_is_not_divergence():
    spec = Spectrum([1.0, 0.5], [1e40, 1e40])
    g = loss_gradient(memsgd.heavy_ball(0.5, 0.5), spec, Noise.gaussian(10), 50)
    assert g.diverged_at is None and np.isfinite(g.value) and np.all(np.isfinite(g.alpha))


def test_a_run_too_large_for_memory_is_refused_before_any_work():
    spec = Spectrum.power_law(2.0, 1.0, size=100_000)
    with pytest.raises(ValueError, match=r"\(steps = \d+, K = \d+, M = \d+\) is too large"):
        loss_gradient(memsgd.heavy_ball(0.1, 0.9), spec, Noise.gaussian(10), 10**10)
    # The core's own guard (a thin binding calls it before allocating anything): 2000 stored states
    # of 2e6 components with M = 3 are 320 GB.
    K, T = 2_000_000, 1_000_000
    lam, ones = np.linspace(1e-3, 1.0, K), np.ones(K)
    with pytest.raises(ValueError, match="steps too large"):
        _core.loss_gradient((lam, ones, ones),
                            (np.array([0.1]), np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((1, 3, 3)),
                             np.zeros((1, 3))),
                            (np.array([0.1]), np.array([-0.1])), T, np.ones(T + 1))


def test_zero_steps_and_noiseless_batch_gradient():
    spec = Spectrum([1.0, 0.5], [1.0, 2.0])
    g = loss_gradient(memsgd.gd(0.5), spec, Noise.none(), 0)
    assert g.value == spec.initial_loss and g.alpha.shape == (0,)
    g = loss_gradient(memsgd.gd(0.5), spec, Noise.none(), 10)
    assert np.all(g.batch == 0)


@pytest.mark.parametrize("weights, match", [
    (np.ones(5), "length steps"),
    (-np.ones(11), ">= 0"),
    (np.r_[np.ones(10), np.nan], "finite"),
])
def test_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        loss_gradient(memsgd.gd(0.5), Spectrum([1.0], [1.0]), Noise.gaussian(2), 10, weights)


def test_bad_inputs():
    spec = Spectrum([1.0], [1.0])
    short = Schedule.from_arrays(np.ones(5), np.zeros((5, 0)), np.zeros((5, 0)), np.zeros((5, 0, 0)))
    with pytest.raises(ValueError, match="schedule's length"):
        loss_gradient(short, spec, Noise.gaussian(2), 6)
    nan_schedule = Schedule(0, lambda t: (np.where(t > 2, np.nan, 0.1), np.zeros((len(t), 0)),
                                           np.zeros((len(t), 0)), np.zeros((len(t), 0, 0)),
                                           np.zeros((len(t), 0))))
    with pytest.raises(ValueError, match="not finite"):
        loss_gradient(nan_schedule, spec, Noise.gaussian(2), 5)
    with pytest.raises(ValueError, match="fewer than"):
        loss_gradient(memsgd.gd(0.1), spec, Noise.gaussian(np.full(3, 2.0)), 5)
    with pytest.raises(TypeError, match="schedule"):
        loss_gradient("sgd", spec, Noise.gaussian(2), 5)
    with pytest.raises(TypeError, match="spectrum"):
        loss_gradient(memsgd.gd(0.1), [1.0], Noise.gaussian(2), 5)
    with pytest.raises(ValueError, match="steps must be an integer"):
        loss_gradient(memsgd.gd(0.1), spec, Noise.gaussian(2), 5.5)
    with pytest.raises(ValueError, match="checkpoint_every"):
        loss_gradient(memsgd.gd(0.1), spec, Noise.gaussian(2), 5, checkpoint_every=0)


def test_result_is_a_loss_gradient_and_contract_checks_shapes():
    g = loss_gradient(memsgd.heavy_ball(0.1, 0.5), Spectrum([1.0], [1.0]), Noise.gaussian(2), 4)
    assert isinstance(g, LossGradient) and g.memory == 1 and g.steps == 4
    with pytest.raises(ValueError):
        g.contract(alpha=np.ones(3))


THREAD_SCRIPT = """
import hashlib, numpy as np, memsgd
from memsgd.gradient import loss_gradient
spec = memsgd.Spectrum.power_law(2.0, 1.0, size=20000)   # 20 blocks (forced teams: test_thread_policy)
g = loss_gradient(memsgd.schedules.am1_power_law(1.0, 0.4), spec, memsgd.Noise.gaussian(10), 120)
h = hashlib.sha256()
for a in (g.loss, g.alpha, g.b, g.c, g.D, g.e, g.batch):
    h.update(np.ascontiguousarray(a).tobytes())
print(memsgd._core.max_threads(), h.hexdigest())
"""


@pytest.mark.slow
def test_bitwise_identical_for_any_thread_count():
    digests = set()
    for threads in (1, 2):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_DYNAMIC="false")
        proc = subprocess.run([sys.executable, "-c", THREAD_SCRIPT], capture_output=True, text=True, env=env,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        used, digest = proc.stdout.split()
        if threads == 2 and used == "1":
            pytest.skip("core built without OpenMP: nothing to compare")
        assert int(used) == threads
        digests.add(digest)
    assert len(digests) == 1


def test_core_gradient_run_can_be_cancelled():
    spec = Spectrum.power_law(2.0, 1.0, size=20000)
    algo = memsgd.heavy_ball(0.1, 0.9)
    steps = 200_000
    control = _core.RunControl()
    outcome = {}
    w = np.zeros(steps + 1)
    w[-1] = 1.0

    def run():
        try:
            _core.loss_gradient((spec.eigenvalues, spec.weights, spec.coefficients2),
                                (np.array([algo.alpha]), algo.b.reshape(1, 1), algo.c.reshape(1, 1),
                                 algo.D.reshape(1, 1, 1), algo.e.reshape(1, 1)),
                                (np.full(steps, 0.1), np.full(steps, -0.1)), steps, w, control=control)
        except RuntimeError as exc:
            outcome["error"] = str(exc)

    worker = threading.Thread(target=run)
    worker.start()
    while control.steps_done < 10 and worker.is_alive():
        worker.join(0.01)
    control.cancel()
    worker.join(120)
    assert not worker.is_alive()
    assert outcome.get("error") == "run cancelled"
    assert 10 <= control.steps_done < steps  # stopped early in the forward pass


def test_ctrl_c_interrupts_a_long_loss_gradient(ctrl_c):
    # KeyboardInterrupt reaches the caller promptly: without cancellation the run would take far
    # longer than the subprocess timeout.
    seconds, _ = ctrl_c("memsgd.loss_gradient(memsgd.heavy_ball(0.1, 0.9), spec, memsgd.Noise.gaussian(10), "
                        "2 * 10**6, progress=False)",
                        setup="import memsgd\nspec = memsgd.Spectrum.power_law(2.0, 1.0, size=20000)")
    assert seconds < 30


@requires("tqdm")
def test_progress_bar_changes_nothing_but_stderr(capsys):
    spec = Spectrum.power_law(2.0, 1.0, size=300)
    quiet = loss_gradient(memsgd.heavy_ball(0.1, 0.9), spec, Noise.gaussian(10), 300, progress=False)
    shown = loss_gradient(memsgd.heavy_ball(0.1, 0.9), spec, Noise.gaussian(10), 300, progress=True)
    assert np.array_equal(quiet.alpha, shown.alpha) and quiet.value == shown.value
    assert "loss_gradient" in capsys.readouterr().err


def test_general_kernel_plans_segments_by_its_own_state_size():
    # The general kernel stores K (M+1)^2 doubles per state, the fixed one K (M+1)(M+2)/2: the
    # segment length is chosen for the state the engine really stores (regression: the plan used
    # the packed size, so the general kernel's "cached" segment overflowed the cache budget).
    K, T = 300_000, 16
    spec = Spectrum.power_law(2.0, 1.0, size=K)
    algo = memsgd.heavy_ball(0.01, 0.9)
    w = np.zeros(T + 1)
    w[-1] = 1.0
    args = ((spec.eigenvalues, spec.weights, spec.coefficients2),
            (np.array([algo.alpha]), algo.b.reshape(1, 1), algo.c.reshape(1, 1), algo.D.reshape(1, 1, 1),
             algo.e.reshape(1, 1)), (np.array([0.01]), np.array([-0.01])), T, w)
    budget = _core.gradient_checkpointing(1, K, T)[2]
    sqrt_every = math.ceil(math.sqrt(T))
    for general, state in ((False, 8 * 3 * K), (True, 8 * 4 * K)):
        every = _core.loss_gradient(*args, general_kernel=general)[10]
        assert every == sqrt_every or (every - 1) * state <= budget, (general, every)
