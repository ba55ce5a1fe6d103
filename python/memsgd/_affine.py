"""The affine model of docs/math.md §9 as exact reductions to the plain model of §3.

Label noise is the one feature the core carries itself (a constant source in the noise term);
weight decay, readout and preconditioner are rewritten here into a plain algorithm and spectrum,
so every path that takes a plain problem (loss_curve, loss_curves, sweep, loss_gradient,
propagators, stability, asymptotics) gets them without new C++. ``plain_problem`` is the one
entry; the transforms below work on per-step arrays (leading time axis) so that stationary
algorithms (one row) and schedules share them.

1. Readout ``r`` (loss at ``w + r^T u``): the similarity transform ``T = [[1, r^T], [0, I]]`` of the
   state, ``s' = T s``. Then ``S'_lambda = T S_lambda T^-1`` is again of the form ``S0' - lambda g' h'^T``
   with ``alpha' = alpha + r.c``, ``b' = b + (D^T - I) r``, ``c' = c``, ``D' = D``, ``e' = e - r``
   (``g' = T g``, ``h' = T^-T h``, ``S0' = T S0 T^-1``); the initial state ``(q_0, 0)`` and the
   gradient point ``h'^T s' = h^T s`` are unchanged, and the first coordinate of ``s'`` is the
   readout point's deviation. ``r`` is constant, so the same ``T`` conjugates every step.
2. Preconditioner ``p``: a transform of the spectrum ([`Spectrum.preconditioned`][memsgd.Spectrum.preconditioned]).
3. Weight decay ``rho_t`` (oracle ``grad L + rho q_abs`` at the absolute gradient point): per
   component the step becomes ``S_k = S0 - (lambda_k + rho) g h^T`` plus the force
   ``f_k = -rho w*_k g``. Carrying the absolute weights ``w_abs = q + w*`` as one more auxiliary
   vector makes that linear: ``y = (q, u, w_abs)`` evolves by the plain memory-(M+1) step with
   ``alpha~ = alpha``, ``b~ = (b - alpha rho e, -alpha rho)``, ``c~ = (c, alpha)``,
   ``D~ = [[D - rho c e^T, -rho c], [b^T - alpha rho e^T, 1 - alpha rho]]``, ``e~ = (e, 0)``
   (the gradient ``lambda h^T y_{0..M}`` of the loss plus ``rho`` times the absolute gradient point
   ``w_abs + e^T u``, entered into ``q`` by ``-alpha``, into ``u`` by ``-c`` and into ``w_abs``
   by ``-alpha``; ``w_abs`` moves as ``q`` does). The initial state ``(-w*, 0, 0)`` has second
   moment ``c_k^2 E11`` up to the ``w*`` column; conjugating by ``I + e_last e_1^T`` (which maps
   ``(q, u, w*)`` to ``(q, u, q + w*)``) shows that the state ``(q, u, w*)`` with a constant last
   coordinate is that conjugate, so the plain engine started from ``c_k^2 E11`` is exact. With
   ``rho = 0`` the reduction is not used (memory stays M). Readout first, then weight decay.
   The reduced algorithm has an eigenvalue 1 (``w_abs`` converges to the decayed solution, not to
   ``w*``): the loss tends to the bias floor ``1/2 sum lambda c^2 (rho / (lambda + rho))^2``
   (noise-free); stability is judged on the original algorithm at ``lambda + rho``.
   Preconditioner and weight decay together make the decay per component (``p_k rho``), which
   no plain algorithm carries: refused here; the engine's forward path carries it
   (``forward_problem``), and ``simulate_sgd`` simulates it.
"""
from __future__ import annotations

import numpy as np

from ._validation import bounded_scalar, instance_of
from .algorithms import MemoryAlgorithm
from .schedules import Schedule
from .spectrum import Spectrum

__all__ = ["affine_features", "refuse_affine", "WEIGHTS_ONLY", "plain_problem", "forward_problem",
           "decayed_problem", "gradient_chain", "ema", "has_weight_decay",
           "readout_transform", "weight_decay_reduction", "readout_vjp", "weight_decay_vjp"]


