r"""General memory-M optimizer in matrix form (docs/math.md §2, P.3) with e = 0."""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch
from torch import Tensor
from torch.optim import Optimizer

from ._common import (check_flag, check_nonnegative, check_real, collect, effective_grads,
                      group_by_device_and_dtype, resolve_foreach)

__all__ = ["MemorySGD", "memory_sgd"]


def _coefficients(alpha, b, c, D):
    """Validate ``(alpha, b, c, D)``; returns ``(float, tuple, tuple, tuple of tuples)``."""
    alpha = check_real(alpha, "alpha")
    arrays = {}
    for name, value in (("b", b), ("c", c), ("D", D)):
        if isinstance(value, Tensor):
            value = value.detach().cpu().double().numpy()
        try:
            arr = np.array(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be an array of real numbers ({exc})") from None
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must contain only finite values (no NaN or inf)")
        arrays[name] = arr
    b, c, D = arrays["b"], arrays["c"], arrays["D"]
    if b.ndim != 1:
        raise ValueError(f"b must be 1-dimensional (length M, the memory), got shape {b.shape}")
    M = b.size
    if c.shape != (M,):
        raise ValueError(f"c must have shape ({M},) to match b (memory M = {M}), got {c.shape}")
    if M == 0 and D.size == 0:
        D = np.zeros((0, 0))
    if D.shape != (M, M):
        raise ValueError(f"D must have shape ({M}, {M}) to match b (memory M = {M}), got {D.shape}")
    return alpha, tuple(b.tolist()), tuple(c.tolist()), tuple(tuple(r) for r in D.tolist())


class MemorySGD(Optimizer):
    def __init__(self, params, alpha, b, c, D, weight_decay: float = 0.0, maximize: bool = False,
                 foreach: Optional[bool] = None, *, lr: float = 1.0):
        alpha, b, c, D = _coefficients(alpha, b, c, D)
        lr = check_nonnegative(lr, "lr")
        weight_decay = check_nonnegative(weight_decay, "weight_decay")
        check_flag(maximize, "maximize")
        check_flag(foreach, "foreach", allow_none=True)
        defaults = dict(lr=lr, alpha=alpha, b=b, c=c, D=D, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach)
        super().__init__(params, defaults)

    @classmethod
    def from_algorithm(cls, params, algorithm, **kwargs) -> "MemorySGD":
        """From a :class:`memsgd.MemoryAlgorithm` (e.g. ``memsgd.heavy_ball(0.1, 0.9)``); needs e = 0."""
        from ..algorithms import MemoryAlgorithm
        if not isinstance(algorithm, MemoryAlgorithm):
            raise TypeError(f"algorithm must be a memsgd.MemoryAlgorithm, got {type(algorithm).__name__}")
        if np.any(algorithm.e != 0):
            raise ValueError(f"algorithm must have e = 0 (gradient at the iterate), got e = {algorithm.e.tolist()}")
        return cls(params, algorithm.alpha, algorithm.b, algorithm.c, algorithm.D, **kwargs)

    def add_param_group(self, param_group) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group["alpha"], group["b"], group["c"], group["D"] = _coefficients(
            group["alpha"], group["b"], group["c"], group["D"])
        group["lr"] = check_nonnegative(group["lr"], "lr")
        check_nonnegative(group["weight_decay"], "weight_decay")

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("lr", 1.0)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform a single optimization step.

        Args:
            closure (Callable, optional): A closure that reevaluates the model and returns the loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            M = len(group["b"])
            params, grads, bufs = collect(group, self.state, "memory_buffer", "MemorySGD")
            for buf in bufs:
                if buf is not None and buf.shape[0] != M:
                    raise ValueError(
                        f"the group's memory M = {M} (length of b) does not match the saved "
                        f"memory_buffer with {buf.shape[0]} vectors")
            if not params:
                continue
            memory_sgd(params, grads, bufs, alpha=group["alpha"], b=group["b"], c=group["c"],
                       D=group["D"], lr=group["lr"], weight_decay=group["weight_decay"],
                       maximize=group["maximize"], foreach=group["foreach"])
            if M > 0:
                for p, buf in zip(params, bufs):
                    self.state[p]["memory_buffer"] = buf
        return loss


MemorySGD.__doc__ = r"""Implements a memory-M algorithm in matrix form (docs/math.md §2, P.3) with ``e = 0``.

    .. math::
       \begin{aligned}
            &\textbf{input}: \alpha,\ b \in \mathbb{R}^M,\ c \in \mathbb{R}^M,\
                D \in \mathbb{R}^{M\times M},\ s \text{ (lr multiplier)},\ \lambda \text{ (weight decay)},
                \ \theta_0 \text{ (params)},\ u_0 = 0 \in (\mathbb{R}^{d})^M \\
            &\textbf{for}\ t = 0, 1, \ldots\ \textbf{do} \\
            &\hspace{5mm} g_t \leftarrow \pm\nabla_\theta f_t(\theta_t) + \lambda\theta_t
                \quad (- \text{ if maximize}) \\
            &\hspace{5mm} \theta_{t+1} \leftarrow \theta_t + \textstyle\sum_j b_j u_t^j - s\,\alpha\, g_t \\
            &\hspace{5mm} u_{t+1}^i \leftarrow \textstyle\sum_j D_{ij} u_t^j - s\, c_i\, g_t
                \qquad (i = 1..M) \\
       \end{aligned}

    Each parameter gets M buffers, stored stacked as ``state[p]["memory_buffer"]`` of shape
    ``(M, *p.shape)`` on the parameter's device. Presets map directly, e.g. heavy ball
    ``(alpha, b, c, D) = (a, [beta], [a], [[beta]])``; see :meth:`from_algorithm`.

    The group's ``lr`` (keyword, default 1.0) is a multiplier ``s`` of how the gradient enters
    the state, ``(alpha, c) -> s (alpha, c)``; it scales the effective learning rate
    ``alpha_eff = alpha + b^T (I - D)^{-1} c`` by ``s`` and leaves the memory dynamics ``(b, D)``
    alone. ``torch.optim.lr_scheduler`` schedulers change it like SGD's lr.

    Args:
        params (iterable): parameters or dicts defining parameter groups (per-group ``alpha``,
            ``b``, ``c``, ``D``, ``lr``, ``weight_decay``, ``maximize``, ``foreach`` allowed).
        alpha (float): direct gradient weight.
        b (sequence of M floats): how the memory enters the parameter update.
        c (sequence of M floats): how the gradient enters the memory.
        D (M x M nested sequence): memory transition.
        weight_decay (float, optional): L2 penalty added to the gradient (default: 0).
        maximize (bool, optional): maximize the objective instead of minimizing (default: False).
        foreach (bool, optional): multi-tensor implementation; ``None`` picks it on CUDA.
        lr (float, keyword, optional): the multiplier ``s`` above (default: 1.0).

    Example:
        >>> opt = MemorySGD(model.parameters(), alpha=0.1, b=[0.9], c=[0.1], D=[[0.9]])  # heavy ball
    """


# On CPU, foreach ops are per-tensor loops; running each tensor's whole update before the next
# (same ops, bitwise the same result) keeps it in cache. Tests set this to False to exercise the
# batched code on CPU.
_CPU_PER_TENSOR = True


def memory_sgd(params: List[Tensor], grads: List[Tensor], memory_buffer_list: List[Optional[Tensor]], *,
               alpha: float, b, c, D, lr: float = 1.0, weight_decay: float = 0.0, maximize: bool = False,
               foreach: Optional[bool] = None) -> None:
    """Functional MemorySGD update (see :class:`MemorySGD`). Buffers created here are written back
    into ``memory_buffer_list`` (zeros on first use: ``u_0 = 0``)."""
    if not params:
        return
    alpha, b, c, D = _coefficients(alpha, b, c, D)
    foreach = resolve_foreach(foreach, params)
    M = len(b)
    grads = effective_grads(params, grads, weight_decay, maximize, foreach)
    for i, p in enumerate(params):
        if M > 0 and memory_buffer_list[i] is None:
            memory_buffer_list[i] = torch.zeros((M,) + tuple(p.shape), dtype=p.dtype, device=p.device)
    if foreach:
        for (device, _), idx in group_by_device_and_dtype(params).items():
            if device.type == "cpu" and _CPU_PER_TENSOR:
                for i in idx:
                    _update([params[i]], [grads[i]], [memory_buffer_list[i]], alpha, b, c, D, lr, False)
                continue
            _update([params[i] for i in idx], [grads[i] for i in idx],
                    [memory_buffer_list[i] for i in idx], alpha, b, c, D, lr, True)
    else:
        for i in range(len(params)):
            _update([params[i]], [grads[i]], [memory_buffer_list[i]], alpha, b, c, D, lr, False)


def _update(P, G, U, alpha, b, c, D, lr, foreach):
    """One step on a list of tensors. Both paths run the same per-tensor ops in the same order."""
    M = len(b)

    if foreach:
        add_, mul_ = torch._foreach_add_, torch._foreach_mul_
    else:
        def add_(xs, ys, alpha=1.0):
            for x, y in zip(xs, ys):
                x.add_(y, alpha=alpha)

        def mul_(xs, s):
            for x in xs:
                x.mul_(s)

    u = [[buf[j] for buf in U] for j in range(M)]            # u[j]: views of memory vector j
    for j in range(M):                                          # theta += sum_j b_j u^j
        if b[j] != 0:
            add_(P, u[j], alpha=b[j])
    if alpha != 0:                                              # theta -= s alpha g
        add_(P, G, alpha=-lr * alpha)
    upper = all(D[i][j] == 0 for i in range(M) for j in range(i))
    lower = all(D[i][j] == 0 for i in range(M) for j in range(i + 1, M))
    if upper or lower:
        # u <- D u in place: row i only reads rows not yet overwritten (upper: j >= i, updated in
        # increasing i; lower: j <= i, updated in decreasing i). Diagonal D is both.
        for i in (range(M) if upper else reversed(range(M))):
            if D[i][i] != 1:
                mul_(u[i], D[i][i])
            for j in range(M):
                if j != i and D[i][j] != 0:
                    add_(u[i], u[j], alpha=D[i][j])
    else:
        # general D: u <- D u through one temporary per parameter (same op on both paths)
        Dt = None
        for buf in U:
            if Dt is None or Dt.device != buf.device or Dt.dtype != buf.dtype:
                Dt = torch.tensor(D, dtype=buf.dtype, device=buf.device)
            buf.copy_(torch.mm(Dt, buf.reshape(M, -1)).view(buf.shape))
    for i in range(M):                                          # u^i -= s c_i g
        if c[i] != 0:
            add_(u[i], G, alpha=-lr * c[i])
