"""Regression tests for the audit of memsgd.torch (each failed before its fix): a rejected
param group leaves the optimizer unchanged; foreign or mismatched state dicts are refused at
load time; scheduled and unscheduled AM1 states do not mix; deepcopy/pickle keep the schedule;
MemorySGD validates coefficients like MemoryAlgorithm."""
import copy
import pickle

import pytest

from ._extras import need

torch = need("torch")

import memsgd  # noqa: E402
from memsgd import schedules  # noqa: E402
from memsgd.torch import AM1, MemorySGD  # noqa: E402

SCHED = schedules.am1_power_law(0.3, 0.5)


def snapshot(opt):
    """Everything observable about an optimizer: groups (params by identity) and state."""
    groups = [{k: (list(map(id, v)) if k == "params" else
                   (v.clone() if isinstance(v, torch.Tensor) else v)) for k, v in g.items()}
              for g in opt.param_groups]
    state = {id(p): {k: v.clone() for k, v in st.items()} for p, st in opt.state.items()}
    return groups, state


def assert_same(a, b):
    (ga, sa), (gb, sb) = a, b
    assert len(ga) == len(gb) and sa.keys() == sb.keys()
    for x, y in zip(ga, gb):
        assert x.keys() == y.keys()
        for k in x:
            if isinstance(x[k], torch.Tensor):
                assert torch.equal(x[k], y[k])
            else:
                assert x[k] == y[k]
    for pid in sa:
        assert sa[pid].keys() == sb[pid].keys()
        assert all(torch.equal(sa[pid][k], sb[pid][k]) for k in sa[pid])


def stepped(opt, params, steps=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        opt.step()
    return opt


MAKERS = {
    "am1": lambda ps: AM1(ps, lr=0.1, momentum=0.9, kick=0.2),
    "am1_schedule": lambda ps: AM1(ps, schedule=SCHED),
    "memory_sgd": lambda ps: MemorySGD(ps, 0.1, [0.9, 0.1], [0.1, 0.05], [[0.9, 0.0], [0.1, 0.5]]),
}

BAD_GROUPS = {
    "am1": [({"lr": -1.0}, ValueError, "lr must be >= 0"), ({"momentum": "0.9"}, TypeError, "momentum must be a real"),
            ({"kick": float("inf")}, ValueError, "kick must be finite"),
            ({"maximize": 1}, TypeError, "maximize must be a bool"),
            ({"capturable": "yes"}, TypeError, "capturable must be a bool")],
    "am1_schedule": [({"lr": 0.1}, ValueError, "follows a schedule"), ({"step": -1}, ValueError, "step must be >= 0")],
    "memory_sgd": [({"lr": -1.0}, ValueError, "lr must be >= 0"), ({"b": [True, 0.1]}, TypeError, "b must be an array"),
                   ({"D": [[0.9]]}, ValueError, r"D must have shape \(2, 2\)"),
                   ({"foreach": "no"}, TypeError, "foreach must be a bool or None")],
}


# -- add_param_group ----------------------------------------------------------------------

@pytest.mark.parametrize("kind, bad, exc, match",
                         [(k, *row) for k, rows in BAD_GROUPS.items() for row in rows])
def test_rejected_param_group_leaves_optimizer_unchanged(kind, bad, exc, match):
    p = torch.nn.Parameter(torch.ones(3))
    q = torch.nn.Parameter(torch.ones(2))
    opt = stepped(MAKERS[kind]([p]), [p])
    before = snapshot(opt)
    with pytest.raises(exc, match=match):
        opt.add_param_group({"params": [q], **bad})
    assert_same(snapshot(opt), before)
    q.grad = torch.ones(2)
    opt.step()                                   # q is not optimized (it was never added)
    assert torch.equal(q.detach(), torch.ones(2))


# -- load_state_dict ----------------------------------------------------------------------

FOREIGN = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.1),
    **MAKERS,
}


@pytest.mark.parametrize("source, target", [(s, t) for s in FOREIGN for t in MAKERS if s != t])
def test_state_dict_from_another_optimizer_type_is_refused_at_load(source, target):
    p = torch.nn.Parameter(torch.ones(3))
    saved = stepped(FOREIGN[source]([p]), [p]).state_dict()
    q = torch.nn.Parameter(torch.ones(3))
    opt = stepped(MAKERS[target]([q]), [q])
    before = snapshot(opt)
    with pytest.raises(ValueError, match="state_dict"):
        opt.load_state_dict(saved)
    assert_same(snapshot(opt), before)
    stepped(opt, [q])                            # still steps


