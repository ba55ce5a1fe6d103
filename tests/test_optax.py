"""memsgd.optax: iterates against the numpy references and the torch optimizers (float64, 1e-12),
optax.sgd equivalence, composition (chain, inject_hyperparams, jit, vmap), argument checks."""
import subprocess
import sys

import numpy as np
import pytest

from ._extras import need

jax = need("jax")
optax = need("optax")
jnp = jax.numpy

import memsgd  # noqa: E402
from memsgd import schedules  # noqa: E402
from memsgd.optax import AM1State, MemorySGDState, am1, memory_sgd  # noqa: E402

from .reference import random_quadratic, run_am1_velocity_form, run_matrix_form  # noqa: E402

D_DIM = 5
STEPS = 30
TOL = 1e-12


@pytest.fixture(scope="module", autouse=True)
def x64():
    """float64 for this module only (restored afterwards, so no other test sees it)."""
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture(scope="module")
def quadratic():
    return random_quadratic(D_DIM, seed=5, shift=0.1)


def split(w):
    """A pytree of params: a dict of a (2,) and a (3, 1) leaf holding the 5 coordinates."""
    return {"a": w[:2], "b": w[2:].reshape(3, 1)}


def join(tree):
    return jnp.concatenate([tree["a"], tree["b"].reshape(-1)])


def run_optax(opt, H, w_star, steps=STEPS, jit=True):
    """Iterates of ``opt`` on L(w) = 1/2 (w - w*)^T H (w - w*) from w = 0, params as a pytree."""
    Hj, wj = jnp.asarray(H), jnp.asarray(w_star)
    params = split(jnp.zeros(D_DIM))
    state = opt.init(params)
    update = jax.jit(opt.update) if jit else opt.update
    out = [join(params)]
    for _ in range(steps):
        grads = split(Hj @ (join(params) - wj))
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        out.append(join(params))
    return np.asarray(jnp.stack(out)), state


def constant(algo):
    return lambda t: algo.parameters()


# -- exactness -----------------------------------------------------------------------------

def test_am1_matches_matrix_form(quadratic):
    H, ws = quadratic
    got, state = run_optax(am1(0.05, 0.9, 0.4), H, ws)
    ref = run_matrix_form(constant(memsgd.am1(0.05, 0.9, 0.4)), H, ws, STEPS)
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)
    assert isinstance(state, AM1State) and int(state.count) == STEPS
    assert state.velocity["b"].shape == (3, 1) and state.velocity["b"].dtype == jnp.float64


def test_am1_schedules_of_the_count_match_velocity_form(quadratic):
    H, ws = quadratic

    def lr(t):
        return 0.05 + 0.02 * np.cos(t)

    def beta(t):
        return 0.8 + 0.1 * np.sin(t)

    def kick(t):
        return 0.3 / (1.0 + t)

    def f64(n):  # the count is int32; jnp.cos(int32) would compute in float32
        return jnp.asarray(n, jnp.float64)

    got, _ = run_optax(am1(lambda n: 0.05 + 0.02 * jnp.cos(f64(n)), lambda n: 0.8 + 0.1 * jnp.sin(f64(n)),
                           lambda n: 0.3 / (1.0 + f64(n))), H, ws)
    np.testing.assert_allclose(got, run_am1_velocity_form(lr, beta, kick, H, ws, STEPS), rtol=0, atol=TOL)


@pytest.mark.parametrize("algo", [
    memsgd.heavy_ball(0.1, 0.8),
    memsgd.MemoryAlgorithm(0.1, [0.5, -0.3], [0.2, 0.1], [[0.6, 0.2], [-0.1, 0.5]]),
    memsgd.Multistep([0.5, 0.2], [0.1, -0.02, 0.01]).to_matrix(),
    memsgd.gd(0.3),
], ids=["heavy_ball", "memory2_general_D", "multistep_companion", "gd_memory0"])
def test_memory_sgd_algorithm_matches_matrix_form(quadratic, algo):
    H, ws = quadratic
    got, state = run_optax(memory_sgd(algo), H, ws)
    np.testing.assert_allclose(got, run_matrix_form(constant(algo), H, ws, STEPS), rtol=0, atol=TOL)
    # M trees like the params: every state leaf has its parameter's shape
    assert isinstance(state, MemorySGDState) and len(state.memory) == algo.memory
    assert all(u["b"].shape == (3, 1) for u in state.memory)


@pytest.mark.parametrize("sched", [
    schedules.am1_power_law(0.5, 0.5, gamma=1.0, t0=5.0),
    schedules.jacobi_heavy_ball(1.5),
    schedules.Schedule.from_arrays(np.linspace(0.1, 0.3, STEPS), np.full((STEPS, 1), 0.5),
                                   np.linspace(0.2, 0.0, STEPS)[:, None], np.full((STEPS, 1, 1), 0.6)),
], ids=["am1_power_law", "jacobi", "from_arrays"])
def test_memory_sgd_schedule_matches_matrix_form(quadratic, sched):
    H, ws = quadratic
    steps = None if sched.length is not None else STEPS
    got, _ = run_optax(memory_sgd(sched, steps=steps), H, ws)
    ref = run_matrix_form(lambda t: sched.at(t).parameters(), H, ws, STEPS)
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)


