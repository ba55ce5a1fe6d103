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
