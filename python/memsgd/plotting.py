"""Figures: every PNG memsgd writes is drawn here (matplotlib, extra ``memsgd[plot]``).

Each function draws one kind of figure into a file and returns the matplotlib ``Figure``
(for inspection; nothing stays open). They use matplotlib's object interface with the Agg
canvas (no pyplot, no display, no change to the caller's backend). Conventions shared by all of them:

- a *diverged* curve (losses non-finite from some step on, docs/math.md §8) is drawn up to its
  divergence step and marked there at the top edge of the frame, labelled with that step;
- the y range comes from the curves that did not diverge, so a blow-up never flattens the rest;
- a predicted power law (a *guide*) is dashed in the colour of the curve it belongs to, with
  one legend entry for all guides.
"""
from __future__ import annotations

import math

import numpy as np

from ._optional import require

__all__ = ["plot_contours", "plot_corner_phase", "plot_curves", "plot_exponents_vs_delta", "plot_frontiers",
           "plot_heatmap", "plot_line_panels", "plot_panels", "plot_phase", "plot_rf_phase_plane",
           "plot_stability"]

# The y range shows at most this factor above the largest initial loss: a curve that grows
# (without having diverged yet) leaves the frame instead of flattening the others.
_HEADROOM = 1e3
_DPI = 120
_MAX_FRONTIER_LINES = 16


def _figure(figsize=(7.0, 5.0)):
    """A (figure, axes) pair on the Agg canvas; needs matplotlib (``memsgd[plot]``)."""
    require("matplotlib", "plot", "plotting")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, path):
    fig.tight_layout()
    # bbox_inches="tight": the file holds every label even where tight_layout cannot make room
    # (a colour-bar label longer than the figure is tall, long tick labels)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight", pad_inches=0.05)
    return fig


def _divergence_step(t: np.ndarray, loss: np.ndarray):
    """First step whose loss is +inf: the engine reports every loss from divergence on as inf
    (NaN, in contrast, marks a step that was not evaluated)."""
    bad = np.flatnonzero(np.isposinf(loss))
    return int(t[bad[0]]) if bad.size else None


def _positive_finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values) & (values > 0)]


def plot_curves(curves, path, *, title: str = "", guides=None, points=None, diverged_at=None):
    """Write a log-log PNG of loss curves to ``path``.

    Args:
        curves: ``{label: loss}`` with ``loss[t] = L_t`` for t = 0..T, or ``{label: (t, loss)}``
            for losses evaluated at some steps only. Step 0 is not drawn (log axis), NaN marks a
            step that was not evaluated, and ``+inf`` a diverged loss (as [`memsgd.loss_curve`][memsgd.loss_curve]
            reports them): a diverged curve is drawn up to its divergence step, marked there at
            the top edge, and its label says the step.
        guides: ``{label: (t, L)}`` or ``{label: (t, L, text)}``: predicted power laws, dashed;
            a guide whose label is a curve's label takes that curve's colour and its ``text``
            (e.g. ``"t^-0.5"``) joins that curve's legend entry; one legend entry explains the
            dashes.
        points: ``{label: (t, mean, stderr)}``: markers with +-1 standard error bars (Monte
            Carlo), in the colour of the curve with the same label.
        diverged_at: ``{label: step}`` for curves known to have diverged at ``step`` whose
            losses do not say so with ``inf`` (e.g. a training run stopped there).
        title: the figure title.

    Examples:
        >>> import os, memsgd
        >>> from memsgd.plotting import plot_curves
        >>> spec, noise = memsgd.Spectrum.power_law(2.0, 1.0), memsgd.Noise.gaussian(10)
        >>> curves = {m: memsgd.loss_curve(memsgd.heavy_ball(0.1, m), spec, noise, 1000).loss for m in (0.0, 0.9)}
        >>> fig = plot_curves(curves, "curves.png", title="heavy ball", guides={"t^-0.5": ([10, 1000], [0.3, 0.03])})
        >>> os.path.getsize("curves.png") > 0
        True
    """
    fig, ax = _figure()
    guides, points, diverged_at = guides or {}, points or {}, diverged_at or {}
    predicted = {label: g[2] for label, g in guides.items() if len(g) > 2 and g[2] and label in curves}
    colors, diverged, kept = {}, [], []
    first_losses = []
    for label, data in curves.items():
        if isinstance(data, tuple):
            t, loss = np.asarray(data[0], dtype=float), np.asarray(data[1], dtype=float)
        else:
            loss = np.asarray(data, dtype=float)
            t = np.arange(loss.size, dtype=float)
        step = diverged_at.get(label, _divergence_step(t, loss))
        ok = (t >= 1) & np.isfinite(loss) & (loss > 0)
        if step is not None:
            ok &= t <= step
        text = label if step is None else f"{label} (diverged at t={step})"
        if label in predicted:
            text += f"; predicted {predicted[label]}"
        line, = ax.loglog(t[ok], loss[ok], label=text)
        colors[label] = line.get_color()
        start = loss[t == 0]
        if start.size and math.isfinite(start[0]) and start[0] > 0:
            first_losses.append(float(start[0]))
        if step is None:
            kept.append(loss[ok])
        else:
            diverged.append((label, step, loss[ok]))
    for label, guide in guides.items():
        t, L = guide[0], guide[1]
        color = colors.get(label, "0.5")
        ax.loglog(t, L, "--", color=color, linewidth=1, label=None if label in colors else label)
        kept.append(np.asarray(L, dtype=float))
    for label, (t, mean, err) in points.items():
        color = colors.get(label)
        ax.errorbar(t, mean, yerr=err, fmt="o", markersize=3, color=color,
                    label=f"{label}: simulated (+-1 s.e.)" if label in colors else label)
        kept.append(np.asarray(mean, dtype=float))
    _set_y_range(ax, kept, diverged, first_losses)
    _mark_divergence(ax, [(step, colors[label]) for label, step, _ in diverged])
    if guides:
        ax.plot([], [], "--", color="0.5", linewidth=1, label="dashed: predicted power law")
    ax.set_xlabel("step t")
    ax.set_ylabel("loss L_t")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def _set_y_range(ax, kept, diverged, first_losses) -> None:
    """y range from the curves that did not diverge (at most _HEADROOM x the largest L_0);
    with nothing else to show, from the diverged curves' values before they blow up."""
    values = [v for v in (_positive_finite(k) for k in kept) if v.size]
    cap = _HEADROOM * max(first_losses) if first_losses else math.inf
    if not values:
        values = [v[v <= cap] for _, _, v in diverged if v.size]
        values = [v for v in values if v.size]
    if not values:
        return
    allv = np.concatenate(values)
    low, high = float(allv.min()), float(min(allv.max(), cap))
    if high <= low:
        high = low * 10.0
    ax.set_ylim(low / 2.0, high * 3.0)


