"""optimize_schedule and the family gradients (chain rule through the per-step formulas)."""
import math
import pickle

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Schedule, Spectrum, loss_curve
from memsgd.design import FAMILIES, family_gradient, make_family, optimize_schedule

SPEC = Spectrum.power_law(2.0, 1.0, size=50)
FD_RTOL = 1e-6


def central(fun, x, v, h=1e-6):
    return (fun(x + h * v) - fun(x - h * v)) / (2 * h)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_gradient_matches_finite_differences(name):
    # J from the engine's losses (loss_curve), independent of the adjoint's forward pass.
    T = 60
    noise = Noise.none() if name == "jacobi_heavy_ball" else Noise.gaussian(10)   # Jacobi HB diverges with noise
    fam = make_family(name, T, knots=6)
    rng = np.random.default_rng(0)
    x = np.clip(fam.start + 0.01 * rng.standard_normal(fam.size), fam.lower, fam.upper)
    J, dx = family_gradient(fam, x, SPEC, noise, T)

    def value(y):
        return loss_curve(fam.schedule(y), SPEC, noise, T).loss[-1]

    assert J == pytest.approx(value(x), rel=1e-12)
    for _ in range(2):
        v = rng.standard_normal(fam.size)
        assert dx @ v == pytest.approx(central(value, x, v), rel=FD_RTOL)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_formulas_equal_the_named_schedules(name):
    # arrays(x, t) (what the gradient differentiates) against the schedule the family returns,
    # which for the named families comes from the presets / schedules module.
    T = 40
    fam = make_family(name, T, knots=5)
    x = np.clip(fam.start + 0.05, fam.lower, fam.upper)
    for a, b in zip(fam.arrays(x, np.arange(T)), fam.schedule(x).parameters(T)):
        np.testing.assert_allclose(np.reshape(a, b.shape), b, rtol=1e-14, atol=1e-15)
    assert pickle.loads(pickle.dumps(fam)).size == fam.size


@pytest.mark.parametrize("name", ["free_sgd", "free_memory1"])
def test_free_family_fast_chain_rule_equals_complex_step_per_variable(name):
    import dataclasses
    T = 90
    fam = make_family(name, T, knots=7)
    x = fam.start + 0.2 * np.random.default_rng(2).standard_normal(fam.size)
    J, fast = family_gradient(fam, x, SPEC, Noise.gaussian(10), T)
    J2, slow = family_gradient(dataclasses.replace(fam, chain=None), x, SPEC, Noise.gaussian(10), T)
    assert J == J2
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-14 * np.abs(slow).max())


def test_weighted_objective_and_batch_budget_gradient():
    from memsgd.design import _Problem
    T = 80
    fam = make_family("heavy_ball", T)
    w = np.linspace(0, 1, T + 1) ** 2
    problem = _Problem(fam, SPEC, Noise.gaussian(4), T, w, batch_budget=5.0 * T, batch_knots=5)
    rng = np.random.default_rng(1)
    x = np.concatenate([fam.start, 0.3 * rng.standard_normal(5)])
    J, dx, _, nz = problem.gradient(x)
    B = nz.batch_size
    assert np.sum(B) == pytest.approx(5.0 * T, rel=1e-12) and B.min() >= 1.0
    assert J == pytest.approx(problem.value(x), rel=1e-12)
    v = rng.standard_normal(x.size)
    assert dx @ v == pytest.approx(central(problem.value, x, v), rel=FD_RTOL)


def test_optimal_constant_sgd_matches_a_fine_grid_search():
    T = 200
    noise = Noise.gaussian(10)
    res = optimize_schedule("sgd", SPEC, noise, T)
    grid = np.linspace(0.5, 1.9, 1401)
    values = np.array([loss_curve(memsgd.gd(lr), SPEC, noise, T).loss[-1] for lr in grid])
    best = int(np.argmin(values))
    assert 0 < best < grid.size - 1   # an interior optimum
    assert res.success
    assert res.value <= values[best] * (1 + 1e-12)
    assert res.parameters["lr"] == pytest.approx(grid[best], abs=1e-3)   # grid spacing 1e-3


