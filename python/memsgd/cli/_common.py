"""Arguments shared by subcommands: the problem, the algorithm preset, the noise."""
from __future__ import annotations

import argparse
import json
import math

import numpy as np

from .. import algorithms
from ..noise import Noise
from ..experiments.common import format_table
from ..spectrum import Spectrum

PRESETS = {
    "gd": ("lr",),
    "heavy_ball": ("lr", "momentum"),
    "nesterov": ("lr", "momentum"),
    "am1": ("lr", "momentum", "kick"),
    "qhm": ("lr", "momentum", "nu_qhm"),
    "dana": ("g1", "g2", "g3", "delta"),
}


def add_problem_args(p: argparse.ArgumentParser, with_power_law: bool = True) -> None:
    g = p.add_argument_group("problem (power law: lambda_k = scale k^-nu, lambda_k c_k^2 = q k^-(kappa+1))")
    if with_power_law:
        g.add_argument("--nu", type=float, default=2.0, help="eigenvalue decay exponent (> 1), default 2")
        g.add_argument("--kappa", type=float, default=1.0, help="target decay exponent (> 0), default 1")
    g.add_argument("--size", type=int, default=None, help="number of eigenvalues; omit for the infinite problem")
    g.add_argument("--scale", type=float, default=1.0, help="largest eigenvalue, default 1")
    g.add_argument("--q", type=float, default=1.0, help="target scale, default 1")


def add_algorithm_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("algorithm")
    g.add_argument("--algo", choices=sorted(PRESETS), default="heavy_ball", help="preset, default heavy_ball")
    g.add_argument("--lr", type=float, default=0.1, help="learning rate, default 0.1")
    g.add_argument("--momentum", type=float, default=0.9, help="momentum beta, default 0.9")
    g.add_argument("--kick", type=float, default=1.0, help="AM1 kick eta, default 1")
    g.add_argument("--nu-qhm", type=float, default=0.7, help="QHM nu, default 0.7")
    for name, default in (("g1", 0.1), ("g2", 0.1), ("g3", 0.1), ("delta", 0.1)):
        g.add_argument(f"--{name}", type=float, default=default, help=f"DANA {name}, default {default}")


def add_noise_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("noise (SE approximation)")
    g.add_argument("--batch", type=str, default="10", help="batch size B, or 'inf' for no noise; default 10")
    g.add_argument("--tau1", type=float, default=1.0, help="default 1 (Gaussian data)")
    g.add_argument("--tau2", type=float, default=-1.0, help="default -1 (Gaussian data)")


def spectrum_from_args(args, nu=None, kappa=None) -> Spectrum:
    return Spectrum.power_law(args.nu if nu is None else nu, args.kappa if kappa is None else kappa,
                              size=args.size, scale=args.scale, q=args.q)


def algorithm_from_args(args):
    names = PRESETS[args.algo]
    values = {n: getattr(args, n) for n in names}
    if args.algo == "qhm":
        return algorithms.qhm(values["lr"], values["momentum"], values["nu_qhm"])
    return getattr(algorithms, args.algo)(**values)


def noise_from_args(args) -> Noise:
    b = args.batch.strip().lower()
    batch = math.inf if b in ("inf", "infinity", "none") else _int(b, "--batch")
    return Noise(batch, args.tau1, args.tau2)


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer or 'inf', got {text!r}") from None


def log_times(steps: int, points: int = 20) -> np.ndarray:
    """Distinct integer times 0, 1, ..., steps spread evenly in log t."""
    if steps <= 0:
        return np.array([0])
    t = np.unique(np.round(np.logspace(0, math.log10(steps), points)).astype(int))
    return np.concatenate([[0], t])


def print_table(headers, rows) -> None:
    print(format_table(headers, rows))


def dump_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=_json_default))


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x).__name__)
