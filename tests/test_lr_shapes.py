"""memsgd.lr_shapes: every shape against torch's and optax's own schedulers where they exist (1e-12
of the peak, per step), against plain formulas where they do not (1-sqrt cooldown, inverse
square root); the JAX path against the numpy path; reading the frameworks' schedules."""
import doctest
import pickle

import numpy as np
import pytest

from memsgd import lr_shapes

from ._extras import EXTRA_OF, has, need

T = 200
TOL = 1e-12


def close(got, want, peak):
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL * peak)


# -- torch ----------------------------------------------------------------------------------

def torch_values(make_sched, lr, steps=T, key="lr", **sgd):
    """The values a torch scheduler sets, read by stepping it for real (optimizer.step first)."""
    torch = need("torch")
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=lr, **sgd)
    sched = make_sched(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0][key])
        opt.step()
        sched.step()
    return np.array(out)


def test_torch_schedulers():
    torch = need("torch")
    L = torch.optim.lr_scheduler
    w, n = 15, 50
    cases = [
        (lambda o: L.LinearLR(o, 0.2, 0.7, 40), 1.0, lr_shapes.linear(0.2, 0.7, 40)),
        (lambda o: L.CosineAnnealingLR(o, T - 1, eta_min=0.05), 0.8, lr_shapes.cosine(0.8, T - 1, final=0.05)),
        (lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.1, 1.0, w), L.CosineAnnealingLR(o, T - w, eta_min=0.01)], [w]),
         0.8, lr_shapes.cosine(0.8, T, final=0.01, warmup_steps=w, warmup_start=0.08)),
        (lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.1, 1.0, w), L.ConstantLR(o, 1.0, 1),
                                      L.LinearLR(o, 1.0, 0.0, n)], [w, T - n]),
         0.8, lr_shapes.wsd(0.8, T, n / T, "linear", w, warmup_start=0.08)),
        (lambda o: L.SequentialLR(o, [L.ConstantLR(o, 1.0, 1), L.CosineAnnealingLR(o, n, eta_min=0.02)], [T - n]),
         0.8, lr_shapes.wsd(0.8, T, n / T, "cosine", final=0.02)),
        (lambda o: L.StepLR(o, 30, 0.5), 0.8, lr_shapes.step_decay(0.8, 0.5, step_size=30)),
        (lambda o: L.MultiStepLR(o, [40, 90, 150], 0.3), 0.8, lr_shapes.step_decay(0.8, 0.3, milestones=[40, 90, 150])),
        (lambda o: L.ExponentialLR(o, 0.98), 0.8, lr_shapes.exponential(0.8, 0.98)),
        (lambda o: L.OneCycleLR(o, 1.0, total_steps=T), 0.1, lr_shapes.one_cycle(1.0, T)),
        (lambda o: L.OneCycleLR(o, 1.0, total_steps=T, pct_start=0.25, anneal_strategy="linear", div_factor=10,
                                final_div_factor=100), 0.1,
         lr_shapes.one_cycle(1.0, T, pct_start=0.25, anneal="linear", div_factor=10, final_div_factor=100)),
    ]
    for make, lr, shape in cases:
        close(shape.values(T), torch_values(make, lr), max(lr, 1.0))


def test_torch_one_cycle_momentum():
    torch = need("torch")
    L = torch.optim.lr_scheduler
    got = torch_values(lambda o: L.OneCycleLR(o, 1.0, total_steps=T, base_momentum=0.8, max_momentum=0.95), 0.1,
                       key="momentum", momentum=0.9)
    close(lr_shapes.one_cycle_momentum(T, base=0.8, max=0.95).values(T), got, 1.0)
    # and from_torch_scheduler reads the same values off a copy
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    sched = L.OneCycleLR(torch.optim.SGD([p], lr=0.1, momentum=0.9), 1.0, total_steps=T, base_momentum=0.8,
                         max_momentum=0.95)
    np.testing.assert_array_equal(lr_shapes.from_torch_scheduler(sched, T, key="momentum"), got)


