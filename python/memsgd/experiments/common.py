"""Helpers shared by the reproductions: progress, exponents, guides, tables, JSON."""
from __future__ import annotations

import json
import math
import os
from typing import Callable, Optional

import numpy as np

ProgressFn = Optional[Callable[[int, int, str], None]]


class Tracker:
    """Counts units of work and reports them to ``progress(done, total, label)``."""

    def __init__(self, progress: ProgressFn, total: int):
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be None or a callable (done, total, label), got {type(progress).__name__}")
        self.progress, self.total, self.done = progress, int(total), 0

    def step(self, label: str = "") -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done), label)


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


def log_times(t_max: int, points: int = 12, t_min: int = 1) -> np.ndarray:
    """Distinct integer times spread evenly in log t over ``[t_min, t_max]``."""
    return np.unique(np.round(np.geomspace(t_min, t_max, points)).astype(int))


def sim_agreement(mean, stderr, exact, times):
    """z-scores ``(simulated mean - exact) / standard error`` at ``times``; the max |z|."""
    mean, stderr, exact = (np.asarray(a, float) for a in (mean, stderr, exact))
    times = np.asarray(times, int)
    z = (mean[times] - exact[times]) / stderr[times]
    return z, float(np.max(np.abs(z)))


def fmt(x, spec: str = ".4f") -> str:
    if x is None:
        return "-"
    if isinstance(x, (float, np.floating)) and not math.isfinite(x):
        return str(x)
    return format(x, spec)


def check_problems(problems) -> None:
    """``problems``: a non-empty sequence of power-law ``(nu > 1, kappa > 0)`` pairs."""
    if not problems:
        raise ValueError("problems must be a non-empty tuple of (nu, kappa)")
    for p in problems:
        if len(p) != 2 or not p[0] > 1 or not p[1] > 0:
            raise ValueError(f"problems must contain (nu > 1, kappa > 0) pairs, got {p!r}")


def format_table(headers, rows) -> str:
    rows = [[str(v) for v in r] for r in rows]
    widths = [max([len(str(h))] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).rjust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def jsonable(x):
    """Convert numpy scalars/arrays and non-finite floats (-> None) for strict JSON."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(jsonable(obj), f, indent=2, allow_nan=False)


def prepare_out_dir(out_dir) -> Optional[str]:
    if out_dir is None:
        return None
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    return out_dir


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
