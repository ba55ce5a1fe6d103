"""optax's own conventions, checked on memsgd.optax.am1 and memory_sgd (written after the checks
optax's alias_test.py runs on its optimizers: optimization under jit without recompiling,
extra update arguments, optax.tree.map_params, inject_hyperparams, dtype preservation,
state shape/dtype stability under lax.cond, MultiSteps), plus the refusals of issue 18."""
import numpy as np
import pytest

from ._extras import need

jax = need("jax")
optax = need("optax")
jnp = jax.numpy

import memsgd  # noqa: E402
from memsgd import _core, schedules  # noqa: E402
from memsgd.optax import am1, memory_sgd  # noqa: E402

FACTORIES = {
    "am1": lambda: am1(learning_rate=0.01, momentum=0.9, kick=0.05),
    "am1_schedules": lambda: am1(learning_rate=optax.cosine_decay_schedule(0.01, 2000), momentum=0.9,
                                 kick=lambda n: 0.05 / (1.0 + n / 100.0)),
    "memory_sgd_heavy_ball": lambda: memory_sgd(memsgd.heavy_ball(0.01, 0.9)),
    "memory_sgd_M2": lambda: memory_sgd(memsgd.MemoryAlgorithm(0.02, [0.5, 0.3], [0.02, 0.01],
                                                               [[0.6, 0.2], [-0.1, 0.5]])),
    "memory_sgd_schedule": lambda: memory_sgd(schedules.am1_power_law(0.02, 0.5), steps=3000),
}


def parabola(dtype):
    final = jnp.array([1.0, -1.0, 1.0], dtype=dtype)

    def objective(p):
        return jnp.sum(jnp.abs(p - final) ** 2)

    return jnp.array([-1.0, 10.0, 1.0], dtype=dtype), final, objective


