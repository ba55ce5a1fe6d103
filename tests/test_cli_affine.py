"""--label-noise, --weight-decay and --ema on `memsgd curve`, `memsgd stability` and `memsgd sweep`:
the printed numbers are the library's, bad values are one-line errors (exit status 2)."""
import re

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum, loss_curve
from memsgd.cli import main
from tests._strict_json import strict_loads

from ._extras import need

SPEC = Spectrum.power_law(2.0, 1.0, size=100)
AFFINE = ["--label-noise", "0.2", "--weight-decay", "0.01", "--ema", "0.9"]


def test_curve_with_the_affine_options_matches_the_library(capsys):
    rc = main(["curve", "--algo", "heavy_ball", "--lr", "0.3", "--momentum", "0.5", "--size", "100", "--batch", "4",
               "--steps", "500", "--json"] + AFFINE)
    assert rc == 0
    out = strict_loads(capsys.readouterr().out)
    curve = loss_curve(memsgd.ema(memsgd.heavy_ball(0.3, 0.5, weight_decay=0.01), 0.9), SPEC,
                       Noise.gaussian(4, label_noise=0.2), 500)
    t = np.array(out["t"])
    assert np.array_equal(out["loss"], curve.loss[t])
    assert np.array_equal(out["total"], curve.total[t])
    assert (out["label_noise"], out["weight_decay"], out["ema"]) == (0.2, 0.01, 0.9)
    assert out["method"] == "engine"
    main(["curve", "--algo", "gd", "--lr", "0.5", "--size", "100", "--steps", "50", "--label-noise", "0.2"])
    text = capsys.readouterr().out
    assert "L_t + sigma2/2" in text and "label noise 0.2" in text


def test_curve_at_1e9_with_label_noise_and_weight_decay_takes_loss_at(capsys):
    """`memsgd curve --steps 1e9` with the affine options runs loss_at (it refused them before):
    the loss at 1e9 is the floor of the stationary moment equations, the early rows the engine's."""
    rc = main(["curve", "--algo", "heavy_ball", "--lr", "0.3", "--momentum", "0.5", "--size", "100", "--batch", "4",
               "--steps", "1e9", "--points", "8", "--json"] + AFFINE)
    assert rc == 0
    out = strict_loads(capsys.readouterr().out)
    assert out["method"] == "loss_at" and out["diverged_at"] is None
    algo = memsgd.ema(memsgd.heavy_ball(0.3, 0.5, weight_decay=0.01), 0.9)
    noise = Noise.gaussian(4, label_noise=0.2)
    t, L, err = np.array(out["t"]), np.array(out["loss"]), np.array(out["error"])
    assert t[-1] == 10 ** 9 and np.all(err <= 1e-10 * L)
    assert L[-1] == pytest.approx(memsgd.stability(algo, SPEC, noise).noise_floor, rel=1e-12)
    assert np.array_equal(out["total"], L + 0.1)
    early = t <= 3000
    np.testing.assert_allclose(L[early], loss_curve(algo, SPEC, noise, 3000).loss[t[early]], rtol=1e-10)


def test_stability_check_at_with_label_noise(capsys):
    """--check-at with label noise (refused before loss_at took it): the ratio compares L_t - L_inf
    with the law's approach; it tends to 1, and the text names what it compares."""
    argv = ["stability", "--algo", "gd", "--lr", "0.5", "--size", "100", "--batch", "8", "--label-noise", "0.2",
            "--check-at", "1e4,1e8,1e12"]
    assert main(argv + ["--json"]) == 0
    out = strict_loads(capsys.readouterr().out)
    asy = memsgd.asymptotics(memsgd.gd(0.5), SPEC, Noise.gaussian(8, label_noise=0.2), check_at=[1e4, 1e8, 1e12])
    assert out["asymptotics"]["floor"] == asy.floor == out["noise_floor"]
    check = out["asymptotics"]["check"]
    assert [c["ratio"] for c in check] == list(asy.ratios)
    # a finite spectrum (100 nodes): the law holds for 1 << t << 100^nu; beyond, the excess dies out
    assert 0 < check[0]["ratio"] < 1 and check[-1]["ratio"] == 0.0
    assert check[-1]["exact"] == pytest.approx(asy.floor, rel=1e-13)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "ratio = (L_t - L_inf) / (predicted - L_inf)" in text and "1000000000000" in text


def test_stability_reports_the_noise_floor(capsys):
    rc = main(["stability", "--algo", "heavy_ball", "--lr", "0.3", "--momentum", "0.5", "--size", "100", "--batch",
               "4", "--json", "--label-noise", "0.2", "--weight-decay", "0.01"])
    assert rc == 0
    out = strict_loads(capsys.readouterr().out)
    rep = memsgd.stability(memsgd.heavy_ball(0.3, 0.5, weight_decay=0.01), SPEC, Noise.gaussian(4, label_noise=0.2))
    assert out["noise_floor"] == rep.noise_floor and out["converges"] and "asymptotics" not in out
    main(["stability", "--algo", "gd", "--lr", "0.5", "--size", "100", "--json", "--label-noise", "0.2"])
    out = strict_loads(capsys.readouterr().out)
    asy = memsgd.asymptotics(memsgd.gd(0.5), SPEC, Noise.gaussian(10, label_noise=0.2))
    assert out["asymptotics"]["phase"] == asy.phase and out["asymptotics"]["constant"] == asy.constant


def test_sweep_grid_over_weight_decay_and_label_noise(capsys):
    need("xarray")
    rc = main(["sweep", "--algo", "gd", "--lr", "0.2,0.5", "--weight-decay", "0,0.01", "--label-noise", "0,0.1",
               "--ema", "0.5", "--size", "100", "--steps", "200", "--record", "20", "--json", "--no-progress"])
    assert rc == 0
    out = strict_loads(capsys.readouterr().out)
    assert list(out["grid"]) == ["lr", "weight_decay", "label_noise"] and len(out["points"]) == 8
    for p in out["points"]:
        c = loss_curve(memsgd.ema(memsgd.gd(p["lr"], weight_decay=p["weight_decay"]), 0.5), SPEC,
                       Noise(10, label_noise=p["label_noise"]), 200)
        assert p["final_loss"] == float(c.loss[-1])


@pytest.mark.parametrize("command, extra, message", [
    ("curve", ["--label-noise", "-1"], "--label-noise must be >= 0"),
    ("curve", ["--weight-decay", "-0.1"], "--weight-decay must be >= 0"),
    ("curve", ["--ema", "1"], "--ema must be in \\[0, 1\\)"),
    ("stability", ["--weight-decay", "0.1", "--check-at", "1e4"], "--check-at"),
    ("sweep", ["--lr", "0.1,0.2", "--weight-decay=-1,0"], "--weight-decay values must be >= 0"),
    ("sweep", ["--lr", "0.1,0.2", "--label-noise", "0,-1"], "--label-noise values must be >= 0"),
])
def test_bad_affine_options(command, extra, message, capsys):
    assert main([command, "--size", "20", "--steps" if command != "stability" else "--batch",
                 "50" if command != "stability" else "4"] + extra) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]   # argparse prints its usage above
    assert last.startswith(f"memsgd {command}: error:") and re.search(message, last), last
