"""memsgd.torch, modern semantics: tensor hyperparameters, torch.compile without recompiles,
DTensor state, the capturable (CUDA-graph-safe) path."""
import copy

import numpy as np
import pytest

from ._extras import need

torch = need("torch")

import memsgd  # noqa: E402
from memsgd import schedules  # noqa: E402
from memsgd.torch import AM1, MemorySGD  # noqa: E402

from .reference import random_quadratic, run_am1_velocity_form, run_matrix_form  # noqa: E402

D_DIM = 5
STEPS = 20


@pytest.fixture(scope="module")
def quadratic():
    return random_quadratic(D_DIM, seed=11, shift=0.1)


def iterate(opt_factory, H, w_star, steps=STEPS, step_fn=None, after_step=None):
    """Iterates of an optimizer on L(w) = 1/2 (w - w*)^T H (w - w*) from w = 0 (float64)."""
    p = torch.nn.Parameter(torch.zeros(D_DIM, dtype=torch.float64))
    opt = opt_factory([p])
    Ht, wt = torch.tensor(H), torch.tensor(w_star)
    step = step_fn(opt) if step_fn is not None else opt.step
    out = [p.detach().clone()]
    for t in range(steps):
        p.grad = Ht @ (p.detach() - wt)
        step()
        if after_step is not None:
            after_step(opt, t)
        out.append(p.detach().clone())
    return torch.stack(out).numpy()


def lr_of(t):
    return 0.05 + 0.03 * np.cos(t)


def kick_of(t):
    return 0.2 + 0.1 * np.sin(t)


def set_tensors(opt, t):
    """A hand-made schedule: step t+1 uses lr_of(t+1), kick_of(t+1) (written in place)."""
    opt.param_groups[0]["lr"].fill_(lr_of(t + 1))
    opt.param_groups[0]["kick"].fill_(kick_of(t + 1))


def reference_lr_schedule(H, ws):
    """AM1 with per-step lr_t, kick_t applied as torch's lr_scheduler does (v kept)."""
    return run_am1_velocity_form(lr_of, lambda t: 0.9, kick_of, H, ws, STEPS)


# -- tensor hyperparameters, eagerly -----------------------------------------------------

def test_tensor_hyperparameters_follow_in_place_changes(quadratic):
    H, ws = quadratic
    ref = reference_lr_schedule(H, ws)
    got = iterate(lambda ps: AM1(ps, lr=torch.tensor(lr_of(0), dtype=torch.float64),
                                 momentum=torch.tensor(0.9, dtype=torch.float64),
                                 kick=torch.tensor([kick_of(0)], dtype=torch.float64)),
                  H, ws, after_step=set_tensors)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("capturable", [False, True])
def test_tensor_hyperparameters_match_floats(quadratic, capturable, monkeypatch):
    """Eager: bitwise the float path. capturable=True: the tensor path, to rounding (1e-12)."""
    H, ws = quadratic
    floats = iterate(lambda ps: AM1(ps, lr=0.05, momentum=0.9, kick=0.3), H, ws)
    tensors = iterate(lambda ps: AM1(ps, lr=torch.tensor(0.05, dtype=torch.float64),
                                     momentum=torch.tensor(0.9, dtype=torch.float64),
                                     kick=torch.tensor(0.3, dtype=torch.float64), capturable=capturable), H, ws)
    if capturable:
        np.testing.assert_allclose(tensors, floats, rtol=0, atol=1e-12)
    else:
        np.testing.assert_array_equal(tensors, floats)


def test_torch_lr_scheduler_updates_tensor_lr_in_place():
    p = torch.nn.Parameter(torch.zeros(D_DIM, dtype=torch.float64))
    lr = torch.tensor(0.1, dtype=torch.float64)
    opt = AM1([p], lr=lr, momentum=0.9, kick=0.1)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    for _ in range(3):
        p.grad = torch.ones(D_DIM, dtype=torch.float64)
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(0.1 * 0.5 ** 3, rel=1e-15)


def test_capturable_step_never_reads_hyperparameters_on_the_host(monkeypatch):
    def no_item(self):
        raise AssertionError("a capturable step read a tensor on the host (.item())")

    for make in (lambda ps: AM1(ps, lr=torch.tensor(0.05, dtype=torch.float64), momentum=torch.tensor(0.9),
                                kick=torch.tensor(0.3), capturable=True, foreach=False),
                 lambda ps: AM1(ps, lr=torch.tensor(0.05, dtype=torch.float64), momentum=0.9,
                                kick=torch.tensor(0.3), capturable=True, foreach=True)):
        p = torch.nn.Parameter(torch.zeros(D_DIM, dtype=torch.float64))
        opt = make([p])
        monkeypatch.setattr(torch.Tensor, "item", no_item)
        for _ in range(3):
            p.grad = torch.ones(D_DIM, dtype=torch.float64)
            opt.step()
        monkeypatch.undo()


