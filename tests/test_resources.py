"""Runs that cannot fit fail fast, before allocating; long steps still stop on Ctrl-C."""

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Schedule, Spectrum, _core, loss_curve, loss_curves


def _never_called(t):
    raise AssertionError("the schedule's parameters were built before the memory check")


@pytest.mark.parametrize("memory", [1, 3])
def test_schedule_too_long_for_memory_fails_before_building_parameters(memory):
    phys = _core.physical_memory()
    assert phys > 0
    # The outputs alone (2 x 8 bytes per step) fit in two thirds of the memory; the per-step
    # parameters of a memory-M schedule (8 (1 + 3M + M^2) bytes per step) alone do not.
    steps = int(phys / 24)
    assert 16 * steps < phys < 8 * (1 + 3 * memory + memory ** 2) * steps
    schedule = Schedule(memory, _never_called, name="huge")
    with pytest.raises(ValueError, match=r"\(steps = \d+\) is too large: .*per-step parameters"):
        loss_curve(schedule, Spectrum([1.0], [1.0]), Noise(4), steps)
    with pytest.raises(ValueError, match=r"\(steps = \d+\) is too large: .*per-step parameters"):
        loss_curves([schedule], Spectrum([1.0], [1.0]), Noise(4), steps, record=4)


def test_ten_billion_steps_with_a_schedule_fail_fast():
    # issue 12 item 12
    with pytest.raises(ValueError, match=r"the run \(steps = 10000000000\) is too large: it needs"):
        loss_curve(Schedule(1, _never_called), Spectrum([1.0], [1.0]), Noise(4), 10 ** 10)


def test_state_too_large_for_memory_fails_fast():
    # M = 400 (general kernel): 8 (M+1)^2 bytes of state per component, more than memory in all
    phys = _core.physical_memory()
    K = int(phys / (8 * 401 ** 2)) + 100
    algo = memsgd.MemoryAlgorithm(0.1, np.zeros(400), np.zeros(400), 0.5 * np.eye(400))
    spec = Spectrum(np.linspace(1.0, 0.5, K), np.ones(K))
    with pytest.raises(ValueError, match=r"\(steps = \d+\) is too large: .*state"):
        loss_curve(algo, spec, Noise(4), 10)


def test_general_kernel_cost_is_cubic():
    # issue 12 item 11: the general kernel (M >= 4) does (M+1)^3-type work per component and step
    assert _core.step_cost(3000) >= 3001 ** 3
    assert _core.step_cost(3000) / _core.step_cost(1500) == pytest.approx(8, rel=0.01)
    assert _core.step_cost(1) < 30  # the fixed kernels: (M+1)^2-type formulas


def test_ctrl_c_stops_one_long_step_of_the_general_kernel(ctrl_c):
    # One step with M = 3000 is ~4e10 multiply-adds (tens of seconds); Ctrl-C must stop it
    # within the step (the kernel checks between rows).
    seconds, _ = ctrl_c("memsgd.loss_curve(algo, memsgd.Spectrum([0.5], [1.0]), memsgd.Noise.gaussian(10), 3, "
                        "progress=False)", setup="""
        import numpy as np, memsgd
        M = 3000
        algo = memsgd.MemoryAlgorithm(0.1, np.full(M, 1e-3), np.full(M, 1e-3), 0.5 * np.eye(M))
        """, after=1.0)
    assert seconds < 10.0


def test_loss_curve_holds_two_arrays_of_steps_as_its_memory_guard_budgets():
    # The guard budgets the loss and the gradient-point loss, 16 (T + 1) bytes; the peak used to be
    # three arrays (a Python copy 0.5 * r0). numpy reports its buffers to tracemalloc, so the traced
    # peak is the outputs plus Python's small objects (the core's O(K) state is not traced).
    import tracemalloc
    spec, algo, noise = Spectrum.power_law(2.0, 1.0, size=10), memsgd.heavy_ball(0.1, 0.9), Noise.gaussian(10)
    loss_curve(algo, spec, noise, 10)
    T = 2_000_000
    tracemalloc.start()
    try:
        curve = loss_curve(algo, spec, noise, T)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert curve.loss.size == T + 1
    assert 2.0 * 8 * (T + 1) <= peak < 2.05 * 8 * (T + 1)
