"""torch.optim's own conventions, checked on AM1 and MemorySGD (written after the checks of
torch's OptimizerInfo-driven suite, test/test_optim.py: direction of the loss, param groups,
tensor lr, complex params, zero and missing gradients, state_dict round trips and older state
dicts, hooks, deepcopy, foreach/fused against the for-loop, fused's meta-device and found_inf
rules, construction inside a compiled function). Each runs on every implementation
(for-loop, foreach, fused), so that the next divergence from torch's conventions fails here."""
import copy
import functools
import io

import numpy as np
import pytest

from ._extras import need

torch = need("torch")

from torch.nn import Parameter  # noqa: E402
from torch.optim.lr_scheduler import ExponentialLR, StepLR  # noqa: E402
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook  # noqa: E402

from memsgd import schedules  # noqa: E402
from memsgd.torch import AM1, MemorySGD  # noqa: E402

# optimizer configurations (kwargs without the implementation flags), as OptimizerInfo's inputs
CONFIGS = {
    "am1": (AM1, dict(lr=0.002, momentum=0.9, kick=0.005)),
    "am1_kick0": (AM1, dict(lr=0.002, momentum=0.9, kick=0.0)),
    "am1_wd_maximize": (AM1, dict(lr=0.002, momentum=0.5, kick=0.005, weight_decay=0.1, maximize=True)),
    "am1_tensor_lr": (AM1, dict(lr=torch.tensor(0.002), momentum=0.9, kick=torch.tensor(0.005))),
    "am1_schedule": (AM1, dict(schedule=lambda t: (0.002 / (1 + 0.1 * t), 0.9, 0.005))),
    # a memsgd Schedule with per-step weight decay, 0 at every third step (another code path)
    "am1_schedule_weight_decay": (AM1, dict(schedule=schedules.Schedule.from_arrays(
        np.full(1000, 0.007), np.full((1000, 1), 0.9), np.full((1000, 1), 0.002), np.full((1000, 1, 1), 0.9),
        weight_decay=np.where(np.arange(1000) % 3 == 0, 0.0, 0.1)))),
    "msgd_heavy_ball": (MemorySGD, dict(alpha=0.002, b=[0.9], c=[0.002], D=[[0.9]])),
    "msgd_M2_general_D": (MemorySGD, dict(alpha=0.002, b=[0.5, 0.3], c=[0.002, 0.001],
                                          D=[[0.6, 0.2], [-0.1, 0.5]], weight_decay=0.01)),
    "msgd_M2_lower_maximize": (MemorySGD, dict(alpha=0.002, b=[0.5, 0.3], c=[0.002, 0.001],
                                               D=[[0.7, 0.0], [0.2, 0.6]], maximize=True)),
}
IMPLS = {"forloop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}
CASES = [(c, i) for c in CONFIGS for i in IMPLS]


def make(config, impl, params, **extra):
    cls, kwargs = CONFIGS[config]
    kwargs = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}  # fresh tensors
    return cls(params, **kwargs, **IMPLS[impl], **extra)


def maximizes(config):
    return CONFIGS[config][1].get("maximize", False)


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


def weight_bias(rng, contiguous=True, dtype=torch.float32):
    if contiguous:
        return (Parameter(torch.randn(10, 5, generator=rng, dtype=dtype)),
                Parameter(torch.randn(10, generator=rng, dtype=dtype)))
    return (Parameter(torch.randn(10, 5, 2, generator=rng, dtype=dtype)[..., 0]),
            Parameter(torch.randn(10, 2, generator=rng, dtype=dtype)[..., 0]))


# -- the update goes the right way ----------------------------------------------------------

