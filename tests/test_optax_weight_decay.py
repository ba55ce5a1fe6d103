"""memsgd.optax's weight_decay means the engine's (issue 20 item 5): coupled L2 added to the gradient
at the parameters, as optax.add_decayed_weights before optax.sgd and as torch.optim.SGD. Iterates
against optax's own chain (float64, 1e-12) and the numpy matrix form; losses against the engine's
exact noise-free curve (1e-10 relative); the algorithm's or schedule's own decay is taken."""
import numpy as np
import pytest

from ._extras import need

jax = need("jax")
optax = need("optax")
jnp = jax.numpy

import memsgd  # noqa: E402
from memsgd import Noise, Schedule, Spectrum, loss_curve  # noqa: E402
from memsgd.optax import am1, memory_sgd  # noqa: E402

from .reference import run_matrix_form  # noqa: E402

LAM = np.array([1.0, 0.6, 0.25, 0.1, 0.03, 0.01])
C2 = np.array([1.0, 0.5, 2.0, 1.0, 3.0, 0.5])
W_STAR = np.sqrt(C2)
SPECTRUM = Spectrum(LAM, C2)
T = 80
RHO = 0.05
RHO_T = np.where(np.arange(T) % 5 == 2, 0.0, np.linspace(0.1, 0.01, T))


@pytest.fixture(scope="module", autouse=True)
def x64():
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def iterates(opt, jit=True):
    p = {"a": jnp.zeros(2), "b": jnp.zeros((4, 1))}       # a pytree holding the 6 coordinates
    state = opt.init(p)
    update = jax.jit(opt.update) if jit else opt.update
    flat = [np.zeros(LAM.size)]
    for _ in range(T):
        w = np.concatenate([np.asarray(p["a"]), np.asarray(p["b"]).ravel()])
        g = LAM * (w - W_STAR)
        updates, state = update({"a": jnp.asarray(g[:2]), "b": jnp.asarray(g[2:]).reshape(4, 1)}, state, p)
        p = optax.apply_updates(p, updates)
        flat.append(np.concatenate([np.asarray(p["a"]), np.asarray(p["b"]).ravel()]))
    return np.array(flat)


def losses(its):
    return 0.5 * ((its - W_STAR) ** 2) @ LAM


def test_am1_and_memory_sgd_decay_as_optax_add_decayed_weights():
    ref = iterates(optax.chain(optax.add_decayed_weights(RHO), optax.sgd(0.3, 0.8)))
    for opt in (am1(0.3, 0.8, 0.0, weight_decay=RHO), memory_sgd(memsgd.heavy_ball(0.3, 0.8, weight_decay=RHO)),
                memory_sgd(memsgd.heavy_ball(0.3, 0.8), weight_decay=RHO)):
        np.testing.assert_allclose(iterates(opt), ref, rtol=0, atol=1e-12)
    # per step: a schedule's own rho_t, as add_decayed_weights with an injected schedule of the count
    table = jnp.asarray(RHO_T)
    ref_t = iterates(optax.chain(optax.inject_hyperparams(optax.add_decayed_weights)(
        weight_decay=lambda count: table[count]), optax.sgd(0.3, 0.8)))
    sched = Schedule.from_arrays(np.full(T, 0.3), np.full((T, 1), 0.8), np.full((T, 1), 0.3),
                                 np.full((T, 1, 1), 0.8), weight_decay=RHO_T)
    np.testing.assert_allclose(iterates(memory_sgd(sched)), ref_t, rtol=0, atol=1e-12)
    np.testing.assert_allclose(iterates(am1(0.3, 0.8, 0.0, weight_decay=lambda c: table[c])), ref_t,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", ["am1", "memory2", "schedule_per_step"])
def test_optax_training_is_the_exact_weight_decay_curve(case):
    if case == "am1":
        algo, opt = memsgd.am1(0.3, 0.8, 0.2, weight_decay=RHO), am1(0.3, 0.8, 0.2, weight_decay=RHO)
    elif case == "memory2":
        algo = memsgd.MemoryAlgorithm(0.4, [0.5, -0.2], [0.3, 0.1], [[0.6, 0.2], [-0.1, 0.5]], weight_decay=RHO)
        opt = memory_sgd(algo)
    else:
        algo = Schedule.from_arrays(np.linspace(0.5, 0.2, T), np.full((T, 1), 0.8), np.linspace(0.3, 0.1, T)[:, None],
                                    np.full((T, 1, 1), 0.8), weight_decay=RHO_T)
        opt = memory_sgd(algo)
    its = iterates(opt)
    if isinstance(algo, Schedule):
        params, rho = algo.parameters(T), algo.weight_decays(T)
        ref = run_matrix_form(lambda t: tuple(x[t] for x in params), np.diag(LAM), W_STAR, T, rho_at=lambda t: rho[t])
    else:
        ref = run_matrix_form(lambda t: algo.parameters(), np.diag(LAM), W_STAR, T, rho_at=lambda t: RHO)
    np.testing.assert_allclose(its, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(loss_curve(algo, SPECTRUM, Noise.none(), T).loss, losses(its), rtol=1e-10, atol=0)


def test_regression_memory_sgd_kept_the_algorithm_weight_decay():
    # before: memory_sgd(algorithm) silently dropped the algorithm's weight decay
    decayed = iterates(memory_sgd(memsgd.heavy_ball(0.3, 0.8, weight_decay=0.2)))
    plain = iterates(memory_sgd(memsgd.heavy_ball(0.3, 0.8)))
    assert np.max(np.abs(decayed - plain)) > 0.1


def test_weight_decay_needs_params_and_rules():
    g = {"a": jnp.ones(2)}
    opt = am1(0.1, 0.9, 0.0, weight_decay=0.1)
    with pytest.raises(ValueError, match="with weight_decay needs the params"):
        opt.update(g, opt.init(g))
    # traced inside jit (inject_hyperparams): NaN updates rather than a silently dropped decay
    inj = optax.inject_hyperparams(am1)(learning_rate=0.1, momentum=0.9, kick=0.0, weight_decay=0.1)
    updates, _ = jax.jit(inj.update)(g, inj.init(g))
    assert np.all(np.isnan(np.asarray(updates["a"])))
    inj0 = optax.inject_hyperparams(am1)(learning_rate=0.1, momentum=0.9, kick=0.0)   # default 0: no params needed
    updates, _ = jax.jit(inj0.update)(g, inj0.init(g))
    np.testing.assert_allclose(np.asarray(updates["a"]), -0.1)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        am1(0.1, 0.9, 0.0, weight_decay=-0.1)
    with pytest.raises(ValueError, match="contradicts the algorithm's own weight decay"):
        memory_sgd(memsgd.heavy_ball(0.1, 0.9, weight_decay=0.1), weight_decay=0.2)
    with pytest.raises(ValueError, match="does not support a readout"):
        memory_sgd(memsgd.ema(memsgd.heavy_ball(0.1, 0.9), 0.9))
    with pytest.raises(ValueError, match="does not support a preconditioner"):
        memory_sgd(memsgd.MemoryAlgorithm(0.1, [0.9], [0.1], [[0.9]], preconditioner=0.5))
