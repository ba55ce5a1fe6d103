"""Schedule design: optimised schedules against the tuned named ones (``memsgd reproduce schedules``).

On an infinite Gaussian power law (default ``nu = 2``, ``kappa = 1``, ``lambda_max = 1``) with
Gaussian mini-batch noise (``B = 10``), every method is tuned for the final loss ``L_T`` by
[`memsgd.optimize_schedule`][memsgd.optimize_schedule] (L-BFGS-B on exact gradients of the exact expected loss):

- memory 1: constant SGD and heavy ball, the AM1 power-law family (kick, delta, gamma, t0),
  DANA-decaying (g2, g3, delta, power), and the free memory-1 schedule (``lr_t``, ``beta_t``,
  ``kick_t`` piecewise linear in ``log(1 + t)`` over ``knots`` knots, started from the tuned AM1);
- memory 0 (the anchor): the best constant learning rate, the best power law
  ``lr (1 + t/t0)^-power`` and the free learning-rate schedule.

The tables give ``L_T``, its ratio to AM1 (memory 1) or to constant SGD (memory 0), and the
exponent fitted on ``[T/10, T]``. A schedule tuned for ``L_T`` anneals at the end, which raises
that fitted exponent; the rate that matters is how the *tuned* ``L_T`` falls with the horizon, so
with ``long_steps`` the main methods are tuned again at ``T_long`` and the tables add
``L*_{T_long}`` and the horizon exponent ``log(L*_T / L*_{T_long}) / log(T_long / T)``.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from .._progress import Tracker
from .._validation import positive_int, power_law_pairs
from ..design import _require_design_memory, optimize_schedule
from ..noise import Noise
from ..schedules import am1_form
from ..spectrum import Spectrum
from ..theory import fit_exponent
from . import common

__all__ = ["ScheduleDesignConfig", "small_config", "run"]

MEMORY1 = ("SGD", "heavy ball", "AM1 family", "DANA-decaying", "free memory-1")
MEMORY0 = ("constant", "power law", "free")


@dataclass
class ScheduleDesignConfig:
    """Settings of the schedule-design experiment (docs/schedule-design.md).

    Examples:
        >>> from memsgd.experiments.schedule_design import ScheduleDesignConfig
        >>> cfg = ScheduleDesignConfig()
        >>> cfg.steps, cfg.long_steps
        (10000, 100000)
    """

    nu: float = 2.0
    kappa: float = 1.0
    batch_size: int = 10
    steps: int = 10_000
    long_steps: Optional[int] = 100_000   # None or 0: no second horizon
    head: int = 1024
    knots: int = 24
    starts: int = 4                       # L-BFGS-B runs for each parametric family
    max_iterations: int = 300             # per run, parametric families
    free_iterations: int = 1000           # free families at T
    long_free_iterations: int = 200       # free families at T_long (600 moved L* by < 0.02%)

    def validate(self) -> ScheduleDesignConfig:
        power_law_pairs(((self.nu, self.kappa),), "(nu, kappa)")
        for name in ("batch_size", "steps", "head", "knots", "starts", "max_iterations", "free_iterations",
                     "long_free_iterations"):
            positive_int(getattr(self, name), name)
        if self.steps < 20:
            raise ValueError(f"steps must be >= 20 (the exponent is fitted on [T/10, T]), got {self.steps}")
        if not 2 <= self.knots <= self.steps:
            raise ValueError(f"knots must be in [2, steps] = [2, {self.steps}], got {self.knots}")
        if self.long_steps:
            positive_int(self.long_steps, "long_steps")
            if self.long_steps <= self.steps:
                raise ValueError(f"long_steps must be > steps = {self.steps}, got {self.long_steps}")
        return self


def small_config() -> ScheduleDesignConfig:
    """Tiny settings for smoke tests (seconds).

    Examples:
        >>> from memsgd.experiments.schedule_design import small_config
        >>> small_config().steps
        300
    """
    return ScheduleDesignConfig(steps=300, long_steps=600, head=64, knots=6, starts=2, max_iterations=25,
                                free_iterations=25, long_free_iterations=10)


def _am1_form(schedule, T):
    """lr_t, 1 - beta_t, kick_t of a schedule in AM1 form (the AM1 family and the free memory-1
    family are both): [`memsgd.schedules.am1_form`][memsgd.schedules.am1_form]."""
    lr, momentum, kick = am1_form(*schedule.parameters(T))
    return lr, 1.0 - momentum, kick


def _describe(params, skip=("knot_steps",)):
    items = []
    for k, v in params.items():
        if k in skip:
            continue
        if np.ndim(v) == 0:
            items.append(f"{k}={v:.4g}")
    return ", ".join(items) if items else f"{len(next(iter(params.values())))} knots per channel"


def run(config: Optional[ScheduleDesignConfig] = None, out_dir=None, progress=None) -> dict:
    """Tune and optimise; write ``schedule_design_*.png`` and ``schedule_design.json`` to ``out_dir``.

    Examples:
        >>> import dataclasses
        >>> from memsgd.experiments import schedule_design
        >>> cfg = dataclasses.replace(schedule_design.small_config(), steps=100, long_steps=None, starts=1,
        ...                           max_iterations=5, free_iterations=5)
        >>> result = schedule_design.run(cfg, out_dir=None)
        >>> sorted(result)
        ['checks', 'config', 'memory0', 'memory1', 'table', 'timings_s']
    """
    cfg = config or ScheduleDesignConfig()
    if not isinstance(cfg, ScheduleDesignConfig):
        raise TypeError(f"config must be a ScheduleDesignConfig, got {type(cfg).__name__}")
    cfg.validate()
    out_dir = common.prepare_out_dir(out_dir)
    spec = Spectrum.power_law(cfg.nu, cfg.kappa, head=cfg.head)
    noise = Noise.gaussian(cfg.batch_size)
    T, TL = cfg.steps, (cfg.long_steps or None)
    _require_design_memory(1, spec, noise, TL or T, None)   # the largest horizon, before any tuning
    plan_T = 8
    plan_L = 6 if TL else 0
    tracker = Tracker(progress, plan_T + plan_L)
    par = {"starts": cfg.starts, "max_iterations": cfg.max_iterations}
    timings = {}

    def tune(label, family, steps, **kw):
        t0 = time.perf_counter()
        res = optimize_schedule(family, spec, noise, steps, **kw)
        timings[f"{label} @ {steps}"] = time.perf_counter() - t0
        tracker.step(f"{label} T={steps}")
        return res

    r = {}
    r["SGD"] = tune("SGD", "sgd", T, **par)
    r["heavy ball"] = tune("heavy ball", "heavy_ball", T, **par)
    r["AM1 family"] = tune("AM1 family", "am1_power_law", T, **par)
    r["DANA-decaying"] = tune("DANA-decaying", "dana_decaying", T, **par)
    r["free memory-1"] = tune("free memory-1", "free_memory1", T, start=r["AM1 family"].schedule, knots=cfg.knots,
                              max_iterations=cfg.free_iterations)
    s = {"constant": r["SGD"]}
    s["power law"] = tune("power law", "sgd_power_law", T, **par)
    s["free"] = tune("free SGD", "free_sgd", T, start={"lr": r["SGD"].parameters["lr"]}, knots=cfg.knots,
                     max_iterations=cfg.free_iterations)
    tracker.step("tables")

    long = {}
    if TL:
        warm = {"starts": 1, "max_iterations": cfg.max_iterations}
        long["SGD"] = tune("SGD", "sgd", TL, start=r["SGD"].parameters, **warm)
        long["AM1 family"] = tune("AM1 family", "am1_power_law", TL, start=r["AM1 family"].parameters, **warm)
        long["DANA-decaying"] = tune("DANA-decaying", "dana_decaying", TL, start=r["DANA-decaying"].parameters,
                                     **warm)
        long["free memory-1"] = tune("free memory-1", "free_memory1", TL, start=long["AM1 family"].schedule,
                                     knots=cfg.knots, max_iterations=cfg.long_free_iterations)
        long["power law"] = tune("power law", "sgd_power_law", TL, start=s["power law"].parameters, **warm)
        long["free"] = tune("free SGD", "free_sgd", TL, start={"lr": long["SGD"].parameters["lr"]}, knots=cfg.knots,
                            max_iterations=cfg.long_free_iterations)
        long["constant"] = long["SGD"]

    def horizon_exponent(name):
        if name not in long:
            return None
        return math.log(_value(r, s, name) / long[name].value) / math.log(TL / T)

    def entry(name, res, ref):
        fitted = fit_exponent(res.loss, T / 10, T)
        out = {"method": name, "family": res.family, "parameters": common.jsonable(res.parameters),
               "final_loss": res.value, "ratio": res.value / ref, "fitted_exponent": fitted,
               "iterations": res.iterations, "evaluations": res.evaluations, "rejected": res.rejected,
               "converged": res.success, "message": res.message}
        if name in long:
            out["long_final_loss"] = long[name].value
            out["horizon_exponent"] = horizon_exponent(name)
            out["long_converged"] = long[name].success
        return out

    ref1 = r["AM1 family"].value
    results1 = [entry(n, r[n], ref1) for n in MEMORY1]
    ref0 = s["constant"].value
    results0 = [entry(n, s[n], ref0) for n in MEMORY0]
    zeta = cfg.kappa / cfg.nu
    predicted_am1 = zeta * (2.0 - 1.0 / cfg.nu)

    def rows(results):
        out = []
        for e in results:
            row = [e["method"], _describe(r.get(e["method"], s.get(e["method"])).parameters),
                   common.fmt(e["final_loss"], ".4e"), common.fmt(e["ratio"], ".3f"),
                   common.fmt(e["fitted_exponent"], ".3f")]
            if TL:
                row += [common.fmt(e.get("long_final_loss"), ".4e"), common.fmt(e.get("horizon_exponent"), ".3f")]
            row.append("yes" if e["converged"] else "no")
            out.append(row)
        return out

    long_head = [f"L* at T={TL}", "horizon exp."] if TL else []
    h1 = ["method", "tuned parameters", f"L_T (T={T})", "L_T / AM1", "fitted [T/10,T]"] + long_head + ["converged"]
    h0 = ["method", "tuned parameters", f"L_T (T={T})", "L_T / constant", "fitted [T/10,T]"] + long_head + ["converged"]
    table = (f"Schedule design: nu={cfg.nu:g}, kappa={cfg.kappa:g} (infinite, zeta={zeta:g}), Gaussian noise B="
             f"{cfg.batch_size}; every method tuned for L_T by L-BFGS-B on exact gradients\n"
             f"Memory 1 (AM1 predicted signal-phase rate zeta(1+delta) <= zeta(2-1/nu) = {predicted_am1:.3f}):\n"
             + common.format_table(h1, rows(results1))
             + "\nMemory 0 (the anchor):\n" + common.format_table(h0, rows(results0))
             + "\n(fitted = exponent of L_t fitted on [T/10, T] along the schedule tuned for T, raised by its"
               " final anneal; "
             + ("horizon exp. = log(L*_T / L*_T_long) / log(T_long / T) with each method tuned again at T_long; "
                if TL else "")
             + "converged = L-BFGS-B stopped on its tolerance, not on the iteration cap)")
    checks = {
        "free_memory1_over_am1": r["free memory-1"].value / ref1,
        "free_sgd_beats_constant": s["free"].value < s["constant"].value,
        "free_sgd_beats_power_law": s["free"].value < s["power law"].value,
        "am1_delta": r["AM1 family"].parameters["delta"],
        "am1_delta_noise_stable": r["AM1 family"].parameters["delta"] < 1.0 - 1.0 / cfg.nu,
    }
    result = {"config": asdict(cfg), "memory1": results1, "memory0": results0, "checks": checks,
              "timings_s": timings, "table": table}
    if out_dir is not None:
        files = _figures(out_dir, cfg, r, s, long)
        files.append(os.path.join(out_dir, "schedule_design.json"))
        result["files"] = files
        common.write_json(files[-1], result)
    return result


def _value(r, s, name):
    return (r[name] if name in r else s[name]).value


def _figures(out_dir, cfg, r, s, long):
    from ..plotting import plot_curves, plot_line_panels

    T = cfg.steps
    files = [os.path.join(out_dir, name) for name in
             ("schedule_design_losses.png", "schedule_design_memory1.png", "schedule_design_sgd.png")]
    plot_curves({f"{name}: L_T={r[name].value:.3g}": r[name].loss for name in MEMORY1}, files[0],
                title=f"tuned for L_T, T={T}: nu={cfg.nu:g}, kappa={cfg.kappa:g}, B={cfg.batch_size}")

    steps = np.arange(T, dtype=float)
    am1 = _am1_form(r["AM1 family"].schedule, T)
    free = _am1_form(r["free memory-1"].schedule, T)
    dana = _free_memory1_law_dana(r["DANA-decaying"].schedule, T)
    plot_line_panels(
        [{"title": label, "xlabel": "step t + 1", "legend": k == 0,
          "floor": 1e-4,   # lr_0 = 0 in AM1: keep the scale readable
          "series": [{"label": "free memory-1 (optimised)", "x": steps + 1, "y": free[k]},
                     {"label": "AM1 law (tuned)", "x": steps + 1, "y": am1[k], "style": "--"},
                     {"label": "DANA-decaying (tuned)", "x": steps + 1, "y": dana[k], "style": ":"}]}
         for k, label in enumerate(("learning rate lr_t (alpha_t)", "1 - beta_t (momentum)", "kick_t"))],
        files[1], title=f"optimised memory-1 schedule vs the AM1 law (AM1 form: v+ = beta v + g, "
                        f"w+ = w - lr v+ - kick g), T={T}")

    t = np.arange(1, T + 1)
    plot_line_panels(
        [{"xlabel": "step t + 1", "ylabel": "loss L_t",
          "series": [{"label": f"{name}: L_T={s[name].value:.3g}", "x": t, "y": s[name].loss[1:]} for name in MEMORY0]},
         {"xlabel": "step t + 1", "ylabel": "learning rate",
          "series": [{"label": name, "x": steps + 1, "y": s[name].schedule.parameters(T)[0]} for name in MEMORY0]}],
        files[2], title=f"memory 0: SGD learning-rate schedules tuned for L_T, T={T}")
    return files


def _free_memory1_law_dana(schedule, T):
    """DANA-decaying's lr_t = g1 g3_t, 1 - beta_t = Delta_t and kick_t = g2 read off its matrix form
    (alpha = g2 + g1 g3_t, b = -g3_t (1 - Delta_t), c = -g1, D = 1 - Delta_t); NaN where
    Delta_t = 1 (t = 0), which hides g3_t."""
    alpha, b, c, D, e = schedule.parameters(T)
    d = D[:, 0, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        g3 = np.where(d == 0, np.nan, -b[:, 0] / d)
    lr = -c[:, 0] * g3
    return lr, 1.0 - d, alpha - lr
