"""Helpers shared by the reproductions: predicted exponents, guides, agreement, tables, output.

Strict JSON (``write_json``, ``jsonable``) lives in ``memsgd._json`` and is re-exported here
for the experiments.
"""
from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np

from .._json import jsonable, write_json
from .._optional import require

__all__ = ["predicted_stationary_exponent", "predicted_am1_exponent", "guide", "sim_agreement", "fmt",
           "format_table", "jsonable", "write_json", "prepare_out_dir"]


def predicted_stationary_exponent(nu: float, kappa: float) -> float:
    """Loss exponent of a stationary, strictly and noise-stable algorithm (docs/math.md §6):
    ``zeta`` in the signal-dominated phase (``zeta < 2 - 1/nu``), ``2 - 1/nu`` otherwise."""
    zeta = kappa / nu
    return min(zeta, 2.0 - 1.0 / nu)


def predicted_am1_exponent(nu: float, kappa: float, delta: float) -> Optional[float]:
    """AM1 power-law schedule, signal phase (P.27, docs/math.md §7): ``zeta (1 + delta)`` for
    ``delta < 1 - 1/nu``; ``None`` (no prediction: outside the stable range) otherwise."""
    if delta >= 1.0 - 1.0 / nu:
        return None
    return kappa / nu * (1.0 + delta)


def guide(loss: np.ndarray, exponent: float, t_min: float, t_max: float, points: int = 50,
          offset: float = 0.5):
    """A dashed guide ``offset * C t^-exponent`` over ``[t_min / 3, t_max]`` with the predicted
    slope and the level ``C`` fitted to the curve on ``[t_min, t_max]`` (geometric mean of
    ``L_t t^p``); ``offset`` < 1 draws it just below the curve so that both stay visible."""
    t = np.unique(np.round(np.geomspace(t_min, t_max, points)).astype(int))
    L = loss[t]
    ok = np.isfinite(L) & (L > 0)
    log_c = float(np.mean(np.log(L[ok]) + exponent * np.log(t[ok])))
    tg = np.geomspace(max(1.0, t_min / 3.0), t_max, points)
    return tg, offset * np.exp(log_c) * tg ** (-exponent)


def sim_agreement(mean, stderr, exact, times):
    """z-scores ``(simulated mean - exact) / standard error`` at ``times``; the max |z|."""
    mean, stderr, exact = (np.asarray(a, float) for a in (mean, stderr, exact))
    times = np.asarray(times, int)
    z = (mean[times] - exact[times]) / stderr[times]
    return z, float(np.max(np.abs(z)))


def fmt(x, spec: str = ".4f") -> str:
    """``x`` formatted by ``spec``; ``-`` for None, ``inf``/``nan`` as words."""
    if x is None:
        return "-"
    if isinstance(x, (float, np.floating)) and not math.isfinite(x):
        return str(x)
    return format(x, spec)


def format_table(headers, rows) -> str:
    """Right-aligned plain-text columns, one line per row."""
    rows = [[str(v) for v in r] for r in rows]
    widths = [max([len(str(h))] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).rjust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def prepare_out_dir(out_dir) -> Optional[str]:
    """Create ``out_dir`` (``None``: nothing is written) before any work starts, and check that
    matplotlib is there to draw its figures (``memsgd[plot]``)."""
    if out_dir is None:
        return None
    require("matplotlib", "plot", "writing figures")
    out_dir = os.fspath(out_dir)
    if not str(out_dir).strip():
        raise ValueError("out_dir must be a non-empty path (a folder for the figures and JSON)")
    os.makedirs(out_dir, exist_ok=True)
    if not os.access(out_dir, os.W_OK):
        raise PermissionError(f"out_dir {out_dir!r} is not writable")
    return out_dir
