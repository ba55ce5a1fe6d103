"""PyTorch optimizers for SGD with memory.

Imported explicitly (``import memsgd.torch``); ``import memsgd`` does not import torch.

- [`MemorySGD`][memsgd.torch.MemorySGD]: any memory-M algorithm in matrix form ``(alpha, b, c, D)`` with e = 0.
- [`AM1`][memsgd.torch.AM1]: heavy ball plus a kick, ``v <- beta v + g; p <- p - lr v - kick g``, optionally
  driven by a memsgd [`Schedule`][memsgd.schedules.Schedule] or a callable ``step -> (lr, momentum, kick)``.
- [`am1`][memsgd.torch.am1], [`memory_sgd`][memsgd.torch.memory_sgd]: the functional updates.

Without torch, ``import memsgd.torch`` raises an ImportError naming the extra to install.
"""
from .._optional import require

require("torch", "torch", "memsgd.torch")

from ._am1 import AM1, am1  # noqa: E402
from ._memory_sgd import MemorySGD, memory_sgd  # noqa: E402

__all__ = ["MemorySGD", "AM1", "am1", "memory_sgd"]