def test_optimum_is_a_local_minimum_in_every_direction():
    T = 150
    noise = Noise.gaussian(10)
    res = optimize_schedule("am1_power_law", SPEC, noise, T, max_iterations=300)
    fam = make_family("am1_power_law", T)
    interior = (res.x > fam.lower + 1e-6) & (res.x < fam.upper - 1e-6)

    def value(y):
        return loss_curve(fam.schedule(y), SPEC, noise, T).loss[-1]

    for j in np.flatnonzero(interior):
        e = np.zeros(fam.size)
        e[j] = 1e-3
        assert value(res.x + e) >= res.value * (1 - 1e-12) and value(res.x - e) >= res.value * (1 - 1e-12)
    assert res.value == pytest.approx(value(res.x), rel=1e-12)
    assert res.value < res.start_value


def test_diverging_trial_points_are_rejected_never_returned():
    # SGD's first L-BFGS-B step overshoots into divergence (lr past the stability edge).
    spec = Spectrum.power_law(2.0, 1.0, head=64)
    noise = Noise.gaussian(10)
    res = optimize_schedule("sgd", spec, noise, 200)
    assert res.rejected >= 1
    curve = loss_curve(res.schedule, spec, noise, 200)
    assert curve.diverged_at is None and np.all(np.isfinite(res.loss))
    assert res.value == pytest.approx(curve.loss[-1], rel=1e-12)
    assert res.success and res.value < res.start_value


def test_every_start_diverging_is_a_value_error():
    with pytest.raises(ValueError, match="every start diverges.*lr in \\[3, 5\\]"):
        optimize_schedule("sgd", SPEC, Noise.gaussian(10), 100, bounds={"lr": (3.0, 5.0)})


def test_a_diverging_start_is_replaced_by_a_stable_one():
    res = optimize_schedule("sgd", SPEC, Noise.gaussian(10), 100, start={"lr": 5.0})   # lambda_max = 1
    assert math.isfinite(res.start_value) and res.schedule.at(0).alpha < 2.0


def test_free_sgd_beats_the_best_constant_learning_rate():
    T = 300
    noise = Noise.gaussian(10)
    const = optimize_schedule("sgd", SPEC, noise, T)
    free = optimize_schedule("free_sgd", SPEC, noise, T, knots=8, start={"lr": const.parameters["lr"]},
                             max_iterations=60)
    assert free.value < const.value * 0.99
    assert free.value == pytest.approx(loss_curve(free.schedule, SPEC, noise, T).loss[-1], rel=1e-12)


def test_free_memory1_start_sampled_from_a_schedule():
    # A schedule whose log lr, log(1 - beta), log kick are linear in log(1 + t) is reproduced exactly.
    T = 100
    t = np.arange(T, dtype=float)
    lr, omb, kick = 0.1 * (1 + t) ** -0.5, 0.5 * (1 + t) ** -1.0, np.full(T, 0.8)
    beta = 1 - omb
    sched = Schedule.from_arrays(lr + kick, beta[:, None], lr[:, None], beta[:, None, None])
    fam = make_family("free_memory1", T, knots=7, start=sched)
    got = fam.arrays(fam.start, np.arange(T))
    for a, b in zip(got, sched.parameters(T)):
        np.testing.assert_allclose(np.reshape(a, b.shape), b, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="AM1 form"):
        make_family("free_memory1", T, start=memsgd.schedules.constant(memsgd.nesterov(0.1, 0.5)))


