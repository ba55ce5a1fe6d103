"""The engine's affine state for weight decay (docs/math.md §9; cpp/src/kernels/kernel_api.hpp,
"Weight decay"): loss_curve and loss_curves carry the first moment and the centered second moment
per component instead of running the memory-(M+1) reduction of memsgd._affine.

Checked against the literal transcription of §9 with uncentered moments and the force terms
(tests/reference.py ``affine_mean_loss``, in extended precision) in two regimes -- the loss falling
by up to 1e-9 below L_0 (the mean part dominates, rounding in a centered form would show) and
noise-dominated runs -- against the reduction (still the path of loss_at, the gradient and the
propagators) on long runs, and bit for bit against the plain engine where every rho_t = 0.
Thread-count determinism: tests/test_determinism.py; SIMD paths: tests/test_simd.py.
"""
import numpy as np
import pytest

import memsgd
from memsgd import MemoryAlgorithm, Noise, Schedule, Spectrum, _core, loss_curve, loss_curves
from memsgd._affine import forward_problem, plain_problem

from . import reference
from ._extras import need

# The engine against the extended-precision reference, relative per step: measured <= 9e-14 for
# M <= 3 (AVX-512 and baseline paths) and <= 1.6e-13 for the dense M >= 4 engine over 2000 steps
# of a loss falling to 2e-8 L_0; <= 2e-15 in the noisy regime. Against the reduction over 20000
# steps: <= 4e-13.
RTOL_REFERENCE = 1e-12


def _algorithms(rho):
    return {
        "gd": memsgd.gd(0.8, weight_decay=rho),
        "hb": memsgd.heavy_ball(0.4, 0.8, weight_decay=rho),
        "nesterov": memsgd.nesterov(0.4, 0.7, weight_decay=rho),
        "M2": MemoryAlgorithm(0.3, [0.5, 0.2], [0.1, -0.2], [[0.6, 0.1], [0.0, 0.3]], [0.2, -0.1], weight_decay=rho),
        "M3": MemoryAlgorithm(0.3, [0.5, 0.2, 0.1], [0.1, -0.2, 0.05], np.diag([0.6, 0.3, 0.2]), weight_decay=rho),
        "M4": MemoryAlgorithm(0.2, [0.3, 0.1, 0.2, 0.1], [0.1, 0.2, 0.1, 0.05], np.diag([0.5, 0.6, 0.7, 0.8]),
                              [0.0, 0.1, 0.0, 0.1], weight_decay=rho),
        "M5": MemoryAlgorithm(0.2, np.full(5, 0.1), np.full(5, 0.05), 0.5 * np.eye(5) + 0.02, weight_decay=rho),
    }


REGIMES = {  # (rho, noise, steps): L_T / L_0 down to ~1e-9 (mean-dominated) / noise-dominated
    "falling": (1e-6, Noise(1e6, tau2=1.0), 2000),
    "noisy": (0.05, Noise(3, tau2=-1.0, label_noise=0.5), 300),
}


@pytest.mark.parametrize("regime", sorted(REGIMES))
@pytest.mark.parametrize("name", ["gd", "hb", "nesterov", "M2", "M3", "M4", "M5"])
def test_matches_extended_precision_literal_reference(name, regime):
    rho, noise, T = REGIMES[regime]
    spec = Spectrum.power_law(1.5, 0.5, size=40)
    algo = _algorithms(rho)[name]
    params = algo.parameters()
    ref = reference.affine_mean_loss(lambda t: params, spec.eigenvalues, spec.coefficients2, spec.weights,
                                     noise.tau1, noise.tau2, noise.batch_size, T, sigma2=noise.label_noise,
                                     rho_at=lambda t: rho, dtype=np.longdouble).astype(float)
    curve = loss_curve(algo, spec, noise, T)
    assert forward_problem(algo, spec)[0].memory == algo.memory     # the affine state, not the reduction
    assert curve.diverged_at is None
    if regime == "falling":
        assert ref[-1] < 1e-3 * ref[0]
    assert np.max(np.abs(curve.loss / ref - 1)) < RTOL_REFERENCE


@pytest.mark.parametrize("name", ["gd", "hb", "nesterov", "M3", "M4"])
def test_matches_the_reduction_on_long_runs(name):
    # 20000 steps on 300 nodes (100 for the dense engine), down to the bias floor: loss and
    # gradient-point loss
    spec = Spectrum.power_law(2.0, 1.0, size=100 if name == "M4" else 300)
    algo = _algorithms(1e-3)[name]
    noise = Noise(16, label_noise=0.1)
    T = 20000
    new = loss_curve(algo, spec, noise, T)
    old = loss_curve(*plain_problem(algo, spec), noise, T)
    assert new.diverged_at is None and old.diverged_at is None
    assert np.max(np.abs(new.loss / old.loss - 1)) < 1e-11
    assert np.max(np.abs(new.gradient_point_loss / old.gradient_point_loss - 1)) < 1e-11


