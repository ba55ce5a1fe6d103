"""schedules.torch_sgd / schedules.optax_sgd: torch.optim.SGD and optax.sgd themselves, run on a
noise-free quadratic in float64, against the schedules: every iterate against the plain-numpy
matrix form of the schedule (tests/reference.py, 1e-12) and every loss against the engine's
loss_curve with Noise.none() (1e-10 relative). Learning rates from the frameworks' own schedulers,
memsgd's lr shapes, arrays and callables; momentum schedules; per-step weight decay."""
import pickle

import numpy as np
import pytest

import memsgd
from memsgd import lr_shapes, schedules

from ._extras import need
from .reference import run_matrix_form

LAM = np.array([1.0, 0.6, 0.25, 0.1, 0.03, 0.01])
C2 = np.array([1.0, 0.5, 2.0, 1.0, 3.0, 0.5])
W_STAR = np.sqrt(C2)
SPECTRUM = memsgd.Spectrum(LAM, C2)
T = 80
ITERATE_TOL = 1e-12
LOSS_RTOL = 1e-10


def losses(iterates):
    return 0.5 * ((iterates - W_STAR) ** 2) @ LAM


def check(iterates, schedule):
    """Every iterate against the numpy matrix form, every loss against loss_curve."""
    assert iterates.shape == (T + 1, LAM.size)
    alpha, b, c, D, e = schedule.parameters(T)
    rho = schedule.weight_decays(T)
    ref = run_matrix_form(lambda t: (alpha[t], b[t], c[t], D[t], e[t]), np.diag(LAM), W_STAR, T,
                          rho_at=lambda t: rho[t])
    np.testing.assert_allclose(iterates, ref, rtol=0, atol=ITERATE_TOL)
    curve = memsgd.loss_curve(schedule, SPECTRUM, memsgd.Noise.none(), T)
    np.testing.assert_allclose(curve.loss, losses(iterates), rtol=LOSS_RTOL, atol=0)
    return curve


# -- torch.optim.SGD ----------------------------------------------------------------------------

def torch_run(make_opt, make_sched=None, before_step=None):
    """torch.optim's own loop on L(w) = 1/2 sum lam (w - w*)^2 from w = 0 (float64): the iterates,
    and a twin scheduler (None without one) built like the training one and never stepped: what
    torch_sgd is handed before training."""
    import torch
    lam, ws = torch.tensor(LAM), torch.tensor(W_STAR)

    def fresh():
        p = torch.nn.Parameter(torch.zeros(LAM.size, dtype=torch.float64))
        opt = make_opt([p])
        return p, opt, (make_sched(opt) if make_sched else None)

    p, opt, sched = fresh()
    twin = fresh()[2]
    out = [p.detach().clone()]
    for t in range(T):
        if before_step:
            before_step(opt, t)
        opt.zero_grad()
        (0.5 * (lam * (p - ws) ** 2).sum()).backward()
        opt.step()
        if sched is not None:
            sched.step()
        out.append(p.detach().clone())
    return torch.stack(out).numpy(), twin


def _set(key, values):
    def hook(opt, t):
        opt.param_groups[0][key] = float(values[t])
    return hook


def _hooks(*hooks):
    def hook(opt, t):
        for h in hooks:
            h(opt, t)
    return hook


# momentum per step: off for three steps (torch makes the buffer at step 3, without dampening),
# off again at 40..42 (the buffer is kept, not decayed), then a ramp
MU = np.concatenate([np.zeros(3), np.full(37, 0.8), np.zeros(3), np.linspace(0.5, 0.95, T - 43)])
WD = np.where(np.arange(T) % 7 == 3, 0.0, np.linspace(0.05, 0.0, T))   # zeros sprinkled in
LR_FN = (lambda t: 0.6 / (1 + 0.05 * t))


