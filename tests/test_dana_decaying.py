"""schedules.dana_decaying against the DANA authors' update rule, transcribed independently."""
import copy
import pickle

import numpy as np
import pytest

from memsgd import schedules

from . import reference


def quadratic(d=6, seed=0):
    return reference.random_quadratic(d, seed)


def dana_authors_rule(H, w_star, steps, g1, g2, g3, delta, power):
    """The authors' optax transformation: y <- y (1 - Delta(count)) + g1(count) g;
    update = -(g2(count) g + g3(count) y); each schedule is init * (1 + count/time_scale)^power."""
    w = np.zeros_like(w_star)
    y = np.zeros_like(w_star)
    out = [w.copy()]
    for count in range(steps):
        Delta = 1.0 * (1 + count / delta) ** -1.0
        g3_now = g3 * (1 + count / 1) ** (-power)
        grad = H @ (w - w_star)
        y = y * (1 - Delta) + g1 * grad
        w = w - (g2 * grad + g3_now * y)
        out.append(w.copy())
    return np.array(out)


@pytest.mark.parametrize("g1, g2, g3, delta, power", [
    (1.0, 0.3, 0.5, 5.0, 0.5),      # the authors' choices: g1 = 1, power = 1/(2 alpha)
    (0.7, 0.1, 1.2, 2.5, 0.8),
])
def test_matches_the_authors_update_rule(g1, g2, g3, delta, power):
    H, w_star = quadratic()
    steps = 300
    sched = schedules.dana_decaying(g2, g3, delta, power, g1=g1)
    arrays = sched.parameters(steps)
    ours = reference.run_matrix_form(lambda t: tuple(a[t] for a in arrays), H, w_star, steps)
    theirs = dana_authors_rule(H, w_star, steps, g1, g2, g3, delta, power)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-14 * np.abs(theirs).max())


def test_is_am1_with_decaying_momentum():
    # v = y / g1: v+ = beta v + g, w+ = w - lr v+ - kick g with beta = 1 - Delta, lr = g1 g3_t, kick = g2.
    H, w_star = quadratic(seed=1)
    g1, g2, g3, delta, power, steps = 0.8, 0.2, 0.9, 4.0, 0.5, 200
    w, v = np.zeros_like(w_star), np.zeros_like(w_star)
    traj = [w.copy()]
    for t in range(steps):
        beta = 1 - 1 / (1 + t / delta)
        lr = g1 * g3 * (1 + t) ** (-power)
        grad = H @ (w - w_star)
        v = beta * v + grad
        w = w - lr * v - g2 * grad
        traj.append(w.copy())
    arrays = schedules.dana_decaying(g2, g3, delta, power, g1=g1).parameters(steps)
    ours = reference.run_matrix_form(lambda t: tuple(a[t] for a in arrays), H, w_star, steps)
    np.testing.assert_allclose(ours, np.array(traj), rtol=0, atol=1e-13 * np.abs(traj).max())


def test_effective_learning_rate_grows_like_t_to_one_minus_power():
    sched = schedules.dana_decaying(0.2, 0.5, 4.0, 0.5)
    t = np.array([10**3, 10**5])
    eff = [sched.at(int(s)).alpha_eff for s in t]
    # alpha_eff = g2 + g1 g3_t / Delta_t = 0.2 + 0.5 (1+t)^-0.5 (1 + t/4)
    np.testing.assert_allclose(eff, 0.2 + 0.5 * (1 + t) ** -0.5 * (1 + t / 4), rtol=1e-12)


def test_pickles_and_deep_copies():
    sched = schedules.dana_decaying(0.2, 0.5, 4.0, 0.5)
    for clone in (pickle.loads(pickle.dumps(sched)), copy.deepcopy(sched)):
        for a, b in zip(clone.parameters(50), sched.parameters(50)):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("kwargs, match", [
    ({"g2": 0.1, "g3": 0.1, "delta": 0.0, "power": 0.5}, "delta"),
    ({"g2": 0.1, "g3": float("nan"), "delta": 1.0, "power": 0.5}, "g3"),
    ({"g2": 0.1, "g3": 0.1, "delta": 1.0, "power": 0.5, "g1": -1.0}, "g1"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        schedules.dana_decaying(**kwargs)