def test_same_iterates_as_torch_on_the_same_gradients(quadratic):
    torch = need("torch")
    from memsgd.torch import AM1, MemorySGD
    H, ws = quadratic
    Ht, wt = torch.tensor(H), torch.tensor(ws)
    sched = schedules.am1_power_law(0.5, 0.5, gamma=1.0, t0=5.0)
    algo = memsgd.MemoryAlgorithm(0.1, [0.5, -0.3], [0.2, 0.1], [[0.6, 0.2], [-0.1, 0.5]])
    cases = [(am1(0.05, 0.9, 0.4), lambda ps: AM1(ps, lr=0.05, momentum=0.9, kick=0.4)),
             (memory_sgd(sched, steps=STEPS), lambda ps: AM1(ps, schedule=sched)),
             (memory_sgd(algo), lambda ps: MemorySGD.from_algorithm(ps, algo))]
    for opt, make in cases:
        got, _ = run_optax(opt, H, ws)
        p = torch.nn.Parameter(torch.zeros(D_DIM, dtype=torch.float64))
        topt = make([p])
        ref = [p.detach().clone()]
        for _ in range(STEPS):
            p.grad = Ht @ (p.detach() - wt)
            topt.step()
            ref.append(p.detach().clone())
        np.testing.assert_allclose(got, torch.stack(ref).numpy(), rtol=0, atol=TOL)


@pytest.mark.parametrize("learning_rate", [0.05, optax.exponential_decay(0.1, 5, 0.5)], ids=["float", "schedule"])
def test_kick0_is_optax_sgd_momentum(quadratic, learning_rate):
    H, ws = quadratic
    ours, _ = run_optax(am1(learning_rate, 0.9, 0.0), H, ws)
    theirs, _ = run_optax(optax.sgd(learning_rate, momentum=0.9), H, ws)
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=1e-15)


def test_schedule_past_its_prepared_steps_gives_nan(quadratic):
    H, ws = quadratic
    got, _ = run_optax(memory_sgd(schedules.am1_power_law(0.5, 0.5), steps=4), H, ws, steps=6)
    assert np.all(np.isfinite(got[:5])) and np.all(np.isnan(got[5:]))


# -- composition ---------------------------------------------------------------------------

def test_chain_with_other_transformations(quadratic):
    H, ws = quadratic
    chained, _ = run_optax(optax.chain(optax.clip_by_global_norm(1e6), am1(0.05, 0.9, 0.4),
                                       optax.scale(1.0)), H, ws)
    alone, _ = run_optax(am1(0.05, 0.9, 0.4), H, ws)
    np.testing.assert_array_equal(chained, alone)
    scaled, _ = run_optax(optax.chain(memory_sgd(memsgd.heavy_ball(0.1, 0.8)), optax.scale(0.5)), H, ws)
    np.testing.assert_allclose(scaled, run_matrix_form(constant(memsgd.heavy_ball(0.05, 0.8)), H, ws, STEPS),
                               rtol=0, atol=TOL)


def test_inject_hyperparams_changes_take_effect(quadratic):
    """inject_hyperparams: hyperparameters live in the state; changing the lr at step 10 under
    jit follows the velocity-form recursion with that lr from step 10 on."""
    H, ws = quadratic
    opt = optax.inject_hyperparams(am1, hyperparam_dtype=jnp.float64)(
        learning_rate=0.05, momentum=0.9,
        kick=lambda n: 0.4 * (1 - jnp.minimum(jnp.asarray(n, jnp.float64), 20) / 20))  # a float64 linear decay
    Hj, wj = jnp.asarray(H), jnp.asarray(ws)
    params = split(jnp.zeros(D_DIM))
    state = opt.init(params)
    update = jax.jit(opt.update)
    out = [join(params)]
    for t in range(STEPS):
        if t == 10:
            state.hyperparams["learning_rate"] = jnp.asarray(0.02)
        updates, state = update(split(Hj @ (join(params) - wj)), state)
        params = optax.apply_updates(params, updates)
        out.append(join(params))
    ref = run_am1_velocity_form(lambda t: 0.05 if t < 10 else 0.02, lambda t: 0.9,
                                lambda t: 0.4 * (1 - min(t, 20) / 20), H, ws, STEPS)
    np.testing.assert_allclose(np.asarray(jnp.stack(out)), ref, rtol=0, atol=TOL)
    assert abs(float(state.hyperparams["kick"])) < 1e-15    # the schedule reached 0


