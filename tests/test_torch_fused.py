"""fused=True (memsgd.torch._fused): the core's one-pass elementwise program against the
per-tensor path (bitwise: the same operations) and against the plain-numpy matrix form; every
layout, dtype and thread count; AMP's grad_scale; the compiled program that CUDA and traced
steps run (here on CPU)."""
import copy

import numpy as np
import pytest

from ._extras import need

torch = need("torch")

import memsgd  # noqa: E402
from memsgd import _core, schedules  # noqa: E402
from memsgd.torch import AM1, MemorySGD, _am1, _fused, _memory_sgd  # noqa: E402

from .reference import random_quadratic, run_matrix_form  # noqa: E402

MAKERS = {
    "am1": lambda ps, **k: AM1(ps, lr=0.01, momentum=0.9, kick=0.05, **k),
    "am1_kick0": lambda ps, **k: AM1(ps, lr=0.01, momentum=0.9, kick=0.0, **k),
    "am1_wd_maximize": lambda ps, **k: AM1(ps, lr=0.01, momentum=0.9, kick=0.05, weight_decay=0.1, maximize=True, **k),
    "am1_schedule": lambda ps, **k: AM1(ps, schedule=schedules.am1_power_law(0.3, 0.5), **k),
    "am1_schedule_weight_decay": lambda ps, **k: AM1(ps, schedule=schedules.am1_power_law(
        0.3, 0.5, weight_decay=0.1), **k),
    "am1_schedule_per_step_weight_decay": lambda ps, **k: AM1(ps, schedule=memsgd.Schedule.from_arrays(
        np.full(50, 0.07), np.full((50, 1), 0.9), np.full((50, 1), 0.02), np.full((50, 1, 1), 0.9),
        weight_decay=np.where(np.arange(50) % 3 == 0, 0.0, 0.1)), **k),
    "msgd_upper": lambda ps, **k: MemorySGD(ps, 0.01, [0.9, 0.1], [0.01, 0.02], [[0.9, 0.05], [0.0, 0.5]],
                                            weight_decay=0.01, **k),
    "msgd_lower": lambda ps, **k: MemorySGD(ps, 0.01, [0.9, 0.1], [0.01, 0.02], [[0.7, 0.0], [0.2, 0.6]], **k),
    "msgd_general_M3": lambda ps, **k: MemorySGD(ps, 0.01, [0.5, -0.3, 0.2], [0.01, 0.0, 0.02],
                                                 [[0.6, 0.2, 0.0], [-0.1, 0.5, 0.1], [0.0, 0.3, 0.4]],
                                                 maximize=True, **k),
    "msgd_memory0": lambda ps, **k: MemorySGD(ps, 0.05, [], [], [], **k),
}


def run(make, params, steps=6, seed=0, **kwargs):
    """Steps of ``make`` on copies of ``params`` with seeded random gradients; the final
    parameters and state."""
    ps = [p.detach().clone().requires_grad_() for p in params]
    opt = make(ps, **kwargs)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        opt.step()
    return ps, opt


def assert_same_run(a, b):
    (pa, oa), (pb, ob) = a, b
    for p, q in zip(pa, pb):
        assert torch.equal(p, q)
        for k, v in oa.state[p].items():
            if torch.is_tensor(v):
                assert torch.equal(v, ob.state[q][k]), k


def big_params(dtype):
    """Sizes around the core's block (512) and chunk (32768) edges, so that tails, several
    chunks per tensor and both threads are exercised."""
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, generator=g, dtype=dtype) for n in (1, 511, 513, 32768, 32769, 100003)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(MAKERS))
def test_fused_is_bitwise_the_per_tensor_path(name, dtype):
    params = big_params(dtype)
    assert_same_run(run(MAKERS[name], params, fused=True), run(MAKERS[name], params, foreach=False))