def jitted_step(opt, objective, **update_kwargs):
    @jax.jit
    def step(params, state):
        grads = jax.tree.map(jnp.conj, jax.grad(objective)(params))   # complex: optax's convention
        updates, state = opt.update(grads, state, params, **update_kwargs)
        return optax.apply_updates(params, updates), state
    return step


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64])
@pytest.mark.parametrize("name", list(FACTORIES))
def test_optimization_under_jit_without_recompiling(name, dtype):
    opt = FACTORIES[name]()
    params, final, objective = parabola(dtype)
    state = opt.init(params)
    state = optax.tree.map_params(opt, lambda v: v, state)        # a no-op map works
    step = jitted_step(opt, objective)
    for _ in range(2000):
        params, state = step(params, state)
    assert step._cache_size() == 1                                  # compiled once
    np.testing.assert_allclose(np.asarray(params), np.asarray(final), rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_update_accepts_extra_args(name):
    """optax's test_optimizers_accept_extra_args: without with_extra_args_support."""
    opt = FACTORIES[name]()
    assert isinstance(opt, optax.GradientTransformationExtraArgs)
    params, _, objective = parabola(jnp.float32)
    step = jitted_step(opt, objective, unexpected_extra_args_your_optimizer_doesnt_expect=1)
    state = opt.init(params)
    for _ in range(2):
        params, state = step(params, state)
    assert np.all(np.isfinite(np.asarray(params)))


@pytest.mark.parametrize("name", list(FACTORIES))
def test_state_leaves_are_shaped_like_their_params_for_map_params(name):
    """Issue 18 item 12: every param-like state leaf has its parameter's shape (memory_sgd's
    memory was one (M, *shape) leaf per param), so map_params with per-param specs (sharding)
    reaches every one of them and nothing else."""
    opt = FACTORIES[name]()
    params = {"w": jnp.ones((3, 2)), "b": jnp.ones(5)}
    state = opt.init(params)
    specs = {"w": "spec_w", "b": "spec_b"}
    mapped = optax.tree.map_params(opt, lambda p, spec: (p.shape, spec), state, specs,
                                   transform_non_params=lambda v: "other")
    leaves = jax.tree_util.tree_leaves(mapped, is_leaf=lambda x: isinstance(x, tuple) and len(x) == 2
                                       and isinstance(x[1], str))
    param_leaves = [x for x in leaves if isinstance(x, tuple)]
    assert param_leaves and all(x == ((3, 2), "spec_w") or x == ((5,), "spec_b") for x in param_leaves)
    memory = getattr(state, "memory", None)
    if memory is not None:
        assert isinstance(memory, tuple) and all(jax.tree.map(jnp.shape, u) == jax.tree.map(jnp.shape, params)
                                                 for u in memory)


@pytest.mark.parametrize("name", ["am1", "memory_sgd_M2"])
def test_inject_hyperparams_wrapper_gives_the_same_updates(name):
    factory = {"am1": am1, "memory_sgd_M2": memory_sgd}[name]
    kwargs = ({"learning_rate": 0.01, "momentum": 0.9, "kick": 0.05} if name == "am1" else
              {"algorithm_or_schedule": memsgd.MemoryAlgorithm(0.02, [0.5, 0.3], [0.02, 0.01],
                                                               [[0.6, 0.2], [-0.1, 0.5]])})
    static = () if name == "am1" else ("algorithm_or_schedule",)
    opt, inj = factory(**kwargs), optax.inject_hyperparams(factory, static_args=static)(**kwargs)
    params = [-jnp.ones((2, 3)), jnp.ones((2, 5, 2))]
    grads = [jnp.ones((2, 3)), -jnp.ones((2, 5, 2))]
    u1, s1 = jax.jit(opt.update)(grads, jax.jit(opt.init)(params), params)
    u2, s2 = jax.jit(inj.update)(grads, jax.jit(inj.init)(params), params)
    for a, b in zip(jax.tree_util.tree_leaves((u1, s1)), jax.tree_util.tree_leaves((u2, s2.inner_state))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("name", list(FACTORIES))
def test_updates_keep_the_gradient_dtype(name, dtype):
    opt = FACTORIES[name]()
    params = jnp.array([1.0, 2.0], dtype=dtype)
    grads = jax.grad(lambda x: jnp.sum(x ** 2))(params)
    updates, _ = jax.jit(opt.update)(grads, jax.jit(opt.init)(params), params)
    assert updates.dtype == grads.dtype


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("name", list(FACTORIES))
def test_state_shape_and_dtype_are_stable_under_cond(name, dtype):
    """optax's test_state_shape_dtype_shard_stability: both branches of a lax.cond (update or
    keep) must have the same state and update shapes and dtypes."""
    x64 = dtype in ("float64", "complex128")
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", x64 or previous)
    try:
        opt = FACTORIES[name]()
        params, _, objective = parabola(jnp.dtype(dtype))

        @jax.jit
        def step(params, state):
            grads = jax.tree.map(jnp.conj, jax.grad(objective)(params))
            cond = jax.random.randint(jax.random.key(0), (), 0, 2) == 0
            updates, state = jax.lax.cond(cond, lambda: opt.update(grads, state, params), lambda: (params, state))
            return optax.apply_updates(params, updates), state

        state = opt.init(params)
        for _ in range(2):
            params, state = step(params, state)
            assert jax.tree_util.tree_leaves(params)[0].dtype == jnp.dtype(dtype)
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_multisteps_accumulation(name):
    opt = optax.MultiSteps(FACTORIES[name](), every_k_schedule=4)
    params = jnp.array([1.0, 2.0])
    grads = jax.grad(lambda x: jnp.sum(x ** 2))(params)
    updates, _ = jax.jit(opt.update)(grads, jax.jit(opt.init)(params), params)
    np.testing.assert_array_equal(np.asarray(updates), np.zeros(2))


# -- refusals (issue 18 item 7) --------------------------------------------------------------------

@pytest.mark.parametrize("name", list(FACTORIES))
def test_integer_parameters_are_refused(name):
    """They would never change (the float update is truncated by apply_updates); jax.grad
    refuses them too."""
    opt = FACTORIES[name]()
    with pytest.raises(TypeError, match=r"parameters must be floating-point or complex, but the leaf at "
                                        r"\['count'\] has dtype int32"):
        opt.init({"w": jnp.ones(3), "count": jnp.zeros(2, jnp.int32)})
    opt.init(jax.ShapeDtypeStruct((3,), jnp.float32))      # abstract params (eval_shape) are fine


def test_huge_schedule_tables_refused_before_allocating(monkeypatch):
    """memory_sgd(schedule, steps=3e8) allocated its tables before any check (an OOM kill): the
    size is checked first (here against a pretend 4 GB machine), with a one-line ValueError."""
    monkeypatch.setattr(_core, "physical_memory", lambda: 4 * 10 ** 9)
    with pytest.raises(ValueError, match=r"memory_sgd\(schedule, steps=300000000\) is too large: it needs 24 GB"):
        memory_sgd(schedules.am1_power_law(0.5, 0.5), steps=3 * 10 ** 8)
    # an exactly integral float is a step count, as everywhere in the library (it was refused
    # as a non-integer)
    with pytest.raises(ValueError, match=r"memory_sgd\(schedule, steps=300000000\) is too large"):
        memory_sgd(schedules.am1_power_law(0.5, 0.5), steps=3e8)
    with pytest.raises(ValueError, match="is too large"):
        memory_sgd(schedules.am1_power_law(0.5, 0.5), steps=10 ** 12)
