"""Figure 4 of the paper: AM1 fitted exponent vs delta (exact engine, infinite power laws).

For each ``(nu, kappa)`` (``zeta = kappa/nu``), batch size B and schedule exponent ``delta`` the
AM1 power-law schedule (``kick``, ``gamma = 1``, ``t0``) runs ``steps`` steps under Gaussian
mini-batch noise; the exponent is fitted on ``fit_window`` and compared with ``zeta (1 + delta)``,
predicted for ``delta < 1 - 1/nu`` (P.27). For ``delta >= 1 - 1/nu`` there is no prediction and the
table says what happened: the divergence step, or -- without divergence within T -- the fitted
exponent and whether the loss is already rising at T (``L_T`` above the curve's minimum by more
than 1%).

All ``(problem, B, delta)`` curves are one batched run of the exact engine (``memsgd.loss_curves``,
split into chunks of configurations as [`memsgd.sweep`][memsgd.sweeps.sweep] does), bitwise the curves of
``memsgd.loss_curve``: the table is the one a loop over the configurations gives.

Simulation cross-check: one configuration (``sim_*``) is simulated with real mini-batch SGD on a
finite spectrum and compared with the exact curve of the same finite spectrum (4 standard errors).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np

from .. import schedules
from .._progress import Tracker
from .._sweep_run import Configurations, chunk_tasks, executor_kind, run_tasks
from .._validation import fit_window as check_fit_window
from .._validation import (
    nonnegative_int,
    nonnegative_scalar,
    nonnegative_scalars,
    positive_int,
    positive_ints,
    positive_scalar,
    power_law_pairs,
    require_memory,
)
from ..noise import Noise
from ..spectrum import Spectrum
from ..theory import fit_exponent
from . import common
from .fig1 import simulation_check

__all__ = ["Fig4Config", "small_config", "run"]


@dataclass
class Fig4Config:
    """Settings of the Figure 4 reproduction: problems, batch sizes, AM1 exponents delta, horizon.

    Examples:
        >>> from memsgd.experiments.fig4 import Fig4Config
        >>> Fig4Config().problems                                  # (nu, kappa)
        ((2.0, 1.0), (1.5, 0.45), (3.0, 0.75))
    """

    problems: tuple[tuple[float, float], ...] = ((2.0, 1.0), (1.5, 0.45), (3.0, 0.75))  # (nu, kappa)
    batch_sizes: tuple[int, ...] = (10, 100)
    deltas: tuple[float, ...] = (0.1, 0.25, 0.4, 0.55, 0.7, 0.9)
    steps: int = 100_000
    fit_window: tuple[float, float] = (10_000.0, 100_000.0)
    head: int = 1024
    kick: float = 1.0
    gamma: float = 1.0
    t0: float = 10.0
    sim_problem: tuple[float, float] = (1.5, 0.45)
    sim_batch_size: int = 10
    sim_delta: float = 0.25
    sim_size: int = 300
    sim_steps: int = 1000
    sim_runs: int = 128
    seed: int = 1

    def validate(self) -> Fig4Config:
        power_law_pairs(self.problems, "problems")
        power_law_pairs((self.sim_problem,), "sim_problem")
        positive_ints(self.batch_sizes, "batch_sizes")
        nonnegative_scalars(self.deltas, "deltas")
        for name in ("steps", "head", "sim_batch_size", "sim_size", "sim_steps", "sim_runs"):
            positive_int(getattr(self, name), name)
        nonnegative_int(self.seed, "seed")
        check_fit_window(self.fit_window, self.steps)
        for name in ("kick", "gamma", "t0"):
            positive_scalar(getattr(self, name), name)
        nonnegative_scalar(self.sim_delta, "sim_delta")
        # before any work: one configuration's every-step curve, step list and per-step parameters
        # (memory 1: 5 per step), and the plotted curves of the first problem (one per delta)
        require_memory(8.0 * (self.steps + 1) * (7 + len(self.deltas)),
                       f"Figure 4 with steps = {self.steps} (every step of each curve is kept)")
        return self

    def with_steps(self, steps: int) -> Fig4Config:
        """The same figure at horizon ``steps``, exponents fitted on ``[steps/10, steps]``."""
        steps = positive_int(steps, "steps")
        return replace(self, steps=steps, fit_window=(steps / 10, float(steps)))


def small_config() -> Fig4Config:
    """Tiny settings for smoke tests (seconds).

    Examples:
        >>> from memsgd.experiments.fig4 import small_config
        >>> small_config().deltas
        (0.25, 0.7)
    """
    return Fig4Config(problems=((2.0, 1.0),), batch_sizes=(10,), deltas=(0.25, 0.7), steps=2000,
                      fit_window=(200.0, 2000.0), head=128, sim_size=30, sim_steps=100, sim_runs=64)


def run(config: Optional[Fig4Config] = None, out_dir=None, progress=None, simulate: bool = True, *,
        executor=None, chunk_size: Optional[int] = None) -> dict:
    """Compute Figure 4; write ``fig4.png``, ``fig4_curves.png``, ``fig4_simulation.png``, ``fig4.json``.

    Every ``(problem, batch size, delta)`` curve comes from one batched run of the exact engine
    ([`memsgd.loss_curves`][memsgd.loss_curves], bitwise the curves of [`memsgd.loss_curve`][memsgd.loss_curve]),
    split into
    chunks of configurations; ``progress(done, total, label)`` is called as configurations
    finish. ``executor`` / ``chunk_size``: as in [`memsgd.sweep`][memsgd.sweeps.sweep] (docs/sweeps.md).

    Examples:
        Each run's fitted exponent next to the prediction ``zeta (1 + delta)``, which holds for
        ``delta < 1 - 1/nu = 0.5`` only:

        >>> import dataclasses
        >>> from memsgd.experiments import fig4
        >>> cfg = dataclasses.replace(fig4.small_config(), steps=300, fit_window=(30.0, 300.0), head=64)
        >>> result = fig4.run(cfg, out_dir=None, simulate=False)
        >>> [(r["delta"], r["predicted_exponent"]) for r in result["results"]]
        [(0.25, 0.625), (0.7, None)]
    """
    cfg = config or Fig4Config()
    if not isinstance(cfg, Fig4Config):
        raise TypeError(f"config must be a Fig4Config, got {type(cfg).__name__}")
    cfg.validate()
    if chunk_size is not None:
        chunk_size = positive_int(chunk_size, "chunk_size")
    executor_kind(executor)  # a bad executor is refused before any work
    out_dir = common.prepare_out_dir(out_dir)
    points, configs = _configurations(cfg)
    total = len(points) + (2 if simulate else 0)
    tracker = Tracker(progress, total)
    T = cfg.steps
    t_lo, t_hi = cfg.fit_window
    results, rows, curves, guides = [None] * len(points), [], {}, {}
    tasks = chunk_tasks(configs, executor, chunk_size)

    def on_result(n, losses, diverged):
        # full curves of one chunk: reduced here to the table's numbers (and the plotted curves),
        # so that memory stays O(chunk T) whatever the number of configurations
        for row, i in enumerate(tasks[n]):
            nu, kappa, B, d = points[i]
            loss = losses[row]
            diverged_at = None if diverged[row] < 0 else int(diverged[row])
            results[i] = _entry(nu, kappa, B, d, loss, diverged_at, t_lo, t_hi)
            if B == cfg.batch_sizes[0] and (nu, kappa) == tuple(cfg.problems[0]):
                pred = results[i]["predicted_exponent"]
                curves[f"delta={d:g}"] = loss.copy()   # not a view that keeps the chunk alive
                if pred is not None and diverged_at is None:
                    guides[f"delta={d:g}"] = common.guide(loss, pred, t_lo, t_hi) + (f"t^-{pred:.3g}",)
            tracker.step(f"nu={nu:g} kappa={kappa:g} B={B} delta={d:g}")

    run_tasks(configs, tasks, executor, threads=None, on_result=on_result)
    curves = {f"delta={d:g}": curves[f"delta={d:g}"] for d in cfg.deltas}   # delta order, as plotted
    guides = {k: guides[k] for k in curves if k in guides}
    for r in results:
        rows.append([f"{r['nu']:g}", f"{r['zeta']:.3g}", f"{1 - 1 / r['nu']:.3g}", r["batch_size"], f"{r['delta']:g}",
                     _pred_text(r), common.fmt(r["fitted_exponent"]), _err_text(r), common.fmt(r["final_loss"], ".3e"),
                     r["diverged_at"] if r["diverged_at"] is not None else "-", r["status"]])
    in_range = [r for r in results if r["predicted_exponent"] is not None]
    max_err = max((abs(r["error"]) for r in in_range if r["error"] is not None), default=None)
    table = (f"Figure 4: AM1 (kick={cfg.kick:g}, gamma={cfg.gamma:g}, t0={cfg.t0:g}), Gaussian noise, infinite "
             f"spectra, T={T}, fitted on [{t_lo:g}, {t_hi:g}]; predicted zeta(1+delta) for delta < 1-1/nu "
             f"(in parentheses: the formula outside that range, where the theory predicts no such rate)\n"
             + common.format_table(["nu", "zeta", "1-1/nu", "B", "delta", "predicted", "fitted", "error", "L_T",
                                    "diverged_at", "status"], rows)
             + f"\nmax |fitted - predicted| for delta < 1 - 1/nu: {common.fmt(max_err)}")
    simulation = None
    if simulate:
        nu, kappa = cfg.sim_problem
        spec = Spectrum.power_law(nu, kappa, size=cfg.sim_size)
        algos = [(f"AM1 delta={cfg.sim_delta:g}", schedules.am1_power_law(cfg.kick, cfg.sim_delta, cfg.gamma, cfg.t0))]
        simulation = simulation_check(algos, spec, Noise.gaussian(cfg.sim_batch_size), cfg.sim_steps, cfg.sim_runs,
                                      cfg.seed, tracker,
                                      f"Simulation cross-check (nu={nu:g}, kappa={kappa:g}, K={cfg.sim_size}, "
                                      f"B={cfg.sim_batch_size}, runs={cfg.sim_runs})")
        table += "\n" + simulation["table"]
    result = {"config": asdict(cfg), "results": results, "max_abs_error_in_range": max_err, "table": table,
              "simulation": (None if simulation is None
                             else {k: v for k, v in simulation.items() if not k.startswith("_")})}
    if out_dir is not None:
        _plots(cfg, results, curves, guides, simulation, out_dir)
        result["files"] = [os.path.join(out_dir, n) for n in ("fig4.png", "fig4_curves.png", "fig4.json")]
        if simulation is not None:
            result["files"].insert(2, os.path.join(out_dir, "fig4_simulation.png"))
        common.write_json(os.path.join(out_dir, "fig4.json"), result)
    return result


def _configurations(cfg: Fig4Config):
    """The ``(nu, kappa, B, delta)`` of every curve, problem-major, and their configurations for
    the batched engine (one spectrum per problem, one noise per batch size, full curves)."""
    points, algorithms, spectrum_index, noise_index = [], [], [], []
    spectra = [Spectrum.power_law(nu, kappa, head=cfg.head) for nu, kappa in cfg.problems]
    noises = [Noise.gaussian(B) for B in cfg.batch_sizes]
    for p, (nu, kappa) in enumerate(cfg.problems):
        for b, B in enumerate(cfg.batch_sizes):
            for d in cfg.deltas:
                points.append((nu, kappa, B, d))
                algorithms.append(schedules.am1_power_law(cfg.kick, d, cfg.gamma, cfg.t0))
                spectrum_index.append(p)
                noise_index.append(b)
    configs = Configurations(algorithms, spectra, np.array(spectrum_index, dtype=np.int64), noises,
                             np.array(noise_index, dtype=np.int64), cfg.steps,
                             np.arange(cfg.steps + 1, dtype=np.int64),
                             describe=lambda i: f"(nu, kappa, B, delta) = {points[i]}")
    return points, configs


def _entry(nu, kappa, B, d, loss, diverged_at, t_lo, t_hi) -> dict:
    """One row of the results from the full curve ``loss`` (``L_0..L_T``) of one configuration."""
    diverged = diverged_at is not None
    pred = common.predicted_am1_exponent(nu, kappa, d)
    fitted = None if diverged else fit_exponent(loss, t_lo, t_hi)
    rising = None
    if not diverged:
        rising = bool(loss[-1] > 1.01 * np.min(loss[1:]))
    if pred is not None:
        status = "diverged" if diverged else ("ok" if abs(fitted - pred) <= 0.04 else "off")
    else:
        formula = kappa / nu * (1 + d)
        if diverged:
            status = "diverged"
        elif rising:
            status = "loss rising at T"
        elif fitted < formula - 0.04:
            status = "no divergence within T; slower than formula"
        else:
            status = "no divergence within T"
    return {"nu": nu, "kappa": kappa, "zeta": kappa / nu, "batch_size": B, "delta": d,
            "stable_range": d < 1 - 1 / nu, "predicted_exponent": pred,
            "fitted_exponent": fitted, "error": None if (pred is None or fitted is None) else fitted - pred,
            "final_loss": float(loss[-1]), "diverged_at": diverged_at,
            "loss_rising_at_T": rising, "status": status}


def _pred_text(r) -> str:
    """Predicted exponent; in parentheses the formula zeta(1+delta) outside its range of validity."""
    if r["predicted_exponent"] is not None:
        return common.fmt(r["predicted_exponent"])
    return f"({r['zeta'] * (1 + r['delta']):.4f})"


def _err_text(r) -> str:
    if r["fitted_exponent"] is None:
        return "-"
    if r["predicted_exponent"] is not None:
        return common.fmt(r["error"], "+.4f")
    return f"({r['fitted_exponent'] - r['zeta'] * (1 + r['delta']):+.4f})"


def _plots(cfg, results, curves, guides, simulation, out_dir):
    from ..plotting import plot_curves, plot_exponents_vs_delta

    plot_exponents_vs_delta(
        results, os.path.join(out_dir, "fig4.png"), problems=cfg.problems, batch_sizes=cfg.batch_sizes,
        title=f"Fig. 4: AM1 power-law schedule (kick={cfg.kick:g}, gamma={cfg.gamma:g}, t0={cfg.t0:g}), "
              f"Gaussian noise, T={cfg.steps}\ndashed: predicted zeta(1+delta); dotted: delta = 1-1/nu")
    nu, kappa = cfg.problems[0]
    plot_curves(curves, os.path.join(out_dir, "fig4_curves.png"), guides=guides,
                title=f"AM1 power-law schedule (kick={cfg.kick:g}, gamma={cfg.gamma:g}, t0={cfg.t0:g}), "
                      f"B={cfg.batch_sizes[0]}\npower law nu={nu:g}, kappa={kappa:g} (infinite), Gaussian noise")
    if simulation is not None:
        snu, skappa = cfg.sim_problem
        plot_curves(simulation["_curves"], os.path.join(out_dir, "fig4_simulation.png"), points=simulation["_points"],
                    title=f"Fig. 4 cross-check: simulate_sgd (points, +-1 s.e.) vs exact (line)\n"
                          f"power law nu={snu:g}, kappa={skappa:g}, K={cfg.sim_size}, B={cfg.sim_batch_size}, "
                          f"{cfg.sim_runs} runs")
