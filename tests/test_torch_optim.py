"""memsgd.torch optimizers: exactness against the matrix form, torch.optim semantics."""
import copy
import subprocess
import sys

import numpy as np
import pytest

from ._extras import need

torch = need("torch")

import memsgd  # noqa: E402
from memsgd import schedules  # noqa: E402
from memsgd.torch import AM1, MemorySGD, am1, memory_sgd  # noqa: E402

from .reference import random_quadratic, run_matrix_form  # noqa: E402

D_DIM = 7
STEPS = 60


@pytest.fixture(scope="module")
def quadratic():
    return random_quadratic(D_DIM, seed=3, shift=0.05)


def run_torch(make_opt, H, w_star, steps=STEPS, dtype=torch.float64):
    p = torch.nn.Parameter(torch.zeros(D_DIM, dtype=dtype))
    opt = make_opt([p])
    Ht, wt = torch.tensor(H, dtype=dtype), torch.tensor(w_star, dtype=dtype)
    out = [p.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * (p - wt) @ Ht @ (p - wt)
        loss.backward()
        opt.step()
        out.append(p.detach().clone())
    return torch.stack(out).numpy()


@pytest.fixture(params=["single-tensor", "foreach", "foreach-batched-on-cpu"])
def foreach(request, monkeypatch):
    """Both implementations; the third mode runs the real multi-tensor code on CPU."""
    from memsgd.torch import _am1, _memory_sgd
    batched = request.param == "foreach-batched-on-cpu"
    monkeypatch.setattr(_am1, "_CPU_PER_TENSOR", not batched)
    monkeypatch.setattr(_memory_sgd, "_CPU_PER_TENSOR", not batched)
    return request.param != "single-tensor"


def stationary(algo):
    return lambda t: algo.parameters()


# -- exactness against tests/reference.run_matrix_form ------------------------------------

def test_am1_matches_matrix_form(quadratic, foreach):
    H, ws = quadratic
    ref = run_matrix_form(stationary(memsgd.am1(0.05, 0.9, 0.4)), H, ws, STEPS)
    got = run_torch(lambda ps: AM1(ps, lr=0.05, momentum=0.9, kick=0.4, foreach=foreach), H, ws)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sched", [
    schedules.am1_power_law(0.5, 0.5, gamma=1.0, t0=5.0),
    schedules.jacobi_heavy_ball(1.5, lambda_max=1.0),
])
def test_am1_schedule_matches_matrix_form(quadratic, sched, foreach):
    H, ws = quadratic
    ref = run_matrix_form(lambda t: sched.at(t).parameters(), H, ws, STEPS)
    got = run_torch(lambda ps: AM1(ps, schedule=sched, foreach=foreach), H, ws)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_am1_callable_schedule_matches_matrix_form(quadratic):
    H, ws = quadratic

    def fn(t):
        return 0.02 + 0.01 * np.sin(t), 0.8 + 0.1 * np.cos(t), 0.3

    ref = run_matrix_form(lambda t: memsgd.am1(*fn(t)).parameters(), H, ws, STEPS)
    got = run_torch(lambda ps: AM1(ps, schedule=fn), H, ws)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_heavy_ball_preset_memory_sgd(quadratic, foreach):
    H, ws = quadratic
    algo = memsgd.heavy_ball(0.1, 0.8)
    ref = run_matrix_form(stationary(algo), H, ws, STEPS)
    got = run_torch(lambda ps: MemorySGD.from_algorithm(ps, algo, foreach=foreach), H, ws)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("D", [
    [[0.9, 0.05], [0.0, 0.5]],     # upper triangular (in place)
    [[0.7, 0.0], [0.2, 0.6]],      # lower triangular (in place)
    [[0.6, 0.2], [-0.1, 0.5]],     # general (temporary)
])
def test_memory2_memory_sgd(quadratic, D, foreach):
    H, ws = quadratic
    algo = memsgd.MemoryAlgorithm(0.1, [0.5, -0.3], [0.2, 0.1], D)
    ref = run_matrix_form(stationary(algo), H, ws, STEPS)
    got = run_torch(lambda ps: MemorySGD(ps, algo.alpha, algo.b, algo.c, algo.D, foreach=foreach), H, ws)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_multistep_companion_memory_sgd(quadratic):
    H, ws = quadratic
    algo = memsgd.Multistep([0.5, 0.2], [0.1, -0.02, 0.01]).to_matrix()
    ref = run_matrix_form(stationary(algo), H, ws, STEPS)
    got = run_torch(lambda ps: MemorySGD.from_algorithm(ps, algo), H, ws)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_memory0_is_gd(quadratic):
    H, ws = quadratic
    ref = run_matrix_form(lambda t: (0.3, [], [], np.zeros((0, 0)), []), H, ws, 10)
    got = run_torch(lambda ps: MemorySGD(ps, 0.3, [], [], []), H, ws, steps=10)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