def _mark_divergence(ax, marks) -> None:
    """An x at the top edge above each divergence step, labelled with the step; labels of
    nearby steps are stacked so that none hides another."""
    transform = ax.get_xaxis_transform()  # x in data, y in axes fraction
    ax.get_xlim()  # settle the autoscaled limits before asking where a step lands
    for i, (step, color) in enumerate(sorted(marks)):
        x = max(step, 1)
        right_half = ax.transAxes.inverted().transform(ax.transData.transform((x, 1.0)))[0] > 0.6
        ax.plot([x], [1.0], "x", color=color, markersize=9, markeredgewidth=2, transform=transform,
                clip_on=False, zorder=5)
        ax.annotate(f"diverged t={step}", (x, 1.0), xycoords=transform, xytext=(-4 if right_half else 4, -10 - 9 * i),
                    textcoords="offset points", color=color, fontsize=7, ha="right" if right_half else "left")


def plot_exponents_vs_delta(results, path, *, problems, batch_sizes, title: str = ""):
    """Fitted loss exponent against the AM1 schedule exponent delta (Figure 4), one colour per
    problem ``(nu, kappa)`` and one marker per batch size.

    ``results``: dicts with ``nu, kappa, batch_size, delta, fitted_exponent`` (None when the
    run diverged) and ``diverged_at``. Dashed: the prediction ``zeta (1 + delta)``; dotted: the
    edge ``delta = 1 - 1/nu`` of its validity. Diverged runs are drawn hollow in a band at the
    top, labelled with their divergence step; runs whose loss rises so fast that the fitted
    exponent is below -0.3 are drawn hollow in a band at the bottom. Markers that share a delta
    are set side by side so that none hides another.

    Examples:
        >>> import os
        >>> from memsgd.plotting import plot_exponents_vs_delta
        >>> results = [dict(nu=2.0, kappa=1.0, batch_size=10, delta=d, fitted_exponent=0.5 * (1 + d), diverged_at=None)
        ...            for d in (0.1, 0.3, 0.45)]
        >>> fig = plot_exponents_vs_delta(results, "fig4.png", problems=[(2.0, 1.0)], batch_sizes=[10])
        >>> os.path.getsize("fig4.png") > 0
        True
    """
    fig, ax = _figure()
    markers = "os^dv"
    fitted = [r["fitted_exponent"] for r in results if r["fitted_exponent"] is not None]
    floor = -0.3
    low = max(min(fitted), floor) if fitted else 0.0
    high = max(max(fitted), low + 0.1) if fitted else 1.0
    top, bottom = [], []
    for _i, (nu, kappa) in enumerate(problems):
        zeta = kappa / nu
        dd = np.linspace(0.0, 1.0 - 1.0 / nu, 50)
        line, = ax.plot(dd, zeta * (1.0 + dd), "--", linewidth=1)
        color = line.get_color()
        high = max(high, zeta * (2.0 - 1.0 / nu))
        for j, B in enumerate(batch_sizes):
            marker = markers[j % len(markers)]
            sel = [r for r in results if (r["nu"], r["kappa"], r["batch_size"]) == (nu, kappa, B)]
            ok = [r for r in sel if r["fitted_exponent"] is not None and r["fitted_exponent"] >= floor]
            ax.plot([r["delta"] for r in ok], [r["fitted_exponent"] for r in ok], marker, color=color,
                    label=f"nu={nu:g}, zeta={zeta:.3g}, B={B}")
            top += [(r["delta"], color, marker, f"t={r['diverged_at']}") for r in sel if r["diverged_at"] is not None]
            bottom += [(r["delta"], color, marker, f"{r['fitted_exponent']:.2g}") for r in sel
                       if r["fitted_exponent"] is not None and r["fitted_exponent"] < floor]
        ax.axvline(1.0 - 1.0 / nu, color=color, linestyle=":", linewidth=0.8)
    span = high - low
    y_min, y_max = low - (0.15 if bottom else 0.05) * span, high + (0.18 if top else 0.08) * span
    ax.set_ylim(y_min, y_max)
    if top:  # grey bands: positions there are not exponents
        ax.axhspan(high + 0.06 * span, y_max, color="0.92", zorder=0)
    if bottom:
        ax.axhspan(y_min, low - 0.03 * span, color="0.92", zorder=0)
    width = _marker_spread(results)
    for band, items in ((0.955, top), (0.045, bottom)):
        for delta, color, marker, text in _spread(items, width):
            ax.plot([delta], [band], marker, color=color, markerfacecolor="none", markersize=7, markeredgewidth=1.5,
                    transform=ax.get_xaxis_transform(), zorder=5)
            ax.annotate(text, (delta, band), xycoords=ax.get_xaxis_transform(), xytext=(0, -7 if band > 0.5 else 6),
                        textcoords="offset points", color=color, fontsize=6, ha="center",
                        va="top" if band > 0.5 else "bottom")
    if top:
        ax.plot([], [], "o", color="0.3", markerfacecolor="none", label="hollow, top band: diverged at step t")
    if bottom:
        ax.plot([], [], "o", color="0.6", markerfacecolor="none",
                label=f"hollow, bottom band: loss rising (fitted exponent < {floor:g})")
    ax.set_xlabel("delta (alpha_eff ~ t^delta)")
    ax.set_ylabel("fitted loss exponent")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def _marker_spread(results) -> float:
    deltas = sorted({r["delta"] for r in results})
    gaps = np.diff(deltas)
    return 0.6 * float(gaps.min()) if gaps.size else 0.1