# -- which features -----------------------------------------------------------------------------

def has_weight_decay(algorithm) -> bool:
    """True when some step decays the weights (rho != 0)."""
    return bool(np.any(getattr(algorithm, "weight_decay", 0.0)))


def affine_features(algorithm, noise) -> list:
    """Names of the affine-model features the problem uses (empty for the plain model)."""
    used = []
    if noise is not None and getattr(noise, "label_noise", 0.0) != 0.0:
        used.append("label noise")
    if has_weight_decay(algorithm):
        used.append("weight decay")
    if np.any(getattr(algorithm, "readout", 0.0)):
        used.append("a readout")
    if getattr(algorithm, "preconditioner", 0.0):
        used.append("a preconditioner")
    return used


# why the optimizers (torch, optax) take weight decay but no readout or preconditioner
WEIGHTS_ONLY = ("the optimizer moves the weights w and takes the gradient there; pass the algorithm without "
                "it (and read the loss at w + r^T u yourself)")


def refuse_affine(algorithm, noise, what: str, instead: str, allowed=()) -> None:
    """One-line ValueError when ``what`` is asked of a problem with affine-model features other
    than ``allowed``."""
    used = [f for f in affine_features(algorithm, noise) if f not in allowed]
    if used:
        raise ValueError(f"{what} does not support {' or '.join(used)} yet; {instead}")


# -- the transforms on per-step arrays -------------------------------------------------------------

def readout_transform(alpha, b, c, D, e, r):
    """``(alpha + r.c, b + (D^T - I) r, c, D, e - r)`` per step (arrays with a leading time axis)."""
    alpha_r = alpha + c @ r
    b_r = b + np.einsum("tji,j->ti", D, r) - r
    return alpha_r, b_r, c, D, e - r


def readout_vjp(grads, r):
    """Gradients w.r.t. the original ``(alpha, b, c, D, e)`` from those w.r.t. the readout-transformed
    ones (the chain rule of ``readout_transform``; ``r`` constant)."""
    ga, gb, gc, gD, ge = grads
    return ga, gb, gc + ga[:, None] * r, gD + r[None, :, None] * gb[:, None, :], ge


def weight_decay_reduction(alpha, b, c, D, e, rho):
    """The memory-(M+1) parameters of the weight-decay reduction (module docstring, item 3), per step."""
    T, M = b.shape
    ar = alpha * rho
    bt = np.concatenate([b - ar[:, None] * e, -ar[:, None]], axis=1)
    ct = np.concatenate([c, alpha[:, None]], axis=1)
    Dt = np.zeros((T, M + 1, M + 1))
    Dt[:, :M, :M] = D - rho[:, None, None] * c[:, :, None] * e[:, None, :]
    Dt[:, :M, M] = -rho[:, None] * c
    Dt[:, M, :M] = b - ar[:, None] * e
    Dt[:, M, M] = 1.0 - ar
    et = np.concatenate([e, np.zeros((T, 1))], axis=1)
    return alpha, bt, ct, Dt, et


def weight_decay_vjp(grads, alpha, b, c, D, e, rho):
    """Gradients w.r.t. ``(alpha, b, c, D, e)`` and ``rho`` (per step) from those w.r.t. the reduced
    memory-(M+1) parameters: the chain rule of ``weight_decay_reduction``."""
    ga, gb, gc, gD, ge = grads
    M = b.shape[1]
    gb_, gbM = gb[:, :M], gb[:, M]
    gc_, gcM = gc[:, :M], gc[:, M]
    gin, gcol, grow, gMM = gD[:, :M, :M], gD[:, :M, M], gD[:, M, :M], gD[:, M, M]
    be = np.sum(gb_ * e, axis=1)              # sum_i Gb_i e_i
    re = np.sum(grow * e, axis=1)             # sum_j GD_Mj e_j
    d_alpha = ga - rho * (be + gbM + re + gMM) + gcM
    d_b = gb_ + grow
    d_c = gc_ - rho[:, None] * (np.einsum("tij,tj->ti", gin, e) + gcol)
    d_D = gin
    d_e = ge[:, :M] - (alpha * rho)[:, None] * (gb_ + grow) - rho[:, None] * np.einsum("tij,ti->tj", gin, c)
    d_rho = (-alpha * (be + gbM + re + gMM) - np.einsum("tij,ti,tj->t", gin, c, e)
             - np.sum(gcol * c, axis=1))
    return (d_alpha, d_b, d_c, d_D, d_e), d_rho


