"""memsgd: exact dynamics, theory and optimizers for SGD with memory.

Yarotsky & Velikanov, "SGD with memory: fundamental properties and stochastic acceleration"
(ICLR 2025). Formulas and conventions: docs/math.md; user guide: docs/
"""
# problems and algorithms
# schedule design
from . import (
                     _startup,  # noqa: F401  (first: a Ctrl-C while the command starts ends quietly)
                     design,
                     lr_shapes,
                     schedules,
)
from ._affine import ema

# introspection
from ._config import show_config
from ._version import __version__ as __version__  # re-exported: the one source is _version.py
from .algorithms import MemoryAlgorithm, Multistep, am1, dana, gd, heavy_ball, nesterov, qhm

# the contour view and corner algorithms
from .contour import mode_locus, response, response_contour
from .corner import corner, corner_map, corner_nodes
from .design import ScheduleOptimum, optimize_schedule

# exact dynamics
from .dynamics import LossCurve, LossCurves, Propagators, loss_curve, loss_curves, propagators
from .gradient import LossGradient, loss_gradient
from .long_horizon import LossAt, loss_at, supports_loss_at
from .modal import modal_loss_at
from .noise import Noise
from .renewal import RenewalCancellationWarning, loss_from_propagators

# scaling laws (power-law random features)
from .scaling import ComputeOptimal, compute_optimal
from .schedules import Schedule
from .simulation import simulate_sgd
from .spectrum import Spectrum

# sweeps
from .sweeps import StoreBusyError, StoreMismatchError, fitted_exponents, growth_rates, sweep

# theory
from .theory import (
                     Asymptotics,
                     StabilityReport,
                     asymptotics,
                     fit_exponent,
                     jury_stable_memory1,
                     memory1_coefficients,
                     memory1_eigenvalues,
                     memory1_geometry,
                     noise_sum_memory1,
                     phase_boundary,
                     phase_diagram,
                     stability,
)

__all__ = [
    "Spectrum", "Noise", "MemoryAlgorithm", "Multistep", "Schedule", "schedules", "lr_shapes",
    "gd", "heavy_ball", "nesterov", "am1", "qhm", "dana", "ema",
    "loss_curve", "loss_curves", "propagators", "loss_from_propagators", "simulate_sgd",
    "LossCurve", "LossCurves", "Propagators", "RenewalCancellationWarning",
    "loss_at", "LossAt", "supports_loss_at", "modal_loss_at",
    "response", "response_contour", "mode_locus", "corner", "corner_map", "corner_nodes",
    "sweep", "fitted_exponents", "growth_rates", "StoreMismatchError", "StoreBusyError",
    "compute_optimal", "ComputeOptimal",
    "loss_gradient", "LossGradient", "optimize_schedule", "ScheduleOptimum", "design",
    "stability", "StabilityReport", "asymptotics", "Asymptotics", "fit_exponent", "jury_stable_memory1",
    "noise_sum_memory1", "memory1_coefficients", "memory1_eigenvalues", "memory1_geometry",
    "phase_boundary", "phase_diagram",
    "show_config",
]
