"""`memsgd reproduce schedules` in its quick settings: structure, files, and the relations that hold
by construction (each optimised schedule is no worse than its start; the reported losses are the
engine's)."""
import json

import numpy as np
import pytest

from memsgd import Noise, Spectrum, loss_curve
from memsgd.cli import main
from memsgd.experiments import schedule_design

from ._extras import need, requires


@pytest.mark.slow
def test_quick_run_tables_files_and_consistency(tmp_path):
    matplotlib = need("matplotlib")
    matplotlib.use("pdf")  # a caller's backend: the figures must not switch it (regression: use("Agg"))
    cfg = schedule_design.small_config()
    try:
        result = schedule_design.run(cfg, out_dir=tmp_path)
        assert matplotlib.get_backend() == "pdf"
    finally:
        matplotlib.use("agg")
    names = [e["method"] for e in result["memory1"]] + [e["method"] for e in result["memory0"]]
    assert names == list(schedule_design.MEMORY1) + list(schedule_design.MEMORY0)
    for name in names:
        assert name in result["table"]
    assert {p.name for p in tmp_path.iterdir()} == {
        "schedule_design_losses.png", "schedule_design_memory1.png", "schedule_design_sgd.png",
        "schedule_design.json"}
    data = json.loads((tmp_path / "schedule_design.json").read_text())
    assert data["checks"]["free_memory1_over_am1"] == pytest.approx(result["checks"]["free_memory1_over_am1"])
    by = {e["method"]: e for e in result["memory1"]}
    assert by["AM1 family"]["ratio"] == 1.0
    # horizon exponents only where a method was tuned again at the second horizon
    assert by["heavy ball"].get("horizon_exponent") is None and by["SGD"]["horizon_exponent"] is not None


def test_reported_losses_are_the_engines():
    cfg = schedule_design.small_config()
    cfg.long_steps = None
    spec = Spectrum.power_law(cfg.nu, cfg.kappa, head=cfg.head)
    from memsgd.design import optimize_schedule
    res = optimize_schedule("free_memory1", spec, Noise.gaussian(cfg.batch_size), cfg.steps, knots=cfg.knots,
                            max_iterations=cfg.free_iterations)
    curve = loss_curve(res.schedule, spec, Noise.gaussian(cfg.batch_size), cfg.steps)
    np.testing.assert_allclose(res.loss, curve.loss, rtol=1e-12)
    assert res.value <= res.start_value


def test_config_validation():
    cfg = schedule_design.small_config()
    cfg.long_steps = cfg.steps
    with pytest.raises(ValueError, match="long_steps"):
        schedule_design.run(cfg)
    with pytest.raises(TypeError, match="ScheduleDesignConfig"):
        schedule_design.run({"steps": 10})


@pytest.mark.slow
@requires("matplotlib")
def test_cli(tmp_path, capsys):
    assert main(["reproduce", "schedules", "--quick", "--no-progress", "--long-steps", "0", "--out",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "free memory-1" in out and "wall time" in out and "L* at T=" not in out
    assert main(["reproduce", "schedules", "--quick", "--steps", "0", "--out", str(tmp_path)]) == 2