def torch_cases():
    torch = need("torch")
    S = torch.optim.SGD
    L = torch.optim.lr_scheduler
    n_cool = 24
    return {
        "plain": (lambda ps: S(ps, lr=0.9), None, None, lambda s: schedules.torch_sgd(0.9)),
        "momentum": (lambda ps: S(ps, lr=0.5, momentum=0.9), None, None, lambda s: schedules.torch_sgd(0.5, 0.9)),
        "dampening": (lambda ps: S(ps, lr=0.5, momentum=0.9, dampening=0.3), None, None,
                      lambda s: schedules.torch_sgd(0.5, 0.9, dampening=0.3)),
        "nesterov_weight_decay": (lambda ps: S(ps, lr=0.5, momentum=0.9, nesterov=True, weight_decay=0.02), None, None,
                                  lambda s: schedules.torch_sgd(0.5, 0.9, nesterov=True, weight_decay=0.02)),
        "cosine_scheduler": (lambda ps: S(ps, lr=0.8, momentum=0.9), lambda o: L.CosineAnnealingLR(o, T, eta_min=0.01),
                             None, lambda s: schedules.torch_sgd(s, 0.9, steps=T)),
        "cosine_shape": (lambda ps: S(ps, lr=0.8, momentum=0.9), lambda o: L.CosineAnnealingLR(o, T, eta_min=0.01),
                         None, lambda s: schedules.torch_sgd(lr_shapes.cosine(0.8, T, final=0.01), 0.9, steps=T)),
        "warmup_cosine_sequential": (
            lambda ps: S(ps, lr=0.8, momentum=0.9, nesterov=True),
            lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.1, 1.0, 10), L.CosineAnnealingLR(o, T - 10)], [10]),
            None, lambda s: schedules.torch_sgd(s, 0.9, nesterov=True, steps=T)),
        "wsd_linear_sequential": (
            lambda ps: S(ps, lr=0.8, momentum=0.9),
            lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.05, 1.0, 8), L.ConstantLR(o, 1.0, 1),
                                         L.LinearLR(o, 1.0, 0.0, n_cool)], [8, T - n_cool]),
            None, lambda s: schedules.torch_sgd(lr_shapes.wsd(0.8, T, n_cool / T, "linear", 8, warmup_start=0.04),
                                                0.9, steps=T)),
        "step_dampening": (lambda ps: S(ps, lr=0.8, momentum=0.9, dampening=0.5), lambda o: L.StepLR(o, 20, 0.5),
                           None, lambda s: schedules.torch_sgd(s, 0.9, dampening=0.5, steps=T)),
        "multistep_nesterov": (lambda ps: S(ps, lr=0.8, momentum=0.8, nesterov=True),
                               lambda o: L.MultiStepLR(o, [20, 50], 0.3), None,
                               lambda s: schedules.torch_sgd(s, 0.8, nesterov=True, steps=T)),
        "onecycle_cycled_momentum": (
            lambda ps: S(ps, lr=0.1, momentum=0.9), lambda o: L.OneCycleLR(o, max_lr=1.0, total_steps=T), None,
            lambda s: schedules.torch_sgd(s, lr_shapes.from_torch_scheduler(s, T, key="momentum"), steps=T)),
        "lambda_wsd_1sqrt": (lambda ps: S(ps, lr=0.8, momentum=0.9),
                             lambda o: L.LambdaLR(o, lr_shapes.wsd(1.0, T, 0.3, "1-sqrt", warmup_steps=8)), None,
                             lambda s: schedules.torch_sgd(s, 0.9, steps=T)),
        "momentum_schedule_dampening_weight_decay": (
            lambda ps: S(ps, lr=0.5, momentum=0.5, dampening=0.2), None,
            _hooks(_set("momentum", MU), _set("weight_decay", WD)),
            lambda s: schedules.torch_sgd(0.5, MU, dampening=0.2, weight_decay=WD, steps=T)),
        "callable_lr_nesterov_momentum_schedule": (
            lambda ps: S(ps, lr=0.6, momentum=0.9, nesterov=True),
            None, _hooks(_set("momentum", np.where(MU > 0, MU, 0.0)), _set("lr", [LR_FN(t) for t in range(T)])),
            lambda s: schedules.torch_sgd(LR_FN, MU, nesterov=True, steps=T)),
    }


