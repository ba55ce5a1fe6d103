r"""Theory against real training (`memsgd reproduce practice`; docs/practice.md).

Least squares on fixed features of real data: scikit-learn's 8x8 digits (1797 images), or an
MNIST subsample when the IDX files are given. Two feature sets:

- ``pixels``: the raw pixels scaled to [0, 1] (d = 64 for the digits);
- ``relu``: random ReLU features ``phi(x) = sqrt(2/N) max(0, W x)``, ``W_ij ~ N(0, 1/d)``, width
  N = 2000 (seeded).

Targets are the one-hot labels projected on the feature span, ``y = X W_ls`` with ``W_ls`` the
least-squares solution (realizable, as the engine assumes: ``L(w) = 1/2 (w - W_ls)^T H (w - W_ls)``
is then the whole training loss); the raw labels add the residual ``Y - X W_ls`` as label noise,
which the engine does not model (measured separately, pixels only).

Prediction: [`memsgd.loss_curve`][memsgd.loss_curve] on
[`memsgd.Spectrum.from_features`][memsgd.Spectrum.from_features] with SE noise
``Noise(B, tau1, tau2)``, twice: Gaussian ``tau = (1, -1)`` and ``tau`` fitted to the data by
[`memsgd.experiments.empirical.estimate_tau`][memsgd.experiments.empirical.estimate_tau]. For feature sets of small
dimension also the
exact expected loss of the finite data set (no SE approximation,
[`memsgd.experiments.empirical.exact_mean_loss`][memsgd.experiments.empirical.exact_mean_loss]), which separates the
SE error from
sampling error.

Training: [`memsgd.torch.MemorySGD`][memsgd.torch.MemorySGD] (heavy ball) and [`memsgd.torch.AM1`][memsgd.torch.AM1]
(``kick = alpha_eff / 2``), both momentum 0.9, batch sizes 1, 10, 100 drawn with replacement,
mean over 40 seeds (``memsgd.experiments.linear_training.train_seeds``). The effective
learning rate ``alpha_eff`` of each (feature set, algorithm, B) puts the noise sum at
``V' = 0.5`` ([`memsgd.stability`][memsgd.stability]; the larger of the Gaussian and the fitted value), half
way to the noise-driven divergence at ``V' = 1``.

Reported per row: the maximum over ~25 log-spaced steps ``1 <= t <= T`` of the relative gap
``|mean_t - L_t| / L_t`` between training and each prediction, with its sampling error
``se_t / L_t`` at that step, and ``max_t |mean_t - L_t| / se_t`` against the exact loss.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import numpy as np

from .. import algorithms
from .._optional import require_all
from .._progress import Tracker
from .._steps import log_spaced_steps
from .._validation import nonnegative_int, positive_int, positive_ints, real_scalar
from . import common
from .empirical import estimate_tau, exact_mean_loss
from .linear_training import train_seeds

__all__ = ["PracticeConfig", "small_config", "run", "feature_sets"]

ALGORITHMS = ("heavy ball", "AM1")
COLORS = {"heavy ball": "tab:blue", "AM1": "tab:red"}


@dataclass
class PracticeConfig:
    """Settings of the theory-against-training comparison (docs/practice.md).

    Examples:
        >>> from memsgd.experiments.practice import PracticeConfig
        >>> PracticeConfig().batch_sizes
        (1, 10, 100)
    """

    steps: int = 1000
    seeds: int = 40
    batch_sizes: Tuple[int, ...] = (1, 10, 100)
    width: int = 2000                    # random ReLU features
    momentum: float = 0.9
    noise_sum: float = 0.5               # alpha_eff puts V' here (the larger of Gaussian / fitted tau)
    points: int = 26                     # log-spaced steps compared (0 and T included)
    seed: int = 0
    raw_labels: bool = True              # also train on the raw labels (pixels, heavy ball)
    exact_max_dim: int = 128             # exact expected loss for feature sets of dimension <= this
    standardized: bool = False           # standardise the pixels instead of scaling to [0, 1]
    mnist_images: Optional[str] = None   # IDX files the user has; None: scikit-learn's digits
    mnist_labels: Optional[str] = None
    mnist_samples: int = 2000            # rows drawn (seeded) from MNIST
    threads: Optional[int] = 1           # torch and BLAS threads (None: the libraries' defaults)
    dtype: str = "float32"               # training precision (the losses are evaluated in float64)

    def validate(self) -> "PracticeConfig":
        for name in ("steps", "width", "points", "exact_max_dim", "mnist_samples"):
            setattr(self, name, positive_int(getattr(self, name), name))
        self.seeds = positive_int(self.seeds, "seeds")
        if self.seeds < 2:
            raise ValueError(f"seeds must be >= 2 (for a sampling error), got {self.seeds}")
        self.seed = nonnegative_int(self.seed, "seed")
        self.batch_sizes = positive_ints(self.batch_sizes, "batch_sizes")
        self.momentum = real_scalar(self.momentum, "momentum")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        self.noise_sum = real_scalar(self.noise_sum, "noise_sum")
        if not 0 < self.noise_sum < 1:
            raise ValueError(f"noise_sum must be in (0, 1) (V' >= 1 diverges), got {self.noise_sum}")
        if (self.mnist_images is None) != (self.mnist_labels is None):
            raise ValueError("mnist_images and mnist_labels must be given together")
        if self.threads is not None:
            self.threads = positive_int(self.threads, "threads")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        return self


def small_config() -> PracticeConfig:
    """Tiny settings for smoke tests (seconds; not the claims).

    Examples:
        >>> from memsgd.experiments.practice import small_config
        >>> small_config().steps
        30
    """
    return PracticeConfig(steps=30, seeds=8, width=100, points=8, raw_labels=False)


def feature_sets(cfg: PracticeConfig):
    """``(dataset name, {name: features (n, d)}, one-hot labels (n, C))`` for the config."""
    from ..data import load_digits, load_mnist, one_hot, standardize

    if cfg.mnist_images is not None:
        X, y = load_mnist(cfg.mnist_images, cfg.mnist_labels)       # pixels / 255
        rng = np.random.default_rng(cfg.seed)
        rows = rng.choice(X.shape[0], size=min(cfg.mnist_samples, X.shape[0]), replace=False)
        X, y, name = X[rows], y[rows], f"MNIST ({min(cfg.mnist_samples, X.shape[0])} of {X.shape[0]})"
    else:
        X, y = load_digits(standardized=False)
        X, name = X / 16.0, "digits (scikit-learn, 8x8)"
    if cfg.standardized:
        X = standardize(X)
    rng = np.random.default_rng(cfg.seed + 1)
    W = rng.standard_normal((X.shape[1], cfg.width)) / math.sqrt(X.shape[1])
    relu = math.sqrt(2.0 / cfg.width) * np.maximum(X @ W, 0.0)
    return name, {"pixels": X, f"relu{cfg.width}": relu}, one_hot(y, 10)


def _algorithm(name: str, alpha_eff: float, beta: float):
    """The matrix form with effective learning rate ``alpha_eff`` and momentum ``beta``."""
    if name == "heavy ball":
        return algorithms.heavy_ball(alpha_eff * (1 - beta), beta)
    return algorithms.am1(alpha_eff * (1 - beta) / 2, beta, alpha_eff / 2)


def _optimizer(name: str, algo, beta: float):
    from ..torch import AM1, MemorySGD
    if name == "heavy ball":
        return lambda ps: MemorySGD.from_algorithm(ps, algo)
    lr = float(algo.c[0])
    return lambda ps: AM1(ps, lr=lr, momentum=beta, kick=algo.alpha - lr)


def _alpha_eff(name, beta, spectrum, noises, target):
    """The alpha_eff with max over ``noises`` of V' equal to ``target`` (bisection in log alpha)."""
    from ..theory import stability

    def noise_sum(a):
        return max(stability(_algorithm(name, a, beta), spectrum, nz).noise_sum_prime for nz in noises)

    lo, hi = 1e-8, 1e4
    for _ in range(45):  # relative precision (1e12)^(2^-45) - 1 ~ 1e-12
        mid = math.sqrt(lo * hi)
        if noise_sum(mid) < target:
            lo = mid
        else:
            hi = mid
    return lo


