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


def plot_panels(panels, path, title="", ncols=3):
    """A grid of log-log panels in one PNG: theory as lines, measurements as points with error bars.

    ``panels``: list of dicts with ``title`` and ``series``, a list of dicts with ``label``,
    ``t``, ``y``, optional ``err`` (drawn as error bars, points), ``style`` ("-", "--", ":" for
    lines; default "-") and ``color``. Non-finite or non-positive values are left out (a
    diverged run ends where its values stop being finite) and each panel's y axis stops at 100
    times the largest starting value; the legend is shared.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
