"""`memsgd curve` and the project's two documented commands."""
import json
import pathlib

import numpy as np

import memsgd
from memsgd.cli import main

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


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text().splitlines()
    test_command = next(line for line in readme if "pytest" in line)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command.strip() in [line.strip() for line in ci]
