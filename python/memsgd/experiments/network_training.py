"""One training run of a torch network on a fixed data set (the digits and mnist experiments).

Mini-batches of ``batch_size`` rows are drawn uniformly *with replacement* from a
``torch.Generator`` seeded with ``seed`` (the same sequence for every optimizer given the same
seed); the full-batch loss is evaluated at the steps ``eval_times``. A run has *blown up* at the
first evaluation whose loss is non-finite or above ``BLOWUP_FACTOR`` times the first one; it
stops there.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

__all__ = ["train_run", "BLOWUP_FACTOR"]

# Training stops at the first evaluated step whose full-batch loss exceeds this times the initial
# loss (or is not finite): the run has blown up. A rule for real network training, not the
# exact engine's divergence rule (L_t > 1e30 L_0, docs/math.md §8), hence its own name.
BLOWUP_FACTOR = 100.0


def train_run(params, optimizer, loss: Callable, X, Y, *, batch_size: int, steps: int, eval_times,
              seed: int, report: Optional[Callable[[int], None]] = None, report_every: int = 500) -> dict:
    """Train ``params`` with ``optimizer`` for ``steps`` steps of ``loss(params, x, y)`` on batches.

    Args:
        params: the list of leaf tensors the optimizer updates (modified in place).
        optimizer: a ``torch.optim.Optimizer`` over ``params``.
        loss: ``loss(params, x, y)``, a scalar tensor (the mean over the rows of ``x``).
        X, Y: the training set (n rows each).
        batch_size, steps: batch size and number of steps.
        eval_times: increasing steps in ``[0, steps]`` at which the full-batch loss is recorded
            (its first entry is the reference of the divergence rule).
        seed: seed of the batch sequence.
        report: ``None`` or ``report(steps_done)``, called every ``report_every`` steps.

    Returns:
        ``{"t": [...], "loss": [...], "blew_up_at": None or the step}``.
    """
    import torch

    times = [int(t) for t in eval_times]
    n = X.shape[0]
    gen = torch.Generator().manual_seed(seed)
    ts, ls = [], []
    L0, blew_up_at, next_eval = None, None, 0
    for t in range(steps + 1):
        if next_eval < len(times) and t == times[next_eval]:
            with torch.no_grad():
                L = float(loss(params, X, Y))
            ts.append(t)
            ls.append(L)
            L0 = L if L0 is None else L0
            next_eval += 1
            if not math.isfinite(L) or L > BLOWUP_FACTOR * L0:
                blew_up_at = t
                break
        if t == steps:
            break
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        optimizer.zero_grad(set_to_none=True)
        loss(params, X[idx], Y[idx]).backward()
        optimizer.step()
        if report is not None and (t + 1) % report_every == 0:
            report(t + 1)
    return {"t": ts, "loss": ls, "blew_up_at": blew_up_at}
