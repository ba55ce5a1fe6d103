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


# -- heat maps over two grid axes (added for `memsgd sweep`) ------------------------------------

def plot_heatmap(values, x, y, path, xlabel="", ylabel="", title="", colorbar_label="", log_color=False):
    """Write a heat map PNG of ``values`` (shape ``(len(y), len(x))``) over the grid axes ``x``, ``y``.

    Cells are categorical (one per grid value, labelled ``%g``), so log- and linearly-spaced axes
    both read well. Non-finite cells (diverged points) are grey. ``log_color``: logarithmic colour
    scale (losses).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    values = np.asarray(values, dtype=float)
    if values.shape != (len(y), len(x)):
        raise ValueError(f"values must have shape (len(y), len(x)) = ({len(y)}, {len(x)}), got {values.shape}")
    finite = np.isfinite(values) & (values > 0 if log_color else True)
    masked = np.ma.masked_where(~finite, values)
    norm = LogNorm() if log_color and finite.any() else None
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(x) + 2.5), max(3.5, 0.35 * len(y) + 2.0)))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    im = ax.imshow(masked, origin="lower", aspect="auto", cmap=cmap, norm=norm,
                   extent=(-0.5, len(x) - 0.5, -0.5, len(y) - 0.5))

    def labels(v):
        return [f"{u:.3g}" if isinstance(u, (float, np.floating)) else str(u) for u in v]

    step_x = max(1, len(x) // 12)
    step_y = max(1, len(y) // 12)
    ax.set_xticks(range(0, len(x), step_x), labels(x)[::step_x], rotation=45 if len(x) > 6 else 0)
    ax.set_yticks(range(0, len(y), step_y), labels(y)[::step_y])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title + ("\ngrey: diverged" if not finite.all() else ""), fontsize=9)
    fig.colorbar(im, ax=ax, label=colorbar_label)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
