"""`memsgd curve` and the project's two documented commands."""
import json
import pathlib

import numpy as np
import pytest

import memsgd
from memsgd.cli import main
from tests._strict_json import strict_loads

from ._extras import requires

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_curve_json_matches_library(capsys):
    rc = main(["curve", "--nu", "2", "--kappa", "1", "--size", "300", "--algo", "am1", "--lr", "0.01",
               "--momentum", "0.95", "--kick", "0.5", "--batch", "4", "--steps", "500", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    curve = memsgd.loss_curve(memsgd.am1(0.01, 0.95, 0.5), memsgd.Spectrum.power_law(2, 1, size=300),
                              memsgd.Noise.gaussian(4), 500)
    t = np.array(out["t"])
    assert t[0] == 0 and t[-1] == 500
    np.testing.assert_array_equal(np.array(out["loss"]), curve.loss[t])
    assert out["diverged_at"] is None


@requires("matplotlib")
def test_curve_table_and_plot(tmp_path, capsys):
    png = tmp_path / "c.png"
    rc = main(["curve", "--algo", "gd", "--lr", "0.5", "--batch", "inf", "--steps", "100", "--plot", str(png)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "L_t" in text and png.stat().st_size > 1000


def test_curve_reports_divergence(capsys):
    rc = main(["curve", "--algo", "gd", "--lr", "3", "--size", "10", "--batch", "inf", "--steps", "300"])
    assert rc == 0
    assert "diverged at step" in capsys.readouterr().out


def test_curve_bad_batch_is_a_clean_error(capsys):
    assert main(["curve", "--batch", "zero", "--steps", "10"]) == 2
    assert "--batch" in capsys.readouterr().err


# ------------------------------------------------------------------------------ friction a new user hit

def _err(capsys):
    return capsys.readouterr().err


def _parse(argv):
    from memsgd.cli import build_parser
    return build_parser().parse_args(argv)


@pytest.mark.parametrize("text,value", [("100000", 100000), ("1e5", 100000), ("1E5", 100000),
                                        ("100000.0", 100000), (" 7 ", 7)])
def test_steps_accept_integral_numbers(text, value):
    assert _parse(["curve", "--steps", text]).steps == value


@pytest.mark.parametrize("text", ["1.5", "1e-3", "abc", "inf", "nan", "0", "-5"])
def test_steps_refuse_the_rest(capsys, text):
    assert main(["curve", "--steps", text]) == 2
    err = _err(capsys)
    assert "--steps" in err and "Traceback" not in err


def test_curve_warns_of_exponential_growth_below_the_divergence_threshold(capsys):
    # gd(1) on 10 eigenvalues with B = 2: the frozen-time noise sum exceeds 1, the loss grows like
    # e^(0.062 t) but is still far below 1e30 L0 at T = 300, so only the growth diagnostic tells.
    argv = ["curve", "--algo", "gd", "--lr", "1", "--size", "10", "--batch", "2", "--steps", "300"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "diverged" not in text and "grows exponentially" in text
    assert main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    curve = memsgd.loss_curve(memsgd.gd(1.0), memsgd.Spectrum.power_law(2, 1, size=10), memsgd.Noise.gaussian(2), 300)
    assert out["diverged_at"] is None and curve.grows_exponentially
    assert out["growth_rate"] == curve.growth_rate and 0.05 < out["growth_rate"] < 0.08
    assert main(argv[:4] + ["0.8"] + argv[5:]) == 0             # lr 0.8: converges, no warning
    assert "grows exponentially" not in capsys.readouterr().out


@pytest.mark.parametrize("argv,option", [
    (["--lr", "-1"], "--lr"), (["--lr", "0"], "--lr"), (["--lr", "nan"], "--lr"),
    (["--kick", "-0.5", "--algo", "am1"], "--kick"),
    (["--batch", "0"], "--batch"), (["--batch", "2.5"], "--batch"), (["--nu", "-2"], "--nu"),
    (["--size", "0"], "--size"),
    (["--points", "1"], "--points"), (["--points", "-5"], "--points"), (["--tau1", "inf"], "--tau1"),
])
def test_bad_values_are_one_line_errors_naming_the_option(capsys, argv, option):
    assert main(["curve"] + argv) == 2
    err = _err(capsys)
    assert option in err.splitlines()[-1] and "Traceback" not in err


@pytest.mark.parametrize("algo,stray", [("sgd", "--momentum"), ("heavy_ball", "--kick"), ("am1", "--delta"),
                                        ("am1_power_law", "--lr"), ("jacobi_heavy_ball", "--momentum")])
def test_options_a_preset_does_not_take_are_refused(capsys, algo, stray):
    assert main(["curve", "--algo", algo, stray, "0.5", "--steps", "10"]) == 2
    err = _err(capsys).strip()
    assert err.count("\n") == 0 and stray in err and f"--algo {algo}" in err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"memsgd {memsgd.__version__}"


def _curve_json(capsys, argv):
    assert main(["curve", "--size", "200", "--batch", "5", "--steps", "300", "--json"] + argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("argv,make", [
    (["--algo", "am1_power_law", "--kick", "0.5", "--delta", "0.3", "--gamma", "0.9", "--t0", "5"],
     lambda: memsgd.schedules.am1_power_law(0.5, 0.3, 0.9, 5.0)),
    (["--algo", "am1_power_law"], lambda: memsgd.schedules.am1_power_law(1.0, 0.45, 1.0, 10.0)),
    (["--algo", "jacobi_heavy_ball", "--nu-b", "0.7"], lambda: memsgd.schedules.jacobi_heavy_ball(0.7, 1.0)),
    # default nu_b: zeta = kappa / nu of the problem; default lambda_max: --scale
    (["--algo", "jacobi_heavy_ball", "--nu", "2", "--kappa", "1.5", "--scale", "2"],
     lambda: memsgd.schedules.jacobi_heavy_ball(0.75, 2.0)),
    (["--algo", "schedule_free_sgd", "--lr", "2", "--momentum", "0.8"],
     lambda: memsgd.schedules.schedule_free_sgd(2.0, 0.8)),
])
def test_scheduled_presets(capsys, argv, make):
    out = _curve_json(capsys, argv)
    nu = float(argv[argv.index("--nu") + 1]) if "--nu" in argv else 2.0
    kappa = float(argv[argv.index("--kappa") + 1]) if "--kappa" in argv else 1.0
    scale = float(argv[argv.index("--scale") + 1]) if "--scale" in argv else 1.0
    want = memsgd.loss_curve(make(), memsgd.Spectrum.power_law(nu, kappa, size=200, scale=scale),
                             memsgd.Noise.gaussian(5), 300)
    t = np.array(out["t"])
    expected = [float(v) if np.isfinite(v) else None for v in want.loss[t]]
    assert out["loss"] == expected and out["diverged_at"] == want.diverged_at
    assert out["algorithm"].startswith(argv[1] + "(") and out["alpha_eff"] is None


def test_diverging_curve_json_is_strict(capsys):
    # Python's json writes Infinity for inf, which is not JSON: the output must parse strictly
    assert main(["curve", "--algo", "gd", "--lr", "3", "--size", "10", "--batch", "inf", "--steps", "300",
                 "--json"]) == 0
    out = strict_loads(capsys.readouterr().out)
    curve = memsgd.loss_curve(memsgd.gd(3.0), memsgd.Spectrum.power_law(2, 1, size=10), memsgd.Noise.none(), 300)
    assert out["diverged_at"] == curve.diverged_at is not None
    t = np.array(out["t"])
    after = t >= curve.diverged_at
    assert after.any() and all(v is None for v in np.array(out["loss"], dtype=object)[after])
    assert out["batch_size"] is None


@requires("matplotlib")
def test_plot_into_a_missing_folder_fails_before_computing(tmp_path, capsys):
    # 5e6 steps on 10^6 eigenvalues would run for hours: the error must come first
    assert main(["curve", "--steps", "5e6", "--size", "1e6", "--plot", str(tmp_path / "missing" / "c.png")]) == 2
    err = _err(capsys)
    assert "--plot" in err and "does not exist" in err and err.count("\n") == 1
    assert main(["curve", "--steps", "5e6", "--size", "1e6", "--plot", str(tmp_path / "c.unknown")]) == 2
    assert "image extension" in _err(capsys)


@requires("matplotlib")
def test_plot_title_names_algorithm_hyperparameters_batch_and_problem(tmp_path, monkeypatch):
    from memsgd import plotting
    seen = {}
    real = plotting.plot_curves

    def spy(curves, path, **kw):
        seen.update(kw, curves=curves)
        return real(curves, path, **kw)

    monkeypatch.setattr(plotting, "plot_curves", spy)
    assert main(["curve", "--algo", "am1", "--lr", "0.05", "--momentum", "0.8", "--kick", "0.3", "--batch", "7",
                 "--size", "50", "--steps", "100", "--plot", str(tmp_path / "c.png")]) == 0
    title = seen["title"]
    for part in ("am1(lr=0.05, momentum=0.8, kick=0.3)", "B=7", "Gaussian", "nu=2", "kappa=1", "K=50"):
        assert part in title, (part, title)
    assert "MemoryAlgorithm" not in title


@requires("matplotlib")
def test_diverged_curve_plot_is_marked(tmp_path):
    main(["curve", "--algo", "gd", "--lr", "3", "--size", "10", "--batch", "inf", "--steps", "300",
          "--plot", str(tmp_path / "d.png")])
    curve = memsgd.loss_curve(memsgd.gd(3.0), memsgd.Spectrum.power_law(2, 1, size=10), memsgd.Noise.none(), 300)
    from memsgd.plotting import plot_curves
    fig = plot_curves({"gd": curve.loss}, tmp_path / "e.png")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert f"diverged t={curve.diverged_at}" in texts
    assert any(f"diverged at t={curve.diverged_at}" in t.get_text() for t in ax.get_legend().get_texts())
    assert (tmp_path / "d.png").stat().st_size > 1000


def test_ctrl_c_is_one_line_and_status_130(ctrl_c):
    # a real SIGINT once the command is imported: inside the engine run (hours of work)
    status, _, err = ctrl_c.command(["curve", "--steps", "5e6", "--size", "1e6"])
    assert status == 130, err
    assert err == "memsgd curve: interrupted\n"