@pytest.mark.parametrize("batched_on_cpu", [False, True])
def test_tensor_path_foreach_and_single_tensor_agree(batched_on_cpu, monkeypatch):
    """The capturable (tensor) path: foreach on CPU runs the per-tensor ops (bitwise equal); the
    multi-tensor device code (mul then add instead of one addcmul) agrees to rounding."""
    from memsgd.torch import _am1
    monkeypatch.setattr(_am1, "_CPU_PER_TENSOR", not batched_on_cpu)
    shapes = [(3, 4), (5,), (2, 2, 2)]
    runs = []
    for foreach in (False, True):
        ps = [torch.nn.Parameter(torch.ones(s, dtype=torch.float64)) for s in shapes]
        opt = AM1(ps, lr=torch.tensor(0.1, dtype=torch.float64), momentum=torch.tensor(0.8, dtype=torch.float64),
                  kick=torch.tensor(0.2, dtype=torch.float64), weight_decay=0.01, capturable=True, foreach=foreach)
        g = torch.Generator().manual_seed(1)
        for _ in range(4):
            for p in ps:
                p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64)
            opt.step()
        runs.append([p.detach().clone() for p in ps])
    for a, b in zip(*runs):
        if batched_on_cpu:
            torch.testing.assert_close(a, b, rtol=0, atol=1e-14)
        else:
            assert torch.equal(a, b)


@pytest.mark.parametrize("value, exc, match", [
    (torch.tensor([0.1, 0.2]), ValueError, r"lr must be a number or a 1-element tensor, got a tensor of shape \(2,\)"),
    (torch.tensor(1), TypeError, "lr must be a real floating-point tensor, got dtype torch.int64"),
    (torch.tensor(True), TypeError, "lr must be a real floating-point tensor"),
    (torch.tensor(0.1 + 0j), TypeError, "lr must be a real floating-point tensor"),
    (torch.tensor(-0.1), ValueError, "lr must be >= 0"),
    (torch.tensor(float("nan")), ValueError, "lr must be finite"),
    (torch.tensor(0.1, requires_grad=True), ValueError, "lr must not require grad"),
])
def test_tensor_hyperparameter_validation(value, exc, match):
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(exc, match=match):
        AM1([p], lr=value, momentum=0.9, kick=0.1)
    with pytest.raises(exc, match=match):
        MemorySGD([p], 0.1, [0.9], [0.1], [[0.9]], lr=value)


def test_capturable_refusals():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="capturable=True cannot follow a schedule"):
        AM1([p], schedule=schedules.am1_power_law(0.3, 0.5), capturable=True)
    opt = AM1([p], lr=torch.tensor(0.1), momentum=0.9, kick=0.1, capturable=True)
    opt.param_groups[0]["lr"] = torch.tensor(0.1, device="meta")  # another device than the parameter's
    p.grad = torch.ones(2)
    with pytest.raises(ValueError, match="lr must be a tensor on the parameters' device when capturable=True"):
        opt.step()
    with pytest.raises(TypeError, match="capturable must be a bool"):
        AM1([p], lr=0.1, momentum=0.9, kick=0.1, capturable=1)


# -- torch.compile: no recompilation per scheduled step -------------------------------------

def compiled_step(backend):
    def make(opt):
        return torch.compile(opt.step, backend=backend)
    return make


@pytest.fixture
def compilations():
    """The number of graphs Dynamo has compiled since the test started (its own counter)."""
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    yield lambda: counters["stats"]["unique_graphs"]
    torch._dynamo.reset()


@pytest.mark.slow
def test_compiled_tensor_lr_loop_compiles_at_most_twice(quadratic, compilations):
    """20 steps whose lr and kick change every step (in place): at most 2 compilations (the first
    step creates the buffers), and the iterates are the eager ones."""
    H, ws = quadratic
    got = iterate(lambda ps: AM1(ps, lr=torch.tensor(lr_of(0), dtype=torch.float64), momentum=0.9,
                                 kick=torch.tensor(kick_of(0), dtype=torch.float64)),
                  H, ws, step_fn=compiled_step("eager"), after_step=set_tensors)
    assert 1 <= compilations() <= 2
    np.testing.assert_allclose(got, reference_lr_schedule(H, ws), rtol=0, atol=1e-12)


@pytest.mark.parametrize("sched", [schedules.am1_power_law(0.5, 0.5, gamma=1.0, t0=5.0),
                                   schedules.jacobi_heavy_ball(1.5)], ids=["am1_power_law", "jacobi"])
