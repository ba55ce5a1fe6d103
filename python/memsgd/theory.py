"""Theory toolkit: stability, noise sums, asymptotics and exponent fits (MATH.md 5-6)."""
from __future__ import annotations

import numpy as np

from ._validation import float_array, real_scalar

__all__ = ["fit_exponent"]


def fit_exponent(loss, t_min, t_max) -> float:
    """Least-squares slope ``p`` of ``-log L_t`` against ``log t`` over ``t_min <= t <= t_max``.

    ``loss[t]`` is ``L_t`` (index = step). A curve ``L_t ~ C t^-p`` gives ``p``.
    """
    loss = float_array(loss, "loss", ndim=1, finite=False)
    t_min = real_scalar(t_min, "t_min")
    t_max = real_scalar(t_max, "t_max")
    if not 0 < t_min < t_max:
        raise ValueError(f"need 0 < t_min < t_max, got t_min={t_min}, t_max={t_max}")
    if t_max > loss.size - 1:
        raise ValueError(f"t_max must be <= len(loss) - 1 = {loss.size - 1}, got {t_max}")
    t = np.arange(int(np.ceil(t_min)), int(np.floor(t_max)) + 1)
    if t.size < 2:
        raise ValueError("the window [t_min, t_max] must contain at least two integer steps")
    L = loss[t]
    if not np.all(np.isfinite(L) & (L > 0)):
        raise ValueError("loss must be finite and > 0 on [t_min, t_max] to fit an exponent")
    # Evenly weighted in log t: sample the window at log-spaced steps.
    idx = np.unique(np.round(np.geomspace(t[0], t[-1], min(t.size, 200))).astype(int))
    slope = np.polyfit(np.log(idx), np.log(loss[idx]), 1)[0]
    return float(-slope)
