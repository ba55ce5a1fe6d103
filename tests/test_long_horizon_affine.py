"""loss_at with label noise and weight decay (issue 20 item 5; docs/math.md §9, docs/long-horizons.md).

Independent references: the noisy quadratic model's closed form (Zhang et al. 2019) written out
here; per-component matrix powers of the literal affine second-moment map (numpy in 80-bit
arithmetic, 60-digit mpmath at the stability edge), built from ``state_matrices`` of
tests/reference.py, never from memsgd's reductions; the plain-numpy transcription of docs/math.md
§9 (``affine_mean_loss``); the C++ recursion ``loss_curve`` (weight decay in the engine's affine
state: first and centered second moments, a different algorithm from loss_at's); the stationary
moment equations of ``stability`` (its own closed forms); the bias floor
``1/2 sum lambda c^2 (rho / (lambda + rho))^2``; and the asymptotic law of the approach to the floor (``asymptotics``).
"""
import warnings

import numpy as np
import pytest

import memsgd as ms
from memsgd.long_horizon import loss_at, supports_loss_at
from tests.reference import affine_mean_loss, recursion_rounding, state_matrices

from ._extras import need

NQM_K = 10_000


def quiet_loss_at(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # any warning fails the test
        return loss_at(*args, **kwargs)


def nqm(K=NQM_K):
    h = 1.0 / np.arange(1, K + 1)
    return ms.Spectrum(h, np.ones(K))


def log_abs_1m(x):
    """log |1 - x| (log1p where 1 - x is close to 1: no 2t-fold amplified rounding of 1 - x)."""
    small = x < 0.5
    return np.where(small, np.log1p(-np.where(small, x, 0.0)), np.log(np.abs(1.0 - np.where(small, 0.0, x))))


def assert_matches_recursion(algo, spec, noise, T, rtol=1e-10):
    """loss_at at every step up to T against loss_curve: within rtol, and within the error
    estimate plus the recursion's own rounding; never negative."""
    curve = ms.loss_curve(algo, spec, noise, T)
    assert curve.diverged_at is None
    got = quiet_loss_at(algo, spec, noise, np.arange(T + 1))
    assert np.all(got.loss >= 0)
    late = got.steps > got.exact_until
    assert late.sum() > T // 2, got.exact_until
    ref = curve.loss[late]
    diff = np.abs(got.loss[late] - ref)
    assert np.max(diff / ref) <= rtol, np.max(diff / ref)
    assert np.all(diff <= got.error[late] + recursion_rounding(ref, got.steps[late]))
    return got


# -- the noisy quadratic model -------------------------------------------------------------------

def test_nqm_closed_form_at_1e9():
    """NQM: tau1 = tau2 = 0, sigma2 = 1, h_i = 1/i, x_i(0)^2 = 1, SGD with lr alpha and batch B:
    E x_i^2(t) = s_i + (1 - alpha h_i)^(2t) (x_i(0)^2 - s_i), s_i = alpha sigma2 / (B (2 - alpha h_i)),
    L_t = 1/2 sum h_i E x_i^2 (the power written as exp(2t log|1 - alpha h|): the same number, without
    the 2t-fold amplified rounding of 1 - alpha h)."""
    alpha, B, sigma2 = 1.5, 16, 1.0
    spec = nqm()
    h = spec.eigenvalues
    s = alpha * sigma2 / (B * (2 - alpha * h))
    steps = np.array([10 ** 2, 10 ** 4, 10 ** 6, 10 ** 9])
    decay = np.exp(2.0 * steps[:, None] * log_abs_1m(alpha * h)[None, :])
    transient = 0.5 * np.sum(h * decay * (1.0 - s), axis=1)
    floor = 0.5 * np.sum(h * s)
    got = quiet_loss_at(ms.gd(alpha), spec, ms.Noise(B, 0.0, 0.0, label_noise=sigma2), steps)
    closed = floor + transient
    rel = np.abs(got.loss - closed) / closed
    assert np.all(rel <= 1e-12), rel
    assert np.all(np.abs(got.loss - closed) <= got.error + 4e-16 * closed)
    assert abs(got.floor - floor) <= 1e-14 * floor
    # the transient keeps its own relative accuracy while it dies (1e6: e^-300 below the floor)
    late = got.steps > got.exact_until
    assert np.all(late[1:])
    np.testing.assert_allclose(got.excess[late], transient[late], rtol=1e-10, atol=0)
    assert transient[2] < 1e-120 * floor


def _vec_map(S, g, lam, label_source):
    """The literal per-component affine map of the second moments without coupled noise:
    vec X -> (S kron S) vec X + (sigma2/B) lambda vec(g g^T)."""
    return np.kron(S, S), label_source * lam * np.outer(g, g).ravel()


def _longdouble_power(A, t: int):
    A = A.astype(np.longdouble)
    P = np.eye(A.shape[0], dtype=np.longdouble)
    while t:
        if t & 1:
            P = P @ A
        A = A @ A
        t >>= 1
    return P


def x0_of(n, c2):
    """vec of the initial second moment: every weight-like coordinate starts at the same -w*
    (the state is (q, u) with u_0 = 0, or (q, u, qbar) with qbar_0 = q_0 for the EMA)."""
    v = np.zeros(n)
    v[0] = 1.0
    if n == 3:   # (q, u, qbar): the average starts at w_0
        v[2] = 1.0
    return c2 * np.outer(v, v).ravel()


def _hb_matrices(lr, beta):
    algo = ms.heavy_ball(lr, beta)
    S0, g, h = state_matrices(algo.alpha, algo.b, algo.c, algo.D, algo.e)
    return algo, (lambda l: S0 - l * np.outer(g, h)), g


def _ema_of_hb(lr, beta, gamma):
    """The EMA written out, not through memsgd.ema: state (q, u, qbar), qbar' = gamma qbar + (1 - gamma) q'
    (all in deviations from w*), the noise enters q' along g_0, so qbar' along (1 - gamma) g_0."""
    _, S_of, g = _hb_matrices(lr, beta)

    def S(l):
        A = np.zeros((3, 3))
        A[:2, :2] = S_of(l)
        A[2, :2] = (1 - gamma) * S_of(l)[0]
        A[2, 2] = gamma
        return A
    return S, np.array([g[0], g[1], (1 - gamma) * g[0]])


@pytest.mark.parametrize("kind", ["heavy ball", "ema", "preconditioned"])
def test_nqm_momentum_ema_preconditioner_against_matrix_powers(kind):
    K, B, sigma2 = 2000, 16, 1.0
    spec = nqm(K)
    noise = ms.Noise(B, 0.0, 0.0, label_noise=sigma2)
    lam, c2 = spec.eigenvalues, spec.coefficients2
    steps = [10 ** 4, 10 ** 9]
    if kind == "preconditioned":   # SGD, gradient along h times p = h^-p (h_max = 1): closed form
        alpha, pexp = 0.5, 0.5
        algo = ms.MemoryAlgorithm(alpha, [], [], np.zeros((0, 0)), preconditioner=pexp)
        p = lam ** -pexp
        s = alpha * p * sigma2 / (B * (2 - alpha * p * lam))
        ref = [0.5 * np.sum(lam * (s + np.exp(2 * t * log_abs_1m(alpha * p * lam)) * (1 - s))) for t in steps]
    else:
        if kind == "heavy ball":
            algo, S_of, g = _hb_matrices(0.5, 0.9)
            readout = np.array([1.0, 0.0])
        else:
            algo = ms.ema(ms.heavy_ball(0.5, 0.9), 0.95)
            S_of, g = _ema_of_hb(0.5, 0.9, 0.95)
            readout = np.array([0.0, 0.0, 1.0])
        ref = []
        for t in steps:
            total = np.longdouble(0)
            r = np.outer(readout, readout).ravel()
            for l, c in zip(lam, c2):
                T, b = _vec_map(S_of(l), g, l, noise.label_source)
                A = np.eye(T.shape[0]) - T
                fixed = np.linalg.solve(A, b)
                residual = b.astype(np.longdouble) - A.astype(np.longdouble) @ fixed
                fixed = fixed.astype(np.longdouble) + np.linalg.solve(A, residual.astype(float))
                x = _longdouble_power(T, t) @ (x0_of(readout.size, c) - fixed) + fixed
                total += 0.5 * l * (r @ x)
            ref.append(float(total))
    assert_matches_recursion(algo, spec, noise, 20000, rtol=1e-11)
    got = quiet_loss_at(algo, spec, noise, steps)
    np.testing.assert_allclose(got.loss, ref, rtol=1e-12, atol=0)
    assert np.all(np.abs(got.loss - ref) <= got.error + 1e-15 * np.abs(ref))
    assert got.floor == pytest.approx(ms.stability(algo, spec, noise).noise_floor, rel=1e-13)


# -- label noise with coupled noise (tau1 = 1, tau2 = -1) -----------------------------------------

LABEL = ms.Noise.gaussian(4, label_noise=0.3)


@pytest.mark.parametrize("algo", [ms.gd(0.6), ms.heavy_ball(0.15, 0.85), ms.nesterov(0.2, 0.8)])
def test_label_noise_finite_power_law_recursion_and_floor(algo):
    spec = ms.Spectrum.power_law(1.6, 0.8, size=300)
    got = assert_matches_recursion(algo, spec, LABEL, 20000)
    rep = ms.stability(algo, spec, LABEL)
    assert got.floor == pytest.approx(rep.noise_floor, rel=1e-13)
    # 1e12: lambda_min t ~ 1e8, the transient is gone; the floor of the stationary moment equations
    far = quiet_loss_at(algo, spec, LABEL, [10 ** 9, 10 ** 12])
    np.testing.assert_allclose(far.loss, rep.noise_floor, rtol=1e-13, atol=0)
    assert np.all(far.error <= 1e-13 * far.loss)


@pytest.mark.parametrize("algo", [ms.gd(0.6), ms.heavy_ball(0.15, 0.85)])
def test_label_noise_infinite_power_law_recursion(algo):
    spec = ms.Spectrum.power_law(1.5, 1.0, head=256)
    got = assert_matches_recursion(algo, spec, LABEL, 20000)
    assert got.floor == pytest.approx(ms.stability(algo, spec, LABEL).noise_floor, rel=1e-13)
    assert np.any(got.excess < 0)   # approached from below (zeta = 2/3 > 1 - 1/nu = 1/3)


@pytest.mark.slow
def test_label_noise_infinite_power_law_recursion_to_1e6():
    algo, spec = ms.heavy_ball(0.15, 0.85), ms.Spectrum.power_law(1.5, 1.0, head=256)
    T = 10 ** 6
    curve = ms.loss_curve(algo, spec, LABEL, T)
    steps = np.unique(np.geomspace(1, T, 300).round().astype(np.int64))
    got = quiet_loss_at(algo, spec, LABEL, steps)
    ref = curve.loss[steps]
    diff = np.abs(got.loss - ref)
    assert np.max(diff / ref) <= 1e-11
    assert np.all(diff <= got.error + recursion_rounding(ref, steps))


@pytest.mark.parametrize("nu, kappa", [(2.0, 2.0), (1.5, 1.0)])
def test_approach_to_the_label_floor_at_1e12(nu, kappa):
    """On an infinite power law the loss is not at its floor at 1e12: L_t - L_inf (LossAt.excess,
    integrated with its own relative accuracy) against the asymptotic law of the approach from
    below, -C t^-(1 - 1/nu) (asymptotics, phase "label"): the ratio tends to 1 like
    t^-(zeta - (1 - 1/nu)), the signal's relative order."""
    spec, noise, algo = ms.Spectrum.power_law(nu, kappa), ms.Noise.gaussian(8, label_noise=0.5), ms.heavy_ball(0.3, 0.5)
    t = np.array([10 ** 8, 10 ** 10, 10 ** 12])
    asy = ms.asymptotics(algo, spec, noise, check_at=t)
    assert asy.phase == "label"
    gap = np.abs(np.array(asy.ratios) - 1)
    assert gap[-1] < 3e-3 and np.all(np.diff(gap) < 0)
    slope = np.polyfit(np.log(t), np.log(gap), 1)[0]
    assert abs(slope + (kappa / nu - (1 - 1 / nu))) < 0.01, slope
    got = quiet_loss_at(algo, spec, noise, t)
    assert np.all(got.excess < 0) and np.all(got.loss < got.floor)
    # the excess is computed, not subtracted: far more digits than loss - floor would keep
    assert np.all(got.error < 1e-13 * got.loss)
    np.testing.assert_allclose(got.loss - got.floor, got.excess, rtol=1e-6)


# -- weight decay ---------------------------------------------------------------------------------

SMALL = ms.Spectrum(np.array([1.0, 0.5, 0.2, 0.1, 0.01, 1e-3]), np.array([1.0, 2.0, 0.5, 3.0, 1.0, 0.7]))
M2E = ms.MemoryAlgorithm(0.25, [0.2, -0.15], [0.3, 0.1], [[0.5, 0.3], [-0.2, 0.4]], [0.1, 0.25])


def _decayed(algo, rho):
    return ms.MemoryAlgorithm(algo.alpha, algo.b, algo.c, algo.D, algo.e, weight_decay=rho)


@pytest.mark.parametrize("algo", [ms.gd(0.5), ms.heavy_ball(0.3, 0.6), ms.nesterov(0.3, 0.6), M2E])
@pytest.mark.parametrize("rho", [0.05, 1e-3])
def test_weight_decay_bias_floor_at_1e12(algo, rho):
    """Noise-free: L_inf = 1/2 sum lambda c^2 (rho / (lambda + rho))^2, whatever the algorithm."""
    algo = _decayed(algo, rho)
    lam, c2 = SMALL.eigenvalues, SMALL.coefficients2
    bias = 0.5 * np.sum(lam * c2 * (rho / (lam + rho)) ** 2)
    got = quiet_loss_at(algo, SMALL, ms.Noise.none(), [10 ** 9, 10 ** 12])
    np.testing.assert_allclose(got.loss, bias, rtol=1e-13, atol=0)
    assert got.floor == pytest.approx(bias, rel=1e-14)
    assert np.all(np.abs(got.loss - bias) <= got.error + 2e-16 * bias)


@pytest.mark.parametrize("algo, noise", [
    (ms.heavy_ball(0.3, 0.6), ms.Noise.gaussian(4, label_noise=0.2)),
    (ms.nesterov(0.3, 0.6), ms.Noise(3, 1.0, 0.3, label_noise=0.1)),        # tau2 > 0
    (M2E, ms.Noise(4, 0.8, -0.4, label_noise=0.3)),                       # memory 2, e != 0
    (ms.ema(ms.heavy_ball(0.3, 0.5), 0.9), ms.Noise.gaussian(8, label_noise=0.5)),
])
def test_weight_decay_with_noise_against_the_recursion_to_1e6(algo, noise):
    algo = ms.MemoryAlgorithm(*algo.parameters(), weight_decay=0.02, readout=algo.readout)
    T = 10 ** 6
    curve = ms.loss_curve(algo, SMALL, noise, T)
    steps = np.unique(np.concatenate([np.arange(0, 20001, 7), np.geomspace(2e4, T, 100).round()]).astype(np.int64))
    got = quiet_loss_at(algo, SMALL, noise, steps)
    ref = curve.loss[steps]
    diff = np.abs(got.loss - ref)
    late = steps > got.exact_until
    assert late.sum() > steps.size // 2
    # loss_curve's affine state does not drift (measured <= 5.1e-15); the memory-(M+1) reduction
    # it replaced did (8.7e-12 at 1e6 for the EMA: docs/long-horizons.md)
    assert np.max(diff / ref) <= 1e-13
    assert np.all(diff <= got.error + recursion_rounding(ref, steps))
    rep = ms.stability(algo, SMALL, noise)
    assert got.floor == pytest.approx(rep.noise_floor, rel=1e-13)
    assert quiet_loss_at(algo, SMALL, noise, [10 ** 12]).loss[0] == pytest.approx(rep.noise_floor, rel=1e-13)


def test_weight_decay_against_the_numpy_transcription():
    """Independent of the C++ recursion and of the memory-(M+1) reduction: docs/math.md §9 literally
    (first and second moments, the force -rho w* g), tests/reference.py."""
    algo, noise, rho = M2E, ms.Noise(4, 0.8, -0.4, label_noise=0.3), 0.02
    spec = ms.Spectrum.power_law(1.7, 0.6, size=25)
    T = 3000
    ref = affine_mean_loss(lambda t: (algo.alpha, algo.b, algo.c, algo.D, algo.e), spec.eigenvalues,
                           spec.coefficients2, spec.weights, noise.tau1, noise.tau2, noise.batch_size, T,
                           sigma2=noise.label_noise, rho_at=lambda t: rho)
    steps = np.arange(1, T + 1, 23)
    got = quiet_loss_at(_decayed(algo, rho), spec, noise, steps)
    late = steps > got.exact_until
    assert late.sum() > 50
    np.testing.assert_allclose(got.loss[late], ref[steps[late]], rtol=1e-11, atol=0)


def test_weight_decay_underdamped_first_moments():
    """Heavy ball with rho in its underdamped range: the first moments' poles log nu (|nu| = sqrt(beta))
    lie right of every real singularity and the transient oscillates; loss_at serves steps from the
    recursion until they are far below the floor, then the contour (docs/long-horizons.md)."""
    algo = ms.heavy_ball(0.1, 0.9, weight_decay=0.3)
    spec = ms.Spectrum.power_law(1.5, 1.0, head=256)
    noise = ms.Noise.gaussian(6, label_noise=0.1)
    nu = np.linalg.eigvals(ms.heavy_ball(0.1, 0.9).eigen_matrix(np.array([0.3])).reshape(2, 2))
    assert np.all(np.abs(nu.imag) > 0)
    got = assert_matches_recursion(algo, spec, noise, 20000, rtol=1e-12)
    assert got.exact_until < 4000
    far = quiet_loss_at(algo, spec, noise, [10 ** 6, 10 ** 12])
    np.testing.assert_allclose(far.loss, ms.stability(algo, spec, noise).noise_floor, rtol=1e-13)


# -- runs that do not converge: the sources' pole inside the contour ------------------------------

@pytest.mark.parametrize("algo", [ms.heavy_ball(0.02, 0.98), ms.heavy_ball(0.02, 0.98, weight_decay=0.01)])
def test_diverging_with_label_noise_and_weight_decay(algo):
    spec, noise = ms.Spectrum.power_law(1.6, 1.0, size=200), ms.Noise.gaussian(1, label_noise=0.5)
    assert not ms.stability(algo, spec, noise).converges
    curve = ms.loss_curve(algo, spec, noise, 60000)
    assert curve.diverged_at is not None
    steps = np.array([10, 1000, 5000, curve.diverged_at - 1, curve.diverged_at, 50000, 10 ** 12])
    got = quiet_loss_at(algo, spec, noise, steps)
    assert got.diverged_at == curve.diverged_at and got.exact_until < curve.diverged_at - 1
    assert got.floor == 0.0 and got.rate > 0
    before = steps < curve.diverged_at
    np.testing.assert_allclose(got.loss[before], curve.loss[steps[before]], rtol=1e-10)
    assert got.loss[~before].tolist() == [np.inf] * 3


def test_label_noise_without_signal():
    """c = 0: the loss is the label noise's alone (L_0 = 0); it never counts as diverged."""
    spec = ms.Spectrum([1.0, 0.5, 0.1], [0.0] * 3)
    for algo, noise in ((ms.heavy_ball(0.2, 0.8), ms.Noise.gaussian(4, label_noise=0.1)),
                        (ms.gd(0.5), ms.Noise(4, 0.0, 0.0, label_noise=0.1))):
        got = assert_matches_recursion(algo, spec, noise, 20000, rtol=1e-13)
        assert got.loss[0] == 0.0
        assert quiet_loss_at(algo, spec, noise, [10 ** 12]).loss[0] == pytest.approx(
            ms.stability(algo, spec, noise).noise_floor, rel=1e-13)


def _mp_label_loss(algo, lam, c2, label_source, t, digits=60):
    """tau1 = tau2 = 0 with label noise in `digits`-digit arithmetic: per component the affine map
    [[S kron S, b], [0, 1]] on (vec X, 1), to the power t."""
    mp = need("mpmath")
    S0, g, h = state_matrices(algo.alpha, algo.b, algo.c, algo.D, algo.e)
    N = g.size
    f = lambda x: mp.mpf(float(x))
    with mp.workdps(digits):
        total = mp.mpf(0)
        for l, c in zip(lam, c2):
            S = [[f(S0[i, j]) - f(l) * f(g[i]) * f(h[j]) for j in range(N)] for i in range(N)]
            A = mp.matrix(N * N + 1, N * N + 1)
            for i in range(N):
                for j in range(N):
                    for k in range(N):
                        for m in range(N):
                            A[i * N + j, k * N + m] = S[i][k] * S[j][m]
                    A[i * N + j, N * N] = f(label_source) * f(l) * f(g[i]) * f(g[j])
            A[N * N, N * N] = 1
            x0 = mp.matrix(N * N + 1, 1)
            x0[0], x0[N * N] = f(c), 1
            total += f(l) / 2 * ((A ** int(t)) * x0)[0]
        return float(total)


def test_stability_edge_with_label_noise_warns_and_bounds():
    """Heavy ball with alpha lambda = 2 (1 + beta) at lambda = 1: an undamped mode, so the label noise
    accumulates (L_t grows like t) and there is no floor. The edge pole is known to O(eps) only: at
    1e9 and beyond the estimate is rough and loss_at warns, but it bounds the true error (against
    60 digits)."""
    algo, spec = ms.heavy_ball(3.0, 0.5), ms.Spectrum([1.0, 0.5, 0.5, 0.1], [1.0] * 4)
    noise = ms.Noise(10, 0.0, 0.0, label_noise=0.1)
    t = [10 ** 9, 10 ** 11, 10 ** 12]   # (below 2e7 the recursion would serve them: slow here)
    with pytest.warns(RuntimeWarning, match="estimated relative error above 1e-06"):
        got = loss_at(algo, spec, noise, t)
    ref = np.array([_mp_label_loss(algo, spec.eigenvalues, spec.coefficients2, noise.label_source, x) for x in t])
    assert np.all(np.abs(got.loss - ref) <= got.error)
    assert abs(got.loss[0] / ref[0] - 1) < 1e-5 and got.floor == 0.0
    assert got.exact_until < 10 ** 4


# -- the core's pieces ----------------------------------------------------------------------------

def test_core_affine_generating_sums_against_the_series():
    """generating_sums with initial states, first moments and sources against the direct series
    sum_t z^t <., X_t> of the literal affine recursion (numpy), at nodes with |z| < 1."""
    algo = ms.heavy_ball(0.3, 0.5)
    S0, g, h = state_matrices(algo.alpha, algo.b, algo.c, algo.D, algo.e)
    lam, m = np.array([1.0, 0.3, 0.05]), np.array([1.0, 0.5, 2.0])
    rho, sn = 0.1, -0.2
    rng = np.random.default_rng(0)
    second, first = rng.standard_normal((3, 3)), rng.standard_normal((3, 2))
    b_src, f_src = np.array([0.2, 0.1, 0.3]), np.array([-0.1, 0.05, 0.2])
    wu, wv = 0.5 * m * lam, 0.3 * m * lam ** 2
    s = np.array([0.3 + 0.4j, 0.02 + 0.2j])
    # the core's (algorithm, noise) entries: one row, one entry (the maps read self_noise)
    maps = ((np.array([algo.alpha]), algo.b.reshape(1, 1), algo.c.reshape(1, 1), algo.D.reshape(1, 1, 1),
             algo.e.reshape(1, 1)), (np.zeros(1), np.array([sn])))
    out = ms._core.generating_sums(lam, *maps, wu, wv, np.arange(3), s,
                                   np.array([3, 1]), shift=rho, second=second, first=first,
                                   second_source=b_src, first_source=f_src)
    z = np.exp(-s)
    ref = np.zeros((2, 2), complex)
    I, J = np.triu_indices(2)
    for k in range(3):
        S = S0 - (lam[k] + rho) * np.outer(g, h)
        X = np.zeros((2, 2))
        X[I, J] = X[J, I] = second[k]
        y = first[k].copy()
        for t in range(3000):
            ref[:, 0] += wu[k] * X[0, 0] * z ** t
            ref[:, 1] += wu[k] * (h @ X @ h) * z ** t
            Sy = S @ y
            X = (S @ X @ S.T - sn * lam[k] ** 2 * (h @ X @ h) * np.outer(g, g)
                 - rho * (np.outer(Sy, g) + np.outer(g, Sy)) + b_src[k] * np.outer(g, g))
            y = Sy + f_src[k] * g
    got = np.stack([out[:, 0] + out[:, 4], out[:, 1] + out[:, 5]], axis=1)   # slow + fast parts
    np.testing.assert_allclose(got, ref, rtol=1e-13)
    # the fixed-point pieces: (I - T) Y = g g^T and (I - S) mu = -rho g
    Y, mu = ms._core.stationary_moments(lam, *maps, shift=rho)
    for k in range(3):
        S = S0 - (lam[k] + rho) * np.outer(g, h)
        T = np.kron(S, S) - sn * lam[k] ** 2 * np.outer(np.outer(g, g).ravel(), np.outer(h, h).ravel())
        Yk = np.linalg.solve(np.eye(4) - T, np.outer(g, g).ravel()).reshape(2, 2)
        np.testing.assert_allclose(Y[k], Yk[I, J], rtol=1e-13)
        np.testing.assert_allclose(mu[k], np.linalg.solve(np.eye(2) - S, -rho * g), rtol=1e-13, atol=1e-16)
    with pytest.raises(ValueError, match="second must have shape"):
        ms._core.generating_sums(lam, *maps, wu, wv, np.arange(3), s,
                                 np.array([3, 1]), second=second[:2])
    with pytest.raises(ValueError, match="first_source must be finite"):
        ms._core.generating_sums(lam, *maps, wu, wv, np.arange(3), s,
                                 np.array([3, 1]), first_source=np.array([np.nan, 0, 0]))


def test_supports_loss_at_affine():
    spec = ms.Spectrum.power_law(2.0, 1.0, size=50)
    assert supports_loss_at(ms.gd(0.5, weight_decay=0.1), ms.Noise.gaussian(8, label_noise=0.1))
    assert supports_loss_at(ms.ema(ms.heavy_ball(0.3, 0.5, weight_decay=0.1), 0.9), ms.Noise.gaussian(8))
    both = ms.MemoryAlgorithm(0.5, [], [], np.zeros((0, 0)), weight_decay=0.1, preconditioner=0.3)
    assert not supports_loss_at(both, ms.Noise.gaussian(8))
    with pytest.raises(ValueError, match="preconditioner together with weight decay") as info:
        loss_at(both, spec, ms.Noise.gaussian(8), [10])
    assert "\n" not in str(info.value)


def test_same_bits_for_any_thread_count_and_plain_fields():
    algo, spec = ms.heavy_ball(0.2, 0.8, weight_decay=0.001), ms.Spectrum.power_law(1.5, 1.0, head=256)
    noise = ms.Noise.gaussian(6, label_noise=0.1)
    one = loss_at(algo, spec, noise, [10 ** 3, 10 ** 6, 10 ** 9], threads=1)
    two = loss_at(algo, spec, noise, [10 ** 3, 10 ** 6, 10 ** 9], threads=2)
    for a, b in ((one.loss, two.loss), (one.error, two.error), (one.excess, two.excess)):
        assert np.array_equal(a, b)
    plain = loss_at(ms.heavy_ball(0.2, 0.8), spec, ms.Noise.gaussian(6), [10, 10 ** 6])
    assert plain.floor == 0.0 and np.array_equal(plain.excess, plain.loss)