@pytest.mark.slow
def test_vmap_over_params_and_over_hyperparameters(quadratic):
    H, ws = quadratic
    Hj = jnp.asarray(H)
    targets = jnp.asarray(np.stack([ws, -ws, 2 * ws]))

    # a batch of three independent problems (different w*), one optimizer
    opt = memory_sgd(schedules.am1_power_law(0.5, 0.5, t0=5.0), steps=STEPS)
    params = jax.vmap(lambda _: split(jnp.zeros(D_DIM)))(targets)
    state = jax.vmap(opt.init)(params)
    update = jax.jit(jax.vmap(opt.update))
    for _ in range(STEPS):
        grads = jax.vmap(lambda p, w: split(Hj @ (join(p) - w)))(params, targets)
        updates, state = update(grads, state)
        params = optax.apply_updates(params, updates)
    batched = np.asarray(jax.vmap(join)(params))
    for i in range(3):
        single, _ = run_optax(opt, H, np.asarray(targets[i]))
        np.testing.assert_allclose(batched[i], single[-1], rtol=0, atol=TOL)

    # a batch of learning rates: the factory receives traced 0-d arrays
    def final_loss(lr):
        o = am1(lr, 0.9, 0.1)
        w = jnp.zeros(D_DIM)
        s = o.init(w)

        def body(carry, _):
            w, s = carry
            u, s = o.update(Hj @ (w - jnp.asarray(ws)), s)
            return (w + u, s), None

        (w, _), _ = jax.lax.scan(body, (w, s), None, length=STEPS)
        return 0.5 * (w - ws) @ Hj @ (w - ws)

    lrs = jnp.asarray([0.01, 0.03, 0.05])
    vmapped = np.asarray(jax.jit(jax.vmap(final_loss))(lrs))
    for lr, loss in zip([0.01, 0.03, 0.05], vmapped):
        w = run_matrix_form(constant(memsgd.am1(lr, 0.9, 0.1)), H, ws, STEPS)[-1]
        assert loss == pytest.approx(0.5 * (w - ws) @ H @ (w - ws), rel=1e-10)


def test_masked_leaves_pass_through():
    opt = optax.masked(am1(0.1, 0.9, 0.1), {"a": True, "b": False})
    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    state = opt.init(params)
    updates, _ = opt.update({"a": jnp.ones(2), "b": jnp.ones(3)}, state, params)
    np.testing.assert_allclose(np.asarray(updates["a"]), -0.2 * np.ones(2), rtol=1e-15)
    np.testing.assert_array_equal(np.asarray(updates["b"]), np.ones(3))


# -- argument checks -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(learning_rate=-0.1, momentum=0.9, kick=0.1), ValueError, "learning_rate must be >= 0"),
    (dict(learning_rate=0.1, momentum=-0.9, kick=0.1), ValueError, "momentum must be >= 0"),
    (dict(learning_rate=0.1, momentum=0.9, kick=float("nan")), ValueError, "kick must be finite"),
    (dict(learning_rate="0.1", momentum=0.9, kick=0.1), TypeError, "learning_rate must be a real number"),
    (dict(learning_rate=True, momentum=0.9, kick=0.1), TypeError, "learning_rate must be a real number"),
    (dict(learning_rate=0.1, momentum=np.array([0.9, 0.8]), kick=0.1), ValueError, "momentum must be a scalar"),
    (dict(learning_rate=0.1, momentum=0.9, kick=np.array(-1.0 + 0j)), TypeError, "kick must be a real number"),
    (dict(learning_rate=np.array(-1.0), momentum=0.9, kick=0.1), ValueError, "learning_rate must be >= 0"),
])
def test_am1_argument_checks(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        am1(**kwargs)


@pytest.mark.parametrize("arg, kwargs, exc, match", [
    (memsgd.nesterov(0.1, 0.9), {}, ValueError, "must have e = 0"),
    (schedules.schedule_free_sgd(0.1, 0.9), dict(steps=5), ValueError, r"e = 0 at every step .* at step 0"),
    (schedules.am1_power_law(0.5, 0.5), {}, ValueError, "steps is required for a schedule without a length"),
    (schedules.Schedule.from_arrays([0.1] * 3, [[0.5]] * 3, [[0.1]] * 3, [[[0.5]]] * 3), dict(steps=4),
     ValueError, "steps must be <= the schedule's length 3"),
    (memsgd.heavy_ball(0.1, 0.9), dict(steps=3), ValueError, "steps is only for a Schedule"),
    ((0.1, [0.9]), {}, TypeError, "must be a memsgd.MemoryAlgorithm or a memsgd.Schedule"),
    (schedules.am1_power_law(0.5, 0.5), dict(steps=-1), ValueError, "steps must be >= 1, got -1"),
    (schedules.am1_power_law(0.5, 0.5), dict(steps=2.5), ValueError, "steps must be an integer"),
    (schedules.am1_power_law(0.5, 0.5), dict(steps=0), ValueError, "steps must be >= 1"),    # was IndexError
])
def test_memory_sgd_argument_checks(arg, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        memory_sgd(arg, **kwargs)


@pytest.mark.slow
def test_import_needs_no_jax_and_calls_name_the_extra():
    code = ("import sys; sys.modules['optax'] = None; import memsgd.optax as m; "
            "assert 'jax' not in sys.modules, 'jax imported'\n"
            "try:\n    m.am1(0.1, 0.9, 0.1)\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "memsgd.optax.am1 needs optax: pip install 'memsgd[jax]'" in out
