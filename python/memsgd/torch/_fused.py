"""The fused step (``fused=True``): each tensor's whole update in one pass over its arrays.

An update is written once as a ``Program``, a short list of elementwise operations on
registers (the tensor's arrays: parameter, gradient, buffers; and temporaries), each exactly one
of torch's per-tensor operations: ``x * s`` (``mul_``), ``c + s * x`` (``add_(x, alpha=s)``,
one rounding where torch's kernel has a fused multiply-add) and ``x / s``. The programs of
``._am1`` and ``._memory_sgd`` spell out the operations of their per-tensor (foreach)
paths in the same order, so the fused step gives the same bits where the arithmetic is the same.

Where it runs:

- CPU tensors: memsgd's compiled core runs the program block by block (512 elements; every
  operation on a block before the next), so p, g and each buffer cross main memory once, as in
  ``torch.optim.SGD(fused=True)`` (``_core.elementwise_step``: the active SIMD path, torch's
  thread count). No public torch kernel computes AM1's update in one pass; ``torch._fused_sgd_``
  would need a rescaled buffer and change the state's meaning.
- Other devices (CUDA), and any step traced by ``torch.compile``: the same program as torch
  operations on 0-d hyperparameter tensors, compiled by inductor, which fuses each tensor's
  operations into one kernel (a new hyperparameter value does not recompile).
- CPU tensors the core does not take (not dense, laid out unlike their gradient, a subclass
  such as DTensor, float16/bfloat16): the program's operations one at a time, eagerly.

AMP (``torch.amp.GradScaler``): as torch's fused optimizers, the step reads ``grad_scale`` and
``found_inf`` set on the optimizer; the gradients are divided by ``grad_scale`` in place (their
unscaled values stay in ``p.grad``), and a step with ``found_inf != 0`` changes nothing.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor

MUL, FMA, DIV = 0, 1, 2
_SUPPORTED = (torch.float32, torch.float64)     # what the core runs; other dtypes: compiled
_DEVICES = ("cpu", "cuda")


class Program:
    """Elementwise operations on registers ``0 .. streams-1`` (a tensor's arrays) and
    temporaries after them. Each operation's scalar is a float (rounded to the element type by
    the kernel, as torch rounds a Python scalar) or, in a compiled step, a 0-d tensor."""

    def __init__(self, streams: int):
        self.streams = streams
        self.registers = streams
        self.ops: list[tuple[int, int, int, int]] = []
        self.scalars: list = []

    def temporary(self) -> int:
        self.registers += 1
        return self.registers - 1

    def _op(self, kind: int, dst: int, a: int, c: int, s) -> None:
        self.ops.append((kind, dst, a, c))
        self.scalars.append(s)

    def mul(self, dst: int, a: int, s) -> None:
        """``dst = a * s`` (torch ``mul``)."""
        self._op(MUL, dst, a, 0, s)

    def fma(self, dst: int, a: int, s, c: int) -> None:
        """``dst = c + s * a`` (torch ``add(c, a, alpha=s)``; ``s = 1``: ``c + a``, ``s = -1``: ``c - a``)."""
        self._op(FMA, dst, a, c, s)

    def div(self, dst: int, a: int, s) -> None:
        """``dst = a / s``."""
        self._op(DIV, dst, a, 0, s)

    def gradient(self, p: int, g: int, *, weight_decay: float, maximize: bool, grad_scale) -> int:
        """The register holding ``+-g/scale + weight_decay * p``, in torch's order (unscale in
        place, negate, add the decay: the operations of ``._common.effective_grads``)."""
        if grad_scale is not None:
            self.div(g, g, grad_scale)
        if not maximize and weight_decay == 0:
            return g
        e = self.temporary()
        if maximize:
            self.mul(e, g, -1.0)
            if weight_decay != 0:
                self.fma(e, p, weight_decay, e)
        else:
            self.fma(e, p, weight_decay, g)
        return e

    def key(self) -> tuple:
        """The program's structure without its scalars (what a compiled step specialises on)."""
        return (self.streams, self.registers, tuple(self.ops))