@pytest.mark.parametrize("name", ["free_sgd", "free_memory1"])
def test_ends_spacing_gradient_and_exact_cooldown(name):
    """spacing="ends": knots equally spaced in u = log(1 + t) - log(T - t). The fast chain rule
    against finite differences of the engine's loss; a cooldown lr_t = a ((1 + t)/(T - t))^-p is
    linear in u, so sampling it at the knots reproduces it at every step; knot_steps inverts u."""
    T = 80
    fam = make_family(name, T, knots=6, spacing="ends")
    rng = np.random.default_rng(5)
    x = fam.start + 0.1 * rng.standard_normal(fam.size)
    J, dx = family_gradient(fam, x, SPEC, Noise.gaussian(10, label_noise=0.3), T)

    def value(y):
        return loss_curve(fam.schedule(y), SPEC, Noise.gaussian(10, label_noise=0.3), T).loss[-1]

    assert J == pytest.approx(value(x), rel=1e-12)
    v = rng.standard_normal(fam.size)
    assert dx @ v == pytest.approx(central(value, x, v), rel=FD_RTOL)
    t = np.arange(T, dtype=float)
    lr = 0.2 * ((1 + t) / (T - t)) ** -0.7
    fam = make_family("free_sgd", T, knots=5, spacing="ends", start=Schedule.from_arrays(
        lr, np.zeros((T, 0)), np.zeros((T, 0)), np.zeros((T, 0, 0))))
    np.testing.assert_allclose(fam.arrays(fam.start, np.arange(T))[0], lr, rtol=1e-12)
    ks = fam.natural(fam.start)["knot_steps"]
    assert ks[0] == pytest.approx(0.0, abs=1e-12) and ks[-1] == pytest.approx(T - 1, rel=1e-12)
    u = np.log1p(ks) - np.log(T - ks)
    np.testing.assert_allclose(np.diff(u), np.diff(u)[0], rtol=1e-12)
    with pytest.raises(ValueError, match="spacing must be one of"):
        make_family("free_sgd", T, spacing="linear")
    with pytest.raises(ValueError, match="spacing must be one of"):
        optimize_schedule("free_sgd", SPEC, Noise.gaussian(10), T, spacing="cosine")


def test_batch_budget_keeps_the_budget_and_does_not_lose():
    T = 100
    res = optimize_schedule("sgd", SPEC, Noise.gaussian(1), T, batch_budget=4.0 * T, batch_knots=4,
                            max_iterations=40)
    assert np.sum(res.batch_size) == pytest.approx(4.0 * T, rel=1e-12) and res.batch_size.min() >= 1.0
    assert res.value <= res.start_value


def test_results_pickle():
    T = 50
    for name in ("am1_power_law", "free_memory1", "dana_decaying"):
        res = optimize_schedule(name, SPEC, Noise.gaussian(10), T, knots=4, max_iterations=3)
        clone = pickle.loads(pickle.dumps(res.schedule))
        for a, b in zip(clone.parameters(T), res.schedule.parameters(T)):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"family": "adam"}, ValueError, "family must be one of"),
    ({"family": 3}, TypeError, "family must be a name"),
    ({"start": {"momentum": 0.5}}, ValueError, "unknown parameter"),
    ({"bounds": {"lr": (2.0, 1.0)}}, ValueError, "low <= high"),
    ({"bounds": {"lr": (0.0, 1.0)}}, ValueError, "log scale"),
    ({"weights": np.ones(3)}, ValueError, "length steps"),
    ({"weights": -np.ones(51)}, ValueError, ">= 0"),
    ({"weights": np.zeros(51)}, ValueError, "positive"),
    ({"batch_budget": 40.0}, ValueError, "batch_budget"),
    ({"starts": 0}, ValueError, "starts"),
    ({"knots": 1, "family": "free_sgd"}, ValueError, "knots"),
    ({"knots": 10**6, "family": "free_sgd"}, ValueError, r"knots must be in \[2, steps\]"),   # issue 18.13
    ({"knots": 51, "family": "free_memory1"}, ValueError, "knots"),
    ({"batch_budget": 400.0, "batch_knots": 51}, ValueError, r"batch_knots must be in \[1, steps\]"),
    ({"family": "free_sgd", "start": {"lr": [0.1, np.nan]}}, ValueError, "finite"),
    ({"family": "free_sgd", "knots": 4, "start": {"lr": [0.1, 0.2]}}, ValueError, "knot values"),
    ({"family": "free_sgd", "start": {"momentum": 0.5}}, ValueError, "unknown channel"),
    ({"start": {"lr": float("inf")}}, ValueError, "finite"),
])
def test_bad_arguments(kwargs, error, match):
    args = {"family": "sgd", **kwargs}
    family = args.pop("family")
    with pytest.raises(error, match=match):
        optimize_schedule(family, SPEC, Noise.gaussian(10), 50, **args)


