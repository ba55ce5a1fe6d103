"""The network of the digits and mnist experiments: one hidden layer in the NTK scaling (torch).

    f(x) = N^(-1/2) sum_{i=1}^N a_i phi(w_i . x),     a_i in R^C,  w_i in R^d,
    L    = 1/(2n) sum_x |f(x) - y(x)|^2,

with ``phi`` = tanh (default) or ReLU, initialised with ``w_i ~ N(0, I/d)`` and ``a_i ~ N(0, I)``
(docs/math.md §7b). Parameters are the list ``[W (N, d), A (N, C)]``, both trained.
"""
from __future__ import annotations

import math

import torch

__all__ = ["ACTIVATIONS", "init_params", "forward", "mse_loss"]

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


def init_params(d: int, hidden: int, classes: int, seed: int):
    """``[W, A]`` with ``W ~ N(0, 1/d)`` and ``A ~ N(0, 1)`` entries, leaves requiring grad."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(hidden, d, generator=g) / math.sqrt(d)
    A = torch.randn(hidden, classes, generator=g)
    return [W.requires_grad_(), A.requires_grad_()]


def forward(params, x, activation: str = "tanh"):
    """``f(x) = N^-1/2 phi(x W^T) A``, shape (batch, C); ``activation`` names phi (``ACTIVATIONS``)."""
    W, A = params
    return ACTIVATIONS[activation](x @ W.T) @ A / math.sqrt(W.shape[0])


def mse_loss(params, x, y, activation: str = "tanh"):
    """``1/(2 batch) sum |f(x) - y|^2``."""
    return 0.5 * ((forward(params, x, activation) - y) ** 2).sum(dim=1).mean()