def _reduced_arrays(alpha, b, c, D, e, r, rho):
    """Readout transform (when r != 0), then the weight-decay reduction (when ``rho`` is given)."""
    if np.any(r):
        alpha, b, c, D, e = readout_transform(alpha, b, c, D, e, r)
    if rho is not None:
        alpha, b, c, D, e = weight_decay_reduction(alpha, b, c, D, e, rho)
    return alpha, b, c, D, e


class _ReducedGenerator:
    """Rows ``t`` of a schedule's reduced parameters (module-level: schedules pickle)."""

    def __init__(self, schedule: Schedule, decay: bool):
        self.schedule, self.decay = schedule, decay

    def __call__(self, t):
        s = self.schedule
        t = np.asarray(t)
        n, M = len(t), s.memory
        alpha, b, c, D, e = s._generator(t)
        arrays = (np.reshape(np.asarray(alpha, float), n), np.reshape(np.asarray(b, float), (n, M)),
                  np.reshape(np.asarray(c, float), (n, M)), np.reshape(np.asarray(D, float), (n, M, M)),
                  np.reshape(np.asarray(e, float), (n, M)))
        rho = None
        if self.decay:
            w = s.weight_decay
            rho = w[t] if isinstance(w, np.ndarray) else np.full(n, w)
        return _reduced_arrays(*arrays, s.readout, rho)


def _one_row(algo: MemoryAlgorithm):
    M = algo.memory
    return (np.array([algo.alpha]), algo.b.reshape(1, M), algo.c.reshape(1, M), algo.D.reshape(1, M, M),
            algo.e.reshape(1, M))


def _plain_algorithm(algorithm, decay: bool, keep_decay: bool = False):
    """The plain algorithm (or schedule) of readout and weight decay (reduced when ``decay``);
    ``keep_decay``: the readout transform only, the weight decay kept on the result."""
    wd = {"weight_decay": algorithm.weight_decay} if keep_decay else {}
    if isinstance(algorithm, MemoryAlgorithm):
        rho = np.array([algorithm.weight_decay]) if decay else None
        alpha, b, c, D, e = _reduced_arrays(*_one_row(algorithm), algorithm.readout, rho)
        return MemoryAlgorithm(float(alpha[0]), b[0], c[0], D[0], e[0], **wd)
    if not (decay or np.any(algorithm.readout)):   # a preconditioner only
        return Schedule(algorithm.memory, algorithm._generator, length=algorithm.length, name=algorithm.name, **wd)
    return Schedule(algorithm.memory + (1 if decay else 0), _ReducedGenerator(algorithm, decay),
                    length=algorithm.length, name=f"{algorithm.name} (affine reduction)", **wd)


