r"""The noisy quadratic model of Zhang et al. (2019) (`memsgd reproduce nqm`; docs/noise-floors.md).

"Which Algorithmic Choices Matter at Which Batch Sizes? Insights From a Noisy Quadratic Model"
(NeurIPS 2019; code: gd-zhang/noisy-quadratic-model, ``nqm.ipynb``). The model: minimise
``1/2 sum_i h_i x_i^2`` with ``h_i = 1/i``, ``i = 1..K`` (K = 10^4), from ``x_i(0)^2 = 1``, with
gradients whose noise has covariance ``H / B``. In memsgd terms that is

    Spectrum(h, ones(K))  with  Noise(B, tau1=0, tau2=0, label_noise=1):

label noise of variance ``sigma2 = 1`` adds ``sigma2 H / B`` to the gradient covariance
(docs/math.md §9) and ``tau1 = tau2 = 0`` drops the multiplicative (SE) part, which the NQM does not
have. ``LossCurve.loss`` is then the NQM loss (the excess risk; the label noise's own ``sigma2/2``
is not in it). The methods: SGD, heavy ball (``v' = beta v - lr g``, ``x' = x + v'``, the
notebook's momentum), an exponential moving average of SGD's iterates ([`memsgd.ema`][memsgd.ema],
``xbar_0 = x_0``), each with the diagonal preconditioner ``h_i^(-p)`` (``preconditioner=p``;
``h_max = 1``).

Steps to target: the first ``t`` with ``L_t <= target`` (the notebook reports that minus one), for
the best learning rate (and momentum / EMA decay) at each batch size. The search rests on an
identity: ``min_theta T(theta) = min{t : min_theta L_t(theta) <= target}``. Minimising the smooth
``L_t(theta)`` at a horizon ``t`` (scipy: bounded Brent for SGD, Nelder-Mead for the two-parameter
methods) either reaches the target -- the minimiser then hits it at ``t' <= t`` -- or it does not,
which certifies ``T* > t`` (up to the inner minimiser's tolerance); a bracket of the two, narrowed
by the secant of ``log min_theta L_t`` in ``log t``, ends at ``rtol`` relative width
(``_Search``). Starts come from the previous batch size, learning rate doubled.

Critical batch size (``critical_batch_size``): where the samples ``T(B) B`` reach
``critical_factor`` (2) times those at the smallest batch size: the end of perfect scaling.

``workers`` > 1 runs the curves in that many *spawned* processes, so a script that calls
``run`` with it needs the ``if __name__ == "__main__":`` guard.

Every loss is memsgd's: [`memsgd.loss_at`][memsgd.loss_at] (cost independent of t) where it takes the
problem ([`memsgd.supports_loss_at`][memsgd.supports_loss_at]), the exact recursion
([`memsgd.loss_curve`][memsgd.loss_curve]) otherwise -- one switch, ``_losses``.

The notebook discretises the 10^4 eigenvalues into 100 geometric bins (each ``h_i`` rounded down to
its bin's edge, the counts as weights); ``bins=100`` does the same (``bins=None``: all K nodes).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from .._progress import Tracker
from .._validation import positive_int, positive_ints, real_scalar
from . import common

__all__ = ["NQMConfig", "small_config", "run", "nqm_spectrum", "nqm_algorithm", "nqm_noise",
           "steps_to_target", "critical_batch_size", "METHODS"]

METHODS = ("sgd", "momentum", "ema")
LABELS = {"sgd": "SGD", "momentum": "heavy ball", "ema": "SGD + EMA"}
COLORS = {0.0: "tab:red", 0.25: "tab:green", 0.5: "tab:blue", 0.75: "tab:cyan"}
STYLES = {"sgd": "--", "momentum": "-", "ema": ":"}


@dataclass
class NQMConfig:
    """Settings of ``memsgd reproduce nqm`` (the defaults are the paper's study).

    Examples:
        >>> from memsgd.experiments.nqm import NQMConfig
        >>> NQMConfig(batch_sizes=(4, 64)).validate().batch_sizes
        (4, 64)
    """
    dimension: int = 10_000                    # K: h_i = 1/i, i = 1..K
    bins: Optional[int] = 100                  # the notebook's geometric bins; None: all K eigenvalues
    target: float = 0.01                       # steps until L_t <= target (the notebook's C)
    label_noise: float = 1.0                   # sigma2: gradient noise covariance sigma2 H / B
    batch_sizes: tuple[int, ...] = field(default_factory=lambda: tuple(2 ** k for k in range(2, 22)))
    preconditioners: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
    methods: tuple[str, ...] = METHODS
    rtol: float = 1e-2                         # steps to target known to this relative precision
    critical_factor: float = 2.0               # critical B: samples T*B reach this times the smallest B's
    workers: int = 1                           # processes (one curve of batch sizes each); the CLI uses 2
    max_steps: int = 10 ** 10                  # never-reaching settings count as this

    def validate(self) -> NQMConfig:
        self.dimension = positive_int(self.dimension, "dimension")
        if self.dimension < 2:
            raise ValueError(f"dimension must be >= 2, got {self.dimension}")
        if self.bins is not None:
            self.bins = positive_int(self.bins, "bins")
            if self.bins < 2:
                raise ValueError(f"bins must be >= 2 (or None: every eigenvalue), got {self.bins}")
        for name in ("target", "label_noise", "rtol"):
            value = real_scalar(getattr(self, name), name)
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
            setattr(self, name, value)
        self.critical_factor = real_scalar(self.critical_factor, "critical_factor")
        if not self.critical_factor > 1:
            raise ValueError(f"critical_factor must be > 1, got {self.critical_factor}")
        self.batch_sizes = tuple(sorted(positive_ints(self.batch_sizes, "batch_sizes")))
        pre = tuple(real_scalar(p, "preconditioners") for p in self.preconditioners)
        if not pre or any(not 0 <= p < 1 for p in pre):
            raise ValueError("preconditioners must be a non-empty list of powers in [0, 1), "
                             f"got {self.preconditioners}")
        self.preconditioners = pre
        methods = tuple(self.methods)
        if not methods or any(m not in METHODS for m in methods):
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {self.methods}")
        self.methods = methods
        self.workers = positive_int(self.workers, "workers")
        self.max_steps = positive_int(self.max_steps, "max_steps")
        return self


def small_config() -> NQMConfig:
    """Tiny settings for smoke tests (seconds; not the claims).

    Examples:
        >>> from memsgd.experiments.nqm import small_config
        >>> small_config().dimension
        1000
    """
    return NQMConfig(dimension=1000, bins=30, batch_sizes=(4, 256, 16384), preconditioners=(0.0, 0.5), rtol=0.02)


# -- the problem ---------------------------------------------------------------------------------

def nqm_spectrum(dimension: int = 10_000, bins: Optional[int] = 100, initial: float = 1.0):
    """The NQM's curvatures ``h_i = 1/i`` with ``x_i(0)^2 = initial``: all ``dimension`` of them, or
    (``bins``) the notebook's discretisation: ``bins`` geometric edges from 1 to ``1/dimension``,
    each ``h_i`` rounded down to the largest edge not above it, the counts as node weights (empty
    bins left out).

    Examples:
        >>> from memsgd.experiments.nqm import nqm_spectrum
        >>> spec = nqm_spectrum(10_000, bins=100)
        >>> spec.size, int(spec.weights.sum())
        (84, 10000)
    """
    from ..spectrum import Spectrum

    h = 1.0 / np.arange(1, dimension + 1)
    if bins is None:
        return Spectrum(h, np.full(dimension, float(initial)))
    edges = np.geomspace(h[0], h[-1], bins)
    # index of the largest edge <= h_i: edges fall, so count the edges above h_i (rounding-safe
    # at the two ends, which are edges themselves)
    slot = np.searchsorted(-edges, -h, side="left")
    slot[0], slot[-1] = 0, bins - 1
    counts = np.bincount(slot, minlength=bins).astype(float)
    keep = counts > 0
    return Spectrum(edges[keep], np.full(int(keep.sum()), float(initial)), counts[keep])


def nqm_noise(batch_size: int, label_noise: float = 1.0):
    """``Noise(B, 0, 0, label_noise)``: gradient noise covariance ``label_noise * H / B``, nothing else.

    Examples:
        >>> from memsgd.experiments.nqm import nqm_noise
        >>> nqm_noise(16).label_noise
        1.0
    """
    from ..noise import Noise
    return Noise(batch_size, 0.0, 0.0, label_noise=label_noise)


def nqm_algorithm(method: str, lr: float, precondition: float = 0.0, momentum: float = 0.0, decay: float = 0.0):
    """SGD (``x' = x - lr P g``), heavy ball (``v' = momentum v - lr P g``, ``x' = x + v'``) or SGD with
    its loss read at the EMA ``xbar' = decay xbar + (1 - decay) x'`` (``xbar_0 = x_0``); ``P`` the
    preconditioner ``(h / h_max)^(-precondition)``.

    Examples:
        >>> from memsgd.experiments.nqm import nqm_algorithm
        >>> nqm_algorithm("momentum", 0.1, 0.5, momentum=0.9).memory
        1
    """
    from .._affine import ema
    from ..algorithms import MemoryAlgorithm

    if method == "momentum":
        return MemoryAlgorithm(lr, [momentum], [lr], [[momentum]], preconditioner=precondition)
    sgd = MemoryAlgorithm(lr, [], [], np.zeros((0, 0)), preconditioner=precondition)
    if method == "ema":
        return ema(sgd, decay)
    if method == "sgd":
        return sgd
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


# -- steps to target -----------------------------------------------------------------------------

def _losses(algorithm, spectrum, noise, steps) -> np.ndarray:
    """``L_t`` at the increasing ``steps``: the one place that picks how. [`memsgd.loss_at`][memsgd.loss_at] (cost
    independent of t) where it takes the problem, else the exact recursion up to ``steps[-1]``."""
    from ..dynamics import loss_curve
    from ..long_horizon import loss_at, supports_loss_at

    steps = np.asarray(steps, dtype=np.int64)
    if supports_loss_at(algorithm, noise):
        return loss_at(algorithm, spectrum, noise, steps, threads=1, warn=False).loss
    return loss_curve(algorithm, spectrum, noise, int(steps[-1]), progress=False, threads=1).loss[steps]


def steps_to_target(algorithm, spectrum, noise, target: float, guess: Optional[int] = None,
                    max_steps: int = 10 ** 10) -> Optional[int]:
    """The first ``t`` with ``L_t <= target`` (excess loss), or None when the run does not converge
    to a floor below ``target`` or takes more than ``max_steps``.

    A run whose stationary floor ([`memsgd.stability`][memsgd.stability]'s ``noise_floor``) is not below the target
    counts as never reaching it. The crossing is bracketed on a geometric grid around ``guess`` and
    then narrowed by evaluating 32 evenly spaced steps inside the bracket at a time; the losses
    between evaluated steps are taken to fall (true of SGD here: each ``E x_i^2`` falls
    monotonically to its floor; a momentum run that dips below the target and rises again
    between two evaluated steps could be missed).

    Examples:
        >>> from memsgd.experiments import nqm
        >>> spec = nqm.nqm_spectrum(1000, bins=30)
        >>> nqm.steps_to_target(nqm.nqm_algorithm("sgd", 0.05), spec, nqm.nqm_noise(256), 0.01) > 0
        True
    """
    from ..theory import stability

    report = stability(algorithm, spectrum, noise)
    if not report.converges or not report.noise_floor < target:
        return None
    if _losses(algorithm, spectrum, noise, [0])[0] <= target:
        return 0
    lo, hi = 0, None                                 # L_lo > target >= L_hi
    t = max(1, int(guess or 1))
    while hi is None:                                # bracket on a geometric grid of 17 steps
        grid = np.unique(np.clip(np.round(t * 2.0 ** (np.arange(-8, 9) / 4.0)), lo + 1, max_steps).astype(np.int64))
        L = _losses(algorithm, spectrum, noise, grid)
        below = np.nonzero(L <= target)[0]
        if below.size:
            hi = int(grid[below[0]])
            lo = int(grid[below[0] - 1]) if below[0] > 0 else lo
        elif grid[-1] >= max_steps:
            return None
        else:
            lo, t = int(grid[-1]), int(grid[-1]) * 16
    while hi - lo > 1:                               # narrow: up to 32 interior steps per call
        inner = np.unique(np.round(np.linspace(lo, hi, min(34, hi - lo + 1))).astype(np.int64))[1:-1]
        L = _losses(algorithm, spectrum, noise, inner)
        below = np.nonzero(L <= target)[0]
        if below.size:
            hi = int(inner[below[0]])
            lo = int(inner[below[0] - 1]) if below[0] > 0 else lo
        else:
            lo = int(inner[-1])
    return hi


# -- the best hyperparameters per batch size ------------------------------------------------------

_HUGE = 1e3        # log-loss of a point outside the stable box (the box is the stability region)


def _decode(method: str, theta) -> dict:
    """Hyperparameters from the search variables: ``log lr`` (heavy ball: ``log`` of the effective
    ``lr / (1 - beta)``) and, for heavy ball / EMA, ``u = -log(1 - beta or decay)`` (``u >= 0``)."""
    if method == "sgd":
        return dict(lr=math.exp(theta[0]))
    one_minus = math.exp(-max(theta[1], 0.0))
    if method == "momentum":
        return dict(lr=math.exp(theta[0]) * one_minus, momentum=1.0 - one_minus)
    return dict(lr=math.exp(theta[0]), decay=1.0 - one_minus)


def _outside(method: str, theta) -> float:
    """How far ``theta`` lies outside the stability box (0 inside): ``lr P h < 2`` at ``P h = 1``
    for SGD and its EMA, ``lr < 2 (1 + beta)`` for heavy ball (the top node, ``h_max = 1``)."""
    hp = _decode(method, theta)
    edge = 2.0 * (1.0 + hp.get("momentum", 0.0)) * (1.0 - 1e-9)
    over = max(0.0, math.log(hp["lr"] / edge))
    return over + (max(0.0, -theta[1]) if method != "sgd" else 0.0)


class _Search:
    """Steps to target at one (method, preconditioner, batch size), minimised over the hyperparameters."""

    def __init__(self, method, precondition, spectrum, noise, cfg: NQMConfig):
        self.method, self.p, self.spectrum, self.noise, self.cfg = method, precondition, spectrum, noise, cfg
        self.log_target = math.log(cfg.target)
        self.evaluations = 0

    def algorithm(self, theta):
        return nqm_algorithm(self.method, precondition=self.p, **_decode(self.method, theta))

    def log_loss(self, theta, t: int) -> float:
        out = _outside(self.method, theta)
        if out > 0:
            return _HUGE + out
        self.evaluations += 1
        value = float(_losses(self.algorithm(theta), self.spectrum, self.noise, [t])[0])
        return math.log(value) if value > 0 and math.isfinite(value) else _HUGE

    def hit(self, theta, guess=None) -> Optional[int]:
        if _outside(self.method, theta) > 0:
            return None
        self.evaluations += 1
        return steps_to_target(self.algorithm(theta), self.spectrum, self.noise, self.cfg.target, guess,
                               self.cfg.max_steps)

    def minimise(self, t: int, theta):
        """``argmin_theta log L_t(theta)`` (scipy): SGD by bounded Brent over learning rates from
        ``e^-6`` times the start up to the stability edge (``L_t`` is unimodal in ``log lr``); the
        two-parameter methods by Nelder-Mead from ``theta``, whose simplex expands as far as it must."""
        from scipy.optimize import minimize, minimize_scalar

        if self.method == "sgd":
            hi = math.log(2.0 * (1.0 - 1e-9))
            r = minimize_scalar(lambda x: self.log_loss([x], t), bounds=(min(theta[0], hi) - 6.0, hi),
                                method="bounded", options=dict(xatol=1e-3))
            return np.array([r.x]), float(r.fun)
        theta = np.asarray(theta, dtype=float)
        simplex = np.array([theta, theta + [0.5, 0.0], theta + [0.0, 0.5]])
        r = minimize(lambda x: self.log_loss(x, t), theta, method="Nelder-Mead",
                     options=dict(initial_simplex=simplex, xatol=1e-2, fatol=1e-4, maxfev=200))
        return np.asarray(r.x, dtype=float), float(r.fun)

    def best(self, theta) -> dict:
        """The fewest steps to target over the hyperparameters, from the start ``theta``.

        Keeps a bracket ``lo < T* <= hi``: ``hi`` is the hitting time of the best point found, ``lo``
        a horizon whose minimal loss stays above the target (certified up to the inner minimiser).
        Each round minimises ``L_t`` at a guess ``t`` inside the bracket -- by the secant of
        ``log min_theta L_t`` against ``log t`` through the last two rounds -- and moves ``hi`` (the
        minimiser reaches the target: its hitting time is at most ``t``) or ``lo`` (it does not).
        Stops when ``hi - lo <= max(1, rtol * hi)``."""
        theta = np.asarray(theta, dtype=float)
        hi = self.hit(theta)
        if hi is None:                                   # the start never gets there: scan the learning rate
            theta, hi = self._scan(theta)
        lo, points = 0, []
        t = max(1, int(0.7 * hi))
        for _ in range(40):
            if hi - lo <= max(1, self.cfg.rtol * hi):
                break
            cand, f = self.minimise(t, theta)
            points.append((math.log(t), f))
            if f <= self.log_target:
                h = self.hit(cand, guess=t)
                if h is not None and h < hi:
                    hi, theta = h, cand
                if lo >= hi:             # an earlier round stopped in a local minimum: reopen the bracket
                    lo, points = 0, points[-1:]
            else:
                lo = t
            t = self._next(points, lo, hi)
        return dict(steps=int(hi), lower=int(lo), theta=theta.tolist(), evaluations=self.evaluations,
                    **_decode(self.method, theta))

    def _next(self, points, lo, hi) -> int:
        """The next horizon: the secant's crossing of the target when it falls well inside the
        bracket, else the bracket's geometric middle."""
        inner_lo, inner_hi = lo + 1, hi - 1
        mid = int(round(math.sqrt(max(lo, 1) * hi))) if lo > 0 else max(1, int(0.7 * hi))
        guess = mid
        if len(points) >= 2:
            (x0, f0), (x1, f1) = points[-2], points[-1]
            if f1 != f0 and x1 != x0:
                x = x1 + (self.log_target - f1) * (x1 - x0) / (f1 - f0)
                if math.isfinite(x) and x < 50:
                    guess = int(round(math.exp(x)))
        # a guess on the bracket's edge would not shrink it: step a little inside
        guess = min(max(guess, inner_lo), inner_hi)
        if guess - lo < 0.1 * (hi - lo) or hi - guess < 0.1 * (hi - lo):
            guess = mid
        return min(max(guess, inner_lo), inner_hi)

    def _scan(self, theta):
        """A start that reaches the target: the best of a log grid of learning rates."""
        best = (None, None)
        hi_lr = math.log(2.0 * (1.0 - 1e-6))
        for x in np.linspace(hi_lr - 16.0, hi_lr, 33):
            cand = np.array([x] + list(theta[1:]))
            h = self.hit(cand)
            if h is not None and (best[1] is None or h < best[1]):
                best = (cand, h)
        if best[0] is None:
            raise RuntimeError(f"no learning rate reaches the target {self.cfg.target} ({self.method}, "
                               f"p = {self.p}, B = {self.noise.batch_size})")
        return best


def _start(method: str, previous: Optional[dict], sgd_lr: float):
    """Search start: the previous batch size's optimum with twice the learning rate (perfect
    scaling), clipped inside the stable box; first batch size: a small learning rate."""
    if previous is None:
        lr = sgd_lr
        return np.array([math.log(lr)] if method == "sgd" else [math.log(lr), math.log(2.0)])
    theta = np.array(previous["theta"], dtype=float)
    theta[0] += math.log(2.0)
    while _outside(method, theta) > 0:
        theta[0] -= 0.05
    return theta


def _chain(task) -> list:
    """One curve: a (method, preconditioner) over all batch sizes, each search started from the
    previous optimum."""
    method, p, cfg = task
    spectrum = nqm_spectrum(cfg.dimension, cfg.bins)
    rows, previous = [], None
    for B in cfg.batch_sizes:
        t0 = time.perf_counter()
        search = _Search(method, p, spectrum, nqm_noise(B, cfg.label_noise), cfg)
        row = search.best(_start(method, previous, 0.1 * min(1.0, B / 64)))
        row.update(method=method, preconditioner=p, batch_size=B, seconds=time.perf_counter() - t0)
        rows.append(row)
        previous = row
    return rows


def critical_batch_size(batch_sizes, steps, factor: float = 2.0) -> Optional[float]:
    """The batch size where perfect scaling ends: samples ``T(B) B`` reach ``factor`` times the
    smallest batch size's (log-log interpolation between grid points); None inside the grid.

    Examples:
        >>> from memsgd.experiments.nqm import critical_batch_size
        >>> round(critical_batch_size([4, 128, 256], [250, 7.8125, 10.0]), 6)
        213.395349
    """
    B = np.asarray(batch_sizes, dtype=float)
    samples = np.asarray(steps, dtype=float) * B
    ratio = samples / samples[0]
    above = np.nonzero(ratio >= factor)[0]
    if not above.size:
        return None
    j = int(above[0])
    x0, x1 = math.log(B[j - 1]), math.log(B[j])
    y0, y1 = math.log(ratio[j - 1]), math.log(ratio[j])
    return float(math.exp(x0 + (math.log(factor) - y0) * (x1 - x0) / (y1 - y0)))


# -- the run ---------------------------------------------------------------------------------------

def run(config: Optional[NQMConfig] = None, out_dir=None, progress=None) -> dict:
    """Steps to target against batch size for every (method, preconditioner), each at its best
    hyperparameters per batch size; ``nqm_steps.png``, ``nqm_lr.png``, ``nqm_curves.png`` and
    ``nqm.json`` in ``out_dir``. Returns ``table``, ``rows`` (one per method, preconditioner and
    batch size: ``steps``, the certified ``lower`` bound, the hyperparameters), ``summary`` (per
    curve: critical batch size, ratios to SGD) and ``config``.

    Example:
        >>> from memsgd.experiments import nqm
        >>> cfg = nqm.NQMConfig(dimension=100, bins=10, batch_sizes=(4, 4096), preconditioners=(0.0,),
        ...                     methods=("sgd",), rtol=0.05)
        >>> first, last = (row["steps"] for row in nqm.run(cfg)["rows"])
        >>> last < first
        True
    """
    cfg = config or NQMConfig()
    if not isinstance(cfg, NQMConfig):
        raise TypeError(f"config must be an NQMConfig, got {type(cfg).__name__}")
    cfg.validate()
    out_dir = common.prepare_out_dir(out_dir)
    t_start = time.perf_counter()
    # the two-parameter searches first: the slowest chains start early and the workers finish together
    tasks = sorted(((m, p, cfg) for m in cfg.methods for p in cfg.preconditioners), key=lambda x: x[0] == "sgd")
    tracker = Tracker(progress, len(tasks))
    results = _run_tasks(tasks, cfg.workers, tracker)
    rows = [r for chain in results for r in chain]
    rows.sort(key=lambda r: (cfg.methods.index(r["method"]), r["preconditioner"], r["batch_size"]))
    summary = _summary(rows, cfg)
    claims = _claims(rows, summary, cfg)
    table = _table(rows, summary, cfg) + "\n" + claims
    result = dict(table=table, rows=rows, summary=summary, claims=claims, config=asdict(cfg), files=[])
    if out_dir is not None:
        result["files"] = _figures(rows, summary, cfg, out_dir)
        js = os.path.join(out_dir, "nqm.json")
        result["files"].append(js)
        result["seconds"] = time.perf_counter() - t_start
        common.write_json(js, {k: v for k, v in result.items() if k != "files"})
    result["seconds"] = time.perf_counter() - t_start
    return result


def _run_tasks(tasks, workers: int, tracker: Tracker) -> list:
    if workers == 1:
        out = []
        for task in tasks:
            out.append(_chain(task))
            tracker.step(f"{LABELS[task[0]]}, p = {task[1]}")
        return out
    import concurrent.futures as cf
    import multiprocessing
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_chain, task) for task in tasks]
        for f, task in zip(futures, tasks):
            f.result()
            tracker.step(f"{LABELS[task[0]]}, p = {task[1]}")
        return [f.result() for f in futures]


