"""Corner algorithms (issue 23): the contour view, corner(), the ideal corner map, theta_max and
the corner/AM1 phase, the modal long-horizon loss, and their checks against independent routes:
closed forms (GD circle, heavy-ball ellipse, theta_max values), eigenvalues of S_lambda,
mpmath quadrature of the ideal map, an explicit M-heavy-ball simulation, memsgd.stability's
dense noise sums, the exact recursion (loss_curve) and loss_at."""
import doctest
import math
import sys

import numpy as np
import pytest

import memsgd
from memsgd import Noise, Spectrum
from memsgd.theory import (
    am1_ceiling,
    corner_crossover,
    corner_exponent,
    corner_phase,
    corner_phase_diagram,
    corner_region,
    theta_max,
)

from ._extras import need

NOISE = Noise.gaussian(10)


@pytest.fixture(scope="module")
def spec16():
    return Spectrum.power_law(2.0, 1.0, head=16)


# -- theory ------------------------------------------------------------------------------------

def test_theta_max_closed_form_values():
    # min(2, nu, 2/(zeta + 1/nu)) by hand
    assert theta_max(2.0, 0.5) == 2.0
    assert theta_max(3.0, 0.25) == 2.0
    assert theta_max(1.5, 0.5) == 1.5
    assert theta_max(2.0, 1.0) == pytest.approx(4.0 / 3.0, rel=1e-15)
    assert theta_max(1.2, 0.1) == 1.2
    assert theta_max(2.5, 1.2) == pytest.approx(2.0 / 1.6, rel=1e-15)
    assert am1_ceiling(2.0, 0.5) == 0.75
    assert corner_exponent(2.0, 1.0) == pytest.approx(4.0 / 3.0, rel=1e-15)
    assert corner_exponent(2.0, 0.5, theta=1.9) == pytest.approx(0.95, rel=1e-15)
    assert math.isnan(corner_exponent(1.5, 0.5, theta=1.6))   # theta >= nu: the noise sum diverges


def test_regions_and_winners_of_the_issue():
    assert [corner_region(*p) for p in ((3.0, 0.5), (2.0, 1.0), (1.5, 0.5), (2.0, 1.6))] == ["I", "II", "III", "noise"]
    assert corner_phase(2.0, 0.5)["winner"] == "corner"     # 1.0 > 0.75
    assert corner_phase(1.5, 0.5)["winner"] == "corner"     # 0.75 > 0.667
    assert corner_phase(2.0, 1.0)["winner"] == "AM1"        # 1.333 < 1.5
    assert corner_phase(2.0, 1.6)["winner"] is None
    rows = corner_phase_diagram([1.5, 2.0], [0.5, 1.0])
    assert [(r["nu"], r["zeta"], r["winner"]) for r in rows] == [(1.5, 0.5, "corner"), (1.5, 1.0, "AM1"),
                                                                 (2.0, 0.5, "corner"), (2.0, 1.0, "AM1")]


@pytest.mark.parametrize("nu", [1.3, 2.0, 3.0, 5.0])
def test_crossover_is_where_the_rates_meet(nu):
    z = corner_crossover(nu)
    assert z < 2 - 1 / nu                                    # inside the signal phase
    assert 2.0 / (z + 1 / nu) * z == pytest.approx(z * (2 - 1 / nu), rel=1e-13)   # region II formula
    assert corner_phase(nu, z * 0.999)["winner"] == "corner"
    assert corner_phase(nu, z * 1.001)["winner"] == "AM1"


