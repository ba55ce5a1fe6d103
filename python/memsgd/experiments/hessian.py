"""The top eigenvalue of a loss Hessian by power iteration on Hessian-vector products (torch)."""
from __future__ import annotations

import math

import torch

__all__ = ["top_hessian_eigenvalue"]


def top_hessian_eigenvalue(params, loss, seed: int, iterations: int = 30) -> float:
    """Power iteration ``v <- H v / |H v|`` from a seeded Gaussian start; returns ``|H v|`` of the
    last iterate: the largest |eigenvalue| of the Hessian of ``loss(params)`` (a scalar function
    of the list ``params``), up to the power method's convergence (ratio |lambda_2/lambda_1| per
    iteration). ``H v`` by double backward; ``params`` are not modified."""
    g = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
    norm = math.sqrt(sum(float((x ** 2).sum()) for x in v))
    v = [x / norm for x in v]
    lam = 0.0
    for _ in range(iterations):
        grads = torch.autograd.grad(loss(params), params, create_graph=True)
        Hv = torch.autograd.grad(grads, params, grad_outputs=v)
        lam = math.sqrt(sum(float((x ** 2).sum()) for x in Hv))
        v = [x.detach() / lam for x in Hv]
    return lam