@pytest.mark.parametrize("case", ["plain", "momentum", "dampening", "nesterov_weight_decay", "cosine_scheduler",
                                  "cosine_shape", "warmup_cosine_sequential", "wsd_linear_sequential",
                                  "step_dampening", "multistep_nesterov", "onecycle_cycled_momentum",
                                  "lambda_wsd_1sqrt", "momentum_schedule_dampening_weight_decay",
                                  "callable_lr_nesterov_momentum_schedule"])
def test_torch_sgd_is_what_torch_runs(case):
    make_opt, make_sched, hook, build = torch_cases()[case]
    iterates, scheduler = torch_run(make_opt, make_sched, hook)
    schedule = build(scheduler)
    curve = check(iterates, schedule)
    assert curve.loss[-1] < 0.5 * curve.loss[0]          # it trains (the comparison is not of zeros)


def test_torch_sgd_memory_and_first_step_buffer():
    # momentum 0 is memory 0; the buffer's first step has no dampening (k = 1), later ones 1 - dampening
    assert schedules.torch_sgd(0.3).memory == 0
    alpha, b, c, D, e = schedules.torch_sgd(0.5, 0.9, dampening=0.3).parameters(3)
    np.testing.assert_array_equal(c[:, 0], [1.0, 0.7, 0.7])
    np.testing.assert_array_equal(alpha, [0.5, 0.5 * 0.7, 0.5 * 0.7])
    _, _, c, D, _ = schedules.torch_sgd(0.5, MU, dampening=0.2, steps=T).parameters(T)
    assert c[3, 0] == 1.0 and c[4, 0] == 0.8 and c[0, 0] == 0.0 and D[41, 0, 0] == 1.0   # made at step 3; held at 41


def test_scheduler_is_left_untouched_and_the_copy_shares_parameters():
    torch = need("torch")
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=torch.tensor(0.5, dtype=torch.float64), momentum=0.9)   # tensor lr: filled in place
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)
    values = lr_shapes.from_torch_scheduler(sched, 5)
    np.testing.assert_allclose(values, 0.5 * 0.9 ** np.arange(5), rtol=1e-15)
    assert float(opt.param_groups[0]["lr"]) == 0.5 and sched.last_epoch == 0
    opt.step()
    sched.step()                                      # the original still steps from the start
    assert abs(float(opt.param_groups[0]["lr"]) - 0.45) < 1e-15


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(lr=-0.1), ValueError, "lr must be finite and >= 0"),
    (dict(lr=[0.1, -0.1, 0.1]), ValueError, "lr must be finite and >= 0 at step 1"),
    (dict(lr=0.1, momentum=-0.5), ValueError, "momentum must be finite and >= 0"),
    (dict(lr=0.1, weight_decay=-1e-3), ValueError, "weight_decay must be finite and >= 0"),
    (dict(lr=0.1, momentum=0.9, dampening=1.5), ValueError, r"dampening must be in \[0, 1\]"),
    (dict(lr=0.1, momentum=0.9, dampening=-0.1), ValueError, r"dampening must be in \[0, 1\]"),
    (dict(lr=0.1, nesterov=True), ValueError, "nesterov=True needs momentum > 0 and dampening = 0.*momentum 0 at"),
    (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "nesterov=True needs"),
    (dict(lr=0.1, momentum=[0.0, 0.0], nesterov=True), ValueError, "nesterov=True needs momentum > 0"),
    (dict(lr=[0.1, 0.2], momentum=[0.9, 0.9, 0.9]), ValueError, "same steps, got lengths lr 2, momentum 3"),
    (dict(lr=[0.1, 0.2], steps=3), ValueError, "same steps, got lengths steps 3, lr 2"),
    (dict(lr=LR_FN), ValueError, "steps is required when lr is a schedule"),
    (dict(lr=0.1, steps=2.5), ValueError, "steps must be an integer"),
    (dict(lr="0.1"), TypeError, "lr must be a number"),
    (dict(lr=lambda t: "x", steps=2), TypeError, r"lr\(0\) must be a real number"),
    (dict(lr=lambda t: float("nan"), steps=2), ValueError, "lr must be finite and >= 0 at step 0"),
    (dict(lr=0.1, nesterov=1), TypeError, "nesterov must be a bool"),
])
def test_torch_sgd_argument_checks(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        schedules.torch_sgd(**kwargs)


def test_torch_sgd_refuses_a_scheduler_of_another_optimizer_setup():
    torch = need("torch")
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, 5)
    with pytest.raises(ValueError, match="momentum at step 0 is 0.9, but the momentum passed is 0.0"):
        schedules.torch_sgd(sched, steps=10, weight_decay=0.01)
    with pytest.raises(ValueError, match="weight_decay=0.01, but weight_decay=0.0 was passed"):
        schedules.torch_sgd(sched, 0.9, steps=10)
    with pytest.raises(ValueError, match="steps is required"):
        schedules.torch_sgd(sched, 0.9, weight_decay=0.01)
    cyc = torch.optim.lr_scheduler.OneCycleLR(torch.optim.SGD([p], lr=0.1, momentum=0.9), 1.0, total_steps=10)
    with pytest.raises(ValueError, match="from_torch_scheduler"):
        schedules.torch_sgd(cyc, 0.9, steps=10)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    with pytest.raises(TypeError, match="ReduceLROnPlateau"):
        schedules.torch_sgd(plateau, 0.9, steps=10, weight_decay=0.01)


