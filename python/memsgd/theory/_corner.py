"""Rates of corner algorithms against AM1 on power laws (Yarotsky 2025, "Corner Gradient Descent",
Theorems 3-4; docs/corner.md).

In the signal-dominated phase (``nu > 1``, ``0 < zeta < 2 - 1/nu``, docs/math.md §6) a corner method of
angle ``theta pi`` has signal propagators ``~ t^(-theta zeta)`` and noise propagators ``~ t^(theta/nu - 2)``;
the loss falls like the slower of the two, and the noise sum is finite only for ``theta < nu``. The
best angle is

    theta_max = min(2, nu, 2 / (zeta + 1/nu)),

with three regions: I ``theta_max = 2`` (``nu > 2``, ``zeta < 1 - 1/nu``), III ``theta_max = nu``
(``1 < nu < 2``, ``zeta < 1/nu``), II signal/noise balanced (``theta_max = 2/(zeta + 1/nu)``, otherwise).
AM1's power-law schedule reaches at most ``t^(-zeta (2 - 1/nu))`` (docs/math.md §7). The corner
method is faster exactly when ``theta_max > 2 - 1/nu``: always in I and III, and in II below

    zeta_cross(nu) = (2 nu^2 - 2 nu + 1) / (nu (2 nu - 1)).
"""
from __future__ import annotations

import numpy as np

from .._validation import positive_scalar
from ._asymptotics import phase_boundary, phase_of

__all__ = ["theta_max", "corner_region", "corner_exponent", "am1_ceiling", "corner_crossover", "corner_phase",
           "corner_phase_diagram"]


def _check(nu, zeta):
    phase_boundary(nu)   # nu > 1, one message
    return positive_scalar(nu, "nu"), positive_scalar(zeta, "zeta")


def theta_max(nu, zeta) -> float:
    """``min(2, nu, 2 / (zeta + 1/nu))``: the largest corner angle (over pi) whose loss rate
    ``t^(-theta zeta)`` mini-batch noise allows (the paper's Theorem 4; signal-dominated phase).

    Example:
        >>> from memsgd.theory import theta_max
        >>> theta_max(2.0, 0.5), theta_max(1.5, 0.5), round(theta_max(2.0, 1.0), 4)
        (2.0, 1.5, 1.3333)
    """
    nu, zeta = _check(nu, zeta)
    return float(min(2.0, nu, 2.0 / (zeta + 1.0 / nu)))


def corner_region(nu, zeta) -> str:
    """``"I"`` (fully accelerated, theta_max = 2), ``"II"`` (signal/noise balanced), ``"III"`` (limited by
    the noise sum, theta_max = nu) in the signal-dominated phase; ``"noise"`` outside it (the paper's
    theorem does not cover the noise-dominated phase). Ties go to I, then III.

    Example:
        >>> from memsgd.theory import corner_region
        >>> corner_region(3.0, 0.5), corner_region(2.0, 1.0), corner_region(1.5, 0.5), corner_region(2.0, 1.6)
        ('I', 'II', 'III', 'noise')
    """
    nu, zeta = _check(nu, zeta)
    if phase_of(nu, zeta) != "signal":
        return "noise"
    balanced = 2.0 / (zeta + 1.0 / nu)
    if balanced >= 2.0 and nu >= 2.0:
        return "I"
    if balanced >= nu:
        return "III"
    return "II"


def corner_exponent(nu, zeta, theta=None) -> float:
    """Loss exponent of the ideal corner method of angle ``theta`` (default ``theta_max``): ``min(theta zeta,
    2 - theta/nu)`` for ``theta < nu`` (the slower of signal and noise), ``nan`` for ``theta >= nu`` (the
    noise sum diverges; at ``theta_max = nu`` the exponent ``nu zeta`` is a supremum).

    Example:
        >>> from memsgd.theory import corner_exponent
        >>> corner_exponent(2.0, 0.5, 1.9), round(corner_exponent(2.0, 1.0), 4)
        (0.95, 1.3333)
    """
    nu, zeta = _check(nu, zeta)
    if theta is None:
        t = theta_max(nu, zeta)
        return float(t * zeta)
    theta = positive_scalar(theta, "theta")
    if theta >= nu:
        return float("nan")
    return float(min(theta * zeta, 2.0 - theta / nu))


def am1_ceiling(nu, zeta) -> float:
    """``zeta (2 - 1/nu)``: the exponent AM1's power-law schedule approaches (never reaches) in the
    signal-dominated phase (docs/math.md §7).

    Example:
        >>> from memsgd.theory import am1_ceiling
        >>> am1_ceiling(2.0, 0.5)
        0.75
    """
    nu, zeta = _check(nu, zeta)
    return float(zeta * (2.0 - 1.0 / nu))


def corner_crossover(nu) -> float:
    """``zeta_cross(nu) = (2 nu^2 - 2 nu + 1) / (nu (2 nu - 1))``: below it (in the signal phase) the corner
    method's ``theta_max zeta`` beats AM1's ``zeta (2 - 1/nu)``, above it AM1's ceiling is higher.

    Example:
        >>> from memsgd.theory import corner_crossover
        >>> round(corner_crossover(2.0), 6)
        0.833333
    """
    nu = positive_scalar(nu, "nu")
    phase_boundary(nu)
    return float((2.0 * nu * nu - 2.0 * nu + 1.0) / (nu * (2.0 * nu - 1.0)))


def corner_phase(nu, zeta) -> dict:
    """Everything the theory says at one ``(nu, zeta)``: region, ``theta_max``, the corner exponent
    ``theta_max zeta``, AM1's ceiling and the predicted winner (``"corner"``, ``"AM1"``, ``"tie"``, or
    ``None`` outside the signal phase).

    Example:
        >>> from memsgd.theory import corner_phase
        >>> corner_phase(2.0, 1.0)["winner"], corner_phase(2.0, 0.5)["winner"]
        ('AM1', 'corner')
    """
    nu, zeta = _check(nu, zeta)
    region = corner_region(nu, zeta)
    row = {"nu": nu, "zeta": zeta, "region": region, "theta_max": theta_max(nu, zeta),
           "corner_exponent": corner_exponent(nu, zeta), "am1_ceiling": am1_ceiling(nu, zeta)}
    if region == "noise":
        row["winner"] = None
    else:
        gap = row["corner_exponent"] - row["am1_ceiling"]
        row["winner"] = "tie" if abs(gap) <= 1e-12 * row["am1_ceiling"] else ("corner" if gap > 0 else "AM1")
    return row


def corner_phase_diagram(nus, zetas) -> list:
    """[`corner_phase`][memsgd.theory.corner_phase] over the grid ``nus x zetas`` (nu-major): a list of dicts.

    Example:
        >>> from memsgd.theory import corner_phase_diagram
        >>> rows = corner_phase_diagram([2.0], [0.5, 1.0, 1.6])
        >>> winners = tuple(r["winner"] for r in rows)
        >>> winners
        ('corner', 'AM1', None)
    """
    nus = np.atleast_1d(np.asarray(nus, dtype=float))
    zetas = np.atleast_1d(np.asarray(zetas, dtype=float))
    if nus.ndim != 1 or zetas.ndim != 1 or nus.size == 0 or zetas.size == 0:
        raise ValueError("nus and zetas must be non-empty 1-D sequences of numbers")
    return [corner_phase(float(nu), float(z)) for nu in nus for z in zetas]
