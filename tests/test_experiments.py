"""The reproduction harness (issue 4): smoke tests with tiny settings, the Figure 1 claims on the
real settings (exact engine only, a few seconds), Figure 4 on a reduced grid, tuning against
an analytic optimum, the simulation cross-check, and the CLI.

Independent checks: exponents are compared with the closed-form predictions written here
(zeta, 2 zeta, zeta (1 + delta)); simulate_sgd (Monte Carlo of real SGD) against the exact
curve within 4 standard errors; tuning against the analytic best step size of GD.
"""
import json
import math
import re
import subprocess
import sys
import types

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum, loss_curve, schedules, simulate_sgd
from memsgd._steps import log_spaced_steps
from memsgd.cli import main
from memsgd.experiments import common, compare, fig1, fig4, tuning

from ._extras import requires


def _calls():
    seen = []

    def progress(done, total, label):
        seen.append((done, total, label))

    return seen, progress


# ------------------------------------------------------------------------------ smoke tests


@requires("matplotlib")
def test_fig1_smoke(tmp_path):
    seen, progress = _calls()
    r = fig1.run(fig1.small_config(), out_dir=tmp_path, progress=progress)
    for name in ("fig1.png", "fig1_simulation.png", "fig1.json"):
        assert (tmp_path / name).stat().st_size > 0
    data = json.loads((tmp_path / "fig1.json").read_text())
    assert data["checks"]["jacobi_noisy_diverges"] is True
    assert "Figure 1" in r["table"] and "Jacobi" in r["table"]
    assert seen[-1][0] == seen[-1][1] == len(seen)  # progress reached its total
    labels = [x["label"] for x in r["results"]]
    assert labels[0] == "SGD" and any("AM1" in s for s in labels)


@requires("matplotlib")
def test_fig4_smoke(tmp_path):
    seen, progress = _calls()
    r = fig4.run(fig4.small_config(), out_dir=tmp_path, progress=progress)
    for name in ("fig4.png", "fig4_curves.png", "fig4_simulation.png", "fig4.json"):
        assert (tmp_path / name).stat().st_size > 0
    json.loads((tmp_path / "fig4.json").read_text())
    assert len(r["results"]) == 2 and seen[-1][0] == seen[-1][1]
    # delta = 0.7 >= 1 - 1/nu = 0.5: no prediction, an honest status instead. Recompute the
    # curve and its slope here: it neither diverges nor rises within T = 2000, and its slope on
    # [200, 2000] (two-point, by hand) is more than 0.04 below the formula zeta (1 + delta).
    cfg = fig4.small_config()
    out = [x for x in r["results"] if x["delta"] == 0.7][0]
    L = loss_curve(schedules.am1_power_law(cfg.kick, 0.7, cfg.gamma, cfg.t0),
                   Spectrum.power_law(2.0, 1.0, head=cfg.head), Noise.gaussian(10), cfg.steps).loss
    assert np.all(np.isfinite(L)) and L[-1] <= 1.01 * L[1:].min()
    slope = math.log(L[200] / L[2000]) / math.log(10.0)
    assert slope < 0.5 * 1.7 - 0.04
    assert out["predicted_exponent"] is None and out["diverged_at"] is None
    assert out["status"] == "no divergence within T; slower than formula"
    # and the other branches of the status: delta = 0.25 < 0.5 is predicted and matched
    inside = [x for x in r["results"] if x["delta"] == 0.25][0]
    assert inside["status"] == "ok" and abs(inside["fitted_exponent"] - 0.5 * 1.25) <= 0.04


