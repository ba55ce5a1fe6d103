"""Non-stationary algorithms: per-step parameters (docs/math.md §7).

A [`Schedule`][memsgd.schedules.Schedule] gives the matrix-form parameters ``(alpha_t, b_t, c_t, D_t, e_t)`` of step
t (0-based: step t maps state t to state t+1). Named schedules are generated from formulas
and have no end; [`Schedule.from_arrays`][memsgd.schedules.Schedule.from_arrays] wraps explicit arrays of a fixed
length.

A schedule may carry the affine model's features (docs/math.md §9): a weight decay ``rho_t``
(constant or per step), a readout ``r`` and a preconditioner ``p`` (both constant).
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import numpy as np

from ._framework_sgd import optax_sgd_form, torch_sgd_form
from ._validation import (
    float_array,
    instance_of,
    nonnegative_int,
    nonnegative_scalar,
    positive_int,
    positive_scalar,
    real_scalar,
)
from .algorithms import MemoryAlgorithm

__all__ = ["Schedule", "constant", "jacobi_heavy_ball", "am1_power_law", "schedule_free_sgd", "dana_decaying",
           "am1_form", "torch_sgd", "optax_sgd"]

# generator(t) -> (alpha (n,), b (n, M), c (n, M), D (n, M, M), e (n, M)) for an int array t
Generator = Callable[[np.ndarray], tuple]


class Schedule:
    """Per-step parameters of a memory-M algorithm.

    Args:
        memory: M.
        generator: maps an integer array of steps ``t`` to ``(alpha, b, c, D, e)`` arrays with
            a leading axis of ``len(t)``.
        length: number of steps defined (``None``: every t >= 0).
        name: shown in reprs and tables.
        weight_decay: ``rho >= 0`` of every step, or a 1-D array of per-step ``rho_t`` (at least
            ``length`` entries; it sets the length of an endless schedule). Coupled L2 as in
            [`MemoryAlgorithm`][memsgd.MemoryAlgorithm] (docs/math.md §9).
        readout: (M,) ``r``, constant: the loss is measured at ``w + r^T u``.
        preconditioner: ``p``, constant: the gradient along ``lambda`` is multiplied by
            ``(lambda / lambda_max)^(-p)``.
        lambda_max: the largest eigenvalue its step sizes were set for (``None``: not stated).
            A run on a spectrum with a larger one that diverges says so ([`memsgd.loss_curve`][memsgd.loss_curve]).

    Examples:
        A learning rate that halves every 10 steps, as a memory-0 schedule:

        >>> import numpy as np, memsgd
        >>> from memsgd.schedules import Schedule
        >>> def halving(t):
        ...     n = len(t)
        ...     return 0.5 ** (t // 10), np.zeros((n, 0)), np.zeros((n, 0)), np.zeros((n, 0, 0)), np.zeros((n, 0))
        >>> sched = Schedule(0, halving, name="halving")
        >>> sched.parameters(25)[0][[0, 10, 20]].tolist()
        [1.0, 0.5, 0.25]
        >>> memsgd.loss_curve(sched, memsgd.Spectrum([1.0], [2.0]), memsgd.Noise.none(), 2).loss.tolist()
        [1.0, 0.0, 0.0]
    """

    def __init__(self, memory: int, generator: Generator, length: Optional[int] = None, name: str = "schedule",
                 *, weight_decay=0.0, readout=None, preconditioner=0.0, lambda_max: Optional[float] = None):
        self._memory = nonnegative_int(memory, "memory")
        if not callable(generator):
            raise TypeError(f"generator must be callable (t -> parameter arrays), got {type(generator).__name__}")
        self._generator = generator
        self.length = None if length is None else nonnegative_int(length, "length")
        self.name = name
        self.lambda_max = None if lambda_max is None else positive_scalar(lambda_max, "lambda_max")
        if isinstance(weight_decay, (list, tuple, np.ndarray)) and np.ndim(weight_decay) > 0:
            rho = float_array(weight_decay, "weight_decay", ndim=1)
            if np.any(rho < 0):
                raise ValueError("weight_decay must be >= 0 at every step")
            if self.length is None:
                self.length = rho.size
            elif rho.size < self.length:
                raise ValueError(f"weight_decay has {rho.size} per-step entries, fewer than the schedule's "
                                 f"length {self.length}")
            rho.setflags(write=False)
        else:
            rho = nonnegative_scalar(weight_decay, "weight_decay")
        self._weight_decay = rho
        r = np.zeros(self._memory) if readout is None else float_array(readout, "readout")
        if r.shape != (self._memory,):
            raise ValueError(f"readout must have shape ({self._memory},) (one weight per auxiliary vector, "
                             f"memory M = {self._memory}), got {r.shape}")
        r.setflags(write=False)
        self._readout = r
        self._preconditioner = real_scalar(preconditioner, "preconditioner")

    @classmethod
    def piecewise(cls, pieces, name: str = "piecewise") -> Schedule:
        """Stationary pieces run one after another: ``[(algorithm, steps), ..., (algorithm, None)]``.

        Piece j runs its [`MemoryAlgorithm`][memsgd.MemoryAlgorithm] for ``steps_j`` steps (t in
        ``[s_j, s_j + steps_j)``, ``s_j`` the sum of the earlier pieces' steps), the last one for ever.
        The state (parameters and auxiliary vectors) carries over unchanged at each switch. Rule: all
        pieces share the memory M, the weight decay, the readout and the preconditioner (they change
        the meaning of the state or of the loss, not only the step).

        [`memsgd.loss_at`][memsgd.loss_at] evaluates it exactly at any step up to 10^12, each piece by the
        generating-function route started from the previous piece's per-component state
        (docs/long-horizons.md, "Piecewise-stationary schedules"); [`memsgd.loss_curve`][memsgd.loss_curve] runs it
        step by step like any Schedule.

        Example:
            >>> import memsgd as ms
            >>> s = ms.Schedule.piecewise([(ms.heavy_ball(0.5, 0.9), 1000), (ms.heavy_ball(0.05, 0.9), None)])
            >>> s.switches, s.at(999).alpha, s.at(1000).alpha
            ((1000,), 0.5, 0.05)
        """
        if not isinstance(pieces, (list, tuple)):
            raise TypeError(f"pieces must be a list of (algorithm, steps) pairs, got {type(pieces).__name__}")
        if len(pieces) == 0:
            raise ValueError("pieces must hold at least one (algorithm, None) pair, got an empty list")
        algos, lengths = [], []
        for i, piece in enumerate(pieces):
            if not isinstance(piece, (list, tuple)) or len(piece) != 2:
                raise TypeError(f"pieces[{i}] must be an (algorithm, steps) pair, got {piece!r}")
            algo, steps = piece
            instance_of(algo, MemoryAlgorithm, f"pieces[{i}] algorithm")
            last = i == len(pieces) - 1
            if last and steps is not None:
                raise ValueError(f"pieces[{i}] steps must be None (the last piece runs for ever), got {steps!r}")
            if not last:
                if steps is None:
                    raise ValueError(f"pieces[{i}] steps must be a positive integer (only the last piece "
                                     f"may have None), got None")
                steps = positive_int(steps, f"pieces[{i}] steps")
            first = algos[0] if algos else algo
            if algo.memory != first.memory:
                raise ValueError(f"pieces[{i}] algorithm must have the memory M = {first.memory} of pieces[0] "
                                 f"(the state carries over), got M = {algo.memory}")
            for what in ("weight_decay", "readout", "preconditioner"):
                if not np.array_equal(getattr(algo, what), getattr(first, what)):
                    raise ValueError(f"pieces[{i}] algorithm must have the {what} of pieces[0] (all pieces "
                                     f"share it), got {getattr(algo, what)!r} against {getattr(first, what)!r}")
            algos.append(algo)
            lengths.append(steps)
        starts = np.concatenate([[0], np.cumsum(np.array(lengths[:-1], dtype=np.int64))]).astype(np.int64)
        out = cls(algos[0].memory, _PiecewiseGenerator(algos, starts), name=name,
                  weight_decay=algos[0].weight_decay, readout=algos[0].readout,
                  preconditioner=algos[0].preconditioner)
        out._pieces = tuple(zip(algos, lengths))
        out._starts = starts
        return out

    @property
    def pieces(self) -> Optional[tuple]:
        """``((algorithm, steps), ..., (algorithm, None))`` of a ``piecewise`` schedule, else None."""
        return self.__dict__.get("_pieces")

    @property
    def switches(self) -> tuple:
        """The first steps of pieces 1, 2, ... of a ``piecewise`` schedule (empty otherwise)."""
        starts = self.__dict__.get("_starts")
        return () if starts is None else tuple(int(s) for s in starts[1:])

    def __setstate__(self, state):
        # pickled before the affine model; pickle and deepcopy rebuild arrays writeable: read-only again
        self.__dict__.update(state)
        self.__dict__.setdefault("_weight_decay", 0.0)
        self.__dict__.setdefault("_readout", np.zeros(self._memory))
        self.__dict__.setdefault("_preconditioner", 0.0)
        self.__dict__.setdefault("lambda_max", None)
        for arr in (self._weight_decay, self._readout):
            if isinstance(arr, np.ndarray):
                arr.setflags(write=False)

    @property
    def readout(self) -> np.ndarray:
        """(M,) readout ``r`` (zeros: the loss at ``w``)."""
        return self._readout

    @property
    def preconditioner(self) -> float:
        """Preconditioner exponent ``p`` (0: none)."""
        return self._preconditioner

    @property
    def weight_decay(self):
        """The weight decay: a number (every step) or the per-step array ``rho_t``."""
        return self._weight_decay

    def weight_decays(self, steps) -> np.ndarray:
        """Per-step weight decay ``rho_t`` for t = 0..steps-1, shape (steps,)."""
        steps = nonnegative_int(steps, "steps")
        if isinstance(self._weight_decay, np.ndarray):
            if steps > self._weight_decay.size:
                raise ValueError(f"steps must be <= the {self._weight_decay.size} per-step weight decays, got {steps}")
            return self._weight_decay[:steps].copy()
        return np.full(steps, self._weight_decay)

    @property
    def is_plain(self) -> bool:
        """True without weight decay, readout and preconditioner (the model of docs/math.md §2-§8)."""
        return (not np.any(self._weight_decay)) and self._preconditioner == 0.0 and not np.any(self._readout)

    @property
    def memory(self) -> int:
        return self._memory

    def parameters(self, steps):
        """Arrays ``(alpha (T,), b (T, M), c (T, M), D (T, M, M), e (T, M))`` for steps 0..T-1."""
        steps = nonnegative_int(steps, "steps")
        if self.length is not None and steps > self.length:
            raise ValueError(
                f"steps must be <= the schedule's length {self.length} (schedule too short), got {steps}")
        t = np.arange(steps)
        alpha, b, c, D, e = self._generator(t)
        M = self._memory
        try:
            out = (np.ascontiguousarray(alpha, dtype=np.float64).reshape(steps),
                   np.ascontiguousarray(b, dtype=np.float64).reshape(steps, M),
                   np.ascontiguousarray(c, dtype=np.float64).reshape(steps, M),
                   np.ascontiguousarray(D, dtype=np.float64).reshape(steps, M, M),
                   np.ascontiguousarray(e, dtype=np.float64).reshape(steps, M))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"schedule generator must return arrays alpha ({steps},), b, c, e ({steps}, {M}) "
                             f"and D ({steps}, {M}, {M}) for memory M = {M} ({exc})") from None
        for name, arr in zip(("alpha", "b", "c", "D", "e"), out):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"schedule parameter {name} is not finite at some step")
        return out

    def at(self, t) -> MemoryAlgorithm:
        """The stationary algorithm of step t."""
        t = nonnegative_int(t, "t")
        if self.length is not None and t >= self.length:
            raise ValueError(f"t must be < the schedule's length {self.length}, got {t}")
        alpha, b, c, D, e = self._generator(np.array([t]))
        M = self._memory
        rho = self._weight_decay[t] if isinstance(self._weight_decay, np.ndarray) else self._weight_decay
        return MemoryAlgorithm(float(np.reshape(alpha, -1)[0]), np.reshape(b, (1, M))[0],
                               np.reshape(c, (1, M))[0], np.reshape(D, (1, M, M))[0],
                               np.reshape(e, (1, M))[0], weight_decay=float(rho), readout=self._readout,
                               preconditioner=self._preconditioner)

    @classmethod
    def from_arrays(cls, alpha, b, c, D, e=None, name: str = "from_arrays", *, weight_decay=None, readout=None,
                    preconditioner=0.0) -> Schedule:
        """Explicit per-step arrays with a leading time axis: alpha (T,), b, c, e (T, M), D (T, M, M);
        ``weight_decay``: None (none), a number (every step) or an array (T,) of per-step ``rho_t``;
        ``readout`` (M,) and ``preconditioner`` as in [`Schedule`][memsgd.schedules.Schedule]."""
        alpha = float_array(alpha, "alpha", ndim=1)
        T = alpha.size
        b = float_array(b, "b")
        if b.ndim != 2 or b.shape[0] != T:
            raise ValueError(f"b must have shape ({T}, M) (time axis first), got {b.shape}")
        M = b.shape[1]
        c = float_array(c, "c")
        if c.shape != (T, M):
            raise ValueError(f"c must have shape ({T}, {M}), got {c.shape}")
        D = float_array(D, "D")
        if D.shape != (T, M, M):
            raise ValueError(f"D must have shape ({T}, {M}, {M}), got {D.shape}")
        e = np.zeros((T, M)) if e is None else float_array(e, "e")
        if e.shape != (T, M):
            raise ValueError(f"e must have shape ({T}, {M}), got {e.shape}")
        if weight_decay is not None and np.ndim(weight_decay) > 0:
            weight_decay = float_array(weight_decay, "weight_decay", ndim=1)
            if weight_decay.size != T:
                raise ValueError(f"weight_decay must have shape ({T},) (one per step), got {weight_decay.shape}")
        return cls(M, _ArrayGenerator(alpha, b, c, D, e), length=T, name=name,
                   weight_decay=0.0 if weight_decay is None else weight_decay, readout=readout,
                   preconditioner=preconditioner)

    def __repr__(self) -> str:
        extra = ""
        if np.any(self._weight_decay):
            rho = self._weight_decay
            extra += (f", weight_decay={rho!r}" if not isinstance(rho, np.ndarray)
                      else f", per-step weight_decay (max={rho.max():g})")
        if np.any(self._readout):
            extra += f", readout={self._readout.tolist()}"
        if self._preconditioner:
            extra += f", preconditioner={self._preconditioner!r}"
        return f"Schedule({self.name}, memory={self._memory}, length={self.length}{extra})"


def constant(algo: MemoryAlgorithm) -> Schedule:
    """The stationary ``algo`` as a schedule (with its weight decay, readout and preconditioner).

    Examples:
        >>> import numpy as np, memsgd
        >>> spec, noise = memsgd.Spectrum.power_law(2.0, 1.0, size=30), memsgd.Noise.gaussian(10)
        >>> algo = memsgd.heavy_ball(0.1, 0.9)
        >>> a = memsgd.loss_curve(memsgd.schedules.constant(algo), spec, noise, 100).loss
        >>> bool(np.array_equal(a, memsgd.loss_curve(algo, spec, noise, 100).loss))
        True
    """
    instance_of(algo, MemoryAlgorithm, "algo")
    return Schedule(algo.memory, functools.partial(_constant_generator, algo), name="constant",
                    weight_decay=algo.weight_decay, readout=algo.readout, preconditioner=algo.preconditioner)


# Generators are module-level functions bound with functools.partial (or small classes), never
# closures, so that schedules pickle (process pools, Dask) and deep-copy.

class _ArrayGenerator:
    """Rows ``t`` of explicit per-step arrays."""

    def __init__(self, alpha, b, c, D, e):
        self.arrays = (alpha, b, c, D, e)

    def __call__(self, t):
        return tuple(a[t] for a in self.arrays)


class _PiecewiseGenerator:
    """The parameters of the piece each step t falls in (``starts``: first step of each piece)."""

    def __init__(self, algos, starts):
        self.starts = starts
        self.arrays = tuple(np.stack([getattr(a, k) for a in algos]) for k in ("alpha", "b", "c", "D", "e"))

    def __call__(self, t):
        j = np.searchsorted(self.starts, np.asarray(t), side="right") - 1
        return tuple(a[j] for a in self.arrays)


def _scale_hint(schedule, spectrum) -> Optional[str]:
    """Why a run of ``schedule`` on ``spectrum`` may have diverged, when its step sizes were set for
    a smaller largest eigenvalue than the spectrum's (``Schedule.lambda_max``); else None."""
    lmax = getattr(schedule, "lambda_max", None)
    if lmax is None or not spectrum.lambda_max > lmax * (1 + 1e-12):
        return None
    return (f"{schedule.name} sets its step sizes for lambda_max = {lmax:g}, but the spectrum's largest "
            f"eigenvalue is {spectrum.lambda_max:.4g}: build it with lambda_max=spectrum.lambda_max")


def _constant_generator(algo, t):
    n = len(t)
    return (np.full(n, algo.alpha), np.tile(algo.b, (n, 1)), np.tile(algo.c, (n, 1)),
            np.tile(algo.D, (n, 1, 1)), np.tile(algo.e, (n, 1)))


def _heavy_ball_arrays(lr, beta):
    n = len(lr)
    return lr, beta.reshape(n, 1), lr.reshape(n, 1), beta.reshape(n, 1, 1), np.zeros((n, 1))


def _am1_arrays(lr, beta, kick):
    n = len(lr)
    return lr + kick, beta.reshape(n, 1), lr.reshape(n, 1), beta.reshape(n, 1, 1), np.zeros((n, 1))


def am1_form(alpha, b, c, D, e, *, name: str = "schedule", first_step: int = 0):
    """``(lr, momentum, kick)``, each (n,), of n steps' parameters in AM1 form: the one reader of
    that form (the AM1 optimizer, the free memory-1 family, the schedule-design experiment).

    AM1 (docs/math.md §2, presets) is the memory-1 matrix form ``alpha = lr + kick``,
    ``b = D = momentum``, ``c = lr``, ``e = 0``; ``lr = c``, ``momentum = D``, ``kick = alpha - c``.
    The arguments are per-step arrays as [`Schedule.parameters`][memsgd.schedules.Schedule.parameters] returns them
    (``alpha`` (n,),
    ``b``, ``c``, ``e`` (n, 1), ``D`` (n, 1, 1); a MemoryAlgorithm's own shapes are accepted too).
    ValueError (naming ``name`` and step ``first_step + i``) for memory other than 1, or a step with
    ``b != D`` (relative 1e-12) or ``e != 0``.

    Example:
        >>> import memsgd
        >>> lr, momentum, kick = memsgd.schedules.am1_form(*memsgd.schedules.am1_power_law(0.5, 0.3).parameters(3))
        >>> bool(abs(kick[2] - 0.5) < 1e-15)
        True
    """
    alpha = np.asarray(alpha, dtype=np.float64).reshape(-1)
    n = alpha.size
    memory = np.asarray(b).reshape(n, -1).shape[1]
    if memory != 1:
        raise ValueError(f"{name} must have memory 1 (AM1 type), got memory {memory}")
    b, c, D, e = (np.asarray(v, dtype=np.float64).reshape(n) for v in (b, c, D, e))
    bad = ~np.isclose(b, D, rtol=1e-12, atol=0) | (e != 0)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(f"{name} is not of AM1 type at step {first_step + i}: AM1 form needs b == D and e == 0, "
                         f"got b={float(b[i])!r}, D={float(D[i])!r}, e={float(e[i])!r}")
    return c, D, alpha - c


def jacobi_heavy_ball(nu_b, lambda_max=1.0, weight_decay=0.0) -> Schedule:
    """Jacobi heavy ball (Brakhage's nu-method) for spectra in (0, lambda_max] (docs/math.md §7).

    Step ``k = t + 1`` is heavy ball with ``lr = omega_k / lambda_max``, ``momentum = mu_k``:
    ``mu_1 = 0``, ``omega_1 = (4 nu + 2)/(4 nu + 1)``, and for k > 1::

        mu_k    = (k-1)(2k-3)(2k+2nu-1) / [(k+2nu-1)(2k+4nu-1)(2k+2nu-3)]
        omega_k = 4(2k+2nu-1)(k+nu-1) / [(k+2nu-1)(2k+4nu-1)]

    Its residual polynomials ``p_k`` are orthogonal on [0, lambda_max] for the weight
    ``lambda^(2 nu_b - 1/2) (lambda_max - lambda)^(-1/2)`` (tested). Noiseless it reaches
    ``L_t ~ t^(-2 zeta)`` once ``nu_b >= zeta`` (measured on power laws, exact engine, T = 1e4:
    fitted / (2 zeta) = 1.000 for nu_b = zeta and 2 zeta, but 0.90-0.96 for nu_b = zeta / 2, which
    saturates); with mini-batch noise it diverges within ~50 steps (paper, Fig. 1).

    Examples:
        >>> import memsgd
        >>> sched = memsgd.schedules.jacobi_heavy_ball(0.5)
        >>> sched.at(0).b.tolist(), round(sched.at(0).alpha, 12)        # mu_1 = 0, omega_1 = (4nu+2)/(4nu+1) = 4/3
        ([0.0], 1.333333333333)
    """
    nu = positive_scalar(nu_b, "nu_b")
    lmax = positive_scalar(lambda_max, "lambda_max")

    return Schedule(1, functools.partial(_jacobi_generator, nu, lmax), name=f"jacobi_heavy_ball(nu_b={nu:g})",
                    weight_decay=nonnegative_scalar(weight_decay, "weight_decay"), lambda_max=lmax)


def _jacobi_generator(nu, lmax, t):
    k = t.astype(np.float64) + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):  # k = 1 may hit 0/0; replaced below
        mu, omega = _jacobi_coefficients(k, nu)
    first = k == 1
    mu = np.where(first, 0.0, mu)
    omega = np.where(first, (4 * nu + 2) / (4 * nu + 1), omega)
    return _heavy_ball_arrays(omega / lmax, mu)


def _jacobi_coefficients(k, nu):
    """(mu_k, omega_k) of Brakhage's nu-method for k > 1 (docs/math.md §7)."""
    mu = (k - 1) * (2 * k - 3) * (2 * k + 2 * nu - 1) / (
        (k + 2 * nu - 1) * (2 * k + 4 * nu - 1) * (2 * k + 2 * nu - 3))
    omega = 4 * (2 * k + 2 * nu - 1) * (k + nu - 1) / ((k + 2 * nu - 1) * (2 * k + 4 * nu - 1))
    return mu, omega


def am1_power_law(kick, delta, gamma=1.0, t0=10.0, weight_decay=0.0, *, lambda_max=1.0) -> Schedule:
    """AM1 with power-law momentum (docs/math.md §7): ``s = 1 + t/t0``::

        1 - beta_t = s^-gamma,   alpha_eff,t = (kick / lambda_max) s^delta,
        lr_t = (alpha_eff,t - kick / lambda_max)(1 - beta_t)

    kick constant. ``kick`` is in units of ``1 / lambda_max``, the largest eigenvalue of the
    problem (as Jacobi heavy ball's step sizes): the kick step alone is stable for ``kick < 2``,
    and the schedule diverges early once ``kick`` is near 2 (with mini-batch noise, sooner). Pass the
    problem's ``lambda_max`` (``spectrum.lambda_max``; for a network, an estimate of the top
    Hessian eigenvalue: docs/optimizers.md) so that the same ``kick`` suits every problem; the
    default 1 keeps ``kick`` in the problem's own units. Predicted signal-phase rate
    ``L_t = O(t^(-zeta (1 + delta)))`` for ``delta < 1 - 1/nu`` (Theorem 7, P.27).

    >>> import memsgd
    >>> problem = memsgd.Spectrum.power_law(2.0, 1.0, scale=2.9)          # lambda_max = 2.9
    >>> am1 = memsgd.schedules.am1_power_law(kick=1.0, delta=0.45, lambda_max=problem.lambda_max)
    >>> memsgd.loss_curve(am1, problem, memsgd.Noise.gaussian(10), 1000).diverged_at is None
    True

    Examples:
        >>> import math, memsgd
        >>> sched = memsgd.schedules.am1_power_law(kick=1.0, delta=0.3)
        >>> all(math.isclose(sched.at(t).alpha_eff, (1 + t / 10) ** 0.3) for t in (0, 10, 30))   # kick s^delta
        True
    """
    eta = positive_scalar(kick, "kick")
    delta = real_scalar(delta, "delta")
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    gamma = positive_scalar(gamma, "gamma")
    t0 = positive_scalar(t0, "t0")
    lmax = positive_scalar(lambda_max, "lambda_max")
    scale = "" if lmax == 1.0 else f", lambda_max={lmax:g}"
    return Schedule(1, functools.partial(_am1_power_law_generator, eta / lmax, delta, gamma, t0),
                    name=f"am1_power_law(kick={eta:g}, delta={delta:g}, gamma={gamma:g}, t0={t0:g}{scale})",
                    weight_decay=nonnegative_scalar(weight_decay, "weight_decay"), lambda_max=lmax)


def _am1_power_law_generator(eta, delta, gamma, t0, t):
    s = 1.0 + t.astype(np.float64) / t0
    one_minus_beta = s ** (-gamma)
    lr = (eta * s ** delta - eta) * one_minus_beta
    return _am1_arrays(lr, 1.0 - one_minus_beta, eta)


def schedule_free_sgd(lr, beta, weight_decay=0.0) -> Schedule:
    """Schedule-free SGD (Defazio et al. 2024) as a memory-1 schedule (docs/math.md §2, presets)::

        y_t = (1 - beta) z_t + beta x_t,   z_{t+1} = z_t - lr grad(y_t),
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1},   c_{t+1} = 1/(t+2)

    with ``w = x`` and ``u = z - x``: alpha = c lr, b = c, c = (1 - c) lr, D = 1 - c, e = 1 - beta.

    Examples:
        >>> import memsgd
        >>> sched = memsgd.schedules.schedule_free_sgd(1.0, 0.9)
        >>> sched.memory, sched.at(0).alpha                  # alpha_0 = c_1 lr with c_1 = 1/2
        (1, 0.5)
    """
    gamma = positive_scalar(lr, "lr")
    beta = real_scalar(beta, "beta")

    return Schedule(1, functools.partial(_schedule_free_generator, gamma, beta),
                    name=f"schedule_free_sgd(lr={gamma:g}, beta={beta:g})",
                    weight_decay=nonnegative_scalar(weight_decay, "weight_decay"))


def _schedule_free_generator(gamma, beta, t):
    n = len(t)
    c = 1.0 / (t.astype(np.float64) + 2.0)
    return (c * gamma, c.reshape(n, 1), ((1 - c) * gamma).reshape(n, 1), (1 - c).reshape(n, 1, 1),
            np.full((n, 1), 1.0 - beta))


def dana_decaying(g2, g3, delta, power, g1=1.0, weight_decay=0.0) -> Schedule:
    """DANA with decaying momentum (Paquette et al., "dimension-adapted Nesterov acceleration"),
    the update rule of the authors' code (``dana_optimizer`` with power-law schedules)::

        y_{t+1} = (1 - Delta_t) y_t + g1 grad_t,        w_{t+1} = w_t - (g2 grad_t + g3_t y_{t+1}),
        Delta_t = (1 + t/delta)^-1,                      g3_t = g3 (1 + t)^-power,

    step t 0-based, ``y_0 = 0``. The authors take ``g1 = 1``, ``g2 ~ 0.5/tr H``, ``g3 ~ 1/tr H``,
    ``power = 1/(2 alpha)`` and ``delta = 4 + (alpha + beta)/alpha`` with their spectral exponents
    (eigenvalues ``j^(-2 alpha)``: in this library's notation ``power = 1/nu``).

    Matrix form (docs/math.md §2, presets table, with ``u = y``): ``alpha_t = g2 + g1 g3_t``,
    ``b_t = -g3_t (1 - Delta_t)``, ``c_t = -g1``, ``D_t = 1 - Delta_t``, ``e = 0``. With
    ``v = y / g1`` it is AM1 (``v+ = beta v + g``, ``w+ = w - lr v+ - kick g``) with
    ``beta_t = 1 - Delta_t``, ``lr_t = g1 g3_t``, ``kick = g2``: the AM1 momentum law with
    ``gamma = 1``, ``t0 = delta``, and ``alpha_eff,t = g2 + g1 g3_t / Delta_t ~ t^(1 - power)``
    (docs/math.md §2.3, §7).

    Examples:
        >>> import memsgd
        >>> sched = memsgd.schedules.dana_decaying(g2=0.5, g3=0.5, delta=5.0, power=0.5)
        >>> sched.at(0).alpha, sched.at(0).D.tolist()         # alpha_0 = g2 + g1 g3, D_0 = 1 - Delta_0 = 0
        (1.0, [[0.0]])
    """
    g1 = positive_scalar(g1, "g1")
    g2 = real_scalar(g2, "g2")
    g3 = real_scalar(g3, "g3")
    delta = positive_scalar(delta, "delta")
    power = real_scalar(power, "power")
    return Schedule(1, functools.partial(_dana_decaying_generator, g1, g2, g3, delta, power),
                    name=f"dana_decaying(g2={g2:g}, g3={g3:g}, delta={delta:g}, power={power:g}, g1={g1:g})",
                    weight_decay=nonnegative_scalar(weight_decay, "weight_decay"))


def _dana_decaying_generator(g1, g2, g3, delta, power, t):
    n = len(t)
    tf = np.asarray(t, dtype=np.float64)
    Delta = 1.0 / (1.0 + tf / delta)
    g3_t = g3 * (1.0 + tf) ** (-power)
    return (g2 + g1 * g3_t, (-g3_t * (1.0 - Delta)).reshape(n, 1), np.full((n, 1), -g1),
            (1.0 - Delta).reshape(n, 1, 1), np.zeros((n, 1)))


# -- practitioners' schedules: torch.optim.SGD and optax.sgd as they run -----------------------------

def torch_sgd(lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, *, steps=None) -> Schedule:
    r"""The schedule that ``torch.optim.SGD(lr, momentum, dampening, nesterov, weight_decay)`` runs,
    exactly: the loss curve of a quadratic trained by torch is that of this schedule.

    torch's step t (``g_t`` = gradient at the parameters ``w_t`` plus ``weight_decay * w_t``)::

        buf_t = g_t                                   (first step with momentum != 0: a copy of g)
        buf_t = mu_t buf_{t-1} + (1 - dampening) g_t  (later steps)
        w_{t+1} = w_t - lr_t buf_t                    (nesterov: w_t - lr_t (g_t + mu_t buf_t))

    With the memory ``u = -buf`` and ``k_t`` = 1 on the buffer's first step, ``1 - dampening``
    after it, ``u_{t+1} = mu_t u_t - k_t g_t`` and

    - heavy ball: ``w_{t+1} = w_t + lr_t mu_t u_t - lr_t k_t g_t``, i.e. ``alpha_t = lr_t k_t``,
      ``b_t = lr_t mu_t``, ``c_t = k_t``, ``D_t = mu_t``;
    - nesterov: ``w_{t+1} = w_t - lr_t g_t + lr_t mu_t u_{t+1}
      = w_t + lr_t mu_t^2 u_t - lr_t (1 + mu_t k_t) g_t``, i.e. ``alpha_t = lr_t (1 + mu_t k_t)``,
      ``b_t = lr_t mu_t^2``. torch's parameters are the look-ahead point of classical Nesterov
      (``w + mu u``), so its gradient is taken at the stored parameters: ``e = 0``, and the loss of
      torch's parameters is what this schedule's loss curve gives;
    - a step with ``mu_t = 0`` leaves the buffer alone (``D_t = 1``, ``c_t = 0``, ``b_t = 0``,
      ``alpha_t = lr_t``); momentum 0 throughout is memory 0, ``alpha_t = lr_t``.

    ``u = -buf`` is not weighted by the learning rate, so a new ``lr_t`` scales the whole
    accumulated buffer, as torch's LR schedulers do. Weight decay is the coupled L2 of the engine
    (docs/math.md §9), at the gradient point = the parameters. memsgd's initial state is
    ``w_0 = 0`` with ``u_0 = 0`` (torch's empty buffer).

    Args:
        lr: ``lr_t >= 0``: a number, a 1-D array over steps, a callable ``step -> lr`` (0-based; e.g.
            a [`memsgd.lr_shapes`][memsgd.lr_shapes] shape), or a ``torch.optim.lr_scheduler`` scheduler: the
            values its optimizer's first param group gets, stepped once per optimizer step, read
            from a copy ([`memsgd.lr_shapes.from_torch_scheduler`][memsgd.lr_shapes.from_torch_scheduler]). A
            scheduler must drive
            the torch.optim.SGD described here (its momentum per step, dampening, nesterov and
            weight decay are checked).
        momentum: ``mu_t >= 0``, the same kinds (a momentum schedule, e.g. OneCycleLR's cycled one:
            ``lr_shapes.from_torch_scheduler(scheduler, steps, key="momentum")``).
        dampening: in [0, 1].
        nesterov: torch's Nesterov (needs momentum > 0 at step 0 and dampening 0, as torch).
        weight_decay: ``>= 0``, a number or per-step values.
        steps: the number of steps to tabulate; required when a value is a callable or a
            scheduler, and equal to the length of any array. With numbers only, the schedule has no
            end.

    Example:
        >>> import memsgd
        >>> from memsgd import lr_shapes, schedules
        >>> sched = schedules.torch_sgd(lr_shapes.cosine(0.1, 100), momentum=0.9, steps=100)
        >>> alpha, b, c, D, e = sched.parameters(2)
        >>> alpha.tolist(), c[:, 0].tolist()                  # k = 1 at the buffer's first step
        ([0.1, 0.09997532801828658], [1.0, 1.0])
        >>> curve = memsgd.loss_curve(sched, memsgd.Spectrum.power_law(1.5, 1.0, size=100), memsgd.Noise.none(), 100)
    """
    memory, generator, length, rho, name = torch_sgd_form(lr, momentum, dampening, nesterov, weight_decay, steps)
    return Schedule(memory, generator, length=length, name=name, weight_decay=rho)


def optax_sgd(learning_rate, momentum=None, nesterov=False, steps=None, *, weight_decay=0.0) -> Schedule:
    r"""The schedule that ``optax.sgd(learning_rate, momentum, nesterov)`` runs, exactly (with
    ``weight_decay``: ``optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(...))``).

    optax's step t (count ``t`` from 0, kept by ``scale_by_learning_rate``)::

        trace_{t+1} = mu trace_t + g_t                (optax.trace, trace_0 = 0)
        w_{t+1} = w_t - lr(t) trace_{t+1}             (nesterov: w_t - lr(t) (g_t + mu trace_{t+1}))

    With ``u = -trace``: ``u_{t+1} = mu u_t - g_t`` and ``(alpha, b, c, D) = (lr, lr mu, 1, mu)``,
    nesterov ``(lr (1 + mu), lr mu^2, 1, mu)``, ``e = 0`` (optax's nesterov, like torch's, takes
    the gradient at the stored parameters). ``momentum=None``: no trace, memory 0,
    ``alpha_t = lr(t)`` (optax then ignores ``nesterov``). This is ``torch_sgd`` with
    ``dampening = 0`` except that a step with ``mu_t = 0`` replaces the trace by ``g``.

    Args:
        learning_rate: a number, a 1-D array over steps, or a schedule ``count -> lr`` (an optax
            schedule or a [`memsgd.lr_shapes`][memsgd.lr_shapes] shape), evaluated as optax evaluates it: on int32
            counts ``0 .. steps-1`` in JAX
            ([`memsgd.lr_shapes.from_optax_schedule`][memsgd.lr_shapes.from_optax_schedule]; JAX's
            precision, float32 unless ``jax_enable_x64``). Values must be finite and >= 0.
        momentum: ``None`` (no momentum), a number, or per-step values / a schedule of the count
            (what ``optax.inject_hyperparams(optax.sgd)(momentum=schedule)`` runs).
        nesterov: optax's Nesterov.
        steps: the number of steps to tabulate; required for a schedule, equal to any array's
            length. With numbers only, the schedule has no end.
        weight_decay: ``>= 0``: ``optax.add_decayed_weights`` before the update (coupled L2,
            docs/math.md §9).

    optax multiplies the updates by ``lr`` cast to the parameters' dtype: float64 parameters follow
    this schedule to rounding; float32 ones see float32 learning rates.

    Example:
        >>> from memsgd import schedules
        >>> sched = schedules.optax_sgd(0.1, momentum=0.9, nesterov=True)
        >>> [round(v, 12) for v in sched.parameters(1)[0].tolist()]   # alpha = lr (1 + mu)
        [0.19]
    """
    memory, generator, length, name = optax_sgd_form(learning_rate, momentum, nesterov, steps)
    rho = nonnegative_scalar(weight_decay, "weight_decay")
    return Schedule(memory, generator, length=length, name=name, weight_decay=rho)
