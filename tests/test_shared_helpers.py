"""The one-home helpers: strict JSON, argument parsing from text, the progress callback, plots."""
import math

import numpy as np
import pytest

from memsgd import _json, _progress, _validation
from memsgd.experiments import common
from tests._strict_json import strict_loads

from ._extras import requires


def test_json_writes_non_finite_as_null_everywhere(tmp_path):
    obj = {"a": math.inf, "b": [1.0, -math.inf, float("nan")], 3: np.array([np.inf, 2.5]),
           "c": (np.float64(np.nan), np.int64(7), np.bool_(True)), "d": {"e": np.float32(0.5)}}
    want = {"a": None, "b": [1.0, None, None], "3": [None, 2.5], "c": [None, 7, True], "d": {"e": 0.5}}
    assert strict_loads(_json.dumps(obj)) == want
    _json.write_json(tmp_path / "x.json", obj)
    assert strict_loads((tmp_path / "x.json").read_text()) == want
    # the experiments use the same writer (one home, re-exported)
    assert common.write_json is _json.write_json and common.jsonable is _json.jsonable


@pytest.mark.parametrize("text,value", [("10", 10), ("1e3", 1000), ("2.0e1", 20),
                                        ("12345678901234567890", 12345678901234567890)])
def test_int_from_text(text, value):
    assert _validation.int_from_text(text, "--n") == value


@pytest.mark.parametrize("text", ["1.5", "1e-1", "x", "", "inf", "-inf", "nan", "1e400"])
def test_int_from_text_refuses(text):
    with pytest.raises(ValueError, match="--n must be an integer"):
        _validation.int_from_text(text, "--n")


def test_text_parsers_name_the_option_and_rule():
    with pytest.raises(ValueError, match="--n must be >= 3, got 2"):
        _validation.int_from_text("2", "--n", minimum=3)
    with pytest.raises(ValueError, match="--lr must be > 0"):
        _validation.float_from_text("-1", "--lr", positive=True)
    with pytest.raises(ValueError, match="--x must be finite"):
        _validation.float_from_text("nan", "--x")
    assert _validation.batch_size_from_text("inf", "--batch") == math.inf
    assert _validation.batch_size_from_text("1e2", "--batch") == 100
    with pytest.raises(ValueError, match="--batch must be an integer >= 1 .* or 'inf'"):
        _validation.batch_size_from_text("0", "--batch")
    assert _validation.float_list_from_text("1.5, 2,3", "--nu") == [1.5, 2.0, 3.0]
    with pytest.raises(ValueError, match="--nu must list at least one number"):
        _validation.float_list_from_text(" , ", "--nu")


def test_config_validators():
    assert _validation.power_law_pairs([(2, 1), (1.5, 0.45)], "problems") == ((2.0, 1.0), (1.5, 0.45))
    with pytest.raises(ValueError, match=r"problems\[1\] must satisfy nu > 1"):
        _validation.power_law_pairs([(2, 1), (1.0, 1.0)], "problems")
    with pytest.raises(ValueError, match="problems must not be empty"):
        _validation.power_law_pairs((), "problems")
    with pytest.raises(TypeError, match=r"batch_sizes\[0\] must be an integer"):
        _validation.positive_ints([10.5], "batch_sizes")
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        _validation.bounded_scalar(1.0, "momentum", 0.0, 1.0, high_open=True)
    assert _validation.fit_window((10, 100), 100) == (10.0, 100.0)
    with pytest.raises(ValueError, match="fit_window must satisfy"):
        _validation.fit_window((10, 200), 100)


@requires("tqdm")
def test_progress_callback_modes(capsys):
    with _progress.progress_callback("x", show=False) as cb:
        assert cb is None
    with _progress.progress_callback("x", show=None) as cb:  # stderr is not a terminal under pytest
        assert cb is None
    with _progress.progress_callback("work", show=True) as cb:
        for done in range(1, 4):
            cb(done, 3, f"item {done}")
    assert "work" in capsys.readouterr().err
    with pytest.raises(TypeError, match="progress must be True, False or None"):
        with _progress.progress_callback("x", show="yes"):
            pass