def test_practitioners_schedules_pickle():
    for sched in (schedules.torch_sgd(0.1, 0.9), schedules.torch_sgd(lr_shapes.cosine(0.1, 50), 0.9, steps=50),
                  schedules.optax_sgd(0.1, 0.9, nesterov=True), schedules.torch_sgd(0.1)):
        again = pickle.loads(pickle.dumps(sched))
        for x, y in zip(sched.parameters(20), again.parameters(20)):
            np.testing.assert_array_equal(x, y)


# -- optax.sgd ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def x64():
    jax = need("jax")
    need("optax")
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def optax_run(opt):
    """optax's own (jitted) loop on the quadratic from w = 0, float64."""
    import jax
    import jax.numpy as jnp
    import optax
    p = jnp.zeros(LAM.size)
    state = opt.init(p)
    update = jax.jit(opt.update)
    out = [p]
    for _ in range(T):
        updates, state = update(LAM * (p - W_STAR), state, p)
        p = optax.apply_updates(p, updates)
        out.append(p)
    return np.asarray(jnp.stack(out), dtype=np.float64)


def optax_cases():
    import jax.numpy as jnp
    import optax
    n_cool = 24
    join = optax.join_schedules([optax.linear_schedule(0.0, 0.8, 8), optax.constant_schedule(0.8),
                                 optax.linear_schedule(0.8, 0.0, n_cool)], [8, T - n_cool])
    table = np.linspace(0.9, 0.1, T)
    mom = optax.linear_schedule(0.0, 0.95, 30)
    return {
        "plain": (optax.sgd(0.9), lambda: schedules.optax_sgd(0.9)),
        "momentum": (optax.sgd(0.5, 0.9), lambda: schedules.optax_sgd(0.5, 0.9)),
        "momentum0": (optax.sgd(0.5, 0.0), lambda: schedules.optax_sgd(0.5, 0.0)),
        "nesterov": (optax.sgd(0.5, 0.9, nesterov=True), lambda: schedules.optax_sgd(0.5, 0.9, True)),
        "warmup_cosine_nesterov": (
            optax.sgd(optax.warmup_cosine_decay_schedule(0.0, 0.8, 10, T, 0.01), 0.9, nesterov=True),
            lambda: schedules.optax_sgd(optax.warmup_cosine_decay_schedule(0.0, 0.8, 10, T, 0.01), 0.9, True, T)),
        "cosine": (optax.sgd(optax.cosine_decay_schedule(0.8, T, 0.1), 0.9),
                   lambda: schedules.optax_sgd(optax.cosine_decay_schedule(0.8, T, 0.1), 0.9, steps=T)),
        "exponential_staircase": (optax.sgd(optax.exponential_decay(0.8, 15, 0.5, staircase=True), 0.9),
                                  lambda: schedules.optax_sgd(optax.exponential_decay(0.8, 15, 0.5, staircase=True),
                                                              0.9, steps=T)),
        "piecewise_constant": (optax.sgd(optax.piecewise_constant_schedule(0.8, {20: 0.5, 50: 0.2}), 0.8),
                               lambda: schedules.optax_sgd(optax.piecewise_constant_schedule(0.8, {20: 0.5, 50: 0.2}),
                                                           0.8, steps=T)),
        "wsd_join": (optax.sgd(join, 0.9), lambda: schedules.optax_sgd(join, 0.9, steps=T)),
        "wsd_1sqrt_shape_in_optax": (optax.sgd(lr_shapes.wsd(0.8, T, 0.3, "1-sqrt", 8), 0.9),
                                     lambda: schedules.optax_sgd(lr_shapes.wsd(0.8, T, 0.3, "1-sqrt", 8), 0.9,
                                                                 steps=T)),
        "onecycle": (optax.sgd(optax.cosine_onecycle_schedule(T, 0.8), 0.9),
                     lambda: schedules.optax_sgd(optax.cosine_onecycle_schedule(T, 0.8), 0.9, steps=T)),
        "array_learning_rate": (optax.sgd(lambda count: jnp.asarray(table)[count], 0.9),
                                lambda: schedules.optax_sgd(table, 0.9)),
        "momentum_schedule": (optax.inject_hyperparams(optax.sgd)(learning_rate=0.5, momentum=mom, nesterov=True),
                              lambda: schedules.optax_sgd(0.5, mom, True, T)),
        "weight_decay": (optax.chain(optax.add_decayed_weights(0.02), optax.sgd(0.5, 0.9)),
                         lambda: schedules.optax_sgd(0.5, 0.9, weight_decay=0.02)),
    }


