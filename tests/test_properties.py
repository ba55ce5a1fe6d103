"""Property tests (hypothesis) of the exact dynamics and the algorithm algebra.

Tolerances, stated once:
  * recursion vs propagator expansion: 1e-10 relative per step (plus 1e-13 L_0 absolute for
    steps where the loss has decayed by more than ten orders of magnitude), for losses that
    stay below 100 L_0;
  * PSD: quadratic forms >= -1e-10 x (their scale);
  * batch-size monotonicity: L_t(B1) >= L_t(B2) (1 - 1e-12) for B1 <= B2;
  * round trips / change of basis: char_polys to 1e-9 (absolute, coefficients are O(1)),
    alpha_eff to 1e-9 relative, loss curves to 1e-8 relative.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from memsgd import (
    MemoryAlgorithm,
    Multistep,
    Noise,
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
)

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = dict(allow_nan=False, allow_infinity=False)


@st.composite
def spectra(draw, max_k=6):
    K = draw(st.integers(1, max_k))
    lam = draw(st.lists(st.floats(1e-3, 1.0, **finite), min_size=K, max_size=K))
    c2 = draw(st.lists(st.floats(0.0, 2.0, **finite), min_size=K, max_size=K))
    assume(sum(l * c for l, c in zip(lam, c2)) > 1e-6)
    return Spectrum(lam, c2)


@st.composite
def noises(draw, psd=True):
    B = draw(st.one_of(st.integers(1, 64), st.just(math.inf)))
    tau1 = draw(st.floats(0.0, 2.0, **finite))
    # psd=False also draws tau2 in (0, tau1] (translation-invariant-like data); tau2 > tau1 or
    # tau1 < 0 is no distribution's noise and Noise refuses it
    tau2 = draw(st.floats(-2.0, 0.0, **finite)) if psd else min(draw(st.floats(-2.0, 2.0, **finite)), tau1)
    return Noise(B, tau1, tau2)


@st.composite
def algorithms(draw, max_memory=3, with_e=True, scale=0.5):
    """Random matrix-form algorithms with small gradients and a contracting memory."""
    M = draw(st.integers(0, max_memory))
    vec = lambda lo, hi: np.array(draw(st.lists(st.floats(lo, hi, **finite), min_size=M, max_size=M)))
    alpha = draw(st.floats(0.01, scale, **finite))
    b, c = vec(-0.5, 0.5), vec(-scale, scale)
    D = np.array(draw(st.lists(st.floats(-1.0, 1.0, **finite), min_size=M * M, max_size=M * M))).reshape(M, M)
    if M:
        rho = max(abs(np.linalg.eigvals(D)))
        D = D * (draw(st.floats(0.0, 0.9, **finite)) / rho) if rho > 1e-3 else np.zeros((M, M))
    e = vec(-1.0, 1.0) if with_e and draw(st.booleans()) else np.zeros(M)
    return MemoryAlgorithm(alpha, b, c, D, e)


# -- 1. recursion == propagator expansion ----------------------------------------------------

@SETTINGS
@given(algo=algorithms(), spec=spectra(), noise=noises(psd=False), steps=st.integers(0, 120),
       method=st.sampled_from(["fft", "direct"]))
def test_recursion_equals_propagator_expansion(algo, spec, noise, steps, method):
    curve = loss_curve(algo, spec, noise, steps)
    # Growing losses are excluded here: the FFT solver loses accuracy on exponentially growing
    # propagators (tests/test_extremes.py::test_fft_renewal_on_growing_propagators).
    assume(curve.diverged_at is None and np.max(np.abs(curve.loss)) <= 1e2 * spec.initial_loss)
    props = propagators(algo, spec, noise, steps)
    assume(all(np.all(np.isfinite(a)) for a in (props.U, props.U_prime, props.V, props.V_prime)))
    L = loss_from_propagators(props, method=method)
    L0 = spec.initial_loss
    err = np.abs(L - curve.loss)
    tol = 1e-10 * np.abs(curve.loss) + np.where(np.abs(curve.loss) < 1e-10 * L0, 1e-13 * L0, 0.0)
    assert np.all(err <= tol), (np.max(err / np.maximum(np.abs(curve.loss), 1e-300)), curve.loss[:5])


# -- 2. second moments stay PSD for tau1 >= 0 >= tau2 ----------------------------------------

def _quadratic_form(algo, lam, c2, noise, steps, v):
    """lam * (1, v)^T X_steps (1, v) through the core: a one-component spectrum and one
    extra parameter row whose e = v is used only for the final gradient-point loss."""
    M = algo.memory
    T = steps + 1
    alpha = np.full(T, algo.alpha)
    b = np.tile(algo.b, (T, 1)).reshape(T, M)
    c = np.tile(algo.c, (T, 1)).reshape(T, M)
    D = np.tile(algo.D, (T, 1, 1)).reshape(T, M, M)
    e = np.array(np.tile(algo.e, (T, 1)).reshape(T, M))
    e[steps] = v
    L, l, d = _core.evolve((np.array([lam]), np.ones(1), np.array([c2])), (alpha, b, c, D, e),
                           (np.array([noise.coupling]), np.array([noise.self_noise])), steps, overflow_only=True)
    return 2 * L[steps], 2 * l[steps], d


@SETTINGS
@given(algo=algorithms(max_memory=3), lam=st.floats(1e-3, 1.0, **finite), c2=st.floats(0.01, 2.0, **finite),
       noise=noises(psd=True), steps=st.integers(1, 30), seed=st.integers(0, 2 ** 32 - 1))
def test_second_moments_stay_psd(algo, lam, c2, noise, steps, seed):
    M = algo.memory
    rng = np.random.default_rng(seed)
    vs = [np.zeros(M)] + [rng.standard_normal(M) * s for s in (0.1, 1.0, 10.0) for _ in range(3)]
    forms = []
    for v in vs:
        x00, form, d = _quadratic_form(algo, lam, c2, noise, steps, v)
        assume(d < 0 and abs(form) < 1e100)
        forms.append((form, 1.0 + v @ v))
        assert x00 >= 0.0                          # lam (X)_00
    # X_00 at the final step must equal the e = 0 form; all forms nonnegative up to rounding
    scale = max(abs(f) / n for f, n in forms)
    for f, n in forms:
        assert f >= -1e-10 * scale * n
    # the loss curve itself is nonnegative, and so is the gradient-point loss
    curve = loss_curve(algo, Spectrum([lam], [c2]), noise, steps)
    assume(curve.diverged_at is None)
    g = curve.gradient_point_loss
    assert np.all(curve.loss >= 0) and np.all(g >= -1e-12 * np.max(np.abs(g)))


# -- 3. GD loss is non-increasing in the batch size ------------------------------------------

@SETTINGS
@given(lr=st.floats(0.01, 1.9, **finite), spec=spectra(), B1=st.integers(1, 50), extra=st.integers(0, 50),
       tau1=st.floats(0.0, 2.0, **finite), tau2=st.floats(-2.0, 0.0, **finite), steps=st.integers(1, 80))
def test_gd_loss_non_increasing_in_batch_size(lr, spec, B1, extra, tau1, tau2, steps):
    B2 = B1 + extra
    l1 = loss_curve(gd(lr), spec, Noise(B1, tau1, tau2), steps)
    l2 = loss_curve(gd(lr), spec, Noise(B2, tau1, tau2), steps)
    linf = loss_curve(gd(lr), spec, Noise(math.inf, tau1, tau2), steps)
    assume(l1.diverged_at is None)
    assert np.all(l1.loss >= l2.loss * (1 - 1e-12))
    assert np.all(l2.loss >= linf.loss * (1 - 1e-12))


# -- 4. preset <-> multistep <-> matrix round trips -----------------------------------------

PRESETS = [
    lambda p: gd(p[0]), lambda p: heavy_ball(p[0], p[1]), lambda p: nesterov(p[0], p[1]),
    lambda p: am1(p[0], p[1], p[2]), lambda p: qhm(p[0], p[1], p[2]), lambda p: dana(p[0], p[1], p[2], p[3]),
]


@SETTINGS
@given(which=st.integers(0, len(PRESETS) - 1),
       p=st.tuples(st.floats(0.01, 1.0, **finite), st.floats(0.0, 0.95, **finite),
                   st.floats(0.0, 1.0, **finite), st.floats(0.05, 1.0, **finite)),
       spec=spectra(max_k=4), noise=noises())
def test_preset_multistep_matrix_round_trip(which, p, spec, noise):
    algo = PRESETS[which](p)
    ms = algo.to_multistep()
    back = ms.to_matrix()
    P0, Q0 = algo.char_polys()
    for P, Q in (ms.char_polys(), back.char_polys(), back.to_multistep().char_polys()):
        np.testing.assert_allclose(P, P0, rtol=0, atol=1e-9)
        np.testing.assert_allclose(Q, Q0, rtol=0, atol=1e-9)
    assert back.memory == algo.memory and np.all(back.e == 0)
    if math.isfinite(algo.alpha_eff) and abs(algo.alpha_eff) < 1e6:
        assert ms.alpha_eff == pytest.approx(algo.alpha_eff, rel=1e-9, abs=1e-12)
        assert back.alpha_eff == pytest.approx(algo.alpha_eff, rel=1e-9, abs=1e-12)
    if np.all(algo.e == 0):   # e = 0: the mean-loss dynamics depend on (P, Q) alone
        a = loss_curve(algo, spec, noise, 40)
        b = loss_curve(back, spec, noise, 40)
        assume(a.diverged_at is None)
        np.testing.assert_allclose(b.loss, a.loss, rtol=1e-8, atol=1e-14 * spec.initial_loss)


@SETTINGS
@given(M=st.integers(0, 4), data=st.data())
def test_multistep_matrix_round_trip(M, data):
    a = np.array(data.draw(st.lists(st.floats(-0.9, 0.9, **finite), min_size=M, max_size=M))) / max(M, 1)
    alphas = np.array(data.draw(st.lists(st.floats(-1.0, 1.0, **finite), min_size=M + 1, max_size=M + 1)))
    ms = Multistep(a, alphas)
    algo = ms.to_matrix()
    P, Q = algo.char_polys()
    P0, Q0 = ms.char_polys()
    np.testing.assert_allclose(P, P0, atol=1e-9)
    np.testing.assert_allclose(Q, Q0, atol=1e-9)
    ms2 = algo.to_multistep()
    np.testing.assert_allclose(ms2.a, ms.a, atol=1e-9)
    np.testing.assert_allclose(ms2.alphas, ms.alphas, atol=1e-9)


# -- 5. invariance under a change of basis of the memory ------------------------------------

@SETTINGS
@given(algo=algorithms(max_memory=4), spec=spectra(max_k=4), noise=noises(psd=False), seed=st.integers(0, 2 ** 32 - 1))
def test_change_of_memory_basis_invariance(algo, spec, noise, seed):
    M = algo.memory
    assume(M >= 1)
    rng = np.random.default_rng(seed)
    P = np.eye(M) + 0.5 * rng.standard_normal((M, M)) / np.sqrt(M)
    assume(np.linalg.cond(P) < 20)
    Pinv = np.linalg.inv(P)
    new = MemoryAlgorithm(algo.alpha, P.T @ algo.b, Pinv @ algo.c, Pinv @ algo.D @ P, P.T @ algo.e)
    P0, Q0 = algo.char_polys()
    P1, Q1 = new.char_polys()
    np.testing.assert_allclose(P1, P0, atol=1e-9)
    np.testing.assert_allclose(Q1, Q0, atol=1e-9)
    if math.isfinite(algo.alpha_eff) and abs(algo.alpha_eff) < 1e6:
        assert new.alpha_eff == pytest.approx(algo.alpha_eff, rel=1e-9, abs=1e-12)
    a = loss_curve(algo, spec, noise, 50)
    b = loss_curve(new, spec, noise, 50)
    assume(a.diverged_at is None and np.max(a.loss) < 1e6 * spec.initial_loss)
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-8, atol=1e-13 * np.max(a.loss))
    np.testing.assert_allclose(b.gradient_point_loss, a.gradient_point_loss, rtol=1e-8,
                               atol=1e-13 * np.max(np.abs(a.gradient_point_loss)))
