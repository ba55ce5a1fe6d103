"""Beyond the paper: AM1 vs schedule-free SGD vs QHM vs Nesterov vs heavy ball (and SGD).

Every method is tuned over a small grid by the exact engine ([`tuning.tune`][memsgd.experiments.tuning.tune], objective:
loss at T) separately on each problem and batch size; the table reports the winner's
parameters, its loss at T, and its exponent fitted on ``[T/10, T]``. Problems are infinite
Gaussian power laws with ``lambda_max = 1`` and Gaussian mini-batch noise.

Caveat (stated in the table header): the grids are small and tuning is at the horizon T, so a
method's rank can change at other horizons; an AM1 schedule with ``delta >= 1 - 1/nu`` may look
good at T and diverge later -- the AM1 grid keeps only ``delta < 1 - 1/nu``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Optional

from .. import schedules
from .._sweep_run import executor_kind
from .._validation import positive_int, positive_ints, power_law_pairs
from ..algorithms import gd, heavy_ball, nesterov, qhm
from ..noise import Noise
from ..spectrum import Spectrum
from ..theory import fit_exponent
from . import common
from .tuning import grid_points, tune

__all__ = ["METHODS", "CompareConfig", "default_grids", "at_grid_edge", "small_config", "run"]


def _am1(kick, delta, t0):
    return schedules.am1_power_law(kick, delta, 1.0, t0)


METHODS = {
    "SGD": gd,
    "heavy ball": heavy_ball,
    "Nesterov": nesterov,
    "QHM": qhm,
    "schedule-free SGD": schedules.schedule_free_sgd,
    "AM1": _am1,
}


def default_grids(nu: float) -> dict[str, dict[str, Sequence[float]]]:
    """The tuning grid of each method for a power law with exponent ``nu``.

    Examples:
        >>> from memsgd.experiments.compare import default_grids
        >>> default_grids(2.0)["SGD"]
        {'lr': [0.5, 1.0, 1.5, 1.9]}
    """
    stable = [d for d in (0.15, 0.3, 0.45, 0.6) if d < 1.0 - 1.0 / nu]
    return {
        "SGD": {"lr": [0.5, 1.0, 1.5, 1.9]},                       # lambda_max = 1: lr < 2 noiseless
        "heavy ball": {"lr": [0.1, 0.2, 0.4, 0.8, 1.6], "momentum": [0.8, 0.9, 0.95, 0.98, 0.99]},
        "Nesterov": {"lr": [0.1, 0.2, 0.4, 0.8, 1.6], "momentum": [0.8, 0.9, 0.95, 0.98, 0.99]},
        "QHM": {"lr": [1.0, 2.0, 4.0, 8.0], "momentum": [0.99, 0.999, 0.9999], "nu": [0.7, 0.9, 0.97, 0.99]},
        "schedule-free SGD": {"lr": [2.0, 4.0, 8.0, 16.0, 32.0], "beta": [0.9, 0.95, 0.98, 0.99]},
        "AM1": {"kick": [0.5, 1.0, 1.5, 1.9], "delta": stable, "t0": [3.0, 10.0, 30.0]},
    }


def at_grid_edge(params, grid) -> list:
    """Names of parameters whose tuned value is the smallest or largest of a grid with >= 3 values."""
    out = []
    for k, v in (params or {}).items():
        vals = sorted(float(x) for x in grid[k])
        if len(vals) >= 3 and v in (vals[0], vals[-1]):
            out.append(k)
    return out


@dataclass
class CompareConfig:
    """Settings of the comparison: problems, batch sizes, horizon and methods (docs/reproductions.md).

    Examples:
        >>> from memsgd.experiments.compare import CompareConfig
        >>> CompareConfig().methods
        ('SGD', 'heavy ball', 'Nesterov', 'QHM', 'schedule-free SGD', 'AM1')
    """

    problems: tuple[tuple[float, float], ...] = ((2.0, 1.0), (1.5, 0.45))   # (nu, kappa)
    batch_sizes: tuple[int, ...] = (10, 100)
    steps: int = 10_000
    head: int = 1024
    methods: tuple[str, ...] = tuple(METHODS)

    def validate(self) -> CompareConfig:
        power_law_pairs(self.problems, "problems")
        positive_ints(self.batch_sizes, "batch_sizes")
        positive_int(self.steps, "steps")
        if self.steps < 20:
            raise ValueError(f"steps must be >= 20 (the exponent is fitted on [T/10, T]), got {self.steps}")
        positive_int(self.head, "head")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {list(METHODS)}, got {list(self.methods)}")
        return self


def small_config() -> CompareConfig:
    """Tiny settings for smoke tests (seconds).

    Examples:
        >>> from memsgd.experiments.compare import small_config
        >>> small_config().steps
        300
    """
    return CompareConfig(problems=((2.0, 1.0),), batch_sizes=(10,), steps=300, head=64)


def run(config: Optional[CompareConfig] = None, out_dir=None, progress=None, grids=None, *, executor=None,
        chunk_size: Optional[int] = None) -> dict:
    """Tune each method on each (problem, batch size); write ``compare.png`` (one panel's winners
    per file: ``compare_<nu>_<kappa>_B<B>.png``) and ``compare.json``.

    Each method's grid is one batched run of the exact engine ([`tuning.tune`][memsgd.experiments.tuning.tune]);
    ``executor`` / ``chunk_size`` are passed to it (as in [`memsgd.sweep`][memsgd.sweeps.sweep], docs/sweeps.md) and
    change nothing in the results.

    Examples:
        >>> import dataclasses
        >>> from memsgd.experiments import compare
        >>> cfg = dataclasses.replace(compare.small_config(), steps=100, methods=("SGD", "heavy ball"))
        >>> result = compare.run(cfg, out_dir=None)
        >>> sorted({r["method"] for r in result["results"]})
        ['SGD', 'heavy ball']
    """
    cfg = config or CompareConfig()
    if not isinstance(cfg, CompareConfig):
        raise TypeError(f"config must be a CompareConfig, got {type(cfg).__name__}")
    cfg.validate()
    if chunk_size is not None:
        chunk_size = positive_int(chunk_size, "chunk_size")
    executor_kind(executor)
    out_dir = common.prepare_out_dir(out_dir)
    T = cfg.steps
    plan = []
    for nu, kappa in cfg.problems:
        g = default_grids(nu) if grids is None else grids
        for B in cfg.batch_sizes:
            for m in cfg.methods:
                if m not in g:
                    raise ValueError(f"grids must have an entry for method {m!r}")
                plan.append((nu, kappa, B, m, g[m]))
    total = sum(len(grid_points(p[4])) for p in plan)
    done = [0]

    def sub_progress(d, t, label):
        if progress is not None:
            progress(done[0] + d, total, label)

    results, rows, files = [], [], []
    panel_curves = {}
    for nu, kappa, B, m, grid in plan:
        spec = Spectrum.power_law(nu, kappa, head=cfg.head)
        res = tune(METHODS[m], grid, spec, Noise.gaussian(B), T, progress=sub_progress,
                   label=f"nu={nu:g} kappa={kappa:g} B={B} {m}", executor=executor, chunk_size=chunk_size)
        done[0] += len(res.trials)
        fitted = None if res.curve is None else fit_exponent(res.curve, T / 10, T)
        entry = {"nu": nu, "kappa": kappa, "zeta": kappa / nu, "batch_size": B, "method": m,
                 "best_params": res.best, "final_loss": res.score if res.best is not None else None,
                 "fitted_exponent": fitted, "grid_size": len(res.trials),
                 "diverged_points": sum(1 for t in res.trials if t["diverged_at"] is not None),
                 "at_grid_edge": at_grid_edge(res.best, grid)}
        results.append(entry)
        if res.curve is not None:
            params = ", ".join(f"{k}={v:g}" for k, v in res.best.items())
            panel_curves.setdefault((nu, kappa, B), {})[f"{m} ({params})"] = res.curve
    sgd_loss = {(r["nu"], r["kappa"], r["batch_size"]): r["final_loss"] for r in results if r["method"] == "SGD"}
    for r in results:
        base = sgd_loss.get((r["nu"], r["kappa"], r["batch_size"]))
        r["loss_over_sgd"] = (r["final_loss"] / base) if (base and r["final_loss"] is not None) else None
        params = (", ".join(f"{k}={v:g}" + ("*" if k in r["at_grid_edge"] else "") for k, v in r["best_params"].items())
                  if r["best_params"] else "all diverged")
        rows.append([f"{r['nu']:g}/{r['kappa']:g}", r["batch_size"], r["method"], params,
                     common.fmt(r["final_loss"], ".3e"), common.fmt(r["loss_over_sgd"], ".3f"),
                     common.fmt(r["fitted_exponent"], ".3f"),
                     f"{r['diverged_points']}/{r['grid_size']}"])
    table = (f"Tuned comparison (exact engine, Gaussian noise, infinite power laws, lambda_max=1): "
             f"each method tuned for the loss at T={T} over a small grid; exponent fitted on [{T // 10}, {T}]\n"
             + common.format_table(["nu/kappa", "B", "method", "best parameters", "L_T", "L_T/SGD",
                                    "fitted", "diverged"], rows)
             + "\n(* = tuned value at the edge of its grid; 'diverged' = grid points whose curve diverged"
             " within T; a fitted exponent above zeta for a stationary method is pre-asymptotic)")
    result = {"config": asdict(cfg), "results": results, "table": table}
    if out_dir is not None:
        from ..plotting import plot_curves
        for (nu, kappa, B), curves in panel_curves.items():
            path = os.path.join(out_dir, f"compare_nu{nu:g}_kappa{kappa:g}_B{B}.png")
            plot_curves(curves, path,
                        title=f"each method tuned for the loss at T={T} (its tuned parameters in the legend)\n"
                              f"power law nu={nu:g}, kappa={kappa:g} (infinite), Gaussian noise, B={B}")
            files.append(path)
        files.append(os.path.join(out_dir, "compare.json"))
        result["files"] = files
        common.write_json(files[-1], result)
    return result