@requires("matplotlib")
def test_compare_smoke(tmp_path):
    seen, progress = _calls()
    r = compare.run(compare.small_config(), out_dir=tmp_path, progress=progress)
    methods = {x["method"] for x in r["results"]}
    assert methods == set(compare.METHODS)
    assert (tmp_path / "compare.json").exists() and any(p.suffix == ".png" for p in tmp_path.iterdir())
    total = sum(len(tuning.grid_points(g)) for g in compare.default_grids(2.0).values())
    assert seen[-1][:2] == (total, total)
    # each winner's loss is the minimum over its own grid: rerun heavy ball's grid point by point
    cfg = compare.small_config()
    spec = Spectrum.power_law(2.0, 1.0, head=cfg.head)
    grid = compare.default_grids(2.0)["heavy ball"]
    finals = [loss_curve(memsgd.heavy_ball(lr, m), spec, Noise.gaussian(10), cfg.steps).loss[-1]
              for lr in grid["lr"] for m in grid["momentum"]]
    hb = [x for x in r["results"] if x["method"] == "heavy ball"][0]
    assert hb["final_loss"] == min(f for f in finals if np.isfinite(f))
    assert memsgd.loss_curve(memsgd.heavy_ball(hb["best_params"]["lr"], hb["best_params"]["momentum"]), spec,
                             Noise.gaussian(10), cfg.steps).loss[-1] == hb["final_loss"]


# ------------------------------------------------------------------------------ Figure 1 claims


@pytest.fixture(scope="module")
def fig1_real():
    """The real Figure 1 settings (T = 1e5, infinite spectrum), exact curves only (~5 s)."""
    return fig1.run(fig1.Fig1Config(), simulate=False)


def test_fig1_claims_on_real_settings(fig1_real):
    cfg = fig1.Fig1Config()
    zeta = cfg.kappa / cfg.nu
    res = {x["label"]: x for x in fig1_real["results"]}
    sgd = res["SGD"]
    jac_clean = [x for x in fig1_real["results"] if "no noise" in x["label"]][0]
    jac_noisy = [x for x in fig1_real["results"] if "Jacobi" in x["label"] and "no noise" not in x["label"]][0]
    # stationary methods: the GD exponent zeta (signal-dominated: zeta = 0.5 < 2 - 1/nu = 1.5)
    assert abs(sgd["fitted_exponent"] - zeta) <= 0.01
    assert abs(res["heavy ball"]["fitted_exponent"] - zeta) <= 0.01
    # Jacobi HB: accelerated without noise, diverges with mini-batch noise
    assert jac_clean["fitted_exponent"] >= 1.8 * zeta
    assert jac_noisy["diverged_at"] is not None and jac_noisy["diverged_at"] < cfg.steps
    # AM1: stable, exponent zeta (1 + delta) within 0.04, below SGD at T
    for d in cfg.deltas:
        assert d < 1 - 1 / cfg.nu
        am1 = res[f"AM1 delta={d:g}"]
        assert am1["diverged_at"] is None
        assert abs(am1["fitted_exponent"] - zeta * (1 + d)) <= 0.04
        assert am1["final_loss"] < sgd["final_loss"]
    assert fig1_real["checks"]["all_pass"] is True


def test_fig1_fits_are_consistent_with_the_curves(fig1_real):
    """The table's fitted exponents are slopes of the engine's own curves: recompute one by hand."""
    cfg = fig1.Fig1Config()
    spec = Spectrum.power_law(cfg.nu, cfg.kappa, head=cfg.head)
    L = loss_curve(schedules.am1_power_law(cfg.kick, 0.3, cfg.gamma, cfg.t0), spec, Noise.gaussian(10), cfg.steps).loss
    t1, t2 = cfg.fit_window
    two_point = math.log(L[int(t1)] / L[int(t2)]) / math.log(t2 / t1)
    got = [x for x in fig1_real["results"] if x["label"] == "AM1 delta=0.3"][0]["fitted_exponent"]
    assert abs(got - two_point) <= 0.01


# ------------------------------------------------------------------------------ Figure 4 (reduced)