@pytest.mark.parametrize("name", ["am1", "msgd_general_M3"])
def test_fused_bits_do_not_depend_on_the_thread_count(name):
    params = big_params(torch.float32)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(MAKERS[name], params, fused=True)
        torch.set_num_threads(max(2, old))
        many = run(MAKERS[name], params, fused=True)
    finally:
        torch.set_num_threads(old)
    assert_same_run(one, many)


def test_fused_matches_the_matrix_form():
    """Against tests/reference.run_matrix_form (numpy, independent of memsgd): AM1 with and
    without a schedule and a memory-2 MemorySGD, float64, 1e-12."""
    H, ws = random_quadratic(7, seed=5, shift=0.05)
    sched = schedules.am1_power_law(0.5, 0.5, gamma=1.0, t0=5.0)
    algo = memsgd.MemoryAlgorithm(0.1, [0.5, -0.3], [0.2, 0.1], [[0.6, 0.2], [-0.1, 0.5]])
    cases = [(lambda ps: AM1(ps, lr=0.05, momentum=0.9, kick=0.4, fused=True),
              lambda t: memsgd.am1(0.05, 0.9, 0.4).parameters()),
             (lambda ps: AM1(ps, schedule=sched, fused=True), lambda t: sched.at(t).parameters()),
             (lambda ps: MemorySGD.from_algorithm(ps, algo, fused=True), lambda t: algo.parameters())]
    for make, params_at in cases:
        p = torch.nn.Parameter(torch.zeros(7, dtype=torch.float64))
        opt = make([p])
        Ht, wt = torch.tensor(H), torch.tensor(ws)
        out = [p.detach().clone()]
        for _ in range(40):
            p.grad = Ht @ (p.detach() - wt)
            opt.step()
            out.append(p.detach().clone())
        np.testing.assert_allclose(torch.stack(out).numpy(), run_matrix_form(params_at, H, ws, 40), rtol=0, atol=1e-12)


@pytest.mark.parametrize("layout, core", [("transposed", True), ("channels_last", True), ("complex64", True),
                                          ("strided_view", False), ("grad_strides_differ", False),
                                          ("float16", False), ("bfloat16", False)])
def test_every_layout_gives_the_same_bits(layout, core, monkeypatch):
    """Dense tensors in any dimension order (gradient laid out alike) go to the core; the rest
    (a strided view, a gradient laid out unlike its parameter, half precision) run the same
    operations one at a time."""
    by_op = []
    monkeypatch.setattr(_fused, "interpret", lambda *a, _f=_fused.interpret: (by_op.append(1), _f(*a))[1])
    g = torch.Generator().manual_seed(2)
    base = torch.randn(6, 4, 3, 5, generator=g)
    p = {"transposed": base.transpose(0, 3), "channels_last": base.contiguous(memory_format=torch.channels_last),
         "strided_view": base, "grad_strides_differ": base, "float16": base.half(),
         "bfloat16": base.bfloat16(), "complex64": torch.view_as_complex(base[..., :2].contiguous())}[layout]
    results = []
    for kwargs in (dict(fused=True), dict(foreach=False)):
        if layout == "strided_view":               # a parameter that is itself a strided view
            q = torch.zeros(6, 8, 3, 5)[:, ::2]
            q.copy_(p)
            q = q.detach().requires_grad_()
        else:
            q = p.detach().clone(memory_format=torch.preserve_format).requires_grad_()
        opt = AM1([q], lr=0.01, momentum=0.9, kick=0.05, **kwargs)
        gg = torch.Generator().manual_seed(3)
        for _ in range(4):
            grad = torch.randn(q.shape, generator=gg).to(q.dtype)
            if layout == "grad_strides_differ":
                q.grad = grad.contiguous(memory_format=torch.channels_last)
            else:
                q.grad = torch.empty_like(q).copy_(grad)      # laid out like q (autograd's contract)
            opt.step()
        results.append((q.detach().clone(), opt.state[q]["momentum_buffer"].clone()))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    assert (not by_op) == core


