"""The loss expansion as a pair of renewal equations (docs/math.md §4), solved in the core.

    l_t = U'_t + sum_{s<t} l_s V'_{t-s},        L_t = U_t + sum_{s<t} l_s V_{t-s}

With label noise (docs/math.md §9) its source enters through the cumulative sums of W, W'.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from . import _core
from ._progress import watched
from ._validation import progress_flag
from .dynamics import Propagators

__all__ = ["RenewalCancellationWarning", "loss_from_propagators"]

# Estimated relative errors above this make a value meaningless enough to warn about.
_WARN_RELATIVE_ERROR = 1e-3


class RenewalCancellationWarning(RuntimeWarning):
    """The renewal sums cancel so much that some losses are dominated by rounding.

    Examples:
        >>> import warnings, memsgd
        >>> issubclass(memsgd.RenewalCancellationWarning, RuntimeWarning)
        True
        >>> warnings.simplefilter("error", memsgd.RenewalCancellationWarning)   # make it an error instead
    """


def loss_from_propagators(props: Propagators, method: str = "fft", progress: Optional[bool] = None,
                          return_error: bool = False):
    """Solve the renewal equations of the loss expansion (P.19, Theorem 2)::

        l_t = U'_t + sum_{s<t} l_s V'_{t-s},     L_t = U_t + sum_{s<t} l_s V_{t-s}

    With label noise the source ``sum_{n=1}^t W_n`` (``W'_n``) is added to ``U_t`` (``U'_t``): the
    injections of every earlier step, each carried to step t (docs/math.md §9).

    ``method="direct"``: O(T^2) summation; ``"fft"``: online divide-and-conquer convolution
    with FFT block products, O(T log^2 T). Returns ``L`` of shape (steps+1,), or ``(L, error)``
    with ``return_error=True``, where ``error`` estimates the absolute error of ``L``.

    Accuracy. With nonnegative propagators (tau2 <= 0 and non-oscillating modes) every sum
    is of positive terms and both methods keep ~1e-12 relative accuracy. When some propagator
    is negative (tau2 > 0, or modes with negative or complex eigenvalues) the terms of the sums
    can exceed the loss by many orders of magnitude; the error estimate is then the rounding
    error of each sum relative to its terms, propagated through the equations with ``|V'|`` and
    ``|V|`` (docs/math.md §4), and a [`RenewalCancellationWarning`][memsgd.RenewalCancellationWarning] names the first
    step
    whose estimated relative error exceeds 1e-3. The exact recursion [`memsgd.loss_curve`][memsgd.loss_curve]
    does not cancel: use it there. An overflowing solution is ``inf`` from its first overflow on
    (never NaN).

    ``progress``: ``True`` shows a progress bar, ``False`` never, ``None`` (default) when the run
    is long and stderr is a terminal. Long runs can be interrupted with Ctrl-C.

    Examples:
        The renewal equations give the engine's loss curve from the propagators:

        >>> import numpy as np, memsgd
        >>> spec, noise = memsgd.Spectrum.power_law(2.0, 1.0, size=50), memsgd.Noise.gaussian(10)
        >>> algo = memsgd.heavy_ball(0.1, 0.9)
        >>> renewal = memsgd.loss_from_propagators(memsgd.propagators(algo, spec, noise, 500))
        >>> engine = memsgd.loss_curve(algo, spec, noise, 500).loss
        >>> bool(np.allclose(renewal, engine, rtol=1e-10))
        True
    """
    if not isinstance(props, Propagators):
        raise TypeError(f"props must be Propagators, got {type(props).__name__}")
    if not isinstance(method, str) or method not in ("direct", "fft"):
        raise ValueError(f"method must be 'direct' or 'fft', got {method!r}")
    progress_flag(progress)
    arrays = [props.U, props.U_prime, props.V, props.V_prime, props.W, props.W_prime]
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError("props must be finite (the propagators of a diverging algorithm cannot be summed)")
    U, U_prime = props.U, props.U_prime
    if np.any(props.W) or np.any(props.W_prime):   # the label-noise source, summed up to each step
        U, U_prime = U + np.cumsum(props.W), U_prime + np.cumsum(props.W_prime)
    arrays = [U, U_prime, props.V, props.V_prime]
    if props.e_is_zero:  # U' = U, V' = V: pass the same arrays so the core convolves once
        arrays = [U, U, props.V, props.V]
    signed = any(bool(np.any(a < 0)) for a in arrays)
    with_error = return_error or signed
    n = arrays[0].size
    passes = 1 + (5 - props.e_is_zero) * with_error
    work = float(n) ** 2 if method == "direct" else 50.0 * n * max(np.log2(n + 1), 1.0) ** 2
    work *= passes
    def call(control):
        return _core.solve_renewal(*arrays, method, with_error=with_error, control=control)

    L, _, error = watched(call, work, progress, passes * n, "renewal", "step", "steps_done")
    if signed:
        _warn_if_meaningless(L, error)
    return (L, error) if return_error else L


def _warn_if_meaningless(L: np.ndarray, error: np.ndarray) -> None:
    with np.errstate(invalid="ignore", divide="ignore"):
        bad = np.isfinite(L) & (error > _WARN_RELATIVE_ERROR * np.abs(L))
    if np.any(bad):
        first = int(np.argmax(bad))
        warnings.warn(
            f"loss_from_propagators: the renewal sums cancel (signed propagators: tau2 > 0 or "
            f"oscillating modes); from step {first} on, {int(bad.sum())} of {L.size} losses have an "
            f"estimated relative error above {_WARN_RELATIVE_ERROR:g} (up to "
            f"{np.max(error[bad] / np.maximum(np.abs(L[bad]), 1e-300)):.1e}), so they are not "
            "meaningful; use loss_curve (the exact recursion, which does not cancel), or "
            "return_error=True for the estimates", RenewalCancellationWarning, stacklevel=3)
