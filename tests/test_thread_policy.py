"""The thread policy (docs/engine.md, "Threads"; cpp/src/thread_policy.hpp), one for every core
entry point: short or small runs stay on one thread, long ones may use a team, a team that shares
a busy core is given up, and the results are the bits of one thread whatever the policy did
(issue 24 item 2; issue 18 items 14-15: loss_gradient and optimize_schedule ran 8-15x slower at
their default threads than on one thread on a loaded machine).

Behaviour, not timings: the static plan (``_core.planned_threads``) and what a run did
(``RunControl.largest_team``, ``team_steps``, ``team_tries``, ``team_drops``). The speed itself
is benchmarked in bench/bench_threads.py.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import memsgd as ms
from memsgd import MemoryAlgorithm, Noise, Spectrum, _core

from ._extras import need

ROOT = Path(__file__).resolve().parents[1]
OPENMP = _core.build_info()["openmp"]
needs_openmp = pytest.mark.skipif(not OPENMP, reason="core built without OpenMP: always one thread")


def core_args(algo, spec, noise, steps):
    """The (spectrum, algorithm, noise) _core.evolve / _core.loss_gradient take (a stationary algorithm or a
    schedule)."""
    if isinstance(algo, MemoryAlgorithm):
        params = (np.array([algo.alpha]), algo.b[None], algo.c[None], algo.D[None], algo.e[None])
    else:
        params = tuple(np.asarray(p, dtype=float) for p in algo.parameters(steps))
    c1, c2 = noise.coefficients(steps)
    return (spec.eigenvalues, spec.weights, spec.coefficients2), params, (c1, c2)


HB = ms.heavy_ball(0.1, 0.9)
NOISE = Noise.gaussian(10)


# -- the static plan ------------------------------------------------------------------------------

def test_short_and_small_runs_plan_one_thread():
    plan = _core.planned_threads
    assert plan("curves", 1, 4857, 200, threads=2) == 1            # a short run
    assert plan("curves", 0, 1000, 10 ** 7, threads=2) == 1        # one block of components
    # `reproduce schedules` (K = 1375): blocks of 1024 and 351 components, so a team's step is at
    # least 74% of one thread's plus a barrier: it cannot beat one thread by 15%
    assert plan("curves", 1, 1375, 10 ** 5, threads=2) == 1
    assert plan("curves", 1, 100, 100, configs=8, threads=2) == 1  # little work in all
    assert plan("contour", 1, 100, 20, threads=2) == 1
    assert plan("curves", 1, 10 ** 6, 10 ** 6, threads=1) == 1     # threads=1 is one thread


def test_long_runs_plan_a_team():
    plan = _core.planned_threads
    expect = 2 if OPENMP else 1
    assert plan("curves", 1, 10 ** 5, 2000, threads=2) == expect
    assert plan("curves", 1, 10 ** 5, 2000, threads=3) == (3 if OPENMP else 1)
    assert plan("curves", 1, 4857, 2000, configs=8, threads=2) == expect  # one configuration per thread
    assert plan("contour", 1, 4857, 300, threads=2) == expect
    assert plan("curves", 1, 10 ** 5, 2000) == min(_core.max_threads(), 98)  # default: all cores


def test_plan_refuses_bad_arguments():
    with pytest.raises(ValueError, match="work must be 'curves' or 'contour'"):
        _core.planned_threads("steps", 1, 10, 10)
    with pytest.raises(ValueError, match="threads must be >= 0"):
        _core.planned_threads("curves", 1, 10, 10, threads=-1)


# -- what runs did --------------------------------------------------------------------------------

@needs_openmp
def test_runs_the_plan_keeps_alone_never_open_a_team():
    spec = Spectrum.power_law(2.0, 1.0, size=4857)
    T = 200
    args = core_args(HB, spec, NOISE, T)
    for call in (lambda c: _core.evolve(*args, T, threads=2, control=c),
                 lambda c: _core.loss_gradient(*args, T, np.ones(T + 1), threads=2, control=c),
                 lambda c: _core.evolve_batch([args[0]] * 8, [args[1]] * 8, [args[2]] * 8, 5, threads=2,
                                              control=c)):
        control = _core.RunControl()
        call(control)
        assert (control.largest_team, control.team_tries, control.team_steps) == (1, 0, 0)


@needs_openmp
def test_configurations_run_one_per_thread_unless_the_cores_look_busy():
    spec = Spectrum.power_law(2.0, 1.0, size=4857)
    args = core_args(HB, spec, NOISE, 1)
    for _ in range(3):
        busy = _core.thread_policy_state()["cores_look_busy"]   # what this process measured so far
        control = _core.RunControl()
        _core.evolve_batch([args[0]] * 4, [args[1]] * 4, [args[2]] * 4, 2000, record=[2000], threads=2,
                           control=control)
        # a team ends when its slowest member does: on busy cores, one waiting for a CPU
        assert control.largest_team == (1 if busy else 2) and control.team_steps == 0, busy


def test_thread_policy_state_reports_what_lone_threads_saw():
    spec = Spectrum.power_law(2.0, 1.0, size=4857)
    args = core_args(HB, spec, NOISE, 1)
    # configurations one after another on this thread (threads=1): a lone window of ~10 ms or more
    _core.evolve_batch([args[0]] * 4, [args[1]] * 4, [args[2]] * 4, 2000, record=[2000], threads=1)
    state = _core.thread_policy_state()
    assert 0.0 < state["seen_seconds"] and 0.0 < state["on_cpu"] <= 1.0
    assert not (state["cores_look_idle"] and state["cores_look_busy"])
    assert state["cores_look_idle"] == (state["seen_seconds"] >= 0.01 and state["on_cpu"] >= 0.9)
    assert state["cores_look_busy"] == (state["seen_seconds"] >= 0.01 and state["on_cpu"] < 0.9)
    assert state["backoff_seconds"] >= 0.0


# A busy-looping process pinned to one of the two CPUs this child may use: a team member that
# lands there gets half a core, so no team can beat one thread; the policy must give it up (or
# never open it, when the machine is busy anyway) and run (nearly) all steps on one thread.
_BUSY = textwrap.dedent("""
    import json, os, subprocess, sys, time
    import numpy as np
    import memsgd as ms
    from memsgd import Noise, Spectrum, _core
    sys.path.insert(0, sys.argv[1])
    from tests.test_thread_policy import core_args
    cpus = sorted(os.sched_getaffinity(0))[:2]
    os.sched_setaffinity(0, set(cpus))
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(busy.pid, {cpus[1]})
        time.sleep(0.2)
        spec = Spectrum.power_law(2.0, 1.0, size=50000)       # 49 blocks: the plan allows a team
        T = 4000
        args = core_args(ms.heavy_ball(0.1, 0.9), spec, Noise.gaussian(10), T)
        out = {}
        for name, call in (("evolve", lambda c: _core.evolve(*args, T, threads=2, control=c)),
                           ("loss_gradient", lambda c: _core.loss_gradient(*args, T, np.ones(T + 1), threads=2,
                                                                           control=c))):
            control = _core.RunControl()
            call(control)
            out[name] = dict(steps=T if name == "evolve" else 2 * T, largest=control.largest_team,
                             team_steps=control.team_steps, tries=control.team_tries, drops=control.team_drops)
        print(json.dumps(out))
    finally:
        busy.kill()
        busy.wait()