@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("scheduler", [None, "step", "exponential"])
@pytest.mark.parametrize("config, impl", CASES)
def test_goes_right_direction(config, impl, contiguous, scheduler, rng):
    weight, bias = weight_bias(rng, contiguous)
    x = torch.randn(5, generator=rng)
    opt = make(config, impl, [weight, bias])
    scheds = {None: [], "step": [StepLR(opt, step_size=5, gamma=0.9)] if "schedule" not in config else [],
              "exponential": [ExponentialLR(opt, gamma=0.95)] if "schedule" not in config else []}[scheduler]

    def closure():
        opt.zero_grad()
        loss = (weight.mv(x) + bias).pow(2).sum()
        loss.backward()
        return loss

    initial = closure().item()
    for _ in range(20):
        opt.step(closure)
        for s in scheds:
            s.step()
    final = closure().item()
    assert final > initial if maximizes(config) else final < initial


@pytest.mark.parametrize("config, impl", CASES)
def test_param_groups_lr_and_weight_decay(config, impl, rng):
    """Group values override the constructor's: a group with a vanishing lr leaves its parameter
    unchanged while the other group learns; weight decay per group."""
    if "schedule" in config:
        pytest.skip("a schedule sets lr for every group")
    cls, kwargs = CONFIGS[config]
    weight, bias = weight_bias(rng)
    irrelevant = Parameter(torch.randn(2, generator=rng))
    before = irrelevant.detach().clone()
    x = torch.randn(5, generator=rng)
    group_kwargs = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
    if cls is MemorySGD:
        group_kwargs.setdefault("lr", 1.0)
    outer = dict(lr=1e-28, momentum=0.0, kick=0.0) if cls is AM1 else dict(alpha=1e-28, b=[0.0], c=[0.0], D=[[0.0]],
                                                                           lr=1e-28)
    opt = cls([dict(params=[weight], **group_kwargs), dict(params=[bias], **{**group_kwargs, "weight_decay": 0.0}),
               dict(params=[irrelevant])], **outer, **IMPLS[impl])
    initial = (weight.mv(x) + bias).pow(2).sum().item()
    for _ in range(20):
        opt.zero_grad()
        loss = (weight.mv(x) + bias).pow(2).sum()
        loss.backward()
        irrelevant.grad = torch.rand(2, generator=rng)
        opt.step()
    assert loss.item() > initial if maximizes(config) else loss.item() < initial
    assert torch.equal(irrelevant.detach(), before)


def test_hyperparameters_only_per_group_as_torch_sgd(rng):
    """Issue 18 item 10: required hyperparameters given only per param group (torch's SGD
    accepts this); the result is SGD's, bitwise, for kick = 0."""
    w = Parameter(torch.randn(4, 3, generator=rng))
    v = Parameter(w.detach().clone())
    u = Parameter(w.detach().clone())
    a = AM1([{"params": [w], "lr": 0.1, "momentum": 0.9, "kick": 0.0}])
    b = torch.optim.SGD([{"params": [v], "lr": 0.1, "momentum": 0.9}])
    c = MemorySGD([{"params": [u], "alpha": 0.1, "b": [0.9], "c": [0.1], "D": [[0.9]]}])
    for _ in range(5):
        g = torch.randn(4, 3, generator=rng)
        w.grad, v.grad, u.grad = g.clone(), g.clone(), g.clone()
        a.step(), b.step(), c.step()
    assert torch.equal(w, v)
    torch.testing.assert_close(u, v, rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match="AM1 needs kick: pass it to AM1, set it in every param group"):
        AM1([{"params": [w], "lr": 0.1, "momentum": 0.9}])
    with pytest.raises(TypeError, match="MemorySGD needs D: pass it to MemorySGD or set it in every param group"):
        MemorySGD([{"params": [w], "alpha": 0.1, "b": [0.9], "c": [0.1]}])


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("cls", [AM1, MemorySGD])
def test_tensor_lr_matches_float_lr(cls, impl, rng):
    weight, bias = weight_bias(rng)
    wc, bc = (Parameter(t.detach().clone()) for t in (weight, bias))
    x = torch.randn(5, generator=rng)
    kw = dict(momentum=0.9, kick=0.1) if cls is AM1 else dict(alpha=0.01, b=[0.9], c=[0.01], D=[[0.9]])
    lr = 1e-3 if cls is AM1 else 0.5
    o1 = cls([weight, bias], lr=lr, **kw, **IMPLS[impl])
    o2 = cls([wc, bc], lr=torch.tensor(lr), **kw, **IMPLS[impl])
    for _ in range(5):
        for o, w, b in ((o1, weight, bias), (o2, wc, bc)):
            o.zero_grad()
            (w.mv(x) + b).pow(2).sum().backward()
            o.step()
    assert torch.equal(weight, wc) and torch.equal(bias, bc)