def test_schedule_with_per_step_decay_and_readout_matches_reference_and_reduction():
    rng = np.random.default_rng(7)
    T = 400
    alpha = np.linspace(0.4, 0.1, T)
    b = np.full((T, 2), [0.5, 0.1])
    c = np.column_stack([np.linspace(0.3, 0.1, T), np.full(T, -0.1)])
    D = np.tile(np.array([[0.6, 0.1], [0.0, 0.3]]), (T, 1, 1))
    e = np.tile([0.1, -0.1], (T, 1))
    rho = rng.uniform(0.0, 0.2, T)
    rho[::5] = 0.0
    sched = Schedule.from_arrays(alpha, b, c, D, e, weight_decay=rho, readout=[0.3, -0.2])
    spec = Spectrum.power_law(1.5, 0.5, size=30)
    batch = rng.integers(2, 9, T).astype(float)
    noise = Noise(batch, 1.0, -0.5, label_noise=0.2)
    curve = loss_curve(sched, spec, noise, T)
    ref = reference.affine_mean_loss(lambda t: (alpha[t], b[t], c[t], D[t], e[t]), spec.eigenvalues,
                                     spec.coefficients2, spec.weights, 1.0, -0.5, batch, T, sigma2=0.2,
                                     rho_at=lambda t: rho[t], readout=[0.3, -0.2], dtype=np.longdouble)
    assert np.max(np.abs(curve.loss / ref.astype(float) - 1)) < RTOL_REFERENCE
    old = loss_curve(*plain_problem(sched, spec), noise, T)
    assert np.max(np.abs(curve.loss / old.loss - 1)) < 1e-12


@pytest.mark.parametrize("M", [0, 1, 2, 4])
def test_preconditioner_with_weight_decay_matches_literal_reference(M):
    # the decay p_k rho per component, which no plain algorithm carries (the reduction refuses it)
    spec = Spectrum.power_law(1.5, 0.5, size=30)
    algo = {0: memsgd.gd(0.3), 1: memsgd.heavy_ball(0.15, 0.6), 2: _algorithms(0)["M2"],
            4: _algorithms(0)["M4"]}[M]
    params = algo.parameters()
    decayed = MemoryAlgorithm(*params, weight_decay=0.02, preconditioner=0.4)
    noise = Noise(4, tau2=-1.0, label_noise=0.3)
    T = 300
    curve = loss_curve(decayed, spec, noise, T)
    ref = reference.affine_mean_loss(lambda t: params, spec.eigenvalues, spec.coefficients2, spec.weights, 1.0,
                                     -1.0, 4, T, sigma2=0.3, rho_at=lambda t: 0.02, precond=0.4,
                                     dtype=np.longdouble).astype(float)
    assert curve.diverged_at is None
    assert np.max(np.abs(curve.loss / ref - 1)) < RTOL_REFERENCE
    # the check has power: decay rho (not p_k rho) on the preconditioned spectrum is far off
    wrong = reference.affine_mean_loss(lambda t: params, spec.eigenvalues, spec.coefficients2, spec.weights, 1.0,
                                       -1.0, 4, T, sigma2=0.3, rho_at=lambda t: 0.02, precond=0.0)
    assert np.max(np.abs(curve.loss / wrong - 1)) > 1e-2


def test_preconditioner_with_weight_decay_matches_monte_carlo():
    lam = np.array([1.0, 0.5, 0.2, 0.08])
    c2 = np.array([1.0, 0.6, 0.9, 0.4])
    algo = MemoryAlgorithm(0.2, [0.5], [0.2], [[0.5]], weight_decay=0.3, preconditioner=0.5)
    T = 30
    mean, se = memsgd.simulate_sgd(algo, Spectrum(lam, c2), 2, T, 20000, seed=11, return_stderr=True,
                                   label_noise=0.4)
    exact = loss_curve(algo, Spectrum(lam, c2), Noise.gaussian(2, label_noise=0.4), T).loss
    assert np.max(np.abs(mean[1:] - exact[1:]) / se[1:]) < 4.5
    plain = loss_curve(MemoryAlgorithm(*algo.parameters(), preconditioner=0.5), Spectrum(lam, c2),
                       Noise.gaussian(2, label_noise=0.4), T).loss
    assert np.max(np.abs(mean[1:] - plain[1:]) / se[1:]) > 20