# -- bitwise comparisons ------------------------------------------------------------------

def make_model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 9), torch.nn.Tanh(), torch.nn.Linear(9, 3)).to(dtype)
    x = torch.randn(32, 6, dtype=dtype)
    y = torch.randn(32, 3, dtype=dtype)
    return model, x, y


def train(model, x, y, opt, steps=15, sched=None):
    for k in range(steps):
        opt.zero_grad()
        idx = slice((k * 8) % 32, (k * 8) % 32 + 8)
        loss = ((model(x[idx]) - y[idx]) ** 2).mean()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    return [p.detach().clone() for p in model.parameters()]


def assert_bitwise(a, b):
    assert len(a) == len(b)
    for s, t in zip(a, b):
        assert torch.equal(s, t)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("batched_on_cpu", [False, True])
def test_am1_kick0_is_torch_sgd_bitwise(foreach, weight_decay, batched_on_cpu, monkeypatch):
    from memsgd.torch import _am1
    monkeypatch.setattr(_am1, "_CPU_PER_TENSOR", not batched_on_cpu)
    m1, x, y = make_model()
    m2 = copy.deepcopy(m1)
    a = train(m1, x, y, AM1(m1.parameters(), lr=0.05, momentum=0.9, kick=0.0,
                            weight_decay=weight_decay, foreach=foreach))
    b = train(m2, x, y, torch.optim.SGD(m2.parameters(), lr=0.05, momentum=0.9, dampening=0,
                                        weight_decay=weight_decay, foreach=foreach))
    assert_bitwise(a, b)


@pytest.mark.parametrize("make", [
    lambda ps, fe: AM1(ps, lr=0.05, momentum=0.9, kick=0.3, foreach=fe),
    lambda ps, fe: AM1(ps, lr=0.05, momentum=0.9, kick=0.0, foreach=fe),
    lambda ps, fe: AM1(ps, lr=0.05, momentum=0.9, kick=0.3, weight_decay=0.1, maximize=True, foreach=fe),
    lambda ps, fe: AM1(ps, schedule=schedules.am1_power_law(0.3, 0.5), foreach=fe),
    lambda ps, fe: MemorySGD(ps, 0.05, [0.9], [0.05], [[0.9]], foreach=fe),
    lambda ps, fe: MemorySGD(ps, 0.05, [0.9, 0.1], [0.05, 0.02], [[0.9, 0.05], [0.0, 0.5]],
                             weight_decay=0.01, foreach=fe),
    lambda ps, fe: MemorySGD(ps, 0.05, [0.9, 0.1], [0.05, 0.02], [[0.6, 0.2], [-0.1, 0.5]], foreach=fe),
], ids=["am1", "am1_kick0", "am1_wd_max", "am1_sched", "msgd1", "msgd2_upper", "msgd2_general"])
@pytest.mark.parametrize("batched_on_cpu", [False, True])
def test_foreach_and_single_tensor_bitwise(make, batched_on_cpu, monkeypatch):
    # batched_on_cpu: run the real multi-tensor (torch._foreach_*) code on CPU, which by default
    # uses the cache-friendly per-tensor order there
    from memsgd.torch import _am1, _memory_sgd
    monkeypatch.setattr(_am1, "_CPU_PER_TENSOR", not batched_on_cpu)
    monkeypatch.setattr(_memory_sgd, "_CPU_PER_TENSOR", not batched_on_cpu)
    m1, x, y = make_model()
    m2 = copy.deepcopy(m1)
    a = train(m1, x, y, make(m1.parameters(), True))
    b = train(m2, x, y, make(m2.parameters(), False))
    assert_bitwise(a, b)