def test_compiled_schedule_loop_compiles_at_most_twice(quadratic, sched, compilations):
    H, ws = quadratic
    got = iterate(lambda ps: AM1(ps, schedule=sched), H, ws, step_fn=compiled_step("eager"))
    assert 1 <= compilations() <= 2
    ref = run_matrix_form(lambda t: sched.at(t).parameters(), H, ws, STEPS)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_compiled_memory_sgd_tensor_lr_aot_eager(quadratic, compilations):
    """MemorySGD with a tensor lr multiplier under the aot_eager backend (functionalised graph)."""
    H, ws = quadratic
    algo = memsgd.MemoryAlgorithm(0.1, [0.5, -0.3], [0.2, 0.1], [[0.6, 0.2], [-0.1, 0.5]])
    scale = [1.0 / (1 + 0.1 * t) for t in range(STEPS + 1)]

    def set_lr(opt, t):
        opt.param_groups[0]["lr"].fill_(scale[t + 1])

    got = iterate(lambda ps: MemorySGD.from_algorithm(ps, algo, lr=torch.tensor(1.0, dtype=torch.float64)),
                  H, ws, step_fn=compiled_step("aot_eager"), after_step=set_lr)
    assert 1 <= compilations() <= 2

    def params_at(t):
        s = scale[t]
        return s * algo.alpha, algo.b, s * algo.c, algo.D, algo.e

    np.testing.assert_allclose(got, run_matrix_form(params_at, H, ws, STEPS), rtol=0, atol=1e-12)


# -- DTensor (FSDP2's parameter type): state keeps the type and placements -------------------

@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    dist = need("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    need("torch.distributed.tensor")        # public DTensor (torch >= 2.4)
    from torch.distributed.device_mesh import init_device_mesh
    store = tmp_path_factory.mktemp("dist") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("make", [
    lambda ps: AM1(ps, lr=0.1, momentum=0.9, kick=0.2),
    lambda ps: AM1(ps, lr=torch.tensor(0.1, dtype=torch.float64), momentum=0.9, kick=0.2, capturable=True),
    lambda ps: AM1(ps, schedule=schedules.am1_power_law(0.3, 0.5)),
    lambda ps: MemorySGD(ps, 0.1, [0.9, 0.1], [0.1, 0.2], [[0.5, 0.1], [0.2, 0.3]]),
    lambda ps: MemorySGD(ps, 0.1, [0.9, 0.1], [0.1, 0.2], [[0.5, 0.1], [0.0, 0.3]], foreach=True),
    lambda ps: AM1(ps, lr=0.1, momentum=0.9, kick=0.2, fused=True),
    lambda ps: MemorySGD(ps, 0.1, [0.9, 0.1], [0.1, 0.2], [[0.5, 0.1], [0.2, 0.3]], fused=True),
], ids=["am1", "am1_capturable", "am1_schedule", "msgd_general_D", "msgd_foreach", "am1_fused", "msgd_fused"])
def test_dtensor_state_keeps_type_and_placements(mesh, make):
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64)
    p = torch.nn.Parameter(distribute_tensor(w.clone(), mesh, [Shard(0)]))
    q = torch.nn.Parameter(w.clone())
    o1, o2 = make([p]), make([q])
    for _ in range(3):
        grad = torch.randn(4, 3, generator=g, dtype=torch.float64)
        p.grad = distribute_tensor(grad.clone(), mesh, [Shard(0)])
        q.grad = grad
        o1.step(), o2.step()
    assert o1.state[p] and all(isinstance(v, DTensor) and v.placements == (Shard(0),) for v in o1.state[p].values())
    torch.testing.assert_close(p.full_tensor(), q.detach(), rtol=0, atol=1e-14)


# -- CUDA graphs (skipped without CUDA) ------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("foreach", [False, True])
def test_cuda_graph_capture_replays_with_new_hyperparameters(foreach):
    dev = torch.device("cuda")
    lr = torch.tensor(0.05, device=dev, dtype=torch.float64)
    kick = torch.tensor(0.2, device=dev, dtype=torch.float64)
    p = torch.nn.Parameter(torch.ones(1000, device=dev, dtype=torch.float64))
    q = torch.nn.Parameter(p.detach().clone())
    opt = AM1([p], lr=lr, momentum=0.9, kick=kick, capturable=True, foreach=foreach)
    ref = AM1([q], lr=0.05, momentum=0.9, kick=0.2, foreach=foreach)
    p.grad = torch.full_like(p, 0.5)
    q.grad = p.grad.clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm-up creates the buffers outside the graph
        for _ in range(2):
            opt.step()
    torch.cuda.current_stream().wait_stream(s)
    for _ in range(2):
        ref.step()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    for t in range(5):
        lr.fill_(0.05 / (t + 1))
        kick.fill_(0.2 / (t + 1))
        graph.replay()
        ref.param_groups[0]["lr"], ref.param_groups[0]["kick"] = 0.05 / (t + 1), 0.2 / (t + 1)
        ref.step()
    torch.cuda.synchronize()
    torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-12)
    assert copy.deepcopy(opt).param_groups[0]["capturable"] is True
