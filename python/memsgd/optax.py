r"""SGD with memory as optax gradient transformations (JAX).

- [`am1`][memsgd.optax.am1]: heavy ball plus a kick, ``v <- beta v + g``, updates ``-(lr v + kick g)``; each
  hyperparameter a number or a schedule ``count -> value`` (works with
  ``optax.inject_hyperparams``).
- [`memory_sgd`][memsgd.optax.memory_sgd]: any memory-M algorithm in matrix form with ``e = 0`` (a
  [`memsgd.MemoryAlgorithm`][memsgd.MemoryAlgorithm]), or a non-stationary one (a
  [`memsgd.Schedule`][memsgd.schedules.Schedule]).

Both are pure ``init``/``update`` pairs with ``NamedTuple`` states, so they ``jit``, ``vmap`` and
compose with ``optax.chain``. Updates are what ``optax.apply_updates`` adds to the parameters.
``import memsgd.optax`` needs nothing beyond numpy; calling a factory needs jax and optax
(``pip install 'memsgd[jax]'``).

References: Yarotsky & Velikanov, "SGD with memory: fundamental properties and stochastic
acceleration" (ICLR 2025); the algorithms and their matrix form: docs/math.md §2.
"""
from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from ._affine import WEIGHTS_ONLY as _WEIGHTS_ONLY
from ._affine import refuse_affine
from ._optional import require_all
from ._validation import nonnegative_scalar, real_scalar, require_memory, step_count

__all__ = ["AM1State", "MemorySGDState", "am1", "memory_sgd"]


class AM1State(NamedTuple):
    """State of [`am1`][memsgd.optax.am1]: the step count (int32) and the velocity ``v`` (like the params).

    Examples:
        >>> import jax.numpy as jnp
        >>> import memsgd.optax
        >>> state = memsgd.optax.am1(0.1, 0.9, 0.5).init({"w": jnp.zeros(3)})
        >>> int(state.count), state.velocity["w"].shape
        (0, (3,))
    """

    count: Any
    velocity: Any


class MemorySGDState(NamedTuple):
    """State of [`memory_sgd`][memsgd.optax.memory_sgd]: the step count (int32) and the memory ``u``: a tuple of M
    trees like the params (``u^1..u^M``), so that every state leaf is shaped like its parameter
    (``optax.tree.map_params`` and sharding rules written for the params apply to it).

    Examples:
        >>> import jax.numpy as jnp, memsgd
        >>> import memsgd.optax
        >>> state = memsgd.optax.memory_sgd(memsgd.heavy_ball(0.1, 0.9)).init({"w": jnp.zeros(3)})
        >>> int(state.count), len(state.memory), state.memory[0]["w"].shape   # M = 1 tree like the params
        (0, 1, (3,))
    """

    count: Any
    memory: Any


def _modules(feature: str):
    jax, optax = require_all([("jax", "jax"), ("optax", "jax")], feature)
    return jax, jax.numpy, optax


def _hyperparameter(jax, value, name: str, nonnegative: bool):
    """A number (checked now), a 0-d floating jax/numpy array (e.g. from inject_hyperparams or
    vmap: its value may be a tracer, so it is not inspected), or a callable ``count -> value``."""
    if callable(value):
        return value
    check = nonnegative_scalar if nonnegative else real_scalar
    if isinstance(value, (jax.Array, np.ndarray)) and not isinstance(value, numbers.Number):
        if value.ndim != 0:
            raise ValueError(f"{name} must be a scalar (0-d) array, got shape {value.shape}")
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise TypeError(f"{name} must be a real number, got an array of dtype {value.dtype}")
        if isinstance(value, np.ndarray):
            check(value.item(), name)
        return value
    return check(value, name)


def _at(value, count):
    return value(count) if callable(value) else value


def _decayed(jax, updates, params, rho, count, feature: str):
    """``g + rho_t w`` (coupled L2 at the parameters, as torch.optim.SGD's weight_decay)."""
    if isinstance(rho, float) and rho == 0.0:
        return updates
    rho_t = _at(rho, count)
    if params is not None:
        return _tree_map(jax, lambda g, w: (g + rho_t * w).astype(g.dtype), updates, params)
    # no params: fine while the decay is 0 (optax.inject_hyperparams passes the default 0 as an array)
    try:
        value = float(rho_t)
    except (TypeError, jax.errors.ConcretizationTypeError):     # traced: known only inside the step
        value = None
    if value == 0.0:
        return updates
    if value is not None:
        raise ValueError(f"{feature} with weight_decay needs the params: call update(grads, state, params)")
    # a traced nonzero decay without params cannot raise here: NaN updates, so it cannot pass unnoticed
    return _tree_map(jax, lambda g: (g + jax.numpy.where(rho_t == 0, 0.0, jax.numpy.nan)).astype(g.dtype), updates)


