"""Large-t asymptotics and phases of the loss on power laws (docs/math.md §6, §6.1)."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Optional

import numpy as np
from scipy.special import gamma as _gamma

from .._affine import plain_problem, refuse_affine
from .._stationary import spectrum_and_noise, stationary
from .._validation import float_array, instance_of, positive_scalar, real_scalar, step_array, step_count
from ..algorithms import MemoryAlgorithm
from ..long_horizon import MAX_STEP, loss_at
from ..noise import Noise
from ..spectrum import Spectrum
from ._components import Components
from ._fitting import MIN_MEASURE_STEPS, exponent_at, fitted_steps, number_list
from ._measured import measured_exponents
from ._stability import stability

__all__ = ["fit_exponent", "phase_boundary", "phase_of", "Asymptotics", "asymptotics", "phase_diagram"]

# Fields filled only by asymptotics(..., check_at=...).
_CHECK_FIELDS = ("check_steps", "exact", "exact_error", "ratios")

# zeta within this relative distance of 2 - 1/nu counts as on the phase boundary: both come
# from decimal inputs nu, kappa through one division, so they can differ by rounding alone.
_BOUNDARY_RTOL = 1e-12


def fit_exponent(loss, t_min, t_max) -> float:
    """Least-squares slope ``p`` of ``-log L_t`` against ``log t`` over ``t_min <= t <= t_max``.

    ``loss[t]`` is ``L_t`` (index = step). A curve ``L_t ~ C t^-p`` gives ``p``.

    Examples:
        >>> import numpy as np, memsgd
        >>> t = np.arange(1001.0)
        >>> loss = np.r_[1.0, t[1:] ** -0.75]                 # L_t = t^-0.75
        >>> round(memsgd.fit_exponent(loss, 100, 1000), 12)
        0.75
    """
    loss = float_array(loss, "loss", ndim=1, finite=False)
    t_min = real_scalar(t_min, "t_min")
    t_max = real_scalar(t_max, "t_max")
    if not 0 < t_min < t_max:
        raise ValueError(f"need 0 < t_min < t_max, got t_min={t_min}, t_max={t_max}")
    if t_max > loss.size - 1:
        raise ValueError(f"t_max must be <= len(loss) - 1 = {loss.size - 1}, got {t_max}")
    idx = fitted_steps(t_min, t_max)
    L = loss[int(np.ceil(t_min)):int(np.floor(t_max)) + 1]
    if not np.all(np.isfinite(L) & (L > 0)):
        raise ValueError("loss must be finite and > 0 on [t_min, t_max] to fit an exponent")
    return exponent_at(idx, loss[idx])


def phase_boundary(nu) -> float:
    """``zeta* = 2 - 1/nu`` (``nu > 1``): signal-dominated phase for ``zeta < zeta*``, noise-dominated above.

    Examples:
        >>> import memsgd
        >>> memsgd.phase_boundary(2.0)                        # 2 - 1/nu
        1.5
    """
    nu = positive_scalar(nu, "nu")
    if nu <= 1:
        raise ValueError(f"nu must be > 1 (a power law with summable eigenvalues), got {nu}")
    return 2.0 - 1.0 / nu


def phase_of(nu, zeta) -> str:
    """``"signal"`` if ``zeta < 2 - 1/nu``, ``"noise"`` if above, ``"boundary"`` if equal up to
    rounding (relative 1e-12: ``kappa / nu`` and ``2 - 1/nu`` round differently).

    Examples:
        >>> from memsgd.theory import phase_of
        >>> phase_of(2.0, 0.5), phase_of(2.0, 2.0)            # zeta below / above 2 - 1/nu = 1.5
        ('signal', 'noise')
    """
    zstar = phase_boundary(nu)
    zeta = positive_scalar(zeta, "zeta")
    if abs(zeta - zstar) <= _BOUNDARY_RTOL * zstar:
        return "boundary"
    return "signal" if zeta < zstar else "noise"


@dataclass(frozen=True)
class Asymptotics:
    """Large-t behaviour ``L_t ~ floor + constant * t^(-exponent)`` (docs/math.md §6, §6.1, §9).

    Fields: ``phase`` ("signal" or "noise"; at the boundary "noise" with ``constant = nan``;
    "label" when the approach to the label-noise floor leads, see [`asymptotics`][memsgd.asymptotics]),
    ``exponent``, ``constant``, ``noise_sum`` (V), ``noise_sum_prime`` (V', = V when e = 0),
    ``signal_sum`` (``sum_{t>=0} U_t``) and ``signal_sum_prime`` (``sum_{t>=0} U'_t``; the
    noise phase uses it), nan where not computed. With ``asymptotics(..., check_at=steps)``
    also ``check_steps`` (those steps), ``exact`` (the exact ``L_t`` there, by
    [`memsgd.loss_at`][memsgd.loss_at]), ``exact_error`` (its estimated absolute error) and ``ratios``
    (``exact / predict(t)``, which tends to 1); ``None`` otherwise. ``floor``: ``L_inf`` (0 without
    label noise); ``label_constant``: the constant of the label-noise term ``label_constant *
    t^-(1 - 1/nu)`` (negative: the floor is approached from below; 0 without label noise).

    Examples:
        >>> import memsgd
        >>> a = memsgd.asymptotics(memsgd.heavy_ball(0.1, 0.9), memsgd.Spectrum.power_law(2.0, 1.0),
        ...                        memsgd.Noise.gaussian(10))
        >>> a.phase, a.exponent                               # zeta = kappa/nu = 0.5: L_t ~ C t^-0.5
        ('signal', 0.5)
    """

    phase: str
    exponent: float
    constant: float
    noise_sum: float
    signal_sum: float = math.nan
    noise_sum_prime: float = math.nan
    signal_sum_prime: float = math.nan
    check_steps: Optional[tuple[int, ...]] = None
    exact: Optional[tuple[float, ...]] = None
    exact_error: Optional[tuple[float, ...]] = None
    ratios: Optional[tuple[float, ...]] = None
    floor: float = 0.0
    label_constant: float = 0.0

    def __post_init__(self):  # plain Python numbers: no np.float64(...) in reprs or JSON
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "phase" or (f.name in _CHECK_FIELDS and value is None):
                continue
            if f.name == "check_steps":
                object.__setattr__(self, f.name, tuple(int(v) for v in value))
            elif f.name in _CHECK_FIELDS:
                object.__setattr__(self, f.name, tuple(float(v) for v in value))
            else:
                object.__setattr__(self, f.name, float(value))

    def predict(self, t):
        """``floor + constant * t^(-exponent)`` (``floor = 0`` without label noise)."""
        return self.floor + self.constant * np.asarray(t, dtype=float) ** (-self.exponent)


@np.errstate(all="ignore")   # extreme inputs overflow to inf / nan, which the decisions below handle
def asymptotics(algorithm: MemoryAlgorithm, spectrum: Spectrum, noise: Noise, *, check_at=None) -> Asymptotics:
    """Phase, exponent and constant of ``L_t`` for a stationary, convergent algorithm (any e) on a
    power-law spectrum ``lambda_k = Lam k^-nu``, ``lambda_k c_k^2 = Q k^-(kappa+1)`` (docs/math.md §6, §6.1)::

        U_t ~ (Q / (2 kappa)) Gamma(zeta + 1) (2 alpha_eff Lam t)^(-zeta)
        V_t ~ (tau1/B) Gamma(2 - 1/nu) (Lam^(1/nu) / nu) 2^-(2 - 1/nu) alpha_eff^(1/nu) t^-(2 - 1/nu)
        signal phase (zeta < 2 - 1/nu, or no noise):  L_t ~ U_t (1 - V' + V) / (1 - V')
        noise phase  (zeta > 2 - 1/nu):               L_t ~ V_t (sum_{s>=0} U'_s) (1 - V' + V) / (1 - V')^2

    From the renewal pair ``l = U' + l * V'``, ``L = U + l * V`` (docs/math.md §4): the slow mode
    dominates both ``U'`` and ``U`` (``U'_t ~ U_t``) and ``V'_t ~ V_t``, so ``l(z) ~ U(z)/(1 - V'(z))``
    and ``L ~ U (1 + V / (1 - V'))`` near z = 1 in the signal phase, ``L_t ~ V_t sum U' / (1 - V')``
    plus its own renewal in the noise phase. For e = 0 (V' = V, U' = U) these are ``U_t/(1 - V)``
    and ``V_t sum U / (1 - V)^2``. ``V_t`` is written with ``(alpha_eff Lam)^(1/nu)`` so that no power
    of a tiny alpha_eff underflows. ``sum_s U'_s = 1/2 sum_k m_k lambda_k c_k^2 h^T Z_k h`` with
    ``Z = T(Z) + E11``. At the phase boundary both terms decay alike with a logarithmic correction:
    phase "noise", exponent ``zeta``, constant ``nan``. For a finite power law the formulas hold for
    ``1 << t << size^nu`` (afterwards the decay is exponential). In the noise phase the ratio to the
    exact loss approaches 1 slowly (relative corrections shrink like a power of t).

    ``check_at``: increasing steps t >= 1 (up to 10^12, e.g. ``(1e4, 1e6, 1e9)``) at which to
    compare the law with the exact loss: fills ``check_steps``, ``exact``, ``exact_error`` and
    ``ratios = exact / predict(t)`` ([`memsgd.loss_at`][memsgd.loss_at], same spectrum nodes: about a second;
    with label noise the ratio of the excesses over the floor, see below).

    The affine model (docs/math.md §9). A readout and a preconditioner go through their exact
    reductions (the preconditioned power law has ``nu (1 - p)``, which must exceed 1). Label noise
    ``sigma2``: the loss tends to the floor ``L_inf`` (``StabilityReport.noise_floor``) and
    ``L_t - L_inf`` is the plain law above plus the label term

        - (sigma2/(2B) + l_inf tau1/B) G (1 - V' + V) / (1 - V') t^-(1 - 1/nu),
        G = Gamma(2 - 1/nu) / (nu (1 - 1/nu)) 2^-(2 - 1/nu) (alpha_eff Lam)^(1/nu)

    (``l_inf`` the gradient-point floor): the injections not yet made, ``sum_{n>t} W_n`` with
    ``W_n ~ (sigma2/2B) G_n``, carried through the renewal pair like a slowly varying source.
    It decays as ``t^-(1 - 1/nu)``, slower than the signal when ``zeta > 1 - 1/nu`` (phase "label",
    approach from below). Checked against the NQM closed form and long exact curves
    (tests/test_affine.py). Weight decay is not covered: every mode then contracts at least like
    ``rho(S_rho) < 1``, so the approach to the floor is geometric, not a power of t (refused;
    ``StabilityReport.noise_floor`` gives the floor). With label noise ``check_at``'s ``ratios``
    compare the approach itself: ``(L_t - L_inf) / (predict(t) - L_inf)``, with ``L_t - L_inf`` from
    [`memsgd.loss_at`][memsgd.loss_at] (``LossAt.excess``, which keeps its relative accuracy at the floor).

    Examples:
        In the signal phase ``L_t ~ C t^(-zeta)``, in the noise phase ``t^(-(2 - 1/nu))``:

        >>> import memsgd
        >>> algo, noise = memsgd.heavy_ball(0.1, 0.9), memsgd.Noise.gaussian(10)
        >>> a = memsgd.asymptotics(algo, memsgd.Spectrum.power_law(2.0, 1.0), noise)
        >>> a.phase, a.exponent
        ('signal', 0.5)
        >>> a = memsgd.asymptotics(algo, memsgd.Spectrum.power_law(2.0, 4.0), noise)
        >>> a.phase, a.exponent
        ('noise', 1.5)
    """
    algo = stationary(algorithm)
    spectrum_and_noise(spectrum, noise)
    _refuse_weight_decay(algo)
    if check_at is not None:
        check_at = step_array(check_at, "check_at", max_step=MAX_STEP, min_step=1)  # the law is a power of t
    result = _asymptotics(algo, spectrum, noise)
    if check_at is None:
        return result
    exact = loss_at(algo, spectrum, noise, check_at)
    if result.floor:   # the law is for L_t - L_inf: loss_at's excess keeps its relative accuracy
        ratios = exact.excess / (result.predict(exact.steps) - result.floor)
    else:
        ratios = exact.loss / result.predict(exact.steps)
    return replace(result, check_steps=exact.steps, exact=exact.loss, exact_error=exact.error, ratios=ratios)


def _refuse_weight_decay(algo: MemoryAlgorithm) -> None:
    if algo.weight_decay:
        raise ValueError("asymptotics does not cover weight decay: the loss then approaches its floor "
                         "geometrically, not as a power of t; stability(...).noise_floor gives the floor")


def _asymptotics(algo: MemoryAlgorithm, spectrum: Spectrum, noise: Noise, rep=None) -> Asymptotics:
    """The prediction; ``rep``: the problem's stability report, if the caller has it already."""
    _refuse_weight_decay(algo)
    if algo.preconditioner and spectrum.is_power_law and spectrum.nu * (1.0 - algo.preconditioner) <= 1.0:
        raise ValueError(f"preconditioner p = {algo.preconditioner:g} on nu = {spectrum.nu:g} gives nu (1 - p) "
                         f"<= 1: the preconditioned spectrum has no finite noise sum, so no power-law asymptotics")
    algo, spectrum = plain_problem(algo, spectrum)   # readout, preconditioner (docs/math.md §9)
    if not spectrum.is_power_law:
        raise ValueError("spectrum must be a power law (Spectrum.power_law): asymptotics need nu and kappa")
    if rep is None:
        rep = stability(algo, spectrum, noise)
    if not rep.converges:
        raise ValueError(f"algorithm must make the loss converge on this problem (strictly stable, moments "
                         f"stable and V' < 1); got strictly_stable={rep.strictly_stable}, V'={rep.noise_sum_prime:.6g}")
    nu, kappa, Lam, _Q = spectrum.nu, spectrum.kappa, spectrum.scale, spectrum.q
    kappa / nu
    a_eff = algo.alpha_eff
    V, Vp = rep.noise_sum, rep.noise_sum_prime
    enhancement = (1.0 - Vp + V) / (1.0 - Vp)
    result = _plain_law(algo, spectrum, noise, V, Vp, enhancement)
    if noise.label_source == 0.0:
        return result
    # label noise: the approach to the floor from below, t^-(1 - 1/nu) (docstring of asymptotics)
    zstar = phase_boundary(nu)
    g_tail = _gamma(zstar) / nu * 2.0 ** (-zstar) * (a_eff * Lam) ** (1.0 / nu) / (zstar - 1.0)
    label = -(0.5 * noise.label_source + rep.gradient_point_floor * noise.coupling) * g_tail * enhancement
    z_label = zstar - 1.0
    if abs(result.exponent - z_label) <= _BOUNDARY_RTOL * z_label:
        phase, exponent, constant = result.phase, result.exponent, result.constant + label
    elif result.exponent > z_label:
        phase, exponent, constant = "label", z_label, label
    else:
        phase, exponent, constant = result.phase, result.exponent, result.constant
    return replace(result, phase=phase, exponent=exponent, constant=constant, floor=rep.noise_floor,
                   label_constant=label)


def _plain_law(algo: MemoryAlgorithm, spectrum: Spectrum, noise: Noise, V: float, Vp: float, enhancement: float):
    """The laws of docs/math.md §6 / §6.1 for ``L_t`` (without label noise: ``L_t - L_inf`` with it)."""
    nu, kappa, Lam, Q = spectrum.nu, spectrum.kappa, spectrum.scale, spectrum.q
    zeta = kappa / nu
    a_eff = algo.alpha_eff
    u_const = (Q / (2.0 * kappa)) * _gamma(zeta + 1.0) * (2.0 * a_eff * Lam) ** (-zeta)
    zstar = phase_boundary(nu)
    phase = phase_of(nu, zeta)
    if noise.coupling == 0.0 or phase == "signal":
        return Asymptotics("signal", zeta, u_const * enhancement, V, noise_sum_prime=Vp)
    comp = Components(algo)
    lam = spectrum.eigenvalues
    y00, yhh, z00, zhh = comp.sums(lam, signal=True)
    s = noise.self_noise
    q = s * yhh
    c2m = spectrum.weights * spectrum.coefficients2
    sum_U = 0.5 * float(np.sum(c2m * (z00 - s * zhh * y00 / (1.0 + q))))
    sum_Up = 0.5 * float(np.sum(c2m * zhh / (1.0 + q)))
    if phase == "boundary":
        return Asymptotics("noise", zeta, math.nan, V, sum_U, Vp, sum_Up)
    v_const = (noise.coupling * _gamma(zstar) / nu * 2.0 ** (-zstar) * (a_eff * Lam) ** (1.0 / nu))
    return Asymptotics("noise", zstar, v_const * sum_Up * enhancement / (1.0 - Vp), V, sum_U, Vp, sum_Up)


@np.errstate(all="ignore")   # extreme inputs overflow to inf / nan, which the decisions below handle
def phase_diagram(algorithm: MemoryAlgorithm, noise: Noise, nus, zetas, size=None, scale=1.0, q=1.0, *,
                  measure_steps=None, threads=None, progress=None):
    """Phase, loss exponent and noise sums over a grid of power laws ``(nu, zeta)``, ``kappa = zeta nu``
    (docs/math.md §6): a list of rows ``{nu, zeta, kappa, phase, exponent, noise_sum,
    noise_sum_prime, converges}``, nu-major. ``phase`` is "signal", "noise" or "diverges" (the
    loss does not converge: unstable or ``V' >= 1``; exponent nan).

    ``measure_steps=T`` adds ``measured_exponent`` to every row: the exponent fitted on the exact
    loss over ``[T/10, T]`` ([`measured_exponents`][memsgd.theory.measured_exponents], one batched run over the grid;
    nan where
    the run diverged within T), to set beside the predicted ``exponent``. ``threads`` and
    ``progress`` apply to that run.

    Examples:
        >>> import memsgd
        >>> rows = memsgd.phase_diagram(memsgd.heavy_ball(0.1, 0.9), memsgd.Noise.gaussian(10), [2.0], [0.5, 2.0])
        >>> [(r["nu"], r["zeta"], r["phase"], r["exponent"]) for r in rows]
        [(2.0, 0.5, 'signal', 0.5), (2.0, 2.0, 'noise', 1.5)]
    """
    algo = stationary(algorithm)
    instance_of(noise, Noise, "noise")
    refuse_affine(algo, noise, "phase_diagram", "use asymptotics on one spectrum",
                  allowed=("a readout", "a preconditioner"))
    nus = [positive_scalar(v, "nus") for v in number_list(nus, "nus")]
    zetas = [positive_scalar(v, "zetas") for v in number_list(zetas, "zetas")]
    for nu in nus:
        phase_boundary(nu)   # nu > 1
    if measure_steps is not None:
        measure_steps = step_count(measure_steps, "measure_steps", minimum=1)
        if measure_steps < MIN_MEASURE_STEPS:
            raise ValueError(f"measure_steps must be >= {MIN_MEASURE_STEPS} (the exponent is fitted on "
                             f"[T/10, T]), got {measure_steps}")
    rows = []
    for nu in nus:
        for zeta in zetas:
            spec = Spectrum.power_law(nu, zeta * nu, size=size, scale=scale, q=q)
            rep = stability(algo, spec, noise)
            if rep.converges:
                asy = _asymptotics(algo, spec, noise, rep)
                phase, exponent = asy.phase, asy.exponent
            else:
                phase, exponent = "diverges", math.nan
            rows.append({"nu": nu, "zeta": zeta, "kappa": zeta * nu, "phase": phase, "exponent": exponent,
                         "noise_sum": rep.noise_sum, "noise_sum_prime": rep.noise_sum_prime,
                         "converges": rep.converges})
    if measure_steps is not None:
        measured = measured_exponents(algo, noise, nus, zetas, measure_steps, size=size, scale=scale, q=q,
                                      threads=threads, progress=progress)
        for row, p in zip(rows, measured.ravel()):
            row["measured_exponent"] = float(p)
    return rows