@pytest.mark.parametrize("kind", list(MAKERS))
def test_state_dict_from_another_model_shape_is_refused_at_load(kind):
    p = torch.nn.Parameter(torch.ones(4, 2))
    saved = stepped(MAKERS[kind]([p]), [p]).state_dict()
    q = torch.nn.Parameter(torch.ones(8))
    opt = MAKERS[kind]([q])
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"has shape \(4, 2\), the parameter has shape \(8,\)"):
        opt.load_state_dict(saved)
    assert_same(snapshot(opt), before)
    r1, r2 = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):   # torch's check
        MAKERS[kind]([r1, r2]).load_state_dict(saved)
    with pytest.raises(ValueError, match="must be a dict with 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


def test_memory_sgd_state_of_another_memory_is_refused():
    p = torch.nn.Parameter(torch.ones(3))
    saved = stepped(MAKERS["memory_sgd"]([p]), [p]).state_dict()
    saved["param_groups"][0].update(b=(0.9,), c=(0.1,), D=((0.9,),))   # M = 1 but two buffers
    opt = MemorySGD([torch.nn.Parameter(torch.ones(3))], 0.1, [0.9], [0.1], [[0.9]])
    with pytest.raises(ValueError, match=r"keys \['memory_buffer_2'\] that MemorySGD does not use"):
        opt.load_state_dict(saved)


def test_state_dict_with_invalid_hyperparameters_is_refused():
    p = torch.nn.Parameter(torch.ones(3))
    saved = stepped(MAKERS["am1"]([p]), [p]).state_dict()
    saved["param_groups"][0]["lr"] = -0.5
    opt = MAKERS["am1"]([torch.nn.Parameter(torch.ones(3))])
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("saved_with, loaded_into", [("am1_schedule", "am1"), ("am1", "am1_schedule")])
def test_scheduled_and_unscheduled_am1_states_do_not_mix(saved_with, loaded_into):
    p = torch.nn.Parameter(torch.ones(3))
    saved = stepped(MAKERS[saved_with]([p]), [p]).state_dict()
    opt = MAKERS[loaded_into]([torch.nn.Parameter(torch.ones(3))])
    before = snapshot(opt)
    with pytest.raises(ValueError, match="resume into an AM1 constructed like the one that saved it"):
        opt.load_state_dict(saved)
    assert_same(snapshot(opt), before)


# -- copies keep the schedule ----------------------------------------------------------------

@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("schedule", [SCHED, schedules.jacobi_heavy_ball(1.0)], ids=["am1_power_law", "jacobi"])
def test_copies_keep_the_schedule(how, schedule):
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = stepped(AM1([p], schedule=schedule), [p], steps=3)
    if how == "deepcopy":
        opt2 = copy.deepcopy(opt)
        p2 = opt2.param_groups[0]["params"][0]
    else:
        opt2 = pickle.loads(pickle.dumps(opt))
        p2 = opt2.param_groups[0]["params"][0]
    assert opt2.schedule is not None and opt2.param_groups[0]["step"] == 3
    stepped(opt, [p], steps=4, seed=5)
    stepped(opt2, [p2], steps=4, seed=5)
    assert torch.equal(p.detach(), p2.detach())
    assert opt2.param_groups[0]["step"] == 7


# -- MemorySGD coefficients follow MemoryAlgorithm's rules -----------------------------------

@pytest.mark.parametrize("args, exc, match", [
    ((True, [0.9], [0.1], [[0.9]]), TypeError, "alpha must be a real number"),
    (("0.1", [0.9], [0.1], [[0.9]]), TypeError, "alpha must be a real number"),
    ((0.1 + 0j, [0.9], [0.1], [[0.9]]), TypeError, "alpha must be a real number"),
    ((0.1, ["0.9"], [0.1], [[0.9]]), TypeError, "b must be an array of real numbers"),
    ((0.1, [True], [0.1], [[0.9]]), TypeError, "b must be an array of real numbers"),
    ((0.1, [0.9], [1j], [[0.9]]), TypeError, "c must be real"),
    ((0.1, [0.9], [0.1], [["x"]]), TypeError, "D must be an array of real numbers"),
    ((0.1, torch.tensor([True]), [0.1], [[0.9]]), TypeError, "b must be an array of real numbers"),
    ((0.1, [0.9], torch.tensor([0.1 + 0j]), [[0.9]]), TypeError, "c must be real"),
])
def test_memory_sgd_coefficients_validated_like_memory_algorithm(args, exc, match):
    with pytest.raises(exc, match=match):
        memsgd.MemoryAlgorithm(*(a.numpy() if isinstance(a, torch.Tensor) else a for a in args))
    with pytest.raises(exc, match=match):
        MemorySGD([torch.nn.Parameter(torch.zeros(2))], *args)
