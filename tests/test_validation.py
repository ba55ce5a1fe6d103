"""Bad inputs to the public API raise ValueError/TypeError naming the argument.

Each row: (id, call, exception type, fragment of the message that names the argument / rule).
"""
import math

import numpy as np
import pytest

import memsgd
from memsgd import (
    MemoryAlgorithm,
    Multistep,
    Noise,
    Schedule,
    Spectrum,
    _core,
    am1,
    dana,
    gd,
    heavy_ball,
    loss_curve,
    loss_from_propagators,
    nesterov,
    propagators,
    qhm,
    schedules,
    simulate_sgd,
    theory,
)

SPEC = Spectrum([1.0, 0.5, 0.25], [1.0, 1.0, 1.0])
HB = heavy_ball(0.1, 0.5)
NOISE = Noise(10)
PROPS = propagators(HB, SPEC, NOISE, 8)
SCHED3 = Schedule.from_arrays([0.1] * 3, [[0.5]] * 3, [[0.1]] * 3, [[[0.5]]] * 3)
NAN, INF = float("nan"), float("inf")


def _bad_generator(t):
    return np.zeros(len(t)), np.zeros((len(t), 2)), np.zeros((len(t), 1)), np.zeros((len(t), 1, 1)), np.zeros((len(t), 1))


ZERO = np.zeros(1)
GD_ROW = (np.ones(1), np.ones((1, 0)), np.ones((1, 0)), np.ones((1, 0, 0)), np.ones((1, 0)))   # the core's algorithm entry: gd

