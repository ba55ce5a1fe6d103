"""Helpers shared by the memsgd optimizers: hyperparameters, gradient preparation, grouping,
state-dict checks. Argument rules come from ``memsgd._validation``; only the torch types
(tensors, devices) are handled here."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Callable, Optional

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


def check_capturable(params: list[Tensor], values: Iterable, names: Iterable[str]) -> None:
    """``capturable=True``: tensor hyperparameters must live on the parameters' device (a CPU
    value would be baked into a captured CUDA graph)."""
    devices = {p.device for p in params}
    for name, v in zip(names, values):
        if isinstance(v, Tensor) and (len(devices) > 1 or v.device not in devices):
            raise ValueError(
                f"{name} must be a tensor on the parameters' device when capturable=True, got {v.device} "
                f"for parameters on {sorted(str(d) for d in devices)} (use one param group per device)")


def default_foreach(params: list[Tensor]) -> bool:
    """torch's default: the multi-tensor path when every tensor is a native CUDA-like tensor."""
    from torch.optim.optimizer import _default_to_fused_or_foreach
    _, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
    return bool(foreach)


def resolve_foreach(foreach: Optional[bool], params: list[Tensor]) -> bool:
    if foreach is None:
        return default_foreach(params)
    return bool(foreach)


def reject_sparse(p: Tensor, optimizer: str) -> None:
    if p.grad is not None and p.grad.is_sparse:
        raise RuntimeError(
            f"{optimizer} does not support sparse gradients; use dense gradients "
            f"(e.g. nn.Embedding(..., sparse=False)) or torch.optim.SparseAdam")


def group_params(param_group: dict) -> Optional[list[Tensor]]:
    """The tensors of a param group as ``torch.optim.Optimizer.add_param_group`` will read them
    (a lone tensor, an iterable, ``(name, tensor)`` pairs); an iterable is made a list in place so
    that reading it here does not consume it. None where torch will refuse the group itself."""
    params = param_group.get("params")
    if isinstance(params, Tensor):
        return [params]
    if params is None or isinstance(params, (set, str, bytes)):
        return None
    try:
        params = param_group["params"] = list(params)
    except TypeError:
        return None
    return [p[1] if isinstance(p, tuple) and len(p) == 2 else p for p in params]


def check_params(param_group: dict, optimizer: str) -> None:
    """Refuse tensors that can never be optimized: integer or bool ones get no gradient and would
    silently stay as they are (torch's fused optimizers refuse them too, at the first step)."""
    params = [p for p in group_params(param_group) or () if isinstance(p, Tensor)]
    for i, p in enumerate(params):
        if not (p.is_floating_point() or p.is_complex()):
            raise TypeError(f"{optimizer} optimizes floating-point or complex tensors; parameter {i} of "
                            f"the group has dtype {p.dtype} (integer and bool tensors get no gradient)")


def eager_scale(grad_scale: Optional[Tensor]):
    """AMP's ``grad_scale`` as the fused program takes it: a float when it lives on the CPU
    (free to read) and the step runs eagerly, else the tensor (no host synchronisation)."""
    if grad_scale is not None and grad_scale.device.type == "cpu" and not is_compiling():
        return grad_scale.item()
    return grad_scale if grad_scale is None else grad_scale.reshape(())   # (1,) or (): one value


def skipped_by_amp(found_inf: Optional[Tensor]) -> bool:
    """Whether AMP found an inf/NaN gradient, so that the step must change nothing (read on the
    host: free for a CPU value, a synchronisation for a device value)."""
    return found_inf is not None and bool(found_inf.item() != 0)


def unscale_or_skip(grads: list[Tensor], grad_scale: Optional[Tensor], found_inf: Optional[Tensor]) -> bool:
    """AMP for a group that is not fused in an optimizer that has fused ones (GradScaler then
    leaves unscaling and skipping to the step): True if the step must be skipped, else the
    gradients are divided by ``grad_scale`` in place, as the fused step does."""
    if skipped_by_amp(found_inf):
        return True
    if grad_scale is not None:
        for g in grads:
            g.div_(grad_scale)
    return False