def plain_problem(algorithm, spectrum, *, weight_decay: bool = False):
    """``(algorithm, spectrum)`` of the plain model (docs/math.md §3) with the same loss curve.

    The identity (the same objects) for a plain algorithm. Otherwise the readout transform and the
    weight-decay reduction of the module docstring and [`Spectrum.preconditioned`][memsgd.Spectrum.preconditioned].
    Label noise
    stays in the noise (the core carries it). ``weight_decay=True`` applies the weight-decay
    reduction even where ``rho = 0`` (memory M+1; the same losses up to rounding), for gradients
    w.r.t. the weight decay. Raises ValueError for a preconditioner together with weight decay
    (per-component decay: no plain algorithm).
    """
    decay = weight_decay or has_weight_decay(algorithm)
    if algorithm.is_plain and not decay:
        return algorithm, spectrum
    if algorithm.preconditioner and decay:
        raise ValueError("a preconditioner together with weight decay makes the decay per component "
                         "(p_k rho), which no plain algorithm carries: not supported here (loss_curve, "
                         "loss_curves and sweep carry it, simulate_sgd simulates it)")
    if algorithm.preconditioner:
        instance_of(spectrum, Spectrum, "spectrum")
        spectrum = spectrum.preconditioned(algorithm.preconditioner)
    return _plain_algorithm(algorithm, decay), spectrum


def forward_problem(algorithm, spectrum):
    """``(algorithm, spectrum, decay_scale)`` for the engine's forward path (``loss_curve``,
    ``loss_curves``, ``sweep``): ``plain_problem``, except that weight decay is not reduced but
    kept on the returned algorithm (memory M, readout transform applied, preconditioner moved into
    the spectrum): the core carries it itself, in the affine state of docs/math.md §9 (first
    moments and the centered second moment per component), at about 1.3x the plain step's cost
    instead of a memory-(M+1) step, with the same losses as the reduction up to rounding.
    ``decay_scale``: None, or with a preconditioner ``p_k = (lambda_k / lambda_max)^(-p)`` per
    eigenvalue, the factor of the weight decay on the preconditioned spectrum (the decay is
    ``p_k rho`` per component there, which the core carries and no plain algorithm does)."""
    if not has_weight_decay(algorithm):
        return (*plain_problem(algorithm, spectrum), None)
    kept = _plain_algorithm(algorithm, False, keep_decay=True)
    p = algorithm.preconditioner
    if not p:
        return kept, spectrum, None
    instance_of(spectrum, Spectrum, "spectrum")
    return kept, spectrum.preconditioned(p), spectrum.preconditioner_factors(p)


def decayed_problem(algorithm: MemoryAlgorithm, spectrum):
    """``(algorithm', spectrum', rho)`` for the stationary theory (stability, noise floor,
    asymptotics): the readout transform and the preconditioner applied (memory M), the weight decay
    ``rho`` kept apart. Per component the original dynamics is then ``S_k = S0' - (lambda_k + rho)
    g' h'^T`` with the force ``-rho w*_k g'``, noise weights still ``lambda_k`` (docs/math.md §9)."""
    rho = algorithm.weight_decay
    if algorithm.preconditioner and rho:
        plain_problem(algorithm, spectrum)       # its one-line refusal
    plain = MemoryAlgorithm(*algorithm.parameters(), readout=algorithm.readout,
                            preconditioner=algorithm.preconditioner)
    plain, spectrum = plain_problem(plain, spectrum)
    return plain, spectrum, rho


def gradient_chain(algorithm, steps: int, *, weight_decay: bool = False):
    """The chain rule back through ``plain_problem`` for [`memsgd.loss_gradient`][memsgd.loss_gradient]:
    ``chain(grads) -> (grads, d_rho)`` maps the core's per-step gradients (``steps`` rows) w.r.t. the
    plain problem's ``(alpha, b, c, D, e)`` to those w.r.t. the original parameters of every step,
    and ``d_rho`` w.r.t. the per-step weight decay (None when the weight-decay reduction is not
    used; ``weight_decay=True`` as in ``plain_problem``). The preconditioner only changes the
    spectrum: nothing to chain."""
    decay = weight_decay or has_weight_decay(algorithm)
    readout = algorithm.readout if np.any(algorithm.readout) else None
    if not decay and readout is None:
        return lambda grads: (grads, None)
    if isinstance(algorithm, MemoryAlgorithm):
        original = tuple(np.repeat(x, steps, axis=0) for x in _one_row(algorithm))
        rho = np.full(steps, algorithm.weight_decay)
    else:
        original, rho = algorithm.parameters(steps), algorithm.weight_decays(steps)
    transformed = readout_transform(*original, readout) if readout is not None else original

    def chain(grads):
        d_rho = None
        if decay:
            grads, d_rho = weight_decay_vjp(grads, *transformed, rho)
        if readout is not None:
            grads = readout_vjp(grads, readout)
        return grads, d_rho

    return chain


