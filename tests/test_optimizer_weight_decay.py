"""The optimizers' weight_decay means the engine's (issue 20 item 5): coupled L2, the oracle adds
rho * (weights at the gradient point = the parameters). Checked three ways: against torch.optim.SGD
and optax (float64 iterates, 1e-12); against the engine's exact noise-free loss curve (training a
linear model on a population quadratic, 1e-10 relative); and by Monte Carlo (torch training on
Gaussian data with noisy labels against loss_curve, within sampling error)."""
import numpy as np
import pytest

import memsgd
from memsgd import Noise, Schedule, Spectrum, loss_curve

from ._extras import need
from .reference import run_matrix_form

torch = need("torch")

from memsgd.torch import AM1, MemorySGD  # noqa: E402

LAM = np.array([1.0, 0.6, 0.25, 0.1, 0.03, 0.01])
C2 = np.array([1.0, 0.5, 2.0, 1.0, 3.0, 0.5])
W_STAR = np.sqrt(C2)
SPECTRUM = Spectrum(LAM, C2)
T = 80
ITERATE_TOL = 1e-12
LOSS_RTOL = 1e-10
RHO = 0.05
# per-step weight decay with zeros in it (the step without decay takes another code path)
RHO_T = np.where(np.arange(T) % 5 == 2, 0.0, np.linspace(0.1, 0.01, T))


def am1_schedule(steps=T, rho=RHO_T):
    """AM1-type (b = D, e = 0) with constant lr/momentum/kick and per-step weight decay."""
    lr, beta, kick = 0.2, 0.8, 0.3
    return Schedule.from_arrays(np.full(steps, lr + kick), np.full((steps, 1), beta), np.full((steps, 1), lr),
                                np.full((steps, 1, 1), beta), weight_decay=rho)


def torch_iterates(make_opt, before_step=None, dtype=torch.float64):
    p = torch.nn.Parameter(torch.zeros(LAM.size, dtype=dtype))
    lam, ws = torch.tensor(LAM, dtype=dtype), torch.tensor(W_STAR, dtype=dtype)
    opt = make_opt([p])
    out = [p.detach().clone()]
    for t in range(T):
        if before_step:
            before_step(opt, t)
        opt.zero_grad()
        (0.5 * (lam * (p - ws) ** 2).sum()).backward()
        opt.step()
        out.append(p.detach().clone())
    return torch.stack(out).numpy()


def losses(iterates):
    return 0.5 * ((iterates - W_STAR) ** 2) @ LAM


def set_weight_decay(opt, t):
    opt.param_groups[0]["weight_decay"] = float(RHO_T[t])


# -- against torch.optim.SGD -------------------------------------------------------------------

@pytest.mark.parametrize("impl", [dict(foreach=False), dict(foreach=True), dict(fused=True)], ids=str)
def test_torch_optimizers_decay_as_torch_sgd(impl):
    sgd = torch_iterates(lambda ps: torch.optim.SGD(ps, lr=0.3, momentum=0.8, weight_decay=RHO))
    algo = memsgd.heavy_ball(0.3, 0.8, weight_decay=RHO)
    for make in (lambda ps: AM1(ps, lr=0.3, momentum=0.8, kick=0.0, weight_decay=RHO, **impl),
                 lambda ps: MemorySGD.from_algorithm(ps, algo, **impl),          # takes the algorithm's own
                 lambda ps: MemorySGD(ps, 0.3, [0.8], [0.3], [[0.8]], weight_decay=RHO, **impl)):
        np.testing.assert_allclose(torch_iterates(make), sgd, rtol=0, atol=ITERATE_TOL)
    # the per-step weight decay of a schedule, as torch.optim.SGD with the group's weight_decay set each step
    sgd_t = torch_iterates(lambda ps: torch.optim.SGD(ps, lr=0.2, momentum=0.8), set_weight_decay)
    sched = Schedule.from_arrays(np.full(T, 0.2), np.full((T, 1), 0.8), np.full((T, 1), 0.2),
                                 np.full((T, 1, 1), 0.8), weight_decay=RHO_T)
    np.testing.assert_allclose(torch_iterates(lambda ps: AM1(ps, schedule=sched, **impl)), sgd_t,
                               rtol=0, atol=ITERATE_TOL)


