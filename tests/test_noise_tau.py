"""Which SE coefficients (tau1, tau2) a data distribution can produce (issue 12 item 6).

Sigma(C) = E[x x^T C x x^T] - H C H = E[(x x^T - H) C (x x^T - H)] is PSD for PSD C. With
C = e_k e_k^T the SE form tau1 Tr(HC) H - tau2 H C H = tau1 lambda_k H - tau2 lambda_k^2 e_k e_k^T has
eigenvalues tau1 lambda_k lambda_j (j != k) and (tau1 - tau2) lambda_k^2: PSD iff tau1 >= 0 and
tau2 <= tau1. Checked here by exact enumeration, and the failure it prevents (negative losses) shown
with the numpy reference recursion.
"""
import itertools

import numpy as np
import pytest

import memsgd as ms
from tests.reference import mean_loss


def _two_point(p):
    """Standardized two-point law: values, probabilities, fourth moment."""
    values = np.array([np.sqrt((1 - p) / p), -np.sqrt(p / (1 - p))])
    probs = np.array([p, 1 - p])
    return values, probs, float(probs @ values ** 4)


def _exact_noise_operator(lam, C, values, probs):
    """E[x x^T C x x^T] - H C H by enumerating the product distribution of x_k = sqrt(lam_k) z_k."""
    d = lam.size
    H = np.diag(lam)
    total = np.zeros((d, d))
    for idx in itertools.product(range(values.size), repeat=d):
        x = np.sqrt(lam) * values[list(idx)]
        w = np.prod(probs[list(idx)])
        xx = np.outer(x, x)
        total += w * xx @ C @ xx
    return total - H @ C @ H


@pytest.mark.parametrize("p", [0.5, 0.3, 0.1])
def test_diagonal_of_noise_operator_is_se_with_tau2_two_minus_m4(p):
    """Independent standardized coordinates with fourth moment m4: diag Sigma(C) =
    lambda_i Tr(HC) + (m4 - 2) lambda_i^2 C_ii exactly, i.e. the SE diagonal with tau1 = 1,
    tau2 = 2 - m4 <= 1 (m4 >= 1); and Sigma(C) is PSD for PSD C."""
    values, probs, m4 = _two_point(p)
    assert m4 >= 1
    rng = np.random.default_rng(0)
    lam = np.array([1.0, 0.4, 0.15])
    for _ in range(5):
        A = rng.standard_normal((3, 3))
        C = A @ A.T
        sigma = _exact_noise_operator(lam, C, values, probs)
        se = 1.0 * np.trace(np.diag(lam) @ C) * np.diag(lam) - (2 - m4) * np.diag(lam) @ C @ np.diag(lam)
        np.testing.assert_allclose(np.diag(sigma), np.diag(se), rtol=1e-12)
        assert np.linalg.eigvalsh(sigma).min() > -1e-12 * np.abs(sigma).max()
    noise = ms.simulation.noise_for_data(m4, 1)
    assert noise.tau2 <= noise.tau1


@pytest.mark.parametrize("tau1, tau2, psd", [(1.0, -1.0, True), (1.0, 1.0, True), (0.0, 0.0, True),
                                             (0.0, -1.0, True), (1.0, 1.5, False), (-0.5, -1.0, False)])
def test_se_form_on_a_projector_is_psd_iff_realizable(tau1, tau2, psd):
    """SE form at C = e_k e_k^T: eigenvalues tau1 lambda_k lambda_j and (tau1 - tau2) lambda_k^2."""
    lam = np.array([1.0, 0.5, 0.2])
    H = np.diag(lam)
    all_psd = True
    for k in range(3):
        C = np.zeros((3, 3))
        C[k, k] = 1.0
        form = tau1 * np.trace(H @ C) * H - tau2 * H @ C @ H
        want = sorted([tau1 * lam[k] * lam[j] for j in range(3) if j != k] + [(tau1 - tau2) * lam[k] ** 2])
        eig = np.linalg.eigvalsh(form)
        np.testing.assert_allclose(eig, want, atol=1e-15)
        all_psd &= bool(eig.min() >= -1e-15)
    assert all_psd == psd
    if psd:
        ms.Noise(4, tau1, tau2)
    else:
        with pytest.raises(ValueError, match="tau"):
            ms.Noise(4, tau1, tau2)


def test_unrealizable_tau_gives_negative_expected_loss_so_noise_refuses_it():
    """The failure the rule prevents: the reference recursion with tau2 > tau1 (and with tau1 < 0)
    produces a negative 'expected loss'; Noise refuses both and names the inequality."""
    params = lambda t: (1.0, [], [], np.zeros((0, 0)), [])     # GD, lr 1, lambda = 1: S = 0
    L, _ = mean_loss(params, [1.0], [1.0], [1.0], 1.0, 3.0, 1, 2)
    assert L[1] < 0                       # (tau1 - tau2) lambda^2 X / B = -2 X
    L, _ = mean_loss(params, [1.0, 1.0], [1.0, 0.0], [1.0, 1.0], -1.0, -1.0, 1, 1)
    assert L[1] < 0                       # the second component gets -lambda a_t from tau1 < 0
    with pytest.raises(ValueError, match="tau2 must be <= tau1"):
        ms.Noise(1, 1.0, 3.0)
    with pytest.raises(ValueError, match="tau1 must be >= 0"):
        ms.Noise(1, -1.0, -1.0)
    ms.Noise(1, 1.0, 1.0), ms.Noise(1, 0.0, 0.0), ms.Noise.translation_invariant(3)   # the edges
