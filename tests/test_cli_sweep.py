"""`memsgd sweep`: grid axes from flags, the table and JSON against loss_curve, the store, the heat map,
and bad flags (exit status 2 with a message naming the flag)."""
import math

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum, loss_curve
from memsgd.cli import main
from memsgd.cli.sweep import parse_values
from tests._strict_json import strict_loads

from ._extras import need

need("xarray")

ARGS = ["sweep", "--algo", "heavy_ball", "--lr", "0.1:1.9:3:log", "--momentum", "0,0.9", "--batch", "1,inf",
        "--size", "40", "--steps", "300", "--record", "40", "--no-progress"]


def test_parse_values():
    assert np.array_equal(parse_values("0.01:1:3:log", "lr"), np.geomspace(0.01, 1, 3))
    assert np.array_equal(parse_values("0:1:5", "lr"), np.linspace(0, 1, 5))
    assert np.array_equal(parse_values("1,10,inf", "batch"), [1, 10, math.inf])
    assert np.array_equal(parse_values("0.5", "lr"), [0.5])
    for bad in ("a", "1:2", "0:1:3:cubic", "0:1:x", "-1:1:3:log", ","):
        with pytest.raises(ValueError, match="--lr"):
            parse_values(bad, "lr")


@pytest.mark.slow
def test_json_points_are_loss_curve(capsys):
    assert main(ARGS + ["--json"]) == 0
    out = strict_loads(capsys.readouterr().out)
    assert out["grid"]["batch"] == [1.0, None]   # strict JSON: inf is null
    assert list(out["grid"]) == ["lr", "momentum", "batch"] and len(out["points"]) == 3 * 2 * 2
    spec = Spectrum.power_law(2.0, 1.0, size=40)
    diverged = 0
    for p in out["points"]:
        c = loss_curve(memsgd.heavy_ball(p["lr"], p["momentum"]), spec, Noise(p["batch"] if p["batch"] is not None
                                                                              else math.inf), 300)
        want = float(c.loss[-1])
        assert (p["final_loss"] == want) if math.isfinite(want) else (p["final_loss"] is None)
        assert p["diverged_at"] == c.diverged_at
        diverged += c.diverged_at is not None
    assert 0 < diverged < len(out["points"])


@pytest.mark.slow
def test_table_store_and_heat_maps(tmp_path, capsys):
    store = tmp_path / "s.zarr"
    png = tmp_path / "final.png"
    assert main(ARGS + ["--store", str(store), "--plot", str(png), "--top", "3"]) == 0
    first = capsys.readouterr().out
    assert "12 configurations" in first and f"wrote {png}" in first and png.stat().st_size > 0
    rows = [line.split() for line in first.splitlines() if line and not line.startswith("#")]
    assert rows[0][:4] == ["lr", "momentum", "batch", "L_T"] and len(rows) == 4
    best = [float(v) for v in rows[1][:3]]
    want = min(loss_curve(memsgd.heavy_ball(lr, m), Spectrum.power_law(2.0, 1.0, size=40), Noise(b), 300).loss[-1]
               for lr in np.geomspace(0.1, 1.9, 3) for m in (0, 0.9) for b in (1, math.inf))
    assert float(rows[1][3]) == pytest.approx(want, rel=1e-4)  # 5 printed digits
    assert best[1] == 0.9
    # the same command resumes from the store: the same table
    png2 = tmp_path / "exponent.png"
    assert main(ARGS + ["--store", str(store), "--plot", str(png2), "--top", "3", "--color", "exponent",
                        "--x", "batch", "--y", "lr", "--executor", "threads:2"]) == 0
    second = capsys.readouterr().out
    strip = lambda text: [line for line in text.splitlines() if "wrote" not in line]
    assert strip(second) == strip(first) and png2.stat().st_size > 0


@pytest.mark.parametrize("extra,message", [
    (["--lr", "1:2"], "--lr"),
    (["--executor", "cluster"], "--executor"),
    (["--executor", "processes:0"], "--executor"),
    (["--plot", "x.png", "--x", "kick"], "--x"),
    (["--fit-window", "10"], "--fit-window"),
    (["--steps", "0"], "--steps"),
    (["--record", "1"], "record"),
])
def test_bad_flags(extra, message, capsys):
    assert main(ARGS + extra) == 2
    assert message in capsys.readouterr().err


def test_a_single_configuration_is_refused(capsys):
    assert main(["sweep", "--lr", "0.1", "--batch", "10", "--steps", "10"]) == 2
    assert "several values" in capsys.readouterr().err


def test_heat_map_greys_cells_that_grow_exponentially(tmp_path, monkeypatch, capsys):
    # issue 18 item 17: one cell growing exponentially (L_T ~ 1e22, below the divergence threshold)
    # set the colour scale to 1e-3..1e22; it is now grey like a diverged cell
    import memsgd.plotting
    seen = {}
    real = memsgd.plotting.plot_heatmap

    def capture(values, x, y, path, **kwargs):
        seen.update(values=np.asarray(values), x=np.asarray(x), y=np.asarray(y), **kwargs)
        return real(values, x, y, path, **kwargs)

    monkeypatch.setattr(memsgd.plotting, "plot_heatmap", capture)
    spec = Spectrum.power_law(2.0, 1.0, size=100)
    growing = loss_curve(memsgd.heavy_ball(1.0, 0.99), spec, Noise.gaussian(100), 10000)
    assert growing.diverged_at is None and growing.grows_exponentially and growing.loss[-1] > 1e20
    assert main(["sweep", "--lr", "0.1,1", "--momentum", "0.9,0.99", "--batch", "100", "--size", "100",
                 "--steps", "10000", "--no-progress", "--plot", str(tmp_path / "h.png")]) == 0
    values = seen["values"]                       # (momentum, lr)
    assert np.isnan(values[list(seen["y"]).index(0.99), list(seen["x"]).index(1.0)])
    assert np.nanmax(values) < 1.0 and np.isfinite(values).sum() == 3
    assert seen["grey_means"] == "diverged or growing exponentially"
    assert (tmp_path / "h.png").stat().st_size > 1000