@contextmanager
def real_views(params: list[Tensor], grads: list[Tensor], buffers: list, has_complex: Optional[bool]):
    """Complex tensors as their real views (torch.optim's convention: the update's coefficients
    are real, so it acts on the real and imaginary parts alike), so that every path, the fused one
    included, runs the same real arithmetic. ``buffers`` entries are tensors or tuples of
    tensors; one that the update replaces is written back as a complex tensor."""
    if has_complex is None:
        has_complex = any(torch.is_complex(p) for p in params)
    if not has_complex:
        yield params, grads, buffers
        return

    def real(x):
        if isinstance(x, tuple):
            return tuple(real(t) for t in x)
        return torch.view_as_real(x) if torch.is_complex(x) else x

    def back(new, old):
        if isinstance(new, tuple):
            return tuple(back(n, o) for n, o in zip(new, old))
        if torch.is_complex(old) and not torch.is_complex(new):
            return torch.view_as_complex(new)
        return new

    rb = [real(b) for b in buffers]
    before = list(rb)
    yield [real(p) for p in params], [real(g) for g in grads], rb
    for i, (new, old) in enumerate(zip(rb, before)):
        if new is not old:
            buffers[i] = back(new, buffers[i])


def effective_grads(params: list[Tensor], grads: list[Tensor], weight_decay: float,
                    maximize: bool, foreach: bool) -> list[Tensor]:
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


def group_by_device_and_dtype(params: list[Tensor]) -> dict[tuple[torch.device, torch.dtype], list[int]]:
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
    for i, p in enumerate(params):
        groups[(p.device, p.dtype)].append(i)
    return groups


def check_state_dict_form(optimizer, state_dict) -> None:
    """What ``load_state_dict`` was given, before torch's loading starts: a dict with 'state' and
    'param_groups' (unless a load pre-hook may still make it one)."""
    kind = type(optimizer).__name__
    if not isinstance(state_dict, dict):
        raise TypeError(f"state_dict must be a dict (from {kind}.state_dict()), got {type(state_dict).__name__}")
    if not optimizer._optimizer_load_state_dict_pre_hooks and not {"state", "param_groups"} <= set(state_dict):
        raise ValueError(f"state_dict must be a dict with 'state' and 'param_groups' (from "
                         f"{kind}.state_dict()), got keys {sorted(map(str, state_dict))}")


def check_loaded_state(optimizer, loaded: dict, required: tuple[str, ...],
                       buffer_keys: Callable[[dict], tuple[str, ...]]) -> None:
    """Refuse, before anything changes, a loaded state this optimizer cannot resume from:
    another optimizer's (param groups without ``required`` keys, or per-parameter state under
    keys this one does not use) or another model's (buffer shapes). ``loaded`` is what
    ``torch.optim.Optimizer.load_state_dict`` is about to install, after its load pre-hooks and
    its own checks (group count and sizes): ``{"state": {param: {...}}, "param_groups": [...]}``.
    ``buffer_keys(saved_group)`` names the per-parameter buffers a saved group may hold."""
    kind = type(optimizer).__name__
    state = loaded["state"]
    for i, group in enumerate(loaded["param_groups"]):
        missing = [k for k in required if k not in group]
        if missing:
            raise ValueError(f"state_dict is not from {kind}: its param group {i} lacks "
                             f"{', '.join(missing)} (saved by another optimizer type, or an older memsgd?)")
        allowed = set(buffer_keys(group))
        for j, p in enumerate(group["params"]):
            st = state.get(p)
            if not st:
                continue
            unknown = sorted(set(st) - allowed)
            if unknown:
                raise ValueError(f"state_dict's state for parameter {j} of group {i} has keys {unknown} "
                                 f"that {kind} does not use here (expected {sorted(allowed)}; saved by "
                                 f"another optimizer type or memory?)")
            if set(st) != allowed:
                raise ValueError(f"state_dict's state for parameter {j} of group {i} lacks "
                                 f"{sorted(allowed - set(st))}")
            for k, v in st.items():
                if not isinstance(v, Tensor) or tuple(v.shape) != tuple(p.shape):
                    shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                    raise ValueError(f"state_dict's {k} for parameter {j} of group {i} has shape {shape}, "
                                     f"the parameter has shape {tuple(p.shape)} (another model?)")
