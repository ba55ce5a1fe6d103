"""Exact gradients of the mean loss with respect to every per-step parameter (docs/math.md §8).

Given the parameters of each step, the second-moment recursion of docs/math.md §3

    a_t       = sum_l m_l lambda_l h_t^T X_{l,t} h_t
    X_{k,t+1} = S_{k,t} X_{k,t} S_{k,t}^T + lambda_k (c1_t a_t - c2_t lambda_k h_t^T X_{k,t} h_t) g_t g_t^T
    L_t       = 1/2 sum_k m_k lambda_k (X_{k,t})_00

(``c1_t = tau1/B_t``, ``c2_t = tau2/B_t``, ``S_{k,t} = S0_t - lambda_k g_t h_t^T``) is linear in the
states, so the gradient of ``J = sum_t w_t L_t`` runs backward in time with the transposed step
(the adjoint method). With ``Yhat_{k,t} = dJ/dX_{k,t}``:

    Yhat_{k,t} = S^T Yhat_{k,t+1} S - c2_t lambda_k^2 q_k h h^T + w_t (m_k lambda_k / 2) E11
                 + abar_t m_k lambda_k h h^T,
    q_k = g^T Yhat_{k,t+1} g,        abar_t = c1_t sum_k lambda_k q_k,

and the gradient with respect to step t's parameters contracts ``Yhat_{k,t+1}`` with the
derivatives of step t's map. Label noise adds the source ``(sigma2/B_t) lambda_k g g^T`` (its
gradient ``d value / d(sigma2/B_t) = sum_k lambda_k g^T Yhat_{k,t+1} g``). Weight decay, readout and
preconditioner (docs/math.md §9) are exact reductions to this plain model (``memsgd._affine``):
the adjoint runs on the reduced problem and the chain rule through the reduction gives the
gradients w.r.t. the original parameters and the per-step weight decay. The forward pass is
``loss_curve``'s run of the engine; its states are kept at checkpoints every ~sqrt(T) steps and
recomputed segment by segment by the same engine, so memory is O(sqrt(T) K (M+1)^2) and the cost a few forward runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from . import _core
from ._affine import gradient_chain, plain_problem
from ._packing import noise_arrays, noise_bytes, parameter_arrays, parameter_bytes, spectrum_arrays
from ._problem import check_problem
from ._progress import watched
from ._validation import boolean, float_array, positive_int, require_memory, thread_count
from .algorithms import MemoryAlgorithm
from .noise import Noise
from .schedules import Schedule
from .spectrum import Spectrum

__all__ = ["LossGradient", "loss_gradient"]

@dataclass(frozen=True)
class LossGradient:
    """``value = sum_t weights[t] L_t`` and its gradient with respect to the parameters of each step.

    Fields (T = steps): ``alpha`` (T,), ``b``, ``c``, ``e`` (T, M), ``D`` (T, M, M): ``d value / d``
    (that parameter of step t); ``batch`` (T,): ``d value / d(1/B_t)`` at the noise's batch sizes
    (``tau1 d/d(tau1/B_t) + tau2 d/d(tau2/B_t) + sigma2 d/d(sigma2/B_t)``, sigma2 the label noise;
    zero for ``Noise.none()``); ``loss`` (T+1,): the
    losses ``L_t`` of the forward pass (``inf`` from ``diverged_at`` on). When a step with a
    nonzero weight diverged, ``value`` is ``inf`` and every gradient entry is NaN. Rows from the
    last nonzero weight on are zero (those steps do not affect the value).

    Examples:
        >>> import memsgd
        >>> spec, noise = memsgd.Spectrum.power_law(2.0, 1.0, size=30), memsgd.Noise.gaussian(10)
        >>> g = memsgd.loss_gradient(memsgd.heavy_ball(0.1, 0.9), spec, noise, 20)
        >>> g.alpha.shape, g.D.shape, (g.value
        ...                            == memsgd.loss_curve(memsgd.heavy_ball(0.1, 0.9), spec, noise, 20).loss[-1])
        ((20,), (20, 1, 1), True)
    """

    value: float
    alpha: np.ndarray
    b: np.ndarray
    c: np.ndarray
    D: np.ndarray
    e: np.ndarray
    batch: np.ndarray
    loss: np.ndarray = field(repr=False)
    diverged_at: Optional[int] = None
    coupling: np.ndarray = field(default=None, repr=False)     # d value / d(tau1/B_t)
    self_noise: np.ndarray = field(default=None, repr=False)   # d value / d(tau2/B_t)
    checkpoint_every: int = field(default=0, repr=False)
    stored_states: int = field(default=0, repr=False)          # peak K-component states held
    label: np.ndarray = field(default=None, repr=False)        # d value / d(sigma2/B_t), the label-noise source
    weight_decay: Optional[np.ndarray] = None                  # (T,) d value / d rho_t (with weight decay)

    @property
    def steps(self) -> int:
        return self.loss.size - 1

    @property
    def memory(self) -> int:
        return int(self.b.shape[1])

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def contract(self, alpha=None, b=None, c=None, D=None, e=None, batch=None, weight_decay=None) -> float:
        """``sum_t <gradient_t, delta_t>`` over the given per-step perturbations: the directional
        derivative of ``value`` along them (arguments left out count as zero)."""
        if weight_decay is not None and self.weight_decay is None:
            raise ValueError("weight_decay: this gradient has no weight-decay part (loss_gradient("
                             "..., weight_decay_gradient=True) computes it)")
        total = 0.0
        for grad, delta in ((self.alpha, alpha), (self.b, b), (self.c, c), (self.D, D), (self.e, e),
                            (self.batch, batch), (self.weight_decay, weight_decay)):
            if delta is not None:
                total += float(np.sum(grad * np.reshape(delta, grad.shape)))
        return total




def _require_gradient_memory(schedule, spectrum: Spectrum, noise: Noise, steps: int,
                            checkpoint_every: Optional[int], threads: int, extra: Optional[dict] = None) -> None:
    """Refuse, before allocating anything, a gradient run whose arrays (with the caller's own
    O(steps) arrays ``extra``: name -> bytes) need more than physical memory (ValueError)."""
    M = schedule.memory
    parts = {"loss weights": 8.0 * (steps + 1),
             "per-step parameters": parameter_bytes(schedule, steps),
             "per-step noise": noise_bytes(noise, steps),
             "gradient run": _core.gradient_bytes(M, spectrum.size, steps, steps, checkpoint_every or 0, threads)}
    parts.update(extra or {})
    require_memory(parts, f"the run (steps = {steps}, K = {spectrum.size}, M = {M})")


def _loss_weights(weights, steps: int) -> np.ndarray:
    if weights is None:
        w = np.zeros(steps + 1)
        w[steps] = 1.0
        return w
    w = float_array(weights, "weights", ndim=1, finite=False)
    if w.size != steps + 1:
        raise ValueError(f"weights must have length steps + 1 = {steps + 1} (one per loss L_0..L_steps), "
                         f"got {w.size}")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite")
    if np.any(w < 0):
        raise ValueError("weights must be >= 0 (the value is a nonnegative combination of losses)")
    return w


def loss_gradient(schedule: Union[Schedule, MemoryAlgorithm], spectrum: Spectrum, noise: Noise, steps: int,
                  weights=None, *, checkpoint_every: Optional[int] = None, threads: Optional[int] = None,
                  progress: Optional[bool] = None, weight_decay_gradient: bool = False) -> LossGradient:
    """``value = sum_t weights[t] L_t`` and its exact gradient w.r.t. every per-step parameter.

    Args:
        schedule: a [`Schedule`][memsgd.schedules.Schedule] (its first ``steps`` steps), or a
            [`MemoryAlgorithm`][memsgd.MemoryAlgorithm],
            treated as the constant schedule (the gradient is still per step).
        spectrum: the problem's spectrum.
        noise: its noise; a per-step batch size ``B_t`` (``Noise(batch_size=array)``) is
            honoured, and ``batch`` is the gradient w.r.t. ``1/B_t``.
        steps: T; the losses ``L_0..L_T`` are computed.
        weights: ``(T+1,)`` nonnegative weights of the losses; default: ``L_T`` alone.
        checkpoint_every: segment length C of the checkpointing (default ``ceil(sqrt(horizon))``,
            horizon = last step with a nonzero weight, or a shorter segment that fits in the cache
            if that at most doubles the stored states: ``memsgd._core.gradient_checkpointing``).
            Memory: about ``horizon/C + C`` states of ``K (M+1)(M+2)/2`` doubles (``K (M+1)^2``
            for M > 3).
        threads: at most this many threads (default: all cores; the thread policy of
            [`memsgd.loss_curve`][memsgd.loss_curve] for both passes). The result does not depend on it.
        progress: ``True`` shows a progress bar, ``False`` never, ``None`` when the run is long and
            stderr is a terminal. Long runs can be interrupted with Ctrl-C.
        weight_decay_gradient: also compute ``weight_decay`` (``d value / d rho_t``) when the
            schedule has no weight decay (rho = 0): the adjoint then runs on the memory-(M+1)
            weight-decay reduction (docs/math.md §9). With weight decay it is always computed.

    Weight decay, readout and preconditioner (docs/math.md §9) go through their exact reductions
    (``memsgd._affine``); ``alpha``..``e`` are the gradients w.r.t. the original parameters (chain
    rule) and ``weight_decay`` w.r.t. the per-step ``rho_t``.

    The forward pass is [`memsgd.loss_curve`][memsgd.loss_curve]'s run of the engine: ``loss`` and
    ``diverged_at`` are bitwise those of ``loss_curve`` (divergence: ``L_t > 1e30 L_0`` or a
    non-finite value, decided by the core). With weight decay the adjoint needs the plain model,
    so the forward pass runs the reduction, where ``loss_curve`` runs the engine's affine state:
    the two agree to about 1e-14 relative, not bit for bit. The backward pass is its adjoint (module docstring).
    Cost about 4-6 forward runs (``bench/bench_gradient.py``). Deterministic for any thread count
    and any ``checkpoint_every``.

    Examples:
        The gradient with respect to a constant learning rate is the sum of the per-step gradients of
        ``alpha_t`` and ``c_t`` (heavy ball: ``alpha = c = lr``); a central difference agrees:

        >>> import numpy as np, memsgd
        >>> spec, noise = memsgd.Spectrum.power_law(2.0, 1.0, size=30), memsgd.Noise.gaussian(10)
        >>> g = memsgd.loss_gradient(memsgd.heavy_ball(0.1, 0.9), spec, noise, 20)   # J = L_20
        >>> def final(lr):
        ...     return memsgd.loss_curve(memsgd.heavy_ball(lr, 0.9), spec, noise, 20).loss[-1]
        >>> fd = (final(0.1 + 1e-6) - final(0.1 - 1e-6)) / 2e-6
        >>> bool(np.isclose(g.alpha.sum() + g.c.sum(), fd, rtol=1e-6))
        True
    """
    steps = check_problem(schedule, spectrum, noise, steps, "schedule")
    if checkpoint_every is not None:
        checkpoint_every = positive_int(checkpoint_every, "checkpoint_every")
    threads = thread_count(threads)
    force = boolean(weight_decay_gradient, "weight_decay_gradient")
    chain = gradient_chain(schedule, steps, weight_decay=force)
    schedule, spectrum = plain_problem(schedule, spectrum, weight_decay=force)
    M = schedule.memory
    _require_gradient_memory(schedule, spectrum, noise, steps, checkpoint_every, threads)
    w = _loss_weights(weights, steps)
    packed = spectrum_arrays(spectrum), parameter_arrays(schedule, steps), noise_arrays(noise, steps)
    nonzero = np.flatnonzero(w)
    horizon = int(nonzero[-1]) if nonzero.size else 0
    work = float(steps + 3 * horizon) * spectrum.size * (M + 1) ** 2

    def call(control):
        return _core.loss_gradient(*packed, steps, w, checkpoint_every=checkpoint_every or 0, threads=threads,
                                   control=control)

    (value, diverged, loss, g_alpha, g_b, g_c, g_D, g_e, g_c1, g_c2, used_c, stored, g_label) = watched(
        call, work, progress, steps + horizon, "loss_gradient", "step", "steps_done")
    with np.errstate(invalid="ignore"):
        # 1/B_t enters tau1/B_t, tau2/B_t and the label-noise source sigma2/B_t (docs/math.md §9)
        batch = noise.tau1 * g_c1 + noise.tau2 * g_c2
        if noise.label_noise:
            batch = batch + noise.label_noise * g_label
        (g_alpha, g_b, g_c, g_D, g_e), g_rho = chain((g_alpha, g_b, g_c, g_D, g_e))
    return LossGradient(float(value), g_alpha, g_b, g_c, g_D, g_e, batch, loss,
                        None if diverged < 0 else int(diverged), g_c1, g_c2, int(used_c), int(stored), g_label,
                        g_rho)
