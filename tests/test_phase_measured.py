"""Measured exponents over a (nu, zeta) grid (theory.measured_exponents, phase_diagram(measure_steps=),
`memsgd phase --measure-steps`): bitwise the fit of each point's own loss_curve, and within a
stated tolerance of the predicted exponents (docs/math.md §6) where the asymptotic regime is
reached early."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import memsgd as ms
from memsgd import Noise, Spectrum, fit_exponent, loss_curve, schedules, theory
from memsgd.cli import main

from ._extras import requires

NUS, ZETAS, T = (1.5, 3.0), (0.5, 4.0), 2000


def _by_loop(algo, noise, nus, zetas, steps, size):
    """One loss_curve and fit_exponent per grid point; nan where the fit refuses the curve."""
    out = np.full((len(nus), len(zetas)), math.nan)
    for i, nu in enumerate(nus):
        for j, zeta in enumerate(zetas):
            curve = loss_curve(algo, Spectrum.power_law(nu, zeta * nu, size=size), noise, steps)
            try:
                out[i, j] = fit_exponent(curve.loss, steps / 10, steps)
            except ValueError:
                assert curve.diverged
    return out


@pytest.mark.parametrize("algo,noise,expect", [
    (ms.gd(0.95), Noise.gaussian(2), "nan"),             # nu = 1.5: V' > 1, diverges within T
    (ms.gd(0.9), Noise.gaussian(2), "negative"),         # nu = 1.5: V' > 1, grows, no divergence within T
    (ms.nesterov(0.2, 0.8), Noise.gaussian(4), "finite"),  # e != 0
    (schedules.am1_power_law(1.0, 0.3), Noise.gaussian(10), "finite"),  # a schedule
], ids=["diverged", "growing", "nesterov", "am1_schedule"])
def test_measured_exponents_are_the_fits_of_loss_curve(algo, noise, expect):
    got = theory.measured_exponents(algo, noise, NUS, ZETAS, T, size=300)
    want = _by_loop(algo, noise, NUS, ZETAS, T, 300)
    assert got.shape == (2, 2)
    assert np.array_equal(got, want, equal_nan=True)   # bitwise
    first = got[0]                                     # nu = 1.5
    if expect == "nan":
        assert np.all(np.isnan(first))
    elif expect == "negative":
        assert np.all(first < 0)
    else:
        assert np.all(np.isfinite(got))


def test_measured_exponents_match_the_predicted_ones():
    """SGD (lr = 1, B = 10) on infinite power laws reaches its asymptotic exponent early: fitted on
    [200, 2000], every cell is within 0.01 of the prediction (largest seen 0.0053), in both phases;
    and the noise cells are far from the signal formula zeta, so the check tells the phases apart."""
    nus, zetas = [1.5, 2.0, 3.0], [0.25, 0.5, 1.0, 3.0, 5.0]
    rows = theory.phase_diagram(ms.gd(1.0), Noise.gaussian(10), nus, zetas, measure_steps=T)
    assert {r["phase"] for r in rows} == {"signal", "noise"}
    for r in rows:
        assert abs(r["measured_exponent"] - r["exponent"]) <= 0.01, r
        if r["phase"] == "noise":
            assert r["exponent"] == 2 - 1 / r["nu"] and abs(r["measured_exponent"] - r["zeta"]) > 1.0


def test_phase_diagram_rows_carry_the_measured_exponents():
    algo, noise = ms.gd(0.9), Noise.gaussian(2)
    plain = theory.phase_diagram(algo, noise, NUS, ZETAS, size=300)
    rows = theory.phase_diagram(algo, noise, NUS, ZETAS, size=300, measure_steps=T)
    assert all("measured_exponent" not in r for r in plain)
    assert [{k: v for k, v in r.items() if k != "measured_exponent"} for r in rows] == plain
    measured = theory.measured_exponents(algo, noise, NUS, ZETAS, T, size=300)
    assert np.array_equal([r["measured_exponent"] for r in rows], measured.ravel())  # nu-major


@pytest.mark.parametrize("kwargs,error,name", [
    (dict(steps=9), ValueError, "steps"),
    (dict(steps=1.5), ValueError, "steps must be an integer"),
    (dict(steps="100"), TypeError, "steps must be an integer"),
    (dict(nus=[]), ValueError, "nus"),
    (dict(zetas=[0.5, -1.0]), ValueError, "zetas"),
    (dict(algorithm="gd"), TypeError, "algorithm"),
    (dict(noise=10), TypeError, "noise"),
])
def test_measured_exponents_bad_input(kwargs, error, name):
    args = dict(algorithm=ms.gd(0.5), noise=Noise.gaussian(10), nus=[2.0], zetas=[0.5], steps=100)
    args.update(kwargs)
    with pytest.raises(error, match=name):
        theory.measured_exponents(**args)


def test_phase_diagram_bad_measure_steps():
    for value, error in ((5, ValueError), (0, ValueError), (2.5, ValueError), ("5", TypeError)):
        with pytest.raises(error, match="measure_steps"):
            theory.phase_diagram(ms.gd(0.5), Noise.gaussian(10), [2.0], [0.5], measure_steps=value)


# ------------------------------------------------------------------------------ CLI


@requires("matplotlib")
def test_cli_phase_measure_steps_json_table_and_plot(tmp_path, capsys):
    args = ["phase", "--algo", "gd", "--lr", "0.9", "--batch", "2", "--nu", "1.5,3", "--zeta", "0.5,4",
            "--size", "300", "--measure-steps", "2e3"]
    png = tmp_path / "phase.png"
    assert main(args + ["--json", "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    want = theory.measured_exponents(ms.gd(0.9), Noise.gaussian(2), NUS, ZETAS, T, size=300).ravel()
    assert out["measure_steps"] == T and out["fit_window"] == [200.0, 2000.0]
    assert [r["measured_exponent"] for r in out["rows"]] == [float(p) for p in want]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "[200, 2000]" in lines[3]
    header = lines[4].split()
    assert header == ["nu", "zeta", "kappa", "phase", "exponent", "measured", "V"]
    cells = [line.split() for line in lines[5:]]
    assert [c[5] for c in cells] == [f"{p:.4g}" for p in want]


def test_cli_phase_measure_steps_errors(capsys):
    assert main(["phase", "--measure-steps", "5"]) == 2
    assert "--measure-steps" in capsys.readouterr().err
    assert main(["phase", "--measure-steps", "1.5e1x"]) == 2
    assert "--measure-steps" in capsys.readouterr().err


def test_cli_phase_needs_no_xarray():
    """`memsgd phase --measure-steps` runs the engine directly: no xarray (memsgd[sweep]) needed."""
    code = ("import sys; sys.modules['xarray'] = None; from memsgd.cli import main; "
            "sys.exit(main(['phase', '--nu', '2', '--zeta', '0.5', '--size', '100', '--measure-steps', '100']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "measured" in out.stdout
