"""Speed of a compute-optimal frontier study: 6 phases x 8 model sizes x 1e5 steps (SGD, B = 1).

memsgd: :func:`memsgd.compute_optimal` for each phase of memsgd.scaling.PHASES on d = 32 2^(k/2),
k = 0..7 (32..362), budgets up to 1e5 steps at every d (f = T d <= 1e5 d): the deterministic
equivalent of every d plus one exact batched engine run per d, float64, no sampling error.

Baseline, timed in the same process: what the peer's notebook does for the same study
(LosVolterrosHermanos/Experimental, SGD_powerlaws_approximate_loss_curves.ipynb: real SGD on
the features of sampled W, RUNS = 5 seeds per (phase, d), v = 10 d), written here as a jitted
JAX ``lax.scan`` in float32 (one step: draw x ~ N(0, I_v), features x (D^(1/2) W), update theta).
Its per-step time is measured at two d on a short run and the full study's time extrapolated
(per-step cost ~ v d = 10 d^2). It estimates the mean only up to sampling error (5 seeds, each a
different W), at every recorded step.

The peer's other route, the log-time ODE (power_law_rf/ode.py), is not run here (its code does
not ship with memsgd); read for its cost: per (phase, d) one sampled W and the eigendecomposition
of W^T D W, then an implicit Euler scan of ln(T)/dt = 1151 steps (dt = 0.01) over 3 x 3 x d
blocks in float32, jit-compiled per shape. Timed once on this machine (one process, its code run
from the fetched repository, the same 48 points to T = 1e5): 49 s CPU (274 s wall at load ~16),
with 7-44 % error at t < 100 (docs/scaling-laws.md).

Reported: wall time and CPU time (process_time, all threads) of each part; on a shared machine the
CPU time is the steadier number.

Usage: python bench/bench_scaling.py [--quick]   (the machine may be shared: ratios, one process)
"""
import argparse
import sys
import time

import numpy as np

import memsgd
from memsgd.scaling import PHASES, compute_optimal

D_GRID = [int(round(32 * 2 ** (k / 2))) for k in range(8)]
STEPS = 100_000
RUNS = 5


def memsgd_study(d_grid, steps):
    """((wall, CPU) seconds building the 48 equivalents, (wall, CPU) seconds of the frontier runs,
    results). The equivalents are cached, so compute_optimal's own calls find them built."""
    flops = np.geomspace(10.0 * d_grid[-1], steps * d_grid[0], 13)
    t0, c0 = time.perf_counter(), time.process_time()
    for a, b in PHASES.values():
        for d in d_grid:
            memsgd.Spectrum.random_features(a, b, d, None if 2 * a > 1 else 4 * d)
    build = (time.perf_counter() - t0, time.process_time() - c0)
    t0, c0 = time.perf_counter(), time.process_time()
    out = {name: compute_optimal("sgd", a, b, flops, d=d_grid, max_steps=steps, method="engine")
           for name, (a, b) in PHASES.items()}
    return build, (time.perf_counter() - t0, time.process_time() - c0), out


def mc_step_time(d, steps=300):
    """(wall, CPU) seconds per SGD step of the Monte Carlo baseline at model size d (v = 10 d), jitted
    JAX, float32."""
    import jax
    import jax.numpy as jnp

    v = 10 * d
    key = jax.random.PRNGKey(0)
    j = jnp.arange(1, v + 1, dtype=jnp.float32)
    W = jax.random.normal(key, (v, d), dtype=jnp.float32) / jnp.sqrt(d)
    check_w = (j ** -1.0)[:, None] * W
    check_b = j ** -1.7
    lr = 0.5 / float(jnp.sum(j ** -2.0))

    @jax.jit
    def run(key):
        def step(theta, k):
            x = jax.random.normal(k, (1, v), dtype=jnp.float32)
            a, y = x @ check_w, x @ check_b
            theta = theta - lr * (a.T @ (a @ theta - y))
            return theta, jnp.sum((check_w @ theta - check_b) ** 2)
        return jax.lax.scan(step, jnp.zeros(d, jnp.float32), jax.random.split(key, steps))[1]

    run(key).block_until_ready()              # compile
    t0, c0 = time.perf_counter(), time.process_time()
    run(jax.random.PRNGKey(1)).block_until_ready()
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="4 sizes, 1e4 steps (seconds)")
    a = p.parse_args(argv)
    d_grid, steps = (D_GRID[:4], 10_000) if a.quick else (D_GRID, STEPS)
    (w_build, c_build), (w_runs, c_runs), out = memsgd_study(d_grid, steps)
    total = w_build + w_runs
    print(f"memsgd: {len(PHASES)} phases x {len(d_grid)} d ({d_grid[0]}..{d_grid[-1]}) x {steps} steps: "
          f"{total:.1f} s wall ({c_build + c_runs:.1f} s CPU) = {w_build:.1f} s wall ({c_build:.1f} s CPU) "
          f"building the "
          f"{len(PHASES) * len(d_grid)} deterministic equivalents + {w_runs:.2f} s wall ({c_runs:.2f} s CPU) of exact "
          f"engine runs and fits, float64")
    for name, res in out.items():
        print(f"  {name}: xi {res.d_exponent:.3f}  eta {res.loss_exponent:.3f}  "
              f"(interior budgets {int(res.interior.sum())}/{res.flops.size})")
    try:
        small, large = d_grid[0], d_grid[-1]
        (ts, cs), (tl, cl) = mc_step_time(small), mc_step_time(large)
    except ImportError:
        print("baseline skipped: needs jax")
        return 0
    def study(t_small, t_large):
        # per-step cost ~ c0 + c1 d^2: fit through the two sizes, sum over the grid
        c1 = max((t_large - t_small) / (large ** 2 - small ** 2), 0.0)
        c0 = max(t_small - c1 * small ** 2, 0.0)
        return len(PHASES) * sum(RUNS * steps * (c0 + c1 * d * d) for d in d_grid)

    mc, mc_cpu = study(ts, tl), study(cs, cl)
    print(f"Monte Carlo baseline (peer notebook: {RUNS} seeds per point, v = 10 d, jitted JAX float32): "
          f"{ts * 1e6:.1f} us/step at d={small}, {tl * 1e6:.1f} us/step at d={large} (wall); the study extrapolates to "
          f"{mc:.0f} s = {mc / 3600:.1f} h wall ({mc / total:.0f}x memsgd's wall time), {mc_cpu:.0f} s CPU "
          f"({mc_cpu / (c_build + c_runs):.0f}x memsgd's CPU time), with sampling error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