# -- checks -----------------------------------------------------------------------------------

def check_fused_options(fused, foreach, capturable: bool, optimizer: str) -> None:
    if fused and foreach:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    if fused and capturable:
        raise ValueError(f"{optimizer}: fused=True cannot be combined with capturable=True (the "
                         f"capturable foreach path is the one to capture in a CUDA graph)")


def check_fused_params(params: Sequence[Tensor], optimizer: str) -> None:
    """torch's rule for ``fused=True`` (checked at the step, as torch does, so that a model built
    on the meta device can be materialised first): floating-point (here also complex) tensors
    on CPU or CUDA."""
    for p in params:
        if p.device.type not in _DEVICES or not (p.is_floating_point() or p.is_complex()):
            raise RuntimeError(
                f"`fused=True` requires all the params to be floating point Tensors of supported "
                f"devices: {list(_DEVICES)} but {p.dtype} and {p.device.type} ({optimizer}; complex "
                f"tensors are allowed too)")


def _dense(t: Tensor) -> bool:
    """Non-overlapping and dense: its elements fill a span of memory (any dimension order)."""
    expected = 1
    for size, stride in sorted(zip(t.shape, t.stride()), key=lambda x: x[1]):
        if size != 1:
            if stride != expected:
                return False
            expected *= size
    return True


_PLAIN = (Tensor, torch.nn.Parameter)


def _plain_cpu(arrays: Sequence[Tensor]) -> bool:
    """Whether the core may run on these arrays through their data pointers: plain CPU tensors
    (no subclass such as DTensor) of one float dtype, laid out alike and densely."""
    p = arrays[0]
    dtype = p.dtype
    if not p.is_cpu or dtype not in _SUPPORTED or type(p) not in _PLAIN:
        return False
    n = p.numel()
    if all(type(a) in _PLAIN and a.dtype == dtype and a.is_cpu and a.is_contiguous() and a.numel() == n
           for a in arrays):
        return True                                   # the common case, without reading strides
    stride = p.stride()
    return all(type(a) in _PLAIN and a.is_cpu and a.dtype == dtype and a.shape == p.shape
               and a.stride() == stride for a in arrays) and _dense(p)