""")


@needs_openmp
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs and sched_setaffinity")
def test_a_team_sharing_a_busy_core_is_given_up():
    assert _core.planned_threads("curves", 1, 50000, 4000, threads=2) == 2
    proc = subprocess.run([sys.executable, "-c", _BUSY, str(ROOT)], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, r in runs.items():
        # tries are rare and short: a team that was opened was measured and dropped
        assert r["team_steps"] <= r["steps"] // 4, (name, r)
        assert r["drops"] >= r["tries"] - 1, (name, r)


# -- the same bits whatever the policy did --------------------------------------------------------

ALGOS = {
    "gd": ms.gd(0.9),
    "heavy ball": ms.heavy_ball(0.4, 0.8),
    "nesterov (e != 0)": ms.nesterov(0.4, 0.7),
    "am1 schedule": ms.schedules.am1_power_law(0.5, 0.3),
    "memory 4 (general kernel)": MemoryAlgorithm(0.2, [0.3, 0.1, 0.2, 0.1], [0.1, 0.2, 0.1, 0.05],
                                                 np.diag([0.5, 0.6, 0.7, 0.8]), [0.0, 0.1, 0.0, 0.1]),
}


@needs_openmp
@pytest.mark.parametrize("name", sorted(ALGOS))
def test_handing_over_between_team_and_one_thread_changes_no_bit(name):
    # A team that hands over to thread 0 alone every n steps and back (what the policy does when a
    # team stops paying and pays again): losses, divergence and every gradient entry are the bits
    # of one thread, with segments of 7 steps so that hand-overs fall inside recomputed segments.
    algo = ALGOS[name]
    spec = Spectrum.power_law(1.5, 0.8, size=3000)     # 3 blocks
    T = 40
    args = core_args(algo, spec, Noise(5), T)
    w = np.linspace(0.0, 1.0, T + 1)
    curve = _core.evolve(*args, T, threads=1)
    grad = _core.loss_gradient(*args, T, w, threads=1, checkpoint_every=7)
    for threads in (2, 3):
        for every in (1, 2, 5):
            got = _core.evolve(*args, T, threads=threads, alternate_every=every)
            assert all(np.array_equal(a, b) for a, b in zip(curve, got)), (threads, every)
            got = _core.loss_gradient(*args, T, w, threads=threads, checkpoint_every=7, alternate_every=every)
            assert got[0] == grad[0] and got[1] == grad[1], (threads, every)
            assert all(np.array_equal(a, b) for a, b in zip(grad[2:10], got[2:10])), (threads, every)


@needs_openmp
def test_a_run_that_diverges_while_handing_over_ends_cleanly():
    # The run ends (diverges) in a team step, in a lone step and in the step where thread 0 goes
    # alone: every member must leave, and the outputs are those of one thread.
    spec = Spectrum(np.linspace(0.1, 3.0, 3000), np.ones(3000))
    algo = ms.heavy_ball(0.9, 0.5)                      # unstable on the largest eigenvalues
    T = 200
    args = core_args(algo, spec, Noise(5), T)
    one = _core.evolve(*args, T, threads=1)
    assert 0 < one[2] < T
    for every in range(1, 6):
        got = _core.evolve(*args, T, threads=2, alternate_every=every)
        assert got[2] == one[2] and np.array_equal(got[0], one[0]), every


def test_optimize_schedule_takes_threads_and_its_result_does_not_depend_on_them():
    spec = Spectrum.power_law(2.0, 1.0, size=300)
    runs = [ms.optimize_schedule("heavy_ball", spec, NOISE, 60, max_iterations=3, progress=False, threads=t)
            for t in (None, 1, 2)]
    for r in runs[1:]:
        assert np.array_equal(r.x, runs[0].x) and r.value == runs[0].value
        assert np.array_equal(r.loss, runs[0].loss)
    with pytest.raises(ValueError, match=r"^threads must be a positive integer or None \(all cores\), got 0$"):
        ms.optimize_schedule("heavy_ball", spec, NOISE, 60, threads=0)


# -- every entry point: threads=1 and a team give the same bits -----------------------------------

@pytest.fixture
def always_team():
    """Teams from the first step whatever the policy would decide (_core.set_always_team), so that
    the comparisons below exercise a team on a busy machine too; the policy is restored after."""
    _core.set_always_team(True)
    try:
        yield
    finally:
        _core.set_always_team(False)


@needs_openmp
def test_always_team_runs_teams_of_the_threads_asked_for(always_team):
    # the switch the comparisons below rely on: a team of min(threads, blocks) for every step
    spec = Spectrum.power_law(2.0, 1.0, size=3000)      # 3 blocks of components
    T = 30
    args = core_args(HB, spec, NOISE, T)
    for threads, team in ((1, 1), (2, 2), (3, 3), (5, 3)):
        control = _core.RunControl()
        _core.evolve(*args, T, threads=threads, control=control)
        assert (control.largest_team, control.team_steps, control.team_drops) == (team, T if team > 1 else 0, 0)
        control = _core.RunControl()
        _core.loss_gradient(*args, T, np.ones(T + 1), threads=threads, control=control)
        assert control.largest_team == team and control.team_steps == (2 * T if team > 1 else 0), threads
    control = _core.RunControl()                         # 4 tiny configurations, one per thread
    _core.evolve_batch([args[0]] * 4, [args[1]] * 4, [args[2]] * 4, 5, threads=2, control=control)
    assert control.largest_team == 2
    _core.set_always_team(False)
    control = _core.RunControl()
    _core.evolve(*args, T, threads=2, control=control)   # the policy again: too short for a team
    assert control.largest_team == 1


SPEC3 = Spectrum.power_law(1.5, 0.8, size=3000)         # 3 blocks: every thread of a team has work
SPEC_SMALL3 = Spectrum.power_law(1.5, 0.8, size=2100)   # 3 blocks, the last of 52 components
ENTRY_POINTS = {
    "loss_curve": lambda th: ms.loss_curve(ALGOS["memory 4 (general kernel)"], SPEC3, Noise(5), 60, progress=False,
                                           threads=th).loss,
    "loss_curve schedule": lambda th: ms.loss_curve(ALGOS["am1 schedule"], SPEC3, Noise(5), 60, progress=False,
                                                    threads=th).loss,
    "loss_curves (one per thread)": lambda th: ms.loss_curves(list(ALGOS.values())[:3] + [HB], SPEC3, Noise(5), 60,
                                                              threads=th, progress=False).loss,
    "loss_curves (each in a team)": lambda th: ms.loss_curves([HB], SPEC3, Noise(5), 60, threads=th,
                                                              progress=False).loss,
    "loss_at": lambda th: np.concatenate([(r := ms.loss_at(HB, SPEC_SMALL3, NOISE, [10, 100, 10 ** 4, 10 ** 8],
                                                           exact_until=100, progress=False, threads=th)).loss,
                                          r.error]),
    "loss_at piecewise": lambda th: np.concatenate([(r := ms.loss_at(
        ms.Schedule.piecewise([(HB, 300), (ms.heavy_ball(0.05, 0.9), None)]), SPEC_SMALL3, NOISE,
        [10, 100, 10 ** 4, 10 ** 8], progress=False, threads=th)).loss, r.error]),
    "loss_gradient": lambda th: np.concatenate([[(g := ms.loss_gradient(ALGOS["am1 schedule"], SPEC3, Noise(5), 60,
                                                                        checkpoint_every=7, progress=False,
                                                                        threads=th)).value],
                                                *[np.ravel(getattr(g, f))
                                                  for f in ("alpha", "b", "c", "D", "e", "batch", "coupling",
                                                            "self_noise")]]),
    "optimize_schedule": lambda th: np.concatenate([[(r := ms.optimize_schedule("heavy_ball", SPEC3, NOISE, 40,
                                                                                max_iterations=2, progress=False,
                                                                                threads=th)).value], r.x, r.loss]),
}


@needs_openmp
@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_every_entry_point_gives_the_bits_of_one_thread_on_a_team(name, always_team):
    one, two, three = (ENTRY_POINTS[name](th) for th in (1, 2, 3))
    assert np.array_equal(one, two, equal_nan=True) and np.array_equal(one, three, equal_nan=True), name


@needs_openmp
@pytest.mark.parametrize("method", ["engine", "loss_at"])
def test_sweep_gives_the_bits_of_one_thread_on_a_team(method, always_team):
    need("xarray")
    # engine: short curves (chunks of several configurations run one per thread, a chunk of one in
    # a team); loss_at: contour nodes one per thread
    steps, record, spec = (200, [10, 100, 200], SPEC_SMALL3) if method == "engine" else \
        (10 ** 6, [10, 1000, 10 ** 6], Spectrum.power_law(1.5, 0.8, size=300))
    run = [ms.sweep(ms.heavy_ball, {"lr": [0.1, 0.2, 0.3], "momentum": [0.8, 0.9]}, spec, NOISE, steps,
                    record=record, method=method, threads=th, chunk_size=chunk)
           for th, chunk in ((1, None), (2, None), (2, 1), (3, 4))]
    for ds in run[1:]:
        assert np.array_equal(ds["loss"].values, run[0]["loss"].values)
        assert np.array_equal(ds["diverged_at"].values, run[0]["diverged_at"].values)