# -- complex parameters: as their real views ------------------------------------------------

@pytest.mark.parametrize("config, impl", CASES)
def test_complex_params_act_as_their_real_views(config, impl, rng):
    complex_params = [torch.randn(10, 5, generator=rng, dtype=torch.complex64).requires_grad_(),
                      torch.randn(10, generator=rng, dtype=torch.complex64).requires_grad_(),
                      torch.randn(10, 5, generator=rng).requires_grad_()]        # mixed with a real one
    real_params = [(torch.view_as_real(p) if p.is_complex() else p).detach().clone().requires_grad_()
                   for p in complex_params]
    oc, orl = make(config, impl, complex_params), make(config, impl, real_params)
    for _ in range(3):
        for pc, pr in zip(complex_params, real_params):
            g = torch.randn(pr.shape, generator=rng)
            pr.grad = g
            pc.grad = torch.view_as_complex(g.clone()) if pc.is_complex() else g.clone()
        oc.step(), orl.step()
    for pc, pr in zip(complex_params, real_params):
        assert torch.equal(torch.view_as_real(pc) if pc.is_complex() else pc, pr)
    for pc in complex_params:      # the state keeps the parameter's dtype
        assert all(v.dtype == pc.dtype for v in oc.state[pc].values() if torch.is_tensor(v))


# -- zero, missing and empty gradients --------------------------------------------------------

@pytest.mark.parametrize("config, impl", CASES)
def test_step_is_noop_for_zero_grads_and_without_grads(config, impl, rng):
    if CONFIGS[config][1].get("weight_decay", 0) or "weight_decay" in config:
        pytest.skip("weight decay moves parameters whatever the gradient")
    param = torch.randn(5, 1, generator=rng).requires_grad_()
    old = param.detach().clone()
    opt = make(config, impl, [param])
    loss = opt.step(lambda: torch.tensor([1.0]))          # no gradient yet: nothing happens
    assert torch.equal(loss, torch.tensor([1.0])) and torch.equal(param, old) and not opt.state
    param.grad = torch.zeros_like(param)
    opt.step()
    assert torch.equal(param, old)


@pytest.mark.parametrize("config, impl", CASES)
def test_empty_and_zero_dim_params(config, impl, rng):
    params = [torch.empty(0, 3, requires_grad=True), torch.randn((), generator=rng).requires_grad_(),
              torch.randn(3, generator=rng).requires_grad_()]
    ref = [p.detach().clone().requires_grad_() for p in params]
    o1, o2 = make(config, impl, params), make(config, "forloop", ref)
    for _ in range(3):
        for p, q in zip(params, ref):
            p.grad = torch.rand(p.shape, generator=rng)
            q.grad = p.grad.clone()
        o1.step(), o2.step()
    for p, q in zip(params, ref):
        assert torch.equal(p, q)
    assert all(len(s) > 0 for s in o1.state.values())      # non-empty state (torch's test_non_empty_state)


# -- the implementations agree with the for-loop (bitwise: the same operations) ---------------

