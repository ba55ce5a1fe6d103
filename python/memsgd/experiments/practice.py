r"""Theory against real training (`memsgd reproduce practice`; docs/practice.md).

Least squares on fixed features of real data: scikit-learn's 8x8 digits (1797 images), or an
MNIST subsample when the IDX files are given. Two feature sets:

- ``pixels``: the raw pixels scaled to [0, 1] (d = 64 for the digits);
- ``relu``: random ReLU features ``phi(x) = sqrt(2/N) max(0, W x)``, ``W_ij ~ N(0, 1/d)``, width
  N = 2000 (seeded).

Targets are the one-hot labels projected on the feature span, ``y = X W_ls`` with ``W_ls`` the
least-squares solution (realizable: ``L(w) = 1/2 (w - W_ls)^T H (w - W_ls)`` is then the whole
training loss), and the raw one-hot labels ``Y`` themselves (not realizable: the residual
``r = Y - X W_ls`` is label noise the features cannot fit; ``L`` is then the excess loss over the
residual loss ``F0 = 1/2 E|r|^2``). Raw labels run on the pixels and on narrower ReLU features
(width ``raw_width`` < n: the width-2000 features interpolate the 1797 labels, residual ~1e-27).

Label noise (docs/math.md §9): a sample's gradient at the gradient point ``p`` is
``x x^T p - x r``; its noise gains ``E[r^2 x x^T] - 2 E[(x^T Ep) r x x^T]``. The model keeps the
first term as ``sigma2 H``, exact when ``r^2`` is independent of ``x``, with
``sigma2 = E|r|^2 = 2 F0`` (the uncentred mean square summed over the outputs: the noise is a
second moment, and the outputs' noises add), and drops the second (zero when ``r`` is independent
of ``x`` with mean 0; otherwise a transient, linear in the mean ``Ep``, which decays noise-free).
The exact finite-data reference keeps both as the data have them.

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
mean over 40 seeds (400 for raw labels: a run's loss at its noise floor spreads widely)
(``memsgd.experiments.linear_training.train_seeds``). The effective
learning rate ``alpha_eff`` of each (feature set, algorithm, B) puts the noise sum at
``V' = 0.5`` ([`memsgd.stability`][memsgd.stability]; the larger of the Gaussian and the fitted value), half
way to the noise-driven divergence at ``V' = 1``.

Reported per row: the maximum over ~25 log-spaced steps ``1 <= t <= T`` of the relative gap
``|mean_t - L_t| / L_t`` between training and each prediction, with its sampling error
``se_t / L_t`` at that step, ``max_t |mean_t - L_t| / se_t`` against the exact loss, and the
final loss ``mean_T / L_T`` (fitted tau) with its sampling error.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Optional

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
    batch_sizes: tuple[int, ...] = (1, 10, 100)
    width: int = 2000                    # random ReLU features
    momentum: float = 0.9
    noise_sum: float = 0.5               # alpha_eff puts V' here (the larger of Gaussian / fitted tau)
    points: int = 26                     # log-spaced steps compared (0 and T included)
    seed: int = 0
    raw_labels: bool = True              # also train on the raw labels (pixels and relu{raw_width})
    raw_seeds: int = 400                 # seeds of the raw-label runs
    raw_width: int = 500                 # ReLU features for raw labels (< n: a residual to fit)
    exact_max_dim: int = 128             # exact expected loss for feature sets of dimension <= this
    standardized: bool = False           # standardise the pixels instead of scaling to [0, 1]
    mnist_images: Optional[str] = None   # IDX files the user has; None: scikit-learn's digits
    mnist_labels: Optional[str] = None
    mnist_samples: int = 2000            # rows drawn (seeded) from MNIST
    threads: Optional[int] = 1           # torch and BLAS threads (None: the libraries' defaults)
    dtype: str = "float32"               # training precision (the losses are evaluated in float64)

    def validate(self) -> PracticeConfig:
        for name in ("steps", "width", "raw_width", "points", "exact_max_dim", "mnist_samples"):
            setattr(self, name, positive_int(getattr(self, name), name))
        for name in ("seeds", "raw_seeds"):
            value = positive_int(getattr(self, name), name)
            if value < 2:
                raise ValueError(f"{name} must be >= 2 (for a sampling error), got {value}")
            setattr(self, name, value)
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
    return PracticeConfig(steps=30, seeds=8, width=100, points=8, raw_seeds=8, raw_width=40)


def feature_sets(cfg: PracticeConfig):
    """``(dataset name, {name: features (n, d)}, one-hot labels (n, C))`` for the config: the
    pixels, ``relu{width}`` and (with ``raw_labels``) ``relu{raw_width}``."""
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
    features = {"pixels": X}
    widths = [cfg.width] + ([cfg.raw_width] if cfg.raw_labels and cfg.raw_width != cfg.width else [])
    for width in widths:
        rng = np.random.default_rng(cfg.seed + 1)
        W = rng.standard_normal((X.shape[1], width)) / math.sqrt(X.shape[1])
        features[f"relu{width}"] = math.sqrt(2.0 / width) * np.maximum(X @ W, 0.0)
    return name, features, one_hot(y, 10)


def _cases(cfg: PracticeConfig, features):
    """``(feature name, targets)`` pairs: realizable on the pixels and ``relu{width}``; raw labels on
    the pixels and ``relu{raw_width}``."""
    realizable = ["pixels", f"relu{cfg.width}"]
    raw = ["pixels", f"relu{cfg.raw_width}"] if cfg.raw_labels else []
    return [(f, "realizable") for f in realizable] + [(f, "raw labels") for f in raw]


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
    runs = len(_cases(cfg, features)) * len(ALGORITHMS) * len(cfg.batch_sizes)
    tracker = Tracker(progress, runs * 10)
    with _thread_limits(cfg.threads):
        rows, panels, problems = _compare(cfg, features, labels, record, tracker)

    table = _table(rows, problems, dataset, cfg)
    result = dict(table=table, rows=rows, problems=problems, dataset=dataset, config=asdict(cfg), files=[])
    if out_dir is not None:
        from ..plotting import plot_panels
        png = os.path.join(out_dir, "practice.png")
        plot_panels(panels["realizable"], png, ncols=len(cfg.batch_sizes),
                    title=f"{dataset}: least squares, exact theory (lines) vs torch training (points, mean +- se "
                          f"of {cfg.seeds} seeds)")
        result["files"] = [png]
        if panels["raw labels"]:
            png = os.path.join(out_dir, "practice_raw_labels.png")
            plot_panels(panels["raw labels"], png, ncols=len(cfg.batch_sizes),
                        title=f"{dataset}, raw labels: exact theory with label noise sigma2 = E|r|^2 (lines) vs "
                              f"torch training (points, mean +- se of {cfg.raw_seeds} seeds)")
            result["files"].append(png)
        js = os.path.join(out_dir, "practice.json")
        result["files"].append(js)
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


def _problem(X, labels, targets):
    """Least squares of ``labels`` on ``X``: ``(W_ls, training targets, spectrum, sigma2, summary)``
    (``sigma2`` = 0 for the realizable targets).

    Raw labels: ``sigma2 = E|r|^2`` of the residual ``r = Y - X W_ls`` (summed over the outputs),
    the label noise of the model; the summary also has the residual's variance (the same up to
    its mean, which is not zero without an intercept), the ``|x|^2``-weighted mean square
    ``E[|r|^2 |x|^2] / E|x|^2`` (the label noise injected per step, ``Tr E[|r|^2 x x^T] / Tr H``)
    and the spread of the per-direction ratios ``E[|r|^2 z_k^2] / lambda_k``, which independence of
    ``r`` and ``x`` would make all equal to ``sigma2``."""
    from ..spectrum import Spectrum

    W_ls = np.linalg.lstsq(X, labels, rcond=None)[0]
    Y_real = X @ W_ls
    spectrum = Spectrum.from_features(X, Y_real)
    tau1, tau2 = estimate_tau(X)
    r2 = np.sum((labels - Y_real) ** 2, axis=1)
    summary = dict(d=X.shape[1], n=X.shape[0], rank=spectrum.size, tau1=tau1, tau2=tau2,
                   lambda_max=float(spectrum.eigenvalues[0]), trace=float(spectrum.eigenvalues.sum()),
                   initial_loss=spectrum.initial_loss, label_residual_loss=0.5 * float(np.mean(r2)))
    sigma2 = 0.0
    if targets == "raw labels":
        sigma2 = float(np.mean(r2))
        x2 = np.sum(X ** 2, axis=1)
        lam, V = np.linalg.eigh(X.T @ X / X.shape[0])
        keep = lam > 1e-10 * lam.max()
        per_direction = np.mean(r2[:, None] * (X @ V[:, keep]) ** 2, axis=0) / lam[keep]
        summary.update(sigma2=sigma2, residual_variance=float(np.sum(np.var(labels - Y_real, axis=0))),
                       sigma2_norm_weighted=float(np.sum(r2 * x2) / np.sum(x2)),
                       sigma2_per_direction=(float(per_direction.min()), float(per_direction.max())))
    return W_ls, (labels if targets == "raw labels" else Y_real), spectrum, sigma2, summary


def _compare(cfg, features, labels, record, tracker):
    """Theory and training for every (feature set, targets, B, algorithm): ``(rows, panels, problems)``."""
    from ..dynamics import loss_curve
    from ..noise import Noise

    T, beta = cfg.steps, cfg.momentum
    rows, panels, problems = [], {"realizable": [], "raw labels": []}, {}
    for fname, targets in _cases(cfg, features):
        X = features[fname]
        W_ls, Y, spectrum, sigma2, summary = _problem(X, labels, targets)
        problems.setdefault(fname, {k: v for k, v in summary.items() if not k.startswith(("sigma2", "residual_"))})
        if targets == "raw labels":
            problems[fname].update({k: v for k, v in summary.items() if k.startswith(("sigma2", "residual_"))})
        tau1, tau2 = summary["tau1"], summary["tau2"]
        exact = X.shape[1] <= cfg.exact_max_dim
        seeds = cfg.raw_seeds if targets == "raw labels" else cfg.seeds
        for B in cfg.batch_sizes:
            # alpha_eff from the noise sum V', which label noise does not change
            sizing = [Noise.gaussian(B), Noise(B, tau1, tau2)]
            noises = {"gaussian": Noise.gaussian(B, label_noise=sigma2),
                      "fitted": Noise(B, tau1, tau2, label_noise=sigma2)}
            series = []
            for name in ALGORITHMS:
                a = _alpha_eff(name, beta, spectrum, sizing, cfg.noise_sum)
                algo = _algorithm(name, a, beta)
                theory = {k: loss_curve(algo, spectrum, nz, T).loss for k, nz in noises.items()}
                if exact:
                    raw = dict(targets=labels) if targets == "raw labels" else {}
                    theory["exact"] = _dense(exact_mean_loss(algo, X, W_ls, B, T, record, **raw), record, T)
                losses = train_seeds(_optimizer(name, algo, beta), X, Y, W_ls, B, T, record, seeds,
                                     seed=cfg.seed + 1000 * B + 7 * len(rows), dtype=cfg.dtype,
                                     progress=lambda fname=fname, targets=targets, name=name, B=B:
                                     tracker.step(f"{fname} {targets} {name} B={B}"))
                finite = np.all(np.isfinite(losses), axis=0)
                mean = losses.mean(axis=1)
                stderr = losses.std(axis=1, ddof=1) / math.sqrt(seeds)
                row = dict(features=fname, targets=targets, algorithm=name,
                           batch_size=B, seeds=seeds, label_noise=sigma2,
                           alpha_eff=a, lr=float(algo.c[0]), momentum=beta,
                           kick=float(algo.alpha - algo.c[0]),
                           diverged_seeds=int(np.sum(~finite)),
                           noise_sum_gaussian=_noise_sum(algo, spectrum, sizing[0]),
                           noise_sum_fitted=_noise_sum(algo, spectrum, sizing[1]),
                           steps=record.tolist(), train_mean=mean, train_stderr=stderr,
                           final_ratio=float(mean[-1] / theory["fitted"][T]),
                           final_ratio_error=float(stderr[-1] / theory["fitted"][T]))
                for k, L in theory.items():
                    row[f"gap_{k}"] = _gap(mean, stderr, L[record])
                    row[f"theory_{k}"] = L[record]
                rows.append(row)
                series.append(dict(label=f"{name}: training (mean of {seeds} seeds)", t=record,
                                   y=mean, err=stderr, color=COLORS[name]))
                series.append(dict(label=f"{name}: theory, fitted tau", t=np.arange(T + 1),
                                   y=theory["fitted"], style="-", color=COLORS[name]))
                series.append(dict(label=f"{name}: theory, Gaussian tau", t=np.arange(T + 1),
                                   y=theory["gaussian"], style="--", color=COLORS[name]))
                if exact:
                    series.append(dict(label=f"{name}: exact (no SE approximation)", t=record,
                                       y=theory["exact"][record], style=":", color="k"))
                if targets == "raw labels" and name == ALGORITHMS[0]:   # what the noiseless model predicted
                    series.append(dict(label=f"{name}: theory without label noise", t=np.arange(T + 1),
                                       y=loss_curve(algo, spectrum, sizing[1], T).loss, style="-.", color="0.6"))
            panels[targets].append(dict(title=f"{fname}, {targets}, B = {B}", series=series))
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
    seeds = f"{cfg.seeds} seeds" + (f" ({cfg.raw_seeds} for raw labels)" if cfg.raw_labels else "")
    head = [f"# {dataset}; least squares on fixed features; momentum {cfg.momentum}; T = {cfg.steps}; "
            f"{seeds}; batches drawn with replacement; alpha_eff at V' = {cfg.noise_sum}"]
    for f, p in problems.items():
        head.append(f"# {f}: n = {p['n']}, d = {p['d']}, rank {p['rank']}, lambda_max = {p['lambda_max']:.4g}, "
                    f"Tr H = {p['trace']:.4g}, fitted tau = ({p['tau1']:.3f}, {p['tau2']:.3f}), "
                    f"label residual F0 = 1/2 mean|Y - X W_ls|^2 = {p['label_residual_loss']:.3g}")
        if "sigma2" in p:
            lo, hi = p["sigma2_per_direction"]
            head.append(f"#   raw labels: label noise sigma2 = E|r|^2 = 2 F0 = {p['sigma2']:.4g} (residual variance "
                        f"{p['residual_variance']:.4g}; |x|^2-weighted {p['sigma2_norm_weighted']:.4g}; per eigen-"
                        f"direction E[|r|^2 z_k^2]/lambda_k from {lo:.3g} to {hi:.3g})")
    headers = ["features", "targets", "algorithm", "B", "alpha_eff", "max gap, Gaussian tau",
               "max gap, fitted tau", "max |z|, fitted", "max gap, exact", "max |z|, exact",
               "L_T trained / fitted"]
    body = [[r["features"], r["targets"], r["algorithm"], r["batch_size"], f"{r['alpha_eff']:.4g}",
             _fmt_gap(r["gap_gaussian"]), _fmt_gap(r["gap_fitted"]), f"{r['gap_fitted']['max_z']:.3g}",
             _fmt_gap(r.get("gap_exact")),
             "-" if r.get("gap_exact") is None else f"{r['gap_exact']['max_z']:.3g}",
             f"{r['final_ratio']:.3f} +- {r['final_ratio_error']:.2g}"] for r in rows]
    foot = ("# max gap: max over the log-spaced steps 1 <= t <= T of |training mean - theory| / theory, "
            "+- the sampling error se/theory at that step; max |z|: max over the same steps of "
            "|training mean - theory| / se; exact: expected loss of the finite data set "
            f"without the SE approximation (feature sets of dimension <= {cfg.exact_max_dim}; raw labels: "
            "with the residual as the data have it); L_T trained / fitted: the final excess loss of "
            "training over the prediction (fitted tau; raw labels: with label noise sigma2), +- se")
    return "\n".join(head) + "\n" + common.format_table(headers, body) + "\n" + foot