def test_memory_sgd_heavy_ball_vs_am1_kick0_close():
    m1, x, y = make_model(dtype=torch.float64)
    m2 = copy.deepcopy(m1)
    a = train(m1, x, y, MemorySGD.from_algorithm(m1.parameters(), memsgd.heavy_ball(0.05, 0.9)))
    b = train(m2, x, y, AM1(m2.parameters(), lr=0.05, momentum=0.9, kick=0.0))
    for s, t in zip(a, b):
        torch.testing.assert_close(s, t, rtol=0, atol=1e-12)


# -- torch.optim semantics ----------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda ps: AM1(ps, lr=0.05, momentum=0.9, kick=0.3),
    lambda ps: AM1(ps, schedule=schedules.am1_power_law(0.3, 0.5)),
    lambda ps: MemorySGD(ps, 0.05, [0.9, 0.1], [0.05, 0.02], [[0.9, 0.05], [0.0, 0.5]]),
], ids=["am1", "am1_sched", "msgd2"])
def test_state_dict_round_trip(make, tmp_path):
    m1, x, y = make_model()
    opt1 = make(m1.parameters())
    train(m1, x, y, opt1, steps=7)
    m2 = copy.deepcopy(m1)
    opt2 = make(m2.parameters())
    path = tmp_path / "opt.pt"
    torch.save(opt1.state_dict(), path)
    opt2.load_state_dict(torch.load(path))
    a = train(m1, x, y, opt1, steps=8)
    b = train(m2, x, y, opt2, steps=8)
    assert_bitwise(a, b)


def test_param_groups_per_group_hyperparameters():
    torch.manual_seed(0)
    p1 = torch.nn.Parameter(torch.randn(4))
    p2 = torch.nn.Parameter(torch.randn(4))
    q1, q2 = (torch.nn.Parameter(p.detach().clone()) for p in (p1, p2))
    opt = AM1([{"params": [p1]}, {"params": [p2], "lr": 0.2, "kick": 0.0}], lr=0.1, momentum=0.5, kick=0.3)
    ref1 = AM1([q1], lr=0.1, momentum=0.5, kick=0.3)
    ref2 = AM1([q2], lr=0.2, momentum=0.5, kick=0.0)
    for _ in range(3):
        g = torch.randn(4)
        for p in (p1, p2, q1, q2):
            p.grad = g.clone()
        opt.step(), ref1.step(), ref2.step()
    assert torch.equal(p1, q1) and torch.equal(p2, q2)

    r = torch.nn.Parameter(torch.ones(3))
    ms = MemorySGD([{"params": [r], "b": [0.5, 0.1], "c": [1.0, 1.0], "D": [[0.5, 0], [0, 0.2]]}],
                   alpha=0.1, b=[0.9], c=[0.1], D=[[0.9]])
    r.grad = torch.ones(3)
    ms.step()
    assert ms.state[r]["memory_buffer_1"].shape == ms.state[r]["memory_buffer_2"].shape == (3,)
    assert "memory_buffer_3" not in ms.state[r]
    assert ms.param_groups[0]["b"] == (0.5, 0.1)


def test_closure_and_zero_grad():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = AM1([p], lr=0.1, momentum=0.9, kick=0.5)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert calls == [1] and loss.item() == pytest.approx(5.0)
    # v = g = 2p0; p1 = p0 - 0.1 g - 0.5 g = p0 (1 - 1.2)
    torch.testing.assert_close(p.detach(), torch.tensor([-0.2, 0.4]))
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # no gradient: nothing happens, no error
    torch.testing.assert_close(p.detach(), torch.tensor([-0.2, 0.4]))


def test_weight_decay_manual_formula():
    torch.manual_seed(1)
    p = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    w, v = p.detach().clone(), torch.zeros(5, dtype=torch.float64)
    lr, beta, kick, wd = 0.1, 0.8, 0.3, 0.05
    opt = AM1([p], lr=lr, momentum=beta, kick=kick, weight_decay=wd)
    u = torch.zeros(1, 5, dtype=torch.float64)
    q = torch.nn.Parameter(p.detach().clone())
    ms = MemorySGD([q], 0.2, [0.7], [0.1], [[0.6]], weight_decay=wd)
    wq = q.detach().clone()
    for _ in range(5):
        grad = torch.randn(5, dtype=torch.float64)
        p.grad, q.grad = grad.clone(), grad.clone()
        opt.step(), ms.step()
        g = grad + wd * w
        v = beta * v + g
        w = w - lr * v - kick * g
        gq = grad + wd * wq
        wq, u = wq + 0.7 * u[0] - 0.2 * gq, 0.6 * u - 0.1 * gq
    torch.testing.assert_close(p.detach(), w, rtol=0, atol=1e-14)
    torch.testing.assert_close(q.detach(), wq, rtol=0, atol=1e-14)