def _spread(items, width):
    """Shift items sharing a delta side by side (within ``width``) so none hides another."""
    by_delta = {}
    for item in items:
        by_delta.setdefault(item[0], []).append(item)
    out = []
    for delta, group in by_delta.items():
        n = len(group)
        offsets = [0.0] if n == 1 else np.linspace(-width / 2, width / 2, n)
        out += [(delta + off,) + tuple(item[1:]) for off, item in zip(offsets, group)]
    return out


def plot_phase(rows, nus, zetas, path, *, title: str = "", measured_steps=None):
    """Heat map of the loss exponent over a grid of ``(nu, zeta)`` (docs/math.md §6).

    ``rows``: dicts with ``nu, zeta, phase`` ("signal", "noise" or "diverges") and ``exponent``;
    each cell is lettered S / N / D, diverging cells are grey, and the phase boundary
    ``zeta = 2 - 1/nu`` is dashed. ``measured_steps=T``: a second panel with the rows'
    ``measured_exponent`` (fitted on the exact loss over ``[T/10, T]``) on the same colour scale
    (set by the converging cells; the negative exponent of a growing loss is below it, black),
    grey where the run diverged.

    Examples:
        >>> import os, memsgd
        >>> from memsgd.plotting import plot_phase
        >>> nus, zetas = [1.5, 2.0, 3.0], [0.25, 1.0, 2.5]
        >>> rows = memsgd.phase_diagram(memsgd.heavy_ball(0.1, 0.9), memsgd.Noise.gaussian(10), nus, zetas)
        >>> fig = plot_phase(rows, nus, zetas, "phase.png")
        >>> os.path.getsize("phase.png") > 0
        True
    """
    panels = [("exponent", "predicted exponent (S signal, N noise, D diverges)")]
    if measured_steps is not None:
        panels.append(("measured_exponent", f"exponent measured on the exact loss over "
                                            f"[{measured_steps / 10:g}, {measured_steps:g}]"))
    fig, ax = _figure((6.0 * len(panels), 4.5))
    import matplotlib
    from matplotlib.colors import Normalize

    nus, zetas = list(nus), list(zetas)
    grids = []
    for key, _ in panels:
        grid = np.full((len(zetas), len(nus)), np.nan)
        for r in rows:
            grid[zetas.index(r["zeta"]), nus.index(r["nu"])] = r[key]
        grids.append(grid)
    # one colour scale for both panels, set by the converging cells: the measured exponent of an
    # unstable run that grows without crossing the divergence threshold is far below and is clipped
    scale = np.array([r[key] for r in rows for key, _ in panels if r["phase"] != "diverges"], dtype=float)
    scale = scale[np.isfinite(scale)]
    norm = Normalize(scale.min(), scale.max()) if len(panels) > 1 and scale.size else None
    axes = [ax]
    if len(panels) > 1:
        fig.delaxes(ax)
        axes = list(fig.subplots(1, len(panels)))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey", under="black")
    for ax, grid, (_, name) in zip(axes, grids, panels):
        im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap, norm=norm,
                       extent=(-0.5, len(nus) - 0.5, -0.5, len(zetas) - 0.5))
        for r in rows:
            ax.text(nus.index(r["nu"]), zetas.index(r["zeta"]), r["phase"][0].upper(), ha="center",
                    va="center", fontsize=8, color="white")
        if len(nus) > 1 and len(zetas) > 1:  # the boundary, interpolated onto the categorical axes
            nu_fine = np.linspace(min(nus), max(nus), 200)
            x = np.interp(nu_fine, nus, np.arange(len(nus)))
            y = np.interp(2 - 1 / nu_fine, zetas, np.arange(len(zetas)), left=np.nan, right=np.nan)
            ax.plot(x, y, "w--", linewidth=1, label="zeta = 2 - 1/nu")
            ax.legend(fontsize=8, loc="upper left")
        ax.set_xticks(range(len(nus)), [f"{n:g}" for n in nus])
        ax.set_yticks(range(len(zetas)), [f"{z:g}" for z in zetas])
        ax.set_xlabel("nu")
        ax.set_ylabel("zeta = kappa / nu")
        ax.set_title(title if len(panels) == 1 else f"{title}\n{name}", fontsize=9)
        below = norm is not None and bool(np.any(grid[np.isfinite(grid)] < norm.vmin))
        fig.colorbar(im, ax=ax, extend="min" if below else "neither",
                     label="loss exponent (S signal, N noise, D diverges)" if len(panels) == 1
                     else "loss exponent" + (" (black: below the scale, a growing loss)" if below else ""))
    return _save(fig, path)


