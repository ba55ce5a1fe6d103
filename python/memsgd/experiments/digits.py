"""The paper's MNIST experiment (Appendix M; docs/math.md §7b) on scikit-learn's 8x8 digits.

One hidden layer in the NTK scaling, ``f(x) = N^(-1/2) sum_i a_i tanh(w_i . x)`` with
``N = 1000`` hidden units and 10 outputs (``a_i`` in R^10), both layers trained, on the 1797
standardised digits with one-hot targets and the loss ``L = 1/(2n) sum_x |f(x) - y(x)|^2``.
Every algorithm starts from the same initialisation (``w_i ~ N(0, I/64)``, ``a_i ~ N(0, I)``)
and sees the same sequence of mini-batches (batch size 32, drawn with replacement); the
full-batch training loss is evaluated at ~60 log-spaced steps.

Algorithms (``lambda_max``: the largest Hessian eigenvalue of the full-batch loss at
initialisation, by 30 power iterations, a stated estimate of the top NTK eigenvalue):

- SGD, ``lr = eta = 1 / lambda_max``;
- heavy ball, ``momentum = 0.9``, ``lr = eta (1 - 0.9)``: the same effective learning rate eta;
- Jacobi heavy ball (``schedules.jacobi_heavy_ball(nu_b=1, lambda_max)``): fast without noise,
  expected to diverge with mini-batch noise;
- AM1 with power-law momentum (``schedules.am1_power_law(kick=eta, delta=0.5, gamma=1, t0=10)``):
  ``1 - beta_t = (1 + t/10)^-1``, ``alpha_eff,t = eta (1 + t/10)^0.5``; expected to reach a lower
  training loss than SGD and heavy ball at equal steps.

The optimizers are [`memsgd.torch.AM1`][memsgd.torch.AM1] (heavy ball = AM1 with kick 0; SGD is
``torch.optim.SGD``). Use [`run`][memsgd.experiments.digits.run] from Python or ``memsgd reproduce digits`` (its only
command line). The network is ``memsgd.experiments.digits_model``, the Hessian estimate
``memsgd.experiments.hessian``, the data [`memsgd.data.load_digits`][memsgd.data.load_digits]. Needs the extras
``torch`` and ``data`` (one ``ImportError`` naming both when missing).
"""
from __future__ import annotations

import math
import os
import time
from typing import Callable, Optional

import numpy as np

from .._optional import require_all
from .._steps import log_spaced_steps
from .._validation import nonnegative_int, positive_int, real_scalar
from .common import fmt, format_table, prepare_out_dir, write_json
from .network_training import BLOWUP_FACTOR, train_run

__all__ = ["run"]

HIDDEN = 1000
CLASSES = 10
HB_MOMENTUM = 0.9
AM1_DELTA = 0.5
AM1_T0 = 10.0
JACOBI_NU = 1.0