@pytest.mark.parametrize("make", [
    lambda ps, mx: AM1(ps, lr=0.05, momentum=0.9, kick=0.3, maximize=mx),
    lambda ps, mx: MemorySGD(ps, 0.05, [0.9], [0.05], [[0.9]], maximize=mx),
])
def test_maximize_equals_minimizing_negative(make):
    torch.manual_seed(2)
    p = torch.nn.Parameter(torch.randn(4))
    q = torch.nn.Parameter(p.detach().clone())
    o1, o2 = make([p], True), make([q], False)
    for _ in range(5):
        g = torch.randn(4)
        p.grad, q.grad = g.clone(), -g
        o1.step(), o2.step()
    assert torch.equal(p, q)


def test_lr_scheduler_scales_lr():
    m1, x, y = make_model()
    m2 = copy.deepcopy(m1)
    o1 = AM1(m1.parameters(), lr=0.05, momentum=0.9, kick=0.0)
    s1 = torch.optim.lr_scheduler.StepLR(o1, step_size=4, gamma=0.5)
    o2 = torch.optim.SGD(m2.parameters(), lr=0.05, momentum=0.9)
    s2 = torch.optim.lr_scheduler.StepLR(o2, step_size=4, gamma=0.5)
    assert_bitwise(train(m1, x, y, o1, 12, s1), train(m2, x, y, o2, 12, s2))
    assert o1.param_groups[0]["lr"] == pytest.approx(0.05 * 0.5 ** 3)

    # MemorySGD: lr is a multiplier of (alpha, c); with a heavy-ball preset this is SGD's lr
    m3, x, y = make_model(dtype=torch.float64)
    m4 = copy.deepcopy(m3)
    o3 = MemorySGD(m3.parameters(), 1.0, [0.9], [1.0], [[0.9]], lr=0.05)
    s3 = torch.optim.lr_scheduler.ExponentialLR(o3, gamma=0.9)
    assert o3.param_groups[0]["lr"] == 0.05
    pa = train(m3, x, y, o3, 10, s3)
    # reference: heavy ball u+ = beta u - lr_t g, w+ = w + beta u - lr_t g
    ws = [p.detach().clone() for p in m4.parameters()]
    us = [torch.zeros_like(w) for w in ws]
    for k in range(10):
        for p, w in zip(m4.parameters(), ws):
            p.data.copy_(w)
        m4.zero_grad()
        idx = slice((k * 8) % 32, (k * 8) % 32 + 8)
        ((m4(x[idx]) - y[idx]) ** 2).mean().backward()
        lr = 0.05 * 0.9 ** k
        for i, p in enumerate(m4.parameters()):
            ws[i], us[i] = ws[i] + 0.9 * us[i] - lr * p.grad, 0.9 * us[i] - lr * p.grad
    for s, t in zip(pa, ws):
        torch.testing.assert_close(s, t, rtol=0, atol=1e-12)


def test_schedule_writes_group_values_and_step():
    sched = schedules.jacobi_heavy_ball(1.0, lambda_max=2.0)
    p = torch.nn.Parameter(torch.zeros(3))
    opt = AM1([p], schedule=sched)
    for t in range(3):
        p.grad = torch.ones(3)
        opt.step()
        a = sched.at(t)
        g = opt.param_groups[0]
        assert all(isinstance(g[k], torch.Tensor) and g[k].dim() == 0 for k in ("lr", "momentum", "kick"))
        assert (g["lr"].item(), g["momentum"].item(), g["kick"].item()) == (a.c[0], a.D[0, 0], a.alpha - a.c[0])
    assert opt.param_groups[0]["step"] == 3


