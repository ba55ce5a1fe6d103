"""Corner SGD in real training, against heavy ball and AM1 (``memsgd reproduce corner-training``;
docs/corner.md "Training").

Least squares on random ReLU features of scikit-learn's digits (the ``relu`` feature set of
[`memsgd.experiments.practice`][memsgd.experiments.practice]: realizable targets, the spectrum of ``X^T X / n``),
mini-batches
of B rows drawn with replacement. Three methods, each tuned by the exact theory on the data's
spectrum with SE noise ``tau`` fitted to the data
([`memsgd.experiments.empirical.estimate_tau`][memsgd.experiments.empirical.estimate_tau]):

- heavy ball, constant, tuned for ``L_T`` by [`memsgd.optimize_schedule`][memsgd.optimize_schedule] (``"heavy_ball"``);
- AM1's power-law schedule tuned for ``L_T`` by [`memsgd.optimize_schedule`][memsgd.optimize_schedule]
  (``"am1_power_law"``);
- the corner method ([`memsgd.corner`][memsgd.corner], angle ``theta``, memory ``memory``), its scale fitted to the
  noise sum ``V = v`` with ``v`` picked from ``noise_sums`` by the exact ``L_T``.

Each is trained with torch ([`memsgd.torch.MemorySGD`][memsgd.torch.MemorySGD] for heavy ball and the corner method,
[`memsgd.torch.AM1`][memsgd.torch.AM1] with the schedule for AM1), ``seeds`` runs, and the corner method also with
optax ([`memsgd.optax.memory_sgd`][memsgd.optax.memory_sgd], ``optax_seeds`` runs) when JAX is installed. The table
gives
the exact ``L_T`` (fitted and Gaussian ``tau``) beside the trained mean and its standard error.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from .._optional import require_all
from .._progress import Tracker
from .._steps import log_spaced_steps
from .._validation import bounded_scalar, positive_int
from . import common

__all__ = ["CornerTrainingConfig", "small_config", "run"]

METHODS = ("heavy ball", "AM1 schedule", "corner")


@dataclass
class CornerTrainingConfig:
    """Settings of the corner-against-AM1 training comparison (docs/corner.md).

    Examples:
        >>> from memsgd.experiments.corner_training import CornerTrainingConfig
        >>> CornerTrainingConfig().memory
        8
    """

    steps: int = 1000
    seeds: int = 20
    optax_seeds: int = 8
    batch_size: int = 10
    width: int = 2000
    theta: float = 1.8
    memory: int = 8
    noise_sums: tuple[float, ...] = (0.2, 0.35, 0.5, 0.65, 0.8)
    starts: int = 3
    max_iterations: int = 100
    points: int = 26
    seed: int = 0
    threads: Optional[int] = 1
    dtype: str = "float32"

    def validate(self) -> CornerTrainingConfig:
        for name in ("steps", "seeds", "batch_size", "width", "memory", "starts", "max_iterations", "points"):
            positive_int(getattr(self, name), name)
        if self.steps < 20:
            raise ValueError(f"steps must be >= 20, got {self.steps}")
        if self.optax_seeds < 0:
            raise ValueError(f"optax_seeds must be >= 0, got {self.optax_seeds}")
        bounded_scalar(self.theta, "theta", 1.0, 2.0)
        for v in self.noise_sums:
            bounded_scalar(v, "noise_sums", 0.0, 1.0, low_open=True, high_open=True)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        return self


def small_config() -> CornerTrainingConfig:
    """Tiny settings for smoke tests (seconds).

    Examples:
        >>> from memsgd.experiments.corner_training import small_config
        >>> small_config().steps
        40
    """
    return CornerTrainingConfig(steps=40, seeds=4, optax_seeds=2, width=100, memory=4, noise_sums=(0.5,),
                                starts=1, max_iterations=5, points=8)


def _features(cfg):
    from .practice import PracticeConfig, feature_sets
    name, sets, labels = feature_sets(PracticeConfig(width=cfg.width, seed=cfg.seed))
    X = sets[f"relu{cfg.width}"]
    W = np.linalg.lstsq(X, labels, rcond=None)[0]
    return name, X, X @ W, W


def _optax_losses(algo, X, Y, W_star, B, T, record, seeds, seed):
    """Excess losses of ``seeds`` optax runs of ``memory_sgd(algo)`` (float64, numpy batches)."""
    import jax
    import jax.numpy as jnp
    import optax

    from ..optax import memory_sgd

    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        return _optax_run(jax, jnp, optax, memory_sgd(algo), X, Y, W_star, B, T, record, seeds, seed)
    finally:
        jax.config.update("jax_enable_x64", previous)


def _optax_run(jax, jnp, optax, tx, X, Y, W_star, B, T, record, seeds, seed):
    H = X.T @ X / X.shape[0]
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)

    def batch_loss(w, idx):
        r = Xj[idx] @ w - Yj[idx]
        return 0.5 * jnp.sum(r * r) / idx.shape[0]

    @jax.jit
    def step(w, state, idx):
        g = jax.grad(batch_loss)(w, idx)
        upd, state = tx.update(g, state, w)
        return optax.apply_updates(w, upd), state

    out = np.full((len(record), seeds), np.inf)
    rng = np.random.default_rng(seed)
    for s in range(seeds):
        w = jnp.zeros((X.shape[1], Y.shape[1]))
        state = tx.init(w)
        k = 0
        for t in range(T + 1):
            if k < len(record) and t == record[k]:
                delta = np.asarray(w) - W_star
                out[k, s] = 0.5 * float(np.einsum("dc,de,ec->", delta, H, delta))
                k += 1
            if t == T:
                break
            w, state = step(w, state, jnp.asarray(rng.integers(0, X.shape[0], B)))
    return out


def run(config: Optional[CornerTrainingConfig] = None, out_dir=None, progress=None) -> dict:
    """Tune by theory, train with torch (and optax); write ``corner_training.png`` and ``.json``.

    Examples:
        Needs torch, optax and scikit-learn (``pip install 'memsgd[torch,jax,data]'``):

        >>> from memsgd.experiments import corner_training
        >>> result = corner_training.run(corner_training.small_config(), out_dir=None)
        >>> "table" in result and "rows" in result
        True
    """
    cfg = config or CornerTrainingConfig()
    if not isinstance(cfg, CornerTrainingConfig):
        raise TypeError(f"config must be a CornerTrainingConfig, got {type(cfg).__name__}")
    cfg.validate()
    require_all([("torch", "torch"), ("sklearn", "data"), ("threadpoolctl", "data")],
                "memsgd reproduce corner-training")
    from ..corner import corner
    from ..design import optimize_schedule
    from ..dynamics import loss_curve
    from ..noise import Noise
    from ..spectrum import Spectrum
    from ..theory import stability
    from ..torch import AM1, MemorySGD
    from .empirical import estimate_tau
    from .linear_training import train_seeds
    from .practice import _thread_limits

    out_dir = common.prepare_out_dir(out_dir)
    t_start = time.perf_counter()
    tracker = Tracker(progress, 4 + len(cfg.noise_sums))
    dataset, X, Y, W_star = _features(cfg)
    spectrum = Spectrum.from_features(X, Y)
    tau1, tau2 = estimate_tau(X)
    B, T = cfg.batch_size, cfg.steps
    noise = Noise(B, tau1, tau2)
    gaussian = Noise.gaussian(B)
    record = log_spaced_steps(T, cfg.points)

    tuned = {}
    hb = optimize_schedule("heavy_ball", spectrum, noise, T, starts=cfg.starts, max_iterations=cfg.max_iterations)
    tuned[METHODS[0]] = hb.schedule.at(0)
    tracker.step("heavy ball tuned")
    am1 = optimize_schedule("am1_power_law", spectrum, noise, T, starts=cfg.starts, max_iterations=cfg.max_iterations)
    tuned[METHODS[1]] = am1.schedule
    tracker.step("AM1 tuned")
    corners = []
    for v in cfg.noise_sums:
        algo = corner(cfg.theta, cfg.memory, spectrum=spectrum, noise=noise, noise_sum=v)
        corners.append((loss_curve(algo, spectrum, noise, T).loss[-1], v, algo))
        tracker.step(f"corner V={v:g}")
    best = min(corners, key=lambda c: c[0])
    tuned[METHODS[2]] = best[2]
    rep = stability(best[2], spectrum, noise)

    rows, series, frameworks = [], [], []
    colors = dict(zip(METHODS, ("tab:blue", "tab:red", "tab:green")))
    with _thread_limits(cfg.threads):
        for k, name in enumerate(METHODS):
            algo = tuned[name]
            theory = loss_curve(algo, spectrum, noise, T).loss
            theory_g = loss_curve(algo, spectrum, gaussian, T).loss
            if name == METHODS[1]:
                make = (lambda ps, sch=algo: AM1(ps, schedule=sch))
            else:
                make = (lambda ps, a=algo: MemorySGD.from_algorithm(ps, a))
            losses = train_seeds(make, X, Y, W_star, B, T, record, cfg.seeds, seed=cfg.seed + 17 * k,
                                 dtype=cfg.dtype)
            mean, se = losses.mean(axis=1), losses.std(axis=1, ddof=1) / math.sqrt(cfg.seeds)
            rows.append(_row(name, "torch", algo, theory, theory_g, mean, se, cfg.seeds))
            series.append(dict(label=f"{name}: torch", t=record, y=mean, err=se,
                               color=colors[name]))
            series.append(dict(label=f"{name}: exact", t=np.arange(T + 1), y=theory, style="-",
                               color=colors[name]))
            if name == METHODS[2] and cfg.optax_seeds:
                try:
                    import jax  # noqa: F401
                    import optax  # noqa: F401
                except ImportError:
                    pass
                else:
                    lo = _optax_losses(algo, X, Y, W_star, B, T, record, cfg.optax_seeds, cfg.seed + 999)
                    m2, s2 = lo.mean(axis=1), lo.std(axis=1, ddof=1) / math.sqrt(cfg.optax_seeds)
                    rows.append(_row(name, "optax", algo, theory, theory_g, m2, s2, cfg.optax_seeds))
                    frameworks.append(dict(label=f"{name}: optax", t=record, y=m2,
                                           err=s2, color="k"))
                    frameworks += [dict(s, label=s["label"]) for s in series[-2:]]
            tracker.step(f"trained {name}")
    table = _table(rows, dataset, cfg, tau1, tau2, best, rep)
    result = {"config": asdict(cfg), "dataset": dataset, "tau": [tau1, tau2], "rows": rows,
              "corner_noise_sum": best[1], "corner_stability": {"strictly_stable": rep.strictly_stable,
                                                                "noise_sum": rep.noise_sum},
              "am1_parameters": am1.parameters, "heavy_ball_parameters": hb.parameters, "table": table,
              "files": []}
    if out_dir is not None:
        from ..plotting import plot_panels
        png = os.path.join(out_dir, "corner_training.png")
        panels = [dict(title=f"{dataset}, relu{cfg.width} features, B = {B}", series=series)]
        if frameworks:
            panels.append(dict(title="the corner method: torch and optax", series=frameworks))
        plot_panels(panels, png, ncols=len(panels),
                    title=f"exact loss, fitted tau (lines) vs training (points: mean +- se of {cfg.seeds} torch / "
                          f"{cfg.optax_seeds} optax runs); heavy ball and AM1 tuned for L_T")
        js = os.path.join(out_dir, "corner_training.json")
        result["files"] = [png, js]
        common.write_json(js, {k: v for k, v in result.items() if k != "files"})
    result["seconds"] = time.perf_counter() - t_start
    return result


def _row(name, framework, algo, theory, theory_g, mean, se, seeds):
    return {"method": name, "framework": framework, "algorithm": repr(algo), "seeds": seeds,
            "theory_T": float(theory[-1]), "theory_gaussian_T": float(theory_g[-1]),
            "trained_T": float(mean[-1]), "stderr_T": float(se[-1]),
            "z_T": float((mean[-1] - theory[-1]) / se[-1]) if se[-1] > 0 else math.nan,
            "train_mean": mean, "train_stderr": se}


def _table(rows, dataset, cfg, tau1, tau2, best, rep):
    fmt = common.fmt
    ref = next(r["trained_T"] for r in rows if r["method"] == "corner" and r["framework"] == "torch")
    h = ["method", "framework", "exact L_T (fitted tau)", "exact L_T (Gaussian)", "trained L_T", "+- se", "z",
         "trained / corner"]
    body = [[r["method"], r["framework"], fmt(r["theory_T"], ".4e"), fmt(r["theory_gaussian_T"], ".4e"),
             fmt(r["trained_T"], ".4e"), fmt(r["stderr_T"], ".1e"), fmt(r["z_T"], ".2f"),
             fmt(r["trained_T"] / ref, ".3f")] for r in rows]
    return (f"Corner SGD in training: {dataset}, relu{cfg.width} features, least squares, B={cfg.batch_size}, "
            f"T={cfg.steps}, fitted tau = ({tau1:.3g}, {tau2:.3g}); corner theta={cfg.theta:g}, memory "
            f"{cfg.memory}, noise sum V={best[1]:g} (stability(): strictly stable {rep.strictly_stable}, "
            f"V = {rep.noise_sum:.3f})\n" + common.format_table(h, body)
            + "\n(z = (trained - exact, fitted tau) / se at T; heavy ball and AM1 tuned for L_T by optimize_schedule)")