def run(steps: int = 10_000, batch_size: int = 32, seed: int = 0, out_dir: Optional[str] = ".",
        progress: Optional[Callable[[int, int, str], None]] = None, *, hidden: int = HIDDEN,
        delta: float = AM1_DELTA, threads: Optional[int] = 1) -> dict:
    """Train SGD, heavy ball, Jacobi HB and AM1 on the digits; return the table as a dict.

    Args:
        steps: training steps per algorithm (>= 1; the paper-like setting is >= 10^4).
        batch_size: mini-batch size (>= 1).
        seed: seed of the initialisation (``seed``) and of the batch sequence (``seed + 1``).
        out_dir: directory for ``digits_curves.png`` and ``digits.json`` (``None``: write nothing).
        progress: ``None`` or a callable ``progress(done, total, label)`` called every few
            hundred steps (``memsgd reproduce digits`` turns it into a progress bar).
        hidden: N, the number of hidden units (default 1000).
        delta: AM1 power-law exponent (default 0.5).
        threads: torch intra-op threads during the run (default 1: the network is small, and one
            thread is fastest and immune to oversubscription); ``None`` leaves torch's setting.

    Returns:
        dict with ``table`` (str), ``rows`` (one dict per algorithm: name, hyperparameters,
        final/min loss, blew_up_at: the first evaluated step with L > BLOWUP_FACTOR L_0, accuracy),
        ``curves`` (``{name: {"t": [...], "loss": [...]}}``),
        ``checks`` (``jacobi_hb_blew_up``, ``am1_below_sgd_and_hb``), ``lambda_max``, ``config``,
        ``files`` and ``seconds``.

    Examples:
        A few steps of a small network (needs torch and scikit-learn: ``pip install 'memsgd[torch,data]'``):

        >>> from memsgd.experiments import digits
        >>> result = digits.run(steps=20, batch_size=8, out_dir=None, hidden=50)
        >>> "table" in result and "curves" in result
        True
    """
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size")
    hidden = positive_int(hidden, "hidden")
    seed = nonnegative_int(seed, "seed")
    delta = real_scalar(delta, "delta")
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    if threads is not None:
        threads = positive_int(threads, "threads")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable (done, total, label), got {type(progress).__name__}")
    torch, _ = require_all([("torch", "torch"), ("sklearn", "data")], "memsgd reproduce digits")
    out_dir = prepare_out_dir(out_dir)

    from .. import schedules
    from ..data import load_digits, one_hot
    from ..torch import AM1
    from .digits_model import forward, init_params, mse_loss
    from .hessian import top_hessian_eigenvalue

    t_start = time.perf_counter()
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        X_np, y_np = load_digits()
        X = torch.tensor(X_np, dtype=torch.float32)
        Y = torch.tensor(one_hot(y_np, CLASSES), dtype=torch.float32)
        labels = torch.tensor(y_np)
        d = X.shape[1]
        lambda_max = top_hessian_eigenvalue(init_params(d, hidden, CLASSES, seed),
                                            lambda ps: mse_loss(ps, X, Y), seed + 2)
        eta = 1.0 / lambda_max
        algorithms = {
            "SGD": (dict(lr=eta), lambda ps: torch.optim.SGD(ps, lr=eta)),
            "heavy ball": (dict(lr=eta * (1 - HB_MOMENTUM), momentum=HB_MOMENTUM),
                           lambda ps: AM1(ps, lr=eta * (1 - HB_MOMENTUM), momentum=HB_MOMENTUM, kick=0.0)),
            "Jacobi HB": (dict(nu_b=JACOBI_NU, lambda_max=lambda_max),
                          lambda ps: AM1(ps, schedule=schedules.jacobi_heavy_ball(JACOBI_NU, lambda_max))),
            "AM1": (dict(kick=eta, delta=delta, gamma=1.0, t0=AM1_T0),
                    lambda ps: AM1(ps, schedule=schedules.am1_power_law(eta, delta, 1.0, AM1_T0))),
        }
        times = log_spaced_steps(steps, 61)
        total = steps * len(algorithms)
        every = max(1, min(500, steps // 20))
        curves, rows = {}, []
        for k, (name, (hyper, make)) in enumerate(algorithms.items()):
            params = init_params(d, hidden, CLASSES, seed)
            trained = train_run(params, make(params), mse_loss, X, Y, batch_size=batch_size, steps=steps,
                                eval_times=times, seed=seed + 1, report_every=every,
                                report=None if progress is None else
                                (lambda done, k=k, name=name: progress(k * steps + done, total, name)))
            ts, ls, blew_up_at = trained["t"], trained["loss"], trained["blew_up_at"]
            if progress is not None:
                progress((k + 1) * steps, total, name)
            with torch.no_grad():
                acc = float((forward(params, X).argmax(dim=1) == labels).float().mean())
            curves[name] = {"t": ts, "loss": ls}
            final = ls[-1] if blew_up_at is None else float("inf")
            finite = [v for v in ls if math.isfinite(v)]
            rows.append(dict(algorithm=name, hyperparameters=hyper, final_loss=final,
                             min_loss=min(finite) if finite else float("nan"),
                             blew_up_at=blew_up_at,
                             train_accuracy=acc if blew_up_at is None else None))
    finally:
        if threads is not None:
            torch.set_num_threads(old_threads)

    by_name = {r["algorithm"]: r for r in rows}
    checks = {
        "jacobi_hb_blew_up": by_name["Jacobi HB"]["blew_up_at"] is not None,
        "am1_below_sgd_and_hb": (by_name["AM1"]["blew_up_at"] is None and
                                 by_name["AM1"]["final_loss"] < by_name["SGD"]["final_loss"] and
                                 by_name["AM1"]["final_loss"] < by_name["heavy ball"]["final_loss"]),
    }
    headers = ["algorithm", "hyperparameters", f"L(T={steps})", "min L", "blew up at", "train acc"]
    table_rows = [[r["algorithm"], ", ".join(f"{k}={_short(v)}" for k, v in r["hyperparameters"].items()),
                   fmt(r["final_loss"], ".3e"), fmt(r["min_loss"], ".3e"),
                   "-" if r["blew_up_at"] is None else str(r["blew_up_at"]),
                   fmt(r["train_accuracy"], ".4f")] for r in rows]
    table = (f"# digits (sklearn 8x8, n=1797, standardised), f = N^-1/2 sum a_i tanh(w_i.x), N={hidden}, "
             f"MSE, batch {batch_size}, seed {seed}, lambda_max = {lambda_max:.4g} (Hessian at init), "
             f"eta = 1/lambda_max\n" + format_table(headers, table_rows) +
             f"\n# Jacobi HB blew up (L > {BLOWUP_FACTOR:g} L_0): {checks['jacobi_hb_blew_up']}; "
             f"AM1 below SGD and heavy ball at T: {checks['am1_below_sgd_and_hb']}")
    result = dict(table=table, rows=rows, curves=curves, checks=checks, lambda_max=lambda_max,
                  config=dict(steps=steps, batch_size=batch_size, seed=seed, hidden=hidden, delta=delta,
                              activation="tanh", loss="0.5 * mean_x |f(x) - y|^2", eval_times=times.tolist()),
                  files=[])
    if out_dir is not None:
        from ..plotting import plot_curves
        png = os.path.join(out_dir, "digits_curves.png")
        dense = {}
        for name, c in curves.items():
            arr = np.full(steps + 1, np.nan)
            arr[c["t"]] = c["loss"]
            dense[name] = arr
        plot_curves(dense, png, title=f"digits: one hidden layer N={hidden}, MSE, batch {batch_size} "
                                      f"(full-batch training loss)")
        js = os.path.join(out_dir, "digits.json")
        result["files"] = [png, js]
        result["seconds"] = time.perf_counter() - t_start
        write_json(js, {k: v for k, v in result.items() if k != "files"})
    result["seconds"] = time.perf_counter() - t_start
    return result


def _short(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)