def test_sparse_gradients_rejected():
    emb = torch.nn.Embedding(5, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    for opt in (AM1(emb.parameters(), lr=0.1, momentum=0.9, kick=0.1),
                MemorySGD(emb.parameters(), 0.1, [0.9], [0.1], [[0.9]])):
        with pytest.raises(RuntimeError, match="does not support sparse gradients"):
            opt.step()


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(lr=-0.1, momentum=0.9, kick=0.1), ValueError, "lr must be >= 0, got -0.1"),
    (dict(lr=0.1, momentum=-0.5, kick=0.1), ValueError, "momentum must be >= 0, got -0.5"),
    (dict(lr=0.1, momentum=0.9, kick=0.1, weight_decay=-1.0), ValueError, "weight_decay must be >= 0, got -1.0"),
    (dict(lr=float("nan"), momentum=0.9, kick=0.1), ValueError, "lr must be finite"),
    (dict(lr="0.1", momentum=0.9, kick=0.1), TypeError, "lr must be a real number"),
    (dict(lr=0.1, momentum=0.9, kick=None), TypeError, "AM1 needs kick"),
    (dict(lr=0.1, momentum=0.9, kick=0.1, maximize=1), TypeError, "maximize must be a bool"),
    (dict(lr=0.1, momentum=0.9, kick=0.1, foreach="yes"), TypeError, "foreach must be a bool or None"),
    (dict(lr=0.1, schedule=schedules.am1_power_law(1.0, 0.5)), ValueError, "either schedule or lr"),
    (dict(schedule=42), TypeError, "schedule must be a memsgd Schedule or a callable"),
    (dict(schedule=schedules.constant(memsgd.qhm(0.1, 0.9, 0.7))), ValueError, "not of AM1 type"),
    (dict(schedule=schedules.constant(memsgd.nesterov(0.1, 0.9))), ValueError, "not of AM1 type"),
    (dict(schedule=schedules.constant(memsgd.gd(0.1))), ValueError, "must have memory 1"),
    (dict(schedule=lambda t: (0.1, 0.9)), TypeError, r"must return a tuple \(lr, momentum, kick\)"),
    (dict(schedule=lambda t: (0.1, float("inf"), 0.0)), ValueError, "non-finite or non-real momentum"),
])
def test_am1_validation(kwargs, exc, match):
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(exc, match=match):
        AM1([p], **kwargs)


def test_am1_validation_param_group():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="lr must be >= 0, got -1.0"):
        AM1([{"params": [p], "lr": -1.0}], lr=0.1, momentum=0.9, kick=0.0)


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((0.1, [0.9, 0.1], [0.1], [[0.9]]), {}, ValueError, r"c must have shape \(2,\) to match b"),
    ((0.1, [0.9], [0.1], [[0.9, 0.0]]), {}, ValueError, r"D must have shape \(1, 1\)"),
    ((0.1, [[0.9]], [0.1], [[0.9]]), {}, ValueError, "b must be 1-dimensional"),
    ((0.1, [0.9], [float("nan")], [[0.9]]), {}, ValueError, "c must contain only finite values"),
    (("a", [0.9], [0.1], [[0.9]]), {}, TypeError, "alpha must be a real number"),
    ((0.1, ["x"], [0.1], [[0.9]]), {}, TypeError, "b must be an array of real numbers"),
    ((0.1, [0.9], [0.1], [[0.9]]), {"lr": -1.0}, ValueError, "lr must be >= 0, got -1.0"),
    ((0.1, [0.9], [0.1], [[0.9]]), {"weight_decay": -0.1}, ValueError, "weight_decay must be >= 0"),
])
def test_memory_sgd_validation(args, kwargs, exc, match):
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(exc, match=match):
        MemorySGD([p], *args, **kwargs)


def test_from_algorithm_rejects_nesterov_and_non_algorithms():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="e = 0"):
        MemorySGD.from_algorithm([p], memsgd.nesterov(0.1, 0.9))
    with pytest.raises(TypeError, match="algorithm must be a memsgd.MemoryAlgorithm"):
        MemorySGD.from_algorithm([p], (0.1, [0.9]))


