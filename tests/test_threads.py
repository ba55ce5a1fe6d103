"""One thread rule for every entry point (issue 18 items 5 and 13): ``threads`` is a positive
integer or None; more threads than the core's limit (``_core.thread_limit()``, 4 per processor)
are capped, in Python and in the core, so that ``threads=10**6`` no longer crashes OpenMP
(it segfaulted in loss_at), and the results are those of one thread, bitwise."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import memsgd as ms
from memsgd import Noise, Spectrum, _core
from memsgd._validation import thread_count

from ._extras import need

ROOT = Path(__file__).resolve().parents[1]
SPEC = Spectrum.power_law(2.0, 1.0, size=64)
NOISE = Noise.gaussian(10)
HB = ms.heavy_ball(0.1, 0.9)
FAMILY = ms.design.make_family("sgd", 20)

ENTRY_POINTS = {
    "loss_curve": lambda threads: ms.loss_curve(HB, SPEC, NOISE, 50, threads=threads),
    "loss_curves": lambda threads: ms.loss_curves([HB], SPEC, NOISE, 50, threads=threads),
    "propagators": lambda threads: ms.propagators(HB, SPEC, NOISE, 50, threads=threads),
    "loss_gradient": lambda threads: ms.loss_gradient(HB, SPEC, NOISE, 50, threads=threads),
    "loss_at": lambda threads: ms.loss_at(HB, SPEC, NOISE, [10, 1000], threads=threads),
    "optimize_schedule": lambda threads: ms.optimize_schedule("sgd", SPEC, NOISE, 20, max_iterations=2,
                                                              progress=False, threads=threads),
    "family_gradient": lambda threads: ms.design.family_gradient(FAMILY, FAMILY.start, SPEC, NOISE, 20,
                                                                 threads=threads),
    "measured_exponents": lambda threads: ms.theory.measured_exponents(HB, NOISE, [2.0], [0.5], 20, size=30,
                                                                       threads=threads),
}


def test_the_limit():
    assert 1 <= _core.max_threads() <= _core.thread_limit()
    assert thread_count(None) == 0
    assert thread_count(1) == 1
    assert thread_count(10 ** 6) == thread_count(np.int64(3000)) == _core.thread_limit()


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("bad", [0, -1, -10 ** 6])
def test_nonpositive_threads_get_one_message(name, bad):
    with pytest.raises(ValueError, match=rf"^threads must be a positive integer or None \(all cores\), got {bad}$"):
        ENTRY_POINTS[name](bad)


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("bad", [1.0, True, "2"])
def test_threads_of_the_wrong_type(name, bad):
    with pytest.raises(TypeError, match=r"^threads must be a positive integer or None \(all cores\), got "):
        ENTRY_POINTS[name](bad)


def test_sweep_threads_follow_the_same_rule():
    need("xarray")
    with pytest.raises(ValueError, match=r"^threads must be a positive integer or None \(all cores\), got 0$"):
        ms.sweep(ms.heavy_ball, {"lr": [0.1], "momentum": [0.9]}, SPEC, NOISE, 50, threads=0)


def test_the_core_refuses_negative_threads_with_one_message():
    lam = SPEC.eigenvalues
    args = ((lam, SPEC.weights, SPEC.coefficients2),
            (np.array([0.1]), np.array([[0.9]]), np.array([[1.0]]), np.array([[[0.9]]]), np.zeros((1, 1))),
            (np.array([0.1]), np.array([-0.1])))
    with pytest.raises(ValueError, match=r"threads must be >= 0 \(0: the default, all cores\)"):
        _core.evolve(*args, 10, threads=-1)
    with pytest.raises(ValueError, match=r"threads must be >= 0 \(0: the default, all cores\)"):
        _core.evolve_batch(*([a] for a in args), 10, threads=-1)


# In a child process: before the cap, loss_at(threads=10**6) segfaulted and 3000 threads could
# kill the process (libgomp), which would take pytest down with it.
_CHILD = textwrap.dedent("""
    import numpy as np
    import memsgd as ms
    from memsgd import Noise, Spectrum, _core
    spec, noise, hb = Spectrum.power_law(2.0, 1.0, size=64), Noise.gaussian(10), ms.heavy_ball(0.1, 0.9)
    calls = {
        "loss_at": lambda n: ms.loss_at(hb, spec, noise, [10, 10 ** 6], threads=n).loss,
        "loss_curve": lambda n: ms.loss_curve(hb, spec, noise, 200, threads=n).loss,
        "loss_curves": lambda n: ms.loss_curves([hb, ms.gd(0.5)], spec, noise, 200, threads=n).loss,
        "loss_gradient": lambda n: ms.loss_gradient(hb, spec, noise, 200, threads=n).alpha,
        "propagators": lambda n: ms.propagators(hb, spec, noise, 200, threads=n).V,
        # the core itself caps what it is given
        "core evolve": lambda n: _core.evolve((spec.eigenvalues, spec.weights, spec.coefficients2),
                                              (np.array([0.1]), np.array([[0.9]]), np.array([[1.0]]),
                                               np.array([[[0.9]]]), np.zeros((1, 1))),
                                              (np.array([0.1]), np.array([-0.1])), 200, threads=n)[0],
    }
    try:
        import xarray  # noqa: F401
        calls["sweep loss_at"] = lambda n: ms.sweep(ms.heavy_ball, {"lr": [0.1, 0.2], "momentum": [0.9]}, spec,
                                                    noise, 10 ** 6, record=[10, 10 ** 6], method="loss_at",
                                                    threads=n)["loss"].values
    except ImportError:
        pass
    for name, call in calls.items():
        one = call(1)
        for n in (3000, 10 ** 6):
            assert np.array_equal(call(n), one), (name, n)
        print(name, "ok")
""")


@pytest.mark.slow
def test_huge_thread_counts_are_capped_not_crashing():
    import os
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(ms.__file__).parents[1]),
                                                                     os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=600, env=env,
                          cwd=ROOT)
    assert proc.returncode == 0, f"child died with {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-2000:]}"
    assert "loss_at ok" in proc.stdout and "core evolve ok" in proc.stdout