def test_zero_weight_decay_is_the_plain_engine_bit_for_bit():
    spec = Spectrum.power_law(1.5, 0.8, size=2500)
    noise = Noise(5, label_noise=0.1)
    for algo in (memsgd.heavy_ball(0.4, 0.8), memsgd.nesterov(0.4, 0.7), _algorithms(0.0)["M4"], memsgd.gd(0.9)):
        M = algo.memory
        spectrum = (spec.eigenvalues, spec.weights, spec.coefficients2)
        params = (np.array([algo.alpha]), algo.b.reshape(1, M), algo.c.reshape(1, M), algo.D.reshape(1, M, M),
                  algo.e.reshape(1, M))
        core_noise = (np.array([noise.coupling]), np.array([noise.self_noise]), np.array([noise.label_source]))
        plain = _core.evolve(spectrum, params, core_noise, 60)
        zero = _core.evolve(spectrum + (np.full(spec.size, 2.0),), params + (np.zeros(1),), core_noise, 60)
        assert all(np.array_equal(a, b) for a, b in zip(plain[:2], zero[:2]))
    T = 50
    sched = memsgd.schedules.am1_power_law(0.5, 0.3)
    with_zeros = Schedule.from_arrays(*sched.parameters(T), weight_decay=np.zeros(T))
    assert np.array_equal(loss_curve(sched, spec, noise, T).loss, loss_curve(with_zeros, spec, noise, T).loss)
    assert np.array_equal(loss_curve(memsgd.heavy_ball(0.4, 0.8, weight_decay=0.0), spec, noise, T).loss,
                          loss_curve(memsgd.heavy_ball(0.4, 0.8), spec, noise, T).loss)


def test_loss_curves_equal_loss_curve_bitwise_with_weight_decay():
    spec = Spectrum.power_law(1.5, 0.8, size=3000)    # 3 blocks
    noise = Noise(5, label_noise=0.2)
    T = 40
    algos = [memsgd.heavy_ball(0.4, 0.8), memsgd.heavy_ball(0.4, 0.8, weight_decay=0.01),
             memsgd.nesterov(0.4, 0.7, weight_decay=0.02), _algorithms(0.01)["M4"],
             MemoryAlgorithm(0.3, [0.5], [0.2], [[0.5]], weight_decay=0.01, preconditioner=0.3),
             Schedule.from_arrays(*memsgd.schedules.am1_power_law(0.5, 0.3).parameters(T),
                                  weight_decay=np.linspace(0.05, 0.0, T))]
    batch = loss_curves(algos, spec, noise, T, record=9)
    for i, a in enumerate(algos):
        assert np.array_equal(batch.loss[i], loss_curve(a, spec, noise, T).loss[batch.steps])
    parts = [loss_curves(algos[a:b], spec, noise, T, record=9, threads=t)
             for a, b, t in ((0, 1, 1), (1, 4, 2), (4, 6, 3))]
    assert np.array_equal(np.concatenate([p.loss for p in parts]), batch.loss)


def test_core_refuses_bad_weight_decay_in_one_line():
    lam, w, c2 = np.array([1.0, 0.5]), np.ones(2), np.ones(2)
    gd = (np.array([0.1]), np.zeros((1, 0)), np.zeros((1, 0)), np.zeros((1, 0, 0)), np.zeros((1, 0)))
    noise = (np.array([0.1]), np.array([0.1]))
    for rho, kappa, kwargs, match in [
            (np.array([-0.1]), None, {}, "weight decay must be finite and >= 0"),
            (np.array([0.1, 0.1]), None, {}, "weight_decay must have shape"),
            (np.array([np.nan]), None, {}, "weight_decay must be finite"),
            (np.array([0.1]), np.array([1.0, 0.0]), {}, "decay scale must be finite and > 0"),
            (np.array([0.1]), None, {"initial_ggt": True}, "weight decay needs the initial state")]:
        with pytest.raises(ValueError, match=match) as info:
            _core.evolve((lam, w, c2, kappa), gd + (rho,), noise, 5, **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="must be \\(alpha, b, c, D, e\\[, weight_decay\\]\\)"):
        _core.evolve_batch([(lam, w, c2)], [gd + (np.array([0.1]), None)], [noise], 5)


def test_state_bytes_counts_the_affine_state():
    K = 10**6
    plain = _core.state_bytes(1, K, 1, 1)
    affine = _core.state_bytes(1, K, 1, 1, weight_decay=True)
    # per component: 5 doubles (lam, w lam / 2, X packed) against 10 (+ c2, kappa, mu, q)
    assert affine / plain == pytest.approx(10 / 5, rel=1e-2)   # (+ the blocks' partial sums)