CASES = [
    # --- Spectrum --------------------------------------------------------------------------
    ("spectrum-empty", lambda: Spectrum([], []), ValueError, "eigenvalues must not be empty"),
    ("spectrum-2d", lambda: Spectrum([[1.0]], [[1.0]]), ValueError, "eigenvalues must be 1-dimensional"),
    ("spectrum-0d", lambda: Spectrum(1.0, 1.0), ValueError, "eigenvalues must be 1-dimensional"),
    ("spectrum-zero-eig", lambda: Spectrum([1.0, 0.0], [1, 1]), ValueError, "eigenvalues must all be > 0"),
    ("spectrum-neg-eig", lambda: Spectrum([1.0, -1e-3], [1, 1]), ValueError, "eigenvalues must all be > 0"),
    ("spectrum-nan-eig", lambda: Spectrum([1.0, NAN], [1, 1]), ValueError, "eigenvalues must contain only finite"),
    ("spectrum-inf-eig", lambda: Spectrum([INF], [1]), ValueError, "eigenvalues must contain only finite"),
    ("spectrum-neg-c2", lambda: Spectrum([1.0, 1.0], [1, -1]), ValueError, "coefficients2 must all be >= 0"),
    ("spectrum-nan-c2", lambda: Spectrum([1.0], [NAN]), ValueError, "coefficients2 must contain only finite"),
    ("spectrum-len-mismatch", lambda: Spectrum([1.0, 0.5], [1.0]), ValueError, "coefficients2 must have the same length"),
    ("spectrum-str", lambda: Spectrum(["1.0"], [1.0]), TypeError, "eigenvalues must be an array of real numbers"),
    ("spectrum-complex", lambda: Spectrum(np.array([1 + 1j]), [1.0]), TypeError, "eigenvalues must be real"),
    ("spectrum-None", lambda: Spectrum(None, [1.0]), TypeError, "eigenvalues must be an array"),
    ("spectrum-ragged", lambda: Spectrum([1.0, [1.0, 2.0]], [1.0, 1.0]), TypeError, "eigenvalues must be an array"),
    ("spectrum-weights-zero", lambda: Spectrum([1.0], [1.0], [0.0]), ValueError, "weights must all be > 0"),
    ("spectrum-weights-len", lambda: Spectrum([1.0], [1.0], [1.0, 1.0]), ValueError, "weights must have the same length"),
    ("spectrum-L0-overflow", lambda: Spectrum([1e300, 1e300], [1e300, 1e300]), ValueError, "initial loss"),
    ("power-law-nu<=1", lambda: Spectrum.power_law(1.0, 1.0), ValueError, "nu must be > 1"),
    ("power-law-kappa-0", lambda: Spectrum.power_law(2.0, 0.0), ValueError, "kappa must be > 0"),
    ("power-law-kappa-nan", lambda: Spectrum.power_law(2.0, NAN), ValueError, "kappa must be finite"),
    ("power-law-size-0", lambda: Spectrum.power_law(2.0, 1.0, size=0), ValueError, "size must be >= 1"),
    ("power-law-size-float", lambda: Spectrum.power_law(2.0, 1.0, size=10.5), TypeError, "size must be an integer"),
    ("power-law-scale-neg", lambda: Spectrum.power_law(2.0, 1.0, scale=-1.0), ValueError, "scale must be > 0"),
    ("features-1d-x", lambda: Spectrum.from_features(np.ones(3), np.ones(3)), ValueError, "x must be 2-dimensional"),
    ("features-y-rows", lambda: Spectrum.from_features(np.ones((3, 2)), np.ones(4)), ValueError, "one row per sample"),
    ("features-nan", lambda: Spectrum.from_features(np.full((3, 2), NAN), np.ones(3)), ValueError, "x must contain only finite"),
    ("features-zero-x", lambda: Spectrum.from_features(np.zeros((3, 2)), np.ones(3)), ValueError, "x must have at least one"),
    ("features-rtol", lambda: Spectrum.from_features(np.eye(3), np.ones(3), rtol=NAN), ValueError, "rtol must be finite"),
    # --- Noise -----------------------------------------------------------------------------
    ("noise-B-0", lambda: Noise(0), ValueError, "batch_size must be >= 1"),
    ("noise-B-neg", lambda: Noise(-4), ValueError, "batch_size must be >= 1"),
    ("noise-B-nonint", lambda: Noise(2.5), ValueError, "batch_size must be an integer"),
    ("noise-B-str", lambda: Noise("8"), TypeError, "batch_size must be a real number"),
    ("noise-B-nan", lambda: Noise(NAN), ValueError, "batch_size must be finite"),
    ("noise-B--inf", lambda: Noise(-INF), ValueError, "batch_size must be a positive integer"),
    ("noise-B-bool", lambda: Noise(True), TypeError, "batch_size must be a real number"),
    ("noise-tau1-nan", lambda: Noise(4, tau1=NAN), ValueError, "tau1 must be finite"),
    ("noise-tau2-inf", lambda: Noise(4, tau2=INF), ValueError, "tau2 must be finite"),
    ("noise-gaussian-B-0", lambda: Noise.gaussian(0), ValueError, "batch_size must be >= 1"),
    ("noise-tau1-negative", lambda: Noise(4, -0.5, -1.0), ValueError, "tau1 must be >= 0"),
    ("noise-tau2-above-tau1", lambda: Noise(4, 1.0, 1.5), ValueError, "tau2 must be <= tau1"),
    ("noise-tau2-positive-tau1-zero", lambda: Noise(4, 0.0, 0.5), ValueError, "tau2 must be <= tau1"),
    ("spectrum-bool", lambda: Spectrum([True], [1.0]), TypeError, "eigenvalues must be an array of real numbers, got booleans"),
    ("spectrum-huge-int", lambda: Spectrum([10 ** 400], [1.0]), ValueError, "eigenvalues must contain only finite"),
    ("power-law-head-with-size", lambda: Spectrum.power_law(2.0, 1.0, size=10, head=999), ValueError, "head applies"),
    ("power-law-size-too-large", lambda: Spectrum.power_law(2.0, 1.0, size=10 ** 12), ValueError, "too large"),
    ("features-y-no-columns", lambda: Spectrum.from_features(np.eye(3), np.ones((3, 0))), ValueError, "y must have at least one output"),
    ("gd-lr-huge-int", lambda: gd(10 ** 400), ValueError, "lr must be finite"),
    ("hb-lr-negative", lambda: heavy_ball(-0.1, 0.9), ValueError, "lr must be >= 0"),
    ("am1-kick-negative", lambda: am1(0.1, 0.9, -1.0), ValueError, "kick must be >= 0"),
    # --- algorithms ------------------------------------------------------------------------
    ("algo-c-M-mismatch", lambda: MemoryAlgorithm(0.1, [1, 2], [1], np.eye(2)), ValueError, "c must have shape (2,)"),
    ("algo-D-M-mismatch", lambda: MemoryAlgorithm(0.1, [1, 2], [1, 2], np.eye(3)), ValueError, "D must have shape (2, 2)"),
    ("algo-e-M-mismatch", lambda: MemoryAlgorithm(0.1, [1, 2], [1, 2], np.eye(2), [1]), ValueError, "e must have shape (2,)"),
    ("algo-b-2d", lambda: MemoryAlgorithm(0.1, [[1.0]], [1], [[1]]), ValueError, "b must be 1-dimensional"),
    ("algo-b-0d", lambda: MemoryAlgorithm(0.1, 1.0, [1], [[1]]), ValueError, "b must be 1-dimensional"),
    ("algo-alpha-nan", lambda: MemoryAlgorithm(NAN, [1], [1], [[1]]), ValueError, "alpha must be finite"),
    ("algo-alpha-str", lambda: MemoryAlgorithm("0.1", [1], [1], [[1]]), TypeError, "alpha must be a real number"),
    ("algo-D-inf", lambda: MemoryAlgorithm(0.1, [1], [1], [[INF]]), ValueError, "D must contain only finite"),
    ("algo-c-complex", lambda: MemoryAlgorithm(0.1, [1], np.array([1j]), [[0.5]]), TypeError, "c must be real"),
    ("algo-b-bool", lambda: MemoryAlgorithm(0.1, [True], [1], [[0.5]]), TypeError, "b must be an array of real"),
    ("algo-D-mixed-bool", lambda: MemoryAlgorithm(0.1, [1], [1], [[False]]), TypeError, "D must be an array of real"),
    ("algo-c-bool-array", lambda: MemoryAlgorithm(0.1, [1], np.array([True]), [[0.5]]), TypeError, "c must be an array"),
    ("spectrum-mixed-bool", lambda: Spectrum([1.0, True], [1, 1]), TypeError, "eigenvalues must be an array of real"),
    ("multistep-len", lambda: Multistep([0.5], [0.1]), ValueError, "alphas must have length"),
    ("multistep-nan", lambda: Multistep([NAN], [0.1, 0.1]), ValueError, "a must contain only finite"),
    ("gd-lr-nan", lambda: gd(NAN), ValueError, "lr must be finite"),
    ("gd-lr-str", lambda: gd("x"), TypeError, "lr must be a real number"),
    ("hb-momentum-inf", lambda: heavy_ball(0.1, INF), ValueError, "momentum must be finite"),
    ("nesterov-lr-None", lambda: nesterov(None, 0.9), TypeError, "lr must be a real number"),
    ("am1-kick-None", lambda: am1(0.1, 0.9, None), TypeError, "kick must be a real number"),
    ("qhm-nu-nan", lambda: qhm(0.1, 0.9, NAN), ValueError, "nu must be finite"),
    ("dana-delta-nan", lambda: dana(0.1, 0.1, 0.1, NAN), ValueError, "delta must be finite"),
    ("eigen-matrix-nan", lambda: HB.eigen_matrix(NAN), ValueError, "lam must contain only finite"),
    ("eigen-matrix-str", lambda: HB.eigen_matrix("x"), TypeError, "lam must be an array of real numbers"),
    # --- schedules -------------------------------------------------------------------------
    ("from-arrays-T-mismatch", lambda: Schedule.from_arrays([0.1] * 3, [[0.5]] * 2, [[0.1]] * 3, [[[0.5]]] * 3),
     ValueError, "b must have shape (3, M)"),
    ("from-arrays-M-mismatch", lambda: Schedule.from_arrays([0.1] * 3, [[0.5]] * 3, [[0.1, 0.1]] * 3, [[[0.5]]] * 3),
     ValueError, "c must have shape (3, 1)"),
    ("from-arrays-D-mismatch", lambda: Schedule.from_arrays([0.1] * 3, [[0.5]] * 3, [[0.1]] * 3, [[0.5]] * 3),
     ValueError, "D must have shape (3, 1, 1)"),
    ("from-arrays-e-mismatch", lambda: Schedule.from_arrays([0.1] * 3, [[0.5]] * 3, [[0.1]] * 3, [[[0.5]]] * 3, [[0.1, 0.2]] * 3),
     ValueError, "e must have shape (3, 1)"),
    ("from-arrays-nan", lambda: Schedule.from_arrays([NAN] * 3, [[0.5]] * 3, [[0.1]] * 3, [[[0.5]]] * 3),
     ValueError, "alpha must contain only finite"),
    ("schedule-shorter-than-steps", lambda: loss_curve(SCHED3, SPEC, NOISE, 5), ValueError, "steps must be <= the schedule's length 3"),
    ("schedule-at-neg", lambda: SCHED3.at(-1), ValueError, "t must be >= 0"),
    ("schedule-at-end", lambda: SCHED3.at(3), ValueError, "t must be < the schedule's length"),
    ("schedule-generator-not-callable", lambda: Schedule(1, 42), TypeError, "generator must be callable"),
    ("schedule-generator-shapes", lambda: Schedule(1, _bad_generator).parameters(4), ValueError, "schedule generator must return"),
    ("schedule-constant-type", lambda: schedules.constant("hb"), TypeError, "algo must be a MemoryAlgorithm"),
    ("jacobi-nu-0", lambda: schedules.jacobi_heavy_ball(0), ValueError, "nu_b must be > 0"),
    ("jacobi-lmax-neg", lambda: schedules.jacobi_heavy_ball(1, -1), ValueError, "lambda_max must be > 0"),
    ("am1-power-law-kick-0", lambda: schedules.am1_power_law(0, 0.5), ValueError, "kick must be > 0"),
    ("am1-power-law-delta-neg", lambda: schedules.am1_power_law(1, -0.5), ValueError, "delta must be >= 0"),
    ("schedule-free-lr-0", lambda: schedules.schedule_free_sgd(0, 0.9), ValueError, "lr must be > 0"),
    # --- dynamics --------------------------------------------------------------------------
    ("loss-curve-steps-neg", lambda: loss_curve(HB, SPEC, NOISE, -1), ValueError, "steps must be >= 0"),
    ("loss-curve-steps-nonint", lambda: loss_curve(HB, SPEC, NOISE, 2.5), ValueError, "steps must be an integer"),
    ("loss-curve-steps-inf", lambda: loss_curve(HB, SPEC, NOISE, float("inf")), ValueError, "steps must be an integer"),
    ("loss-curve-steps-str", lambda: loss_curve(HB, SPEC, NOISE, "10"), TypeError, "steps must be an integer"),
    ("loss-curve-steps-None", lambda: loss_curve(HB, SPEC, NOISE, None), TypeError, "steps must be an integer"),
    ("loss-curve-steps-bool", lambda: loss_curve(HB, SPEC, NOISE, True), TypeError, "steps must be an integer"),
    ("loss-curve-steps-huge", lambda: loss_curve(HB, SPEC, NOISE, 2 ** 70), ValueError, "steps must be < 2**40"),
    ("loss-curve-steps-2**39", lambda: loss_curve(HB, SPEC, NOISE, 2 ** 39), ValueError, "(steps = 549755813888) is too large: it needs"),
    ("loss-curve-algo-type", lambda: loss_curve(SPEC, HB, NOISE, 3), TypeError, "algorithm must be a MemoryAlgorithm"),
    ("loss-curve-spectrum-type", lambda: loss_curve(HB, [1.0], NOISE, 3), TypeError, "spectrum must be a Spectrum"),
    ("loss-curve-noise-type", lambda: loss_curve(HB, SPEC, 10, 3), TypeError, "noise must be a Noise"),
    ("propagators-on-schedule", lambda: propagators(schedules.constant(HB), SPEC, NOISE, 3), ValueError, "algorithm must be stationary"),
    ("propagators-steps-neg", lambda: propagators(HB, SPEC, NOISE, -2), ValueError, "steps must be >= 0"),
    ("loss-from-props-method", lambda: loss_from_propagators(PROPS, method="bogus"), ValueError, "method must be 'direct' or 'fft'"),
    ("loss-from-props-method-None", lambda: loss_from_propagators(PROPS, method=None), ValueError, "method must be"),
    ("loss-from-props-type", lambda: loss_from_propagators(np.zeros(3)), TypeError, "props must be Propagators"),
    ("loss-from-props-inf", lambda: loss_from_propagators(memsgd.Propagators(np.array([1.0, INF]), np.ones(2), np.zeros(2), np.zeros(2))),
     ValueError, "props must be finite"),
    ("simulate-B-0", lambda: simulate_sgd(HB, SPEC, 0, 3, 2), ValueError, "batch_size must be >= 1"),
    ("simulate-B-float", lambda: simulate_sgd(HB, SPEC, 2.5, 3, 2), TypeError, "batch_size must be an integer"),
    ("simulate-runs-0", lambda: simulate_sgd(HB, SPEC, 1, 3, 0), ValueError, "runs must be >= 1"),
    ("simulate-steps-neg", lambda: simulate_sgd(HB, SPEC, 1, -1, 2), ValueError, "steps must be >= 0"),
    ("simulate-infinite-spectrum", lambda: simulate_sgd(HB, Spectrum.power_law(2.0, 1.0, head=16), 1, 3, 2), ValueError, "spectrum must be finite"),
    ("simulate-seed-str", lambda: simulate_sgd(HB, SPEC, 1, 3, 2, seed="x"), TypeError, "seed must be an integer"),
    ("simulate-chunk-0", lambda: simulate_sgd(HB, SPEC, 1, 3, 2, chunk_runs=0), ValueError, "chunk_runs must be >= 1"),
    # --- theory ----------------------------------------------------------------------------
    ("fit-exponent-nan", lambda: memsgd.fit_exponent([1.0, 0.5, 0.3], NAN, 2), ValueError, "t_min must be finite"),
    ("fit-exponent-t-max", lambda: memsgd.fit_exponent([1.0, 0.5, 0.3], 1, 5), ValueError, "t_max must be <="),
    ("fit-exponent-2d", lambda: memsgd.fit_exponent([[1.0, 0.5, 0.3]], 1, 2), ValueError, "loss must be 1-dimensional"),
    ("asymptotics-non-power-law", lambda: theory.asymptotics(HB, SPEC, NOISE), ValueError, "spectrum"),
    ("phase-boundary-nu-half", lambda: memsgd.phase_boundary(0.5), ValueError, "nu must be > 1"),
    ("stability-per-step-noise", lambda: theory.stability(HB, SPEC, Noise(np.array([2.0, 4.0]))), ValueError,
     "noise must have one batch size"),
    ("stability-on-schedule", lambda: theory.stability(schedules.constant(HB), SPEC, NOISE), ValueError,
     "algorithm must be stationary"),
    ("stability-noise-type", lambda: theory.stability(HB, SPEC, 4), TypeError, "noise must be a Noise"),
    ("stability-spectrum-type", lambda: theory.stability(HB, [1.0], NOISE), TypeError, "spectrum must be a Spectrum"),
    # --- compiled core (direct calls) ------------------------------------------------------
    ("core-evolve-complex", lambda: _core.evolve((np.ones(1) + 0j, np.ones(1), np.ones(1)), GD_ROW, (ZERO, ZERO), 3),
     TypeError, "eigenvalues must be an array of real numbers"),
    ("core-evolve-steps-neg", lambda: _core.evolve((np.ones(1), np.ones(1), np.ones(1)), GD_ROW, (ZERO, ZERO), -1),
     ValueError, "steps must be >= 0"),
    ("core-evolve-weights-shape", lambda: _core.evolve((np.ones(2), np.ones(1), np.ones(2)), GD_ROW, (ZERO, ZERO), 1),
     ValueError, "weights must have shape"),
    ("core-evolve-noise-shape",
     lambda: _core.evolve((np.ones(1), np.ones(1), np.ones(1)), GD_ROW, (ZERO, np.zeros(2)), 1),
     ValueError, "self_noise must have shape"),
    ("core-renewal-method", lambda: _core.solve_renewal(np.ones(3), np.ones(3), np.ones(3), np.ones(3), "slow"),
     ValueError, "method must be"),
    ("core-renewal-shape", lambda: _core.solve_renewal(np.ones(3), np.ones(2), np.ones(3), np.ones(3), "fft"),
     ValueError, "U_prime must have shape"),
]


@pytest.mark.parametrize("call, exc, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value), f"message {str(info.value)!r} lacks {fragment!r}"
    # exactly the documented type (MemoryError, IndexError... would also pass a bare raises(Exception))
    assert type(info.value) is exc


def test_table_is_large_enough():
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def test_good_inputs_still_accepted():
    """The checks do not reject the valid edge of each rule."""
    Spectrum([1.0], [0.0])                          # c^2 = 0 allowed
    Spectrum(np.array([1, 2]), np.array([1, 0]))   # integer arrays convert
    Spectrum(np.ones((3, 2))[:, 0], np.ones(3))     # non-contiguous input
    Noise(1), Noise(math.inf), Noise(np.int64(3)), Noise(4.0)
    MemoryAlgorithm(0.1, [], [], [[]])              # M = 0
    Schedule.from_arrays([0.1] * 3, [[0.5]] * 3, [[0.1]] * 3, [[[0.5]]] * 3)
    assert loss_curve(SCHED3, SPEC, NOISE, 3).loss.shape == (4,)
    assert loss_curve(HB, SPEC, NOISE, np.int64(2)).loss.shape == (3,)
    assert HB.eigen_matrix([0.5, 1.0]).shape == (2, 2, 2)
