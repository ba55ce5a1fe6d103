r"""General memory-M optimizer in matrix form (docs/math.md §2, P.3) with e = 0."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.optimizer import required

from .._validation import boolean, float_array, nonnegative_scalar, real_scalar
from ._common import (
    check_loaded_state,
    check_params,
    check_state_dict_form,
    eager_scale,
    eager_values,
    effective_grads,
    group_by_device_and_dtype,
    hyperparameter,
    is_compiling,
    real_views,
    reject_sparse,
    resolve_foreach,
    unscale_or_skip,
)
from ._fused import Program, check_fused_options, check_fused_params
from ._fused import step as fused_step

__all__ = ["MemorySGD", "memory_sgd"]

# what identifies a MemorySGD param group in a state dict; flags added later (lr, maximize,
# foreach, fused) take their defaults when an older state dict lacks them
_GROUP_KEYS = ("alpha", "b", "c", "D", "weight_decay")
_FLAG_DEFAULTS = dict(lr=1.0, maximize=False, foreach=None, fused=False)


def buffer_keys(memory: int) -> tuple:
    """State keys of the M memory vectors ``u^1..u^M``: ``memory_buffer_1`` ... ``memory_buffer_M``."""
    return tuple(f"memory_buffer_{j}" for j in range(1, memory + 1))


def _coefficients(alpha, b, c, D):
    """Validate ``(alpha, b, c, D)`` by the rules of [`memsgd.MemoryAlgorithm`][memsgd.MemoryAlgorithm] (real, finite,
    no bools, strings or complex); returns ``(float, tuple, tuple, tuple of tuples)``."""
    alpha = real_scalar(alpha.item() if isinstance(alpha, Tensor) and alpha.numel() == 1
                        and alpha.is_floating_point() else alpha, "alpha")
    arrays = {}
    for name, value in (("b", b), ("c", c), ("D", D)):
        if isinstance(value, Tensor):
            value = value.detach().cpu().numpy()      # keeps the dtype: bool/complex refused below
        arrays[name] = float_array(value, name)
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
    @torch._disable_dynamo        # built eagerly even inside a compiled function (see AM1)
    def __init__(self, params, alpha=None, b=None, c=None, D=None, weight_decay: float = 0.0,
                 maximize: bool = False, foreach: Optional[bool] = None, *, lr=1.0,
                 fused: Optional[bool] = None):
        # torch's convention: a hyperparameter without a default must be set by every group
        alpha, b, c, D = (required if v is None else v for v in (alpha, b, c, D))
        defaults = dict(lr=lr, alpha=alpha, b=b, c=c, D=D, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, fused=fused)
        super().__init__(params, defaults)

    @classmethod
    def from_algorithm(cls, params, algorithm, **kwargs) -> MemorySGD:
        """From a [`memsgd.MemoryAlgorithm`][memsgd.MemoryAlgorithm] (e.g. ``memsgd.heavy_ball(0.1, 0.9)``); needs e =
        0.
        The algorithm's weight decay is the optimizer's (``weight_decay=`` may repeat it, not
        contradict it), so that the iterates are those whose loss [`memsgd.loss_curve`][memsgd.loss_curve]
        gives; a readout or a preconditioner is refused (the optimizer moves the weights)."""
        from .._affine import WEIGHTS_ONLY, refuse_affine
        from ..algorithms import MemoryAlgorithm
        if not isinstance(algorithm, MemoryAlgorithm):
            raise TypeError(f"algorithm must be a memsgd.MemoryAlgorithm, got {type(algorithm).__name__}")
        if np.any(algorithm.e != 0):
            raise ValueError(f"algorithm must have e = 0 (gradient at the iterate), got e = {algorithm.e.tolist()}")
        refuse_affine(algorithm, None, "MemorySGD", WEIGHTS_ONLY, allowed=("weight decay",))
        own = algorithm.weight_decay
        if "weight_decay" in kwargs:
            given = nonnegative_scalar(kwargs["weight_decay"], "weight_decay")
            if own and given != own:
                raise ValueError(f"weight_decay={given!r} contradicts the algorithm's own weight decay {own!r}: "
                                 f"leave weight_decay out to use it, or pass an algorithm without one")
        else:
            kwargs["weight_decay"] = own
        return cls(params, algorithm.alpha, algorithm.b, algorithm.c, algorithm.D, **kwargs)

    def _checked_group(self, group: dict) -> dict:
        """The validated, normalised hyperparameters of ``group`` (``self.defaults`` filling in)."""
        def get(key):
            return group.get(key, self.defaults[key])

        missing = [k for k in ("alpha", "b", "c", "D") if get(k) is required]
        if missing:
            raise TypeError(f"MemorySGD needs {', '.join(missing)}: pass {'them' if len(missing) > 1 else 'it'} "
                            f"to MemorySGD or set {'them' if len(missing) > 1 else 'it'} in every param group")
        alpha, b, c, D = _coefficients(get("alpha"), get("b"), get("c"), get("D"))
        out = dict(alpha=alpha, b=b, c=c, D=D, lr=hyperparameter(get("lr"), "lr", nonnegative=True),
                   weight_decay=nonnegative_scalar(get("weight_decay"), "weight_decay"),
                   maximize=boolean(get("maximize"), "maximize"),
                   foreach=boolean(get("foreach"), "foreach", allow_none=True),
                   fused=bool(boolean(get("fused"), "fused", allow_none=True)))
        check_fused_options(out["fused"], out["foreach"], False, "MemorySGD")
        return out

    @torch._disable_dynamo
    def add_param_group(self, param_group) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        values = self._checked_group(param_group)      # raises before anything changes
        check_params(param_group, "MemorySGD")
        super().add_param_group(param_group)
        self.param_groups[-1].update(values)
        self._step_supports_amp_scaling = any(g["fused"] for g in self.param_groups)

    @torch._disable_dynamo
    def load_state_dict(self, state_dict) -> None:
        """torch's ``load_state_dict`` (its load pre-hooks run first and its post-hooks last);
        the loaded groups and state are checked and normalised in between (``__setstate__``),
        before anything changes."""
        check_state_dict_form(self, state_dict)
        super().load_state_dict(state_dict)

    def __setstate__(self, state):
        if "defaults" not in state:
            # Optimizer.load_state_dict: the (pre-hooked, deep-copied) groups and state it is
            # about to install; refused here, before anything changes, or normalised
            check_loaded_state(self, state, _GROUP_KEYS, lambda g: buffer_keys(len(g["b"])))
            for group in state["param_groups"]:
                for key, value in _FLAG_DEFAULTS.items():      # torch's rule: a missing flag is off
                    group.setdefault(key, value)
                group.update(self._checked_group(group))
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("lr", 1.0)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("fused", False)
        self._step_supports_amp_scaling = any(g["fused"] for g in self.param_groups)

    def _init_group(self, group, params, grads, bufs) -> bool:
        """The group's parameters with gradients, their gradients and memory (``bufs``: the M
        buffers of each parameter in turn, created as zeros on first use). Under torch.compile
        Dynamo runs this method eagerly, as for torch's optimizers, so the buffers are inputs of
        the compiled step. Returns whether a parameter is complex."""
        keys = buffer_keys(len(group["b"]))
        has_complex = False
        for p in group["params"]:
            if p.grad is None:
                continue
            reject_sparse(p, "MemorySGD")
            if group["fused"] and not self.state.get(p):
                check_fused_params([p], "MemorySGD")     # torch's rule, before any state is made
            params.append(p)
            grads.append(p.grad)
            state = self.state[p]
            for k in keys:
                if k not in state:
                    state[k] = torch.zeros_like(p, memory_format=torch.preserve_format)
                bufs.append(state[k])
            has_complex |= torch.is_complex(p)
        return has_complex

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
        # set by torch.amp.GradScaler.step on optimizers with fused groups (_step_supports_amp_scaling)
        grad_scale, found_inf = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            flat: list[Tensor] = []
            has_complex = self._init_group(group, params, grads, flat)
            if not params:
                continue
            M = len(group["b"])
            bufs = [tuple(flat[i * M:(i + 1) * M]) for i in range(len(params))]
            fused = group["fused"]
            if not fused and (grad_scale is not None or found_inf is not None):
                if unscale_or_skip(grads, grad_scale, found_inf):
                    continue
            memory_sgd(params, grads, bufs, alpha=group["alpha"], b=group["b"], c=group["c"],
                       D=group["D"], lr=group["lr"], weight_decay=group["weight_decay"],
                       maximize=group["maximize"], foreach=group["foreach"], fused=fused,
                       grad_scale=grad_scale if fused else None, found_inf=found_inf if fused else None,
                       has_complex=has_complex, _checked=True)
            keys = buffer_keys(M)
            for p, buf in zip(params, bufs):
                state = self.state[p]
                for k, u in zip(keys, buf):
                    if state[k] is not u:      # general D on the foreach path makes new ones
                        state[k] = u
        return loss


MemorySGD.__doc__ = r"""Implements a memory-M algorithm in matrix form (docs/math.md §2, P.3) with ``e = 0``.

    $$
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
    $$

    Each parameter gets M buffers ``u^1..u^M``, each created with ``torch.zeros_like(p)`` (so a
    DTensor/FSDP2 parameter gets DTensor memory with its placements) and stored as
    ``state[p]["memory_buffer_1"]`` ... ``state[p]["memory_buffer_M"]``. ``load_state_dict``
    refuses, with a ``ValueError`` and before changing anything, a state from another optimizer
    type, memory or model. Presets map directly, e.g. heavy ball
    ``(alpha, b, c, D) = (a, [beta], [a], [[beta]])``; see ``from_algorithm``.

    The group's ``lr`` (keyword, default 1.0) is a multiplier ``s`` of how the gradient enters
    the state, ``(alpha, c) -> s (alpha, c)``; it scales the effective learning rate
    ``alpha_eff = alpha + b^T (I - D)^{-1} c`` by ``s`` and leaves the memory dynamics ``(b, D)``
    alone. ``torch.optim.lr_scheduler`` schedulers change it like SGD's lr. It may be a 0-d
    tensor (changed in place): read as a float in eager steps, kept a tensor under
    ``torch.compile`` so that a new value does not recompile the step.

    Args:
        params (iterable): parameters or dicts defining parameter groups (per-group ``alpha``,
            ``b``, ``c``, ``D``, ``lr``, ``weight_decay``, ``maximize``, ``foreach`` allowed).
        alpha (float): direct gradient weight. ``alpha``, ``b``, ``c``, ``D`` follow the rules
            of [`memsgd.MemoryAlgorithm`][memsgd.MemoryAlgorithm]: real and finite (no bools, strings or complex).
        b (sequence of M floats): how the memory enters the parameter update.
        c (sequence of M floats): how the gradient enters the memory.
        D (M x M nested sequence): memory transition.
        weight_decay (float, optional): coupled L2: ``weight_decay * theta`` is added to the
            gradient at the parameters, as ``torch.optim.SGD(weight_decay=)`` does and as the
            engine's weight decay means (docs/math.md §9; default: 0).
            ``from_algorithm`` takes the algorithm's own.
        maximize (bool, optional): maximize the objective instead of minimizing (default: False).
        foreach (bool, optional): multi-tensor implementation; ``None`` picks it on CUDA.
        lr (float or Tensor, keyword, optional): the multiplier ``s`` above (>= 0, default: 1.0).
        fused (bool, keyword, optional): each tensor's update in one pass over p, g and the M
            buffers: on CPU memsgd's core, bitwise the same result as the other paths; on CUDA
            and under ``torch.compile`` an inductor-fused kernel. Takes
            ``torch.amp.GradScaler``'s ``grad_scale``/``found_inf``. Not with ``foreach=True``
            (default: None, i.e. False).

    ``alpha``, ``b``, ``c`` and ``D`` may also be given only in the param groups.

    Examples:
        Heavy ball in matrix form follows torch's SGD with momentum (to rounding: the buffers
        hold ``u = -lr v``):

        >>> import torch
        >>> from memsgd.torch import MemorySGD
        >>> a = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
        >>> b = torch.nn.Parameter(a.detach().clone())
        >>> ours = MemorySGD([a], alpha=0.1, b=[0.9], c=[0.1], D=[[0.9]])
        >>> for opt, p in ((ours, a), (torch.optim.SGD([b], lr=0.1, momentum=0.9), b)):
        ...     for _ in range(5):
        ...         opt.zero_grad()
        ...         (p ** 2).sum().backward()
        ...         opt.step()
        >>> torch.allclose(a, b, rtol=1e-14, atol=0)
        True
    """


# On CPU, foreach ops are per-tensor loops; running each tensor's whole update before the next
# (same ops, bitwise the same result) keeps it in cache. Tests set this to False to exercise the
# batched code on CPU.
_CPU_PER_TENSOR = True


def memory_sgd(params: list[Tensor], grads: list[Tensor], memory_buffer_list: list[Optional[Sequence[Tensor]]],
               *, alpha: float, b, c, D, lr=1.0, weight_decay: float = 0.0, maximize: bool = False,
               foreach: Optional[bool] = None, fused: Optional[bool] = None,
               grad_scale: Optional[Tensor] = None, found_inf: Optional[Tensor] = None,
               has_complex: Optional[bool] = None, _checked: bool = False) -> None:
    """Functional MemorySGD update (see [`MemorySGD`][memsgd.torch.MemorySGD]). ``memory_buffer_list[i]`` holds the M
    memory tensors ``(u^1, ..., u^M)`` of ``params[i]`` (each shaped like it), or None: then zeros
    (``u_0 = 0``) are created with ``zeros_like``; the buffers are written back as a tuple. ``lr``
    is a float or a 0-d tensor (kept a tensor under ``torch.compile``). ``fused=True`` runs each
    tensor's update in one pass; ``grad_scale``/``found_inf`` (AMP) are for it only.

    Examples:
        Heavy ball in matrix form (``u <- 0.9 u - 0.1 g``, ``p <- p + 0.9 u - 0.1 g``), one step from
        ``u = 0``:

        >>> import torch
        >>> from memsgd.torch import memory_sgd
        >>> p, g, buffers = torch.tensor([1.0]), torch.tensor([2.0]), [None]
        >>> memory_sgd([p], [g], buffers, alpha=0.1, b=[0.9], c=[0.1], D=[[0.9]])
        >>> p.tolist(), buffers[0][0].tolist()
        ([0.800000011920929], [-0.20000000298023224])
    """
    if not params:
        return
    if not _checked:
        alpha, b, c, D = _coefficients(alpha, b, c, D)
        lr = hyperparameter(lr, "lr", nonnegative=True)
    M = len(b)
    for i, p in enumerate(params):
        if memory_buffer_list[i] is None:
            memory_buffer_list[i] = tuple(torch.zeros_like(p, memory_format=torch.preserve_format)
                                          for _ in range(M))
    (lr,) = eager_values((lr,), capturable=False)
    if fused:
        check_fused_options(fused, foreach, False, "MemorySGD")
        check_fused_params(params, "MemorySGD")
        program = _program(alpha, b, c, D, lr, weight_decay, maximize, eager_scale(grad_scale))
        fused_step(program, [(p, g, *u) for p, g, u in zip(params, grads, memory_buffer_list)], found_inf)
        memory_buffer_list[:] = [tuple(u) for u in memory_buffer_list]
        return
    if grad_scale is not None or found_inf is not None:
        raise ValueError("grad_scale and found_inf are for fused=True (torch.amp.GradScaler unscales "
                         "and checks the gradients itself for the other paths)")
    foreach = resolve_foreach(foreach, params)
    with real_views(params, grads, memory_buffer_list, has_complex) as (P, G, bufs):
        G = effective_grads(P, G, weight_decay, maximize, foreach)
        U = [list(u) for u in bufs]
        if foreach:
            for (device, _), idx in group_by_device_and_dtype(P).items():
                if device.type == "cpu" and _CPU_PER_TENSOR:
                    for i in idx:
                        _update([P[i]], [G[i]], [U[i]], alpha, b, c, D, lr, False)
                    continue
                _update([P[i] for i in idx], [G[i] for i in idx], [U[i] for i in idx],
                        alpha, b, c, D, lr, True)
        else:
            for i in range(len(P)):
                _update([P[i]], [G[i]], [U[i]], alpha, b, c, D, lr, False)
        for i in range(len(P)):
            if any(x is not y for x, y in zip(U[i], bufs[i])):
                bufs[i] = tuple(U[i])


def _program(alpha, b, c, D, lr, weight_decay, maximize, grad_scale) -> Program:
    """The fused step: ``_update``'s operations in its order, on registers p = 0, g = 1 and
    u^j = 2 + j (floats: the same bits; a 0-d tensor lr under torch.compile)."""
    M = len(b)
    prog = Program(2 + M)
    g = prog.gradient(0, 1, weight_decay=weight_decay, maximize=maximize, grad_scale=grad_scale)
    u = [2 + j for j in range(M)]

    def add_grad(x, coefficient):                               # x -= lr * coefficient * g
        prog.fma(x, g, -(lr * coefficient) if isinstance(lr, Tensor) else -lr * coefficient, x)

    for j in range(M):
        if b[j] != 0:
            prog.fma(0, u[j], b[j], 0)
    if alpha != 0:
        add_grad(0, alpha)
    upper = all(D[i][j] == 0 for i in range(M) for j in range(i))
    lower = all(D[i][j] == 0 for i in range(M) for j in range(i + 1, M))
    if upper or lower:
        for i in (range(M) if upper else reversed(range(M))):
            if D[i][i] != 1:
                prog.mul(u[i], u[i], D[i][i])
            for j in range(M):
                if j != i and D[i][j] != 0:
                    prog.fma(u[i], u[j], D[i][j], u[i])
    else:
        rows = []
        for i in range(M):
            row = prog.temporary()
            prog.mul(row, u[0], D[i][0])
            for j in range(1, M):
                if D[i][j] != 0:
                    prog.fma(row, u[j], D[i][j], row)
            rows.append(row)
        for i in range(M):
            prog.mul(u[i], rows[i], 1.0)
    for i in range(M):
        if c[i] != 0:
            add_grad(u[i], c[i])
    return prog


def _update(P, G, U, alpha, b, c, D, lr, foreach):
    """One step on a list of tensors; ``U[p][j]`` is memory vector j of tensor p (replaced in
    ``U`` where D is not triangular). Both paths run the same per-tensor ops in the same order.
    ``lr`` may be a 0-d tensor (compiled step): then the gradient terms are tensor products."""
    M = len(b)

    if foreach:
        add_, mul_, mul = torch._foreach_add_, torch._foreach_mul_, torch._foreach_mul
        sub_ = torch._foreach_sub_
    else:
        def add_(xs, ys, alpha=1.0):
            for x, y in zip(xs, ys):
                x.add_(y, alpha=alpha)

        def sub_(xs, ys):
            for x, y in zip(xs, ys):
                x.sub_(y)

        def mul_(xs, s):
            for x in xs:
                x.mul_(s)

        def mul(xs, s):
            return [torch.mul(x, s) for x in xs]

    def add_grad_(xs, coefficient):                              # xs -= lr * coefficient * g
        if isinstance(lr, Tensor):
            sub_(xs, mul(G, lr * coefficient))
        else:
            add_(xs, G, alpha=-lr * coefficient)

    u = [[buf[j] for buf in U] for j in range(M)]            # u[j]: memory vector j of each tensor
    for j in range(M):                                          # theta += sum_j b_j u^j
        if b[j] != 0:
            add_(P, u[j], alpha=b[j])
    if alpha != 0:                                              # theta -= s alpha g
        add_grad_(P, alpha)
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
        # general D: every new u^i from the old ones, then swapped in (new tensors, *_like types)
        new = []
        for i in range(M):
            row = mul(u[0], D[i][0])
            for j in range(1, M):
                if D[i][j] != 0:
                    add_(row, u[j], alpha=D[i][j])
            new.append(row)
        if is_compiling():
            # a compiled step keeps its state tensors (its inputs): copy (the compiler fuses it)
            for i in range(M):
                for x, y in zip(u[i], new[i]):
                    x.copy_(y)
        else:
            u = new
            for k, bufs in enumerate(U):
                bufs[:] = [u[i][k] for i in range(M)]
    for i in range(M):                                          # u^i -= s c_i g
        if c[i] != 0:
            add_grad_(u[i], c[i])
