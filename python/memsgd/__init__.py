"""memsgd: exact dynamics, theory and optimizers for SGD with memory.

Yarotsky & Velikanov, "SGD with memory: fundamental properties and stochastic acceleration"
(ICLR 2025). Formulas and conventions: docs/math.md; user guide: docs/
"""
from . import schedules
from .algorithms import MemoryAlgorithm, Multistep, am1, dana, gd, heavy_ball, nesterov, qhm
from .dynamics import LossCurve, LossCurves, Propagators, loss_curve, loss_curves, propagators
from .sweep import fitted_exponents, sweep
from .renewal import RenewalCancellationWarning, loss_from_propagators
from .long_horizon import LossAt, loss_at, supports_loss_at
from .simulation import simulate_sgd
from .noise import Noise
from .schedules import Schedule
from .spectrum import Spectrum
from ._config import show_config
from .theory import fit_exponent
from .theory import (Asymptotics, StabilityReport, asymptotics, jury_stable_memory1,
                     memory1_coefficients, noise_sum_memory1, phase_boundary, stability)
from .theory import memory1_eigenvalues, memory1_geometry, phase_diagram

__version__ = "0.1.0"

__all__ = [
    "Spectrum", "Noise", "MemoryAlgorithm", "Multistep", "Schedule", "schedules",
    "gd", "heavy_ball", "nesterov", "am1", "qhm", "dana",
    "loss_curve", "loss_curves", "propagators", "loss_from_propagators", "simulate_sgd",
    "LossCurve", "LossCurves", "Propagators", "fit_exponent",
]
__all__ += ["sweep", "fitted_exponents"]
__all__ += ["show_config"]
__all__ += ["loss_at", "LossAt", "supports_loss_at", "RenewalCancellationWarning"]
__all__ += ["stability", "StabilityReport", "asymptotics", "Asymptotics", "jury_stable_memory1",
            "noise_sum_memory1", "memory1_coefficients", "phase_boundary"]
__all__ += ["memory1_eigenvalues", "memory1_geometry", "phase_diagram"]
