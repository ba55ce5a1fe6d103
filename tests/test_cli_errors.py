"""The command line ends every failure in one line (issue 18 items 13 and 19): limits checked
before any work, memory and numerical failures, misspelt options, Ctrl-C while starting, and the
stability rule of a preset's memory factor."""
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import memsgd
from memsgd.cli import main

from ._extras import requires


def one_line_error(capsys, argv, status=2, seconds=30.0):
    """Run ``memsgd argv`` in this process: the status, one line on stderr, quickly; the line."""
    start = time.perf_counter()
    assert main(argv) == status
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert elapsed < seconds, f"{argv}: refused only after {elapsed:.1f} s"
    return err


# --- the paths that ended in a traceback ---------------------------------------------------------

@requires("matplotlib")
def test_schedules_long_horizon_is_refused_before_the_short_one_runs(capsys, tmp_path):
    # numpy's MemoryError from the (T+1,) weights at T_long = 1e12, after tuning every method at T
    err = one_line_error(capsys, ["reproduce", "schedules", "--quick", "--long-steps", "1e12", "--out", str(tmp_path)],
                         seconds=10.0)
    assert "physical memory" in err and "steps = 1000000000000" in err


def test_fig4_horizon_beyond_memory_is_refused(capsys, tmp_path):
    err = one_line_error(capsys, ["reproduce", "fig4", "--quick", "--steps", "1e12", "--out", str(tmp_path)])
    assert "Figure 4 with steps = 1000000000000" in err and "physical memory" in err


def test_phase_measure_steps_beyond_reach_is_refused_with_the_time_it_would_take(capsys):
    # np.arange over the whole fit window (6.5 TiB) in fitted_steps
    err = one_line_error(capsys, ["phase", "--measure-steps", "1e12"])
    assert "--measure-steps 1e+12" in err and "days here" in err


def test_fitted_steps_do_not_allocate_the_window():
    from memsgd.theory._fitting import fitted_steps as _fitted_steps
    t = _fitted_steps(1e11, 1e12)
    assert t.size == 200 and t[0] == 10 ** 11 and t[-1] == 10 ** 12 and np.all(np.diff(t) > 0)
    # the same steps as before for a window small enough to list
    w = np.arange(1000, 10001)
    assert np.array_equal(_fitted_steps(1000, 10000), np.unique(np.round(np.geomspace(w[0], w[-1], 200)).astype(int)))


def test_dana_delta_that_cannot_converge_is_refused(capsys):
    # was: RuntimeError "eigenvalues of a moment map did not converge" from loss_at's poles
    err = one_line_error(capsys, ["curve", "--algo", "dana", "--dana-delta", "1e300", "--kappa", "10",
                                  "--steps", "1e9"])
    assert "--dana-delta must be in (0, 2)" in err and "|1 - delta| < 1" in err


def test_stability_with_overflowing_inputs(capsys):
    # was: OverflowError from rho_D ** 2 (Python floats)
    err = one_line_error(capsys, ["stability", "--momentum", "1e300", "--tau1", "1e308", "--tau2", "1", "--q", "1e5"])
    assert "--momentum must be in (-1, 1)" in err
    # a stable momentum with the same extreme noise: a report, and no numpy warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["stability", "--tau1", "1e308", "--tau2", "1", "--q", "1e5", "--json"]) == 0
    assert '"converges": false' in capsys.readouterr().out


def test_engine_run_under_an_address_space_limit_is_one_line():
    # `curve --steps 1e9 --method engine` under a 3 GB limit (ulimit -v): numpy's MemoryError after
    # the physical-memory check passed
    resource = pytest.importorskip("resource")
    limit = 3 * 2 ** 30

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "memsgd", "curve", "--steps", "1e9", "--method", "engine"],
                          capture_output=True, text=True, timeout=120, preexec_fn=cap)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("memsgd curve: error: out of memory") and "ulimit" in proc.stderr


def test_memory_and_numerical_failures_are_one_line(capsys, monkeypatch):
    import memsgd.cli.curve as curve

    def fail(kind):
        def raise_(*args, **kwargs):
            raise kind("Unable to allocate 7.45 GiB" if kind is MemoryError else "eigenvalues did not converge")
        return raise_

    monkeypatch.setattr(curve, "loss_curve", fail(MemoryError))
    assert "out of memory: Unable to allocate 7.45 GiB" in one_line_error(capsys, ["curve", "--steps", "100"], 1)
    monkeypatch.setattr(curve, "loss_curve", fail(RuntimeError))
    assert one_line_error(capsys, ["curve", "--steps", "100"], 1) == \
        "memsgd curve: error: eigenvalues did not converge\n"


