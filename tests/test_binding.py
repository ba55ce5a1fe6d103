"""The binding's one calling convention, its docstrings and its argument checks (cpp/bindings.cpp).

Every entry that runs the recursion or its maps is
``entry(spectrum, algorithm, noise, <inputs>, *, <options>, threads=0, control=None)``; these tests
read the signatures from the checked-in stub (python/memsgd/_core.pyi, itself checked against the
module by test_stub.py) and the docstrings from the module.
"""
import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

import memsgd
from memsgd import _core

STUB = ast.parse(Path(memsgd.__file__).with_name("_core.pyi").read_text())
FUNCTIONS = {n.name: n for n in STUB.body if isinstance(n, ast.FunctionDef)}
# the entries that take arrays, with the arguments they start with
ENTRIES = {
    "evolve": ("spectrum", "algorithm", "noise", "steps"),
    "loss_gradient": ("spectrum", "algorithm", "noise", "steps", "loss_weights"),
    "evolve_batch": ("spectra", "algorithms", "noises", "steps", "record"),
    "moment_poles": ("eigenvalues", "algorithm", "noise"),
    "stationary_moments": ("eigenvalues", "algorithm", "noise"),
    "generating_sums": ("eigenvalues", "algorithm", "noise"),
    "solve_renewal": ("U", "U_prime", "V", "V_prime", "method"),
}

GD = (np.array([0.5]), np.zeros((1, 0)), np.zeros((1, 0)), np.zeros((1, 0, 0)), np.zeros((1, 0)))
HB2 = (np.full(2, 0.1), np.full((2, 1), 0.9), np.ones((2, 1)), np.full((2, 1, 1), 0.9), np.zeros((2, 1)))
SPECTRUM = (np.array([1.0, 0.5]), np.ones(2), np.ones(2))
NOISE = (np.array([0.1]), np.array([-0.1]))


def test_entries_start_with_the_problem_in_one_order():
    for name, first in ENTRIES.items():
        args = [a.arg for a in FUNCTIONS[name].args.args]
        assert tuple(args[:len(first)]) == first, (name, args)


def test_threads_and_control_are_keyword_only_and_last():
    # every call that runs something (the sizing functions state_bytes and gradient_bytes take a
    # thread count as one of the sizes they add up)
    seen = 0
    for name in [*ENTRIES, "elementwise_step"]:
        f = FUNCTIONS[name]
        positional = [a.arg for a in f.args.args]
        kwonly = [a.arg for a in f.args.kwonlyargs]
        tail = [k for k in kwonly if k in ("threads", "control")]
        if not tail and "threads" not in positional and "control" not in positional:
            continue
        seen += 1
        assert "threads" not in positional and "control" not in positional, name
        assert kwonly[-len(tail):] == tail, (name, kwonly)
        assert tail in (["threads"], ["control"], ["threads", "control"]), (name, kwonly)
    assert seen == 6   # solve_renewal runs on one thread: control only, the others both


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_entry_docstrings_give_arguments_returns_and_errors(name):
    doc = getattr(_core, name).__doc__
    for section in ("Args:", "Returns:", "Raises:"):
        assert section in doc, (name, section)
    f = FUNCTIONS[name]
    for a in f.args.args + f.args.kwonlyargs:
        assert a.arg in doc.split("Args:", 1)[1], (name, a.arg)


def test_every_function_and_class_has_a_docstring():
    for name in dir(_core):
        obj = getattr(_core, name)
        if name.startswith("_") or not (callable(obj) or inspect.isclass(obj)):
            continue
        # pybind11 puts the signature on the first line
        assert len((obj.__doc__ or "").split("\n", 1)[-1].strip()) >= 40, name
    for member in ("steps_done", "configs_done", "cancel"):
        assert getattr(_core.RunControl, member).__doc__, member


def test_the_problem_comes_as_tuples():
    with pytest.raises(TypeError,
                       match=r"^spectrum must be a tuple \(eigenvalues, weights, scales\[, decay_scale\]\)$"):
        _core.evolve(list(SPECTRUM), GD, NOISE, 3)
    with pytest.raises(TypeError, match=r"^algorithm of configuration 1 must be a tuple"):
        _core.evolve_batch([SPECTRUM] * 2, [GD, list(GD)], [NOISE] * 2, 3)
    with pytest.raises(ValueError, match=r"^noise must be \(coupling, self_noise\) or"):
        _core.evolve(SPECTRUM, GD, NOISE[:1], 3)


def test_shapes_are_named_with_their_rule():
    with pytest.raises(ValueError, match=r"^c must have shape \(T, M\) = \(2, 1\), got \(2, 2\)$"):
        _core.evolve(SPECTRUM, HB2[:2] + (np.ones((2, 2)),) + HB2[3:], NOISE, 2)


def test_the_stationary_maps_take_one_row_and_one_entry():
    lam = SPECTRUM[0]
    poles, _, _ = _core.moment_poles(lam, tuple(a[:1] for a in HB2), NOISE)
    assert poles.shape == (2, 3)
    with pytest.raises(ValueError, match=r"^algorithm must be stationary \(one row"):
        _core.moment_poles(lam, HB2, NOISE)
    with pytest.raises(ValueError, match=r"^noise must be stationary \(one entry per array\)$"):
        _core.stationary_moments(lam, tuple(a[:1] for a in HB2), (np.zeros(2), np.zeros(2)))


def test_one_array_object_passed_twice_gives_the_bits_of_two_copies():
    # the converter converts a shared object once; the core must see the same numbers
    w = np.ones(2)
    shared = _core.evolve((SPECTRUM[0], w, w), GD, NOISE, 20)
    copies = _core.evolve((SPECTRUM[0], w.copy(), w.copy()), GD, NOISE, 20)
    for a, b in zip(shared, copies):
        assert np.array_equal(a, b)
