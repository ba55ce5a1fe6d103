"""Mini-batch noise in the spectrally expressible (SE) approximation (docs/math.md §3).

The noise operator of a batch of size B is approximated as

    Sigma(C) ~= tau1 Tr(H C) H - tau2 H C H,

exact for Gaussian inputs with (tau1, tau2) = (1, -1). ``batch_size = inf`` means no noise
(full-batch gradient descent). A per-step batch size ``B_t`` (docs/math.md §8) makes step t use
``tau1 / B_t`` and ``tau2 / B_t``.

Label noise (docs/math.md §9): targets ``y = <w*, x> + eps`` with ``Var eps = sigma2``
independent of x add ``sigma2 H`` to the noise operator, i.e. the constant source
``(sigma2 / B_t) lambda_k g g^T`` to the second moment of component k at every step. The loss
stays the excess risk; the population risk is ``loss + sigma2 / 2``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validation import float_array, nonnegative_int, nonnegative_scalar, real_scalar

__all__ = ["Noise"]


def _check_realizable(tau1: float, tau2: float) -> None:
    """Refuse SE coefficients that no data distribution produces (docs/theory.md, "Which tau are
    possible"). ``Sigma(C) = E[(x x^T - H) C (x x^T - H)]`` is PSD for PSD C; with
    ``C = e_k e_k^T`` the SE form is ``tau1 lambda_k H - tau2 lambda_k^2 e_k e_k^T``, whose
    eigenvalues are ``tau1 lambda_k lambda_j`` (j != k) and ``(tau1 - tau2) lambda_k^2``."""
    if tau1 < 0:
        raise ValueError(f"tau1 must be >= 0 (no distribution has a noise operator with tau1 < 0), got {tau1}")
    if tau2 > tau1:
        raise ValueError(f"tau2 must be <= tau1 (no distribution has a noise operator with tau2 > tau1), "
                         f"got tau1={tau1}, tau2={tau2}")


class Noise:
    """SE noise parameters and batch size.

    Args:
        batch_size: B >= 1, an integer, or ``math.inf`` for noiseless (full-batch) dynamics; or a
            1-D array of per-step batch sizes ``B_t`` (each >= 1 or inf; real values are allowed
            as the continuous relaxation used by schedule design), at least as long as the run.
        tau1: coefficient of the ``Tr(HC) H`` term, >= 0.
        tau2: coefficient of the ``-H C H`` term, <= tau1 (both rules are what the noise of some
            data distribution allows: independent standardized coordinates with fourth moment
            m4 give tau1 = 1, tau2 = 2 - m4 <= 1).
        label_noise: variance ``sigma2 >= 0`` of additive label noise (docs/math.md §9): the
            noise operator gains ``sigma2 H``. The noisy quadratic model of Zhang et al. (2019)
            is ``Noise(B, 0.0, 0.0, label_noise=1.0)``.

    Example:
        >>> import memsgd
        >>> noise = memsgd.Noise.gaussian(8, label_noise=0.1)
        >>> noise.label_source      # sigma2 / B
        0.0125
    """

    __slots__ = ("_batch_size", "_tau1", "_tau2", "_label_noise")
    _batch_size: Any  # a number, or the per-step array B_t
    _tau1: float
    _tau2: float
    _label_noise: float

    def __init__(self, batch_size, tau1=1.0, tau2=-1.0, label_noise=0.0):
        if isinstance(batch_size, np.ndarray) and batch_size.ndim == 0:
            batch_size = batch_size[()]
        if not isinstance(batch_size, (list, tuple, np.ndarray)):  # a scalar (or a wrong type)
            b = real_scalar(batch_size, "batch_size", allow_inf=True)
            if math.isinf(b):
                if b < 0:
                    raise ValueError("batch_size must be a positive integer or math.inf, got -inf")
            else:
                if b != int(b):
                    raise ValueError(f"batch_size must be an integer or math.inf, got {b}")
                if b < 1:
                    raise ValueError(f"batch_size must be >= 1, got {b:g}")
                b = int(b)
        else:
            b = float_array(batch_size, "batch_size", ndim=1, allow_empty=False, finite=False)
            if np.any(np.isnan(b)) or np.any(b < 1):
                raise ValueError("batch_size must contain per-step batch sizes >= 1 (or inf), no NaN")
            b.setflags(write=False)
        tau1, tau2 = real_scalar(tau1, "tau1"), real_scalar(tau2, "tau2")
        _check_realizable(tau1, tau2)
        label_noise = nonnegative_scalar(label_noise, "label_noise")
        object.__setattr__(self, "_batch_size", b)
        object.__setattr__(self, "_tau1", tau1)
        object.__setattr__(self, "_tau2", tau2)
        object.__setattr__(self, "_label_noise", label_noise)

    def __setattr__(self, name, value):
        raise AttributeError("Noise is immutable")

    def __reduce__(self):
        return (Noise, (self._batch_size, self._tau1, self._tau2, self._label_noise))

    @property
    def batch_size(self):
        """The batch size: a number (``math.inf`` for none) or the per-step array ``B_t``."""
        return self._batch_size

    @property
    def tau1(self) -> float:
        return self._tau1

    @property
    def tau2(self) -> float:
        return self._tau2

    @property
    def label_noise(self) -> float:
        """Variance ``sigma2`` of the additive label noise (0: noiseless targets)."""
        return self._label_noise

    @property
    def per_step(self) -> bool:
        """True when the batch size varies by step (an array ``B_t``)."""
        return isinstance(self._batch_size, np.ndarray)

    @property
    def is_noiseless(self) -> bool:
        """True when no step injects noise: infinite batches, or tau1 = tau2 = 0 without label noise."""
        if self._tau1 == 0.0 and self._tau2 == 0.0 and self._label_noise == 0.0:
            return True
        return bool(np.all(np.isinf(self._batch_size)))

    def _constant(self, what: str):
        if self.per_step:
            raise ValueError(f"noise has a per-step batch size, so it has no single {what}: "
                             "use noise.coefficients(steps)")
        return math.isinf(self._batch_size)

    @property
    def coupling(self) -> float:
        """tau1 / B, the weight of the loss-coupled noise term (constant batch size only)."""
        return 0.0 if self._constant("coupling") else self._tau1 / self._batch_size

    @property
    def self_noise(self) -> float:
        """tau2 / B, the weight of the per-component noise term (constant batch size only)."""
        return 0.0 if self._constant("self_noise") else self._tau2 / self._batch_size

    @property
    def label_source(self) -> float:
        """sigma2 / B, the label-noise source of every step (constant batch size only; 0 for B = inf)."""
        return 0.0 if self._constant("label_source") else self._label_noise / self._batch_size

    def label_coefficients(self, steps):
        """Per-step ``sigma2 / B_t`` for t = 0..steps-1, a float64 array of shape (steps,) (0 where
        ``B_t = inf``)."""
        steps = nonnegative_int(steps, "steps")
        if not self.per_step:
            return np.full(steps, self.label_source)
        if self._batch_size.size < steps:
            raise ValueError(f"batch_size has {self._batch_size.size} per-step entries, fewer than "
                             f"steps = {steps}")
        return self._label_noise / self._batch_size[:steps]

    def coefficients(self, steps):
        """Per-step ``(tau1 / B_t, tau2 / B_t)`` for t = 0..steps-1, two float64 arrays of shape
        (steps,) (0 where ``B_t = inf``). A per-step batch size must have at least ``steps`` entries."""
        steps = nonnegative_int(steps, "steps")
        if not self.per_step:
            return np.full(steps, self.coupling), np.full(steps, self.self_noise)
        if self._batch_size.size < steps:
            raise ValueError(f"batch_size has {self._batch_size.size} per-step entries, fewer than "
                             f"steps = {steps}")
        inv = 1.0 / self._batch_size[:steps]   # 1/inf = 0: no noise at that step
        return self._tau1 * inv, self._tau2 * inv

    def __eq__(self, other):
        if not isinstance(other, Noise):
            return NotImplemented
        if self.per_step != other.per_step or ((self._tau1, self._tau2, self._label_noise)
                                               != (other._tau1, other._tau2, other._label_noise)):
            return False
        if self.per_step:
            return bool(np.array_equal(self._batch_size, other._batch_size))
        return self._batch_size == other._batch_size

    def __hash__(self):
        b = self._batch_size.tobytes() if self.per_step else self._batch_size
        return hash((b, self._tau1, self._tau2, self._label_noise))

    def __repr__(self) -> str:
        if self.per_step:
            b = self._batch_size
            size = f"per-step batch_size (n={b.size}, min={b.min():g}, max={b.max():g})"
        else:
            size = f"batch_size={self._batch_size}"
        label = f", label_noise={self._label_noise:g}" if self._label_noise else ""
        return f"Noise({size}, tau1={self._tau1:g}, tau2={self._tau2:g}{label})"

    @classmethod
    def gaussian(cls, batch_size, label_noise=0.0) -> Noise:
        """Gaussian inputs: SE is exact with tau1 = 1, tau2 = -1 (label noise of variance ``label_noise``)."""
        return cls(batch_size, 1.0, -1.0, label_noise)

    @classmethod
    def translation_invariant(cls, batch_size, label_noise=0.0) -> Noise:
        """Translation-invariant data: tau1 = tau2 = 1 (label noise of variance ``label_noise``)."""
        return cls(batch_size, 1.0, 1.0, label_noise)

    @classmethod
    def none(cls) -> Noise:
        """No sampling noise (gradient descent)."""
        return cls(math.inf, 0.0, 0.0)