@pytest.mark.parametrize("case", ["plain", "momentum", "momentum0", "nesterov", "warmup_cosine_nesterov", "cosine",
                                  "exponential_staircase", "piecewise_constant", "wsd_join",
                                  "wsd_1sqrt_shape_in_optax", "onecycle", "array_learning_rate",
                                  "momentum_schedule", "weight_decay"])
def test_optax_sgd_is_what_optax_runs(case, x64):
    opt, build = optax_cases()[case]
    curve = check(optax_run(opt), build())
    assert curve.loss[-1] < 0.5 * curve.loss[0]


def test_optax_sgd_equals_torch_sgd_without_dampening():
    # the same heavy ball: optax's trace starts at 0 (trace_1 = g_0), torch's buffer at g_0
    a = schedules.optax_sgd(0.3, 0.9, nesterov=True).parameters(10)
    b = schedules.torch_sgd(0.3, 0.9, nesterov=True).parameters(10)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-15, atol=0)
    assert schedules.optax_sgd(0.3).memory == 0


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(learning_rate=-0.1), ValueError, "learning_rate must be finite and >= 0"),
    (dict(learning_rate=[0.1, -0.2]), ValueError, "learning_rate must be finite and >= 0 at step 1"),
    (dict(learning_rate=0.1, weight_decay=-0.1), ValueError, "weight_decay must be >= 0"),
    (dict(learning_rate=lambda c: 0.1 * c), ValueError, "steps is required when learning_rate is a schedule"),
    (dict(learning_rate=[0.1, 0.2], momentum=[0.9] * 3), ValueError, "same steps"),
    (dict(learning_rate=0.1, steps=0), ValueError, "steps must be >= 1"),
])
def test_optax_sgd_argument_checks(kwargs, exc, match, x64):
    with pytest.raises(exc, match=match):
        schedules.optax_sgd(**kwargs)


def test_optax_schedule_evaluated_at_int32_counts_as_optax_does(x64):
    import jax.numpy as jnp
    import optax
    seen = []

    def schedule(count):
        seen.append(count.dtype)
        return 0.1 + 0.0 * count

    lr_shapes.from_optax_schedule(schedule, 3)
    assert seen and all(d == jnp.int32 for d in seen)
    # optax's linear_schedule computes in float32 even with x64: the schedule carries those values
    values = lr_shapes.from_optax_schedule(optax.linear_schedule(0.0, 0.9, 10), 10)
    assert values[3] == float(np.float32(values[3])) and values[3] != 0.27