def _gap(mean, stderr, reference):
    """Max over t >= 1 of |mean - L| / L, its sampling error se / L there, the step, max |z|."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(mean - reference) / reference
        z = np.abs(mean - reference) / stderr
    rel, z = rel[1:], z[1:]
    if not np.all(np.isfinite(rel)):
        return dict(gap=math.inf, error=None, step_index=None, max_z=math.inf)
    j = int(np.argmax(rel))
    return dict(gap=float(rel[j]), error=float(stderr[1:][j] / reference[1:][j]), step_index=j + 1,
                max_z=float(np.max(z)))


def run(config: Optional[PracticeConfig] = None, out_dir=None, progress=None) -> dict:
    """Run the comparison; write ``practice.png`` and ``practice.json`` to ``out_dir``.

    Examples:
        Needs torch and scikit-learn (``pip install 'memsgd[torch,data]'``):

        >>> import dataclasses
        >>> from memsgd.experiments import practice
        >>> cfg = dataclasses.replace(practice.small_config(), steps=10, seeds=2, width=20, points=4)
        >>> result = practice.run(cfg, out_dir=None)
        >>> "table" in result and "rows" in result
        True
    """
    cfg = config or PracticeConfig()
    if not isinstance(cfg, PracticeConfig):
        raise TypeError(f"config must be a PracticeConfig, got {type(cfg).__name__}")
    cfg.validate()
    require_all([("torch", "torch"), ("sklearn", "data"), ("threadpoolctl", "data")], "memsgd reproduce practice")
    out_dir = common.prepare_out_dir(out_dir)
    t_start = time.perf_counter()
    dataset, features, labels = feature_sets(cfg)
    record = log_spaced_steps(cfg.steps, cfg.points)
    runs = len(features) * len(ALGORITHMS) * len(cfg.batch_sizes) + (len(cfg.batch_sizes) if cfg.raw_labels else 0)
    tracker = Tracker(progress, runs * 10)
    with _thread_limits(cfg.threads):
        rows, panels, problems = _compare(cfg, features, labels, record, tracker)

    table = _table(rows, problems, dataset, cfg)
    result = dict(table=table, rows=rows, problems=problems, dataset=dataset, config=asdict(cfg), files=[])
    if out_dir is not None:
        from ..plotting import plot_panels
        png = os.path.join(out_dir, "practice.png")
        plot_panels(panels, png, ncols=len(cfg.batch_sizes),
                    title=f"{dataset}: least squares, exact theory (lines) vs torch training (points, mean +- se "
                          f"of {cfg.seeds} seeds)")
        js = os.path.join(out_dir, "practice.json")
        result["files"] = [png, js]
        result["seconds"] = time.perf_counter() - t_start
        common.write_json(js, {k: v for k, v in result.items() if k != "files"})
    result["seconds"] = time.perf_counter() - t_start
    return result


@contextlib.contextmanager
def _thread_limits(threads):
    """torch and BLAS use ``threads`` threads inside (restored after); None leaves them alone.
    The matrices here are small: threads waiting for a core on a busy machine cost far more
    than they save (OpenBLAS took 50x longer per step of exact_mean_loss with 2 threads under load)."""
    if threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(old)


def _compare(cfg, features, labels, record, tracker):
    """Theory and training for every (feature set, B, algorithm): ``(rows, panels, problems)``."""
    from ..dynamics import loss_curve
    from ..noise import Noise
    from ..spectrum import Spectrum

    T, beta = cfg.steps, cfg.momentum
    rows, panels, problems = [], [], {}
    for fname, X in features.items():
        W_ls = np.linalg.lstsq(X, labels, rcond=None)[0]
        Y_real = X @ W_ls
        spectrum = Spectrum.from_features(X, Y_real)
        tau1, tau2 = estimate_tau(X)
        residual = 0.5 * float(np.mean(np.sum((labels - Y_real) ** 2, axis=1)))
        problems[fname] = dict(d=X.shape[1], n=X.shape[0], rank=spectrum.size, tau1=tau1, tau2=tau2,
                               lambda_max=float(spectrum.eigenvalues[0]), trace=float(spectrum.eigenvalues.sum()),
                               initial_loss=spectrum.initial_loss, label_residual_loss=residual)
        exact = X.shape[1] <= cfg.exact_max_dim
        for B in cfg.batch_sizes:
            noises = {"gaussian": Noise.gaussian(B), "fitted": Noise(B, tau1, tau2)}
            series = []
            for name in ALGORITHMS:
                a = _alpha_eff(name, beta, spectrum, list(noises.values()), cfg.noise_sum)
                algo = _algorithm(name, a, beta)
                theory = {k: loss_curve(algo, spectrum, nz, T).loss for k, nz in noises.items()}
                if exact:
                    theory["exact"] = exact_mean_loss(algo, X, W_ls, B, T, record)
                    theory["exact"] = _dense(theory["exact"], record, T)
                raw = cfg.raw_labels and fname == "pixels" and name == "heavy ball"
                targets = [("realizable", Y_real)] + ([("raw labels", labels)] if raw else [])
                for target_name, Y in targets:
                    losses = train_seeds(_optimizer(name, algo, beta), X, Y, W_ls, B, T, record, cfg.seeds,
                                         seed=cfg.seed + 1000 * B + 7 * len(rows), dtype=cfg.dtype,
                                         progress=lambda: tracker.step(f"{fname} {name} B={B}"))
                    finite = np.all(np.isfinite(losses), axis=0)
                    mean = losses.mean(axis=1)
                    stderr = losses.std(axis=1, ddof=1) / math.sqrt(cfg.seeds)
                    row = dict(features=fname, targets=target_name, algorithm=name, batch_size=B,
                               alpha_eff=a, lr=float(algo.c[0]), momentum=beta,
                               kick=float(algo.alpha - algo.c[0]),
                               diverged_seeds=int(np.sum(~finite)),
                               noise_sum_gaussian=_noise_sum(algo, spectrum, noises["gaussian"]),
                               noise_sum_fitted=_noise_sum(algo, spectrum, noises["fitted"]),
                               steps=record.tolist(), train_mean=mean, train_stderr=stderr)
                    for k, L in theory.items():
                        g = _gap(mean, stderr, L[record])
                        row[f"gap_{k}"] = g
                        row[f"theory_{k}"] = L[record]
                    rows.append(row)
                    if target_name == "realizable":
                        series.append(dict(label=f"{name}: training (mean of {cfg.seeds} seeds)", t=record,
                                           y=mean, err=stderr, color=COLORS[name]))
                series.append(dict(label=f"{name}: theory, fitted tau", t=np.arange(T + 1),
                                   y=theory["fitted"], style="-", color=COLORS[name]))
                series.append(dict(label=f"{name}: theory, Gaussian tau", t=np.arange(T + 1),
                                   y=theory["gaussian"], style="--", color=COLORS[name]))
                if exact:
                    series.append(dict(label=f"{name}: exact (no SE approximation)", t=record,
                                       y=theory["exact"][record], style=":", color="k"))
            panels.append(dict(title=f"{fname}, B = {B}", series=series))
    return rows, panels, problems


def _dense(values, record, steps):
    out = np.full(steps + 1, np.nan)
    out[record] = values
    return out


def _noise_sum(algo, spectrum, noise) -> float:
    from ..theory import stability
    return stability(algo, spectrum, noise).noise_sum_prime


def _fmt_gap(g) -> str:
    if g is None:
        return "-"
    if not math.isfinite(g["gap"]):
        return "diverged"
    return f"{g['gap']:.3g} +- {g['error']:.2g}"


def _table(rows, problems, dataset, cfg) -> str:
    head = [f"# {dataset}; least squares on fixed features; momentum {cfg.momentum}; T = {cfg.steps}; "
            f"{cfg.seeds} seeds; batches drawn with replacement; alpha_eff at V' = {cfg.noise_sum}"]
    for f, p in problems.items():
        head.append(f"# {f}: n = {p['n']}, d = {p['d']}, rank {p['rank']}, lambda_max = {p['lambda_max']:.4g}, "
                    f"Tr H = {p['trace']:.4g}, fitted tau = ({p['tau1']:.3f}, {p['tau2']:.3f}), "
                    f"label residual 1/2 mean|Y - X W_ls|^2 = {p['label_residual_loss']:.3g}")
    headers = ["features", "targets", "algorithm", "B", "alpha_eff", "max gap, Gaussian tau",
               "max gap, fitted tau", "max |z|, fitted", "max gap, exact", "max |z|, exact"]
    body = [[r["features"], r["targets"], r["algorithm"], r["batch_size"], f"{r['alpha_eff']:.4g}",
             _fmt_gap(r["gap_gaussian"]), _fmt_gap(r["gap_fitted"]), f"{r['gap_fitted']['max_z']:.3g}",
             _fmt_gap(r.get("gap_exact")),
             "-" if r.get("gap_exact") is None else f"{r['gap_exact']['max_z']:.3g}"] for r in rows]
    foot = ("# max gap: max over the log-spaced steps 1 <= t <= T of |training mean - theory| / theory, "
            "+- the sampling error se/theory at that step; max |z|: max over the same steps of "
            "|training mean - theory| / se; exact: expected loss of the finite data set "
            "without the SE approximation (feature sets of dimension <= "
            f"{cfg.exact_max_dim})")
    return "\n".join(head) + "\n" + common.format_table(headers, body) + "\n" + foot
