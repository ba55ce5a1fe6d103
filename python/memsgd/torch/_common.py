"""Helpers shared by the memsgd optimizers: hyperparameters, gradient preparation, grouping,
state-dict checks. Argument rules come from ``memsgd._validation``; only the torch types
(tensors, devices) are handled here."""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
from torch import Tensor

from .._validation import nonnegative_scalar, real_scalar


def hyperparameter(value, name: str, *, nonnegative: bool = False):
    """A real number (returned as float) or a 1-element real floating tensor (returned as a 0-d
    view of it, so that in-place changes by the caller, e.g. an lr scheduler's ``fill_``, are
    seen). The tensor's value is checked once here (one host read), never in ``step``."""
    check = nonnegative_scalar if nonnegative else real_scalar
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a number or a 1-element tensor, got a tensor of shape "
                             f"{tuple(value.shape)}")
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a real floating-point tensor, got dtype {value.dtype}")
        if value.requires_grad:
            raise ValueError(f"{name} must not require grad (differentiable hyperparameters are not supported)")
        check(value.detach().cpu().item(), name)
        return value if value.dim() == 0 else value.reshape(())
    return check(value, name)


def is_compiling() -> bool:
    return torch.compiler.is_compiling()


def eager_values(values, capturable: bool):
    """Tensor hyperparameters read as Python floats when the step runs eagerly and is not to be
    captured: the float code path then runs (free for CPU tensors; a device sync for CUDA
    tensors). A compiled or capturable step keeps them as tensors, so that a new value needs
    neither a recompilation nor a new CUDA graph."""
    if capturable or is_compiling():
        return tuple(values)
    return tuple(v.item() if isinstance(v, Tensor) else v for v in values)


def check_capturable(params: List[Tensor], values: Iterable, names: Iterable[str]) -> None:
    """``capturable=True``: tensor hyperparameters must live on the parameters' device (a CPU
    value would be baked into a captured CUDA graph)."""
    devices = {p.device for p in params}
    for name, v in zip(names, values):
        if isinstance(v, Tensor) and (len(devices) > 1 or v.device not in devices):
            raise ValueError(
                f"{name} must be a tensor on the parameters' device when capturable=True, got {v.device} "
                f"for parameters on {sorted(str(d) for d in devices)} (use one param group per device)")


def default_foreach(params: List[Tensor]) -> bool:
    """torch's default: the multi-tensor path when every tensor is a native CUDA-like tensor."""
    from torch.optim.optimizer import _default_to_fused_or_foreach
    _, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
    return bool(foreach)


def resolve_foreach(foreach: Optional[bool], params: List[Tensor]) -> bool:
    if foreach is None:
        return default_foreach(params)
    return bool(foreach)


def reject_sparse(p: Tensor, optimizer: str) -> None:
    if p.grad is not None and p.grad.is_sparse:
        raise RuntimeError(
            f"{optimizer} does not support sparse gradients; use dense gradients "
            f"(e.g. nn.Embedding(..., sparse=False)) or torch.optim.SparseAdam")


def collect(group, state, buffer_keys: Tuple[str, ...], optimizer: str):
    """The group's parameters that have gradients, their gradients, and their saved buffers: a
    tuple of tensors (one per key) where all keys are present, else None."""
    params: List[Tensor] = []
    grads: List[Tensor] = []
    bufs: List[Optional[tuple]] = []
    for p in group["params"]:
        if p.grad is None:
            continue
        reject_sparse(p, optimizer)
        params.append(p)
        grads.append(p.grad)
        st = state[p]
        bufs.append(tuple(st[k] for k in buffer_keys) if all(k in st for k in buffer_keys) else None)
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


def check_state_dict(optimizer, state_dict, required: Tuple[str, ...],
                     buffer_keys: Callable[[dict], Tuple[str, ...]]) -> None:
    """Refuse, before anything changes, a ``state_dict`` this optimizer cannot resume from:
    another optimizer's (param groups without ``required`` keys, or per-parameter state under
    keys this one does not use) or another model's (group sizes, buffer shapes).
    ``buffer_keys(saved_group)`` names the per-parameter buffers a saved group may hold."""
    kind = type(optimizer).__name__
    if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
        raise ValueError(f"state_dict must be a dict with 'state' and 'param_groups' (from "
                         f"{kind}.state_dict()), got {type(state_dict).__name__}")
    saved_groups = state_dict["param_groups"]
    if len(saved_groups) != len(optimizer.param_groups):
        raise ValueError(f"state_dict has {len(saved_groups)} param groups, this {kind} has "
                         f"{len(optimizer.param_groups)}")
    saved_state = state_dict["state"]
    for i, (saved, group) in enumerate(zip(saved_groups, optimizer.param_groups)):
        missing = [k for k in required if k not in saved]
        if missing:
            raise ValueError(f"state_dict is not from {kind}: its param group {i} lacks "
                             f"{', '.join(missing)} (saved by another optimizer type, or an older memsgd?)")
        if len(saved["params"]) != len(group["params"]):
            raise ValueError(f"state_dict's param group {i} has {len(saved['params'])} parameters, "
                             f"this {kind}'s has {len(group['params'])}")
        allowed = set(buffer_keys(saved))
        for pid, p in zip(saved["params"], group["params"]):
            st = saved_state.get(pid)
            if not st:
                continue
            unknown = sorted(set(st) - allowed)
            if unknown:
                raise ValueError(f"state_dict's state for parameter {pid} has keys {unknown} that "
                                 f"{kind} does not use here (expected {sorted(allowed)}; saved by "
                                 f"another optimizer type or memory?)")
            if set(st) != allowed:
                raise ValueError(f"state_dict's state for parameter {pid} lacks "
                                 f"{sorted(allowed - set(st))}")
            for k, v in st.items():
                if not isinstance(v, Tensor) or tuple(v.shape) != tuple(p.shape):
                    shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                    raise ValueError(f"state_dict's {k} for parameter {pid} has shape {shape}, "
                                     f"the parameter has shape {tuple(p.shape)} (another model?)")
