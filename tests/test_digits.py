"""The digits experiment split by job: experiment (digits), network (digits_model), Hessian
estimate (hessian); its missing extras named in one ImportError."""
import json
import subprocess
import sys

import numpy as np
import pytest

from memsgd.experiments import digits

from ._extras import need, requires


@pytest.mark.slow
def test_digits_experiment_smoke(tmp_path):
    need("torch")
    need("sklearn")
    need("matplotlib")
    seen = []
    result = digits.run(steps=40, batch_size=8, seed=0, out_dir=str(tmp_path), hidden=64,
                        progress=lambda done, total, label: seen.append((done, total, label)))
    assert set(result["curves"]) == {"SGD", "heavy ball", "Jacobi HB", "AM1"}
    assert "algorithm" in result["table"] and "AM1" in result["table"]
    assert seen and seen[-1][0] == seen[-1][1] == 4 * 40
    for name in ("digits_curves.png", "digits.json"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "digits.json").read_text())
    assert saved["config"]["steps"] == 40 and len(saved["rows"]) == 4
    for row in result["rows"]:
        assert row["blew_up_at"] is not None or np.isfinite(row["final_loss"])
        assert "diverged_at" not in row   # the engine's name; this is the training's own 100x rule
    assert result["lambda_max"] > 0


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(steps=0), ValueError, "steps must be >= 1"),
    (dict(steps=1.5), TypeError, "steps must be an integer"),
    (dict(batch_size=True), TypeError, "batch_size must be an integer"),
    (dict(seed=-1), ValueError, "seed must be >= 0"),
    (dict(delta=1.0), ValueError, r"delta must be in \[0, 1\)"),
    (dict(threads=0), ValueError, "threads must be >= 1"),
    (dict(progress="yes"), TypeError, "progress must be None or a callable"),
])
def test_digits_arguments_checked_before_any_work(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        digits.run(**{"out_dir": None, **kwargs})


# a finder that makes the named top-level modules unimportable, as if not installed (setting
# sys.modules[name] = None instead would break scipy/scikit-learn, which look torch up there)
BLOCK_IMPORTS = """import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, Block())
"""


@pytest.mark.slow
@pytest.mark.parametrize("blocked, extras", [  # the one not blocked must be there for its extra to go unnamed
    pytest.param(["torch"], "torch", marks=requires("sklearn")),
    pytest.param(["sklearn"], "data", marks=requires("torch")),
    (["torch", "sklearn"], "torch,data")])
def test_missing_extras_named_in_one_import_error(blocked, extras):
    """After only `pip install .`: one ImportError naming every missing extra, not a traceback
    per module (run in a subprocess where the modules cannot be imported)."""
    code = (BLOCK_IMPORTS.format(blocked=tuple(blocked)) + "from memsgd.experiments import digits\n"
            "try:\n    digits.run(steps=1, out_dir=None)\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip().endswith(f"pip install 'memsgd[{extras}]'") and out.count("\n") == 1
    assert out.startswith(f"memsgd reproduce digits needs {' and '.join(blocked)}")


@pytest.mark.slow
def test_hessian_power_iteration_matches_exact_eigenvalue():
    """Power iteration on Hessian-vector products against the full Hessian's top eigenvalue
    (torch.autograd.functional.hessian + numpy eigvalsh), on the digits network's loss."""
    torch = need("torch")
    from memsgd.experiments.digits_model import init_params, mse_loss
    from memsgd.experiments.hessian import top_hessian_eigenvalue

    g = torch.Generator().manual_seed(0)
    X = torch.randn(20, 3, generator=g, dtype=torch.float64)
    Y = torch.randn(20, 2, generator=g, dtype=torch.float64)
    params = [p.detach().double().requires_grad_() for p in init_params(3, 4, 2, seed=1)]
    sizes = [p.numel() for p in params]

    def flat_loss(theta):
        W, A = torch.split(theta, sizes)
        return mse_loss([W.view(4, 3), A.view(4, 2)], X, Y)

    H = torch.autograd.functional.hessian(flat_loss, torch.cat([p.detach().reshape(-1) for p in params]))
    exact = np.abs(np.linalg.eigvalsh(H.numpy())).max()
    estimate = top_hessian_eigenvalue(params, lambda ps: mse_loss(ps, X, Y), seed=3, iterations=100)
    assert estimate == pytest.approx(exact, rel=1e-6)


def test_digits_model_is_the_ntk_scaled_network():
    torch = need("torch")
    from memsgd.experiments.digits_model import forward, init_params, mse_loss
    W, A = init_params(5, 7, 3, seed=0)
    x = torch.randn(4, 5)
    expected = torch.tanh(x @ W.T) @ A / 7 ** 0.5
    torch.testing.assert_close(forward([W, A], x), expected, rtol=0, atol=0)
    y = torch.zeros(4, 3)
    torch.testing.assert_close(mse_loss([W, A], x, y), 0.5 * (expected ** 2).sum() / 4, rtol=1e-6, atol=0)
    assert W.requires_grad and A.requires_grad and W.shape == (7, 5) and A.shape == (7, 3)
