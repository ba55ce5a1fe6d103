"""Each preset reproduces its method's textbook update, written the way its authors write it."""
import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum, loss_curve

from .reference import run_matrix_form

STEPS = 40
TOL = 1e-14  # relative to the largest iterate norm: the two forms differ only by rounding


def quadratic(seed=0, d=6):
    rng = np.random.default_rng(seed)
    Qm, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = rng.uniform(0.05, 1.0, d)
    H = Qm @ np.diag(lam) @ Qm.T
    w_star = rng.standard_normal(d)
    return H, w_star, lam, Qm


def textbook(method, H, w_star, steps, **hp):
    grad = lambda w: H @ (w - w_star)
    d = w_star.size
    w = np.zeros(d)
    out = [w.copy()]
    if method == "sgd":
        for _ in range(steps):
            w = w - hp["lr"] * grad(w)
            out.append(w.copy())
    elif method == "heavy_ball":  # Polyak 1964: w+ = w - a grad(w) + beta (w - w-)
        w_prev = w.copy()
        for _ in range(steps):
            w, w_prev = w - hp["lr"] * grad(w) + hp["momentum"] * (w - w_prev), w
            out.append(w.copy())
    elif method == "nesterov":  # Sutskever et al. 2013: v+ = beta v - a grad(w + beta v), w+ = w + v+
        v = np.zeros(d)
        for _ in range(steps):
            v = hp["momentum"] * v - hp["lr"] * grad(w + hp["momentum"] * v)
            w = w + v
            out.append(w.copy())
    elif method == "am1":  # torch-style momentum buffer plus a kick
        v = np.zeros(d)
        for _ in range(steps):
            g = grad(w)
            v = hp["momentum"] * v + g
            w = w - hp["lr"] * v - hp["kick"] * g
            out.append(w.copy())
    elif method == "qhm":  # Ma & Yarats 2019
        buf = np.zeros(d)
        for _ in range(steps):
            g = grad(w)
            buf = hp["momentum"] * buf + (1 - hp["momentum"]) * g
            w = w - hp["lr"] * ((1 - hp["nu"]) * g + hp["nu"] * buf)
            out.append(w.copy())
    elif method == "dana":  # Paquette et al., optax-style DANA with constant Delta
        y = np.zeros(d)
        for _ in range(steps):
            g = grad(w)
            y = (1 - hp["delta"]) * y + hp["g1"] * g
            w = w - (hp["g2"] * g + hp["g3"] * y)
            out.append(w.copy())
    return np.array(out)


CASES = [
    ("sgd", memsgd.gd, dict(lr=0.7)),
    ("heavy_ball", memsgd.heavy_ball, dict(lr=0.3, momentum=0.8)),
    ("nesterov", memsgd.nesterov, dict(lr=0.3, momentum=0.8)),
    ("am1", memsgd.am1, dict(lr=0.05, momentum=0.9, kick=0.6)),
    ("qhm", memsgd.qhm, dict(lr=0.8, momentum=0.9, nu=0.7)),
    ("dana", memsgd.dana, dict(g1=0.2, g2=0.3, g3=0.4, delta=0.3)),
]


@pytest.mark.parametrize("method,preset,hp", CASES, ids=[c[0] for c in CASES])
def test_preset_matrix_form_reproduces_textbook_update(method, preset, hp):
    H, w_star, _, _ = quadratic()
    expected = textbook(method, H, w_star, STEPS, **hp)
    algo = preset(**hp)
    got = run_matrix_form(lambda t: algo.parameters(), H, w_star, STEPS)
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= TOL * scale


@pytest.mark.parametrize("method,preset,hp", CASES, ids=[c[0] for c in CASES])
def test_engine_noiseless_loss_equals_textbook_trajectory_loss(method, preset, hp):
    H, w_star, lam, Qm = quadratic(seed=1)
    traj = textbook(method, H, w_star, STEPS, **hp)
    loss = 0.5 * np.einsum("ti,ij,tj->t", traj - w_star, H, traj - w_star)
    spec = Spectrum(lam, (Qm.T @ w_star) ** 2)
    curve = loss_curve(preset(**hp), spec, Noise.none(), STEPS)
    np.testing.assert_allclose(curve.loss, loss, rtol=1e-11)


def test_alpha_eff_of_presets():
    assert memsgd.heavy_ball(0.1, 0.9).alpha_eff == pytest.approx(1.0, rel=1e-14)
    assert memsgd.am1(0.01, 0.99, 0.5).alpha_eff == pytest.approx(0.5 + 1.0, rel=1e-13)
    assert memsgd.qhm(0.3, 0.9, 0.7).alpha_eff == pytest.approx(0.3, rel=1e-13)
    assert memsgd.dana(0.2, 0.3, 0.4, 0.25).alpha_eff == pytest.approx(0.3 + 0.2 * 0.4 / 0.25, rel=1e-13)
    assert memsgd.nesterov(0.1, 0.5).alpha_eff == pytest.approx(0.2, rel=1e-14)
