"""The 4+3 phase plane of compute-optimal scaling (Paquette, Paquette, Xiao & Pennington 2024), exact.

For a representative (alpha, beta) in each phase ([`memsgd.scaling.PHASES`][memsgd.scaling.PHASES]) SGD (batch 1,
learning rate ``1 / (tr K + lambda_max)``, i.e. the paper's ``gamma ~ 1/tr K``) runs on the
deterministic equivalent of every d of a grid, with the residual as label noise (docs/math.md §10);
[`memsgd.compute_optimal`][memsgd.compute_optimal] finds d* and P* per budget and fits ``d* ~ f^xi``,
``P* ~ f^-eta`` over the fit window (at least three decades of flops). Beside them: the exponents
of [`memsgd.scaling.sgd_exponents`][memsgd.scaling.sgd_exponents] and the local slopes over the top decade (how far the
finite-d frontier still drifts). Then the DANA paper's claim (Ferbach et al. 2025, arXiv
2505.16098: dimension-adapted momentum "improves compute-optimal scaling behavior" over SGD):
DANA-decaying and AM1 on the phases above the high-dimensional line, same grid and budgets.

Everything is exact for the equivalent's spectrum (the batched engine, float64); the only
approximation is the deterministic equivalent itself (its measured accuracy against sampled
models: docs/scaling-laws.md).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from .._progress import Tracker
from .._validation import positive_int, positive_scalar
from ..scaling import ALGORITHMS, PHASES, compute_optimal, sgd_exponents
from . import common

__all__ = ["ScalingConfig", "small_config", "run"]


@dataclass
class ScalingConfig:
    """Settings of the scaling reproduction (docs/reproductions.md): the phases, the geometric grid
    of budgets ``(lo, hi, count)`` in flops, the top decades of budgets the exponents are fitted
    over, the d grid (``d_range``, points per octave), the step cap, the learning-rate factor, the
    batch size, and the phases and algorithms of the momentum comparison.

    Examples:
        >>> from memsgd.experiments.scaling import ScalingConfig
        >>> cfg = ScalingConfig()
        >>> cfg.phases, cfg.flops, cfg.fit_decades
        (('Ia', 'Ib', 'Ic', 'II', 'III', 'IV'), (1000.0, 100000000.0, 21), 3.0)
        >>> len(cfg.budgets()), tuple(cfg.d_grid()[:3].tolist())
        (21, (8.0, 10.0, 13.0))
    """

    phases: tuple[str, ...] = ("Ia", "Ib", "Ic", "II", "III", "IV")
    flops: tuple[float, float, int] = (1e3, 1e8, 21)           # geometric grid of budgets (lo, hi, count)
    fit_decades: float = 3.0                                   # exponents fitted over the top decades of the
    # budgets whose minimum lies inside the d grid (per phase: d* grows faster below 2 alpha = 1)
    d_range: tuple[float, float] = (8.0, 16000.0)
    d_per_octave: float = 3.0
    max_steps: int = 2_000_000
    lr: float = 1.0
    batch_size: int = 1
    momentum_phases: tuple[str, ...] = ("Ia", "II", "III")
    momentum_algorithms: tuple[str, ...] = ("dana-decaying", "am1")

    def validate(self) -> ScalingConfig:
        for p in self.phases + self.momentum_phases:
            if p not in PHASES:
                raise ValueError(f"phases must be among {list(PHASES)}, got {p!r}")
        for a in self.momentum_algorithms:
            if a not in ALGORITHMS:
                raise ValueError(f"momentum_algorithms must be among {list(ALGORITHMS)}, got {a!r}")
        lo, hi, n = self.flops
        positive_scalar(lo, "flops[0]")
        if not hi > lo or positive_int(n, "flops[2]") < 3:
            raise ValueError("flops must be (lo, hi, count) with hi > lo and count >= 3")
        positive_scalar(self.fit_decades, "fit_decades")
        if not (2 <= self.d_range[0] < self.d_range[1]):
            raise ValueError("d_range must be (d_lo, d_hi) with 2 <= d_lo < d_hi")
        positive_scalar(self.d_per_octave, "d_per_octave")
        positive_int(self.max_steps, "max_steps")
        positive_scalar(self.lr, "lr")
        positive_int(self.batch_size, "batch_size")
        return self

    def budgets(self) -> np.ndarray:
        lo, hi, n = self.flops
        return np.geomspace(lo, hi, int(n))

    def d_grid(self) -> np.ndarray:
        lo, hi = self.d_range
        n = max(3, int(round(self.d_per_octave * math.log2(hi / lo))) + 1)
        return np.unique(np.round(np.geomspace(lo, hi, n)))


def small_config() -> ScalingConfig:
    """Seconds: the same phases on a small grid (a smoke test of the pipeline, not the claims).

    Examples:
        >>> from memsgd.experiments.scaling import small_config
        >>> cfg = small_config()
        >>> cfg.flops, cfg.d_range, cfg.momentum_phases
        ((1000.0, 100000.0, 5), (8.0, 128.0), ('II',))
    """
    return ScalingConfig(flops=(1e3, 1e5, 5), fit_decades=2.0, d_range=(8.0, 128.0), d_per_octave=2.0,
                         max_steps=20_000, momentum_phases=("II",))


def run(config: Optional[ScalingConfig] = None, out_dir=None, progress=None) -> dict:
    """Measure the compute-optimal exponents; write ``scaling_phase_plane.png``,
    ``scaling_frontiers.png``, ``scaling_momentum.png`` and ``scaling.json`` to ``out_dir``.

    Returns ``{"config", "results", "table", "frontiers"}`` (and ``"files"`` with an ``out_dir``):
    per (phase, algorithm) the fitted ``xi``, ``eta`` beside the theory's ``sgd_xi``, ``sgd_eta``.

    Examples:
        One phase on a tiny grid, without files:

        >>> import dataclasses
        >>> from memsgd.experiments import scaling
        >>> cfg = dataclasses.replace(scaling.small_config(), phases=("III",), flops=(1e3, 1e4, 3),
        ...                           d_range=(8.0, 64.0), momentum_phases=())
        >>> result = scaling.run(cfg, out_dir=None)
        >>> r = result["results"][0]
        >>> r["phase"], r["algorithm"], r["sgd_xi"], r["sgd_eta"]
        ('III', 'sgd', 0.5, 0.75)
    """
    cfg = config or ScalingConfig()
    if not isinstance(cfg, ScalingConfig):
        raise TypeError(f"config must be a ScalingConfig, got {type(cfg).__name__}")
    cfg.validate()
    out_dir = common.prepare_out_dir(out_dir)
    flops, d_grid = cfg.budgets(), cfg.d_grid()
    jobs = [(p, "sgd") for p in cfg.phases] + [(p, a) for p in cfg.momentum_phases for a in cfg.momentum_algorithms]
    tracker = Tracker(progress, len(jobs))
    results, frontiers = [], {}
    for phase, algorithm in jobs:
        alpha, beta = PHASES[phase]
        res = compute_optimal(algorithm, alpha, beta, flops, batch_size=cfg.batch_size, d=d_grid, lr=cfg.lr,
                              max_steps=cfg.max_steps)
        frontiers[(phase, algorithm)] = res
        results.append(_entry(phase, algorithm, res, cfg))
        tracker.step(f"{phase} {algorithm}")
    table = _table(results, cfg)
    result = {"config": asdict(cfg), "results": results, "table": table,
              "frontiers": {f"{p} {a}": _frontier_json(r) for (p, a), r in frontiers.items()}}
    if out_dir is not None:
        files = _plots(results, frontiers, cfg, out_dir)
        result["files"] = files + [os.path.join(out_dir, "scaling.json")]
        common.write_json(os.path.join(out_dir, "scaling.json"), result)
    return result


def _entry(phase, algorithm, res, cfg) -> dict:
    theory = sgd_exponents(res.alpha, res.beta)
    inside = res.flops[res.interior]
    f_hi = float(inside.max()) if inside.size else math.nan
    f_lo = f_hi / 10 ** cfg.fit_decades
    xi, eta, used = res.exponents(f_lo * (1 - 1e-9), f_hi)
    local_xi, local_eta, _ = res.exponents(f_hi / 10 * (1 - 1e-9), f_hi)
    fitted = res.flops[res.interior & (res.flops >= f_lo * (1 - 1e-9)) & (res.flops <= f_hi)]
    return {
        "phase": phase, "algorithm": algorithm, "alpha": res.alpha, "beta": res.beta,
        "xi": _num(xi), "eta": _num(eta), "xi_top_decade": _num(local_xi), "eta_top_decade": _num(local_eta),
        "fit_window": [f_lo, f_hi], "budgets_fitted": used,
        "decades_fitted": float(np.log10(fitted.max() / fitted.min())) if fitted.size >= 2 else 0.0,
        "sgd_xi": theory["xi"], "sgd_eta": theory["eta"], "xi_formula": theory["xi_formula"],
        "eta_formula": theory["eta_formula"], "tradeoff": theory["tradeoff"],
    }


def _num(x):
    return None if x is None or not math.isfinite(x) else float(x)


def _table(results, cfg) -> str:
    rows = []
    for r in results:
        sgd = r["algorithm"] == "sgd"
        rows.append([r["phase"], f"{r['alpha']:g}", f"{r['beta']:g}", r["algorithm"],
                     common.fmt(r["xi"], ".3f"), common.fmt(r["xi_top_decade"], ".3f"),
                     f"{r['sgd_xi']:.3f}" if sgd else "-", common.fmt(r["eta"], ".3f"),
                     common.fmt(r["eta_top_decade"], ".3f"),
                     f"{r['sgd_eta']:.3f}" if sgd else f"(SGD {r['sgd_eta']:.3f})",
                     f"[{r['fit_window'][0]:.1e}, {r['fit_window'][1]:.1e}]", f"{r['decades_fitted']:.1f}"])
    return (f"Compute-optimal exponents d* ~ f^xi, P* ~ f^-eta (B={cfg.batch_size}, learning rate {cfg.lr:g}/(tr K/B + "
            f"lambda_max); fitted over the top {cfg.fit_decades:g} decades of the budgets whose minimum is inside the "
            f"d grid, 'top': over the last decade; theory: memsgd.scaling.sgd_exponents)\n"
            + common.format_table(["phase", "alpha", "beta", "algorithm", "xi", "xi top", "xi theory", "eta",
                                   "eta top", "eta theory", "fit window (flops)", "decades"], rows))


def _frontier_json(res) -> dict:
    return {"flops": res.flops, "d": res.d, "loss": res.loss, "interior": res.interior, "d_grid": res.d_grid,
            "grid_loss": res.grid_loss, "xi": _num(res.d_exponent), "eta": _num(res.loss_exponent)}


def _plots(results, frontiers, cfg, out_dir):
    from .. import plotting

    files = []
    sgd = [r for r in results if r["algorithm"] == "sgd"]
    path = os.path.join(out_dir, "scaling_phase_plane.png")
    plotting.plot_rf_phase_plane(sgd, path, title="SGD compute-optimal exponents: measured (theory)")
    files.append(path)
    panels = []
    for r in sgd:
        res = frontiers[(r["phase"], "sgd")]
        panels.append(_panel(res, f"{r['phase']} (alpha={r['alpha']:g}, beta={r['beta']:g}): "
                                  f"xi={common.fmt(r['xi'], '.3f')}, eta={common.fmt(r['eta'], '.3f')} "
                                  f"(theory {r['sgd_xi']:.3f}, {r['sgd_eta']:.3f})", r["sgd_eta"]))
    path = os.path.join(out_dir, "scaling_frontiers.png")
    plotting.plot_frontiers(panels, path, title="Population risk of SGD against flops: one line per d, "
                                                "frontier in black, theory slope dashed")
    files.append(path)
    if cfg.momentum_phases:
        panels = []
        for p in cfg.momentum_phases:
            series = []
            for a in ("sgd",) + tuple(cfg.momentum_algorithms):
                res = frontiers.get((p, a))
                if res is not None:
                    series.append({"label": f"{a} (eta={common.fmt(_num(res.loss_exponent), '.3f')})",
                                   "x": res.flops, "y": res.loss})
            alpha, beta = PHASES[p]
            panels.append({"title": f"{p} (alpha={alpha:g}, beta={beta:g})", "series": series, "xlabel": "flops",
                           "ylabel": "compute-optimal population risk"})
        path = os.path.join(out_dir, "scaling_momentum.png")
        plotting.plot_line_panels(panels, path, title="Compute-optimal frontiers: SGD, DANA-decaying, AM1")
        files.append(path)
    return files


def _panel(res, title, eta):
    return {"title": title, "flops": res.flops, "d_grid": res.d_grid, "grid_loss": res.grid_loss,
            "frontier": res.loss, "interior": res.interior, "guide_slope": -eta}