def test_family_object_with_start_is_refused():
    fam = make_family("sgd", 50)
    with pytest.raises(ValueError, match="make_family"):
        optimize_schedule(fam, SPEC, Noise.gaussian(10), 50, start={"lr": 0.1})


# --- issue 18.7 / 18.13: optimize_schedule's refusals come first and say what they are ---------

def test_bounds_that_fix_every_variable_return_that_point():
    # scipy reports fixed variables without ``nit``: this raised AttributeError: nit
    res = optimize_schedule("sgd", SPEC, Noise.gaussian(10), 50, bounds={"lr": (0.5, 0.5)})
    assert res.parameters == {"lr": 0.5} and res.iterations == 0 and res.success
    assert res.value == pytest.approx(loss_curve(memsgd.gd(0.5), SPEC, Noise.gaussian(10), 50).loss[-1], rel=1e-12)


def test_knots_at_most_steps_in_make_family():
    assert make_family("free_sgd", 50, knots=50).size == 50
    with pytest.raises(ValueError, match="knots must be in"):
        make_family("free_sgd", 50, knots=51)


def test_a_horizon_too_large_is_refused_before_any_allocation():
    # used to allocate the (T+1,) weights first: numpy's MemoryError (or the OOM killer)
    for family in ("sgd", "free_memory1"):
        with pytest.raises(ValueError, match="physical memory"):
            optimize_schedule(family, SPEC, Noise.gaussian(10), 10**12)
    with pytest.raises(ValueError, match="physical memory"):
        family_gradient(make_family("sgd", 10**12), [0.0], SPEC, Noise.gaussian(10), 10**12)


def test_memory_refusal_is_not_reported_as_divergence(monkeypatch):
    # Physical memory that fits the forward runs (~0.25 MB) but not the gradient runs (~0.65 MB):
    # the refusal inside loss_gradient was swallowed as a diverged point and reported as
    # "no evaluation of family sgd gave a finite gradient".
    from memsgd import _core
    monkeypatch.setattr(_core, "physical_memory", lambda: 350e3)
    loss_curve(memsgd.gd(0.1), SPEC, Noise.gaussian(10), 10**4)          # the forward run fits
    with pytest.raises(ValueError, match="physical memory"):
        optimize_schedule("sgd", SPEC, Noise.gaussian(10), 10**4)
    with pytest.raises(ValueError, match="physical memory"):
        family_gradient(make_family("sgd", 10**4), [math.log(0.1)], SPEC, Noise.gaussian(10), 10**4)


def test_a_refusal_inside_the_run_propagates(monkeypatch):
    # Only building the inputs at x may fail quietly (an invalid point); a refusal of the run itself
    # is raised as it is, not turned into "every start diverges".
    import memsgd.design as design

    def refuse(*args, **kwargs):
        raise ValueError("steps too large: the run needs more than this machine's physical memory")
    monkeypatch.setattr(design, "loss_curve", refuse)
    with pytest.raises(ValueError, match="physical memory"):
        optimize_schedule("sgd", SPEC, Noise.gaussian(10), 50)
