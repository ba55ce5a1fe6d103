"""Progress bars and cancellation of long engine runs."""
import threading

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum, _core, loss_curve, propagators

from ._extras import requires


@requires("tqdm")
def test_progress_bar_changes_nothing_but_stderr(capsys):
    spec = Spectrum.power_law(2.0, 1.0, size=3000)
    algo = memsgd.heavy_ball(0.1, 0.9)
    quiet = loss_curve(algo, spec, Noise.gaussian(10), 3000, progress=False)
    shown = loss_curve(algo, spec, Noise.gaussian(10), 3000, progress=True)
    assert np.array_equal(quiet.loss, shown.loss)
    assert "loss_curve" in capsys.readouterr().err
    p_quiet = propagators(algo, spec, Noise.gaussian(10), 500, progress=False)
    p_shown = propagators(algo, spec, Noise.gaussian(10), 500, progress=True)
    assert np.array_equal(p_quiet.V, p_shown.V) and np.array_equal(p_quiet.U, p_shown.U)


def test_progress_must_be_bool_or_none():
    with pytest.raises(TypeError, match="progress"):
        loss_curve(memsgd.gd(0.1), Spectrum([1.0], [1.0]), Noise.none(), 10, progress="yes")


def test_core_run_can_be_cancelled_from_another_thread():
    spec = Spectrum.power_law(2.0, 1.0, size=50000)
    algo = memsgd.heavy_ball(0.1, 0.9)
    control = _core.RunControl()
    steps = 10**7  # minutes of work if not cancelled
    outcome = {}

    def run():
        try:
            _core.evolve((spec.eigenvalues, spec.weights, spec.coefficients2),
                         (np.array([algo.alpha]), algo.b.reshape(1, 1), algo.c.reshape(1, 1), algo.D.reshape(1, 1, 1),
                          algo.e.reshape(1, 1)), (np.array([0.1]), np.array([-0.1])), steps, control=control)
        except RuntimeError as exc:
            outcome["error"] = str(exc)

    worker = threading.Thread(target=run)
    worker.start()
    while control.steps_done < 10:
        worker.join(0.01)
    control.cancel()
    worker.join(120)
    assert not worker.is_alive()
    assert outcome.get("error") == "run cancelled"
    assert 10 <= control.steps_done < steps


def test_ctrl_c_interrupts_a_long_loss_curve(ctrl_c):
    # KeyboardInterrupt reaches the caller promptly; without cancellation the run would take
    # far longer than the subprocess timeout and the test fails.
    seconds, _ = ctrl_c("memsgd.loss_curve(memsgd.heavy_ball(0.1, 0.9), spec, memsgd.Noise.gaussian(10), 10**8, "
                        "progress=False)",
                        setup="import memsgd\nspec = memsgd.Spectrum.power_law(2.0, 1.0, size=100000)")
    assert seconds < 30
