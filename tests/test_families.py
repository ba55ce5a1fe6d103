"""One table of algorithm families for the command line's presets and schedule design (issue 19
item 3): the same names and parameter names in both, older names still accepted, and each side's
starting values exactly what they were before the tables were merged."""
import json

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum
from memsgd.cli import main
from memsgd.cli._common import PRESETS
from memsgd.design import FAMILIES, make_family, optimize_schedule

FREE = {"free_sgd", "free_memory1"}


def test_a_family_offered_by_both_has_one_name_and_the_same_parameters():
    # The old tables called plain SGD "gd" (CLI) and "sgd" (design), the Jacobi heavy ball
    # "jacobi_heavy_ball" and "jacobi", and QHM's nu "nu_qhm" and "nu".
    shared = (set(FAMILIES) - FREE) & set(PRESETS)
    assert {"sgd", "heavy_ball", "nesterov", "qhm", "am1_power_law", "jacobi_heavy_ball"} <= shared
    for name in shared:
        variables, options = make_family(name, 10).variables, tuple(PRESETS[name].defaults)
        assert variables == tuple(k for k in options if k in variables), name        # same names, same order
        # design keeps only the AM1 law's eigenvalue unit fixed (its constructor's default, 1)
        assert set(options) - set(variables) == ({"lambda_max"} if name == "am1_power_law" else set()), name


@pytest.mark.parametrize("name", sorted((set(FAMILIES) - FREE) & set(PRESETS)))
def test_both_sides_build_the_same_schedule_from_the_same_values(name):
    # design's schedule at a point (natural units) is the preset's constructor at those values
    fam = make_family(name, 30)
    x = np.clip(fam.start + 0.05, fam.lower, fam.upper)
    values = fam.natural(x)
    preset = PRESETS[name].build(**values)
    preset = preset if isinstance(preset, memsgd.Schedule) else memsgd.schedules.constant(preset)
    for a, b in zip(fam.schedule(x).parameters(30), preset.parameters(30)):
        np.testing.assert_array_equal(a, b)


# The two starting columns, as each table had them: the CLI's defaults and design's starts.
CLI_DEFAULTS = {
    "sgd": {"lr": 0.1}, "heavy_ball": {"lr": 0.1, "momentum": 0.9}, "nesterov": {"lr": 0.1, "momentum": 0.9},
    "am1": {"lr": 0.1, "momentum": 0.9, "kick": 1.0}, "qhm": {"lr": 0.1, "momentum": 0.9, "nu_qhm": 0.7},
    "dana": {"g1": 0.1, "g2": 0.1, "g3": 0.1, "dana_delta": 0.1},
    "am1_power_law": {"kick": 1.0, "delta": 0.45, "gamma": 1.0, "t0": 10.0, "lambda_max": "scale"},
    "jacobi_heavy_ball": {"nu_b": "kappa/nu", "lambda_max": "scale"},
    "schedule_free_sgd": {"lr": 1.0, "momentum": 0.9},
}
DESIGN_STARTS = {
    "sgd": {"lr": 0.5}, "sgd_power_law": {"lr": 1.0, "power": 0.3, "t0": 10.0},
    "heavy_ball": {"lr": 0.1, "momentum": 0.9}, "nesterov": {"lr": 0.1, "momentum": 0.9},
    "qhm": {"lr": 1.0, "momentum": 0.99, "nu_qhm": 0.7},
    "am1_power_law": {"kick": 1.0, "delta": 0.3, "gamma": 1.0, "t0": 10.0},
    "dana_decaying": {"g2": 0.5, "g3": 0.5, "delta": 5.0, "power": 0.5},
    "jacobi_heavy_ball": {"nu_b": 0.5, "lambda_max": 1.0},
}


def test_the_command_line_defaults_are_unchanged():
    assert {n: p.defaults for n, p in PRESETS.items()} == CLI_DEFAULTS


@pytest.mark.parametrize("name", sorted(DESIGN_STARTS))
def test_the_design_starts_are_unchanged(name):
    fam = make_family(name, 10)
    assert fam.natural(fam.start) == pytest.approx(DESIGN_STARTS[name], rel=1e-14)


def _curve_json(capsys, *argv):
    assert main(["curve", "--steps", "20", "--points", "3", "--size", "20", "--batch", "inf", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("old,new", [("gd", "sgd"), ("jacobi", "jacobi_heavy_ball")])
def test_the_command_line_accepts_the_older_names(capsys, old, new):
    assert _curve_json(capsys, "--algo", old) == _curve_json(capsys, "--algo", new)


@pytest.mark.parametrize("command", [["curve"], ["sweep", "--lr", "0.1,0.2"]])
def test_an_unknown_preset_is_one_line_naming_the_choices(capsys, command):
    assert main([*command, "--algo", "adam", "--steps", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "unknown preset 'adam'" in err and "sgd" in err and "jacobi_heavy_ball" in err


def test_design_accepts_the_older_names():
    spec, noise = Spectrum.power_law(2.0, 1.0, size=20), Noise.none()
    assert make_family("jacobi", 20).name == "jacobi_heavy_ball"
    assert make_family("gd", 20).name == "sgd"
    a = make_family("qhm", 20, start={"nu": 0.5}, bounds={"nu": (0.1, 0.9)})
    b = make_family("qhm", 20, start={"nu_qhm": 0.5}, bounds={"nu_qhm": (0.1, 0.9)})
    np.testing.assert_array_equal(a.start, b.start)
    np.testing.assert_array_equal(a.lower, b.lower)
    with pytest.raises(ValueError, match="twice"):
        make_family("qhm", 20, start={"nu": 0.5, "nu_qhm": 0.5})
    res = optimize_schedule("jacobi", spec, noise, 20, max_iterations=2)
    assert res.family == "jacobi_heavy_ball"


def test_a_preset_without_design_formulas_is_not_a_design_family():
    with pytest.raises(ValueError, match="family must be one of"):
        make_family("am1", 20)


def test_top_level_help_lists_every_preset_with_its_defaults(capsys):
    # the README says `memsgd --help` shows every command and preset with its options
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, preset in PRESETS.items():
        line = next((ln for ln in out.splitlines() if ln.split()[:1] == [name]), None)
        assert line is not None, name
        for option in preset.defaults:
            assert "--" + option.replace("_", "-") in line, (name, option)
    assert "sgd (gd)" in out and "jacobi_heavy_ball (jacobi)" in out


def test_the_cli_guide_lists_the_presets_under_their_names():
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    rows = [ln for ln in text.splitlines() if re.match(r"\| `[a-z0-9_]+`", ln)]
    listed = [re.match(r"\| `([a-z0-9_]+)`", ln).group(1) for ln in rows]
    assert listed[:len(PRESETS)] == list(PRESETS)
    for row, preset in zip(rows, PRESETS.values()):
        for alias in preset.aliases:
            assert f"(`{alias}`)" in row.split("|")[1]