@pytest.mark.parametrize("call, message", [
    (lambda: theta_max(1.0, 0.5), "nu must be > 1"),
    (lambda: theta_max(2.0, -1.0), "zeta must be > 0"),
    (lambda: corner_phase_diagram([], [0.5]), "nus and zetas must be non-empty"),
])
def test_theory_validation(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- the contour view -----------------------------------------------------------------------------

def test_response_gd_circle_and_heavy_ball_ellipse():
    # GD: Psi = (1 - mu)/a, the circle |z - 1/a| = 1/a (the paper's Appendix B)
    phi, psi = memsgd.response_contour(memsgd.gd(0.25), points=501)
    assert np.max(np.abs(np.abs(psi - 4.0) - 4.0)) < 1e-12
    # heavy ball: ellipse centred at (1+beta)/a with semi-axes (1+beta)/a and (1-beta)/a
    a, beta = 0.5, 0.6
    phi, psi = memsgd.response_contour(memsgd.heavy_ball(a, beta), points=501)
    x, y = psi.real - (1 + beta) / a, psi.imag
    assert np.max(np.abs((x * a / (1 + beta)) ** 2 + (y * a / (1 - beta)) ** 2 - 1)) < 1e-12
    # passes through 0 at mu = 1 only
    assert abs(memsgd.response(memsgd.heavy_ball(a, beta))(1.0)) == 0.0
    assert phi[0] == -np.pi and phi[-1] == np.pi and np.all(np.diff(phi) > 0)


@pytest.mark.parametrize("algo", [memsgd.heavy_ball(0.3, 0.8), memsgd.nesterov(0.2, 0.7), memsgd.am1(0.05, 0.9, 0.5),
                                  memsgd.corner(1.7, 5, scale=1.0)], ids=repr)
def test_response_takes_the_value_lambda_at_the_modes(algo):
    # Psi(mu) = lambda exactly when mu is an eigenvalue of S_lambda (dense eigenvalues: a second route)
    # (modes pinned next to a memory pole d_m are left out: there Psi' ~ 1/(mu - d_m)^2 amplifies the
    # rounding of mu itself)
    psi = memsgd.response(algo)
    d = np.diag(algo.D)
    for lam in (1e-3, 0.1, 0.7):
        mu = np.linalg.eigvals(algo.eigen_matrix(lam))
        mu = mu[np.min(np.abs(mu[:, None] - d[None, :]), axis=1) > 1e-2]
        assert mu.size >= 1
        assert np.max(np.abs(psi(mu) - lam)) < 1e-8 * lam


def test_mode_locus_matches_dense_eigenvalues():
    algo = memsgd.corner(1.8, 4, scale=1.0)
    lam = np.array([1e-4, 0.01, 0.5])
    locus = memsgd.mode_locus(algo, lam)
    for k, x in enumerate(lam):
        dense = np.linalg.eigvals(algo.eigen_matrix(x))
        dense = dense[np.argsort(-np.abs(dense), kind="stable")]
        assert np.max(np.abs(np.sort_complex(locus[k]) - np.sort_complex(dense))) < 1e-12
    hb = memsgd.mode_locus(memsgd.nesterov(0.1, 0.5), [1.0])   # e != 0: the dense route
    assert hb.shape == (1, 2)


def test_response_contour_validation():
    with pytest.raises(ValueError, match="points must be >= 3"):
        memsgd.response_contour(memsgd.gd(1.0), points=2)
    with pytest.raises(ValueError, match="must be stationary"):
        memsgd.response(memsgd.schedules.am1_power_law(1.0, 0.3))


# -- corner() and the corner map ------------------------------------------------------------------

def test_corner_nodes_follow_their_definition():
    theta, M, l = 1.7, 6, 4.5
    d, w = memsgd.corner_nodes(theta, M, spacing=l)
    h = l / math.sqrt(M)
    for m in range(M):
        s = (m + 0.5) * h
        assert d[m] == pytest.approx(1 - math.exp(-s), rel=1e-15)
        if m:
            assert w[m] / w[m - 1] == pytest.approx(math.exp(-(2 - theta) * h), rel=1e-13)
    assert w.sum() == pytest.approx(1.0, rel=1e-15)


def test_corner_is_a_sum_of_heavy_balls():
    # matrix form against M explicit heavy-ball buffers u_m <- d_m u_m - c_m g, w <- w + sum_m u_m,
    # on a deterministic quadratic (plain numpy, no engine)
    theta, M, A = 1.8, 5, 1.5
    algo = memsgd.corner(theta, M, scale=A)
    d, w = memsgd.corner_nodes(theta, M)
    c = w / A
    assert algo.alpha == pytest.approx(1 / A, rel=1e-14)
    rng = np.random.default_rng(0)
    H = np.diag(np.linspace(0.01, 1.0, 7))
    wstar = rng.normal(size=7)
    x1, u1 = np.zeros(7), np.zeros((M, 7))
    x2, u2 = np.zeros(7), np.zeros((M, 7))
    for _ in range(200):
        g1 = H @ (x1 - wstar)
        x1, u1 = x1 + algo.b @ u1 - algo.alpha * g1, algo.D @ u1 - np.outer(algo.c, g1)
        g2 = H @ (x2 - wstar)
        u2 = d[:, None] * u2 - c[:, None] * g2[None, :]
        x2 = x2 + u2.sum(axis=0)
    assert np.max(np.abs(x1 - x2)) < 1e-12


def test_corner_response_is_the_discretised_map():
    theta, M, A = 1.6, 7, 0.8
    psi = memsgd.response(memsgd.corner(theta, M, scale=A))
    d, w = memsgd.corner_nodes(theta, M)
    mu = np.array([1.3 + 0.4j, -0.8 + 0.1j, 2j, np.exp(0.01j), -1.0])
    ref = -A * (1 - 1 / mu) / np.sum(w / (mu[:, None] - d), axis=1)
    assert np.max(np.abs(psi(mu) - ref) / np.abs(ref)) < 1e-12


@pytest.mark.parametrize("theta", [1.3, 1.5, 1.9])
def test_corner_map_against_quadrature(theta):
    mpmath = need("mpmath")
    a = 2 - theta
    for mu in (1.5 + 0.2j, -1.0, 0.5 + 0.8j, np.exp(2j), 1 + 1e-4 * np.exp(0.4j)):
        # I = int_0^1 x^(a-1) dx / (mu - 1 + x), with x = y^(1/a) (smooth integrand, no endpoint singularity)
        shift = mpmath.mpc(mu) - 1
        integral = mpmath.quad(lambda y, z=shift: (1 / a) / (z + y ** (1 / a)), [0, 1e-3, 0.1, 0.5, 1])
        ref = complex(-(1 - 1 / mpmath.mpc(mu)) / (a * integral))
        assert abs(memsgd.corner_map(theta, mu) - ref) <= 1e-9 * abs(ref)


def test_corner_map_is_a_corner_and_avoids_the_spectrum():
    theta, A = 1.5, 2.0
    a = 2 - theta
    for x in (1e-5, 1e-7):
        z = x * np.exp(0.7j)
        ratio = memsgd.corner_map(theta, 1 + z, A) / (-A * math.sin(math.pi * a) / (math.pi * a) * z ** theta)
        assert abs(ratio - 1) < 10 * x ** (2 - theta)
    # Proposition 1: Psi(|mu| >= 1) misses (0, 2A]; on the real axis the smallest positive value is Psi(-1)
    assert memsgd.corner_map(theta, -1.0, A).real > 2 * A
    mu = np.exp(1j * np.linspace(1e-3, np.pi, 2000)) * np.array([[1.0], [1.5]])
    psi = memsgd.corner_map(theta, mu, A)
    near_axis = np.abs(psi.imag) < 1e-3 * np.abs(psi)
    assert np.all(~near_axis | (psi.real > 2 * A) | (psi.real < 0))


def test_finite_memory_converges_to_the_ideal_map():
    mu = np.array([-1.0, 1.5 + 0.5j, np.exp(0.5j)])
    ideal = memsgd.corner_map(1.7, mu, 1.0)
    errors = []
    for M in (4, 16, 64):
        psi = memsgd.response(memsgd.corner(1.7, M, scale=1.0, spacing=5.0))
        errors.append(np.max(np.abs(psi(mu) - ideal) / np.abs(ideal)))
    # away from mu = 1 the midpoint rule's error is O(h^2) = O(1/M) (the integrand is not periodic at s = 0;
    # the corner itself, s -> inf, is what the rule resolves well): x4 memory, /4 error
    assert 2.5 < errors[0] / errors[1] < 5 and 3 < errors[1] / errors[2] < 5
    assert errors[2] < 1e-2


def test_corner_scaled_to_lambda_max_is_strictly_stable():
    spec = Spectrum.power_law(2.0, 1.0, size=300, scale=3.0)
    for theta in (1.5, 1.9, 2.0):
        algo = memsgd.corner(theta, 6, spectrum=spec)
        assert algo.preset[1]["scale"] >= spec.lambda_max / 2
        assert memsgd.stability(algo, spec, Noise.none()).strictly_stable
    # the ideal bound lambda_max <= 2A suffices for these discretisations: A = lambda_max / 2 exactly
    assert memsgd.corner(1.9, 6, spectrum=spec).preset[1]["scale"] == spec.lambda_max / 2


@pytest.mark.parametrize("M", [2, 4, 6])
def test_corner_scale_fits_the_noise_sum(spec16, M):
    algo = memsgd.corner(1.9, M, spectrum=spec16, noise=NOISE, noise_sum=0.4)
    rep = memsgd.stability(algo, spec16, NOISE)          # the dense route of docs/math.md §5
    assert rep.strictly_stable and rep.converges
    assert 0.4 * (1 - 2e-3) <= rep.noise_sum <= 0.4 * (1 + 1e-9)
    A = algo.preset[1]["scale"]
    smaller = memsgd.corner(1.9, M, scale=A / 1.01)
    assert memsgd.stability(smaller, spec16, NOISE).noise_sum > 0.4   # the scale is (nearly) the smallest


def test_corner_repr_rebuilds_it():
    algo = memsgd.corner(1.8, 3, scale=0.7, spacing=4.0)
    assert repr(algo) == "corner(theta=1.8, memory=3, scale=0.7, spacing=4.0)"
    again = eval(repr(algo), {"corner": memsgd.corner})
    assert np.array_equal(again.D, algo.D) and np.array_equal(again.c, algo.c) and again.alpha == algo.alpha
    assert memsgd.corner(1.8, 3).preset[1]["scale"] == 0.5


@pytest.mark.parametrize("kwargs, error, message", [
    ({"theta": 0.5, "memory": 4}, ValueError, r"theta must be in \[1, 2\]"),
    ({"theta": 2.1, "memory": 4}, ValueError, r"theta must be in \[1, 2\]"),
    ({"theta": 1.5, "memory": 0}, ValueError, "memory must be >= 1"),
    ({"theta": 1.5, "memory": 2.5}, TypeError, "memory must be an integer"),
    ({"theta": "x", "memory": 2}, TypeError, "theta must be a real number"),
    ({"theta": 1.5, "memory": 2, "scale": -1.0}, ValueError, "scale must be > 0"),
    ({"theta": 1.5, "memory": 2, "spacing": 0.0}, ValueError, "spacing must be > 0"),
    ({"theta": 1.5, "memory": 2, "noise_sum": 1.0}, ValueError, r"noise_sum must be in \(0, 1\)"),
    ({"theta": 1.5, "memory": 2, "noise": NOISE}, ValueError, "noise needs spectrum"),
    ({"theta": 1.5, "memory": 2, "spectrum": [1.0]}, TypeError, "spectrum must be a Spectrum"),
])
def test_corner_validation(kwargs, error, message):
    with pytest.raises(error, match=message):
        memsgd.corner(**kwargs)
    # one line
    try:
        memsgd.corner(**kwargs)
    except error as exc:
        assert "\n" not in str(exc)


def test_corner_map_validation():
    with pytest.raises(ValueError, match=r"theta must be in \(1, 2\)"):
        memsgd.corner_map(2.0, 1.5)


# -- modes and the modal long-horizon loss --------------------------------------------------------

@pytest.mark.parametrize("algo", [memsgd.heavy_ball(0.3, 0.8), memsgd.am1(0.05, 0.95, 0.5),
                                  memsgd.corner(1.9, 4, scale=4.0), memsgd.corner(1.5, 8, scale=2.0)], ids=repr)
def test_modal_noise_sum_matches_stability(spec16, algo):
    from memsgd._modal import Modes, noise_sum
    modes = Modes(algo, spec16.eigenvalues)
    V = noise_sum(modes, spec16, NOISE)
    assert V == pytest.approx(memsgd.stability(algo, spec16, NOISE).noise_sum, rel=1e-10)
    lam = spec16.eigenvalues
    for k in range(0, lam.size, 50):
        dense = np.linalg.eigvals(algo.eigen_matrix(lam[k])) - 1
        assert np.max(np.abs(np.sort_complex(dense) - np.sort_complex(modes.eps[k]))) < 1e-12


def test_modes_resolve_the_slow_root_at_tiny_lambda():
    from memsgd._modal import Modes
    algo = memsgd.corner(1.9, 16, scale=10.0)
    lam = np.array([1e-20, 1e-14])
    m = Modes(algo, lam)
    slow = m.eps[np.arange(2), np.argmax(m.eps.real, axis=1)]
    # eps_0 = -lambda alpha_eff (1 + O(lambda alpha_eff / delta_M)), alpha_eff = alpha + b^T (I - D)^-1 c
    for k in range(2):
        rel = lam[k] * algo.alpha_eff / (1 - algo.D[-1, -1])
        assert slow[k].real == pytest.approx(-lam[k] * algo.alpha_eff, rel=max(1e-13, 4 * rel))
    # residues at first order in lambda (lambda = 1e-24: the second order, lambda sum_m b_m c_m / (1 - d_m)^2
    # ~ 1e-10, is below the tolerance): the slow mode carries e1 -> e1 with weight 1 and g -> e1 with
    # alpha_eff; memory mode m (mu ~ d_m) carries g -> e1 with -b_m c_m / (1 - d_m) (the gradient stored in
    # buffer m and fed back into w), and e1 -> e1 with ~0
    m = Modes(algo, np.array([1e-24]))
    k = 0
    i0 = int(np.argmax(m.eps[k].real))
    assert m.rho[k, i0].real == pytest.approx(1.0, rel=1e-9)
    assert m.r[k, i0].real == pytest.approx(algo.alpha_eff, rel=1e-9)
    d = np.diag(algo.D)
    order = np.argsort(m.eps[k].real)[:-1]        # the memory modes, mu increasing like d
    assert np.allclose(m.r[k, order].real, -algo.b * algo.c / (1 - d), rtol=1e-9, atol=0)
    assert np.max(np.abs(m.rho[k, order])) < 1e-6


@pytest.mark.parametrize("M, T", [(3, 3000), (6, 1200)])
def test_modal_loss_at_equals_the_recursion(spec16, M, T):
    algo = memsgd.corner(1.9, M, spectrum=spec16, noise=NOISE)
    steps = np.unique(np.round(np.geomspace(100, T, 30)).astype(np.int64))
    res = memsgd.modal_loss_at(algo, spec16, NOISE, steps)
    exact = memsgd.loss_curve(algo, spec16, NOISE, T).loss[steps]
    late = steps > res.exact_until
    assert np.count_nonzero(late) >= 6           # these come from the contour
    rel = np.abs(res.loss - exact) / exact
    assert np.max(rel) < 1e-9
    assert np.all(np.abs(res.loss - exact) <= res.error + 1e-15 * exact)


@pytest.mark.parametrize("algo", [memsgd.heavy_ball(0.3, 0.8), memsgd.am1(0.02, 0.99, 0.5),
                                  memsgd.corner(1.5, 2, scale=3.0), memsgd.corner(1.7, 3, scale=5.0)], ids=repr)
def test_modal_loss_at_equals_loss_at_to_1e12(algo):
    spec = Spectrum.power_law(2.0, 1.0, head=64)
    steps = np.array([10 ** 3, 10 ** 5, 10 ** 7, 10 ** 9, 10 ** 12])
    a = memsgd.loss_at(algo, spec, NOISE, steps)
    b = memsgd.modal_loss_at(algo, spec, NOISE, steps)
    assert np.max(np.abs(b.loss - a.loss) / a.loss) < 1e-10


def test_loss_at_equals_the_recursion_for_a_corner_method(spec16):
    # loss_at's own contour (beyond its hand-over) against the exact recursion
    algo = memsgd.corner(1.5, 2, scale=3.0)
    T = 60_000
    steps = np.unique(np.round(np.geomspace(100, T, 25)).astype(np.int64))
    res = memsgd.loss_at(algo, spec16, NOISE, steps)
    assert np.count_nonzero(steps > res.exact_until) >= 3
    exact = memsgd.loss_curve(algo, spec16, NOISE, T).loss[steps]
    assert np.max(np.abs(res.loss - exact) / exact) < 1e-10


def test_modal_loss_at_refuses_what_it_cannot_do(spec16):
    steps = [10 ** 4]
    with pytest.raises(ValueError, match="must be stationary"):
        memsgd.modal_loss_at(memsgd.schedules.am1_power_law(1.0, 0.3), spec16, NOISE, steps)
    with pytest.raises(ValueError, match=r"e = 0"):
        memsgd.modal_loss_at(memsgd.nesterov(0.2, 0.7), spec16, NOISE, steps)
    companion = memsgd.Multistep([0.5, 0.2], [0.3, 0.1, 0.0]).to_matrix()
    with pytest.raises(ValueError, match="diagonal memory matrix D"):
        memsgd.modal_loss_at(companion, spec16, NOISE, steps)
    with pytest.raises(ValueError, match="spectrum must be infinite"):
        memsgd.modal_loss_at(memsgd.gd(0.5), Spectrum.power_law(2.0, 1.0, size=100), NOISE, steps)
    with pytest.raises(ValueError, match="noise sum V"):
        memsgd.modal_loss_at(memsgd.corner(1.9, 4, scale=0.6), spec16, Noise(1, tau1=1.0, tau2=0.0), steps)
    with pytest.raises(ValueError, match="unstable under the self-noise"):
        memsgd.modal_loss_at(memsgd.corner(1.9, 4, scale=0.6), spec16, Noise(1, tau1=0.0, tau2=-20.0), steps)
    with pytest.raises(ValueError, match="strictly stable"):
        memsgd.modal_loss_at(memsgd.gd(2.5), spec16, NOISE, steps)
    with pytest.raises(ValueError, match="steps"):
        memsgd.modal_loss_at(memsgd.gd(0.5), spec16, NOISE, [10, 5])


@pytest.mark.slow
def test_modal_loss_at_matches_the_recursion_at_memory_16():
    spec = Spectrum.power_law(2.0, 1.0, head=8)
    algo = memsgd.corner(1.9, 16, spectrum=spec, noise=NOISE)
    steps = np.array([200, 650, 900, 1100])
    res = memsgd.modal_loss_at(algo, spec, NOISE, steps)
    exact = memsgd.loss_curve(algo, spec, NOISE, int(steps[-1])).loss[steps]
    assert np.count_nonzero(steps > res.exact_until) >= 2
    assert np.max(np.abs(res.loss - exact) / exact) < 1e-9


@pytest.mark.slow
def test_memory_16_beats_am1_ceiling_over_1e5_to_1e9():
    # the issue's criterion: nu = 2, kappa = 1, B = 10, memory <= 16, exponent >= 0.85 on [1e5, 1e9]
    spec = Spectrum.power_law(2.0, 1.0, head=256)
    algo = memsgd.corner(1.9, 16, spectrum=spec, noise=NOISE)
    steps = np.unique(np.round(np.geomspace(1e5, 1e9, 41)).astype(np.int64))
    res = memsgd.modal_loss_at(algo, spec, NOISE, steps)
    assert np.max(res.relative_error) < 1e-6
    exponent = -np.polyfit(np.log(steps), np.log(res.loss), 1)[0]
    assert exponent >= 0.85 > am1_ceiling(2.0, 0.5)


# -- experiment, CLI, plots, doctests -------------------------------------------------------------

@pytest.mark.slow
def test_reproduce_corner_quick(tmp_path):
    import subprocess
    need("matplotlib")   # the target writes its figures
    out = subprocess.run([sys.executable, "-m", "memsgd", "reproduce", "corner", "--quick", "--out", str(tmp_path),
                          "--no-progress"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Two-sided comparison" in out.stdout and "agree at 2 of 2" in out.stdout
    for name in ("corner_losses.png", "corner_local_exponents.png", "corner_contours.png", "corner_phase.png",
                 "corner.json"):
        assert (tmp_path / name).stat().st_size > 0


def test_experiment_config_validation():
    from memsgd.experiments import corner as experiment
    cfg = experiment.small_config()
    cfg.comparison = ((2.0, 1.6),)
    with pytest.raises(ValueError, match="signal-dominated phase"):
        cfg.validate()
    cfg = experiment.small_config()
    cfg.am1_horizons = (1000, 100)
    with pytest.raises(ValueError, match="am1_horizons"):
        cfg.validate()


def test_plots(tmp_path):
    need("matplotlib")
    from memsgd.plotting import plot_contours, plot_corner_phase
    _, psi = memsgd.response_contour(memsgd.corner(1.8, 4), points=301)
    plot_contours({"corner": psi, "gd": {"z": memsgd.response_contour(memsgd.gd(1.0), 101)[1], "style": "--"}},
                  tmp_path / "c.png", lambda_max=1.0, zoom=0.1, title="t")
    from memsgd.experiments.corner import phase_map
    nus, zetas, ahead, lines = phase_map((1.1, 3.0), (0.05, 1.5), resolution=40)
    # the map is the theory's: corner ahead at (2, 0.5), AM1 at (2, 1.0), grey in the noise phase
    assert ahead[np.argmin(abs(zetas - 0.5)), np.argmin(abs(nus - 2.0))] == 1.0
    assert ahead[np.argmin(abs(zetas - 1.0)), np.argmin(abs(nus - 2.0))] == 0.0
    assert np.isnan(ahead[-1, 0])
    plot_corner_phase(nus, zetas, ahead, tmp_path / "p.png", lines=lines,
                      measured=[{"nu": 2.0, "zeta": 0.5, "winner": "corner", "theory_winner": "corner"},
                                {"nu": 2.0, "zeta": 1.0, "winner": "AM1", "theory_winner": "AM1"}])
    with pytest.raises(ValueError, match="corner_ahead must have shape"):
        plot_corner_phase(nus, zetas, ahead[1:], tmp_path / "q.png")
    assert (tmp_path / "c.png").stat().st_size > 0 and (tmp_path / "p.png").stat().st_size > 0


@pytest.mark.parametrize("module", ["memsgd.contour", "memsgd.corner", "memsgd.theory._corner", "memsgd.modal"])
def test_docstring_examples_run(module):
    result = doctest.testmod(sys.modules[module])
    assert result.attempted > 0 and result.failed == 0


def test_corner_as_torch_and_optax_optimizers_matches_the_matrix_form():
    # the same corner method three ways on the same batches (float64): plain numpy matrix form,
    # memsgd.torch.MemorySGD, memsgd.optax.memory_sgd
    torch = need("torch")
    import memsgd.torch
    algo = memsgd.corner(1.8, 6, scale=2.0)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 8)) * np.linspace(1.0, 0.1, 8)
    Y = X @ rng.normal(size=(8, 2))
    batches = [rng.integers(0, 50, 5) for _ in range(60)]

    def grad(w, idx):
        return X[idx].T @ (X[idx] @ w - Y[idx]) / idx.size

    w, u = np.zeros((8, 2)), np.zeros((6, 8, 2))
    for idx in batches:
        g = grad(w, idx)
        w, u = w + np.tensordot(algo.b, u, 1) - algo.alpha * g, np.tensordot(algo.D, u, 1) - algo.c[:, None, None] * g
    p = torch.nn.Parameter(torch.zeros(8, 2, dtype=torch.float64))
    opt = memsgd.torch.MemorySGD.from_algorithm([p], algo)
    Xt, Yt = torch.as_tensor(X), torch.as_tensor(Y)
    for idx in batches:
        opt.zero_grad()
        (0.5 * ((Xt[idx] @ p - Yt[idx]) ** 2).sum() / idx.size).backward()
        opt.step()
    assert np.max(np.abs(p.detach().numpy() - w)) < 1e-12 * np.max(np.abs(w))
    jax = need("jax")
    need("optax")
    import memsgd.optax
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        import jax.numpy as jnp
        tx = memsgd.optax.memory_sgd(algo)
        wj = jnp.zeros((8, 2))
        state = tx.init(wj)
        for idx in batches:
            upd, state = tx.update(jnp.asarray(grad(np.asarray(wj), idx)), state, wj)
            wj = wj + upd
        assert np.max(np.abs(np.asarray(wj) - w)) < 1e-12 * np.max(np.abs(w))
    finally:
        jax.config.update("jax_enable_x64", previous)
