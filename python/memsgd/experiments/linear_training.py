"""Real torch training of least squares on fixed features, many seeds at once.

Each seed s trains its own linear model ``W_s`` (d x C) from 0 on the mini-batch loss
``1/(2B) sum_b |x_b W_s - y_b|^2`` with its own batches of B rows drawn uniformly *with
replacement* (as the theory assumes). The S models are one parameter of shape (S, d, C) under
one torch optimizer: memsgd's optimizers act elementwise with the same coefficients everywhere,
so this is exactly S independent runs, batched (one ``bmm`` per step, autograd for the gradient).
"""
from __future__ import annotations

import numpy as np

from ..long_horizon import DIVERGENCE_FACTOR

__all__ = ["train_seeds"]


def train_seeds(make_optimizer, features, targets, w_star, batch_size: int, steps: int, record,
                seeds: int, seed: int, progress=None, dtype: str = "float64"):
    """Excess losses ``1/2 tr((W_s - W*)^T H (W_s - W*))`` (``H = X^T X / n``) of ``seeds``
    independent runs at the steps ``record`` (increasing, within ``[0, steps]``), shape
    ``(len(record), seeds)``. Training runs in ``dtype`` ("float32", as practitioners train, or
    "float64"); the excess loss is evaluated in float64.

    Args:
        make_optimizer: ``params -> torch.optim.Optimizer`` (e.g. a memsgd optimizer).
        features: (n, d) array ``X``; targets: (n, C) array ``Y``; w_star: (d, C) reference
            ``W*`` of the excess loss (the least-squares solution).
        batch_size, steps, seeds: B, T, S. seed: seed of the batch sampler.
        progress: called as ``progress()`` every 10% of the steps, or None.
    """
    import torch

    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    X64 = torch.as_tensor(np.asarray(features, dtype=np.float64))
    W_star = torch.as_tensor(np.asarray(w_star, dtype=np.float64))
    n, d = X64.shape
    H = X64.T @ X64 / n
    X = X64.to(getattr(torch, dtype))
    Y = torch.as_tensor(np.asarray(targets, dtype=np.float64)).to(X.dtype)
    record = [int(t) for t in record]
    W = torch.nn.Parameter(torch.zeros(seeds, d, Y.shape[1], dtype=X.dtype))
    opt = make_optimizer([W])
    gen = torch.Generator().manual_seed(seed)
    out = np.full((len(record), seeds), np.inf)
    L0 = None
    k = 0
    every = max(1, steps // 10)
    for t in range(steps + 1):
        if k < len(record) and t == record[k]:
            with torch.no_grad():
                delta = W.double() - W_star
                loss = 0.5 * torch.einsum("sdc,de,sec->s", delta, H, delta).numpy()
            L0 = loss.copy() if L0 is None else L0
            out[k] = np.where(np.isfinite(loss) & (loss <= DIVERGENCE_FACTOR * L0), loss, np.inf)
            k += 1
        if t == steps or k == len(record):
            break
        idx = torch.randint(0, n, (seeds, batch_size), generator=gen)
        opt.zero_grad(set_to_none=True)
        batch_loss = 0.5 * ((torch.bmm(X[idx], W) - Y[idx]) ** 2).sum() / batch_size
        batch_loss.backward()
        opt.step()
        if progress is not None and (t + 1) % every == 0:
            progress()
    return out