def compare_with_forloop(config, impl, dtype):
    """torch's _compare_between: a small network plus a 0-d parameter, a layer frozen for two
    steps and one step without gradients; parameters and every state tensor compared."""
    models, opts = [], []
    for which in ("forloop", impl):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 1),
                                    torch.nn.Sigmoid()).to(dtype)
        extra = torch.empty((), dtype=dtype, requires_grad=True)
        with torch.no_grad():
            extra.fill_(0.5)
        models.append((model, extra))
        opts.append(make(config, which, list(model.parameters()) + [extra]))
    x = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], dtype=dtype).reshape(3, 2)
    for i in range(7):
        for (model, extra), opt in zip(models, opts):
            opt.zero_grad()
            if i == 3:
                model[2].requires_grad_(False)
            if i == 5:
                model[2].requires_grad_(True)
            if i != 2:
                (model(x).sum() + extra * 0.3).backward()
            opt.step()
        (m1, e1), (m2, e2) = models
        for p, q in zip(list(m1.parameters()) + [e1], list(m2.parameters()) + [e2]):
            assert torch.equal(p, q)
            s1, s2 = opts[0].state[p], opts[1].state[q]
            assert s1.keys() == s2.keys()
            for k in s1:
                assert torch.equal(s1[k], s2[k]) if torch.is_tensor(s1[k]) else s1[k] == s2[k]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("impl", ["foreach", "fused"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_foreach_and_fused_match_forloop(config, impl, dtype):
    compare_with_forloop(config, impl, dtype)


# -- state_dict --------------------------------------------------------------------------------

def assert_same_tree(a, b):
    """Equal nested state dicts: the same keys and structure, tensors bitwise equal."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same_tree(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_tree(x, y)
    elif torch.is_tensor(a):
        assert a.dtype == b.dtype and torch.equal(a, b)
    else:
        assert a == b


def fwd_bwd(opt, w, b, x):
    opt.zero_grad()
    loss = (w.mv(x) + b).pow(2).sum()
    loss.backward()
    return loss


@pytest.mark.parametrize("named", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("config, impl", CASES)
def test_state_dict_deterministic_and_resumable(config, impl, named, rng):
    weight, bias = weight_bias(rng, dtype=torch.float64)
    x = torch.randn(5, generator=rng, dtype=torch.float64)

    def params_in(ps, is_named):
        return [(f"name{i}", p) for i, p in enumerate(ps)] if is_named else list(ps)

    opt = make(config, impl, params_in([weight, bias], named[0]))
    for _ in range(5):
        opt.step(functools.partial(fwd_bwd, opt, weight, bias, x))
    wc, bc = (Parameter(t.detach().clone()) for t in (weight, bias))
    opt_c = make(config, impl, params_in([wc, bc], named[1]))
    opt_c.load_state_dict(copy.deepcopy(opt.state_dict()))
    for _ in range(5):
        opt.step(functools.partial(fwd_bwd, opt, weight, bias, x))
        opt_c.step(functools.partial(fwd_bwd, opt_c, wc, bc, x))
        assert torch.equal(weight, wc) and torch.equal(bias, bc)

    def without_names(sd):
        sd = copy.deepcopy(sd)
        for g in sd["param_groups"]:
            g.pop("param_names", None)
        return sd

    assert_same_tree(without_names(opt.state_dict()), without_names(opt_c.state_dict()))
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    assert_same_tree(torch.load(buf, weights_only=True), opt.state_dict())


@pytest.mark.parametrize("config, impl", CASES)
def test_loads_an_older_state_dict_without_the_newer_flags(config, impl, rng):
    """torch's not_og_supported_flags: a state dict saved before maximize/foreach/fused (and
    capturable, scheduled) existed still loads, and stepping continues."""
    weight, bias = weight_bias(rng)
    x = torch.randn(5, generator=rng)
    opt = make(config, impl, [weight, bias])
    for _ in range(3):
        opt.step(functools.partial(fwd_bwd, opt, weight, bias, x))
    old = copy.deepcopy(opt.state_dict())
    for group in old["param_groups"]:
        for flag in ("maximize", "foreach", "fused", "capturable", "differentiable"):
            group.pop(flag, None)
        if not group.get("scheduled", False):
            group.pop("scheduled", None)
    opt.load_state_dict(old)
    opt.step(functools.partial(fwd_bwd, opt, weight, bias, x))
    assert opt.param_groups[0]["maximize"] is False and opt.param_groups[0]["fused"] is False


@pytest.mark.parametrize("config", ["am1", "am1_tensor_lr", "msgd_heavy_ball"])
def test_load_state_dict_hooks_are_kept(config):
    """Issue 18 item 9: the values a load pre-hook writes survive (they were computed before the
    hooks and written back after), a prepended hook runs first, post-hooks see the loaded
    groups, and two optimizers never share an lr tensor."""
    p = torch.rand(2, 3, requires_grad=True)
    opt = make(config, "forloop", [p])
    sd = opt.state_dict()

    def hook1(optimizer, state_dict):
        state_dict["param_groups"][0]["lr"] = 0.002

    def hook2(optimizer, state_dict):
        new = copy.deepcopy(state_dict)
        new["param_groups"][0]["lr"] = 0.003
        return new

    opt.register_load_state_dict_pre_hook(hook1)
    opt.load_state_dict(sd)
    assert float(opt.param_groups[0]["lr"]) == 0.002
    opt.register_load_state_dict_pre_hook(hook2, prepend=True)
    opt.load_state_dict(sd)
    assert float(opt.param_groups[0]["lr"]) == 0.002          # hook1 ran last

    fresh = make(config, "forloop", [p])
    seen = {}
    fresh.register_load_state_dict_pre_hook(hook2)
    fresh.register_load_state_dict_post_hook(lambda o: seen.update(lr=float(o.param_groups[0]["lr"])))
    fresh.load_state_dict(sd)
    assert seen["lr"] == 0.003 and float(fresh.param_groups[0]["lr"]) == 0.003

    other = make(config, "forloop", [torch.rand(2, 3, requires_grad=True)])
    other.load_state_dict(opt.state_dict())
    for k, v in other.param_groups[0].items():
        if torch.is_tensor(v):
            assert v.data_ptr() != opt.param_groups[0][k].data_ptr(), f"{k} is shared"


@pytest.mark.parametrize("config", list(CONFIGS))
def test_state_dict_hooks_and_step_hooks(config):
    p = torch.tensor([1.0, 1.0])
    opt = make(config, "forloop", [p])
    opt.register_state_dict_pre_hook(lambda o: o.state.__setitem__("test", 1))

    def post(o, sd):
        sd["ran_pre_hook"] = sd["state"].pop("test", None) == 1
        return sd

    opt.register_state_dict_post_hook(post)
    assert opt.state_dict()["ran_pre_hook"] is True
    opt.state.pop("test")
    calls = []
    handles = [register_optimizer_step_pre_hook(lambda *a: calls.append(0)),
               opt.register_step_pre_hook(lambda *a: calls.append(1)),
               opt.register_step_post_hook(lambda *a: calls.append(2)),
               register_optimizer_step_post_hook(lambda *a: calls.append(5))]
    opt.step()
    opt.step()
    for h in handles:
        h.remove()
    opt.step()
    assert calls == [0, 1, 2, 5, 0, 1, 2, 5]


@pytest.mark.parametrize("config, impl", CASES)
def test_printable_and_deepcopy_keeps_public_attributes(config, impl, rng):
    params = [Parameter(torch.randn(2, 3, generator=rng)) for _ in range(2)]
    opt = make(config, impl, params)
    for _ in range(3):
        for p in params:
            p.grad = torch.rand(2, 3, generator=rng)
        opt.step()
    assert type(opt).__name__ in repr(opt)
    public = {k for k in opt.__dict__ if not k.startswith("_")}
    assert public == {k for k in copy.deepcopy(opt).__dict__ if not k.startswith("_")}


# -- fused: torch's rules -----------------------------------------------------------------------

@pytest.mark.parametrize("cls", [AM1, MemorySGD])
def test_fused_params_on_meta_fail_at_the_step_then_work_when_materialised(cls):
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 1))
    kw = dict(lr=0.1, momentum=0.9, kick=0.1) if cls is AM1 else dict(alpha=0.1, b=[0.9], c=[0.1], D=[[0.9]])
    opt = cls(model.parameters(), fused=True, **kw)           # construction accepts them, as torch's
    with torch.device("meta"):
        for p in model.parameters():
            p.grad = torch.rand_like(p)
    with pytest.raises(RuntimeError, match="`fused=True` requires all the params to be floating point Tensors"):
        opt.step()
    assert not opt.state                                       # no state made before the refusal
    opt.zero_grad(set_to_none=True)
    model.to_empty(device="cpu")
    for p in model.parameters():
        p.grad = torch.rand_like(p)
    opt.step()
    assert all(v.device.type == "cpu" for s in opt.state.values() for v in s.values())


@pytest.mark.parametrize("no_grad_scale", [False, True])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_fused_does_not_step_if_found_inf(config, no_grad_scale):
    params = [torch.ones(1) for _ in range(5)]
    before = [p.clone() for p in params]
    for p in params:
        p.grad = torch.ones_like(p)
    opt = make(config, "fused", params)
    opt.grad_scale = None if no_grad_scale else torch.ones(1)
    opt.found_inf = torch.ones(())
    opt.step()
    assert all(torch.equal(p, q) for p, q in zip(params, before))
    if "schedule" in config:
        assert opt.param_groups[0]["step"] == 0                 # a skipped step does not advance it


@pytest.mark.parametrize("cls", [AM1, MemorySGD])
def test_fused_and_foreach_together_refused(cls):
    kw = dict(lr=0.1, momentum=0.9, kick=0.1) if cls is AM1 else dict(alpha=0.1, b=[0.9], c=[0.1], D=[[0.9]])
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        cls([torch.ones(2, requires_grad=True)], fused=True, foreach=True, **kw)


@pytest.mark.parametrize("config", ["am1", "am1_schedule", "msgd_M2_general_D"])
def test_grad_scaler_with_fused_matches_unfused(config):
    """torch.amp.GradScaler (CPU): a fused optimizer gets grad_scale/found_inf and unscales in
    its step; the result equals the unfused optimizer's (scales are powers of 2: exact), and a
    step with an inf gradient is skipped by both."""
    results = []
    for impl in ("forloop", "fused"):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 2)
        opt = make(config, impl, model.parameters())
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
        assert getattr(opt, "_step_supports_amp_scaling", False) is (impl == "fused")
        for i in range(4):
            opt.zero_grad()
            loss = model(torch.full((3, 4), float("inf") if i == 2 else 0.5)).pow(2).sum()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        results.append([p.detach().clone() for p in model.parameters()] + [torch.tensor(scaler.get_scale())])
        if "schedule" in config:
            assert opt.param_groups[0]["step"] == 3
    for a, b in zip(*results):
        assert torch.equal(a, b)


# -- torch.compile ------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [AM1, MemorySGD])
def test_constructed_inside_a_compiled_function(cls):
    """Issue 18 item 11 (torch's dynamo test mode builds the optimizer inside the compiled test)."""
    kw = dict(lr=0.1, momentum=0.9, kick=0.1) if cls is AM1 else dict(alpha=0.1, b=[0.9], c=[0.1], D=[[0.9]])
    torch._dynamo.reset()

    @torch.compile(backend="eager")
    def build_and_step(p):
        opt = cls([p], **kw)
        p.grad = torch.ones_like(p)
        opt.step()
        return opt

    p = Parameter(torch.zeros(3))
    opt = build_and_step(p)
    first = -0.2 if cls is AM1 else -0.1        # -(lr + kick) g, or -alpha g
    assert isinstance(opt, cls) and torch.allclose(p.detach(), torch.full((3,), first))
    torch._dynamo.reset()


@pytest.mark.slow
def test_compiled_buffers_never_alias_gradients():
    """Issue 18 item 8: under inductor with tensor hyperparameters the first step's buffer was
    g itself (0 * beta + g folded to g), so zero_grad(set_to_none=False) zeroed the momentum.
    The buffers are now made before the compiled step (Dynamo runs _init_group eagerly)."""
    torch._dynamo.reset()
    ps = [Parameter(torch.linspace(-1, 1, 6)) for _ in range(3)]
    refs = [Parameter(p.detach().clone()) for p in ps]
    t = torch.tensor
    opts = [AM1([ps[0]], lr=t(0.1), momentum=0.9, kick=0.2),        # the audit's case: a tensor lr
            AM1([ps[1]], schedule=lambda s: (0.1, 0.9, 0.2)),
            MemorySGD([ps[2]], 0.1, [0.9, 0.2], [0.1, 0.1], [[0.9, 0.0], [0.1, 0.5]], lr=t(1.0))]
    ref_opts = [AM1([refs[0]], lr=0.1, momentum=0.9, kick=0.2),
                AM1([refs[1]], schedule=lambda s: (0.1, 0.9, 0.2)),
                MemorySGD([refs[2]], 0.1, [0.9, 0.2], [0.1, 0.1], [[0.9, 0.0], [0.1, 0.5]])]

    @torch.compile(backend="inductor")
    def step():
        for o in opts:
            o.step()

    for k in range(4):
        for p, r in zip(ps, refs):
            if p.grad is None:
                p.grad, r.grad = torch.ones(6), torch.ones(6)
            else:
                p.grad.fill_(1.0 + k)
                r.grad.fill_(1.0 + k)
        step()
        for o in ref_opts:
            o.step()
        for p, o in zip(ps, opts):
            grad_storage = p.grad.untyped_storage().data_ptr()
            assert all(v.untyped_storage().data_ptr() != grad_storage
                       for v in o.state[p].values() if torch.is_tensor(v))
            p.grad.zero_()                      # zero_grad(set_to_none=False)
        for r in refs:
            r.grad.zero_()
    for p, r in zip(ps, refs):
        torch.testing.assert_close(p.detach(), r.detach(), rtol=1e-6, atol=1e-6)
    torch._dynamo.reset()


# -- CUDA (skipped without a device) --------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.parametrize("config", list(CONFIGS))
def test_cuda_fused_matches_cpu_fused(config):
    results = []
    for dev in ("cpu", "cuda"):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 1)).double().to(dev)
        opt = make(config, "fused", model.parameters())
        x = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], dtype=torch.float64, device=dev).reshape(3, 2)
        for _ in range(7):
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
        results.append([p.detach().cpu() for p in model.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@cuda
@pytest.mark.parametrize("config", ["am1", "msgd_M2_general_D"])
def test_cuda_fused_does_not_step_if_found_inf(config):
    params = [torch.ones(1, device="cuda") for _ in range(5)]
    for p in params:
        p.grad = torch.ones_like(p)
    opt = make(config, "fused", params)
    opt.grad_scale = torch.ones(1, device="cuda")
    opt.found_inf = torch.ones((), device="cuda")
    opt.step()
    assert all(torch.equal(p.cpu(), torch.ones(1)) for p in params)


@cuda
def test_cuda_defaults_to_foreach():
    from unittest.mock import patch

    from memsgd.torch import _am1
    model = torch.nn.Linear(5, 5).cuda()
    opt = AM1(model.parameters(), lr=0.1, momentum=0.9, kick=0.1)
    model(torch.rand(2, 5, device="cuda")).sum().backward()
    with patch.object(_am1, "_multi_tensor_am1", wraps=_am1._multi_tensor_am1) as mocked:
        opt.step()
    assert mocked.called