def _tree_map(jax, f, *trees):
    """``jax.tree.map`` that passes masked (None) leaves through, as optax's transforms do."""
    return jax.tree.map(lambda g, *rest: None if g is None else f(g, *rest), *trees,
                        is_leaf=lambda g: g is None)


def _check_params(jax, jnp, params, feature: str) -> None:
    """Refuse integer or bool parameters (optax's alias optimizers would silently truncate their
    updates to zero, and jax.grad refuses them too): TypeError naming the leaf."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = getattr(leaf, "dtype", None)
        if dtype is not None and not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(f"{feature}: parameters must be floating-point or complex, but the leaf at "
                            f"{jax.tree_util.keystr(path) or 'the root'} has dtype {dtype} (integer "
                            f"parameters never change under a gradient step)")


def am1(learning_rate, momentum, kick, weight_decay=0.0):
    r"""AM1, heavy ball plus a kick (docs/math.md §2, presets table), as an optax transformation.

    With gradient ``g_t`` (plus ``weight_decay * w_t``) and step count ``t`` (0-based, kept in
    the state)::

        v_{t+1} = beta_t v_t + g_t                    (v_0 = 0)
        update  = -(lr_t v_{t+1} + kick_t g_t)        (added by optax.apply_updates)

    so ``w_{t+1} = w_t - lr_t v_{t+1} - kick_t g_t``: the torch [`memsgd.torch.AM1`][memsgd.torch.AM1]
    without a schedule, and in matrix form (``u = -lr v``) ``alpha = lr + kick, b = D = beta,
    c = lr``, ``alpha_eff = kick + lr / (1 - beta)``. ``kick = 0`` is
    ``optax.sgd(learning_rate, momentum)`` (same convention: a new ``lr_t`` scales the whole
    accumulated velocity, as torch's lr schedulers do). For the matrix form of a time-varying
    AM1, with ``lr_t`` inside the memory, use [`memory_sgd`][memsgd.optax.memory_sgd] with a
    [`memsgd.Schedule`][memsgd.schedules.Schedule].

    Args:
        learning_rate: ``lr >= 0``, a number or a callable ``count -> lr`` (an optax schedule).
        momentum: ``beta >= 0``, a number or a callable of the count.
        kick: ``eta``, the weight of the current gradient on top of heavy ball; a number or a
            callable of the count.
        weight_decay: ``rho >= 0``, a number or a callable of the count: coupled L2, the
            gradient becomes ``g + rho w`` (as ``torch.optim.SGD(weight_decay=)`` and
            [`memsgd.torch.AM1`][memsgd.torch.AM1]; the engine's weight decay, docs/math.md §9). ``update`` then
            needs the params (without them: a ValueError, or NaN updates inside ``jit`` where the
            decay is a traced value).

    Numbers are checked here (finite; ``lr``, ``beta`` >= 0); 0-d arrays (what
    ``optax.inject_hyperparams`` passes, possibly traced) are accepted unchecked.

    Returns:
        ``optax.GradientTransformationExtraArgs`` with state [`AM1State`][memsgd.optax.AM1State] (``update``
        takes and ignores extra keyword arguments, as optax's own optimizers do). Integer
        parameters are refused by ``init`` (TypeError).

    Examples:
        With ``kick = 0`` it is ``optax.sgd`` with momentum:

        >>> import jax.numpy as jnp, optax
        >>> import memsgd.optax
        >>> def descend(opt, params, steps=5):
        ...     state = opt.init(params)
        ...     for _ in range(steps):
        ...         updates, state = opt.update(2 * params, state, params)    # gradient of |params|^2
        ...         params = optax.apply_updates(params, updates)
        ...     return params
        >>> start = jnp.array([1.0, -2.0])
        >>> bool(jnp.allclose(descend(memsgd.optax.am1(0.1, 0.9, 0.0), start), descend(optax.sgd(0.1, 0.9), start)))
        True
    """
    jax, jnp, optax = _modules("memsgd.optax.am1")
    lr = _hyperparameter(jax, learning_rate, "learning_rate", nonnegative=True)
    beta = _hyperparameter(jax, momentum, "momentum", nonnegative=True)
    eta = _hyperparameter(jax, kick, "kick", nonnegative=False)
    rho = _hyperparameter(jax, weight_decay, "weight_decay", nonnegative=True)

    def init_fn(params):
        _check_params(jax, jnp, params, "memsgd.optax.am1")
        return AM1State(count=jnp.zeros([], jnp.int32),
                        velocity=_tree_map(jax, jnp.zeros_like, params))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        lr_t, beta_t, eta_t = (_at(h, state.count) for h in (lr, beta, eta))
        updates = _decayed(jax, updates, params, rho, state.count, "memsgd.optax.am1")
        velocity = _tree_map(jax, lambda g, v: (beta_t * v + g).astype(v.dtype), updates, state.velocity)
        new_updates = _tree_map(jax, lambda g, v: (-(lr_t * v + eta_t * g)).astype(g.dtype), updates, velocity)
        return new_updates, AM1State(count=optax.safe_int32_increment(state.count), velocity=velocity)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def memory_sgd(algorithm_or_schedule, *, steps=None, weight_decay=None):
    r"""A memory-M algorithm in matrix form (docs/math.md §2, P.3) as an optax transformation.

    With gradient ``g_t`` at the parameters ``w_t`` (``e = 0``; plus ``rho_t w_t`` with weight
    decay) and step count ``t``::

        update    = b_t^T u_t - alpha_t g_t          (w_{t+1} = w_t + update)
        u_{t+1}   = D_t u_t   - c_t g_t              (u_0 = 0)

    ``u`` holds M vectors shaped like the parameters (a tuple of M trees like the params).
    The iterates are those of [`memsgd.torch.MemorySGD`][memsgd.torch.MemorySGD] (stationary) and of
    [`memsgd.torch.AM1`][memsgd.torch.AM1] with a schedule, step for step.

    Args:
        algorithm_or_schedule: a [`memsgd.MemoryAlgorithm`][memsgd.MemoryAlgorithm] with ``e = 0`` (e.g.
            ``memsgd.heavy_ball(0.1, 0.9)``), or a [`memsgd.Schedule`][memsgd.schedules.Schedule] with ``e_t = 0``
            (e.g. ``schedules.am1_power_law``). The gradient point must be the iterate: an
            ``e != 0`` (Nesterov, schedule-free) would need the gradient at ``w + e^T u``.
        steps: for a schedule, how many steps to prepare (>= 1): its parameters are evaluated
            once, here, for steps ``0..steps-1`` and indexed by the count inside the jitted
            update (default: the schedule's length; required for schedules without one). A step
            past the end gives NaN updates, so an overrun cannot pass unnoticed. Tables that
            would not fit in memory are refused (ValueError) before anything is allocated.
            An integer, or a float that is one (``3e8``).
        weight_decay: ``rho >= 0``, coupled L2 (the gradient becomes ``g + rho w``, as
            ``torch.optim.SGD(weight_decay=)``; docs/math.md §9). Default ``None``: the
            algorithm's or schedule's own (``memsgd.heavy_ball(0.1, 0.9, weight_decay=1e-3)``, a
            schedule's per-step ``rho_t``), so that the iterates are those whose loss
            [`memsgd.loss_curve`][memsgd.loss_curve] gives. A number given for an algorithm that has a different
            weight decay of its own is refused. ``update`` needs the params when it is not 0.
            Algorithms with a readout or a preconditioner are refused (the optimizer moves the
            weights themselves).

    Returns:
        ``optax.GradientTransformationExtraArgs`` with state [`MemorySGDState`][memsgd.optax.MemorySGDState] (``update``
        takes and ignores extra keyword arguments). Integer parameters are refused by ``init``.

    Examples:
        Heavy ball from its matrix form follows ``optax.sgd`` with momentum (to rounding):

        >>> import jax.numpy as jnp, optax, memsgd
        >>> import memsgd.optax
        >>> def descend(opt, params, steps=5):
        ...     state = opt.init(params)
        ...     for _ in range(steps):
        ...         updates, state = opt.update(2 * params, state, params)    # gradient of |params|^2
        ...         params = optax.apply_updates(params, updates)
        ...     return params
        >>> start = jnp.array([1.0, -2.0])
        >>> ours = descend(memsgd.optax.memory_sgd(memsgd.heavy_ball(0.1, 0.9)), start)
        >>> bool(jnp.allclose(ours, descend(optax.sgd(0.1, 0.9), start), rtol=1e-5))
        True
    """
    from .algorithms import MemoryAlgorithm
    from .schedules import Schedule

    jax, jnp, optax = _modules("memsgd.optax.memory_sgd")
    if isinstance(algorithm_or_schedule, MemoryAlgorithm):
        if steps is not None:
            raise ValueError("steps is only for a Schedule (a MemoryAlgorithm is the same every step)")
        algo = algorithm_or_schedule
        if np.any(algo.e != 0):
            raise ValueError(f"algorithm_or_schedule must have e = 0 (gradient at the iterate), got e = "
                             f"{algo.e.tolist()}")
        refuse_affine(algo, None, "memsgd.optax.memory_sgd", _WEIGHTS_ONLY, allowed=("weight decay",))
        memory = algo.memory
        constants = (np.float64(algo.alpha), algo.b, algo.c, algo.D)
        rho = _own_weight_decay(algo.weight_decay, weight_decay)

        def coefficients(count):
            return tuple(jnp.asarray(x) for x in constants)
    elif isinstance(algorithm_or_schedule, Schedule):
        sched = algorithm_or_schedule
        if steps is None:
            if sched.length is None:
                raise ValueError(f"steps is required for a schedule without a length ({sched!r}): the "
                                 f"parameters of steps 0..steps-1 are prepared once")
            steps = sched.length
        steps = step_count(steps, "steps", minimum=1)
        refuse_affine(sched, None, "memsgd.optax.memory_sgd", _WEIGHTS_ONLY, allowed=("weight decay",))
        memory = sched.memory
        # the float64 tables (alpha, b, c, D, e), the generator's temporaries and the device copy
        require_memory(2.0 * 8 * steps * (1 + 3 * memory + memory ** 2), f"memory_sgd(schedule, steps={steps})")
        alpha, b, c, D, e = sched.parameters(steps)
        bad = np.flatnonzero(np.any(e != 0, axis=1))
        if bad.size:
            raise ValueError(f"algorithm_or_schedule must have e = 0 at every step (gradient at the iterate), "
                             f"got e = {e[bad[0]].tolist()} at step {int(bad[0])}")
        tables = tuple(jnp.asarray(x) for x in (alpha, b, c, D))
        del alpha, b, c, D, e
        own = sched.weight_decay
        rho = _own_weight_decay(own if not isinstance(own, np.ndarray) else sched.weight_decays(steps), weight_decay)
        if isinstance(rho, np.ndarray):
            rho_table = jnp.asarray(rho)

            def rho(count):
                return jnp.take(rho_table, count, mode="fill", fill_value=jnp.nan)

        def coefficients(count):
            return tuple(jnp.take(x, count, axis=0, mode="fill", fill_value=jnp.nan) for x in tables)
    else:
        raise TypeError(f"algorithm_or_schedule must be a memsgd.MemoryAlgorithm or a memsgd.Schedule, "
                        f"got {type(algorithm_or_schedule).__name__}")

    def init_fn(params):
        _check_params(jax, jnp, params, "memsgd.optax.memory_sgd")
        return MemorySGDState(count=jnp.zeros([], jnp.int32),
                              memory=tuple(_tree_map(jax, jnp.zeros_like, params) for _ in range(memory)))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        alpha_t, b_t, c_t, D_t = coefficients(state.count)
        updates = _decayed(jax, updates, params, rho, state.count, "memsgd.optax.memory_sgd")

        def update(g, *u):                              # b^T u - alpha g
            out = -alpha_t * g
            for j in range(memory):
                out = out + b_t[j] * u[j]
            return out.astype(g.dtype)

        def remember(i):                                # u^i <- sum_j D_ij u^j - c_i g
            def new(g, *u):
                out = -c_t[i] * g
                for j in range(memory):
                    out = out + D_t[i, j] * u[j]
                return out.astype(u[i].dtype)
            return new

        new_updates = _tree_map(jax, update, updates, *state.memory)
        new_memory = tuple(_tree_map(jax, remember(i), updates, *state.memory) for i in range(memory))
        return new_updates, MemorySGDState(count=optax.safe_int32_increment(state.count), memory=new_memory)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _own_weight_decay(own, given):
    """The weight decay to run: the algorithm's ``own`` (a number or per-step array) unless
    ``given``; a given number that contradicts a nonzero own one is refused."""
    if given is None:
        if isinstance(own, np.ndarray):
            return own if np.any(own) else 0.0
        return float(own)
    given = nonnegative_scalar(given, "weight_decay")
    if np.any(own) and not (np.ndim(own) == 0 and float(own) == given):
        shown = f"{float(own):g}" if np.ndim(own) == 0 else "per-step values"
        raise ValueError(f"weight_decay={given:g} contradicts the algorithm's own weight decay ({shown}): "
                         f"pass weight_decay=None to use it, or an algorithm without one")
    return given