def test_fig4_exponents_reduced():
    cfg = fig4.Fig4Config(problems=((2.0, 1.0), (3.0, 0.75)), batch_sizes=(10,), deltas=(0.25, 0.45),
                          steps=20_000, fit_window=(2_000.0, 20_000.0), head=256)
    r = fig4.run(cfg, simulate=False)
    for x in r["results"]:
        assert x["diverged_at"] is None
        assert abs(x["fitted_exponent"] - x["zeta"] * (1 + x["delta"])) <= 0.04, x


# ------------------------------------------------------------------------------ tuning


def test_tune_finds_analytic_gd_step():
    """One eigenvalue, no noise: L_T = L_0 (1 - lr lambda)^(2T), minimised exactly at lr = 1/lambda."""
    lam = 0.4
    spec = Spectrum([lam], [1.0])
    res = tuning.tune(memsgd.gd, {"lr": [0.5 / lam, 0.9 / lam, 1.0 / lam, 1.3 / lam]}, spec, Noise.none(), 30)
    assert res.best == {"lr": pytest.approx(1.0 / lam, rel=1e-15)}
    for trial in res.trials:
        want = 0.5 * lam * (1 - trial["params"]["lr"] * lam) ** 60
        assert trial["final_loss"] == pytest.approx(want, rel=1e-12, abs=1e-300)


def test_tune_scores_divergence_as_inf_and_invalid_points():
    spec = Spectrum.power_law(2.0, 1.0, size=50)
    with pytest.warns(UserWarning, match=r"momentum=1.5\) will not converge"):   # unstable trials on purpose
        res = tuning.tune(memsgd.heavy_ball, {"lr": [0.5, 10.0], "momentum": [0.5, 1.5]}, spec, Noise.gaussian(1), 200)
    scores = {(t["params"]["lr"], t["params"]["momentum"]): t["score"] for t in res.trials}
    assert math.isinf(scores[(10.0, 0.5)])
    assert res.best == {"lr": 0.5, "momentum": 0.5}
    assert res.curve is not None and res.curve[-1] == res.score


