"""Schedules (docs/math.md §7): per-step parameters against independently written formulas, the exact
engine on schedules against the plain-numpy reference, and the textbook updates of the named
methods (schedule-free SGD, Brakhage's nu-method) against the matrix form.

Tolerances: parameters 1e-14 relative (same formula, different evaluation order);
loss_curve vs tests/reference.mean_loss 1e-12 relative (docs/math.md §4); textbook trajectories
1e-14 relative to the iterate scale (two roundings of the same arithmetic).
"""
import numpy as np
import pytest
from scipy.special import roots_jacobi

import memsgd
from memsgd import Noise, Spectrum, loss_curve, schedules
from memsgd.schedules import Schedule

from . import reference

# ---------------------------------------------------------------------------------------------
# independent transcriptions of the formulas (scalar Python, one step at a time)


def jacobi_mu_omega(k, nu):
    """Brakhage's nu-method, step k >= 1 (docs/math.md §7)."""
    if k == 1:
        return 0.0, (4 * nu + 2) / (4 * nu + 1)
    mu = (k - 1) * (2 * k - 3) * (2 * k + 2 * nu - 1) / ((k + 2 * nu - 1) * (2 * k + 4 * nu - 1) * (2 * k + 2 * nu - 3))
    omega = 4 * (2 * k + 2 * nu - 1) * (k + nu - 1) / ((k + 2 * nu - 1) * (2 * k + 4 * nu - 1))
    return mu, omega


def am1_lr_beta(t, kick, delta, gamma, t0):
    s = 1.0 + t / t0
    one_minus_beta = s ** (-gamma)
    alpha_eff = kick * s ** delta
    return (alpha_eff - kick) * one_minus_beta, 1.0 - one_minus_beta


def params_row(sched, t):
    alpha, b, c, D, e = sched.parameters(t + 1)
    return alpha[t], b[t], c[t], D[t], e[t]


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


# ---------------------------------------------------------------------------------------------
# parameters at t


@pytest.mark.parametrize("nu_b,lmax", [(0.5, 1.0), (0.25, 1.0), (1.7, 2.5)])
def test_jacobi_parameters_equal_formulas(nu_b, lmax):
    sched = schedules.jacobi_heavy_ball(nu_b, lambda_max=lmax)
    T = 300
    alpha, b, c, D, e = sched.parameters(T)
    assert sched.memory == 1
    for t in list(range(6)) + [17, 100, 299]:
        mu, omega = jacobi_mu_omega(t + 1, nu_b)
        # heavy ball with lr = omega / lambda_max and momentum mu: alpha = c = lr, b = D = mu, e = 0
        np.testing.assert_allclose([alpha[t], c[t, 0]], omega / lmax, rtol=1e-14, atol=0)
        np.testing.assert_allclose([b[t, 0], D[t, 0, 0]], mu, rtol=1e-14, atol=1e-300)
        assert e[t, 0] == 0.0
        algo = sched.at(t)
        np.testing.assert_allclose(algo.alpha, omega / lmax, rtol=1e-14)
        np.testing.assert_allclose(algo.D[0, 0], mu, rtol=1e-14, atol=1e-300)


def test_jacobi_no_warning_at_singular_first_step():
    # nu_b = 1/2 makes the generic mu formula 0/0 at k = 1; the schedule uses mu_1 = 0 there
    with np.errstate(all="raise"):
        alpha, b, *_ = schedules.jacobi_heavy_ball(0.5).parameters(3)
    assert b[0, 0] == 0.0 and np.isclose(alpha[0], 4.0 / 3.0, rtol=1e-15)


