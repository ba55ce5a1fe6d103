"""Theory against real training (memsgd reproduce practice): the tau fit against closed forms,
the exact finite-data recursion against the engine (where the SE form is exact) and against
Monte Carlo training, the experiment end to end in quick mode, the CLI wiring."""
import itertools
import json
import math
import sys
import types

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum, loss_curve, schedules
from memsgd.experiments.empirical import estimate_tau, exact_mean_loss

from ._extras import need

LAM = np.array([1.0, 0.5, 0.3, 0.1, 0.05])


@pytest.fixture
def one_torch_thread():
    """Training on one torch thread: the batched runs are small, and threads waiting for a core on a
    busy machine cost far more than they save (the experiment does the same)."""
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def rademacher():
    """All 2^5 sign patterns scaled by sqrt(lambda): H = diag(lambda) exactly, and the noise on the
    eigen-diagonal is exactly SE with tau = (1, 1) (E s^4 = 1, independent coordinates)."""
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=LAM.size)))
    return signs * np.sqrt(LAM)


# -- estimate_tau --------------------------------------------------------------------------

def test_tau_of_independent_signs_is_translation_invariant_exactly(rademacher):
    rot = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 5)))[0]   # any basis
    for x in (rademacher, rademacher @ rot):
        tau1, tau2 = estimate_tau(x)
        assert tau1 == pytest.approx(1.0, abs=1e-12) and tau2 == pytest.approx(1.0, abs=1e-12)


def test_tau_of_gaussian_and_of_a_gaussian_scale_mixture():
    """x = r g, g ~ N(0, diag lambda), r in {1, 2} with equal odds: E[z_i^2 z_j^2] = E r^4 lambda_i
    lambda_j (i != j) and E z_i^4 = 3 E r^4 lambda_i^2, so with m = E r^4 / (E r^2)^2 = 17/6.25:
    tau1 = m, tau2 = 1 - 2 m (r = 1: the Gaussian (1, -1)). Sampling error ~ 1/sqrt(n)."""
    rng = np.random.default_rng(1)
    g = rng.standard_normal((400_000, LAM.size)) * np.sqrt(LAM)
    tau1, tau2 = estimate_tau(g)
    assert tau1 == pytest.approx(1.0, abs=0.02) and tau2 == pytest.approx(-1.0, abs=0.03)
    r = rng.choice([1.0, 2.0], size=(g.shape[0], 1))
    m = 17 / 2 / (5 / 2) ** 2
    tau1, tau2 = estimate_tau(r * g)
    assert tau1 == pytest.approx(m, rel=0.03) and tau2 == pytest.approx(1 - 2 * m, rel=0.03)


def test_estimate_tau_argument_checks():
    with pytest.raises(ValueError, match="x must be 2-dimensional"):
        estimate_tau(np.ones(3))
    with pytest.raises(ValueError, match="at least two directions"):
        estimate_tau(np.outer(np.arange(1.0, 5.0), [1.0, 2.0]))


# -- exact_mean_loss -----------------------------------------------------------------------

@pytest.mark.parametrize("algo", [
    memsgd.heavy_ball(0.3, 0.8), memsgd.nesterov(0.3, 0.8), memsgd.gd(0.5),
    memsgd.MemoryAlgorithm(0.1, [0.5, -0.3], [0.2, 0.1], [[0.6, 0.2], [-0.1, 0.5]]),
    schedules.am1_power_law(0.5, 0.5),
], ids=["heavy_ball", "nesterov", "gd", "memory2", "am1_schedule"])
def test_exact_recursion_equals_engine_where_se_is_exact(rademacher, algo):
    """On the sign-pattern data the SE form with tau = (1, 1) is exact on the eigen-diagonal and the
    diagonal blocks evolve on their own: the full-matrix recursion must equal loss_curve."""
    rot = np.linalg.qr(np.random.default_rng(2).standard_normal((5, 5)))[0]
    x = rademacher @ rot                                   # H not diagonal in the input basis
    w_star = np.random.default_rng(3).standard_normal((5, 2))
    spec = Spectrum.from_features(x, x @ w_star)
    for B in (1, 3):
        exact = exact_mean_loss(algo, x, w_star, B, 40)
        engine = loss_curve(algo, spec, Noise(B, 1.0, 1.0), 40).loss
        np.testing.assert_allclose(exact, engine, rtol=1e-12, atol=0)