def _curve(rows, method, p):
    sel = sorted((r for r in rows if r["method"] == method and r["preconditioner"] == p), key=lambda r: r["batch_size"])
    return np.array([r["batch_size"] for r in sel]), np.array([r["steps"] for r in sel], dtype=float), sel


def _summary(rows, cfg) -> dict:
    """Per (method, p): critical batch size, steps at the smallest and largest B, and the ratios to
    SGD with the same preconditioner."""
    out = {}
    for m in cfg.methods:
        for p in cfg.preconditioners:
            B, T, _ = _curve(rows, m, p)
            entry = dict(critical_batch_size=critical_batch_size(B, T, cfg.critical_factor),
                         steps_smallest_batch=float(T[0]), steps_largest_batch=float(T[-1]))
            if "sgd" in cfg.methods:
                _, T0, _ = _curve(rows, "sgd", p)
                entry.update(ratio_to_sgd_smallest_batch=float(T[0] / T0[0]),
                             ratio_to_sgd_largest_batch=float(T[-1] / T0[-1]))
            out[f"{m} p={p:g}"] = entry
    return out


def _claims(rows, summary, cfg) -> str:
    """The paper's statements (its abstract and notebook) beside the measured numbers, a markdown table."""
    def T(m, p, B):
        return next(r["steps"] for r in rows if r["method"] == m and r["preconditioner"] == p and r["batch_size"] == B)

    def crit(m, p):
        return _fmt_b(summary[f"{m} p={p:g}"]["critical_batch_size"])

    Bs, pre, methods = cfg.batch_sizes, cfg.preconditioners, cfg.methods
    b0, b1 = Bs[0], Bs[-1]
    out = ["| the paper (Zhang et al. 2019: abstract, notebook) | measured (steps to target; B_crit) |", "|---|---|"]
    if "sgd" in methods:
        out.append(f"| perfect scaling up to a critical batch size, diminishing returns beyond | SGD p = {pre[0]:g}: "
                   f"{T('sgd', pre[0], b0):,} steps at B = {b0}, {T('sgd', pre[0], b1):,} at B = {b1}; "
                   f"B_crit = {crit('sgd', pre[0])} |")
        lr = {r["batch_size"]: r["lr"] for r in rows if r["method"] == "sgd" and r["preconditioner"] == pre[0]}
        j = min(3, len(Bs) - 1)
        if j > 0:
            slope = math.log(lr[Bs[j]] / lr[b0]) / math.log(Bs[j] / b0)
            out.append(f"| the best learning rate grows linearly with the batch size, up to the critical one | "
                       f"SGD p = {pre[0]:g}: d log lr* / d log B = {slope:.2f} from B = {b0} to {Bs[j]}; lr* = "
                       f"{lr[b0]:.3g} at B = {b0}, {lr[b1]:.3g} at B = {b1} (stability edge 2) |")
    if "sgd" in methods and "momentum" in methods:
        small = ", ".join(f"{T('momentum', p, b0) / T('sgd', p, b0):.2f}" for p in pre)
        large = ", ".join(f"{T('momentum', p, b1) / T('sgd', p, b1):.3f}" for p in pre)
        out.append(f"| momentum: little benefit at small batch sizes, faster at large ones | heavy ball / SGD steps, "
                   f"p = {', '.join(f'{p:g}' for p in pre)}: {small} at B = {b0}; {large} at B = {b1} |")
    if "sgd" in methods and len(pre) > 1:
        gains = ", ".join(f"{T('sgd', p, b0) / T('sgd', pre[0], b0):.2f}" for p in pre[1:])
        out.append(f"| preconditioning extends perfect scaling to larger batch sizes; unlike momentum it helps at "
                   f"small ones too | B_crit of SGD for p = {', '.join(f'{p:g}' for p in pre)}: "
                   f"{', '.join(crit('sgd', p) for p in pre)}; steps at B = {b0} over p = {pre[0]:g}: {gains} |")
    if "momentum" in methods:
        out.append(f"| momentum extends perfect scaling too | B_crit of heavy ball: "
                   f"{', '.join(crit('momentum', p) for p in pre)} |")
    if "sgd" in methods and "ema" in methods:
        small = ", ".join(f"{T('ema', p, b0) / T('sgd', p, b0):.2f}" for p in pre)
        large = ", ".join(f"{T('ema', p, b1) / T('sgd', p, b1):.2f}" for p in pre)
        out.append(f"| EMA lowers the steady-state risk without slowing convergence: fewer steps, mostly at small "
                   f"batch sizes | EMA / SGD steps: {small} at B = {b0}; {large} at B = {b1}; "
                   f"B_crit {', '.join(crit('ema', p) for p in pre)} |")
    return "\n".join(out)