def plot_heatmap(values, x, y, path, *, xlabel: str = "", ylabel: str = "", title: str = "",
                 colorbar_label: str = "", log_color: bool = False, grey_means: str = "diverged"):
    """Heat map of ``values`` (shape ``(len(y), len(x))``) over two grid axes ``x``, ``y``.

    Cells are categorical (one per grid value, labelled ``%.3g``), so log- and linearly-spaced
    axes both read well. Non-finite cells are grey, and the title says what they are
    (``grey_means``: diverged points, by default). ``log_color``: logarithmic colour scale (losses).

    Examples:
        >>> import os, numpy as np
        >>> from memsgd.plotting import plot_heatmap
        >>> lr, momentum = [0.01, 0.1, 1.0], [0.0, 0.9]
        >>> values = np.array([[1e-2, 1e-3, np.inf], [1e-3, 1e-4, np.inf]])      # inf: diverged (grey)
        >>> fig = plot_heatmap(values, lr, momentum, "grid.png", xlabel="lr", ylabel="momentum", log_color=True)
        >>> os.path.getsize("grid.png") > 0
        True
    """
    values = np.asarray(values, dtype=float)
    if values.shape != (len(y), len(x)):
        raise ValueError(f"values must have shape (len(y), len(x)) = ({len(y)}, {len(x)}), got {values.shape}")
    fig, ax = _figure((max(4.5, 0.45 * len(x) + 2.5), max(3.5, 0.35 * len(y) + 2.0)))
    import matplotlib
    from matplotlib.colors import LogNorm

    finite = np.isfinite(values) & (values > 0 if log_color else True)
    norm = LogNorm() if log_color and finite.any() else None
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    im = ax.imshow(np.ma.masked_where(~finite, values), origin="lower", aspect="auto", cmap=cmap, norm=norm,
                   extent=(-0.5, len(x) - 0.5, -0.5, len(y) - 0.5))

    def labels(v):
        return [f"{u:.3g}" if isinstance(u, (float, np.floating)) else str(u) for u in v]

    step_x, step_y = max(1, len(x) // 12), max(1, len(y) // 12)
    ax.set_xticks(range(0, len(x), step_x), labels(x)[::step_x], rotation=45 if len(x) > 6 else 0)
    ax.set_yticks(range(0, len(y), step_y), labels(y)[::step_y])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f"\ngrey: {grey_means}" if not finite.all() else ""), fontsize=9)
    fig.colorbar(im, ax=ax, label=colorbar_label)
    return _save(fig, path)


