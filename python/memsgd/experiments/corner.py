"""Corner algorithms against AM1 on power laws (``memsgd reproduce corner``; docs/corner.md).

Three parts, all on infinite Gaussian power laws with Gaussian mini-batch noise (batch B):

1. **Memory sweep** at ``(nu, kappa)`` (default 2, 1: ``zeta = 0.5``): the corner method of angle
   ``theta`` (default 1.9, rate ``theta zeta = 0.95``) with memory ``M`` in ``memories``, its scale fitted to
   ``lambda_max`` and to the noise sum ``V = noise_sum`` ([`memsgd.corner`][memsgd.corner]), exact losses at
   ``points`` log-spaced steps up to ``t_max`` (1e12) by [`memsgd.modal_loss_at`][memsgd.modal_loss_at] (the exact
   recursion below a few hundred steps); per M the exponent fitted on ``fit_window`` (1e5 to 1e9), the
   local exponent per half decade, and the *horizon*: the last step where the local exponent is still
   at least ``(theta zeta + zeta) / 2``, beside the memory's longest time constant ``1 / (1 - d_M)``.
2. **Two-sided comparison** at each ``(nu, zeta)`` of ``comparison`` (signal-dominated phase): the
   corner method with memory ``comparison_memory`` at ``theta = min(theta_max, nu - nu_margin, theta_cap)``
   against the AM1 power-law schedule tuned for ``L_T`` by [`memsgd.optimize_schedule`][memsgd.optimize_schedule] at
   each
   horizon of ``am1_horizons`` (warm-started from the previous one). Measured exponents: the corner's
   fitted on ``[T_1, T_2]`` (the last two AM1 horizons) and on ``fit_window``; AM1's *horizon exponent*
   ``log(L*_T1 / L*_T2) / log(T2 / T1)`` (a schedule tuned for one horizon anneals at its end, so the rate
   that matters is how the tuned final loss falls with the horizon). The measured winner is the
   higher exponent on ``[T_1, T_2]``; the theory's is ``theta_max zeta`` against ``zeta (2 - 1/nu)``.
3. **The paper's synthetic check** (its Appendix F): ``nu = 4``, ``zeta = 1/4`` (``kappa = 1``), ``B = 100``,
   corner ``theta = 1.8`` with memory 5 and ``l = 5`` against plain SGD (learning rate ``1 / lambda_max``),
   exponents fitted on ``paper_synthetic`` (the paper reports ~0.45 and ~0.25 on its ReLU model).
4. **Phase diagram**: the theory's map of which rate is higher over the ``(nu, zeta)`` plane, with the
   comparison points drawn on it (white edge: measurement agrees with the theory, red: it does not).

Figures: ``corner_losses.png`` (loss curves per M with AM1 and guides), ``corner_local_exponents.png``,
``corner_contours.png`` (the contour view, docs/corner.md), ``corner_phase.png``; JSON ``corner.json``.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from .._progress import Tracker
from .._validation import bounded_scalar, positive_int, positive_ints, positive_scalar, power_law_pairs
from ..contour import response_contour
from ..corner import corner, corner_map, corner_nodes
from ..design import optimize_schedule
from ..modal import modal_loss_at
from ..noise import Noise
from ..spectrum import Spectrum
from ..theory import corner_crossover, corner_phase, fit_exponent
from ..theory._fitting import exponent_at
from ..theory._stability import stability
from . import common

__all__ = ["CornerConfig", "small_config", "run", "phase_map"]


@dataclass
class CornerConfig:
    """Settings of the corner-algorithm reproduction (docs/corner.md).

    Examples:
        >>> from memsgd.experiments.corner import CornerConfig
        >>> CornerConfig().memories
        (2, 4, 8, 16, 32)
    """

    nu: float = 2.0
    kappa: float = 1.0
    batch_size: int = 10
    theta: float = 1.9
    memories: tuple[int, ...] = (2, 4, 8, 16, 32)
    spacing: float = 5.0
    noise_sum: float = 0.5
    head: int = 256
    t_max: float = 1e12
    points: int = 121
    fit_window: tuple[float, float] = (1e5, 1e9)
    comparison: tuple[tuple[float, float], ...] = (   # (nu, zeta): regions III, I, II on both sides of the crossover
        (1.5, 0.25), (1.5, 0.5), (1.5, 1.0),
        (2.0, 0.25), (2.0, 0.5), (2.0, 0.75), (2.0, 1.0),
        (3.0, 0.5), (3.0, 1.25))
    comparison_memory: int = 16
    comparison_t_max: float = 1e9
    theta_cap: float = 1.9
    nu_margin: float = 0.1
    am1_horizons: tuple[int, ...] = (1000, 10_000, 100_000)
    am1_starts: int = 3
    am1_iterations: int = 150
    stability_check_max_memory: int = 12   # memsgd.stability's dense solve is refused above ~this on 600 nodes
    # the paper's synthetic experiment (its Appendix F: nu = 4, zeta = 1/4, theta = 1.8, M = 5, l = 5,
    # B = 100; corner exponent "slightly lower than, but close to" 0.45, plain SGD's close to 0.25), here on
    # the ideal power law it approximates; None: skip
    paper_synthetic: Optional[tuple[float, float]] = (1e3, 1e5)   # fit window

    def validate(self) -> CornerConfig:
        power_law_pairs(((self.nu, self.kappa),), "(nu, kappa)")
        for name in ("batch_size", "head", "points", "comparison_memory", "am1_starts", "am1_iterations"):
            positive_int(getattr(self, name), name)
        positive_ints(self.memories, "memories")
        positive_ints(self.am1_horizons, "am1_horizons")
        if list(self.am1_horizons) != sorted(set(self.am1_horizons)) or len(self.am1_horizons) < 2:
            raise ValueError(f"am1_horizons must be >= 2 increasing steps, got {self.am1_horizons}")
        if self.am1_horizons[0] < 20:
            raise ValueError(f"am1_horizons must start at >= 20 steps, got {self.am1_horizons[0]}")
        bounded_scalar(self.theta, "theta", 1.0, 2.0)
        bounded_scalar(self.theta_cap, "theta_cap", 1.0, 2.0)
        bounded_scalar(self.noise_sum, "noise_sum", 0.0, 1.0, low_open=True, high_open=True)
        positive_scalar(self.spacing, "spacing")
        positive_scalar(self.nu_margin, "nu_margin")
        for name in ("t_max", "comparison_t_max"):
            value = positive_scalar(getattr(self, name), name)
            if not 1e3 <= value <= 1e12:
                raise ValueError(f"{name} must be in [1e3, 1e12], got {value:g}")
        lo, hi = self.fit_window
        if not 0 < lo < hi <= self.t_max:
            raise ValueError(f"fit_window must satisfy 0 < lo < hi <= t_max = {self.t_max:g}, got {self.fit_window}")
        pairs = tuple(self.comparison)
        for nu, zeta in pairs:
            power_law_pairs(((nu, zeta * nu),), "comparison (nu, zeta)")
            if corner_phase(nu, zeta)["region"] == "noise":
                raise ValueError(f"comparison points must lie in the signal-dominated phase zeta < 2 - 1/nu, "
                                 f"got (nu, zeta) = ({nu}, {zeta})")
        return self


def small_config() -> CornerConfig:
    """Tiny settings for smoke tests (seconds).

    Examples:
        >>> from memsgd.experiments.corner import small_config
        >>> small_config().memories
        (2, 4)
    """
    return CornerConfig(memories=(2, 4), head=16, t_max=1e6, points=25, fit_window=(1e3, 1e5),
                        comparison=((2.0, 0.5), (2.0, 1.0)), comparison_memory=4, comparison_t_max=1e5,
                        am1_horizons=(100, 1000), am1_starts=1, am1_iterations=20, paper_synthetic=(100, 1000))


def _log_steps(t_max: float, points: int) -> np.ndarray:
    return np.unique(np.round(np.geomspace(10, t_max, points)).astype(np.int64))


def _fit(steps, loss, lo, hi) -> float:
    sel = (steps >= lo) & (steps <= hi) & np.isfinite(loss) & (loss > 0)
    if np.count_nonzero(sel) < 2:
        return math.nan
    return exponent_at(steps[sel], loss[sel])


def _local_exponents(steps, loss):
    """Exponent fitted over each half decade ``[t / sqrt(10), t sqrt(10)]``, at the decade points t."""
    centres = 10.0 ** np.arange(math.ceil(math.log10(steps[0]) + 0.5), math.floor(math.log10(steps[-1]) - 0.5) + 1)
    return centres, np.array([_fit(steps, loss, c / 10 ** 0.5, c * 10 ** 0.5) for c in centres])


def _horizon(centres, local, level) -> Optional[float]:
    """The last decade point from which on (going back from the first drop) the local exponent stays
    >= level: the largest ``t`` with every local exponent up to ``t`` (after the first that reaches it) >= level."""
    ok = np.isfinite(local) & (local >= level)
    if not np.any(ok):
        return None
    first = int(np.argmax(ok))
    end = first
    while end + 1 < ok.size and ok[end + 1]:
        end += 1
    return float(centres[end])


def _corner_run(cfg, spec, noise, theta, memory, t_max, points):
    algo = corner(theta, memory, spectrum=spec, noise=noise, spacing=cfg.spacing, noise_sum=cfg.noise_sum)
    steps = _log_steps(t_max, points)
    t0 = time.perf_counter()
    res, info = modal_loss_at(algo, spec, noise, steps, details=True)
    elapsed = time.perf_counter() - t0
    check = None
    if memory <= cfg.stability_check_max_memory:
        rep = stability(algo, spec, noise)
        check = {"strictly_stable": rep.strictly_stable, "converges": rep.converges, "noise_sum": rep.noise_sum}
    d, _ = corner_nodes(theta, memory, cfg.spacing)
    return {"algorithm": repr(algo), "scale": algo.preset[1]["scale"], "alpha_eff": algo.alpha_eff,
            "time_constant": float(1.0 / (1.0 - d[-1])), "steps": steps, "loss": res.loss,
            "relative_error": res.relative_error, "exact_until": res.exact_until, "noise_sum": info["noise_sum"],
            "stability_check": check, "seconds": elapsed, "decades": info["decades"]}


def run(config: Optional[CornerConfig] = None, out_dir=None, progress=None) -> dict:
    """Memory sweep, two-sided comparison with tuned AM1 and the phase diagram; writes
    ``corner_*.png`` and ``corner.json`` to ``out_dir``.

    Examples:
        >>> from memsgd.experiments import corner
        >>> result = corner.run(corner.small_config(), out_dir=None)
        >>> "table" in result and "memory_sweep" in result
        True
    """
    cfg = config or CornerConfig()
    if not isinstance(cfg, CornerConfig):
        raise TypeError(f"config must be a CornerConfig, got {type(cfg).__name__}")
    cfg.validate()
    out_dir = common.prepare_out_dir(out_dir)
    noise = Noise.gaussian(cfg.batch_size)
    tracker = Tracker(progress, len(cfg.memories) + 2 * len(cfg.comparison) + 1)
    zeta = cfg.kappa / cfg.nu
    spec = Spectrum.power_law(cfg.nu, cfg.kappa, head=cfg.head)

    # 1. memory sweep
    level = 0.5 * (cfg.theta * zeta + zeta)
    sweep = []
    for M in cfg.memories:
        r = _corner_run(cfg, spec, noise, cfg.theta, M, cfg.t_max, cfg.points)
        centres, local = _local_exponents(r["steps"], r["loss"])
        r.update(memory=M, fitted=_fit(r["steps"], r["loss"], *cfg.fit_window), local_steps=centres,
                 local_exponents=local, horizon=_horizon(centres, local, level))
        sweep.append(r)
        tracker.step(f"corner M={M}")

    # 2. two-sided comparison
    T1, T2 = cfg.am1_horizons[-2], cfg.am1_horizons[-1]
    comparison = []
    am1_curves = {}
    for nu, z in cfg.comparison:
        theory = corner_phase(nu, z)
        kappa = z * nu
        cspec = Spectrum.power_law(nu, kappa, head=cfg.head)
        theta = min(theory["theta_max"], nu - cfg.nu_margin, cfg.theta_cap)
        r = _corner_run(cfg, cspec, noise, theta, cfg.comparison_memory, cfg.comparison_t_max, cfg.points)
        tracker.step(f"corner nu={nu:g} zeta={z:g}")
        tuned = {}
        start = None
        for T in cfg.am1_horizons:
            kw = {"start": start, "starts": 1} if start is not None else {"starts": cfg.am1_starts}
            opt = optimize_schedule("am1_power_law", cspec, noise, T, max_iterations=cfg.am1_iterations, **kw)
            tuned[T] = opt
            start = opt.parameters
        tracker.step(f"AM1 nu={nu:g} zeta={z:g}")
        am1_exp = math.log(tuned[T1].value / tuned[T2].value) / math.log(T2 / T1)
        loss_T2 = float(np.interp(math.log(T2), np.log(r["steps"]), np.log(r["loss"])))
        corner_T = _fit(r["steps"], r["loss"], T1, T2)
        lo = max(cfg.fit_window[0], 10 * T2) if cfg.comparison_t_max > 10 * T2 else T1
        corner_long = _fit(r["steps"], r["loss"], min(lo, cfg.comparison_t_max / 10), cfg.comparison_t_max)
        measured = "corner" if corner_T > am1_exp else "AM1"
        comparison.append({
            "nu": nu, "zeta": z, "kappa": kappa, "region": theory["region"], "theta_max": theory["theta_max"],
            "theta": theta, "corner_predicted": theta * z if theta < nu else math.nan,
            "corner_max_predicted": theory["corner_exponent"], "am1_ceiling": theory["am1_ceiling"],
            "theory_winner": theory["winner"], "corner_fitted": corner_T, "corner_fitted_long": corner_long,
            "corner_long_window": [min(lo, cfg.comparison_t_max / 10), cfg.comparison_t_max],
            "am1_horizon_exponent": am1_exp, "am1_fitted_last": fit_exponent(tuned[T2].loss, T2 / 10, T2),
            "am1_parameters": tuned[T2].parameters, "am1_losses": {str(T): tuned[T].value for T in cfg.am1_horizons},
            "corner_loss_T2": math.exp(loss_T2), "loss_ratio_T2": math.exp(loss_T2) / tuned[T2].value,
            "winner": measured, "agrees": measured == theory["winner"], "corner_algorithm": r["algorithm"],
            "corner_stability_check": r["stability_check"], "corner_noise_sum": r["noise_sum"]})
        if (nu, z) == (cfg.nu, zeta):
            am1_curves = {T: tuned[T].loss for T in cfg.am1_horizons}

    synthetic = _paper_synthetic(cfg, noise) if cfg.paper_synthetic else None
    table = _table(cfg, zeta, sweep, comparison, T1, T2, level, synthetic)
    checks = {
        "best_fitted_exponent": max((r["fitted"] for r in sweep), default=math.nan),
        "memory_of_best": max(sweep, key=lambda r: r["fitted"])["memory"] if sweep else None,
        "corner_beats_am1_ceiling": any(r["fitted"] > zeta * (2 - 1 / cfg.nu) for r in sweep),
        "comparison_agreement": sum(c["agrees"] for c in comparison),
        "comparison_points": len(comparison),
        "max_relative_error": float(max(np.nanmax(r["relative_error"]) for r in sweep)) if sweep else math.nan,
    }
    result = {"config": asdict(cfg), "zeta": zeta, "memory_sweep": [_jsonable_run(r) for r in sweep],
              "comparison": comparison, "paper_synthetic": synthetic, "checks": checks, "table": table}
    if out_dir is not None:
        files = _figures(out_dir, cfg, zeta, spec, noise, sweep, comparison, am1_curves)
        files.append(os.path.join(out_dir, "corner.json"))
        result["files"] = files
        common.write_json(files[-1], result)
    tracker.step("figures")
    return result


def _paper_synthetic(cfg, noise):
    """The paper's Appendix F setting on the ideal power law: corner (theta 1.8, M = 5, l = 5) vs SGD."""
    from ..algorithms import gd
    nu, kappa, B = 4.0, 1.0, 100
    spec = Spectrum.power_law(nu, kappa, head=cfg.head)
    nz = Noise.gaussian(B)
    lo, hi = cfg.paper_synthetic
    steps = _log_steps(hi, max(16, cfg.points // 2))
    algos = {"corner theta=1.8, M=5, l=5": corner(1.8, 5, spectrum=spec, noise=nz, spacing=5.0,
                                                  noise_sum=cfg.noise_sum),
             "SGD lr=1/lambda_max": gd(1.0 / spec.lambda_max)}
    out = {"nu": nu, "kappa": kappa, "zeta": kappa / nu, "batch_size": B, "window": [lo, hi], "methods": {}}
    for name, algo in algos.items():
        res = modal_loss_at(algo, spec, nz, steps)
        out["methods"][name] = {"algorithm": repr(algo), "fitted": _fit(steps, res.loss, lo, hi),
                                "loss_at_end": float(res.loss[-1])}
    out["paper"] = {"corner": "close to, slightly below 0.45", "SGD": "close to 0.25"}
    return out


def phase_map(nu_range, zeta_range, resolution: int = 240):
    """The theory's map for [`memsgd.plotting.plot_corner_phase`][memsgd.plotting.plot_corner_phase]: ``(nus, zetas,
    corner_ahead, lines)``
    with ``corner_ahead`` 1 where ``theta_max zeta > zeta (2 - 1/nu)``, 0 where not, NaN in the noise phase,
    and the phase boundary, the crossover ``zeta_cross(nu)`` and the region borders as lines.

    Examples:
        >>> from memsgd.experiments.corner import phase_map
        >>> nus, zetas, ahead, lines = phase_map((1.2, 4.0), (0.1, 3.0), resolution=20)
        >>> ahead.shape == (len(zetas), len(nus))
        True
    """
    nus = np.linspace(nu_range[0], nu_range[1], resolution)
    zetas = np.linspace(zeta_range[0], zeta_range[1], resolution)
    ahead = np.full((zetas.size, nus.size), np.nan)
    for j, nu in enumerate(nus):
        for i, z in enumerate(zetas):
            if z < 2 - 1 / nu:
                ahead[i, j] = 1.0 if corner_phase(nu, z)["winner"] == "corner" else 0.0
    lines = {"phase boundary zeta = 2 - 1/nu": (nus, 2 - 1 / nus, "k-"),
             "crossover: theta_max zeta = zeta (2 - 1/nu)": (nus, [corner_crossover(n) for n in nus], "k--"),
             "region borders (I | II | III)": (nus, np.where(nus >= 2, 1 - 1 / nus, np.nan), "k:"),
             "_region border III": (nus, np.where(nus <= 2, 1 / nus, np.nan), "k:")}
    return nus, zetas, ahead, lines


def _jsonable_run(r):
    out = dict(r)
    for key in ("steps", "loss", "relative_error", "local_steps", "local_exponents"):
        out[key] = np.asarray(r[key]).tolist()
    return common.jsonable(out)


def _table(cfg, zeta, sweep, comparison, T1, T2, level, synthetic=None):
    fmt = common.fmt
    h1 = ["M", "scale A", "1/(1-d_M)", f"fitted [{cfg.fit_window[0]:.0e},{cfg.fit_window[1]:.0e}]",
          "horizon", "max rel. err", "stability()"]
    rows1 = []
    for r in sweep:
        chk = r["stability_check"]
        rows1.append([r["memory"], fmt(r["scale"], ".4g"), fmt(r["time_constant"], ".2e"), fmt(r["fitted"], ".3f"),
                      "-" if r["horizon"] is None else f"{r['horizon']:.0e}",
                      fmt(float(np.nanmax(r["relative_error"])), ".1e"),
                      "not run" if chk is None else ("stable, V=" + fmt(chk["noise_sum"], ".3f")
                                                     if chk["converges"] else "NOT convergent")])
    t = (f"Corner methods on nu={cfg.nu:g}, kappa={cfg.kappa:g} (zeta={zeta:g}), Gaussian noise B={cfg.batch_size}: "
         f"theta={cfg.theta:g}, predicted rate theta zeta = {cfg.theta * zeta:.3f} (AM1 ceiling zeta(2-1/nu) = "
         f"{zeta * (2 - 1 / cfg.nu):.3f}); scale fitted to V = {cfg.noise_sum:g}; exact losses to {cfg.t_max:.0e} "
         f"(modal_loss_at)\n" + common.format_table(h1, rows1)
         + f"\n(horizon = last decade point where the local exponent is >= (theta zeta + zeta)/2 = {level:.3f})\n")
    h2 = ["nu", "zeta", "region", "theta_max", "theta", "theta_max zeta", "AM1 ceiling", "theory",
          f"corner [{T1:.0e},{T2:.0e}]", "corner long", f"AM1 horizon {T1:.0e}->{T2:.0e}",
          f"L_corner/L*_AM1 @ {T2:.0e}", "measured", "agree"]
    rows2 = [[fmt(c["nu"], "g"), fmt(c["zeta"], "g"), c["region"], fmt(c["theta_max"], ".3f"), fmt(c["theta"], ".3f"),
              fmt(c["corner_max_predicted"], ".3f"), fmt(c["am1_ceiling"], ".3f"), c["theory_winner"],
              fmt(c["corner_fitted"], ".3f"), fmt(c["corner_fitted_long"], ".3f"),
              fmt(c["am1_horizon_exponent"], ".3f"), fmt(c["loss_ratio_T2"], ".3g"), c["winner"],
              "yes" if c["agrees"] else "NO"] for c in comparison]
    t += (f"Two-sided comparison: corner (memory {cfg.comparison_memory}) vs AM1 tuned by optimize_schedule at "
          f"T = {', '.join(str(T) for T in cfg.am1_horizons)}; measured winner = higher exponent on [{T1}, {T2}]\n"
          + common.format_table(h2, rows2)
          + "\n(corner long = exponent fitted on the long window of the JSON's corner_long_window)")
    if synthetic:
        lo, hi = synthetic["window"]
        t += (f"\nThe paper's synthetic setting (nu=4, zeta=0.25, B=100) on the ideal power law, exponents on "
              f"[{lo:.0e}, {hi:.0e}]: " + "; ".join(f"{k}: {fmt(v['fitted'], '.3f')}"
                                                 for k, v in synthetic["methods"].items())
              + " (paper, on its ReLU model: corner close to but below 0.45, SGD close to 0.25)")
    return t


def _figures(out_dir, cfg, zeta, spec, noise, sweep, comparison, am1_curves):
    from ..plotting import plot_contours, plot_corner_phase, plot_line_panels

    files = [os.path.join(out_dir, n) for n in ("corner_losses.png", "corner_local_exponents.png",
                                                "corner_contours.png", "corner_phase.png")]
    series = [{"label": f"corner M={r['memory']}", "x": r["steps"], "y": r["loss"]} for r in sweep]
    for T, loss in am1_curves.items():
        series.append({"label": f"AM1 tuned for T={T}", "x": np.arange(1, loss.size), "y": loss[1:], "style": ":"})
    if sweep:
        ref = sweep[-1]
        t = np.geomspace(1e2, cfg.t_max, 50)
        i = int(np.argmin(np.abs(ref["steps"] - 1e4)))
        c0 = ref["loss"][i] * ref["steps"][i] ** (cfg.theta * zeta)
        series.append({"label": f"t^-{cfg.theta * zeta:.3g} (theta zeta)", "x": t,
                       "y": 0.5 * c0 * t ** (-cfg.theta * zeta), "style": "k--"})
        j = int(np.argmin(np.abs(ref["steps"] - cfg.t_max)))
        c1 = ref["loss"][j] * ref["steps"][j] ** zeta
        series.append({"label": f"t^-{zeta:.3g} (zeta, GD's rate)", "x": t, "y": 2 * c1 * t ** (-zeta), "style": "k:"})
    plot_line_panels([{"series": series, "xlabel": "step t", "ylabel": "exact loss L_t"}], files[0],
                     title=f"corner theta={cfg.theta:g} vs memory, nu={cfg.nu:g}, kappa={cfg.kappa:g}, "
                           f"B={cfg.batch_size}")
    ls = [{"label": f"M={r['memory']}", "x": r["local_steps"], "y": r["local_exponents"], "style": "o-"} for r in sweep]
    if sweep:
        xs = np.array([sweep[0]["local_steps"][0], sweep[0]["local_steps"][-1]])
        ls.append({"label": f"theta zeta = {cfg.theta * zeta:.3g}", "x": xs, "y": [cfg.theta * zeta] * 2,
                   "style": "k--"})
        ls.append({"label": f"AM1 ceiling {zeta * (2 - 1 / cfg.nu):.3g}", "x": xs,
                   "y": [zeta * (2 - 1 / cfg.nu)] * 2, "style": "r:"})
        ls.append({"label": f"zeta = {zeta:.3g}", "x": xs, "y": [zeta] * 2, "style": "k:"})
    plot_line_panels([{"series": ls, "xlabel": "step t", "ylabel": "local exponent (fit over a decade)"}], files[1],
                     title="local loss exponent per memory")
    contours = {}
    lam_max = spec.lambda_max
    from ..algorithms import gd, heavy_ball
    for label, algo in (("GD lr=1", gd(1.0)), ("heavy ball lr=1, beta=0.5", heavy_ball(1.0, 0.5))):
        contours[label] = response_contour(algo, 4001)[1]
    for M in (4, 16):
        contours[f"corner theta={cfg.theta:g}, M={M}"] = response_contour(corner(cfg.theta, M, scale=0.5 * lam_max,
                                                                                  spacing=cfg.spacing), 4001)[1]
    phi = response_contour(gd(1.0), 4001)[0]
    if cfg.theta < 2:
        contours[f"ideal corner theta={cfg.theta:g}"] = {"z": corner_map(cfg.theta, np.exp(1j * phi) * (1 + 1e-12),
                                                                         0.5 * lam_max), "style": "k--"}
    plot_contours(contours, files[2], lambda_max=lam_max, zoom=0.05 * lam_max,
                  title="contours Psi(|mu| = 1), scale A = lambda_max / 2")
    nus, zetas, ahead, lines = phase_map((1.05, 4.0), (0.02, 1.9))
    plot_corner_phase(nus, zetas, ahead, files[3], lines=lines, measured=comparison,
                      labels={"I": (0.8, 0.12), "II": (0.5, 0.55), "III": (0.07, 0.12)},
                      title="higher loss exponent: corner (theta_max zeta) or AM1 (zeta (2 - 1/nu))")
    return files
