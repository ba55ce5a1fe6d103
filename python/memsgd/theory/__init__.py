"""Theory toolkit: stability, noise sums, asymptotics and memory-1 geometry (docs/math.md §5-6,
user guide docs/theory.md).

- [`stability`][memsgd.stability] -- strict stability, noise sums ``V, V'``, convergence (docs/math.md §5);
- [`asymptotics`][memsgd.asymptotics], [`phase_boundary`][memsgd.phase_boundary],
  [`phase_diagram`][memsgd.phase_diagram], [`fit_exponent`][memsgd.fit_exponent] --
  phases and large-t behaviour on power laws, any gradient shift e (docs/math.md §6, §6.1);
- [`measured_exponents`][memsgd.theory.measured_exponents] -- exponents fitted on exact curves over a grid of power laws
  (one batched run of the engine), to compare with the predicted ones;
- [`theta_max`][memsgd.theory.theta_max], [`corner_phase`][memsgd.theory.corner_phase] and friends -- rates of corner
  algorithms against AM1's
  ceiling on power laws (docs/corner.md);
- ``memsgd.theory.memory1`` -- closed forms for memory 1: Jury conditions, noise sums,
  eigenvalues, their geometry (real or on a circle) and the three spectral regions of the
  noise sum.
"""
from ._asymptotics import Asymptotics, asymptotics, fit_exponent, phase_boundary, phase_diagram, phase_of
from ._corner import (
                      am1_ceiling,
                      corner_crossover,
                      corner_exponent,
                      corner_phase,
                      corner_phase_diagram,
                      corner_region,
                      theta_max,
)
from ._measured import measured_exponents
from ._profile import StabilityProfile, stability_profile
from ._stability import StabilityReport, stability
from .memory1 import (
                      Memory1Geometry,
                      NoiseRegions,
                      jury_stable_memory1,
                      memory1_coefficients,
                      memory1_eigenvalues,
                      memory1_geometry,
                      memory1_noise_regions,
                      noise_sum_memory1,
)

__all__ = ["stability", "StabilityReport", "asymptotics", "Asymptotics", "fit_exponent", "phase_boundary",
           "phase_of", "phase_diagram", "measured_exponents", "stability_profile", "StabilityProfile",
           "memory1_coefficients", "jury_stable_memory1", "noise_sum_memory1", "memory1_eigenvalues",
           "memory1_geometry", "Memory1Geometry", "memory1_noise_regions", "NoiseRegions",
           "theta_max", "corner_region", "corner_exponent", "am1_ceiling", "corner_crossover", "corner_phase",
           "corner_phase_diagram"]
