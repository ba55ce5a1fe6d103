"""Accuracy of the deterministic equivalent of Spectrum.random_features against sampled models.

For each phase of the 4+3 phase plane (a representative (alpha, beta), memsgd.scaling.PHASES) and
each d, v = 4 d: n sampled feature matrices W (i.i.d. N(0, 1/d)) against the equivalent
(Spectrum.random_features(alpha, beta, d, v)). Each sample is solved here in plain numpy
(K = W^T H W by eigh, theta* by the normal equations, F0 as the residual), independently of
memsgd's SVD path, which is slower at d = 1000:

- floor F0(d): equivalent / sample mean - 1, with the standard error of the sample mean;
- smallest eigenvalue: the equivalent's Tracy-Widom-corrected expectation, its support edge;
- population risk of SGD (B = 1, lr = 0.5 / tr K of the equivalent, label noise 2 F0 of each
  model) on ~40 log-spaced steps up to T: the largest |equivalent / mean - 1| and, at that step,
  the standard error of the mean (relative).

Usage: python bench/rf_accuracy.py [--d 100 1000] [--samples 20] [--steps 100000] [--out FILE.json]
Writes the JSON and prints a markdown table (docs/scaling-laws.md quotes it).
"""
import argparse
import json
import math
import sys
import time

import numpy as np

import memsgd
from memsgd.scaling import PHASES


def sample(alpha, beta, d, v, seed):
    """(eigenvalues of K, c^2, F0) of one W with i.i.d. N(0, 1/d) entries."""
    j = np.arange(1, v + 1, dtype=np.float64)
    A = j[:, None] ** -alpha * np.random.default_rng(seed).standard_normal((v, d)) / math.sqrt(d)
    g = j ** (-alpha - beta)
    mu, V = np.linalg.eigh(A.T @ A)
    p = V.T @ (A.T @ g)
    theta = V @ (p / mu)
    return mu[::-1], (p / mu)[::-1] ** 2, 0.5 * float(np.sum((A @ theta - g) ** 2))


def study(alpha, beta, d, n, steps):
    v = 4 * d
    t0 = time.perf_counter()
    de = memsgd.Spectrum.random_features(alpha, beta, d, v)
    t_de = time.perf_counter() - t0
    drawn = [sample(alpha, beta, d, v, 1000 + k) for k in range(n)]
    samples = [memsgd.Spectrum(mu, c2) for mu, c2, _ in drawn]
    floors = [f0 for _, _, f0 in drawn]
    lr = 0.5 / float(np.sum(de.weights * de.eigenvalues))
    specs = samples + [de]
    noises = [memsgd.Noise.gaussian(1, label_noise=2 * f0) for f0 in floors + [de.floor]]
    curves = memsgd.loss_curves([memsgd.gd(lr)] * len(specs), specs, noises, steps, record=40)
    total = curves.loss + np.asarray(floors + [de.floor])[:, None]
    mc, eq = total[:n], total[n]
    mean, se = mc.mean(axis=0), mc.std(axis=0, ddof=1) / math.sqrt(n)
    rel = eq / mean - 1
    k = int(np.argmax(np.abs(rel[1:]))) + 1
    f0 = np.array(floors)
    mins = np.array([s.eigenvalues.min() for s in samples])
    info = de.random_features_info
    return {
        "alpha": alpha, "beta": beta, "d": d, "v": v, "samples": n, "steps": steps, "lr": lr,
        "equivalent_seconds": t_de, "equivalent_nodes": de.size,
        "floor_rel": de.floor / f0.mean() - 1, "floor_se": f0.std(ddof=1) / math.sqrt(n) / f0.mean(),
        "smallest_rel": info.smallest / mins.mean() - 1, "edge_rel": info.edge / mins.mean() - 1,
        "smallest_se": mins.std(ddof=1) / math.sqrt(n) / mins.mean(),
        "curve_max_rel": float(rel[k]), "curve_se_there": float(se[k] / mean[k]),
        "curve_step_there": int(curves.steps[k]),
        "curve_rel_at_T": float(rel[-1]), "curve_se_at_T": float(se[-1] / mean[-1]),
    }


def table(rows):
    out = ["| phase | alpha | beta | d | samples | F0: DE/MC - 1 (± s.e.) | smallest eig.: DE/MC - 1 (± s.e.) "
           "[edge] | SGD risk curve: max DE/MC - 1 (± s.e. there) | at T |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['phase']} | {r['alpha']:g} | {r['beta']:g} | {r['d']} | {r['samples']} | "
                   f"{100 * r['floor_rel']:+.2f}% (± {100 * r['floor_se']:.2f}%) | "
                   f"{100 * r['smallest_rel']:+.2f}% (± {100 * r['smallest_se']:.2f}%) [{100 * r['edge_rel']:+.1f}%] | "
                   f"{100 * r['curve_max_rel']:+.2f}% (± {100 * r['curve_se_there']:.2f}%) "
                   f"at t={r['curve_step_there']} | "
                   f"{100 * r['curve_rel_at_T']:+.2f}% (± {100 * r['curve_se_at_T']:.2f}%) |")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--steps", type=float, default=1e5)
    p.add_argument("--phases", nargs="+", default=list(PHASES))
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    rows = []
    for d in a.d:
        for name in a.phases:
            alpha, beta = PHASES[name]
            t0 = time.perf_counter()
            r = study(alpha, beta, d, a.samples, int(a.steps))
            r["phase"] = name
            rows.append(r)
            print(f"# {name} d={d}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            if a.out:
                with open(a.out, "w") as f:
                    json.dump(rows, f, indent=1)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