def test_exact_recursion_and_batched_training_agree_within_sampling_error():
    """A small skewed data set (SE not exact): mean of 3000 real torch runs (train_seeds, AM1)
    against the exact expected loss, |z| <= 4 at every recorded step (fixed seeds)."""
    need("torch")
    from memsgd.experiments.linear_training import train_seeds
    from memsgd.torch import AM1

    rng = np.random.default_rng(4)
    x = rng.exponential(size=(12, 3)) * np.array([1.0, 0.6, 0.3])
    w_star = rng.standard_normal((3, 1))
    algo = memsgd.am1(0.05, 0.7, 0.1)
    record = [0, 1, 2, 4, 8, 16, 30]
    exact = exact_mean_loss(algo, x, w_star, 2, 30, record)
    losses = train_seeds(lambda ps: AM1(ps, lr=0.05, momentum=0.7, kick=0.1), x, x @ w_star, w_star,
                         2, 30, record, seeds=3000, seed=5)
    mean, se = losses.mean(axis=1), losses.std(axis=1, ddof=1) / math.sqrt(losses.shape[1])
    assert mean[0] == pytest.approx(exact[0], rel=1e-12)
    z = (mean[1:] - exact[1:]) / se[1:]
    assert np.max(np.abs(z)) <= 4.0, z
    # the loss falls well below L_0 (the comparison is not of a flat curve)
    assert exact[-1] < 0.2 * exact[0]


def test_exact_mean_loss_with_raw_targets_is_label_noise_where_the_residual_is_symmetric(rademacher):
    """Each sign pattern twice, with residual +s and -s: E[r^2 x x^T] = s^2 H exactly and the cross
    term E[r (x^T p) x x^T] vanishes, so the exact finite-data loss with these targets must equal the
    engine with label noise s^2 (SE exact here, tau = (1, 1)) to rounding."""
    rot = np.linalg.qr(np.random.default_rng(6).standard_normal((5, 5)))[0]
    x = np.vstack([rademacher @ rot] * 2)
    w_star = np.random.default_rng(7).standard_normal(5)
    s = 0.7
    r = np.concatenate([np.full(32, s), np.full(32, -s)])
    targets = x @ w_star + r
    w_ls = np.linalg.lstsq(x, targets, rcond=None)[0]
    np.testing.assert_allclose(w_ls, w_star, rtol=0, atol=1e-12)
    spec = Spectrum.from_features(x, x @ w_star)
    for algo in (memsgd.heavy_ball(0.3, 0.8), memsgd.am1(0.1, 0.7, 0.2)):
        for B in (1, 4):
            exact = exact_mean_loss(algo, x, w_ls, B, 60, targets=targets)
            engine = loss_curve(algo, spec, Noise(B, 1.0, 1.0, label_noise=s * s), 60).loss
            np.testing.assert_allclose(exact, engine, rtol=1e-12, atol=0)
            realizable = exact_mean_loss(algo, x, w_ls, B, 60)
            assert exact[-1] > 2 * realizable[-1]            # the label noise matters at this horizon


def test_exact_mean_loss_with_raw_targets_against_training(one_torch_thread):
    """Residuals correlated with the features (heteroscedastic, nonzero mean per sample): the exact
    loss keeps E[r^2 x x^T] and the transient cross term as they are; the mean of 3000 real torch
    runs agrees within |z| <= 4 at every recorded step, and the realizable loss is far off."""
    pytest.importorskip("torch")
    from memsgd.experiments.linear_training import train_seeds
    from memsgd.torch import MemorySGD

    rng = np.random.default_rng(8)
    x = rng.exponential(size=(14, 3)) * np.array([1.0, 0.6, 0.3])
    y = x @ rng.standard_normal((3, 2)) + rng.standard_normal((14, 2)) * x[:, :1]
    w_ls = np.linalg.lstsq(x, y, rcond=None)[0]
    algo = memsgd.heavy_ball(0.05, 0.7)
    record = [0, 1, 2, 4, 8, 16, 40, 80]
    exact = exact_mean_loss(algo, x, w_ls, 2, 80, record, targets=y)
    losses = train_seeds(lambda ps: MemorySGD.from_algorithm(ps, algo), x, y, w_ls, 2, 80, record,
                         seeds=3000, seed=9)
    mean, se = losses.mean(axis=1), losses.std(axis=1, ddof=1) / math.sqrt(losses.shape[1])
    assert mean[0] == pytest.approx(exact[0], rel=1e-12)
    z = (mean[1:] - exact[1:]) / se[1:]
    assert np.max(np.abs(z)) <= 4.0, z
    realizable = exact_mean_loss(algo, x, w_ls, 2, 80, record)
    assert np.abs(mean[-1] - realizable[-1]) / se[-1] > 20


