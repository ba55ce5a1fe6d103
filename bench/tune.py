"""Tune one method's hyperparameters over a grid with the exact engine (memsgd.experiments.tuning).

Usage: python bench/tune.py --method AM1 --nu 2 --kappa 1 --batch 10 --steps 10000
       python bench/tune.py --method "heavy ball" --grid lr=0.1,0.2,0.4 --grid momentum=0.9,0.95

Default grids are those of the tuned comparison (memsgd.experiments.compare.default_grids).
Prints every grid point (sorted by loss at T) and the winner.
"""
import argparse
import sys

from memsgd import Noise, Spectrum
from memsgd.experiments import common, compare, tuning


def parse_grid(items):
    grid = {}
    for item in items:
        name, _, values = item.partition("=")
        if not name or not values:
            raise ValueError(f"--grid must look like name=v1,v2,..., got {item!r}")
        grid[name.strip()] = [float(v) for v in values.split(",")]
    return grid


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="AM1", choices=sorted(compare.METHODS))
    p.add_argument("--nu", type=float, default=2.0)
    p.add_argument("--kappa", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--objective", default="final", choices=tuning.OBJECTIVES)
    p.add_argument("--grid", action="append", default=[], help="name=v1,v2,... (repeatable); default: compare's grid")
    args = p.parse_args(argv)
    grid = parse_grid(args.grid) if args.grid else compare.default_grids(args.nu)[args.method]
    spec = Spectrum.power_law(args.nu, args.kappa, head=1024)
    res = tuning.tune(compare.METHODS[args.method], grid, spec, Noise.gaussian(args.batch), args.steps,
                      objective=args.objective)
    rows = []
    for t in sorted(res.trials, key=lambda t: t["score"]):
        rows.append([", ".join(f"{k}={v:g}" for k, v in t["params"].items()), common.fmt(t["score"], ".4e"),
                     t["diverged_at"] if t["diverged_at"] is not None else "-"])
    print(f"# {args.method} on nu={args.nu:g}, kappa={args.kappa:g}, B={args.batch}, T={args.steps}, "
          f"objective={args.objective}")
    print(common.format_table(["parameters", "score", "diverged_at"], rows))
    print(f"# best: {res.best}  score {res.score:.4e}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, TypeError) as exc:
        print(f"tune.py: error: {exc}", file=sys.stderr)
        sys.exit(2)