def test_jacobi_residual_polynomials_are_jacobi_orthogonal():
    """Independent check of the coefficients: the nu-method's residual polynomials
    p_k(lambda) (p_0 = 1, p_{k} = p_{k-1} + mu_k (p_{k-1} - p_{k-2}) - omega_k lambda p_{k-1})
    are orthogonal on [0, 1] for the weight lambda^(2 nu - 1/2) (1 - lambda)^(-1/2)
    (Brakhage 1987; Hanke 1991). Gauss-Jacobi quadrature is exact for these degrees."""
    nu = 0.7
    sched = schedules.jacobi_heavy_ball(nu)
    N = 10
    alpha, b, c, D, e = sched.parameters(N)
    x, w = roots_jacobi(40, -0.5, 2 * nu - 0.5)  # weight (1-x)^-1/2 (1+x)^(2nu-1/2) on [-1, 1]
    lam = (1 + x) / 2
    P = [np.ones_like(lam)]
    prev = P[0]
    for t in range(N):  # heavy ball residual recursion with the schedule's own parameters
        p = P[-1] + b[t, 0] * (P[-1] - prev) - alpha[t] * lam * P[-1]
        prev = P[-1]
        P.append(p)
    P = np.array(P)
    G = (P * w) @ P.T
    off = G - np.diag(np.diag(G))
    assert np.max(np.abs(off)) <= 1e-12 * np.max(np.diag(G))
    # and a wrong weight exponent is visibly not orthogonal (the test has teeth)
    x2, w2 = roots_jacobi(40, -0.5, 2 * nu)
    lam2 = (1 + x2) / 2
    Q = [np.ones_like(lam2)]
    prev = Q[0]
    for t in range(N):
        q = Q[-1] + b[t, 0] * (Q[-1] - prev) - alpha[t] * lam2 * Q[-1]
        prev = Q[-1]
        Q.append(q)
    Q = np.array(Q)
    G2 = (Q * w2) @ Q.T
    assert np.max(np.abs(G2 - np.diag(np.diag(G2)))) > 1e-3 * np.max(np.diag(G2))


@pytest.mark.parametrize("kick,delta,gamma,t0", [(1.0, 0.3, 1.0, 10.0), (0.5, 0.0, 0.7, 3.0), (2.0, 0.9, 1.3, 100.0)])
def test_am1_power_law_parameters_equal_formulas(kick, delta, gamma, t0):
    sched = schedules.am1_power_law(kick, delta, gamma, t0)
    T = 5000
    alpha, b, c, D, e = sched.parameters(T)
    for t in [0, 1, 2, 9, 10, 11, 123, 4999]:
        lr, beta = am1_lr_beta(t, kick, delta, gamma, t0)
        # AM1 preset row of docs/math.md §2: alpha = lr + eta, b = beta, c = lr, D = beta, e = 0
        np.testing.assert_allclose(alpha[t], lr + kick, rtol=1e-14)
        np.testing.assert_allclose(c[t, 0], lr, rtol=1e-13, atol=1e-300)
        np.testing.assert_allclose([b[t, 0], D[t, 0, 0]], beta, rtol=1e-14, atol=1e-300)
        assert e[t, 0] == 0.0
        # effective learning rate of the momentary algorithm is kick * s^delta
        s = 1 + t / t0
        if t > 0:
            np.testing.assert_allclose(sched.at(t).alpha_eff, kick * s ** delta, rtol=1e-12)
        # and equals the AM1 preset with these (lr, momentum, kick)
        if t > 0 and lr > 0:
            preset = memsgd.am1(lr, beta, kick)
            np.testing.assert_allclose(preset.alpha, sched.at(t).alpha, rtol=1e-14)
            np.testing.assert_allclose(preset.c, sched.at(t).c, rtol=1e-14)


@pytest.mark.parametrize("lr,beta", [(0.5, 0.9), (2.0, 0.0), (1.0, 1.0)])
def test_schedule_free_parameters_equal_formulas(lr, beta):
    sched = schedules.schedule_free_sgd(lr, beta)
    alpha, b, c, D, e = sched.parameters(50)
    for t in range(50):
        ct = 1.0 / (t + 2)
        np.testing.assert_allclose(alpha[t], ct * lr, rtol=1e-15)
        np.testing.assert_allclose(b[t, 0], ct, rtol=1e-15)
        np.testing.assert_allclose(c[t, 0], (1 - ct) * lr, rtol=1e-15)
        np.testing.assert_allclose(D[t, 0, 0], 1 - ct, rtol=1e-15)
        assert e[t, 0] == 1 - beta
        # the momentary algorithm has alpha_eff = lr (u is an exact moving average of -lr grad)
        np.testing.assert_allclose(sched.at(t).alpha_eff, lr, rtol=1e-14)