def test_shape_as_a_lambda_lr_multiplier():
    torch = need("torch")
    shape = lr_shapes.wsd(1.0, T, 0.3, "1-sqrt", warmup_steps=10)
    got = torch_values(lambda o: torch.optim.lr_scheduler.LambdaLR(o, shape), 0.5)
    close(got, 0.5 * shape.values(T), 1.0)


# -- optax ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jax64():
    jax = need("jax")
    need("optax")
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield jax
    jax.config.update("jax_enable_x64", previous)


def optax_values(schedule):
    """The schedule's formula in float64: int64 counts (optax's own int32 count makes some schedules,
    e.g. linear_schedule, compute in float32; that is what from_optax_schedule reproduces)."""
    import jax.numpy as jnp
    return np.asarray(schedule(jnp.arange(T, dtype=jnp.int64)), dtype=np.float64)


def test_optax_schedules(jax64):
    import optax
    w, n = 15, 50
    join = optax.join_schedules
    cases = [
        (optax.linear_schedule(0.2, 0.7, 40, transition_begin=12), lr_shapes.linear(0.2, 0.7, 40, begin=12)),
        (optax.cosine_decay_schedule(0.8, T - 1, alpha=0.05 / 0.8), lr_shapes.cosine(0.8, T - 1, final=0.05)),
        (optax.warmup_cosine_decay_schedule(0.08, 0.8, w, T, 0.01),
         lr_shapes.cosine(0.8, T, final=0.01, warmup_steps=w, warmup_start=0.08)),
        (join([optax.linear_schedule(0.0, 0.8, w), optax.constant_schedule(0.8), optax.linear_schedule(0.8, 0.01, n)],
              [w, T - n]), lr_shapes.wsd(0.8, T, n / T, "linear", w, final=0.01)),
        (join([optax.linear_schedule(0.0, 0.8, w), optax.constant_schedule(0.8),
               optax.cosine_decay_schedule(0.8, n, 0.0)], [w, T - n]), lr_shapes.wsd(0.8, T, n / T, "cosine", w)),
        (optax.exponential_decay(0.8, 30, 0.5, staircase=True), lr_shapes.step_decay(0.8, 0.5, step_size=30)),
        (optax.piecewise_constant_schedule(0.8, {40: 0.3, 90: 0.3, 150: 0.3}),
         lr_shapes.step_decay(0.8, 0.3, milestones=[40, 90, 150])),
        (optax.exponential_decay(0.8, 1, 0.98), lr_shapes.exponential(0.8, 0.98)),
        (optax.warmup_constant_schedule(0.0, 0.8, w), lr_shapes.wsd(0.8, T, 0.0, warmup_steps=w)),
    ]
    for schedule, shape in cases:
        close(shape.values(T), optax_values(schedule), 1.0)


def test_shapes_without_a_framework_twin_against_their_formulas():
    t = np.arange(T, dtype=float)
    peak, w, n, final = 0.8, 10, 60, 0.05
    c = T - n
    want = np.where(t < w, peak * t / w, peak)
    x = np.clip((t - c) / n, 0, 1)
    want = np.where(t >= c, final + (peak - final) * (1 - np.sqrt(x)), want)
    close(lr_shapes.wsd(peak, T, n / T, "1-sqrt", w, final=final).values(T), want, peak)
    # inverse square root: the Transformer's peak * min(t / w, sqrt(w / t)) (linear warmup from 0)
    want = np.where(t < w, peak * t / w, peak * np.sqrt(w / np.maximum(t, 1)))
    close(lr_shapes.inverse_sqrt(peak, w).values(T), want, peak)
    close(lr_shapes.inverse_sqrt(peak).values(T), peak / np.sqrt(t + 1), peak)
    close(lr_shapes.constant(0.3).values(5), np.full(5, 0.3), 1.0)


