"""The noisy quadratic model of Zhang et al. 2019 (memsgd reproduce nqm): memsgd's loss curves
against NQM's closed forms written in the NQM's own variables (tests/reference.py ``nqm_loss``:
per-coordinate second-moment recursions, powered by doubling in extended precision, never memsgd),
the steps-to-target search against a brute-force grid on the closed form, the critical batch size,
the experiment end to end in quick mode and the CLI wiring."""
import math
import sys
import types

import numpy as np
import pytest

from memsgd import loss_curve
from memsgd.experiments import nqm
from memsgd.long_horizon import loss_at
from tests.reference import nqm_loss

K = 10_000
H = 1.0 / np.arange(1, K + 1)

# (method, lr, momentum / decay): one near the stability edge (heavy ball, lr ~ 2 (1 + beta)) and
# the settings the search picks at small and large batch sizes
CASES = [("sgd", 1.9, {}), ("sgd", 0.02, {}), ("momentum", 0.5, dict(momentum=0.9)),
         ("momentum", 3.5, dict(momentum=0.8)), ("momentum", 2e-4, dict(momentum=0.999)),
         ("ema", 1.9, dict(decay=0.99)), ("ema", 0.2, dict(decay=0.9998))]


@pytest.mark.parametrize("p", [0.5])
@pytest.mark.parametrize("method,lr,extra", CASES, ids=[f"{m}-{lr}" for m, lr, _ in CASES])
def test_loss_curves_equal_the_nqm_closed_forms(method, lr, extra, p):
    """All K = 1e4 curvatures h_i = 1/i, x_i(0)^2 = 1, noise H / 4: the exact recursion equals the
    closed form to 1e-12 relative up to step 1000."""
    algo = nqm.nqm_algorithm(method, lr, p, **extra)
    steps = [0, 1, 2, 10, 100, 1000]
    curve = loss_curve(algo, nqm.nqm_spectrum(K, bins=None), nqm.nqm_noise(4), steps[-1], progress=False).loss
    for t in steps:
        expected = nqm_loss(H, 1.0, lr, 4, t, method=method, precondition=p, **extra)
        assert curve[t] == pytest.approx(expected, rel=1e-12, abs=0), t


@pytest.mark.parametrize("p", [0.0, 0.75])
@pytest.mark.parametrize("method,lr,extra", CASES, ids=[f"{m}-{lr}" for m, lr, _ in CASES])
def test_loss_at_equals_the_nqm_closed_forms_up_to_1e9(method, lr, extra, p):
    """The notebook's binned NQM (K = 1e4 in 100 geometric bins, counts as weights): loss_at at
    1e4, 1e6 and 1e9 steps equals the closed form on the rounded curvatures to 1e-12 relative."""
    spec = nqm.nqm_spectrum(K, bins=100)
    counts = spec.weights
    algo = nqm.nqm_algorithm(method, lr, p, **extra)
    steps = [10 ** 4, 10 ** 6, 10 ** 9]
    for B in (4, 4096):
        far = loss_at(algo, spec, nqm.nqm_noise(B), steps, warn=False).loss
        for t, value in zip(steps, far):
            expected = nqm_loss(spec.eigenvalues, 1.0, lr, B, t, method=method, precondition=p, counts=counts,
                                **extra)
            assert value == pytest.approx(expected, rel=1e-12, abs=0), (t, B)


def test_binned_spectrum_is_the_notebooks_discretisation():
    """Each h_i rounded down to the largest of 100 geometric edges from 1 to 1/K not above it, the
    counts as weights: the loss is the closed form on the rounded curvatures, node by node."""
    spec = nqm.nqm_spectrum(K, bins=100)
    edges = np.geomspace(1.0, 1.0 / K, 100)
    rounded = np.array([edges[edges <= h * (1 + 1e-12)].max() for h in H])
    assert spec.weights.sum() == K
    np.testing.assert_allclose(np.repeat(spec.eigenvalues, spec.weights.astype(int)), np.sort(rounded)[::-1],
                               rtol=1e-12)
    algo = nqm.nqm_algorithm("momentum", 0.3, 0.25, momentum=0.9)
    got = loss_at(algo, spec, nqm.nqm_noise(64), [5000], warn=False).loss[0]
    assert got == pytest.approx(nqm_loss(rounded, 1.0, 0.3, 64, 5000, method="momentum", momentum=0.9,
                                         precondition=0.25), rel=1e-12)


def _reference_hit(spec, lr, B, target, p=0.0):
    """First t with the closed-form SGD loss <= target, by bisection (the loss falls monotonically)."""
    def loss(t):
        return nqm_loss(spec.eigenvalues, 1.0, lr, B, t, precondition=p, counts=spec.weights)
    if loss(10 ** 9) > target:
        return None
    lo, hi = 0, 1
    while loss(hi) > target:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if loss(mid) > target:
            lo = mid
        else:
            hi = mid
    return hi