def test_preconditioner_factors_and_the_float_range_refusal():
    spec = Spectrum(np.array([2.0, 0.5, 1e-300]), np.ones(3))
    assert np.array_equal(spec.preconditioner_factors(0.5)[:2], [1.0, 2.0])
    with pytest.raises(ValueError, match="out of the float range") as info:
        spec.preconditioned(2.0)      # 1e-300 * (5e-301)^-2 overflows
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["gd", "hb", "nesterov", "M3", "hb-precond"])
def test_kept_and_recomputed_gradient_point_moment_give_the_same_bits(name):
    # The affine kernels keep q = h^T X h for the next step while the state fits
    # kAffineKeepBytes (16 MB) and form it again beyond (kernel_api.hpp): the same operations on
    # the same values. Nodes of weight 0 appended after a small spectrum add exact zeros to every
    # sum, so the small run (q kept) and the padded run (> 16 MB: q formed again) must agree bit
    # for bit.
    spec = Spectrum.power_law(1.5, 0.8, size=1000)
    algo = _algorithms(0.01).get(name) or MemoryAlgorithm(0.2, [0.5], [0.2], [[0.5]], [0.3])
    kappa = spec.preconditioner_factors(0.3) if name == "hb-precond" else None
    if kappa is not None:
        spec = spec.preconditioned(0.3)
    M, pad = algo.memory, 400_000
    params = (np.array([algo.alpha]), algo.b.reshape(1, M), algo.c.reshape(1, M), algo.D.reshape(1, M, M),
              algo.e.reshape(1, M))
    noise = (np.array([0.2]), np.array([-0.1]))
    rho = np.array([0.01])

    def run(lam, w, c2, k):
        return _core.evolve((lam, w, c2, k), params + (rho,), noise + (np.array([0.05]),), 50)

    small = run(spec.eigenvalues, spec.weights, spec.coefficients2, kappa)
    padded = run(np.concatenate([spec.eigenvalues, np.full(pad, 0.5)]),
                 np.concatenate([spec.weights, np.zeros(pad)]),
                 np.concatenate([spec.coefficients2, np.ones(pad)]),
                 None if kappa is None else np.concatenate([kappa, np.ones(pad)]))
    assert _core.state_bytes(M, spec.size + pad, 1, 1, weight_decay=True) > 16e6 > \
        _core.state_bytes(M, spec.size, 1, 1, weight_decay=True)
    assert small[2] == padded[2] == -1
    assert np.array_equal(small[0], padded[0]) and np.array_equal(small[1], padded[1])


def test_every_curve_path_runs_the_affine_state_and_agrees_with_the_reduction():
    # loss_curve, loss_curves and sweep run the affine state (same bits as each other); the
    # memory-(M+1) reduction (memsgd._affine) is the independent second algorithm: <= 1e-12
    # relative (measured <= 3e-15 here). loss_gradient's forward pass is the reduction's run of
    # the engine (the adjoint differentiates the plain model), bitwise loss_curve of the reduction.
    need("xarray")
    spec = Spectrum.power_law(2.0, 1.0, size=300)
    noise = Noise(4, tau2=-0.5, label_noise=0.2)
    T = 400
    factory = memsgd.heavy_ball
    grid = {"lr": [0.2, 0.5], "momentum": [0.5, 0.8], "weight_decay": [0.01, 0.05]}
    ds = memsgd.sweep(factory, grid, spec, noise, T, record=25)
    steps = ds.step.values
    algos, reduced = [], []
    for lr in grid["lr"]:
        for beta in grid["momentum"]:
            for rho in grid["weight_decay"]:
                algo = factory(lr, beta, weight_decay=rho)
                algos.append(algo)
                curve = loss_curve(algo, spec, noise, T)
                old = loss_curve(*plain_problem(algo, spec), noise, T)
                assert plain_problem(algo, spec)[0].memory == 2 and forward_problem(algo, spec)[0].memory == 1
                assert np.array_equal(ds.loss.sel(lr=lr, momentum=beta, weight_decay=rho).values, curve.loss[steps])
                assert np.max(np.abs(curve.loss / old.loss - 1)) < 1e-12
                assert not np.array_equal(curve.loss, old.loss)   # two algorithms, not one path
                reduced.append(old)
    batch = loss_curves(algos, spec, noise, T)
    for i, old in enumerate(reduced):
        assert np.max(np.abs(batch.loss[i] / old.loss - 1)) < 1e-12
    sched = Schedule.from_arrays(*memsgd.schedules.am1_power_law(0.5, 0.3).parameters(T),
                                 weight_decay=np.linspace(0.05, 0.0, T))
    for a in (algos[3], sched):
        g = memsgd.loss_gradient(a, spec, noise, T, weights=np.ones(T + 1))
        assert np.array_equal(g.loss, loss_curve(*plain_problem(a, spec), noise, T).loss)
        assert np.max(np.abs(g.loss / loss_curve(a, spec, noise, T).loss - 1)) < 1e-12