def test_regression_from_algorithm_and_schedules_kept_their_weight_decay():
    # before: MemorySGD.from_algorithm and AM1(schedule=) silently dropped the algorithm's weight decay
    algo = memsgd.heavy_ball(0.3, 0.8, weight_decay=0.2)
    plain = torch_iterates(lambda ps: MemorySGD.from_algorithm(ps, memsgd.heavy_ball(0.3, 0.8)))
    decayed = torch_iterates(lambda ps: MemorySGD.from_algorithm(ps, algo))
    assert np.max(np.abs(decayed - plain)) > 0.1
    np.testing.assert_allclose(losses(decayed), loss_curve(algo, SPECTRUM, Noise.none(), T).loss,
                               rtol=LOSS_RTOL)
    sched = am1_schedule()
    got = torch_iterates(lambda ps: AM1(ps, schedule=sched))
    np.testing.assert_allclose(losses(got), loss_curve(sched, SPECTRUM, Noise.none(), T).loss, rtol=LOSS_RTOL)


# -- against the engine: the exact curve of a linear model trained on the population quadratic ----

@pytest.mark.parametrize("case", ["am1", "memory2", "am1_schedule_per_step", "am1_schedule_constant"])
def test_torch_training_is_the_exact_weight_decay_curve(case):
    if case == "am1":
        algo, make = memsgd.am1(0.3, 0.8, 0.2, weight_decay=RHO), \
            (lambda ps: AM1(ps, lr=0.3, momentum=0.8, kick=0.2, weight_decay=RHO))
    elif case == "memory2":
        algo = memsgd.MemoryAlgorithm(0.4, [0.5, -0.2], [0.3, 0.1], [[0.6, 0.2], [-0.1, 0.5]], weight_decay=RHO)
        make = (lambda ps: MemorySGD.from_algorithm(ps, algo))
    elif case == "am1_schedule_per_step":
        algo = am1_schedule()
        make = (lambda ps: AM1(ps, schedule=algo))
    else:
        algo = am1_schedule(rho=RHO)
        make = (lambda ps: AM1(ps, schedule=algo))
    it = torch_iterates(make)
    if isinstance(algo, Schedule):
        params = algo.parameters(T)
        rho = algo.weight_decays(T)
        ref = run_matrix_form(lambda t: tuple(x[t] for x in params), np.diag(LAM), W_STAR, T, rho_at=lambda t: rho[t])
    else:
        ref = run_matrix_form(lambda t: algo.parameters(), np.diag(LAM), W_STAR, T, rho_at=lambda t: RHO)
    np.testing.assert_allclose(it, ref, rtol=0, atol=ITERATE_TOL)
    curve = loss_curve(algo, SPECTRUM, Noise.none(), T)
    np.testing.assert_allclose(curve.loss, losses(it), rtol=LOSS_RTOL, atol=0)
    # the decay is felt: without it the loss differs by far more than the tolerance
    assert np.max(np.abs(losses(it) / loss_curve(_without_decay(algo), SPECTRUM, Noise.none(), T).loss - 1)) > 1e-3


def _without_decay(algo):
    if isinstance(algo, Schedule):
        return Schedule.from_arrays(*algo.parameters(T))
    return memsgd.MemoryAlgorithm(*algo.parameters())


def test_weight_decay_floor_reached_by_torch_training():
    # noise-free with decay, the loss tends to 1/2 sum lam c2 (rho / (lam + rho))^2 (the decayed solution)
    rho = 0.2
    floor = 0.5 * np.sum(LAM * C2 * (rho / (LAM + rho)) ** 2)
    p = torch.nn.Parameter(torch.zeros(LAM.size, dtype=torch.float64))
    opt = AM1([p], lr=0.5, momentum=0.5, kick=0.0, weight_decay=rho)
    lam, ws = torch.tensor(LAM), torch.tensor(W_STAR)
    for _ in range(3000):
        opt.zero_grad()
        (0.5 * (lam * (p - ws) ** 2).sum()).backward()
        opt.step()
    got = 0.5 * float((lam * (p.detach() - ws) ** 2).sum())
    assert abs(got / floor - 1) < 1e-10
    engine = loss_curve(memsgd.am1(0.5, 0.5, 0.0, weight_decay=rho), SPECTRUM, Noise.none(), 3000).loss[-1]
    assert abs(engine / floor - 1) < 1e-10


# -- Monte Carlo: torch training on Gaussian data with noisy labels ------------------------------

Z_MAX = 4.5   # over ~30 correlated steps