def test_fused_step_bumps_autograd_versions():
    """The core writes through data pointers: the step tells autograd, as in-place ops do, so a
    graph that saved the parameter refuses to backpropagate through the stale value."""
    p = torch.nn.Parameter(torch.ones(4))
    opt = AM1([p], lr=0.1, momentum=0.9, kick=0.1, fused=True)
    y = (p * p).sum()                       # saves p for backward
    p.grad = torch.ones(4)
    v0 = p._version
    opt.step()
    assert p._version > v0 and opt.state[p]["momentum_buffer"]._version > 0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_grad_scale_divides_the_gradients_in_place():
    """AMP's convention: g / grad_scale written back to p.grad, then the update; bitwise the
    per-tensor path on the divided gradient."""
    g = torch.Generator().manual_seed(4)
    p0 = torch.randn(1000, generator=g)
    grad = torch.randn(1000, generator=g) * 3.0
    scale = torch.tensor(3.0)                       # not a power of 2: the division rounds
    p = p0.clone().requires_grad_()
    q = p0.clone().requires_grad_()
    fused = AM1([p], lr=0.01, momentum=0.9, kick=0.05, fused=True)
    plain = AM1([q], lr=0.01, momentum=0.9, kick=0.05)
    p.grad, q.grad = grad.clone(), grad / scale
    fused.grad_scale, fused.found_inf = scale, torch.zeros(())
    fused.step()
    plain.step()
    assert torch.equal(p.grad, q.grad) and torch.equal(p, q)


def test_malformed_programs_are_refused_by_the_core():
    x = torch.zeros(4)
    ptr = [x.data_ptr()]
    with pytest.raises(ValueError, match="register outside"):
        _core.elementwise_step([0, 0, 3, 0], [1.0], 1, ptr, [4], False, threads=1)
    with pytest.raises(ValueError, match="unknown kind"):
        _core.elementwise_step([7, 0, 0, 0], [1.0], 1, ptr, [4], False, threads=1)
    with pytest.raises(ValueError, match="4 entries per scalar"):
        _core.elementwise_step([0, 0, 0], [1.0], 1, ptr, [4], False, threads=1)
    with pytest.raises(ValueError, match="null array pointer"):
        _core.elementwise_step([0, 0, 0, 0], [1.0], 1, [0], [4], False, threads=1)
    with pytest.raises(ValueError, match="same number of arrays per tensor"):
        _core.elementwise_step([0, 0, 0, 0], [1.0], 1, ptr * 3, [4, 4], False, threads=1)


def test_program_operations_are_torch_operations():
    """Each kind against torch's own op on the same data (float32): mul, add with alpha (FMA
    where torch's kernel has one), div; temporaries and in-place registers."""
    g = torch.Generator().manual_seed(5)
    a, c = torch.randn(1001, generator=g), torch.randn(1001, generator=g)
    out = torch.empty(1001)
    prog = _fused.Program(3)
    t = prog.temporary()
    prog.mul(t, 0, 0.7)                 # t = a * 0.7
    prog.fma(t, 1, -0.3, t)             # t = t + (-0.3) c
    prog.div(2, t, 1.7)                 # out = t / 1.7
    prog.fma(0, 1, 0.25, 0)             # a += 0.25 c (in place)
    a0 = a.clone()
    assert _fused.run(prog, [(a, c, out)]) == []
    expect = torch.div(torch.add(torch.mul(a0, 0.7), c, alpha=-0.3), 1.7)
    assert torch.equal(out, expect) and torch.equal(a, torch.add(a0, c, alpha=0.25))


# -- the compiled program (CUDA's fused path and traced steps), on CPU -----------------------

@pytest.fixture
def compiled_backend(monkeypatch):
    def use(backend):
        monkeypatch.setattr(_fused, "COMPILE_BACKEND", backend)
        monkeypatch.setattr(_fused, "_compiled", None)
        torch._dynamo.reset()
    yield use
    torch._dynamo.reset()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["am1", "am1_schedule", "msgd_general_M3"])
