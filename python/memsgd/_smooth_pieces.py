"""Piecewise-stationary approximation of a smooth Schedule up to one step (loss_at's ``approximate=``).

To evaluate ``L_t`` of a schedule whose parameters change every step, the steps ``[0, t)`` are cut
into pieces whose width grows with the distance to the nearest *anchor* (step 0, the evaluated
step t itself and the schedule's kinks, ``breaks``):

    width(tau) = max(1, floor(d(tau) / m)),   d(tau) = distance from tau to the nearest anchor,

so there are about ``2 m log(t)`` pieces per anchor, one step wide next to each anchor (there the
approximation is the recursion itself) and geometrically wider away from them. Why graded towards
t: a fast component (``lambda alpha_eff`` large) forgets all but the last ``1 / (lambda alpha_eff)``
steps, so its state at t follows the parameters just before t; uniform pieces freeze those at the
last piece's midpoint, a first-order error in the width, while pieces no wider than ``d / m`` make
every component's error second order in ``1 / m``. Each piece is frozen at the schedule's
parameters at its midpoint (the mean of the two middle steps for an even width: any generator
takes integer steps), and consecutive pieces with equal parameters are merged (a WSD's stable
phase is one piece). The frozen schedule is a :meth:`Schedule.piecewise`, evaluated exactly by
loss_at.
"""
from __future__ import annotations

import numpy as np

from .algorithms import MemoryAlgorithm

__all__ = ["graded_boundaries", "frozen_pieces"]


def graded_boundaries(t_end: int, per_efold: int, breaks=()) -> np.ndarray:
    """Boundaries ``0 = b_0 < b_1 < ... < b_n = t_end`` of pieces of width
    ``max(1, floor(d / per_efold))``, ``d`` the distance from the piece's start to the nearest of 0,
    ``t_end`` and the ``breaks`` inside ``(0, t_end)`` (each break a boundary)."""
    anchors = np.unique(np.array([0, t_end] + [int(b) for b in breaks if 0 < int(b) < t_end], dtype=np.int64))
    out = [0]
    for lo, hi in zip(anchors[:-1], anchors[1:]):
        t = int(lo)
        while t < hi:
            w = max(1, min(t - int(lo), int(hi) - t) // per_efold)
            t = min(int(hi), t + w)
            out.append(t)
    return np.array(out, dtype=np.int64)


def frozen_pieces(schedule, bounds: np.ndarray) -> list:
    """``[(algorithm, width), ..., (algorithm, None)]``: piece i frozen at the schedule's parameters
    at the midpoint of ``[bounds[i], bounds[i+1])``, equal neighbours merged; the last piece (for
    ever) repeats the last frozen algorithm (the loss at its first step does not depend on it)."""
    lo, hi = bounds[:-1], bounds[1:] - 1
    left, right = (lo + hi) // 2, (lo + hi + 1) // 2
    M = schedule.memory
    pa = [np.asarray(x, dtype=np.float64) for x in schedule._generator(left)]
    pb = [np.asarray(x, dtype=np.float64) for x in schedule._generator(right)]
    n = lo.size
    alpha, b, c, D, e = [0.5 * (x.reshape(n, -1) + y.reshape(n, -1)) for x, y in zip(pa, pb)]
    rho = schedule.weight_decay
    common = dict(weight_decay=float(rho), readout=schedule.readout, preconditioner=schedule.preconditioner)
    pieces = []
    for i in range(n):
        width = int(bounds[i + 1] - bounds[i])
        key = (alpha[i, 0], *b[i], *c[i], *D[i], *e[i])
        if pieces and pieces[-1][2] == key:
            pieces[-1][1] += width
            continue
        algo = MemoryAlgorithm(float(alpha[i, 0]), b[i], c[i], D[i].reshape(M, M), e[i], **common)
        pieces.append([algo, width, key])
    out = [(a, w) for a, w, _ in pieces]
    out.append((out[-1][0], None))
    return out