def test_raw_label_prediction_matches_training_on_digits(one_torch_thread):
    """docs/practice.md, raw labels: the one-hot labels of scikit-learn's digits on the pixels are not
    realizable; the prediction with label noise sigma2 = E|r|^2 of the least-squares residual (and
    tau fitted to the data) must be the mean excess loss of 200 real torch runs (heavy ball, B = 10)
    within 10 % and within 4 standard errors plus the SE approximation's 3 % at every recorded step
    from t = 20 on, while the prediction without label noise is several times too low."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from memsgd.data import load_digits, one_hot
    from memsgd.experiments.linear_training import train_seeds
    from memsgd.torch import MemorySGD

    X, labels = load_digits(standardized=False)
    X, Y = X / 16.0, one_hot(labels, 10)
    w_ls = np.linalg.lstsq(X, Y, rcond=None)[0]
    sigma2 = float(np.mean(np.sum((Y - X @ w_ls) ** 2, axis=1)))
    spec = Spectrum.from_features(X, X @ w_ls)
    tau1, tau2 = estimate_tau(X)
    B, T, beta = 10, 300, 0.9
    algo = memsgd.heavy_ball(0.3 * (1 - beta), beta)
    record = [0, 20, 50, 100, 200, 300]
    predicted = loss_curve(algo, spec, Noise(B, tau1, tau2, label_noise=sigma2), T).loss[record]
    noiseless = loss_curve(algo, spec, Noise(B, tau1, tau2), T).loss[record]
    losses = train_seeds(lambda ps: MemorySGD.from_algorithm(ps, algo), X, Y, w_ls, B, T, record,
                         seeds=200, seed=10, dtype="float32")
    mean, se = losses.mean(axis=1), losses.std(axis=1, ddof=1) / math.sqrt(losses.shape[1])
    gap = np.abs(mean - predicted)[1:]
    assert np.all(gap <= 4 * se[1:] + 0.03 * predicted[1:]), (mean, predicted, se)
    assert gap[-1] <= 0.1 * predicted[-1]
    assert mean[-1] > 3 * noiseless[-1]


def test_exact_mean_loss_argument_checks():
    x = np.ones((4, 2))
    with pytest.raises(TypeError, match="algorithm must be a MemoryAlgorithm or a Schedule"):
        exact_mean_loss("hb", x, np.ones(2), 1, 3)
    with pytest.raises(ValueError, match=r"w_star must have shape \(2,\) or \(2, outputs\)"):
        exact_mean_loss(memsgd.gd(0.1), x, np.ones(3), 1, 3)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        exact_mean_loss(memsgd.gd(0.1), x, np.ones(2), 0, 3)


# -- the experiment ------------------------------------------------------------------------

@pytest.mark.slow
def test_practice_quick_end_to_end(tmp_path):
    need("torch")
    need("sklearn")
    need("matplotlib")
    from memsgd.experiments import practice
    seen = []
    cfg = practice.small_config()
    result = practice.run(cfg, out_dir=tmp_path, progress=lambda d, t, label: seen.append((d, t)))
    for name in ("practice.png", "practice.json"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "practice.json").read_text())
    rows = saved["rows"]
    assert len(rows) == 4 * 2 * len(cfg.batch_sizes)         # (features, targets) x algorithms x B
    cases = [("pixels", "realizable"), (f"relu{cfg.width}", "realizable"), ("pixels", "raw labels"),
             (f"relu{cfg.raw_width}", "raw labels")]
    assert {(r["features"], r["targets"], r["algorithm"], r["batch_size"]) for r in rows} == {
        (f, g, a, b) for f, g in cases for a in practice.ALGORITHMS for b in cfg.batch_sizes}
    assert (tmp_path / "practice_raw_labels.png").stat().st_size > 0
    for r in rows:
        assert r["diverged_seeds"] == 0 and r["gap_fitted"]["gap"] is not None
        assert max(r["noise_sum_fitted"], r["noise_sum_gaussian"]) == pytest.approx(cfg.noise_sum, rel=1e-9)
        assert "gap_exact" in r                               # every dimension <= exact_max_dim here
        assert (r["label_noise"] > 0) == (r["targets"] == "raw labels")
        assert r["train_mean"][0] == pytest.approx(r["theory_exact"][0], rel=1e-12)   # same L_0
    assert "max gap, fitted tau" in result["table"] and seen[-1][0] == seen[-1][1]


def test_practice_config_checks():
    from memsgd.experiments import practice
    for kwargs, exc, match in [(dict(seeds=1), ValueError, "seeds must be >= 2"),
                               (dict(noise_sum=1.0), ValueError, r"noise_sum must be in \(0, 1\)"),
                               (dict(batch_sizes=()), ValueError, "batch_sizes must not be empty"),
                               (dict(steps=10.0), TypeError, "steps must be an integer"),
                               (dict(momentum=1.0), ValueError, r"momentum must be in \[0, 1\)"),
                               (dict(mnist_images="a"), ValueError, "must be given together")]:
        with pytest.raises(exc, match=match):
            practice.run(practice.PracticeConfig(**kwargs))


def test_mnist_features_from_idx_files(tmp_path):
    from memsgd.experiments import practice

    from .test_data import write_idx
    rng = np.random.default_rng(0)
    ip = write_idx(tmp_path / "images", rng.integers(0, 256, size=(30, 4, 4), dtype=np.uint8))
    lp = write_idx(tmp_path / "labels", rng.integers(0, 10, size=30, dtype=np.uint8))
    cfg = practice.PracticeConfig(mnist_images=str(ip), mnist_labels=str(lp), mnist_samples=20, width=7).validate()
    name, feats, labels = practice.feature_sets(cfg)
    assert name == "MNIST (20 of 30)" and feats["pixels"].shape == (20, 16) and feats["relu7"].shape == (20, 7)
    assert labels.shape == (20, 10) and feats["pixels"].max() <= 1.0 and np.all(feats["relu7"] >= 0)


def test_cli_practice_calls_experiment(tmp_path, monkeypatch, capsys):
    from memsgd.cli import main
    calls = {}

    def fake_run(cfg, out_dir, progress):
        calls.update(cfg=cfg, out_dir=out_dir)
        return {"table": "practice table", "files": []}

    fake = types.ModuleType("memsgd.experiments.practice")
    from memsgd.experiments import practice
    fake.run, fake.PracticeConfig, fake.small_config = fake_run, practice.PracticeConfig, practice.small_config
    monkeypatch.setitem(sys.modules, "memsgd.experiments.practice", fake)
    import memsgd.experiments as pkg
    monkeypatch.setattr(pkg, "practice", fake, raising=False)
    assert main(["reproduce", "practice", "--quick", "--seeds", "5", "--out", str(tmp_path), "--no-progress"]) == 0
    assert calls["cfg"].seeds == 5 and calls["cfg"].steps == practice.small_config().steps
    assert calls["out_dir"] == str(tmp_path) and "practice table" in capsys.readouterr().out


def test_plot_panels_survives_a_diverging_run(tmp_path):
    """A run that blows up (huge finite values, then inf) does not stretch the axis (or crash)."""
    need("matplotlib")
    from memsgd.plotting import plot_panels
    t = np.arange(1, 50)
    blow_up = np.where(t < 40, np.exp(np.minimum(t, 39) * 17.0), np.inf)
    panels = [dict(title="a", series=[dict(label="theory", t=t, y=1.0 / t),
                                      dict(label="training", t=t, y=blow_up, err=0.1 * blow_up)])]
    plot_panels(panels, tmp_path / "p.png", ncols=1)
    assert (tmp_path / "p.png").stat().st_size > 0