def test_tracker_reports_each_unit():
    seen = []
    tracker = _progress.Tracker(lambda d, t, label: seen.append((d, t, label)), 2)
    tracker.step("a")
    tracker.step("b")
    tracker.step("c")  # more units than announced: the total grows with them
    assert seen == [(1, 2, "a"), (2, 2, "b"), (3, 3, "c")]
    with pytest.raises(TypeError, match="progress must be None or a callable"):
        _progress.Tracker(5, 1)


@pytest.mark.slow
@requires("matplotlib")
def test_plot_curves_keeps_the_axis_to_the_curves_that_did_not_diverge(tmp_path):
    from memsgd.plotting import plot_curves
    t = np.arange(1001, dtype=float)
    calm = 0.5 * (1 + t) ** -0.5
    blowup = 0.5 * np.exp(0.07 * t)
    blowup[990:] = np.inf          # the engine's convention: inf from the divergence step on
    fig = plot_curves({"calm": calm, "blows up": blowup}, tmp_path / "a.png",
                      guides={"calm": (t[10:], 0.4 * (1 + t[10:]) ** -0.5, "t^-0.5")})
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert high < 10 and low < calm.min()          # not stretched to 1e29 by the blow-up
    legend = [x.get_text() for x in ax.get_legend().get_texts()]
    assert legend == ["calm; predicted t^-0.5", "blows up (diverged at t=990)", "dashed: predicted power law"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    guide = [line for line in ax.get_lines() if line.get_linestyle() == "--" and line.get_label().startswith("_")]
    assert len(guide) == 1 and guide[0].get_color() == lines["calm; predicted t^-0.5"].get_color()
    drawn = lines["blows up (diverged at t=990)"].get_xdata()
    assert drawn.max() == 989                      # drawn up to the divergence step
    assert "diverged t=990" in [x.get_text() for x in ax.texts]
    # a curve evaluated at a few steps and stopped at its divergence (NaN: not evaluated)
    fig = plot_curves({"run": ([0, 1, 10, 100], [1.0, 0.5, 0.2, 500.0])}, tmp_path / "b.png",
                      diverged_at={"run": 100})
    assert "diverged t=100" in [x.get_text() for x in fig.axes[0].texts]


@requires("matplotlib")
def test_fig4_plot_marks_diverged_runs_apart(tmp_path):
    from memsgd.plotting import plot_exponents_vs_delta
    rows = [dict(nu=2.0, kappa=1.0, batch_size=B, delta=d, fitted_exponent=f, diverged_at=s)
            for B, d, f, s in [(10, 0.1, 0.55, None), (10, 0.9, None, 300), (100, 0.9, None, 4000),
                               (100, 0.1, 0.55, None), (10, 0.5, -3.0, None)]]
    fig = plot_exponents_vs_delta(rows, tmp_path / "f.png", problems=[(2.0, 1.0)], batch_sizes=[10, 100])
    ax = fig.axes[0]
    texts = {x.get_text(): x for x in ax.texts}
    assert {"t=300", "t=4000", "-3"} <= set(texts)
    # the two runs diverged at delta = 0.9 sit side by side, not on top of each other, and not at 0
    xs = sorted(texts[k].xy[0] for k in ("t=300", "t=4000"))
    assert xs[0] < 0.9 < xs[1]
    low, high = ax.get_ylim()
    assert low > -3.0
    data_points = [x for line in ax.get_lines() if line.get_marker() not in ("None", None)
                   and line.get_transform() == ax.transData for x in np.atleast_1d(line.get_xdata())]
    assert sorted(data_points) == [0.1, 0.1]   # the converged runs; no diverged one drawn as a value