@pytest.mark.parametrize("kwargs,name", [
    (dict(grid={}), "grid"),
    (dict(grid={"lr": []}), "grid"),
    (dict(grid={"lr": [float("nan")]}), "grid"),
    (dict(objective="best"), "objective"),
    (dict(steps=0), "steps"),
])
def test_tune_bad_input(kwargs, name):
    args = dict(factory=memsgd.gd, grid={"lr": [0.5]}, spectrum=Spectrum([1.0], [1.0]), noise=Noise.none(), steps=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        tuning.tune(**args)


@pytest.mark.parametrize("make,name", [
    (lambda: fig1.Fig1Config(steps=0), "steps"),
    (lambda: fig1.Fig1Config(fit_window=(10.0, 1e9)), "fit_window"),
    (lambda: fig1.Fig1Config(nu=1.0), "nu"),
    (lambda: fig1.Fig1Config(deltas=()), "deltas"),
    (lambda: fig1.Fig1Config(batch_size=0), "batch_size"),
])
def test_fig1_bad_config(make, name):
    with pytest.raises(ValueError, match=name):
        fig1.run(make(), simulate=False)


def test_fig4_and_compare_bad_config():
    with pytest.raises(ValueError, match="deltas"):
        fig4.run(fig4.Fig4Config(deltas=(-0.1,)))
    with pytest.raises(ValueError, match="methods"):
        compare.run(compare.CompareConfig(methods=("Adam",)))
    with pytest.raises(ValueError, match="batch_sizes"):
        compare.run(compare.CompareConfig(batch_sizes=(0,)))


def test_predictions():
    assert common.predicted_am1_exponent(2.0, 1.0, 0.3) == pytest.approx(0.65)
    assert common.predicted_am1_exponent(2.0, 1.0, 0.5) is None  # delta >= 1 - 1/nu
    assert common.predicted_stationary_exponent(2.0, 1.0) == 0.5
    assert common.predicted_stationary_exponent(2.0, 4.0) == 1.5  # noise-dominated: 2 - 1/nu


# ------------------------------------------------------------------------------ simulation cross-check


@pytest.mark.parametrize("algo", [
    schedules.am1_power_law(1.0, 0.3),
    memsgd.gd(1.0),
    schedules.schedule_free_sgd(1.0, 0.9),
], ids=["am1", "sgd", "schedule_free"])
def test_simulation_agrees_with_exact_curve(algo):
    """Real mini-batch SGD (Gaussian data, K = 40, B = 5, 256 runs, fixed seed) vs the exact
    curve of the same finite problem: |mean - exact| <= 4 standard errors at 10 log-spaced times
    up to T = 150 (family-wise false-alarm rate ~ 1e-3 for independent normal z)."""
    spec = Spectrum.power_law(2.0, 1.0, size=40)
    T = 150
    exact = loss_curve(algo, spec, Noise.gaussian(5), T).loss
    mean, se = simulate_sgd(algo, spec, 5, T, 256, seed=7, return_stderr=True)
    times = log_spaced_steps(T, 11)[1:]
    z, zmax = common.sim_agreement(mean, se, exact, times)
    assert zmax <= 4.0, z
    # the check has teeth: the exact curve of a different batch size is rejected
    wrong = loss_curve(algo, spec, Noise.gaussian(1), T).loss
    _, zwrong = common.sim_agreement(mean, se, wrong, times)
    assert zwrong > 4.0


def test_fig1_simulation_section_small():
    cfg = fig1.small_config()
    r = fig1.run(cfg, simulate=True)
    sim = r["simulation"]
    assert sim["runs"] == cfg.sim_runs and len(sim["algorithms"]) == 2
    assert r["checks"]["simulation_agrees"] is True


# ------------------------------------------------------------------------------ CLI


@pytest.mark.parametrize("target,heading,files", [
    ("fig1", "Figure 1:", {"fig1.png", "fig1_simulation.png", "fig1.json"}),
    ("fig4", "Figure 4:", {"fig4.png", "fig4_curves.png", "fig4_simulation.png", "fig4.json"}),
    ("compare", "Tuned comparison", {"compare_nu2_kappa1_B10.png", "compare.json"}),
])
@pytest.mark.slow
@requires("matplotlib")
def test_cli_reproduce_quick(tmp_path, capsys, target, heading, files):
    out = tmp_path / target
    assert main(["reproduce", target, "--quick", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert heading in captured.out and "wall time" in captured.out
    assert {p.name for p in out.iterdir()} == files
    for name in files:
        assert f"# wrote {out / name}" in captured.out
    assert captured.err == ""  # stderr is not a terminal here: no progress bar, no \r in logs


@requires("matplotlib", "tqdm")
def test_cli_reproduce_progress_bar(tmp_path, capsys):
    assert main(["reproduce", "fig1", "--quick", "--no-simulation", "--progress", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "fig1" in captured.err  # tqdm writes to stderr
    assert "all Figure 1 claims hold" in captured.out


def test_cli_reproduce_bad_input(tmp_path, capsys):
    assert main(["reproduce", "fig1", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "--steps" in capsys.readouterr().err


@requires("matplotlib")
def test_cli_digits_calls_experiment(tmp_path, monkeypatch, capsys):
    calls = {}

    def fake_run(**kwargs):
        calls.update(kwargs)
        if kwargs["progress"] is not None:
            kwargs["progress"](1, 1, "done")
        return {"table": "digits table"}

    fake = types.ModuleType("memsgd.experiments.digits")
    fake.run = fake_run
    monkeypatch.setitem(sys.modules, "memsgd.experiments.digits", fake)
    import memsgd.experiments as pkg
    monkeypatch.setattr(pkg, "digits", fake, raising=False)
    assert main(["reproduce", "digits", "--steps", "7", "--batch", "3", "--seed", "5", "--progress",
                 "--out", str(tmp_path)]) == 0
    assert calls["steps"] == 7 and calls["batch_size"] == 3 and calls["seed"] == 5
    assert calls["out_dir"] == str(tmp_path) and callable(calls["progress"])
    assert "digits table" in capsys.readouterr().out


def _reproduce_targets():
    import argparse

    from memsgd.cli import build_parser
    top = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    sub = next(a for a in top.choices["reproduce"]._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_reproduce_target_takes_quick():
    # the docs promise --quick for every target (docs/reproductions.md, docs/cli.md)
    targets = _reproduce_targets()
    assert {"fig1", "fig4", "compare", "schedules", "digits", "practice"} <= set(targets)
    for name, parser in targets.items():
        assert parser.parse_args(["--quick"]).quick is True, name


def test_every_reproduce_target_is_listed_where_targets_are_listed():
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[1]
    cli_md = (root / "docs" / "cli.md").read_text()
    table = (root / "docs" / "reproductions.md").read_text()
    listing = re.search(r"`memsgd reproduce ([a-z0-9 |-]+)`", cli_md).group(1).replace(" ", "").split("|")
    import memsgd.cli.reproduce as module
    for name in _reproduce_targets():
        assert name in listing, f"docs/cli.md's list of reproduce targets lacks {name}"
        assert f"| `{name}` |" in table, f"docs/reproductions.md's table lacks {name}"
        # the docstring's summary: "`memsgd reproduce a|b|...`: ..." (it may wrap)
        summary = module.__doc__.split("`:")[0].replace("\n", "").split("|")
        assert name in [t.strip().removeprefix("`memsgd reproduce ") for t in summary], \
            f"memsgd.cli.reproduce's docstring lacks {name}"


def test_cli_digits_quick_is_a_small_run(tmp_path, monkeypatch, capsys):
    calls = {}

    def fake_run(**kwargs):
        calls.update(kwargs)
        return {"table": "digits table"}

    fake = types.ModuleType("memsgd.experiments.digits")
    fake.run = fake_run
    monkeypatch.setitem(sys.modules, "memsgd.experiments.digits", fake)
    import memsgd.experiments as pkg
    monkeypatch.setattr(pkg, "digits", fake, raising=False)
    assert main(["reproduce", "digits", "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    assert calls["steps"] <= 1000 and calls["hidden"] <= 200
    assert main(["reproduce", "digits", "--quick", "--steps", "50", "--no-progress", "--out", str(tmp_path)]) == 0
    assert calls["steps"] == 50
    calls.clear()
    assert main(["reproduce", "digits", "--no-progress", "--out", str(tmp_path)]) == 0
    assert calls["steps"] == 10000 and "hidden" not in calls   # the experiment's own network


def test_cli_digits_missing_extras_one_line(tmp_path):
    """`memsgd reproduce digits` after only `pip install .`: one line naming the extras, exit 1."""
    from tests.test_digits import BLOCK_IMPORTS
    code = (BLOCK_IMPORTS.format(blocked=("torch", "sklearn"))
            + "from memsgd.cli import main\n"
            + f"raise SystemExit(main(['reproduce', 'digits', '--out', {str(tmp_path)!r}]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().endswith("pip install 'memsgd[torch,data]'"), out.stderr


@pytest.mark.parametrize("nu,kappa", [(3.0, 1.0), (1.5, 0.75)])
def test_jacobi_nu_b_equal_zeta_accelerates_other_problems(nu, kappa):
    """nu_b = zeta (fig1's default) doubles the GD exponent on other power laws too (noiseless)."""
    spec = Spectrum.power_law(nu, kappa, head=256)
    zeta = kappa / nu
    L = loss_curve(schedules.jacobi_heavy_ball(zeta), spec, Noise.none(), 4000).loss
    assert memsgd.fit_exponent(L, 400, 4000) >= 1.8 * zeta
