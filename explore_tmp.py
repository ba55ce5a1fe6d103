import numpy as np, memsgd as ms, warnings, sys
from tests.reference import recursion_rounding
from tests.test_long_horizon_extremes import _random_problem
from memsgd.long_horizon import loss_at
def affine(seed):
    algo, spec, noise = _random_problem(seed)
    rng = np.random.default_rng(10_000 + seed)
    kind = int(rng.integers(3))
    sigma2 = float(10 ** rng.uniform(-3, 0)) if kind != 1 else 0.0
    rho = float(10 ** rng.uniform(-4, -1)) if kind != 0 else 0.0
    B = noise.batch_size if np.isfinite(noise.batch_size) else 10.0
    noise = ms.Noise(B, noise.tau1 if noise.coupling else 0.0, noise.tau2 if noise.coupling else 0.0, label_noise=sigma2)
    algo = ms.MemoryAlgorithm(algo.alpha, algo.b, algo.c, algo.D, algo.e, weight_decay=rho)
    return algo, spec, noise
bad = 0; n = 0
for seed in range(int(sys.argv[1]), int(sys.argv[2])):
    algo, spec, noise = affine(seed)
    T = 20000
    curve = ms.loss_curve(algo, spec, noise, T)
    if curve.diverged_at is not None: continue
    steps = np.unique(np.geomspace(1, T, 60).round().astype(np.int64))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            got = loss_at(algo, spec, noise, steps)
        except Exception as e:
            print(seed, "RAISE", e); bad += 1; continue
    ref = curve.loss[steps]
    diff = np.abs(got.loss - ref)
    n += 1
    ok = np.all(diff <= got.error + recursion_rounding(ref, steps) + 1e-300) and np.all(diff / ref <= 1e-8) and not w and np.all(got.loss >= 0)
    try:
        far = loss_at(algo, spec, noise, [10**6, 10**9, 10**12], warn=False)
    except ValueError as e:
        print(seed, "far raises", str(e)[:150], algo, noise); continue
    rep = ms.stability(algo, spec, noise)
    okfar = (abs(far.loss[-1] / rep.noise_floor - 1) < 1e-12 if rep.converges else np.isinf(far.loss[-1])) and not far.warnings
    if not (ok and okfar):
        bad += 1
        print(seed, algo.weight_decay, noise.label_noise, "max", np.max(diff/ref), np.max(diff / (got.error + recursion_rounding(ref, steps))), [str(x.message)[:100] for x in w], far.loss[-1] / rep.noise_floor - 1, far.warnings)
print("checked", n, "bad", bad)