def _table(rows, summary, cfg) -> str:
    heads = [(m, p) for m in cfg.methods for p in cfg.preconditioners]
    head = [f"# noisy quadratic model (Zhang et al. 2019): h_i = 1/i, K = {cfg.dimension}"
            + (f" in {cfg.bins} geometric bins" if cfg.bins else "") + f", x_i(0)^2 = 1, gradient noise "
            f"{cfg.label_noise:g} H / B; steps until L_t <= {cfg.target:g} at the best hyperparameters per batch "
            f"size (to {cfg.rtol:g} relative)"]
    headers = ["B"] + [f"{LABELS[m]} p={p:g}" for m, p in heads]
    body = []
    for B in cfg.batch_sizes:
        line = [B]
        for m, p in heads:
            r = next(r for r in rows if r["method"] == m and r["preconditioner"] == p and r["batch_size"] == B)
            line.append(r["steps"])
        body.append(line)
    crit = ["B_crit"] + [_fmt_b(summary[f"{m} p={p:g}"]["critical_batch_size"]) for m, p in heads]
    body.append(crit)
    foot = (f"# B_crit: the batch size where samples T*B reach {cfg.critical_factor:g} times those at "
            f"B = {cfg.batch_sizes[0]} (log-log interpolation; '>' = beyond the grid)")
    return "\n".join(head) + "\n" + common.format_table(headers, body) + "\n" + foot