def test_compiled_program_matches_the_core(name, compiled_backend):
    """run_compiled (what a CUDA tensor gets) against the core on the same program: the same
    values to rounding (the compiled form need not round like torch's per-op kernels), a
    found_inf tensor that masks every write, and no recompilation for a new lr."""
    compiled_backend("aot_eager")
    from torch._dynamo.utils import counters
    counters.clear()
    g = torch.Generator().manual_seed(6)
    arrays = [torch.randn(257, generator=g, dtype=torch.float64) for _ in range(2 + 3)]
    if name.startswith("am1"):
        prog_of = [_am1._program(lr, 0.9, 0.05, 0.0, False, name == "am1_schedule", None) for lr in (0.01, 0.02)]
        arrays = arrays[:3]
    else:
        prog_of = [_memory_sgd._program(0.01, [0.5, -0.3, 0.2], [0.01, 0.0, 0.02],
                                        [[0.6, 0.2, 0.0], [-0.1, 0.5, 0.1], [0.0, 0.3, 0.4]], lr, 0.0, True, None)
                   for lr in (1.0, 0.5)]
    core = [a.clone() for a in arrays]
    compiled = [a.clone() for a in arrays]
    for prog in prog_of:
        _fused.run(prog, [core])
        _fused.run_compiled(prog, [compiled])
    for x, y in zip(core, compiled):
        torch.testing.assert_close(x, y, rtol=1e-14, atol=1e-14)
    assert counters["stats"]["unique_graphs"] == 1            # the new lr was new data
    frozen = [a.clone() for a in compiled]
    _fused.run_compiled(prog_of[0], [compiled], found_inf=torch.ones(()))
    assert all(torch.equal(x, y) for x, y in zip(compiled, frozen))


@pytest.mark.slow
def test_compiled_program_under_inductor(compiled_backend):
    """The same with inductor, which generates the fused kernel (C++ on CPU, Triton on CUDA)."""
    compiled_backend("inductor")
    g = torch.Generator().manual_seed(7)
    arrays = [torch.randn(1000, generator=g) for _ in range(3)]
    core, compiled = [a.clone() for a in arrays], [a.clone() for a in arrays]
    prog = _am1._program(0.01, 0.9, 0.05, 0.1, True, False, 2.0)
    _fused.run(prog, [core])
    _fused.run_compiled(prog, [compiled])
    for x, y in zip(core, compiled):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


def test_fused_under_torch_compile_is_the_compiled_program(compiled_backend):
    """torch.compile(opt.step) with fused=True traces the program's torch operations (the core
    cannot be traced): same iterates as eager to rounding, one graph."""
    compiled_backend("aot_eager")
    from torch._dynamo.utils import counters
    counters.clear()
    params = big_params(torch.float64)[:3]
    eager_ps, _ = run(MAKERS["msgd_upper"], params, fused=True)
    ps = [p.detach().clone().requires_grad_() for p in params]
    opt = MAKERS["msgd_upper"](ps, fused=True, lr=torch.tensor(1.0, dtype=torch.float64))
    step = torch.compile(opt.step, backend="aot_eager")
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        step()
    for p, q in zip(ps, eager_ps):
        torch.testing.assert_close(p, q, rtol=1e-13, atol=1e-14)
    assert counters["stats"]["unique_graphs"] == 1


def test_copies_keep_fused():
    p = torch.nn.Parameter(torch.ones(3))
    for make in (MAKERS["am1"], MAKERS["msgd_upper"]):
        opt = make([p], fused=True)
        assert copy.deepcopy(opt).param_groups[0]["fused"] is True
        assert copy.deepcopy(opt)._step_supports_amp_scaling is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(MAKERS))
def test_cuda_fused_matches_cpu_per_tensor(name):
    params = big_params(torch.float64)
    cpu_ps, _ = run(MAKERS[name], params, foreach=False)
    ps = [p.detach().cuda().requires_grad_() for p in params]
    opt = MAKERS[name](ps, fused=True)
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype).cuda()
        opt.step()
    for p, q in zip(ps, cpu_ps):
        torch.testing.assert_close(p.cpu(), q, rtol=1e-12, atol=1e-12)