def test_functional_updates_match_optimizers():
    torch.manual_seed(4)
    p = torch.randn(6)
    q = torch.nn.Parameter(p.clone())
    opt = AM1([q], lr=0.1, momentum=0.9, kick=0.2)
    bufs = [None]
    for _ in range(4):
        g = torch.randn(6)
        q.grad = g.clone()
        opt.step()
        am1([p], [g], bufs, lr=0.1, momentum=0.9, kick=0.2)
    assert torch.equal(p, q.detach())
    r = torch.zeros(3)
    ubuf = [None]
    memory_sgd([r], [torch.ones(3)], ubuf, alpha=0.5, b=[1.0], c=[1.0], D=[[0.5]])
    assert torch.equal(r, torch.full((3,), -0.5)) and len(ubuf[0]) == 1 and torch.equal(ubuf[0][0], -torch.ones(3))


def test_import_memsgd_does_not_import_torch():
    code = "import sys, memsgd; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_memsgd_torch_without_torch_names_the_extra():
    """Issue 18 item 19: a one-line ImportError naming the extra (as memsgd.optax gives), not a
    raw ModuleNotFoundError."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import memsgd.torch\nexcept ImportError as e:\n    print(type(e).__name__, e)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "ImportError memsgd.torch needs torch: pip install 'memsgd[torch]'"


def test_mixed_dtypes_and_float32_state_device():
    a = torch.nn.Parameter(torch.ones(3, dtype=torch.float32))
    b = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    for opt in (AM1([a, b], lr=0.1, momentum=0.9, kick=0.1, foreach=True),
                MemorySGD([a, b], 0.1, [0.9], [0.1], [[0.9]], foreach=True)):
        a.grad, b.grad = torch.ones(3), torch.ones(2, dtype=torch.float64)
        opt.step()
        key = "momentum_buffer" if isinstance(opt, AM1) else "memory_buffer_1"
        assert opt.state[a][key].dtype == torch.float32 and opt.state[b][key].dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("make", [
    lambda ps, fe: AM1(ps, lr=0.05, momentum=0.9, kick=0.3, foreach=fe),
    lambda ps, fe: AM1(ps, lr=0.05, momentum=0.9, kick=0.0, foreach=fe),
    lambda ps, fe: AM1(ps, schedule=schedules.am1_power_law(0.3, 0.5), foreach=fe),
    lambda ps, fe: MemorySGD(ps, 0.05, [0.9, 0.1], [0.05, 0.02], [[0.6, 0.2], [-0.1, 0.5]], foreach=fe),
])
def test_cuda_matches_cpu(make):
    m1, x, y = make_model(dtype=torch.float64)
    m2 = copy.deepcopy(m1).cuda()
    m3 = copy.deepcopy(m1).cuda()
    a = train(m1, x, y, make(m1.parameters(), False))
    o2 = make(m2.parameters(), True)
    b = train(m2, x.cuda(), y.cuda(), o2)
    c = train(m3, x.cuda(), y.cuda(), make(m3.parameters(), False))
    for s, t, u in zip(a, b, c):
        torch.testing.assert_close(t.cpu(), s, rtol=0, atol=1e-10)
        torch.testing.assert_close(u.cpu(), s, rtol=0, atol=1e-10)
    for st in o2.state.values():
        for v in st.values():
            if torch.is_tensor(v):
                assert v.is_cuda


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_am1_kick0_is_sgd_bitwise():
    m1, x, y = make_model()
    m1 = m1.cuda()
    m2 = copy.deepcopy(m1)
    x, y = x.cuda(), y.cuda()
    a = train(m1, x, y, AM1(m1.parameters(), lr=0.05, momentum=0.9, kick=0.0))
    b = train(m2, x, y, torch.optim.SGD(m2.parameters(), lr=0.05, momentum=0.9))
    assert_bitwise(a, b)


@pytest.mark.parametrize("make", [lambda ps: AM1(ps, lr=0.1, momentum=0.9, kick=0.1),
                                  lambda ps: MemorySGD(ps, 0.1, [0.9], [0.1], [[0.9]])], ids=["am1", "msgd"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_parameters_are_refused(make, dtype):
    """Issue 18 item 7: an integer (or bool) tensor gets no gradient and silently never changed;
    now a TypeError names it when the group is added."""
    w = torch.nn.Parameter(torch.zeros(3))
    n = torch.zeros(3, dtype=dtype)
    with pytest.raises(TypeError, match=rf"parameter 1 of the group has dtype {dtype}"):
        make([w, n])
    opt = make([w])
    with pytest.raises(TypeError, match="optimizes floating-point or complex tensors"):
        opt.add_param_group({"params": [n]})
    assert len(opt.param_groups) == 1