def plot_stability(profile, path, *, title: str = ""):
    """Panels from a [`memsgd.theory.StabilityProfile`][memsgd.theory.StabilityProfile] (docs/theory.md "Memory 1"): the
    eigenvalues of ``S_lambda`` in the complex plane coloured by ``log10 lambda`` with the unit
    circle (and, for memory 1, the circle or line every complex pair lies on; zoomed in a second
    panel when that circle is small), and each component's noise term against lambda, with the
    complex interval shaded and, where they exist, the three regions of the noise sum and their
    leading forms.

    Examples:
        >>> import os, memsgd
        >>> from memsgd.plotting import plot_stability
        >>> from memsgd.theory import stability_profile
        >>> profile = stability_profile(memsgd.heavy_ball(0.1, 0.9), memsgd.Spectrum.power_law(2.0, 1.0, size=100),
        ...                             memsgd.Noise.gaussian(10), points=50)
        >>> fig = plot_stability(profile, "stability.png")
        >>> os.path.getsize("stability.png") > 0
        True
    """
    geo = profile.geometry
    zoom = geo is not None and geo.kind == "circle" and geo.radius < 0.2
    fig, _ = _figure((15.0 if zoom else 11.0, 4.8))
    fig.clear()
    axes = fig.subplots(1, 3 if zoom else 2)
    lam, eig = profile.lam, profile.eigenvalues
    colour = np.repeat(np.log10(lam)[:, None], eig.shape[1], axis=1).ravel()
    theta = np.linspace(0, 2 * np.pi, 400)
    planes = [(axes[0], None)] + ([(axes[1], (geo.center, 2.5 * geo.radius))] if zoom else [])
    for ax, window in planes:
        ax.plot(np.cos(theta), np.sin(theta), color="black", linewidth=0.8, label="|z| = 1")
        if geo is not None and geo.kind == "circle":
            ax.plot(geo.center + geo.radius * np.cos(theta), geo.radius * np.sin(theta), "--", color="gray",
                    linewidth=1, label=f"|z - {geo.center:.4g}| = {geo.radius:.3g}")
        elif geo is not None and geo.kind == "line":
            ax.axvline((1 + geo.beta) / 2, linestyle="--", color="gray", linewidth=1, label="Re z = (1 + beta)/2")
        points = ax.scatter(eig.real.ravel(), eig.imag.ravel(), c=colour, s=4, cmap="viridis", zorder=3)
        if window is not None:
            centre, half = window
            ax.set_xlim(centre - half, centre + half)
            ax.set_ylim(-half, half)
            ax.set_title("zoom on the circle of complex pairs", fontsize=9)
        else:
            ax.set_title("eigenvalues of S_lambda", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlabel("Re z")
        ax.set_ylabel("Im z")
        ax.legend(fontsize=7, loc="lower left")
    fig.colorbar(points, ax=planes[-1][0], label="log10 lambda")

    ax_x = axes[-1]
    ok = np.isfinite(profile.noise_terms) & (profile.noise_terms > 0)
    ax_x.loglog(lam[ok], profile.noise_terms[ok], label="per-component noise term")
    ax_x.set_xlim(lam[0], lam[-1])   # the lambdas of the profile, whatever is (or is not) drawn
    if not np.any(ok):
        ax_x.text(0.5, 0.5, "no stable component", transform=ax_x.transAxes, ha="center", fontsize=8)
    if geo is not None and geo.complex_interval is not None:
        lo, hi = max(geo.complex_interval[0], lam[0]), min(geo.complex_interval[1], lam[-1])
        if lo < hi:   # only where it meets the profile's lambdas (it may lie far outside them)
            ax_x.axvspan(lo, hi, color="orange", alpha=0.15, label="complex pair")
    regions = profile.regions
    if regions is not None:
        ax_x.loglog(lam, profile.leading_terms, ":", color="gray", label="leading forms (three regions)")
        for value, name in ((regions.lambda_1, "lambda_1"), (regions.lambda_2, "lambda_2")):
            if lam[0] <= value <= lam[-1]:
                ax_x.axvline(value, linestyle="--", color="gray", linewidth=0.8)
                ax_x.annotate(name, (value, 0.02), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                              ha="right", va="bottom")
    ax_x.set_xlabel("lambda")
    ax_x.set_ylabel("lambda^2 h^T Y h")
    ax_x.set_title("noise-sum terms (V' = tau1/B sum m x)", fontsize=9)
    ax_x.legend(fontsize=7)
    ax_x.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_panels(panels, path, *, title: str = "", ncols: int = 3):
    """A grid of log-log panels in one PNG: theory as lines, measurements as points with error bars.

    ``panels``: list of dicts with ``title`` and ``series``, a list of dicts with ``label``,
    ``t``, ``y``, optional ``err`` (drawn as error bars, points), ``style`` ("-", "--", ":" for
    lines; default "-") and ``color``. Non-finite or non-positive values are left out (a
    diverged run ends where its values stop being finite) and each panel's y axis stops at 100
    times the largest starting value; the legend is shared.

    Examples:
        >>> import os, numpy as np
        >>> from memsgd.plotting import plot_panels
        >>> t = np.array([1, 10, 100, 1000])
        >>> panels = [{"title": "B = 10", "series": [{"label": "theory", "t": t, "y": t ** -0.5},
        ...                                           {"label": "runs", "t": t, "y": 1.1 * t ** -0.5,
        ...                                            "err": 0.1 * t ** -0.5}]}]
        >>> fig = plot_panels(panels, "panels.png", ncols=1)
        >>> os.path.getsize("panels.png") > 0
        True
    """
    nrows = -(-len(panels) // ncols)
    fig, _ = _figure((4.2 * ncols, 3.4 * nrows))
    fig.clear()
    axes = fig.subplots(nrows, ncols, squeeze=False)
    handles = {}
    for ax, panel in zip(axes.flat, panels):
        top = 0.0
        for s in panel["series"]:
            y = np.asarray(s["y"], dtype=float)
            ok = np.isfinite(y) & (y > 0)
            if np.any(ok):
                top = max(top, y[ok][0])
        for s in panel["series"]:
            t = np.asarray(s["t"], dtype=float)
            y = np.asarray(s["y"], dtype=float)
            ok = (t > 0) & np.isfinite(y) & (y > 0)
            if s.get("err") is not None:
                err = np.asarray(s["err"], dtype=float)[ok]
                h = ax.errorbar(t[ok], y[ok], yerr=np.minimum(err, 0.999 * y[ok]), fmt="o", markersize=2.5,
                                color=s.get("color"), elinewidth=0.8, capsize=1.5, label=s["label"])
            else:
                (h,) = ax.loglog(t[ok], y[ok], s.get("style", "-"), color=s.get("color"), linewidth=1.2,
                                 label=s["label"])
            handles.setdefault(s["label"], h)
        ax.set_xscale("log")
        ax.set_yscale("log")
        if top > 0:  # a diverging run must not stretch the axis and flatten the others
            ax.set_ylim(top=min(ax.get_ylim()[1], 100.0 * top))
        ax.set_title(panel["title"], fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xlabel("step t", fontsize=8)
        ax.set_ylabel("excess loss", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(4, len(handles)), fontsize=8,
               frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(handles) > 4), 1, 0.96))
    fig.savefig(path, dpi=_DPI)
    return fig


def plot_line_panels(panels, path, *, title: str = ""):
    """One row of log-log panels of lines in one PNG (e.g. schedules against step).

    ``panels``: list of dicts with ``series`` (a list of dicts with ``label``, ``x``, ``y`` and an
    optional ``style``, "-" by default), and optional ``title``, ``xlabel``, ``ylabel``,
    ``legend`` (default True) and ``floor``: the y axis starts no lower than ``floor`` times the
    largest value drawn (a series that starts at 0 or tends to it must not squash the others).
    Non-finite and non-positive values are left out.

    Examples:
        >>> import os, numpy as np
        >>> from memsgd.plotting import plot_line_panels
        >>> t = np.arange(1, 1001)
        >>> panels = [{"title": "learning rate", "series": [{"label": "1/sqrt(t)", "x": t, "y": t ** -0.5}]}]
        >>> fig = plot_line_panels(panels, "lines.png")
        >>> os.path.getsize("lines.png") > 0
        True
    """
    fig, _ = _figure((4.4 * len(panels) if len(panels) > 1 else 7.0, 4.0 if len(panels) > 1 else 5.0))
    fig.clear()
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        top = 0.0
        for s in panel["series"]:
            x, y = np.asarray(s["x"], dtype=float), np.asarray(s["y"], dtype=float)
            ok = (x > 0) & np.isfinite(y) & (y > 0)
            ax.loglog(x[ok], y[ok], s.get("style", "-"), label=s["label"])
            top = max(top, float(y[ok].max()) if np.any(ok) else 0.0)
        if panel.get("floor") and top > 0:
            ax.set_ylim(bottom=max(ax.get_ylim()[0], panel["floor"] * top))
        ax.set_title(panel.get("title", ""), fontsize=9)
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel(panel.get("ylabel", ""))
        ax.grid(True, which="both", alpha=0.3)
        if panel.get("legend", True):
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_rf_phase_plane(rows, path, *, title: str = ""):
    """The (alpha, beta) plane of power-law random features with the phase boundaries of
    Paquette et al. 2024 (``2 beta = 1``, ``beta = alpha`` above ``2 alpha = 1``, ``alpha = 1/4`` below it,
    ``2 (alpha + beta) = 1``) and, at each row's ``(alpha, beta)``, its phase and measured exponents
    ``xi``, ``eta`` with the theory's in parentheses (``sgd_xi``, ``sgd_eta``).

    ``rows``: dicts with ``alpha``, ``beta``, ``sgd_xi``, ``sgd_eta`` and optional ``xi``, ``eta``
    (None: not measured), as the ``results`` of [`memsgd.experiments.scaling.run`][memsgd.experiments.scaling.run] are.

    Examples:
        >>> import os
        >>> from memsgd.plotting import plot_rf_phase_plane
        >>> from memsgd.scaling import sgd_exponents
        >>> e = sgd_exponents(1.0, 2.0)
        >>> rows = [{"alpha": 1.0, "beta": 2.0, "xi": 0.51, "eta": 0.74, "sgd_xi": e["xi"], "sgd_eta": e["eta"]}]
        >>> fig = plot_rf_phase_plane(rows, "phases.png")
        >>> os.path.getsize("phases.png") > 0
        True
    """
    fig, ax = _figure((7.5, 6.0))
    a = np.linspace(0.0, 1.6, 200)
    ax.fill_between(a, 0, np.maximum(0.5 - a, 0), color="0.9", label="2(alpha+beta) < 1: no phase")
    ax.plot([0.5, 0.5], [0, 2.5], "k-", linewidth=1)
    ax.plot([0.0, 1.6], [0.5, 0.5], "k-", linewidth=1)
    ax.plot([0.5, 1.6], [0.5, 1.6], "k-", linewidth=1)
    ax.plot([0.25, 0.25], [0.5, 2.5], "k--", linewidth=0.8)
    for name, (x, y) in {"Ia": (1.2, 0.2), "II": (1.4, 0.9), "III": (0.8, 2.2), "Ib": (0.36, 0.27),
                         "IV": (0.36, 2.3), "Ic": (0.07, 2.3)}.items():
        ax.text(x, y, name, fontsize=11, color="0.4", ha="center")
    for r in rows:
        ax.plot(r["alpha"], r["beta"], "o", color="C3")
        xi = "-" if r.get("xi") is None else f"{r['xi']:.2f}"
        eta = "-" if r.get("eta") is None else f"{r['eta']:.2f}"
        left = r["alpha"] < 0.3           # keep the labels of neighbouring points apart
        ax.annotate(f"xi {xi} ({r['sgd_xi']:.2f})\neta {eta} ({r['sgd_eta']:.2f})", (r["alpha"], r["beta"]),
                    textcoords="offset points", xytext=(-6 if left else 6, 4), fontsize=7.5,
                    ha="right" if left else "left")
    ax.set_xlim(0, 1.6)
    ax.set_ylim(0, 2.5)
    ax.set_xlabel("alpha (data: eigenvalues j^-2alpha)")
    ax.set_ylabel("beta (target: b_j = j^-beta)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, path)


def plot_frontiers(panels, path, *, title: str = "", ncols: int = 3):
    """Compute-optimal frontiers, one panel per problem: the population risk against flops for
    model size d (thin lines coloured from small to large d; every k-th d when the grid has more than
    16), the frontier ``P*(f)`` (black,
    budgets whose minimum is at the grid's end as open circles) and a dashed guide of slope
    ``guide_slope`` through the frontier's middle.

    ``panels``: dicts with ``title``, ``flops`` (F,), ``d_grid`` (D,), ``grid_loss`` (D, F),
    ``frontier`` (F,), ``interior`` (F,) and optional ``guide_slope``.

    Examples:
        >>> import os, numpy as np, memsgd
        >>> from memsgd.plotting import plot_frontiers
        >>> res = memsgd.compute_optimal("sgd", 1.0, 0.7, np.logspace(4, 5, 3), d=[16, 32, 64, 128])
        >>> panel = {"title": "II", "flops": res.flops, "d_grid": res.d_grid, "grid_loss": res.grid_loss,
        ...          "frontier": res.loss, "interior": res.interior, "guide_slope": -0.6}
        >>> fig = plot_frontiers([panel], "frontiers.png", ncols=1)
        >>> os.path.getsize("frontiers.png") > 0
        True
    """
    from matplotlib import cm

    nrows = -(-len(panels) // ncols)
    fig, _ = _figure((4.4 * ncols, 3.6 * nrows))
    fig.clear()
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, p in zip(axes.flat, panels):
        f = np.asarray(p["flops"], dtype=float)
        grid = np.asarray(p["grid_loss"], dtype=float)
        D = len(p["d_grid"])
        every = max(1, -(-D // _MAX_FRONTIER_LINES))     # at most ~16 lines: the rest adds ink, not information
        for i in range(0, D, every):
            y = grid[i]
            ok = np.isfinite(y) & (y > 0)
            if np.sum(ok) >= 2:
                ax.loglog(f[ok], y[ok], "-", color=cm.viridis(i / max(1, D - 1)), linewidth=0.7)
        front = np.asarray(p["frontier"], dtype=float)
        inside = np.asarray(p["interior"], dtype=bool)
        ok = np.isfinite(front) & (front > 0)
        ax.loglog(f[ok & inside], front[ok & inside], "k-o", markersize=2.5, linewidth=1.5)
        if np.any(ok & ~inside):
            ax.loglog(f[ok & ~inside], front[ok & ~inside], "ko", markersize=4, mfc="none")
        slope = p.get("guide_slope")
        if slope is not None and np.sum(ok & inside) >= 2:
            fm = f[ok & inside]
            mid = fm[len(fm) // 2]
            level = front[ok & inside][len(fm) // 2]
            ax.loglog(fm, 0.5 * level * (fm / mid) ** slope, "k--", linewidth=0.9)
        top = _positive_finite(front)
        if top.size:
            ax.set_ylim(0.3 * top.min(), 30 * top.max())
        ax.set_title(p["title"], fontsize=7.5)
        ax.set_xlabel("flops f = T B d", fontsize=8)
        ax.set_ylabel("population risk", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=_DPI)
    return fig


def plot_contours(contours, path, *, lambda_max=None, zoom=None, title: str = ""):
    """The contour view (docs/corner.md): curves ``Psi(e^(i phi))`` in the complex plane, one per
    algorithm, with the spectrum interval ``[0, lambda_max]`` drawn on the real axis.

    ``contours``: dict label -> complex array (e.g. from [`memsgd.response_contour`][memsgd.response_contour]), or
    label ->
    dict with ``z`` (the complex points) and optional ``style``. ``zoom``: half-width of a second panel
    around 0, where a corner shows (the contour passes through 0 at ``mu = 1``).

    Examples:
        >>> import os, numpy as np
        >>> from memsgd.plotting import plot_contours
        >>> circle = 0.5 + 0.5 * np.exp(1j * np.linspace(0, 2 * np.pi, 200))   # a contour around [0, 1]
        >>> fig = plot_contours({"circle": circle}, "contours.png", lambda_max=1.0)
        >>> os.path.getsize("contours.png") > 0
        True
    """
    ncols = 2 if zoom else 1
    fig, ax = _figure((6.0 * ncols, 5.0))
    fig.clear()
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for k, ax in enumerate(axes):
        for label, curve in contours.items():
            spec = curve if isinstance(curve, dict) else {"z": curve}
            z = np.asarray(spec["z"], dtype=complex)
            ok = np.isfinite(z)
            ax.plot(z.real[ok], z.imag[ok], spec.get("style", "-"), linewidth=1.2, label=label)
        if lambda_max is not None:
            ax.plot([0.0, lambda_max], [0.0, 0.0], color="black", linewidth=3, alpha=0.6,
                    label=f"spectrum (0, {lambda_max:g}]")
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.axvline(0.0, color="grey", linewidth=0.5)
        if k == 1:
            ax.set_xlim(-zoom, zoom)
            ax.set_ylim(-zoom, zoom)
            ax.set_title(f"near 0 (|Re|, |Im| < {zoom:g})", fontsize=9)
        else:
            ax.set_title(title, fontsize=9)
            ax.legend(fontsize=8, loc="best")
        ax.set_aspect("equal", adjustable="datalim" if k == 0 else "box")
        ax.set_xlabel("Re Psi")
        ax.set_ylabel("Im Psi")
        ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_corner_phase(nus, zetas, corner_ahead, path, *, lines=None, measured=None, labels=None,
                      title: str = ""):
    """Which method has the higher loss exponent over the ``(nu, zeta)`` plane (docs/corner.md).

    ``corner_ahead``: array of shape ``(len(zetas), len(nus))``, 1 where the corner method's rate is
    higher, 0 where AM1's is, NaN outside the region compared (the noise-dominated phase; grey).
    ``lines``: dict label -> ``(x, y, style)`` drawn over the map (the phase boundary, the crossover,
    region borders). ``labels``: dict text -> ``(x, y)`` in axes coordinates. ``measured``: rows with
    ``nu, zeta``, ``winner`` (``"corner"``/``"AM1"``, the exact losses' verdict) and ``theory_winner``,
    drawn as markers (circle: corner ahead, square: AM1 ahead; white edge where the measurement agrees
    with the theory, red where it does not).

    Examples:
        >>> import os
        >>> from memsgd.experiments.corner import phase_map
        >>> from memsgd.plotting import plot_corner_phase
        >>> nus, zetas, ahead, lines = phase_map((1.2, 4.0), (0.1, 3.0), resolution=20)
        >>> fig = plot_corner_phase(nus, zetas, ahead, "corner_phase.png", lines=lines)
        >>> os.path.getsize("corner_phase.png") > 0
        True
    """
    fig, ax = _figure((7.0, 5.2))
    import matplotlib
    from matplotlib.colors import ListedColormap

    nus, zetas = np.asarray(nus, float), np.asarray(zetas, float)
    grid = np.asarray(corner_ahead, float)
    if grid.shape != (zetas.size, nus.size):
        raise ValueError(f"corner_ahead must have shape (len(zetas), len(nus)) = ({zetas.size}, {nus.size}), "
                         f"got {grid.shape}")
    cmap = ListedColormap(["#f4a582", "#92c5de"]).with_extremes(bad="lightgrey")
    ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=1,
              extent=(nus[0], nus[-1], zetas[0], zetas[-1]), interpolation="nearest")
    for label, (x, y, style) in (lines or {}).items():
        ax.plot(x, y, style, linewidth=1.2, label=label)
    for text, (x, y) in (labels or {}).items():
        ax.text(x, y, text, transform=ax.transAxes, fontsize=12, weight="bold")
    for r in measured or ():
        if r.get("winner") not in ("corner", "AM1"):
            continue
        ax.plot(r["nu"], r["zeta"], "o" if r["winner"] == "corner" else "s", markersize=9,
                markerfacecolor="#2166ac" if r["winner"] == "corner" else "#b2182b",
                markeredgecolor="white" if r["winner"] == r.get("theory_winner") else "red", markeredgewidth=2)
    handles = [matplotlib.patches.Patch(color="#92c5de", label="corner ahead (theory)"),
               matplotlib.patches.Patch(color="#f4a582", label="AM1 ahead (theory)"),
               matplotlib.patches.Patch(color="lightgrey", label="not compared (noise-dominated phase)")]
    if measured:
        handles += [matplotlib.lines.Line2D([], [], marker="o", linestyle="", markerfacecolor="#2166ac",
                                            markeredgecolor="white", label="measured: corner ahead"),
                    matplotlib.lines.Line2D([], [], marker="s", linestyle="", markerfacecolor="#b2182b",
                                            markeredgecolor="white", label="measured: AM1 ahead")]
    ax.legend(handles=handles + ax.get_legend_handles_labels()[0], fontsize=7, loc="upper left")
    ax.set_xlim(nus[0], nus[-1])
    ax.set_ylim(zetas[0], zetas[-1])
    ax.set_xlabel("nu (capacity)")
    ax.set_ylabel("zeta = kappa / nu (source)")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