ALL = [lr_shapes.constant(0.3), lr_shapes.linear(0.0, 0.9, 30, begin=5), lr_shapes.cosine(0.8, 150, 0.01, 10, 0.1),
       lr_shapes.wsd(0.8, 150, 0.3, "1-sqrt", 10), lr_shapes.wsd(0.8, 150, 0.3, "cosine"),
       lr_shapes.step_decay(0.8, 0.5, milestones=[20, 70]), lr_shapes.exponential(0.8, 0.99),
       lr_shapes.inverse_sqrt(0.8, 12), lr_shapes.one_cycle(1.0, 150), lr_shapes.one_cycle_momentum(150)]


@pytest.mark.parametrize("shape", ALL, ids=repr)
def test_jax_path_is_the_numpy_path(shape, jax64):
    import jax.numpy as jnp
    np.testing.assert_allclose(np.asarray(shape(jnp.arange(T))), shape.values(T), rtol=1e-14, atol=1e-15)
    # as optax calls it (int32 counts, jitted): the same in float64
    np.testing.assert_allclose(lr_shapes.from_optax_schedule(shape, T), shape.values(T), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("shape", ALL, ids=repr)
def test_shapes_pickle_compare_and_take_scalars(shape):
    again = pickle.loads(pickle.dumps(shape))
    assert again == shape and hash(again) == hash(shape) and repr(again) == repr(shape)
    np.testing.assert_array_equal(again.values(50), shape.values(50))
    assert isinstance(shape(7), float) and shape(7) == shape.values(8)[7]
    assert repr(shape).startswith("lr_shapes.")


def test_docstring_examples():
    # every example of the module (tests/test_examples.py runs those of the API page too); one
    # that imports a missing extra (torch, optax) is left out
    runner = doctest.DocTestRunner()
    ran = 0
    for test in doctest.DocTestFinder().find(lr_shapes):
        imported = [ex.source.split()[1].split(".")[0] for ex in test.examples
                    if ex.source.startswith(("import ", "from "))]
        if all(has(module) for module in imported if module in EXTRA_OF):
            runner.run(test)
            ran += len(test.examples)
    assert ran >= 10 and runner.failures == 0


@pytest.mark.parametrize("make, match", [
    (lambda: lr_shapes.cosine(-1.0, 10), "peak must be >= 0"),
    (lambda: lr_shapes.cosine(1.0, 10, warmup_steps=10), "warmup_steps must be < steps"),
    (lambda: lr_shapes.wsd(1.0, 10, cooldown_fraction=1.5), r"cooldown_fraction must be in \[0, 1\]"),
    (lambda: lr_shapes.wsd(1.0, 10, cooldown="sqrt"), "cooldown must be one of linear, 1-sqrt, cosine"),
    (lambda: lr_shapes.wsd(1.0, 10, 0.5, warmup_steps=6), "warmup_steps \\+ cooldown steps must be <= steps"),
    (lambda: lr_shapes.step_decay(1.0, 0.5), "exactly one of step_size"),
    (lambda: lr_shapes.step_decay(1.0, 0.5, milestones=[5, 3]), "strictly increasing"),
    (lambda: lr_shapes.linear(0.0, 1.0, 0), "steps must be >= 1"),
    (lambda: lr_shapes.one_cycle(1.0, 10, pct_start=1.0), r"pct_start must be in \(0, 1\)"),
    (lambda: lr_shapes.one_cycle(1.0, 3, pct_start=0.1), "pct_start \\* steps - 1 must lie strictly"),
    (lambda: lr_shapes.inverse_sqrt(1.0, timescale=0), "timescale must be > 0"),
    (lambda: lr_shapes.cosine(1.0, 2.5), "steps must be an integer"),
])
def test_argument_checks(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_framework_readers_refuse_what_they_cannot_read():
    with pytest.raises(TypeError, match="torch.optim.lr_scheduler scheduler"):
        need("torch")
        lr_shapes.from_torch_scheduler(lambda t: 0.1, 5)
    with pytest.raises(TypeError, match="schedule must be callable"):
        need("jax")
        lr_shapes.from_optax_schedule([0.1, 0.2], 2)
