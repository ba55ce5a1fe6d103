"""Optimal schedules with a noise floor (``memsgd reproduce optimal-schedules``; docs/practitioners-schedules.md).

SGD with label noise (``Noise.gaussian(B, label_noise=sigma2)``) on an infinite power law
``lambda_k = k^-nu``, ``lambda_k c_k^2 = k^-(kappa+1)``. In the notation of the functional
scaling laws (Li et al., arXiv 2509.19189 and 2602.06797) the capacity exponent is ``beta = nu``
and the source exponent ``s = kappa / nu`` (gradient flow's loss ``~ t^-s``). Their claims, for
the schedule minimising the final loss at a horizon of ``N`` steps (step index ``z``):

- easy phase ``s >= 1 - 1/beta``: ``eta*(z) = eta_peak (1 - z/N)^(2 beta - 1)`` with
  ``eta_peak ~ N^-xi``, ``xi = (s - 1 + 1/beta) / (s + 1/beta)`` (COLT 2026 extended abstract's
  form of the exponent); Bordelon & Mori (arXiv 2602.04774) write the same shape as
  ``eta*_T(t) ~ T^-xi (1 - t/T)^delta``;
- hard phase ``s < 1 - 1/beta``: warmup-stable-decay, the largest admissible rate for most of
  training and a decay over a fraction of the horizon that vanishes as ``N`` grows.

For each phase and horizon ``T`` this experiment computes the optimum by
[`memsgd.optimize_schedule`][memsgd.optimize_schedule]
(``free_sgd``, log learning rate piecewise linear between ``knots`` knots with ``spacing="ends"``,
which resolves the end as finely as the start), started from the best of the tuned shapes (or from
the previous horizon's optimum where that does better; ``long_iterations`` caps L-BFGS-B beyond
``T = 1e4``), and the
shapes practitioners run at their best peak learning rate (grid then bounded Brent in ``log peak``):
WSD with a linear cooldown, cosine to 0, WSD with a 1-sqrt cooldown (cooldown fraction fixed).
Measured: ``delta`` (least squares of ``log eta`` on ``log(1 - t/T)`` over ``t/T`` in
``fit_range``), ``xi`` (slope of ``log eta_peak`` on ``log T``), the fraction of steps with
``eta_t < eta_peak / 2`` (the cooldown fraction) and the horizon exponent of the optimal loss.
Then memory 1 (``free_memory1``: learning rate, momentum and kick schedules, started from the SGD
optimum, which it contains) and the per-step batch size under a budget ``sum_t B_t = factor * T``
(started from the constant batch ``factor``).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from .. import lr_shapes
from .._progress import Tracker
from .._validation import positive_int, positive_scalar
from ..design import _require_design_memory, make_family, optimize_schedule
from ..dynamics import loss_curve
from ..noise import Noise
from ..schedules import am1_form, torch_sgd
from ..spectrum import Spectrum
from . import common

__all__ = ["OptimalSchedulesConfig", "small_config", "run", "claims", "fit_cooldown_exponent", "cooldown_fraction",
           "tune_peak", "SHAPES"]

SHAPES = ("WSD linear", "cosine", "WSD 1-sqrt")
"""The practitioners' shapes compared with the optimum
([`tune_peak`][memsgd.experiments.optimal_schedules.tune_peak] tunes their peak).

Examples:
    >>> from memsgd.experiments.optimal_schedules import SHAPES
    >>> SHAPES
    ('WSD linear', 'cosine', 'WSD 1-sqrt')
