"""What a researcher would write instead of memsgd: the heavy-ball (memory 1, e = 0) mean-loss
recursion of docs/math.md §3 as a hand-written JAX ``lax.scan`` in float64 (Gaussian noise,
tau1 = 1, tau2 = -1). Shared by bench_engine.py (one curve) and bench_sweep.py (vmap over a grid)."""
import numpy as np


def heavy_ball_curve(spectrum, batch, steps):
    """``curve(lr, beta) -> L_0..L_{steps-1}``, a traceable JAX function (jit / vmap it).

    Per component the state is (X00, X01, X11) and S = [[1 - lam lr, beta], [-lam lr, beta]]."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    lam = jnp.asarray(spectrum.eigenvalues)
    half_wl = 0.5 * jnp.asarray(spectrum.weights) * lam
    c2 = jnp.asarray(spectrum.coefficients2)

    def curve(lr, beta):
        s00, s10 = 1.0 - lam * lr, -lam * lr

        def step(state, _):
            p, q, r = state
            L = jnp.dot(half_wl, p)
            noise = lam * (2.0 * L + lam * p) / batch        # tau1 = 1, tau2 = -1
            z00, z01 = s00 * p + beta * q, s00 * q + beta * r
            z10, z11 = s10 * p + beta * q, s10 * q + beta * r
            y00 = z00 * s00 + z01 * beta + noise * lr * lr
            y01 = z00 * s10 + z01 * beta + noise * lr * lr
            y11 = z10 * s10 + z11 * beta + noise * lr * lr
            return (y00, y01, y11), L

        return jax.lax.scan(step, (c2, jnp.zeros_like(c2), jnp.zeros_like(c2)), None, length=steps)[1]

    return curve


def compiled(fn, *args):
    """``fn(*args)`` jitted, compiled once, as a zero-argument callable returning numpy."""
    import jax

    run = jax.jit(fn)
    run(*args).block_until_ready()
    return lambda: np.asarray(run(*args).block_until_ready())
