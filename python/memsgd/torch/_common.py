"""Helpers shared by the memsgd optimizers (argument checks, gradient preparation, grouping)."""
from __future__ import annotations

import math
import numbers
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor


def check_real(value, name: str) -> float:
    """A finite real number (bool and tensors refused), returned as a Python float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"Invalid {name} value: {value} ({name} must be finite)")
    return value


def check_nonnegative(value, name: str) -> float:
    value = check_real(value, name)
    if value < 0.0:
        raise ValueError(f"Invalid {name} value: {value} ({name} must be >= 0)")
    return value


def check_flag(value, name: str, allow_none: bool = False):
    if allow_none and value is None:
        return None
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool{' or None' if allow_none else ''}, got {type(value).__name__}")
    return value


def default_foreach(params: List[Tensor]) -> bool:
    """torch's default: the multi-tensor path when every tensor is a native CUDA-like tensor."""
    try:  # torch >= 2.0
        from torch.optim.optimizer import _default_to_fused_or_foreach
        _, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
        return bool(foreach)
    except Exception:  # pragma: no cover - very old/new torch without the helper
        return all(p.is_cuda for p in params)


def reject_sparse(p: Tensor, optimizer: str) -> None:
    if p.grad is not None and p.grad.is_sparse:
        raise RuntimeError(
            f"{optimizer} does not support sparse gradients; use dense gradients "
            f"(e.g. nn.Embedding(..., sparse=False)) or torch.optim.SparseAdam")


def collect(group, state, buffer_key: str, optimizer: str):
    """The group's parameters that have gradients, their gradients and saved buffers (or None)."""
    params: List[Tensor] = []
    grads: List[Tensor] = []
    bufs: List[Optional[Tensor]] = []
    for p in group["params"]:
        if p.grad is None:
            continue
        reject_sparse(p, optimizer)
        params.append(p)
        grads.append(p.grad)
        bufs.append(state[p].get(buffer_key))
    return params, grads, bufs


def effective_grads(params: List[Tensor], grads: List[Tensor], weight_decay: float,
                    maximize: bool, foreach: bool) -> List[Tensor]:
    """``g = +-grad + weight_decay * p`` without touching ``p.grad`` (same ops on both paths)."""
    if foreach:
        if maximize:
            grads = torch._foreach_neg(grads)
            if weight_decay != 0:
                torch._foreach_add_(grads, params, alpha=weight_decay)
        elif weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        return list(grads)
    out = []
    for p, g in zip(params, grads):
        if maximize:
            g = torch.neg(g)
            if weight_decay != 0:
                g.add_(p, alpha=weight_decay)
        elif weight_decay != 0:
            g = torch.add(g, p, alpha=weight_decay)
        out.append(g)
    return out


def group_by_device_and_dtype(params: List[Tensor]) -> Dict[Tuple[torch.device, torch.dtype], List[int]]:
    groups: Dict[Tuple[torch.device, torch.dtype], List[int]] = defaultdict(list)
    for i, p in enumerate(params):
        groups[(p.device, p.dtype)].append(i)
    return groups


def resolve_foreach(foreach: Optional[bool], params: List[Tensor]) -> bool:
    if foreach is None:
        return default_foreach(params)
    return bool(foreach)