def test_constant_and_from_arrays():
    algo = memsgd.nesterov(0.3, 0.8)
    sched = schedules.constant(algo)
    alpha, b, c, D, e = sched.parameters(4)
    assert np.all(alpha == algo.alpha) and np.all(b[:, 0] == algo.b[0]) and np.all(e[:, 0] == algo.e[0])
    rng = np.random.default_rng(0)
    T, M = 7, 2
    arrs = (rng.random(T), rng.random((T, M)), rng.random((T, M)), rng.random((T, M, M)), rng.random((T, M)))
    fa = Schedule.from_arrays(*arrs)
    assert fa.memory == M and fa.length == T
    for got, want in zip(fa.parameters(T), arrs):
        assert np.array_equal(got, want)
    a3 = fa.at(3)
    assert a3.alpha == arrs[0][3] and np.array_equal(a3.D, arrs[3][3])
    with pytest.raises(ValueError, match="steps"):
        fa.parameters(T + 1)
    with pytest.raises(ValueError, match="t must be"):
        fa.at(T)


@pytest.mark.parametrize("call,name", [
    (lambda: schedules.jacobi_heavy_ball(0.0), "nu_b"),
    (lambda: schedules.jacobi_heavy_ball(-1.0), "nu_b"),
    (lambda: schedules.jacobi_heavy_ball(0.5, lambda_max=0.0), "lambda_max"),
    (lambda: schedules.am1_power_law(0.0, 0.3), "kick"),
    (lambda: schedules.am1_power_law(1.0, -0.1), "delta"),
    (lambda: schedules.am1_power_law(1.0, 0.3, gamma=0.0), "gamma"),
    (lambda: schedules.am1_power_law(1.0, 0.3, t0=-1.0), "t0"),
    (lambda: schedules.am1_power_law(1.0, float("nan")), "delta"),
    (lambda: schedules.schedule_free_sgd(0.0, 0.9), "lr"),
    (lambda: schedules.schedule_free_sgd(1.0, float("inf")), "beta"),
    (lambda: Schedule.from_arrays([1.0, 2.0], [[0.1]], [[0.1]], [[[0.5]]]), "b"),
    (lambda: Schedule.from_arrays([1.0], [[0.1]], [[0.1, 0.2]], [[[0.5]]]), "c"),
    (lambda: Schedule.from_arrays([1.0], [[0.1]], [[0.1]], [[0.5]]), "D"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ---------------------------------------------------------------------------------------------
# exact engine on schedules vs the plain-numpy reference


def _problems():
    rng = np.random.default_rng(3)
    K = 25
    lam = np.sort(rng.uniform(0.01, 1.0, K))[::-1]
    c2 = rng.uniform(0.1, 2.0, K)
    finite = Spectrum(lam, c2)
    infinite = Spectrum.power_law(2.0, 1.0, head=32)
    return finite, infinite


SCHEDULES = {
    "jacobi": schedules.jacobi_heavy_ball(0.5),
    "am1": schedules.am1_power_law(1.0, 0.45, 1.0, 5.0),
    "schedule_free": schedules.schedule_free_sgd(0.8, 0.9),
    "constant_nesterov": schedules.constant(memsgd.nesterov(0.2, 0.9)),
}


def _random_m2_schedule(T):
    rng = np.random.default_rng(11)
    return Schedule.from_arrays(0.3 * rng.random(T), 0.3 * rng.random((T, 2)), 0.3 * rng.random((T, 2)),
                                0.4 * rng.random((T, 2, 2)), 0.5 * rng.random((T, 2)))


@pytest.mark.parametrize("which", list(SCHEDULES) + ["from_arrays_m2"])
@pytest.mark.parametrize("noise", [Noise.gaussian(4), Noise.none(), Noise(3, tau1=0.7, tau2=0.5)],
                         ids=["gaussian", "none", "custom"])
def test_loss_curve_on_schedule_equals_reference(which, noise):
    steps = 40
    sched = _random_m2_schedule(steps) if which == "from_arrays_m2" else SCHEDULES[which]
    for spec in _problems():
        got = loss_curve(sched, spec, noise, steps)

        def params_at(t):
            a = sched.at(min(t, steps - 1))
            return a.alpha, a.b, a.c, a.D, a.e

        want, _ = reference.mean_loss(params_at, spec.eigenvalues, spec.coefficients2, spec.weights,
                                      noise.tau1, noise.tau2, noise.batch_size, steps)
        if got.diverged:  # Jacobi + noise on these tiny problems may blow up; compare up to there
            n = got.diverged_at
            assert not np.all(np.isfinite(want[n:])) or np.any(want[n:] > 1e30)
        else:
            n = steps + 1
        assert rel(got.loss[:n], want[:n]) <= 1e-12, which


def test_loss_curve_schedule_vs_reference_long_am1():
    """A longer AM1 run (beta -> 1, lr -> 0 regime) on the infinite power law, B = 10."""
    spec = Spectrum.power_law(2.0, 1.0, head=64)
    sched = schedules.am1_power_law(1.0, 0.45)
    steps = 400
    got = loss_curve(sched, spec, Noise.gaussian(10), steps).loss
    alpha, b, c, D, e = sched.parameters(steps)

    def params_at(t):
        t = min(t, steps - 1)
        return alpha[t], b[t], c[t], D[t], e[t]

    want, _ = reference.mean_loss(params_at, spec.eigenvalues, spec.coefficients2, spec.weights, 1.0, -1.0, 10, steps)
    assert rel(got, want) <= 1e-12


# ---------------------------------------------------------------------------------------------
# textbook updates


def _random_quadratic(d, seed):
    rng = np.random.default_rng(seed)
    Qm, _ = np.linalg.qr(rng.standard_normal((d, d)))
    H = Qm @ np.diag(rng.uniform(0.05, 1.0, d)) @ Qm.T
    return H, rng.standard_normal(d)


@pytest.mark.parametrize("lr,beta", [(0.7, 0.9), (1.5, 0.5), (0.3, 0.0)])
def test_schedule_free_reproduces_textbook_update(lr, beta):
    """Defazio et al. (2024), schedule-free SGD:
    y_t = (1 - beta) z_t + beta x_t,  z_{t+1} = z_t - lr grad(y_t),
    x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1},  c_{t+1} = 1/(t+2),  x_0 = z_0."""
    d, steps = 12, 200
    H, w_star = _random_quadratic(d, 5)
    grad = lambda p: H @ (p - w_star)  # noqa: E731
    x = np.zeros(d)
    z = np.zeros(d)
    xs, zs = [x.copy()], [z.copy()]
    for t in range(steps):
        y = (1 - beta) * z + beta * x
        z = z - lr * grad(y)
        c = 1.0 / (t + 2)
        x = (1 - c) * x + c * z
        xs.append(x.copy())
        zs.append(z.copy())
    xs, zs = np.array(xs), np.array(zs)

    sched = schedules.schedule_free_sgd(lr, beta)
    w = np.zeros(d)
    u = np.zeros((1, d))
    ws, us = [w.copy()], [u[0].copy()]
    for t in range(steps):  # matrix form (P.3) with the schedule's parameters
        a = sched.at(t)
        g = grad(w + a.e @ u)
        w, u = w + a.b @ u - a.alpha * g, a.D @ u - np.outer(a.c, g)
        ws.append(w.copy())
        us.append(u[0].copy())
    ws, us = np.array(ws), np.array(us)
    scale = max(1.0, np.abs(xs).max(), np.abs(zs).max())
    assert np.max(np.abs(ws - xs)) <= 1e-14 * scale * 10  # 10 ulps of the iterate scale over 200 steps
    assert np.max(np.abs((ws + us) - zs)) <= 1e-14 * scale * 10  # z = w + u
    # the trusted reference stepping agrees too
    ref = reference.run_matrix_form(lambda t: (lambda a: (a.alpha, a.b, a.c, a.D, a.e))(sched.at(t)), H, w_star, steps)
    assert np.max(np.abs(ref - xs)) <= 1e-14 * scale * 10


def test_schedule_free_tolerance_is_tight():
    """Sharper statement of the 1e-14 claim over a short run: every step's x agrees to 1e-14
    relative to max |x| (no accumulated drift allowance)."""
    d, steps, lr, beta = 8, 30, 0.9, 0.8
    H, w_star = _random_quadratic(d, 9)
    x = np.zeros(d)
    z = np.zeros(d)
    sched = schedules.schedule_free_sgd(lr, beta)
    w = np.zeros(d)
    u = np.zeros((1, d))
    for t in range(steps):
        y = (1 - beta) * z + beta * x
        z = z - lr * H @ (y - w_star)
        c = 1.0 / (t + 2)
        x = (1 - c) * x + c * z
        a = sched.at(t)
        g = H @ (w + a.e @ u - w_star)
        w, u = w + a.b @ u - a.alpha * g, a.D @ u - np.outer(a.c, g)
        assert np.max(np.abs(w - x)) <= 1e-14 * max(1.0, np.abs(x).max())


def test_jacobi_reproduces_nu_method_iteration():
    """Brakhage's nu-method x_k = x_{k-1} + mu_k (x_{k-1} - x_{k-2}) + omega_k (b - A x_{k-1}) / lambda_max."""
    d, steps, nu, lmax = 10, 60, 0.8, 1.3
    H, w_star = _random_quadratic(d, 2)
    H = H * (lmax / np.linalg.eigvalsh(H).max())
    x_prev = x = np.zeros(d)
    xs = [x.copy()]
    for k in range(1, steps + 1):
        mu, om = jacobi_mu_omega(k, nu)
        x, x_prev = x + mu * (x - x_prev) - om / lmax * H @ (x - w_star), x
        xs.append(x.copy())
    sched = schedules.jacobi_heavy_ball(nu, lambda_max=lmax)
    ref = reference.run_matrix_form(lambda t: (lambda a: (a.alpha, a.b, a.c, a.D, a.e))(sched.at(t)), H, w_star, steps)
    assert np.max(np.abs(ref - np.array(xs))) <= 1e-13 * max(1.0, np.abs(w_star).max())


# --- issue 18 item 18: a schedule's step sizes need the problem's scale --------------------------

def test_am1_power_law_kick_is_in_units_of_lambda_max():
    # The mean-loss recursion depends on the step sizes only through alpha * lambda (and L_0): a
    # problem scaled by c (lambda -> c lambda, c_k^2 -> c_k^2 / c) run with lambda_max = c gives
    # the unscaled problem's curve. (Not the code's formula: a property of the dynamics.)
    base = Spectrum.power_law(2.0, 1.0, size=300)
    for c in (2.9, 0.01, 1e6):
        scaled = Spectrum(c * base.eigenvalues, base.coefficients2 / c)
        ref = loss_curve(schedules.am1_power_law(0.8, 0.4, 1.0, 10.0), base, Noise.gaussian(10), 3000).loss
        got = loss_curve(schedules.am1_power_law(0.8, 0.4, 1.0, 10.0, lambda_max=c), scaled, Noise.gaussian(10),
                         3000).loss
        np.testing.assert_allclose(got, ref, rtol=1e-11)


def test_schedule_built_for_another_scale_warns_when_it_diverges():
    # the README's AM1 schedule on a user spectrum with lambda_max = 2.9 diverged silently (step 34)
    problem = Spectrum.power_law(2.0, 1.0, scale=2.9)
    with pytest.warns(UserWarning, match=r"lambda_max = 1, but the spectrum's largest eigenvalue is 2\.9: build "
                                         r"it with lambda_max=spectrum\.lambda_max"):
        curve = loss_curve(schedules.am1_power_law(kick=1.0, delta=0.45), problem, Noise.gaussian(10), 10 ** 4)
    assert curve.diverged_at is not None and curve.diverged_at < 100
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fixed = loss_curve(schedules.am1_power_law(kick=1.0, delta=0.45, lambda_max=problem.lambda_max), problem,
                           Noise.gaussian(10), 10 ** 4)
        # a diverging schedule on the scale it was built for, or one that states no scale: no hint
        assert loss_curve(schedules.am1_power_law(kick=3.0, delta=0.45, lambda_max=2.9), problem,
                          Noise.gaussian(10), 100).diverged_at is not None
        assert loss_curve(Schedule.from_arrays(*schedules.am1_power_law(3.0, 0.45).parameters(100)), problem,
                          Noise.gaussian(10), 100).diverged_at is not None
    assert fixed.diverged_at is None


def test_schedules_record_the_scale_they_were_built_for():
    assert schedules.am1_power_law(1.0, 0.4, lambda_max=2.5).lambda_max == 2.5
    assert schedules.am1_power_law(1.0, 0.4).lambda_max == 1.0
    assert schedules.jacobi_heavy_ball(1.0, 3.0).lambda_max == 3.0
    assert schedules.schedule_free_sgd(1.0, 0.9).lambda_max is None
    assert "lambda_max=2.5" in repr(schedules.am1_power_law(1.0, 0.4, lambda_max=2.5))
    with pytest.raises(ValueError, match="lambda_max must be > 0"):
        schedules.am1_power_law(1.0, 0.4, lambda_max=0.0)


def test_cli_am1_power_law_takes_the_scale_of_the_problem(capsys):
    from memsgd.cli import main
    assert main(["curve", "--algo", "am1_power_law", "--scale", "2.9", "--steps", "2000", "--json"]) == 0
    import json
    out = json.loads(capsys.readouterr().out)
    assert out["diverged_at"] is None and "lambda_max=2.9" in out["algorithm"]
