"""Multistep form (Theorem 1, docs/math.md §2.2-2.3) and the failure of its non-stationary analogue
(Proposition 1). Trajectories come from tests/reference.py (plain numpy, no memsgd)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memsgd as ms
from tests.reference import run_matrix_form


def random_quadratic(rng, d=6):
    """A random SPD Hessian with eigenvalues in [0.05, 1] and a random target."""
    Qm, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = rng.uniform(0.05, 1.0, d)
    return (Qm * lam) @ Qm.T, rng.standard_normal(d)


def random_algorithm(rng, M, with_e=True):
    """A random memory-M algorithm scaled to stay bounded for a few dozen steps."""
    D = rng.standard_normal((M, M))
    if M:
        D *= 0.7 / max(1e-12, np.max(np.abs(np.linalg.eigvals(D))))
    return ms.MemoryAlgorithm(rng.uniform(0.1, 0.5), 0.4 * rng.standard_normal(M),
                              0.4 * rng.standard_normal(M), D,
                              0.5 * rng.standard_normal(M) if with_e else None)


def params_of(algo):
    return lambda t: (algo.alpha, algo.b, algo.c, algo.D, algo.e)


def multistep_residual(P, Q, W, H, w_star, t):
    """``sum_j p_j w_{t+1-j} + sum_j q_j grad L(w_{t-j})`` with grad L(w) = H (w - w*)."""
    M = Q.size - 1
    res = sum(P[j] * W[t + 1 - j] for j in range(M + 2))
    res = res + sum(Q[j] * (H @ (W[t - j] - w_star)) for j in range(M + 1))
    scale = max(np.max(np.abs(W[t - M:t + 2])), np.max(np.abs(w_star)))
    return np.max(np.abs(res)) / scale


@settings(max_examples=15, deadline=None)
@given(M=st.integers(0, 4), seed=st.integers(0, 2 ** 31), with_e=st.booleans())
def test_matrix_trajectory_satisfies_multistep_recurrence(M, seed, with_e):
    rng = np.random.default_rng(seed)
    H, w_star = random_quadratic(rng)
    algo = random_algorithm(rng, M, with_e)
    P, Q = algo.char_polys()
    # generic initial point (the theorem holds for every trajectory)
    W = run_matrix_form(params_of(algo), H, w_star, 30, w0=rng.standard_normal(w_star.size))
    worst = max(multistep_residual(P, Q, W, H, w_star, t) for t in range(M, 29))
    assert worst < 1e-12


@pytest.mark.parametrize("M", [1, 2, 3])
def test_recurrence_fails_before_t_equals_M_in_general(M):
    """The recurrence needs M+1 past points: the first steps are not constrained by it."""
    rng = np.random.default_rng(M)
    H, w_star = random_quadratic(rng)
    algo = random_algorithm(rng, M, with_e=False)
    P, Q = algo.char_polys()
    W = run_matrix_form(params_of(algo), H, w_star, 10)
    # pad w_{-j} := w_0 (a natural guess) and see the residual is not zero at t = M - 1
    Wp = np.concatenate([np.repeat(W[:1], M, axis=0), W])
    assert multistep_residual(P, Q, Wp, H, w_star, M - 1 + M) > 1e-3


@settings(max_examples=15, deadline=None)
@given(M=st.integers(0, 4), seed=st.integers(0, 2 ** 31))
def test_multistep_iteration_reproduces_matrix_form(M, seed):
    """Run the multistep recursion itself from w_0..w_M and compare with the matrix form."""
    rng = np.random.default_rng(seed)
    H, w_star = random_quadratic(rng)
    algo = random_algorithm(rng, M)
    ms_form = algo.to_multistep()
    W = run_matrix_form(params_of(algo), H, w_star, 25)
    V = list(W[:M + 1])
    grad = lambda w: H @ (w - w_star)
    for t in range(M, 25):
        w_next = V[t] + sum(ms_form.a[m - 1] * (V[t + 1 - m] - V[t - m]) for m in range(1, M + 1))
        w_next = w_next - sum(ms_form.alphas[m] * grad(V[t - m]) for m in range(M + 1))
        V.append(w_next)
    np.testing.assert_allclose(np.array(V), W, rtol=0, atol=1e-12 * max(1.0, np.max(np.abs(W))))


@settings(max_examples=20, deadline=None)
@given(M=st.integers(0, 4), seed=st.integers(0, 2 ** 31), with_e=st.booleans())
def test_round_trip_matrix_multistep_matrix_preserves_P_and_Q(M, seed, with_e):
    rng = np.random.default_rng(seed)
    algo = random_algorithm(rng, M, with_e)
    P, Q = algo.char_polys()
    back = algo.to_multistep().to_matrix()
    assert back.memory == M and np.all(back.e == 0)
    P2, Q2 = back.char_polys()
    np.testing.assert_allclose(P2, P, rtol=0, atol=1e-12)
    np.testing.assert_allclose(Q2, Q, rtol=0, atol=1e-12 * max(1.0, np.max(np.abs(Q))))


@settings(max_examples=20, deadline=None)
@given(M=st.integers(0, 4), seed=st.integers(0, 2 ** 31))
def test_round_trip_multistep_matrix_multistep(M, seed):
    rng = np.random.default_rng(seed)
    a = 0.3 * rng.standard_normal(M)
    alphas = rng.standard_normal(M + 1)
    back = ms.Multistep(a, alphas).to_matrix().to_multistep()
    np.testing.assert_allclose(back.a, a, rtol=0, atol=1e-12)
    np.testing.assert_allclose(back.alphas, alphas, rtol=0, atol=1e-12)


def test_char_polys_are_characteristic_polynomial_of_S_lambda():
    """``det(zI - S_lambda) = P(z) + lambda Q(z)`` checked against numpy's np.poly at 3 lambdas."""
    rng = np.random.default_rng(7)
    for M in range(4):
        algo = random_algorithm(rng, M)
        P, Q = algo.char_polys()
        for lam in (0.0, 0.3, 2.5):
            chi = np.poly(algo.eigen_matrix(lam))
            np.testing.assert_allclose(P + lam * np.concatenate([[0.0], Q]), chi, rtol=0, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(M=st.integers(0, 4), seed=st.integers(0, 2 ** 31), with_e=st.booleans())
def test_alpha_eff_is_Q1_over_P_prime_1(M, seed, with_e):
    rng = np.random.default_rng(seed)
    algo = random_algorithm(rng, M, with_e)
    P, Q = algo.char_polys()
    ratio = np.polyval(Q, 1.0) / np.polyval(np.polyder(P), 1.0)
    assert algo.alpha_eff == pytest.approx(ratio, rel=1e-12, abs=1e-14)
    assert algo.to_multistep().alpha_eff == pytest.approx(ratio, rel=1e-12, abs=1e-14)
    # independent of e
    no_e = ms.MemoryAlgorithm(algo.alpha, algo.b, algo.c, algo.D)
    assert no_e.alpha_eff == pytest.approx(ratio, rel=1e-12, abs=1e-14)


def test_alpha_eff_closed_forms_of_presets():
    """docs/math.md §2.3: HB a/(1-beta), AM1 eta + lr/(1-beta), QHM a, DANA g2 + g1 g3 / Delta."""
    assert ms.heavy_ball(0.1, 0.9).alpha_eff == pytest.approx(1.0, rel=1e-14)
    assert ms.nesterov(0.1, 0.9).alpha_eff == pytest.approx(1.0, rel=1e-14)
    assert ms.am1(0.05, 0.9, 0.5).alpha_eff == pytest.approx(1.0, rel=1e-14)
    assert ms.qhm(0.3, 0.8, 0.6).alpha_eff == pytest.approx(0.3, rel=1e-14)
    assert ms.dana(0.2, 0.1, 0.3, 0.05).alpha_eff == pytest.approx(0.1 + 0.2 * 0.3 / 0.05, rel=1e-13)


def test_memory1_multistep_coefficients_match_math():
    """docs/math.md §2.2: beta = D, alpha_0 = alpha, alpha_1 = b c - alpha D (e = 0)."""
    algo = ms.MemoryAlgorithm(0.3, [0.7], [0.2], [[0.6]])
    m = algo.to_multistep()
    np.testing.assert_allclose(m.a, [0.6], rtol=1e-15)
    np.testing.assert_allclose(m.alphas, [0.3, 0.7 * 0.2 - 0.3 * 0.6], rtol=1e-15)


def test_multistep_validation():
    with pytest.raises(ValueError, match="alphas"):
        ms.Multistep([0.5], [1.0])
    with pytest.raises(ValueError, match="a must be 1-dimensional"):
        ms.Multistep([[0.5]], [1.0, 0.0])


# ---- Proposition 1: the non-stationary analogue fails -----------------------------------

def _best_per_step_multistep(W, H, w_star, t):
    """Least-squares fit of ONE memory-1 multistep step at time t,
    ``w_{t+1} - w_t = a (w_t - w_{t-1}) - alpha_0 grad(w_t) - alpha_1 grad(w_{t-1})``,
    with per-step coefficients (a, alpha_0, alpha_1) free. Returns the relative residual."""
    grad = lambda w: H @ (w - w_star)
    A = np.stack([W[t] - W[t - 1], -grad(W[t]), -grad(W[t - 1])], axis=1)
    rhs = W[t + 1] - W[t]
    coef, *_ = np.linalg.lstsq(A, rhs, rcond=None)
    return np.linalg.norm(A @ coef - rhs) / np.linalg.norm(rhs)


def test_proposition1_nonstationary_counterexample():
    """A memory-1 schedule whose trajectory obeys no memory-1 multistep step with per-step
    coefficients (Proposition 1).

    With u_0 = 0 write, per eigencomponent, r_t = p_t(lambda) r_0 (p_0 = 1, p_1 = 1 - alpha_0 lambda)
    and u_1 = -c_0 lambda r_0. Step 1 with b_1 = 0 gives p_2 - p_1 = -alpha_1 lambda p_1, and step 2
    gives p_3 - p_2 = -b_2 D_1 c_0 lambda - b_2 c_1 lambda p_1 - alpha_2 lambda p_2. A per-step
    multistep step at t = 2 needs p_3 - p_2 = a (p_2 - p_1) - A0 lambda p_2 - A1 lambda p_1; as
    1, p_1, p_2 are independent polynomials this forces b_2 D_1 c_0 = a b_1 c_0 = 0: impossible
    when b_2 D_1 c_0 != 0. On a quadratic with >= 4 distinct eigenvalues the least-squares
    residual is then bounded away from zero, while a stationary algorithm fits to rounding.
    """
    rng = np.random.default_rng(3)
    Qm, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    H = (Qm * np.array([0.2, 0.6, 1.0, 1.5, 2.0, 2.5])) @ Qm.T
    w_star = rng.standard_normal(6)
    steps = [(0.5, [0.3], [0.4], [[0.5]], [0.0]),
             (0.2, [0.0], [0.3], [[0.7]], [0.0]),     # b_1 = 0
             (0.3, [0.6], [0.2], [[0.4]], [0.0])]     # b_2 D_1 c_0 = 0.6 * 0.7 * 0.4 != 0
    W = run_matrix_form(lambda t: steps[t], H, w_star, 3)
    assert _best_per_step_multistep(W, H, w_star, 1) < 1e-12    # t = 1 is always representable
    assert _best_per_step_multistep(W, H, w_star, 2) > 0.1      # t = 2 is not (0.51 here)

    # the mechanism: with b_1 != 0 the same t = 2 step is representable again
    other = [steps[0], (0.2, [0.1], [0.3], [[0.7]], [0.0]), steps[2]]
    W_other = run_matrix_form(lambda t: other[t], H, w_star, 3)
    assert _best_per_step_multistep(W_other, H, w_star, 2) < 1e-12

    # control: a stationary memory-1 algorithm fits exactly at every step (Theorem 1)
    W = run_matrix_form(lambda t: steps[2], H, w_star, 6)
    assert max(_best_per_step_multistep(W, H, w_star, t) for t in range(1, 6)) < 1e-12

    # and the engine agrees with the reference trajectory on this schedule (loss = 1/2 r^T H r)
    sched = ms.Schedule.from_arrays(*[np.array([s[i] for s in steps]) for i in range(5)])
    lam, vecs = np.linalg.eigh(H)
    spec = ms.Spectrum(lam, (vecs.T @ w_star) ** 2)
    L = ms.loss_curve(sched, spec, ms.Noise.none(), 3).loss
    W = run_matrix_form(lambda t: steps[t], H, w_star, 3)
    ref = np.array([0.5 * (w - w_star) @ H @ (w - w_star) for w in W])
    np.testing.assert_allclose(L, ref, rtol=1e-13)