# -- averaged iterates ---------------------------------------------------------------------------

def _ema_arrays(alpha, b, c, D, e, gamma):
    """Memory-(M+1) parameters of the algorithm plus ``u_E = wbar - w`` (docs/math.md §9), per step."""
    T, M = b.shape
    bE = np.concatenate([b, np.zeros((T, 1))], axis=1)
    cE = np.concatenate([c, -gamma * alpha[:, None]], axis=1)
    DE = np.zeros((T, M + 1, M + 1))
    DE[:, :M, :M] = D
    DE[:, M, :M] = -gamma * b
    DE[:, M, M] = gamma
    eE = np.concatenate([e, np.zeros((T, 1))], axis=1)
    return alpha, bE, cE, DE, eE


class _EmaGenerator:
    def __init__(self, schedule: Schedule, decay: float):
        self.schedule, self.decay = schedule, decay

    def __call__(self, t):
        n, M = len(t), self.schedule.memory
        alpha, b, c, D, e = self.schedule._generator(np.asarray(t))
        arrays = (np.reshape(np.asarray(alpha, float), n), np.reshape(np.asarray(b, float), (n, M)),
                  np.reshape(np.asarray(c, float), (n, M)), np.reshape(np.asarray(D, float), (n, M, M)),
                  np.reshape(np.asarray(e, float), (n, M)))
        return _ema_arrays(*arrays, self.decay)


def ema(algorithm, decay):
    """The algorithm with its loss read at an exponential moving average of the iterates::

        wbar_0 = w_0,    wbar_{t+1} = decay * wbar_t + (1 - decay) * w_{t+1}

    (docs/math.md §9). One more auxiliary vector ``u_E = wbar - w`` evolves linearly,
    ``u_E' = decay (u_E - b^T u + alpha g)`` (``g`` the oracle's gradient, weight decay included):
    a row ``(-decay b^T, decay)`` of ``D``, ``c_E = -decay alpha``, ``b_E = e_E = 0``; the readout is
    ``r = (0, ..., 0, 1)``. Memory M+1; weight decay and preconditioner are kept.

    Args:
        algorithm: a [`MemoryAlgorithm`][memsgd.MemoryAlgorithm] or [`Schedule`][memsgd.schedules.Schedule] without a
            readout.
        decay: ``gamma`` in [0, 1) (0: no averaging).

    Example:
        >>> import memsgd
        >>> avg = memsgd.ema(memsgd.gd(0.5), 0.9)
        >>> avg.memory, avg.readout.tolist()
        (1, [1.0])
    """
    instance_of(algorithm, (MemoryAlgorithm, Schedule), "algorithm")
    gamma = bounded_scalar(decay, "decay", 0.0, 1.0, high_open=True)
    if np.any(algorithm.readout):
        raise ValueError("algorithm must not have a readout for ema (the average is of the iterates w)")
    readout = np.zeros(algorithm.memory + 1)
    readout[-1] = 1.0
    if isinstance(algorithm, MemoryAlgorithm):
        alpha, b, c, D, e = _ema_arrays(*_one_row(algorithm), gamma)
        return MemoryAlgorithm(float(alpha[0]), b[0], c[0], D[0], e[0], weight_decay=algorithm.weight_decay,
                               readout=readout, preconditioner=algorithm.preconditioner)
    return Schedule(algorithm.memory + 1, _EmaGenerator(algorithm, gamma), length=algorithm.length,
                    name=f"ema({algorithm.name}, {gamma:g})", weight_decay=algorithm.weight_decay,
                    readout=readout, preconditioner=algorithm.preconditioner)