def _fmt_b(b) -> str:
    return ">max" if b is None else f"{b:.3g}"


def _figures(rows, summary, cfg, out_dir) -> list:
    from ..plotting import plot_line_panels

    files = []
    B = np.array(cfg.batch_sizes, dtype=float)
    panels, lr_panels = [], []
    for m in cfg.methods:
        series, lr_series = [], []
        for p in cfg.preconditioners:
            b, T, sel = _curve(rows, m, p)
            series.append(dict(label=f"p = {p:g}", x=b, y=T, style="-"))
            if m == "momentum":
                eff = [r["lr"] / (1.0 - r["momentum"]) for r in sel]
            else:
                eff = [r["lr"] for r in sel]
            lr_series.append(dict(label=f"p = {p:g}", x=b, y=np.array(eff), style="-"))
        series.append(dict(label="K / (2 C B)", x=B, y=cfg.dimension / (2.0 * cfg.target * B), style=":"))
        panels.append(dict(title=LABELS[m], series=series, xlabel="batch size B", ylabel="steps to target"))
        lr_panels.append(dict(title=LABELS[m], series=lr_series, xlabel="batch size B",
                              ylabel="best effective learning rate" if m == "momentum" else "best learning rate"))
    png = os.path.join(out_dir, "nqm_steps.png")
    plot_line_panels(panels, png, title=f"NQM: steps to L <= {cfg.target:g} at the best hyperparameters per batch size")
    files.append(png)
    png = os.path.join(out_dir, "nqm_lr.png")
    plot_line_panels(lr_panels, png, title="NQM: best (effective) learning rate per batch size")
    files.append(png)
    # loss curves at the optimum of two batch sizes, every method at p = 0 and the largest p
    spectrum = nqm_spectrum(cfg.dimension, cfg.bins)
    curve_panels = []
    for B in (cfg.batch_sizes[0], cfg.batch_sizes[-1]):
        series = []
        for m in cfg.methods:
            for p in (cfg.preconditioners[0], cfg.preconditioners[-1]):
                r = next(r for r in rows if r["method"] == m and r["preconditioner"] == p and r["batch_size"] == B)
                t = np.unique(np.geomspace(1, 4 * r["steps"], 60).astype(np.int64))
                algo = nqm_algorithm(m, precondition=p, **_decode(m, r["theta"]))
                L = _losses(algo, spectrum, nqm_noise(B, cfg.label_noise), t)
                series.append(dict(label=f"{LABELS[m]}, p = {p:g}", x=t, y=L, style="-" if p == 0 else "--"))
        curve_panels.append(dict(title=f"B = {B}", series=series, xlabel="step t", ylabel="loss L_t"))
    png = os.path.join(out_dir, "nqm_curves.png")
    plot_line_panels(curve_panels, png, title="NQM: loss curves at the best hyperparameters (memsgd.loss_at)")
    files.append(png)
    return files