# --- misspellings ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv, hint", [
    (["curve", "--stesp", "100"], "--stesp: did you mean --steps?"),
    (["curve", "--momentm", "0.5"], "--momentm: did you mean --momentum?"),
    (["sweep", "--lr", "0.1,0.2", "--stoer", "x.zarr"], "--stoer: did you mean --store?"),
    (["reproduce", "fig4", "--quik"], "--quik: did you mean --quick?"),
    (["curve", "--algo", "heavyball"], "did you mean 'heavy_ball'?"),
    (["curv"], "did you mean 'curve'?"),
])
def test_misspelt_options_get_the_closest_one(capsys, argv, hint):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert hint in err and "Traceback" not in err


def test_unknown_options_without_a_close_one_are_listed_plainly(capsys):
    assert main(["curve", "--zzzzzzzz", "1"]) == 2
    assert "unrecognized arguments: --zzzzzzzz 1\n" in capsys.readouterr().err


# --- Ctrl-C while the command starts ---------------------------------------------------------

# A site hook that sends SIGINT to the process when numpy starts being imported: in the middle of
# memsgd's own import, before memsgd.cli.main runs (deterministic, unlike a timed kill).
_SIGINT_AT_NUMPY = textwrap.dedent("""
    import os, signal, sys

    class _Hook:
        fired = False

        def find_spec(self, name, path=None, target=None):
            if name == "numpy" and not _Hook.fired:
                _Hook.fired = True
                os.kill(os.getpid(), signal.SIGINT)
            return None

    sys.meta_path.insert(0, _Hook())
""")


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("how", ["module", "script"])
def test_ctrl_c_during_start_up_is_one_line(tmp_path, how, ctrl_c):
    (tmp_path / "sitecustomize.py").write_text(_SIGINT_AT_NUMPY)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path)] + sys.path))
    if how == "module":
        argv = [sys.executable, "-m", "memsgd", "--version"]
    else:   # what the console script `memsgd` does
        script = tmp_path / "bin" / "memsgd"
        script.parent.mkdir()
        script.write_text("import sys\nfrom memsgd.cli import main\nsys.exit(main())\n")
        argv = [sys.executable, str(script), "--version"]
    proc = ctrl_c.subprocess_run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "memsgd: interrupted\n" and proc.stdout == ""


def test_a_library_process_keeps_its_own_sigint_handler(ctrl_c):
    code = "import signal, memsgd; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    out = ctrl_c.subprocess_run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "True"


# --- the stability rule of the memory factor (item 19) ---------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["curve", "--momentum", "1e308"], "--momentum must be in (-1, 1)"),
    (["curve", "--momentum", "1"], "--momentum must be in (-1, 1)"),
    (["curve", "--algo", "nesterov", "--momentum", "-1"], "--momentum must be in (-1, 1)"),
    (["stability", "--algo", "am1", "--momentum", "1.5"], "--momentum must be in (-1, 1)"),
    (["phase", "--algo", "qhm", "--momentum", "2"], "--momentum must be in (-1, 1)"),
    (["curve", "--algo", "dana", "--dana-delta", "2"], "--dana-delta must be in (0, 2)"),
    (["curve", "--algo", "dana", "--dana-delta", "0"], "--dana-delta must be in (0, 2)"),
    (["curve", "--algo", "schedule_free_sgd", "--momentum", "1.5"], "must be in [0, 1]"),
    (["sweep", "--momentum", "0.9:1.1:3", "--steps", "10"], "--momentum must be in (-1, 1)"),
])
def test_cli_refuses_memory_factors_that_cannot_converge(capsys, argv, message):
    assert message in one_line_error(capsys, argv)


def test_cli_accepts_memory_factors_inside_the_rule(capsys):
    for argv in (["curve", "--momentum", "0.999", "--steps", "10"], ["curve", "--momentum", "-0.5", "--steps", "10"],
                 ["curve", "--algo", "dana", "--dana-delta", "1.9", "--steps", "10"],
                 ["curve", "--algo", "schedule_free_sgd", "--momentum", "1", "--steps", "10"]):
        assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()


@pytest.mark.parametrize("make", [
    lambda: memsgd.heavy_ball(0.1, 1.0), lambda: memsgd.heavy_ball(0.1, -1.2), lambda: memsgd.nesterov(0.1, 1.01),
    lambda: memsgd.am1(0.01, 1.5, 1.0), lambda: memsgd.qhm(0.1, 1.2, 0.7), lambda: memsgd.dana(0.1, 0.1, 0.1, 2.5),
])
def test_library_presets_warn_when_the_memory_factor_cannot_converge(make):
    with pytest.warns(UserWarning, match=r"will not converge on a power law: \|(momentum|1 - delta)\| < 1"):
        algo = make()
    # and the warning tells the truth: not strictly stable on a power law
    report = memsgd.stability(algo, memsgd.Spectrum.power_law(2.0, 1.0, size=50), memsgd.Noise.none())
    assert not report.strictly_stable


def test_library_presets_inside_the_rule_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        memsgd.heavy_ball(0.1, 0.999), memsgd.nesterov(0.1, -0.99), memsgd.am1(0.01, 0.9999, 1.0)
        memsgd.qhm(0.1, 0.9, 0.7), memsgd.dana(0.1, 0.1, 0.1, 1.99)


