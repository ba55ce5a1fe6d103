"""Presets and algorithm objects: argument rules, reprs, immutability (issues 12 item 7, 13)."""
import copy
import pickle
import warnings

import numpy as np
import pytest

import memsgd as ms


@pytest.mark.parametrize("make, name", [
    (lambda: ms.gd(-0.1), "lr"),
    (lambda: ms.heavy_ball(-0.1, 0.9), "lr"),
    (lambda: ms.nesterov(-0.1, 0.9), "lr"),
    (lambda: ms.am1(-0.1, 0.9, 1.0), "lr"),
    (lambda: ms.am1(0.1, 0.9, -1.0), "kick"),
    (lambda: ms.qhm(-0.1, 0.9, 0.7), "lr"),
    (lambda: ms.dana(-0.1, 0.1, 0.1, 0.1), "g1"),
    (lambda: ms.dana(0.1, -0.1, 0.1, 0.1), "g2"),
    (lambda: ms.dana(0.1, 0.1, -0.1, 0.1), "g3"),
])
def test_presets_refuse_negative_learning_rates(make, name):
    """A negative learning rate ascends the loss (torch.optim refuses it too)."""
    with pytest.raises(ValueError, match=f"{name} must be >= 0"):
        make()


def test_presets_accept_zero_and_negative_momentum():
    ms.gd(0.0), ms.heavy_ball(0.0, -0.5), ms.am1(0.0, 0.5, 0.0)   # valid edges


def test_multistep_alpha_eff_is_inf_without_warning_like_matrix_form():
    """1 - sum a = 0 (R(1) = 0): both forms give inf, and Multistep no longer warns (divide by zero)."""
    ms_form = ms.Multistep([1.0], [0.1, 0.0])
    mat = ms.MemoryAlgorithm(0.1, [1.0], [0.1], [[1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ms_form.alpha_eff == np.inf
        assert mat.alpha_eff == np.inf


def test_preset_repr_says_what_it_is_and_keeps_the_matrix_form():
    hb = ms.heavy_ball(0.1, 0.9)
    assert repr(hb) == "heavy_ball(lr=0.1, momentum=0.9)"
    assert hb.matrix_form() == "MemoryAlgorithm(alpha=0.1, b=[0.9], c=[0.1], D=[[0.9]], e=[0.0])"
    assert hb.preset == ("heavy_ball", {"lr": 0.1, "momentum": 0.9})
    assert repr(ms.am1(np.float64(0.05), 0.9, 1)) == "am1(lr=0.05, momentum=0.9, kick=1.0)"  # no np.float64(...)
    custom = ms.MemoryAlgorithm(0.1, [0.9], [0.1], [[0.9]])
    assert repr(custom) == custom.matrix_form() and custom.preset is None
    # the repr rebuilds the same algorithm
    again = eval(repr(hb), {"heavy_ball": ms.heavy_ball})
    assert again.matrix_form() == hb.matrix_form()
    for clone in (pickle.loads(pickle.dumps(hb)), copy.deepcopy(hb)):
        assert repr(clone) == repr(hb) and clone.matrix_form() == hb.matrix_form()


def test_algorithms_are_immutable():
    """A changed alpha would silently disagree with the preset name in the repr."""
    hb = ms.heavy_ball(0.1, 0.9)
    with pytest.raises(AttributeError, match="immutable"):
        hb.alpha = 0.2
    with pytest.raises(ValueError, match="read-only"):
        hb.b[0] = 0.5
    step = ms.Multistep([0.5], [0.1, 0.2])
    with pytest.raises(ValueError, match="read-only"):
        step.a[0] = 0.1


def test_public_modules_define_all():
    import importlib
    for name in ("algorithms", "spectrum", "noise", "simulation", "theory", "theory.memory1"):
        module = importlib.import_module(f"memsgd.{name}")
        assert hasattr(module, "__all__")
        for public in module.__all__:
            assert hasattr(module, public), (name, public)
    assert "np" not in ms.theory.__all__
