"""Per-eigenvalue picture of a stationary algorithm: where the eigenvalues of ``S_lambda`` go and
how much each component contributes to the noise sum (data for ``memsgd stability --plot``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._affine import refuse_affine
from .._stationary import spectrum_and_noise, stationary
from .._validation import positive_int
from ..algorithms import MemoryAlgorithm
from ..noise import Noise
from ..spectrum import Spectrum
from ._components import Components, eigenvalues
from .memory1 import Memory1Geometry, NoiseRegions, _leading_terms, memory1_geometry, memory1_noise_regions

__all__ = ["StabilityProfile", "stability_profile"]


@dataclass(frozen=True, repr=False)
class StabilityProfile:
    """Arrays over a log-spaced grid ``lam`` covering the spectrum (docs/theory.md).

    Fields:
        lam: (n,) eigenvalues where everything is evaluated, from ``lambda_min`` to ``lambda_max``.
        eigenvalues: (n, M+1) complex eigenvalues of ``S_lambda``.
        stable: (n,) ``rho(S_lambda) < 1``.
        noise_terms: (n,) ``x / (1 + (tau2/B) x)`` with ``x = lambda^2 h^T Y0 h`` (nan where
            unstable): the weight ``m (tau1/B)`` times this is each component's share of ``V'``.
        geometry: [`Memory1Geometry`][memsgd.theory.Memory1Geometry] for memory 1, else None.
        regions: [`NoiseRegions`][memsgd.theory.NoiseRegions] when the three regions exist (memory 1, alpha1 < 0,
            lambda_1 < lambda_2, strictly stable on the spectrum), else None.
        leading_terms: (n,) the regions' leading forms of the noise terms (tau2 = 0), or None.

    Examples:
        >>> import memsgd
        >>> from memsgd.theory import stability_profile
        >>> p = stability_profile(memsgd.heavy_ball(0.1, 0.9), memsgd.Spectrum.power_law(2.0, 1.0, size=100),
        ...                       memsgd.Noise.gaussian(10), points=5)
        >>> bool(p.stable.all()), p.geometry.kind            # complex eigenvalues on the circle |z| = sqrt(0.9)
        (True, 'circle')
    """

    lam: np.ndarray
    eigenvalues: np.ndarray
    stable: np.ndarray
    noise_terms: np.ndarray
    geometry: Memory1Geometry | None
    regions: NoiseRegions | None
    leading_terms: np.ndarray | None = None

    def __repr__(self) -> str:
        return (f"StabilityProfile(points={self.lam.size}, lambda=[{self.lam[0]:.3g}, {self.lam[-1]:.3g}], "
                f"stable={bool(np.all(self.stable))}, geometry={self.geometry!r}, regions={self.regions!r})")


@np.errstate(all="ignore")   # extreme inputs overflow to inf / nan, which the decisions below handle
def stability_profile(algorithm: MemoryAlgorithm, spectrum: Spectrum, noise: Noise, points: int = 400,
                      lambda_min: float | None = None) -> StabilityProfile:
    """Eigenvalues of ``S_lambda`` and per-component noise terms on ``points`` log-spaced lambdas from
    ``lambda_min`` (default: the smallest eigenvalue, but at least ``1e-12 lambda_max``) to
    ``lambda_max``, plus the memory-1 geometry and noise regions where they apply.

    Examples:
        >>> import numpy as np, memsgd
        >>> from memsgd.theory import stability_profile
        >>> p = stability_profile(memsgd.heavy_ball(0.1, 0.9), memsgd.Spectrum.power_law(2.0, 1.0, size=100),
        ...                       memsgd.Noise.gaussian(10), points=5)
        >>> p.stable.tolist(), float(p.lam[-1])              # 5 points up to lambda_max = 1
        ([True, True, True, True, True], 1.0)
    """
    algo = stationary(algorithm)
    spectrum_and_noise(spectrum, noise)
    refuse_affine(algo, noise, "stability_profile", "use stability", allowed=("label noise", "a readout"))
    points = positive_int(points, "points")
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    hi = spectrum.lambda_max
    lo = max(float(spectrum.eigenvalues.min()), 1e-12 * hi) if lambda_min is None else float(lambda_min)
    if not 0 < lo < hi:
        raise ValueError(f"lambda_min must be in (0, lambda_max = {hi:g}), got {lo:g}")
    comp = Components(algo)
    comp.check_cost(points, "stability_profile", noise.self_noise)
    lam = np.geomspace(lo, hi, points)
    eig = eigenvalues(algo.eigen_matrix(lam).reshape(points, algo.memory + 1, algo.memory + 1))
    stable = comp.stable_nodes(lam)
    terms = np.full(points, np.nan)
    if np.any(stable):
        _, x, _, _ = comp.sums(lam[stable])
        terms[stable] = x / (1.0 + noise.self_noise * x)
    geometry = memory1_geometry(algo) if algo.memory == 1 else None
    regions = leading = None
    if comp.m1 is not None:
        try:
            regions = memory1_noise_regions(algo, spectrum, noise)
            leading = _leading_terms(comp.m1, lam)
        except ValueError:   # no three regions for this algorithm (alpha1 >= 0, or 1 - beta too large)
            regions = None
    return StabilityProfile(lam, eig, stable, terms, geometry, regions, leading)