def real_views(arrays: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """Complex tensors as their real views (the update's coefficients are real)."""
    return tuple(torch.view_as_real(a) if a.is_complex() else a for a in arrays)


# -- running a program ------------------------------------------------------------------------

def run(program: Program, tensors: Sequence[Sequence[Tensor]]) -> list[int]:
    """Run ``program`` (float scalars) on each tuple of arrays in ``tensors`` (register order)
    where the core can (plain dense CPU tensors of one float dtype); returns the indices of the
    tuples it left (another device, a subclass, another layout) for ``run_compiled``."""
    from .. import _core

    left, done = [], {torch.float32: ([], []), torch.float64: ([], [])}
    for i, arrays in enumerate(tensors):
        if arrays[0].is_complex():
            arrays = real_views(arrays)
        if arrays[0].numel() == 0:
            continue
        if not _plain_cpu(arrays):
            left.append(i)
            continue
        pointers, sizes = done[arrays[0].dtype]
        pointers.extend(a.data_ptr() for a in arrays)
        sizes.append(arrays[0].numel())
    codes = [x for op in program.ops for x in op]
    scalars = [float(s) for s in program.scalars]
    threads = torch.get_num_threads()
    for dtype, (pointers, sizes) in done.items():
        if sizes:
            _core.elementwise_step(codes, scalars, program.registers, pointers, sizes,
                                   dtype == torch.float64, threads=threads)
    # the arrays were written through their pointers: tell autograd, as torch's in-place ops do
    written = sorted({dst for _, dst, _, _ in program.ops if dst < program.streams})
    skipped = set(left)
    _increment_versions([arrays[r] for i, arrays in enumerate(tensors) if i not in skipped for r in written])
    return left


def _increment_versions(tensors: list[Tensor]) -> None:
    try:
        torch.autograd.graph.increment_version(tensors)      # one call for all (torch >= 2.4)
    except TypeError:
        for t in tensors:
            torch.autograd.graph.increment_version(t)


def interpret(program_key: tuple, scalars: list, tensors: list[list[Tensor]],
              found_inf: Optional[Tensor]) -> None:
    """The program as torch operations. With float scalars these are the per-tensor path's own
    operations (``add(c, a, alpha=s)``, ``mul``, ``div``: the same bits, one operation at a
    time), for tensors the core cannot take. With 0-d tensor scalars (a compiled step: a new
    value is new data, not a new graph) they are binary operations that inductor fuses into
    one kernel per tensor. Every array the program writes is written once, at the end, and
    kept as it was where ``found_inf != 0``."""
    _, _, ops = program_key
    for arrays in tensors:
        arrays = real_views(arrays)
        regs = dict(enumerate(arrays))
        for (kind, dst, a, c), s in zip(ops, scalars):
            if kind == MUL:
                regs[dst] = torch.mul(regs[a], s)
            elif kind == DIV:
                regs[dst] = torch.div(regs[a], s)
            elif isinstance(s, Tensor):
                regs[dst] = regs[c] + regs[a] * s
            else:
                regs[dst] = torch.add(regs[c], regs[a], alpha=s)
        for r, a in enumerate(arrays):
            if regs[r] is not a:
                a.copy_(regs[r] if found_inf is None else torch.where(found_inf != 0, a, regs[r]))


_compiled = None


def run_compiled(program: Program, tensors: Sequence[Sequence[Tensor]], found_inf: Optional[Tensor] = None) -> None:
    """``interpret`` compiled by inductor (traced inline when the caller is being compiled).
    Float scalars become 0-d float64 CPU tensors, so that a new learning rate is not a new graph."""
    global _compiled
    scalars = [s if isinstance(s, Tensor) else torch.tensor(s, dtype=torch.float64) for s in program.scalars]
    tensors = [list(t) for t in tensors]
    if torch.compiler.is_compiling():
        interpret(program.key(), scalars, tensors, found_inf)
        return
    if _compiled is None:
        _compiled = torch.compile(interpret, backend=COMPILE_BACKEND)
    _compiled(program.key(), scalars, tensors, found_inf)


def step(program: Program, tensors: Sequence[Sequence[Tensor]], found_inf: Optional[Tensor] = None) -> None:
    """One fused step: the core where it can; other CPU tensors (a layout, subclass or dtype it
    does not take) op by op, with the same operations; other devices through the compiled
    program; everything through the program's torch operations when the step is being traced.
    ``found_inf`` (AMP): a CPU value is read here and skips the step; a device value masks the
    compiled program's writes, without a host synchronisation."""
    if torch.compiler.is_compiling():
        run_compiled(program, tensors, found_inf)
        return
    if found_inf is not None and found_inf.device.type == "cpu":
        if found_inf.item() != 0:
            return
        found_inf = None
    if any(isinstance(s, Tensor) for s in program.scalars):
        left = list(range(len(tensors)))
    else:
        left = run(program, tensors)
    on_cpu = [tensors[i] for i in left if tensors[i][0].device.type == "cpu"]
    elsewhere = [tensors[i] for i in left if tensors[i][0].device.type != "cpu"]
    if on_cpu and not (found_inf is not None and found_inf.item() != 0):
        scalars = [s.item() if isinstance(s, Tensor) else s for s in program.scalars]
        interpret(program.key(), scalars, [list(t) for t in on_cpu], None)
    if elsewhere:
        if _inductor_can_compile():
            run_compiled(program, elsewhere, found_inf)
        else:        # no Triton for inductor's GPU kernels: the same operations one at a time
            interpret(program.key(), list(program.scalars), [list(t) for t in elsewhere], found_inf)


def _inductor_can_compile() -> bool:
    try:
        from torch.utils._triton import has_triton
    except ImportError:
        return False
    return COMPILE_BACKEND != "inductor" or has_triton()


# Tests run the compiled program with a cheaper backend.
COMPILE_BACKEND = "inductor"