"""


@dataclass
class OptimalSchedulesConfig:
    """Settings of the optimal-schedules reproduction (docs/practitioners-schedules.md): the power
    law ``nu`` with one ``kappa`` per phase, batch size and label noise, the horizons, the design's
    knots and L-BFGS-B iterations, the horizons of the memory-1 and batch-size optimisations, the
    WSD cooldown fraction, the peak grid and the ``t/T`` range of the ``delta`` fit.

    Examples:
        >>> from memsgd.experiments.optimal_schedules import OptimalSchedulesConfig, claims
        >>> cfg = OptimalSchedulesConfig()
        >>> cfg.nu, cfg.easy_kappa, cfg.hard_kappa, cfg.horizons
        (2.0, 1.5, 0.5, (1000, 10000, 100000))
        >>> claims(cfg.nu, cfg.easy_kappa)["phase"], claims(cfg.nu, cfg.hard_kappa)["phase"]
        ('easy', 'hard')
    """

    nu: float = 2.0
    easy_kappa: float = 1.5               # s = 0.75 >= 1 - 1/nu = 0.5: easy
    hard_kappa: float = 0.5               # s = 0.25 < 0.5: hard
    batch_size: int = 1
    label_noise: float = 1.0
    head: int = 256
    horizons: tuple[int, ...] = (1_000, 10_000, 100_000)
    knots: int = 32
    max_iterations: int = 1000
    long_iterations: int = 400            # L-BFGS-B cap for horizons > 1e4 (warm-started from the previous T)
    memory1_horizons: tuple[int, ...] = (1_000, 10_000)
    memory1_iterations: int = 600
    batch_horizons: tuple[int, ...] = (1_000, 10_000)
    batch_factor: float = 4.0             # budget sum_t B_t = batch_factor * T
    batch_knots: int = 12
    cooldown_fraction: float = 0.2        # of the WSD shapes
    peak_grid: int = 25
    fit_range: tuple[float, float] = (0.2, 0.8)   # t/T range of the delta fit

    def validate(self) -> OptimalSchedulesConfig:
        positive_scalar(self.nu, "nu")
        if self.nu <= 1:
            raise ValueError(f"nu must be > 1, got {self.nu}")
        for name in ("easy_kappa", "hard_kappa", "label_noise", "batch_factor"):
            positive_scalar(getattr(self, name), name)
        for name in ("batch_size", "head", "knots", "max_iterations", "long_iterations", "memory1_iterations",
                     "batch_knots", "peak_grid"):
            positive_int(getattr(self, name), name)
        if not self.horizons or any(positive_int(T, "horizons") < 20 for T in self.horizons):
            raise ValueError(f"horizons must be a non-empty list of step counts >= 20, got {self.horizons}")
        for name in ("memory1_horizons", "batch_horizons"):
            if not set(getattr(self, name)) <= set(self.horizons):
                raise ValueError(f"{name} must be a subset of horizons {self.horizons}, got {getattr(self, name)}")
        if not self.batch_factor > 1:
            raise ValueError(f"batch_factor must be > 1 (every B_t >= 1), got {self.batch_factor}")
        if not 0 < self.cooldown_fraction < 1:
            raise ValueError(f"cooldown_fraction must be in (0, 1), got {self.cooldown_fraction}")
        lo, hi = self.fit_range
        if not 0 <= lo < hi < 1:
            raise ValueError(f"fit_range must satisfy 0 <= low < high < 1, got {self.fit_range}")
        if claims(self.nu, self.easy_kappa)["phase"] != "easy" or claims(self.nu, self.hard_kappa)["phase"] != "hard":
            raise ValueError(f"easy_kappa must be >= nu - 1 = {self.nu - 1:g} and hard_kappa below it "
                             f"(s = kappa/nu against 1 - 1/nu), got {self.easy_kappa}, {self.hard_kappa}")
        return self


def small_config() -> OptimalSchedulesConfig:
    """A run of seconds for the tests: two short horizons, few knots and iterations.

    Examples:
        >>> from memsgd.experiments.optimal_schedules import small_config
        >>> cfg = small_config()
        >>> cfg.horizons, cfg.knots, cfg.memory1_horizons
        ((200, 400), 10, (200,))
    """
    return OptimalSchedulesConfig(head=64, horizons=(200, 400), knots=10, max_iterations=60,
                                  memory1_horizons=(200,), memory1_iterations=30, batch_horizons=(200,),
                                  batch_knots=4, peak_grid=12)


def claims(nu: float, kappa: float) -> dict:
    """The functional-scaling-law claims for ``beta = nu``, ``s = kappa / nu``: the phase, and in the
    easy phase ``delta = 2 beta - 1`` and ``xi = (s - 1 + 1/beta) / (s + 1/beta)``; the loss
    exponent ``s beta / (1 + s beta)`` (easy: the rate that balancing ``(eta N)^-s`` against the
    noise ``eta (eta N)^(1/beta)`` gives with that ``eta_peak``) or ``s`` (hard).

    Examples:
        >>> from memsgd.experiments.optimal_schedules import claims
        >>> c = claims(2.0, 1.5)              # s = 0.75 >= 1 - 1/beta = 0.5
        >>> c["phase"], c["delta"], round(c["xi"], 12), round(c["loss_exponent"], 12)
        ('easy', 3.0, 0.2, 0.6)
        >>> claims(2.0, 0.5)["phase"]        # s = 0.25
        'hard'
    """
    beta, s = nu, kappa / nu
    if s >= 1.0 - 1.0 / beta:
        return {"phase": "easy", "s": s, "beta": beta, "delta": 2.0 * beta - 1.0,
                "xi": (s - 1.0 + 1.0 / beta) / (s + 1.0 / beta), "loss_exponent": s * beta / (1.0 + s * beta)}
    return {"phase": "hard", "s": s, "beta": beta, "delta": None, "xi": 0.0, "loss_exponent": s}


def fit_cooldown_exponent(lr, fit_range=(0.2, 0.8)) -> float:
    """``delta``: least-squares slope of ``log lr_t`` on ``log(1 - t/T)`` over ``t/T`` in ``fit_range``.

    Examples:
        >>> T = 1000; t = np.arange(T)
        >>> round(fit_cooldown_exponent(0.3 * (1 - t / T) ** 2.5), 12)
        2.5
    """
    lr = np.asarray(lr, float)
    T = lr.size
    t = np.arange(T)
    sel = (t >= fit_range[0] * T) & (t <= fit_range[1] * T)
    return float(np.polyfit(np.log1p(-t[sel] / T), np.log(lr[sel]), 1)[0])


def cooldown_fraction(lr) -> float:
    """Fraction of the steps with ``lr_t < max(lr) / 2`` (the decay phase's share of the horizon).

    Examples:
        A linear cooldown over the last 20% of the steps is below half its peak for the last 10%:

        >>> from memsgd import lr_shapes
        >>> cooldown_fraction(lr_shapes.wsd(1.0, 1000, cooldown_fraction=0.2).values(1000))
        0.099
    """
    lr = np.asarray(lr, float)
    return float(np.mean(lr < 0.5 * lr.max()))


def _shape(name: str, peak: float, T: int, cooldown: float):
    if name == "WSD linear":
        return lr_shapes.wsd(peak, T, cooldown_fraction=cooldown, cooldown="linear")
    if name == "WSD 1-sqrt":
        return lr_shapes.wsd(peak, T, cooldown_fraction=cooldown, cooldown="1-sqrt")
    return lr_shapes.cosine(peak, T)


def _final_loss(values, spec, noise, T) -> float:
    c = loss_curve(torch_sgd(values), spec, noise, T, progress=False)
    return math.inf if c.diverged_at is not None else float(c.loss[-1])


def tune_peak(name: str, spec: Spectrum, noise: Noise, T: int, *, cooldown: float = 0.2, grid: int = 25,
              bounds=(1e-4, 4.0)) -> tuple[float, float]:
    """``(peak, L_T)``: the shape ``name`` (one of
    [`SHAPES`][memsgd.experiments.optimal_schedules.SHAPES]) at its best peak learning rate,
    by a log grid over ``bounds`` and bounded Brent on ``log peak`` between the best point's
    neighbours (diverging peaks count as ``inf``).

    Examples:
        >>> import memsgd
        >>> from memsgd.experiments.optimal_schedules import tune_peak
        >>> spec = memsgd.Spectrum.power_law(2.0, 1.5, head=32)
        >>> noise = memsgd.Noise.gaussian(1, label_noise=1.0)
        >>> peak, loss = tune_peak("cosine", spec, noise, 100, grid=8)
        >>> unit = memsgd.lr_shapes.cosine(1.0, 100).values(100)
        >>> worse = [memsgd.loss_curve(memsgd.schedules.torch_sgd(f * peak * unit), spec, noise, 100).loss[-1]
        ...          for f in (0.8, 1.25)]
        >>> bool(min(worse) > loss)                 # the tuned peak beats its neighbours
        True
    """
    from scipy.optimize import minimize_scalar

    unit = _shape(name, 1.0, T, cooldown).values(T)

    def f(log_peak):
        return _final_loss(math.exp(log_peak) * unit, spec, noise, T)

    logs = np.linspace(math.log(bounds[0]), math.log(bounds[1]), grid)
    vals = np.array([f(v) for v in logs])
    if not np.any(np.isfinite(vals)):
        raise ValueError(f"{name}: every peak learning rate in {bounds} diverges")
    i = int(np.argmin(vals))
    lo, hi = logs[max(i - 1, 0)], logs[min(i + 1, grid - 1)]
    res = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    if res.fun <= vals[i]:
        return math.exp(float(res.x)), float(res.fun)
    return math.exp(float(logs[i])), float(vals[i])


def _slope(x, y) -> Optional[float]:
    if len(x) < 2:
        return None
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def run(config: Optional[OptimalSchedulesConfig] = None, out_dir=None, progress=None) -> dict:
    """Optimise and tune; write ``optimal_schedules_*.png`` and ``optimal_schedules.json`` to ``out_dir``.

    Returns ``{"config", "phases", "checks", "timings_s", "table"}`` (and ``"files"`` with an
    ``out_dir``): per phase the claims of [`claims`][memsgd.experiments.optimal_schedules.claims] beside
    the measured exponents.

    Examples:
        One short horizon, SGD only, without files:

        >>> import dataclasses
        >>> from memsgd.experiments import optimal_schedules
        >>> cfg = dataclasses.replace(optimal_schedules.small_config(), head=32, horizons=(100,), knots=6,
        ...                           max_iterations=20, memory1_horizons=(), batch_horizons=(), peak_grid=8)
        >>> result = optimal_schedules.run(cfg, out_dir=None)
        >>> tuple(sorted(result["phases"])), result["checks"]["optimum_beats_every_tuned_shape"]
        (('easy', 'hard'), True)
    """
    cfg = config or OptimalSchedulesConfig()
    if not isinstance(cfg, OptimalSchedulesConfig):
        raise TypeError(f"config must be an OptimalSchedulesConfig, got {type(cfg).__name__}")
    cfg.validate()
    out_dir = common.prepare_out_dir(out_dir)
    noise = Noise.gaussian(cfg.batch_size, label_noise=cfg.label_noise)
    big = Noise.gaussian(cfg.batch_factor * cfg.batch_size, label_noise=cfg.label_noise)
    horizons = sorted(cfg.horizons)
    phases = {"easy": cfg.easy_kappa, "hard": cfg.hard_kappa}
    specs = {p: Spectrum.power_law(cfg.nu, k, head=cfg.head) for p, k in phases.items()}
    _require_design_memory(1, specs["easy"], noise, max(cfg.memory1_horizons or horizons), None)
    _require_design_memory(0, specs["easy"], noise, horizons[-1], cfg.batch_factor * horizons[-1])
    plan = 2 * (len(horizons) * 2 + len(cfg.memory1_horizons) + 2 * len(cfg.batch_horizons))
    tracker = Tracker(progress, plan)
    timings = {}
    out = {"config": asdict(cfg), "phases": {}}
    curves = {}

    for phase, kappa in phases.items():
        spec = specs[phase]
        rows, keep = [], {}
        previous = None
        for T in horizons:
            t0 = time.perf_counter()
            tuned = {name: tune_peak(name, spec, noise, T, cooldown=cfg.cooldown_fraction, grid=cfg.peak_grid)
                     for name in SHAPES}
            timings[f"{phase} shapes T={T}"] = time.perf_counter() - t0
            tracker.step(f"{phase}: shapes T={T}")
            best = min(SHAPES, key=lambda n: tuned[n][1])
            start = torch_sgd(_shape(best, tuned[best][0], T, cfg.cooldown_fraction).values(T))
            if previous is not None:
                # the previous horizon's optimum at the same knots (the "ends" coordinate scales with
                # log T), when it does better here than the best shape: a warm start
                warm = make_family("free_sgd", T, knots=cfg.knots, spacing="ends",
                                   start={"lr": previous.parameters["lr"]})
                if _final_loss(warm.schedule(warm.start).parameters(T)[0], spec, noise, T) < tuned[best][1]:
                    start = {"lr": previous.parameters["lr"]}
            t0 = time.perf_counter()
            opt = optimize_schedule("free_sgd", spec, noise, T, knots=cfg.knots, spacing="ends", start=start,
                                    max_iterations=cfg.max_iterations if T <= 10_000 else cfg.long_iterations,
                                    progress=False)
            previous = opt
            timings[f"{phase} free_sgd T={T}"] = time.perf_counter() - t0
            tracker.step(f"{phase}: optimum T={T}")
            lr = opt.schedule.parameters(T)[0]
            row = {"T": T, "optimal_loss": opt.value, "converged": opt.success, "iterations": opt.iterations,
                   "peak_lr": float(lr.max()), "delta": fit_cooldown_exponent(lr, cfg.fit_range),
                   "cooldown_fraction": cooldown_fraction(lr),
                   "shapes": {n: {"peak": p, "loss": v, "ratio": v / opt.value} for n, (p, v) in tuned.items()}}
            keep[T] = {"opt": opt, "lr": lr}
            if T in cfg.memory1_horizons:
                t0 = time.perf_counter()
                m1 = optimize_schedule("free_memory1", spec, noise, T, knots=cfg.knots, spacing="ends",
                                       start={"lr": 0.1 * opt.parameters["lr"], "kick": 0.9 * opt.parameters["lr"],
                                              "one_minus_momentum": 1.0},
                                       max_iterations=cfg.memory1_iterations, progress=False)
                timings[f"{phase} free_memory1 T={T}"] = time.perf_counter() - t0
                tracker.step(f"{phase}: memory 1 T={T}")
                row["memory1_loss"] = m1.value
                row["memory1_converged"] = m1.success
                keep[T]["memory1"] = m1
            if T in cfg.batch_horizons:
                t0 = time.perf_counter()
                const = optimize_schedule("free_sgd", spec, big, T, knots=cfg.knots, spacing="ends",
                                          start={"lr": opt.parameters["lr"]}, max_iterations=cfg.max_iterations,
                                          progress=False)
                tracker.step(f"{phase}: constant batch {cfg.batch_factor:g} T={T}")
                joint = optimize_schedule("free_sgd", spec, big, T, knots=cfg.knots, spacing="ends",
                                          start={"lr": const.parameters["lr"]},
                                          batch_budget=cfg.batch_factor * cfg.batch_size * T,
                                          batch_knots=cfg.batch_knots, max_iterations=cfg.max_iterations,
                                          progress=False)
                timings[f"{phase} batch T={T}"] = time.perf_counter() - t0
                tracker.step(f"{phase}: batch schedule T={T}")
                row["constant_batch_loss"] = const.value
                row["batch_schedule_loss"] = joint.value
                row["batch_schedule_converged"] = joint.success
                keep[T]["batch"] = joint
            rows.append(row)
        Ts = [r["T"] for r in rows]
        claim = claims(cfg.nu, kappa)
        measured = {"xi": None if len(Ts) < 2 else -_slope(Ts, [r["peak_lr"] for r in rows]),
                    "loss_exponent": None if len(Ts) < 2 else -_slope(Ts, [r["optimal_loss"] for r in rows]),
                    "delta_per_T": {r["T"]: r["delta"] for r in rows},
                    "cooldown_fraction_per_T": {r["T"]: r["cooldown_fraction"] for r in rows}}
        out["phases"][phase] = {"kappa": kappa, "claims": claim, "measured": measured, "rows": rows}
        curves[phase] = keep
    out["checks"] = {
        "optimum_beats_every_tuned_shape": all(s["ratio"] > 1.0 for ph in out["phases"].values()
                                               for r in ph["rows"] for s in r["shapes"].values()),
        "memory1_at_most_sgd": all(r["memory1_loss"] <= r["optimal_loss"] * (1 + 1e-9)
                                   for ph in out["phases"].values() for r in ph["rows"] if "memory1_loss" in r),
        "batch_schedule_at_most_constant": all(r["batch_schedule_loss"] <= r["constant_batch_loss"] * (1 + 1e-9)
                                               for ph in out["phases"].values() for r in ph["rows"]
                                               if "batch_schedule_loss" in r),
    }
    out["timings_s"] = timings
    out["table"] = _table(cfg, out)
    if out_dir is not None:
        files = _figures(out_dir, cfg, out, curves)
        files.append(os.path.join(out_dir, "optimal_schedules.json"))
        out["files"] = files
        common.write_json(files[-1], out)
    return out


def _table(cfg, out) -> str:
    lines = [f"Optimal schedules with a noise floor: nu = beta = {cfg.nu:g}, Gaussian data, B = {cfg.batch_size}, "
             f"label noise sigma^2 = {cfg.label_noise:g}; final excess loss L_T; shapes at their tuned peak "
             f"(WSD cooldown fraction {cfg.cooldown_fraction:g})"]
    heads = ["phase", "T", "L* (free SGD)"] + [f"{n} (peak; L/L*)" for n in SHAPES] + ["memory 1 L/L*",
                                                                                       "batch sched. L/L(const B)"]
    rows = []
    for phase, ph in out["phases"].items():
        for r in ph["rows"]:
            cells = [f"{phase} (kappa={ph['kappa']:g})", r["T"], common.fmt(r["optimal_loss"], ".4e")]
            cells += [f"{s['peak']:.3g}; {s['ratio']:.3f}" for s in r["shapes"].values()]
            cells.append(common.fmt(r["memory1_loss"] / r["optimal_loss"], ".4f") if "memory1_loss" in r else "-")
            cells.append(common.fmt(r["batch_schedule_loss"] / r["constant_batch_loss"], ".4f")
                         if "batch_schedule_loss" in r else "-")
            rows.append(cells)
    lines.append(common.format_table(heads, rows))
    lo, hi = cfg.fit_range
    lines.append(f"Exponents (claims: Li et al. 2602.06797 with beta = nu, s = kappa/nu; delta fitted on t/T in "
                 f"[{lo:g}, {hi:g}], xi and the loss exponent over T in {sorted(cfg.horizons)}):")
    erows = []
    for phase, ph in out["phases"].items():
        c, m = ph["claims"], ph["measured"]
        erows.append([phase, f"{c['s']:.3g}", common.fmt(c["delta"], ".3f"),
                      ", ".join(f"{v:.3f}" for v in m["delta_per_T"].values()),
                      common.fmt(c["xi"], ".3f"), common.fmt(m["xi"], ".3f"),
                      common.fmt(c["loss_exponent"], ".3f"), common.fmt(m["loss_exponent"], ".3f"),
                      ", ".join(f"{v:.3f}" for v in m["cooldown_fraction_per_T"].values())])
    lines.append(common.format_table(["phase", "s", "delta claimed", "delta measured per T", "xi claimed",
                                      "xi measured", "loss exp. claimed", "loss exp. measured",
                                      "cooldown fraction per T"], erows))
    return "\n".join(lines)


def _figures(out_dir, cfg, out, curves):
    from ..plotting import plot_line_panels

    files = [os.path.join(out_dir, n) for n in ("optimal_schedules_lr.png", "optimal_schedules_collapse.png",
                                                 "optimal_schedules_memory1.png")]
    panels = []
    for phase, keep in curves.items():
        series = []
        for T, k in keep.items():
            series.append({"label": f"optimum T={T}", "x": np.arange(1, T + 1), "y": k["lr"]})
        panels.append({"title": f"{phase} phase (kappa={out['phases'][phase]['kappa']:g}): optimal lr_t",
                       "xlabel": "step t + 1", "ylabel": "learning rate", "series": series, "floor": 1e-4})
    plot_line_panels(panels, files[0], title="optimal SGD learning rates with label noise")

    panels = []
    for phase, keep in curves.items():
        c = out["phases"][phase]["claims"]
        xi = out["phases"][phase]["measured"]["xi"] or 0.0
        series = []
        for T, k in keep.items():
            t = np.arange(T)
            series.append({"label": f"T={T}", "x": 1.0 - t / T, "y": k["lr"] * T ** xi})
        if c["delta"] is not None:
            x = np.geomspace(1e-3, 1.0, 50)
            top = max(float(s["y"][0]) for s in series)
            series.append({"label": f"(1 - t/T)^{c['delta']:g} (claimed)", "x": x, "y": top * x ** c["delta"],
                           "style": "k--"})
        panels.append({"title": f"{phase}: lr_t T^xi (measured xi={xi:.3f}) vs 1 - t/T", "xlabel": "1 - t/T",
                       "ylabel": "lr_t T^xi", "series": series, "floor": 1e-5})
    plot_line_panels(panels, files[1], title="collapse of the optimal schedules")

    panels = []
    for phase, keep in curves.items():
        for T, k in keep.items():
            if "memory1" not in k or T != max(cfg.memory1_horizons):
                continue
            lr, momentum, kick = am1_form(*k["memory1"].schedule.parameters(T))
            x = np.arange(1, T + 1)
            panels.append({"title": f"{phase}, T={T}: memory-1 optimum (AM1 form)", "xlabel": "step t + 1",
                           "legend": True, "floor": 1e-5,
                           "series": [{"label": "lr_t", "x": x, "y": lr}, {"label": "1 - beta_t", "x": x,
                                                                             "y": 1.0 - momentum},
                                      {"label": "kick_t", "x": x, "y": kick},
                                      {"label": "SGD optimum lr_t", "x": x, "y": k["lr"], "style": "k:"}]})
            if "batch" in k:
                panels.append({"title": f"{phase}, T={T}: batch size B_t under the budget", "xlabel": "step t + 1",
                               "series": [{"label": "B_t", "x": x, "y": k["batch"].batch_size},
                                          {"label": "lr_t", "x": x, "y": k["batch"].schedule.parameters(T)[0]}]})
    if panels:
        plot_line_panels(panels, files[2], title="memory 1 and per-step batch size")
    else:
        files.pop()
    return files
