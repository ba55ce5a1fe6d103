"""`memsgd reproduce scaling`: the 4+3 phase plane pipeline (the full run's numbers: docs/scaling-laws.md)."""
import numpy as np
import pytest

from memsgd.cli import main
from memsgd.experiments import scaling
from memsgd.scaling import compute_optimal


def tiny(**kw):
    base = dict(phases=("II",), flops=(1e4, 1e5, 4), fit_decades=1.0, d_range=(16.0, 256.0), d_per_octave=2.0,
                max_steps=10_000, momentum_phases=("II",), momentum_algorithms=("dana-decaying",))
    base.update(kw)
    return scaling.ScalingConfig(**base)


def test_run_reports_compute_optimal_and_the_theory():
    cfg = tiny()
    res = scaling.run(cfg)
    (sgd, dana) = res["results"]
    direct = compute_optimal("sgd", 1.25, 0.75, cfg.budgets(), d=cfg.d_grid(), max_steps=cfg.max_steps)
    assert direct.interior.all()
    assert sgd["xi"] == direct.d_exponent and sgd["eta"] == direct.loss_exponent
    assert (sgd["sgd_xi"], sgd["sgd_eta"]) == (0.375, 0.75)
    # Phase II already at these sizes: the loss exponent within 0.02 of (2a+2b-1)/(2(a+b)) = 0.75
    assert sgd["eta"] == pytest.approx(0.75, abs=0.02)
    assert sgd["xi"] == pytest.approx(0.375, abs=0.05)
    # dimension-adapted momentum outscales SGD (Ferbach et al. 2025)
    assert dana["algorithm"] == "dana-decaying" and dana["eta"] > sgd["eta"] + 0.05
    assert "xi theory" in res["table"] and "II" in res["table"]


@pytest.mark.slow
def test_cli_reproduce_scaling_quick(tmp_path, capsys):
    out = tmp_path / "scaling"
    assert main(["reproduce", "scaling", "--quick", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Compute-optimal exponents" in captured.out and "wall time" in captured.out
    files = {"scaling_phase_plane.png", "scaling_frontiers.png", "scaling_momentum.png", "scaling.json"}
    assert {p.name for p in out.iterdir()} == files
    assert captured.err == ""


@pytest.mark.parametrize("kwargs,match", [
    (dict(phases=("V",)), "phases must be among"),
    (dict(momentum_algorithms=("adam",)), "momentum_algorithms must be among"),
    (dict(flops=(1e5, 1e4, 5)), "flops must be"),
    (dict(fit_decades=-1.0), "fit_decades must be > 0"),
    (dict(d_range=(1.0, 10.0)), "d_range must be"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scaling.run(tiny(**kwargs))


def test_cli_bad_flops(tmp_path, capsys):
    assert main(["reproduce", "scaling", "--flops", "1e4,1e5", "--out", str(tmp_path)]) != 0
    assert "--flops" in capsys.readouterr().err


def test_d_grid_and_budgets():
    cfg = tiny()
    np.testing.assert_allclose(cfg.budgets(), [1e4, 10 ** (13 / 3), 10 ** (14 / 3), 1e5])
    assert list(cfg.d_grid()) == [16, 23, 32, 45, 64, 91, 128, 181, 256]
