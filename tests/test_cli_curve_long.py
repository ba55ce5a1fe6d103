"""`memsgd curve` at long horizons: loss_at for stationary presets (auto above a work threshold,
or forced with --method), a clear refusal for schedules, divergence, plots and strict JSON.

Independent checks: the step-by-step engine (`--method engine` / memsgd.loss_curve) at a
moderate horizon, and the asymptotic law of docs/math.md §6 at t = 1e9."""

import numpy as np
import pytest

import memsgd as ms
from memsgd import _method
from memsgd.cli import build_parser, main
from memsgd.cli.curve import AUTO_STEPS, _choose_method
from tests._strict_json import strict_loads
from tests.reference import recursion_rounding

from ._extras import requires


def _run_json(capsys, argv):
    assert main(["curve", *argv, "--json"]) == 0
    return strict_loads(capsys.readouterr().out)


def test_auto_uses_loss_at_at_1e9_and_matches_the_asymptotic_law(capsys):
    out = _run_json(capsys, ["--steps", "1e9", "--points", "6"])
    assert out["method"] == "loss_at" and out["diverged_at"] is None
    t = np.array(out["t"])
    assert t[0] == 0 and t[-1] == 10 ** 9 and t.size == 6
    L, err = np.array(out["loss"]), np.array(out["error"])
    assert np.all(err <= 1e-10 * L)
    algo, spec, noise = ms.heavy_ball(0.1, 0.9), ms.Spectrum.power_law(2, 1), ms.Noise.gaussian(10)
    assert L[0] == pytest.approx(spec.initial_loss, rel=1e-14)
    # signal phase, nu = 2: the law is reached like 1/t (1.6e-9 relative at 1e9)
    assert L[-1] / ms.asymptotics(algo, spec, noise).predict(1e9) == pytest.approx(1.0, abs=1e-8)
    assert out["exact_until"] < 10 ** 4


def test_forced_methods_agree_at_a_moderate_horizon(capsys):
    argv = ["--size", "300", "--algo", "heavy_ball", "--lr", "0.2", "--momentum", "0.8", "--batch", "4",
            "--steps", "20000", "--points", "30"]
    engine = _run_json(capsys, argv + ["--method", "engine"])
    at = _run_json(capsys, argv + ["--method", "loss_at"])
    assert engine["method"] == "engine" and at["method"] == "loss_at"
    assert engine["error"] is None and engine["exact_until"] is None
    assert engine["t"] == at["t"]
    t = np.array(at["t"])
    ref, got, err = np.array(engine["loss"]), np.array(at["loss"]), np.array(at["error"])
    contour = t > at["exact_until"]
    assert contour.sum() >= 5
    diff = np.abs(got - ref)
    assert np.all(diff <= 1e-10 * ref)
    # within loss_at's estimate plus the recursion's own rounding
    assert np.all(diff <= err + recursion_rounding(ref, t))


def test_text_output_names_the_method_and_the_error(capsys):
    assert main(["curve", "--steps", "1e8", "--points", "4"]) == 0
    text = capsys.readouterr().out
    assert "# method: loss_at: exact recursion up to step" in text
    assert "chosen automatically: the engine would need" in text
    assert "rel_error" in text and "# estimated relative error of loss_at: at most" in text
    assert main(["curve", "--steps", "100", "--points", "4"]) == 0
    text = capsys.readouterr().out
    assert "# method: engine" in text and "rel_error" not in text


def _args(argv):
    return build_parser().parse_args(["curve", *argv])


@pytest.mark.parametrize("argv, method, work", [
    # default infinite problem (K = 4437 nodes, memory 1: 20 updates per node and step)
    (["--steps", "1e6"], "engine", 8.874e10),
    (["--steps", "2e6"], "loss_at", 1.7748e11),
    (["--steps", "1e4", "--method", "loss_at"], "loss_at", None),
    (["--steps", "1e9", "--method", "engine"], "engine", None),
    # a small problem: few updates, but the engine would keep every one of > 1e7 steps
    (["--size", "10", "--steps", str(AUTO_STEPS)], "engine", None),
    (["--size", "10", "--steps", str(AUTO_STEPS + 1)], "loss_at", 2.0000002e9),
    (["--algo", "am1_power_law", "--steps", "1e7"], "engine", 8.874e11),  # a schedule: engine
])
def test_auto_threshold(argv, method, work):
    args = _args(argv)
    from memsgd.cli import _common
    algo, spec = _common.algorithm_from_args(args), _common.spectrum_from_args(args)
    assert _choose_method(args, algo, spec, _common.noise_from_args(args))[0] == method
    # the threshold is the documented work (K x steps x 20 updates for memory 1), not a timing
    if work is not None:
        assert _method.engine_work(algo, spec, args.steps) == pytest.approx(work, rel=1e-12)


def test_a_schedule_with_huge_steps_is_a_one_line_error(capsys):
    assert main(["curve", "--algo", "am1_power_law", "--steps", "1e9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    for part in ("is a schedule", "step-by-step engine", "would take about", "GB of losses",
                 "--method engine"):
        assert part in err, part


def test_loss_at_refuses_a_schedule(capsys):
    assert main(["curve", "--algo", "am1_power_law", "--steps", "100", "--method", "loss_at"]) == 2
    err = capsys.readouterr().err
    assert "--method loss_at needs a stationary algorithm" in err and "--method engine" in err


def test_beyond_1e12_is_refused(capsys):
    assert main(["curve", "--steps", "2e12"]) == 2
    assert "--steps must be <= 1e12 with loss_at, got 2e+12" in capsys.readouterr().err


def test_bad_method_is_an_argparse_error(capsys):
    assert main(["curve", "--method", "fast"]) == 2
    assert "--method" in capsys.readouterr().err


@requires("matplotlib")
def test_divergence_with_loss_at_matches_the_engine(capsys, tmp_path):
    argv = ["--algo", "gd", "--lr", "3", "--size", "10", "--batch", "inf", "--points", "6"]
    out = _run_json(capsys, argv + ["--steps", "1e8"])  # > AUTO_STEPS: loss_at
    assert out["method"] == "loss_at"
    curve = ms.loss_curve(ms.gd(3.0), ms.Spectrum.power_law(2, 1, size=10), ms.Noise.none(), 300)
    assert curve.diverged_at is not None and out["diverged_at"] == curve.diverged_at
    t = np.array(out["t"])
    assert all((L is None) == (s >= curve.diverged_at) for s, L in zip(t, out["loss"]))
    png = tmp_path / "d.png"
    assert main(["curve", *argv, "--steps", "1e8", "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert f"# diverged at step {curve.diverged_at}" in text and png.stat().st_size > 1000


@pytest.mark.slow
@requires("matplotlib")
def test_plot_with_loss_at(tmp_path, capsys):
    png = tmp_path / "c.png"
    assert main(["curve", "--steps", "1e9", "--points", "3", "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "loss_at" in text and f"# wrote {png}" in text and png.stat().st_size > 1000
    # the table keeps --points rows although the figure is drawn through more steps
    rows = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(rows) == 1 + 3