@pytest.mark.parametrize("B,p", [(16, 0.0), (4096, 0.5)])
def test_best_steps_to_target_beats_a_fine_grid_of_the_closed_form(B, p):
    """SGD on the binned NQM (K = 1000, 30 bins): the search's steps to target is the closed form's
    hitting time at the learning rate it returns, no learning rate of a fine log grid (ratio 1.02)
    does better beyond the search's tolerance, and its certified lower bound is below the grid's best
    (a bound from an inner minimiser caught in a local minimum would not be)."""
    cfg = nqm.NQMConfig(dimension=1000, bins=30, rtol=1e-3).validate()
    spec = nqm.nqm_spectrum(1000, 30)
    search = nqm._Search("sgd", p, spec, nqm.nqm_noise(B), cfg)
    best = search.best(nqm._start("sgd", None, 0.01))
    assert _reference_hit(spec, best["lr"], B, cfg.target, p) == best["steps"]
    hits = [_reference_hit(spec, lr, B, cfg.target, p)
            for lr in np.exp(np.arange(math.log(1e-3), math.log(1.999), 0.02))]
    grid_best = min(t for t in hits if t is not None)
    assert best["steps"] <= grid_best * (1 + cfg.rtol)
    assert best["lower"] < grid_best
    assert best["steps"] >= (1 - 2e-3) * grid_best - 1       # the grid at ratio 1.02 is near the optimum


def test_steps_to_target_is_the_first_crossing():
    spec = nqm.nqm_spectrum(1000, 30)
    algo = nqm.nqm_algorithm("sgd", 0.05)
    t = nqm.steps_to_target(algo, spec, nqm.nqm_noise(256), 0.01)
    assert t == _reference_hit(spec, 0.05, 256, 0.01)
    assert nqm.steps_to_target(nqm.nqm_algorithm("sgd", 1.5), spec, nqm.nqm_noise(4), 0.01) is None   # floor above


def test_critical_batch_size_on_a_known_curve():
    """Perfect scaling T = 1000 / B up to B = 100, then T = 10: samples double at B = 200 exactly
    (the ratio is a power of B between the grid points, so log-log interpolation is exact)."""
    B = 2 ** np.arange(2, 12)
    T = np.maximum(1000.0 / B, 10.0)
    assert nqm.critical_batch_size(B, T, 2.0) == pytest.approx(200.0, rel=1e-12)
    assert nqm.critical_batch_size(B, 1000.0 / B, 2.0) is None


def test_nqm_config_checks():
    for kwargs, exc, match in [(dict(dimension=1), ValueError, "dimension must be >= 2"),
                               (dict(bins=1), ValueError, "bins must be >= 2"),
                               (dict(target=0.0), ValueError, "target must be > 0"),
                               (dict(preconditioners=(1.0,)), ValueError, r"preconditioners must be .* in \[0, 1\)"),
                               (dict(methods=("adam",)), ValueError, "methods must be a non-empty subset"),
                               (dict(critical_factor=1.0), ValueError, "critical_factor must be > 1"),
                               (dict(workers=0), ValueError, "workers must be >= 1")]:
        with pytest.raises(exc, match=match):
            nqm.run(nqm.NQMConfig(**kwargs))
    with pytest.raises(TypeError, match="config must be an NQMConfig"):
        nqm.run("quick")


@pytest.mark.slow
def test_nqm_quick_end_to_end(tmp_path):
    """The experiment end to end on a tiny model (the pieces have fast tests above)."""
    pytest.importorskip("matplotlib")
    cfg = nqm.NQMConfig(dimension=100, bins=10, batch_sizes=(4, 4096), preconditioners=(0.0, 0.5),
                        methods=("sgd", "momentum"), rtol=0.02)
    seen = []
    result = nqm.run(cfg, out_dir=tmp_path, progress=lambda d, t, label: seen.append((d, t)))
    for name in ("nqm_steps.png", "nqm_lr.png", "nqm_curves.png", "nqm.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert len(result["rows"]) == 2 * 2 * 2 and seen[-1][0] == seen[-1][1] == 4
    steps = {(r["method"], r["preconditioner"], r["batch_size"]): r["steps"] for r in result["rows"]}
    for p in cfg.preconditioners:
        for B in cfg.batch_sizes:    # heavy ball contains SGD (beta = 0): never worse beyond the tolerance
            assert steps[("momentum", p, B)] <= steps[("sgd", p, B)] * (1 + cfg.rtol)
        assert steps[("sgd", p, 4096)] < steps[("sgd", p, 4)]
    assert steps[("sgd", 0.5, 4096)] < steps[("sgd", 0.0, 4096)]      # preconditioning helps at large B
    assert "B_crit" in result["table"]


def test_cli_nqm_calls_experiment(tmp_path, monkeypatch, capsys):
    from memsgd.cli import main
    calls = {}

    def fake_run(cfg, out_dir, progress):
        calls.update(cfg=cfg, out_dir=out_dir)
        return {"table": "nqm table", "files": []}

    fake = types.ModuleType("memsgd.experiments.nqm")
    fake.run, fake.NQMConfig, fake.small_config = fake_run, nqm.NQMConfig, nqm.small_config
    monkeypatch.setitem(sys.modules, "memsgd.experiments.nqm", fake)
    import memsgd.experiments as pkg
    monkeypatch.setattr(pkg, "nqm", fake, raising=False)
    assert main(["reproduce", "nqm", "--quick", "--workers", "3", "--out", str(tmp_path), "--no-progress"]) == 0
    assert calls["cfg"].workers == 3 and calls["cfg"].dimension == nqm.small_config().dimension
    assert calls["out_dir"] == str(tmp_path) and "nqm table" in capsys.readouterr().out
    assert main(["reproduce", "nqm", "--out", str(tmp_path), "--no-progress"]) == 0
    assert calls["cfg"].workers == 2 and calls["cfg"].dimension == 10_000
