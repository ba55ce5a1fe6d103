"""Mini-batch noise in the spectrally expressible (SE) approximation (MATH.md section 3).

The noise operator of a batch of size B is approximated as

    Sigma(C) ~= tau1 Tr(H C) H - tau2 H C H,

exact for Gaussian inputs with (tau1, tau2) = (1, -1). ``batch_size = inf`` means no noise
(full-batch gradient descent).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ._validation import real_scalar


@dataclass(frozen=True)
class Noise:
    """SE noise parameters and batch size.

    Args:
        batch_size: B >= 1, an integer, or ``math.inf`` for noiseless (full-batch) dynamics.
        tau1: coefficient of the ``Tr(HC) H`` term (>= 0 keeps moments PSD).
        tau2: coefficient of the ``-H C H`` term (<= 0 keeps moments PSD).
    """

    batch_size: float
    tau1: float = 1.0
    tau2: float = -1.0

    def __post_init__(self):
        b = real_scalar(self.batch_size, "batch_size", allow_inf=True)
        if math.isinf(b):
            if b < 0:
                raise ValueError("batch_size must be a positive integer or math.inf, got -inf")
        else:
            if b != int(b):
                raise ValueError(f"batch_size must be an integer or math.inf, got {b}")
            if b < 1:
                raise ValueError(f"batch_size must be >= 1, got {b:g}")
            b = int(b)
        object.__setattr__(self, "batch_size", b)
        object.__setattr__(self, "tau1", real_scalar(self.tau1, "tau1"))
        object.__setattr__(self, "tau2", real_scalar(self.tau2, "tau2"))

    @property
    def is_noiseless(self) -> bool:
        return math.isinf(self.batch_size) or (self.tau1 == 0.0 and self.tau2 == 0.0)

    @property
    def coupling(self) -> float:
        """tau1 / B, the weight of the loss-coupled noise term."""
        return 0.0 if math.isinf(self.batch_size) else self.tau1 / self.batch_size

    @property
    def self_noise(self) -> float:
        """tau2 / B, the weight of the per-component noise term."""
        return 0.0 if math.isinf(self.batch_size) else self.tau2 / self.batch_size

    @classmethod
    def gaussian(cls, batch_size) -> "Noise":
        """Gaussian inputs: SE is exact with tau1 = 1, tau2 = -1."""
        return cls(batch_size, 1.0, -1.0)

    @classmethod
    def translation_invariant(cls, batch_size) -> "Noise":
        """Translation-invariant data: tau1 = tau2 = 1."""
        return cls(batch_size, 1.0, 1.0)

    @classmethod
    def none(cls) -> "Noise":
        """No sampling noise (gradient descent)."""
        return cls(math.inf, 0.0, 0.0)
