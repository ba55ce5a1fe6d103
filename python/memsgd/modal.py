"""Exact long-horizon losses of algorithms with diagonal memory, by modes (``modal_loss_at``).

[`memsgd.loss_at`][memsgd.loss_at] inverts the generating function on a hyperbola that encloses the
singularities within 0.1 rad of the negative real axis and leaves the others to the exact
recursion, which must then run until they have decayed. Corner methods (docs/corner.md) break
that plan by design: their slow modes come in complex pairs ``mu - 1 ~ (lambda / c)^(1/theta)
e^(+-i pi/theta)`` whose singularities ``s = log(mu_i mu_j)`` lie on rays at ``pi - pi/theta`` from the
negative real axis (1.49 rad for ``theta = 1.9``), down to ``|s| ~ 1 / horizon``. With memory M the
slowest of them decays only like ``exp(-delta_M t)`` (``delta_M = 1 - max d_m`` ~ 1e-9 at M = 16), so
``loss_at`` would need the recursion to ~1e11 steps.

This function keeps the contour but lets it hug those rays: per decade ``[t_lo, 10 t_lo]`` the
singularities that matter there (``-Re s < 40 / t_lo``) are located exactly from the modes of each
component (secular equation, ``memsgd._modal``), the hyperbola's wedge is set to their largest
angle plus a margin, and the trapezoid rule gets as many nodes as that wedge needs (~1000 for
1.5 rad, against 38 for ``loss_at``'s 0.1 rad). Each node costs ``O(K (M+1)^2)`` instead of
``O(K (M+1)^6)`` (closed-form second moments from the modes instead of dense solves), so memory 16
on a 600-node power law costs seconds per decade. Steps below the first decade come from the
exact recursion ([`memsgd.loss_curve`][memsgd.loss_curve]).

Scope: stationary algorithms with ``D`` diagonal and ``e = 0`` (corner methods, heavy ball, AM1,
GD), an infinite spectrum (``Spectrum.power_law(..., size=None)``), one batch size, and a
convergent run (``V < 1``, strictly stable). The error estimate is the difference of two contours
(node counts N and 0.8 N) plus the rounding of the sum; validated against the recursion and against
``loss_at`` in tests/test_corner.py and docs/corner.md.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ._modal import Modes, chunked_pair_sums, log1p_complex
from ._stationary import spectrum_and_noise, stationary
from ._validation import step_array
from .dynamics import loss_curve
from .long_horizon import _SPAN, LossAt, _hyperbola, _hyperbola_shape  # one hyperbola serves [t_lo, _SPAN t_lo]
from .noise import Noise
from .spectrum import Spectrum

__all__ = ["modal_loss_at", "MODAL_MAX_STEP"]

MODAL_MAX_STEP = 10 ** 12
# Singularities with -Re s < _CUT / t_lo are placed inside the contour; those further left
# contribute less than exp(-_CUT) relative to their residues from t_lo on.
_CUT = 40.0
# Added to the largest angle of those singularities (the self-noise and 1 - V move the poles of
# the loss off the pole pairs of the components by a relative O(lambda^2)), and the smallest wedge.
_MARGIN = 0.015
_MIN_WEDGE = 0.1
# Target decay of the trapezoid error, e^(-_TARGET), and the check contour's share of nodes.
_TARGET = 34.0
_CHECK = 0.8
_MAX_NODES = 20000
# The hyperbola must stay within |Im s| < _STRIP (the strip of s = -log z is |Im s| < pi).
_STRIP = 1.5
_EPS = np.finfo(float).eps
# Steps up to this are always taken from the exact recursion.
_MIN_CONTOUR_START = 256
# Modes whose secular residual stays above this (relative) are reported.
_MODE_RESIDUAL = 1e-9
_RECURSION_MAX = 200_000


def _nodes_for(wedge: float) -> int:
    _, d, a = _hyperbola_shape(wedge)
    return int(min(_MAX_NODES, math.ceil(_TARGET / (2 * math.pi * d / a))))


def _earliest(nodes: int, wedge: float) -> float:
    """The smallest t_lo whose hyperbola stays inside ``|Im s| < _STRIP``."""
    w, _ = _hyperbola(nodes, 1.0, wedge)
    return float(np.max(np.abs(w.imag)) / _STRIP)


class _ModalProblem:
    def __init__(self, algo, spectrum: Spectrum, noise: Noise):
        self.spectrum, self.noise = spectrum, noise
        lam = spectrum.eigenvalues
        self.lam = lam
        self.modes = Modes(algo, lam, "modal_loss_at")
        if not np.all(self.modes.stable()):
            k = int(np.argmin(self.modes.stable()))
            raise ValueError(f"algorithm must be strictly stable on the spectrum for modal_loss_at: the component "
                             f"lambda = {lam[k]:.3g} has a mode of modulus >= 1 (the loss does not converge); "
                             "use loss_curve")
        worst = float(np.nanmax(self.modes.residual)) if self.modes.residual.size else 0.0
        if worst > _MODE_RESIDUAL:
            warnings.warn(f"modal_loss_at: a mode is refined only to a relative residual {worst:.1e} (a near-double "
                          "root of the secular equation); the losses may be less accurate than their error "
                          "estimate", RuntimeWarning, stacklevel=3)
        self.eta, self.rr, self.gg = self.modes.pairs()
        self.poles = log1p_complex(self.eta)
        self.wu = 0.5 * spectrum.weights * lam * spectrum.coefficients2
        self.wv = noise.coupling * spectrum.weights * lam * lam
        self.sn = noise.self_noise * lam * lam
        _, y = self.modes.noiseless_sums()
        q = self.sn * y
        if np.any(1.0 + q <= 0.0) or (noise.self_noise > 0 and np.any(q >= 1.0)):
            raise ValueError("algorithm's second moments are unstable under the self-noise (tau2) for modal_loss_at; "
                             "use loss_curve")
        self.V = float(np.sum(self.wv * y / (1.0 + q)))
        if not self.V < 1.0:
            raise ValueError(f"the noise sum V = {self.V:.4g} must be < 1 for modal_loss_at (the loss diverges or does "
                             "not decay); use loss_curve")

    def wedge(self, t_lo: float) -> float:
        """Largest angle from the negative real axis among the singularities that matter from t_lo on."""
        p = self.poles
        relevant = -p.real < _CUT / t_lo
        if not np.any(relevant):
            return _MIN_WEDGE
        angle = np.arctan2(np.abs(p.imag[relevant]), -p.real[relevant])
        return max(_MIN_WEDGE, float(angle.max()) + _MARGIN)

    def values(self, s: np.ndarray):
        """``L(e^-s)`` at the nodes and a rounding scale (sum of moduli of its terms, relative)."""
        sigma = np.expm1(s)
        A, G, Am, Gm = chunked_pair_sums(self.eta, self.rr, self.gg, sigma)
        den = 1.0 + self.sn[None, :] * G
        U = np.exp(s) * (self.wu[None, :] * A / den).sum(-1)
        V = (self.wv[None, :] * G / den).sum(-1)
        Umod = np.abs(np.exp(s)) * (self.wu[None, :] * Am / np.abs(den)).sum(-1)
        Vmod = (self.wv[None, :] * Gm / np.abs(den)).sum(-1)
        L = U / (1.0 - V)
        kappa = Umod / np.maximum(np.abs(U), 1e-300) + Vmod / np.abs(1.0 - V) + 4.0
        return L, kappa

    def decade(self, t_lo: float):
        wedge = self.wedge(t_lo)
        if wedge >= math.pi / 2 - 0.005:
            raise ValueError(f"modal_loss_at: singularities at {wedge:.3f} rad from the negative real axis "
                             f"(undamped oscillating modes) at t ~ {t_lo:.3g}; use loss_curve")
        n = _nodes_for(wedge)
        out = []
        for nodes in (n, max(8, int(_CHECK * n))):
            w, omega = _hyperbola(nodes, t_lo, wedge)
            L, kappa = self.values(w)
            out.append((w, omega * L, kappa))
        return {"contours": out, "wedge": wedge, "nodes": n}

    def evaluate(self, t: np.ndarray, t_lo: float):
        dec = self.decade(t_lo)
        tt = t.astype(float)
        vals, mods = [], []
        for w, wL, kappa in dec["contours"]:
            terms = wL[None, :] * np.exp(np.outer(tt, w))
            vals.append(terms.sum(axis=1).imag)
            mods.append(np.abs(terms) @ kappa)
        main, check = vals
        err = np.abs(main - check) + 8 * _EPS * mods[0]
        return main, err, dec


def _decade(t: int, start: int) -> int:
    """The j with ``start 10^j <= t < start 10^(j+1)``."""
    j = max(0, int(math.floor(math.log10(t / start))))
    while start * _SPAN ** (j + 1) <= t:
        j += 1
    while j > 0 and start * _SPAN ** j > t:
        j -= 1
    return j


def modal_loss_at(algorithm, spectrum: Spectrum, noise: Noise, steps, *, details: bool = False):
    """Exact expected loss ``L_t`` at the given steps (t up to 10^12) for an algorithm with diagonal
    memory, by the modes of each component and a contour fitted to where its singularities lie.

    Same quantity as [`memsgd.loss_at`][memsgd.loss_at] and [`memsgd.loss_curve`][memsgd.loss_curve] (docs/math.md §3,
    §8): the
    t-th coefficient of ``L(z) = U(z) / (1 - V(z))`` (``e = 0``), with per component, from the modes
    ``mu_i = 1 + eps_i`` and residues of docs/math.md §2.2's ``R/chi`` and ``Q/chi``,

        U(e^-s) = (e^s / 2) sum_k m_k lambda_k c_k^2 A_k(s) / (1 + (tau2/B) lambda_k^2 G_k(s)),
        V(e^-s) = (tau1/B) sum_k m_k lambda_k^2 G_k(s) / (1 + (tau2/B) lambda_k^2 G_k(s)),
        A_k = sum_ij rho_i rho_j / (expm1(s) - eta_ij),  G_k = sum_ij r_i r_j / (expm1(s) - eta_ij),

    ``eta_ij = mu_i mu_j - 1``; ``L_t = (1/2 pi i) int L(e^-s) e^(s t) ds`` on a hyperbola per decade of t
    whose opening follows the largest angle of the singularities that matter in that decade
    (module docstring). Steps below the first decade (a few hundred) come from [`memsgd.loss_curve`][memsgd.loss_curve].

    Args:
        algorithm: a stationary [`MemoryAlgorithm`][memsgd.MemoryAlgorithm] with diagonal ``D`` and ``e = 0`` (e.g.
            [`memsgd.corner`][memsgd.corner], heavy ball, AM1).
        spectrum: an infinite spectrum (``Spectrum.power_law(nu, kappa)``).
        noise: one batch size; the run must converge (strictly stable, ``V < 1``).
        steps: strictly increasing integers in [0, 10^12].
        details: also return a dict with per-decade wedge, node counts and timings.

    Returns:
        [`memsgd.LossAt`][memsgd.LossAt] (``exact_until``: the last step taken from the recursion), or
        ``(LossAt, dict)`` with ``details``.

    Example:
        >>> import memsgd
        >>> spec = memsgd.Spectrum.power_law(2.0, 1.0, head=64)
        >>> algo = memsgd.corner(1.8, 4, spectrum=spec, noise=memsgd.Noise.gaussian(10))
        >>> r = memsgd.modal_loss_at(algo, spec, memsgd.Noise.gaussian(10), [10**6, 10**9])
        >>> bool(r.loss[1] < r.loss[0])
        True
    """
    algo = stationary(algorithm, "modal_loss_at inverts the generating function of constant parameters",
                      "use loss_curve for a Schedule")
    spectrum_and_noise(spectrum, noise, "modal_loss_at (a per-step batch size makes the dynamics non-stationary)",
                       "use loss_curve")
    if not spectrum.infinite:
        raise ValueError("spectrum must be infinite (Spectrum.power_law(nu, kappa) with size=None) for modal_loss_at: "
                         "the contour is centred at the accumulation of its slow singularities at s = 0; use loss_at "
                         "or loss_curve for a finite spectrum")
    if getattr(noise, "label_noise", 0.0):
        raise ValueError("noise must have label_noise = 0 for modal_loss_at; use loss_at or loss_curve")
    steps = step_array(steps, "steps", max_step=MODAL_MAX_STEP)
    problem = _ModalProblem(algo, spectrum, noise)
    # the first decade: nodes of its wedge inside the strip
    start = _MIN_CONTOUR_START
    while True:
        wedge = problem.wedge(start)
        need = _earliest(_nodes_for(wedge), wedge) if wedge < math.pi / 2 - 0.005 else math.inf
        if need <= start:
            break
        start = int(math.ceil(max(need, 2 * start)))
        if start > _RECURSION_MAX:
            raise ValueError("modal_loss_at: the contour cannot start before step "
                             f"{_RECURSION_MAX} (singularities too close to the imaginary axis); use loss_curve")
    n = steps.size
    loss = np.empty(n)
    error = np.empty(n)
    early = steps < start
    info = {"contour_start": start, "decades": []}
    exact_until = int(steps[early].max()) if np.any(early) else 0
    if np.any(early):
        curve = loss_curve(algo, spectrum, noise, exact_until)
        loss[early] = curve.loss[steps[early]]
        error[early] = 32 * _EPS * (1 + np.sqrt(steps[early])) * np.abs(loss[early])
    late = np.flatnonzero(~early)
    if late.size:
        t = steps[late]
        decade = np.array([_decade(int(x), start) for x in t])
        for j in np.unique(decade):
            sel = decade == j
            t_lo = start * _SPAN ** j
            main, err, dec = problem.evaluate(t[sel], t_lo)
            loss[late[sel]] = main
            error[late[sel]] = err
            info["decades"].append({"t_lo": t_lo, "wedge": dec["wedge"], "nodes": dec["nodes"]})
    result = LossAt(steps, loss, error, None, exact_until, 0.0)
    info["noise_sum"] = problem.V
    return (result, info) if details else result
