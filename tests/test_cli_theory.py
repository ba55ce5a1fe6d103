"""`memsgd stability` and `memsgd phase` run through memsgd.cli.main."""
import json

import pytest

import memsgd as ms
from memsgd.cli import main

from ._extras import requires


def test_stability_json_matches_library(capsys):
    rc = main(["stability", "--algo", "am1", "--lr", "0.05", "--momentum", "0.9", "--kick", "0.5",
               "--nu", "2", "--kappa", "1", "--batch", "10", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    rep = ms.stability(ms.am1(0.05, 0.9, 0.5), ms.Spectrum.power_law(2.0, 1.0), ms.Noise.gaussian(10))
    assert out["strictly_stable"] is True and out["converges"] is True
    assert out["noise_sum"] == pytest.approx(rep.noise_sum, rel=1e-15)
    assert out["memory1"]["jury_stable"] is True
    assert out["memory1"]["noise_sum_prime_closed_form"] == pytest.approx(rep.noise_sum_prime, rel=1e-10)
    assert out["asymptotics"]["phase"] == "signal" and out["asymptotics"]["exponent"] == 0.5


def test_stability_table_and_divergent_case(capsys):
    assert main(["stability", "--algo", "gd", "--lr", "1.0", "--size", "200", "--nu", "1.5",
                 "--batch", "1"]) == 0
    text = capsys.readouterr().out
    assert "converges" in text and "False" in text
    assert main(["stability", "--algo", "gd", "--lr", "1.0", "--batch", "inf", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["noise_sum"] == 0 and out["batch_size"] is None  # strict JSON: inf is null


@requires("matplotlib")
def test_phase_table_json_and_plot(tmp_path, capsys):
    png = tmp_path / "phase.png"
    rc = main(["phase", "--algo", "heavy_ball", "--lr", "0.1", "--momentum", "0.9", "--nu", "2,3",
               "--zeta", "0.5,2", "--json", "--plot", str(png)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    rows = {(r["nu"], r["zeta"]): r for r in out["rows"]}
    assert len(rows) == 4
    assert rows[(2.0, 0.5)]["phase"] == "signal" and rows[(2.0, 0.5)]["exponent"] == 0.5
    assert rows[(2.0, 2.0)]["phase"] == "noise" and rows[(2.0, 2.0)]["exponent"] == pytest.approx(1.5)
    assert rows[(3.0, 2.0)]["exponent"] == pytest.approx(2 - 1 / 3)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a batch that makes V' > 1: every cell diverges
    assert main(["phase", "--algo", "gd", "--lr", "1.0", "--nu", "1.5", "--zeta", "0.5",
                 "--batch", "1", "--tau2", "0"]) == 0
    assert "diverges" in capsys.readouterr().out


def test_cli_errors_name_the_argument(capsys):
    assert main(["phase", "--nu", "2,x"]) == 2
    assert "--nu" in capsys.readouterr().err
    assert main(["phase", "--nu", "0.5"]) == 2
    assert "--nu values must be > 1" in capsys.readouterr().err
    assert main(["stability", "--batch", "ten"]) == 2
    assert "--batch" in capsys.readouterr().err


def test_phase_accepts_gradient_shift_and_matches_library(capsys):
    """e != 0 (Nesterov) has asymptotics now (docs/math.md §6.1); the CLI prints what
    theory.phase_diagram computes (the CLI does not compute)."""
    assert main(["phase", "--algo", "nesterov", "--lr", "0.2", "--momentum", "0.8", "--nu", "2.5",
                 "--zeta", "0.48,2", "--batch", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = ms.theory.phase_diagram(ms.nesterov(0.2, 0.8), ms.Noise.gaussian(4), [2.5], [0.48, 2.0])
    assert [r["phase"] for r in out["rows"]] == [r["phase"] for r in rows] == ["signal", "noise"]
    assert [r["exponent"] for r in out["rows"]] == pytest.approx([r["exponent"] for r in rows], rel=1e-15)


def test_stability_reports_asymptotics_and_geometry_for_nesterov(capsys):
    assert main(["stability", "--algo", "nesterov", "--lr", "0.2", "--momentum", "0.8", "--nu", "2.5",
                 "--kappa", "1.2", "--batch", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    asy = ms.asymptotics(ms.nesterov(0.2, 0.8), ms.Spectrum.power_law(2.5, 1.2), ms.Noise.gaussian(4))
    assert out["asymptotics"]["constant"] == pytest.approx(asy.constant, rel=1e-15)
    geo = ms.memory1_geometry(ms.nesterov(0.2, 0.8))
    assert out["memory1"]["eigenvalues"] == geo.kind == "circle"
    assert out["memory1"]["circle_radius"] == pytest.approx(geo.radius, rel=1e-15)


@pytest.mark.slow
@requires("matplotlib")
def test_stability_plot_writes_png(tmp_path, capsys):
    png = tmp_path / "stability.png"
    assert main(["stability", "--algo", "am1", "--lr", "0.001", "--momentum", "0.9999", "--kick", "1",
                 "--size", "300", "--plot", str(png)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
