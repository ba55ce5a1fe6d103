"""memsgd: exact dynamics, theory and optimizers for SGD with memory.

Yarotsky & Velikanov, "SGD with memory: fundamental properties and stochastic acceleration"
(ICLR 2025). Formulas and conventions: docs/math.md; user guide: docs/
"""
from . import schedules
from .algorithms import MemoryAlgorithm, Multistep, am1, dana, gd, heavy_ball, nesterov, qhm
from .dynamics import LossCurve, Propagators, loss_curve, propagators
from .renewal import loss_from_propagators
from .simulation import simulate_sgd
from .noise import Noise
from .schedules import Schedule
from .spectrum import Spectrum
from .theory import fit_exponent
from .theory import (Asymptotics, StabilityReport, asymptotics, jury_stable_memory1,
                     memory1_coefficients, noise_sum_memory1, phase_boundary, stability)

__version__ = "0.1.0"

__all__ = [
    "Spectrum", "Noise", "MemoryAlgorithm", "Multistep", "Schedule", "schedules",
    "gd", "heavy_ball", "nesterov", "am1", "qhm", "dana",
    "loss_curve", "propagators", "loss_from_propagators", "simulate_sgd",
    "LossCurve", "Propagators", "fit_exponent",
]
from . import design  # noqa: E402  (schedule design, issue 10)
from .design import ScheduleOptimum, optimize_schedule  # noqa: E402
from .gradient import LossGradient, loss_gradient  # noqa: E402

__all__ += ["loss_gradient", "LossGradient", "optimize_schedule", "ScheduleOptimum", "design"]
__all__ += ["stability", "StabilityReport", "asymptotics", "Asymptotics", "jury_stable_memory1",
            "noise_sum_memory1", "memory1_coefficients", "phase_boundary"]
