"""Log-log plots of loss curves (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import numpy as np


def plot_curves(curves, path, title="", guides=None, points=None):
    """Write a log-log PNG of ``{label: loss array}`` to ``path``.

    ``guides``: ``{label: (t, L)}`` drawn dashed (predicted power laws);
    ``points``: ``{label: (t, L, stderr)}`` drawn as markers with error bars (simulations).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for label, loss in curves.items():
        loss = np.asarray(loss, dtype=float)
        t = np.arange(loss.size)
        ok = (t > 0) & np.isfinite(loss) & (loss > 0)
        ax.loglog(t[ok], loss[ok], label=label)
    for label, (t, L) in (guides or {}).items():
        ax.loglog(t, L, "--", color="gray", linewidth=1, label=label)
    for label, (t, L, err) in (points or {}).items():
        ax.errorbar(t, L, yerr=err, fmt="o", markersize=3, label=label)
    ax.set_xlabel("step t")
    ax.set_ylabel("loss L_t")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_stability(profile, path, title: str = "") -> None:
    """Panels from a :class:`memsgd.theory.StabilityProfile` (docs/theory.md "Memory 1"): the
    eigenvalues of ``S_lambda`` in the complex plane coloured by ``log10 lambda`` with the unit
    circle (and, for memory 1, the circle or line every complex pair lies on; zoomed in a second
    panel when that circle is small), and each component's noise term against lambda, with the
    complex interval shaded and, where they exist, the three regions of the noise sum and their
    leading forms."""
    from ._optional import require
    matplotlib = require("matplotlib", "plot", "plot_stability")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    geo = profile.geometry
    zoom = geo is not None and geo.kind == "circle" and geo.radius < 0.2
    fig, axes = plt.subplots(1, 3 if zoom else 2, figsize=(15 if zoom else 11, 4.8))
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
    if geo is not None and geo.complex_interval is not None:
        lo, hi = geo.complex_interval
        ax_x.axvspan(max(lo, lam[0]), min(hi, lam[-1]), color="orange", alpha=0.15, label="complex pair")
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