# --- numpy warnings from the theory at extreme inputs ----------------------------------------

EXTREME = [
    (memsgd.heavy_ball(0.1, 0.9), memsgd.Noise(10, 1e308, 1),
     memsgd.Spectrum.power_law(1.0001, 1e-4, size=50, scale=1e300, q=1e300)),
    (memsgd.heavy_ball(1e300, 0.5), memsgd.Noise(10, 1e308, 1), memsgd.Spectrum.power_law(2, 1, size=100, q=1e5)),
    (memsgd.heavy_ball(1e-300, 0.5), memsgd.Noise(10, 1e308, 1), memsgd.Spectrum.power_law(2, 1, size=100, q=1e5)),
    (memsgd.am1(0.001, 0.999999, 1e300), memsgd.Noise(1, 1e-300, -1e300), memsgd.Spectrum.power_law(2, 1, size=100)),
    (memsgd.gd(1e300), memsgd.Noise(10, 1e308, 1),
     memsgd.Spectrum.power_law(1.0001, 1e-4, size=50, scale=1e300, q=1e300)),
]


@pytest.mark.parametrize("algo, noise, spectrum", EXTREME)
def test_theory_at_extreme_inputs_warns_nothing_and_decides(algo, noise, spectrum):
    from memsgd import theory
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = theory.stability(algo, spectrum, noise)
        profile = theory.stability_profile(algo, spectrum, noise)
        if algo.memory == 1:
            theory.memory1_geometry(algo)
            theory.noise_sum_memory1(algo, spectrum, noise)
    assert not report.converges and not np.isnan(report.noise_sum) and profile.lam.size == 400


def test_unstable_momentum_report_has_no_overflow_error():
    with pytest.warns(UserWarning):
        algo = memsgd.heavy_ball(0.1, 1e300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = memsgd.stability(algo, memsgd.Spectrum.power_law(2, 1, size=100, q=1e5), memsgd.Noise(10, 1e308, 1))
    assert not report.strictly_stable and report.noise_sum == np.inf


def test_memory1_geometry_stays_in_range():
    # was OverflowError / ZeroDivisionError from Python-float squares; the closed forms by ratios
    big = memsgd.theory.memory1_geometry(memsgd.heavy_ball(1e300, 0.5))
    small = memsgd.theory.memory1_geometry(memsgd.heavy_ball(1e-300, 0.5))
    # heavy ball: q1 = p-ish scale a, lambda_+- ~ (1 +- sqrt(beta))^2 / a: a closed form in a
    for geo, a in ((big, 1e300), (small, 1e-300)):
        beta = 0.5
        lo, hi = geo.complex_interval
        assert lo == pytest.approx((1 - np.sqrt(beta)) ** 2 / a, rel=1e-12)
        assert hi == pytest.approx((1 + np.sqrt(beta)) ** 2 / a, rel=1e-12)
        assert geo.radius == pytest.approx(np.sqrt(beta), rel=1e-12)


def test_phase_diagram_at_extreme_inputs_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = memsgd.phase_diagram(memsgd.heavy_ball(1e300, 0.5), memsgd.Noise(10, 1e308, 1), [1.5, 3.0],
                                    [0.5, 2.0], size=100, q=1e5)
    assert all(r["phase"] == "diverges" for r in rows)


def test_power_law_whose_tail_masses_overflow_names_the_parameters():
    with pytest.raises(ValueError, match=r"Spectrum.power_law\(nu=1.00001, kappa=1e-05, scale=1e\+300"):
        memsgd.Spectrum.power_law(1.00001, 1e-5, scale=1e300, q=1e300)
    with pytest.raises(ValueError, match="too large for scale"):   # was "math domain error" (scale / q underflowed)
        memsgd.Spectrum.power_law(1.5, 1.0, scale=1e-300, q=1e300)


# --- the same class in the reproductions' outputs ----------------------------------------------

@requires("matplotlib")
def test_an_empty_out_folder_is_refused_before_any_work(capsys):
    # was: "[Errno 2] No such file or directory: ''"
    assert "out_dir must be a non-empty path" in one_line_error(capsys, ["reproduce", "fig1", "--quick", "--out", ""])


def test_json_results_are_written_whole(tmp_path, monkeypatch):
    # a kill in the middle of writing must not leave half a file where a result was
    from memsgd import _json
    path = tmp_path / "r.json"
    _json.write_json(path, {"a": 1})
    before = path.read_text()

    class Boom(Exception):
        pass

    import builtins
    real_open = builtins.open

    def failing_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if "w" in mode:
            real = handle.write

            def write(text):
                real(text[: len(text) // 2])
                raise Boom()
            handle.write = write
        return handle

    monkeypatch.setattr(builtins, "open", failing_open)
    with pytest.raises(Boom):
        _json.write_json(path, {"a": 2, "b": list(range(100))})
    monkeypatch.undo()
    assert path.read_text() == before and os.listdir(tmp_path) == ["r.json"]