@pytest.mark.parametrize("case", ["am1", "memory2", "am1_schedule_per_step"])
def test_torch_monte_carlo_matches_the_exact_curve(case):
    lam = np.array([1.0, 0.6, 0.3, 0.15, 0.05])
    c2 = np.random.default_rng(3).uniform(0.3, 1.0, lam.size)
    spec = Spectrum(lam, c2)
    steps, runs, batch, sigma2 = 30, 20000, 2, 0.5
    noise = Noise.gaussian(batch, label_noise=sigma2)
    rho_t = np.linspace(0.4, 0.0, steps)
    if case == "am1":
        algo = memsgd.am1(0.15, 0.5, 0.1, weight_decay=0.3)
        make = (lambda ps: AM1(ps, lr=0.15, momentum=0.5, kick=0.1, weight_decay=0.3))
    elif case == "memory2":
        algo = memsgd.MemoryAlgorithm(0.2, [0.4, -0.1], [0.2, 0.1], [[0.5, 0.1], [0.0, 0.4]], weight_decay=0.3)
        make = (lambda ps: MemorySGD.from_algorithm(ps, algo, fused=True))
    else:
        algo = Schedule.from_arrays(np.full(steps, 0.25), np.full((steps, 1), 0.5), np.full((steps, 1), 0.15),
                                    np.full((steps, 1, 1), 0.5), weight_decay=rho_t)
        make = (lambda ps: AM1(ps, schedule=algo))
    gen = torch.Generator().manual_seed(11)
    sqrt_lam, ws = torch.tensor(np.sqrt(lam)), torch.tensor(np.sqrt(c2))
    w = torch.nn.Parameter(torch.zeros(runs, lam.size, dtype=torch.float64))   # one row per independent run
    opt = make([w])
    L = np.empty((steps + 1, runs))
    for t in range(steps + 1):
        L[t] = 0.5 * (((w.detach() - ws) ** 2) @ torch.tensor(lam)).numpy()
        if t == steps:
            break
        x = torch.randn(runs, batch, lam.size, generator=gen, dtype=torch.float64) * sqrt_lam
        y = x @ ws + np.sqrt(sigma2) * torch.randn(runs, batch, generator=gen, dtype=torch.float64)
        opt.zero_grad()
        residual = torch.einsum("rbk,rk->rb", x, w) - y
        (0.5 * (residual ** 2).mean(dim=1).sum()).backward()     # each row: its own mini-batch loss
        opt.step()
    mean, se = L.mean(axis=1), L.std(axis=1, ddof=1) / np.sqrt(runs)
    exact = loss_curve(algo, spec, noise, steps).loss
    assert np.max(np.abs(mean[1:] - exact[1:]) / se[1:]) < Z_MAX
    plain = loss_curve(_without_decay_steps(algo, steps), spec, noise, steps).loss
    assert np.max(np.abs(mean[1:] - plain[1:]) / se[1:]) > 20     # the check has power


def _without_decay_steps(algo, steps):
    if isinstance(algo, Schedule):
        return Schedule.from_arrays(*algo.parameters(steps))
    return memsgd.MemoryAlgorithm(*algo.parameters())


# -- argument rules -----------------------------------------------------------------------------

def test_weight_decay_given_twice_or_contradicting_is_refused():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="contradicts the algorithm's own weight decay 0.1"):
        MemorySGD.from_algorithm(p, memsgd.heavy_ball(0.1, 0.9, weight_decay=0.1), weight_decay=0.2)
    MemorySGD.from_algorithm(p, memsgd.heavy_ball(0.1, 0.9, weight_decay=0.1), weight_decay=0.1)   # a repeat is fine
    with pytest.raises(ValueError, match="the schedule has its own weight decay"):
        AM1(p, schedule=am1_schedule(), weight_decay=0.1)
    opt = AM1(p, schedule=am1_schedule())
    with pytest.raises(ValueError, match="param_group sets weight_decay"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "weight_decay": 0.1})
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        MemorySGD(p, 0.1, [0.9], [0.1], [[0.9]], weight_decay=-0.1)
    with pytest.raises(ValueError, match="does not support a readout"):
        MemorySGD.from_algorithm(p, memsgd.ema(memsgd.heavy_ball(0.1, 0.9), 0.9))
    with pytest.raises(ValueError, match="does not support a preconditioner"):
        MemorySGD.from_algorithm(p, memsgd.MemoryAlgorithm(0.1, [0.9], [0.1], [[0.9]], preconditioner=0.5))
    with pytest.raises(ValueError, match="does not support a readout"):
        AM1(p, schedule=Schedule.from_arrays(np.full(3, 0.1), np.full((3, 1), 0.9), np.full((3, 1), 0.1),
                                             np.full((3, 1, 1), 0.9), readout=[0.5]))


def test_schedule_weight_decay_is_written_into_the_group_each_step():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = AM1([p], schedule=am1_schedule())
    seen = []
    for _ in range(6):
        p.grad = torch.ones(2)
        opt.step()
        seen.append(opt.param_groups[0]["weight_decay"])
    np.testing.assert_array_equal(seen, RHO_T[:6])
