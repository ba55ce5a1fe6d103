"""Arguments shared by subcommands: the problem, the algorithm preset, the noise, output files.

The command line only parses and prints: values are checked by ``memsgd._validation`` as
they are parsed (a bad value is an argparse error naming the option), and a preset refuses
options it does not take instead of ignoring them.
"""
from __future__ import annotations

import argparse
import difflib
import math
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import _families, _method, _validation
from .._affine import ema
from .._json import dumps
from .._optional import require
from ..experiments.common import format_table
from ..noise import Noise
from ..spectrum import Spectrum

__all__ = ["PRESETS", "PARAMETERS", "Preset", "preset_name", "preset_list", "add_problem_args", "add_algorithm_args",
           "add_noise_args", "add_progress_arg",
           "spectrum_from_args", "algorithm_from_args", "noise_from_args", "algorithm_label", "problem_label",
           "noise_label", "check_figure_path", "print_table", "dump_json", "int_type", "float_type",
           "batch_type", "float_list_type", "ema_type", "refuse_stray_options", "LABEL_NOISE_HELP", "WEIGHT_DECAY_HELP",
           "EMA_HELP", "check_preset_values", "LONG_WORK", "engine_seconds", "describe_duration"]


# --- argparse types: parse text, check it with memsgd._validation ------------------------------

def _argument_type(parse: Callable, name: str) -> Callable:
    def convert(text):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = name  # argparse names the type in some messages
    return convert


def int_type(option: str, minimum: int = 0) -> Callable:
    """An integer option that also accepts ``1e5`` and ``100000.0`` (not ``1.5``)."""
    return _argument_type(lambda t: _validation.int_from_text(t, option, minimum), "integer")


def float_type(option: str, *, positive: bool = False, nonnegative: bool = False) -> Callable:
    """A finite number option (optionally > 0 or >= 0)."""
    return _argument_type(lambda t: _validation.float_from_text(t, option, positive=positive,
                                                                nonnegative=nonnegative), "number")


def float_list_type(option: str) -> Callable:
    """A comma-separated list of finite numbers, e.g. ``1e4,1e8,17``."""
    return _argument_type(lambda t: _validation.float_list_from_text(t, option), "list of numbers")


def batch_type(option: str) -> Callable:
    """A batch size option: an integer >= 1 or ``inf``."""
    return _argument_type(lambda t: _validation.batch_size_from_text(t, option), "batch size")


# --- the problem ---------------------------------------------------------------------------------

def add_problem_args(p: argparse.ArgumentParser, with_power_law: bool = True) -> None:
    g = p.add_argument_group("problem (power law: lambda_k = scale k^-nu, lambda_k c_k^2 = q k^-(kappa+1))")
    if with_power_law:
        g.add_argument("--nu", type=float_type("--nu", positive=True), default=2.0,
                       help="eigenvalue decay exponent (> 1), default 2")
        g.add_argument("--kappa", type=float_type("--kappa", positive=True), default=1.0,
                       help="target decay exponent (> 0), default 1")
    g.add_argument("--size", type=int_type("--size", 1), default=None,
                   help="number of eigenvalues; omit for the infinite problem")
    g.add_argument("--scale", type=float_type("--scale", positive=True), default=1.0,
                   help="largest eigenvalue, default 1")
    g.add_argument("--q", type=float_type("--q", positive=True), default=1.0, help="target scale, default 1")


def spectrum_from_args(args, nu=None, kappa=None) -> Spectrum:
    return Spectrum.power_law(args.nu if nu is None else nu, args.kappa if kappa is None else kappa,
                              size=args.size, scale=args.scale, q=args.q)


def problem_label(args) -> str:
    """E.g. ``power law nu=2, kappa=1 (infinite)``."""
    size = "infinite" if args.size is None else f"K={args.size}"
    extra = "".join(f", {n}={getattr(args, n):g}" for n in ("scale", "q") if getattr(args, n) != 1.0)
    return f"power law nu={args.nu:g}, kappa={args.kappa:g}{extra} ({size})"


# --- the algorithm -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Preset:
    """A named algorithm: ``build(**values)`` with the listed parameters and their defaults."""

    build: Callable
    defaults: dict[str, object]     # parameter -> default (a str: the rule taking it from the problem)
    summary: str
    aliases: tuple[str, ...] = ()


# parameter -> (option, argparse type, help)
PARAMETERS: dict[str, tuple[str, Callable, str]] = {
    "lr": ("--lr", float_type("--lr", positive=True), "learning rate (> 0)"),
    "momentum": ("--momentum", float_type("--momentum"),
                 "momentum beta, |beta| < 1 (schedule_free_sgd: its beta in [0, 1])"),
    "kick": ("--kick", float_type("--kick", nonnegative=True), "AM1 kick eta (>= 0)"),
    "nu_qhm": ("--nu-qhm", float_type("--nu-qhm"), "QHM nu"),
    "g1": ("--g1", float_type("--g1"), "DANA g1"),
    "g2": ("--g2", float_type("--g2"), "DANA g2"),
    "g3": ("--g3", float_type("--g3"), "DANA g3"),
    "dana_delta": ("--dana-delta", float_type("--dana-delta"), "DANA Delta, 0 < Delta < 2"),
    "delta": ("--delta", float_type("--delta", nonnegative=True),
              "AM1 power-law schedule: alpha_eff,t = kick (1 + t/t0)^delta (>= 0)"),
    "gamma": ("--gamma", float_type("--gamma", positive=True),
              "AM1 power-law schedule: 1 - beta_t = (1 + t/t0)^-gamma (> 0)"),
    "t0": ("--t0", float_type("--t0", positive=True), "AM1 power-law schedule time scale (> 0)"),
    "nu_b": ("--nu-b", float_type("--nu-b", positive=True),
             "Jacobi heavy ball parameter (> 0); default zeta = kappa/nu of the problem"),
    "lambda_max": ("--lambda-max", float_type("--lambda-max", positive=True),
                   "schedules (Jacobi heavy ball, AM1 power law): the largest eigenvalue their step sizes "
                   "are set for; default --scale"),
}

# The presets are the rows of the algorithm table that have command-line defaults (the same
# table schedule design reads: memsgd._families); their options are PARAMETERS.
PRESETS: dict[str, Preset] = {
    name: Preset(family.constructor(), family.defaults(), family.summary, family.aliases)
    for name, family in _families.presets().items()}

# Defaults taken from the problem: the table's rule -> how the preset list shows it.
_DERIVED = {"kappa/nu": "kappa/nu", "scale": "= --scale"}


def preset_name(text: str) -> str:
    """The canonical name of the preset ``text`` names (older names such as ``gd`` accepted)."""
    name = _families.canonical_name(text)
    if name not in PRESETS:
        known = list(PRESETS) + [a for p in PRESETS.values() for a in p.aliases]
        close = difflib.get_close_matches(str(text), known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise argparse.ArgumentTypeError(f"unknown preset {text!r}: choose from {', '.join(PRESETS)}{hint}")
    return name


def preset_list() -> str:
    """One line per preset: name (older names), summary, options with their defaults."""
    labels = {name: name + (f" ({', '.join(p.aliases)})" if p.aliases else "") for name, p in PRESETS.items()}
    width = max(map(len, labels.values()))
    lines = []
    for name, preset in PRESETS.items():
        lines.append(f"  {labels[name]:<{width}}  {preset.summary}: "
                     + ", ".join(f"{PARAMETERS[k][0]} {_DERIVED[v] if isinstance(v, str) else f'{v:g}'}"
                                 for k, v in preset.defaults.items()))
    return "\n".join(lines)


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps each line of a description on its own and keeps indented lines (the preset list) as they are."""

    def _fill_text(self, text, width, indent):
        return "\n".join(indent + line if line.startswith("  ") else super(_HelpFormatter, self)._fill_text(
            line, width, indent) for line in text.splitlines())


def add_algorithm_args(p: argparse.ArgumentParser) -> None:
    p.formatter_class = _HelpFormatter
    g = p.add_argument_group(
        "algorithm", "presets (older names in parentheses) and their options with default values (an option "
                     "the preset does not take is an error):\n" + preset_list())
    g.add_argument("--algo", type=preset_name, choices=list(PRESETS), default="heavy_ball", metavar="PRESET",
                   help="one of the presets listed above, default heavy_ball")
    for dest, (option, kind, text) in PARAMETERS.items():
        g.add_argument(option, dest=dest, type=kind, default=None, help=text)
    a = p.add_argument_group("affine model (every preset; docs/math.md §9)")
    a.add_argument("--weight-decay", type=float_type("--weight-decay", nonnegative=True), default=0.0,
                   metavar="RHO", help=WEIGHT_DECAY_HELP)
    a.add_argument("--ema", type=ema_type("--ema"), default=None, metavar="DECAY", help=EMA_HELP)


def refuse_stray_options(args) -> None:
    """ValueError naming the given options that --algo's preset does not take."""
    preset = PRESETS[args.algo]
    stray = [PARAMETERS[k][0] for k in PARAMETERS if k not in preset.defaults and getattr(args, k, None) is not None]
    if stray:
        takes = ", ".join(PARAMETERS[k][0] for k in preset.defaults)
        raise ValueError(f"{', '.join(stray)} {'is' if len(stray) == 1 else 'are'} not an option of --algo "
                         f"{args.algo} (it takes {takes})")


# Parameters that set a preset's memory factor D (docs/math.md §5): the command line's problems
# are power laws, which need |D| < 1, so other values are refused before any work (the library
# only warns: memsgd._validation.MEMORY_EIGENVALUE_RULE). parameter -> (interval, D(value), D's
# name). schedule_free_sgd's --momentum is its interpolation weight beta in [0, 1] instead. With
# weight decay rho > 0 every mode's curvature is at least rho, so the rule holds only without it,
# except for heavy ball, whose det S_lambda = beta at every curvature.
_MEMORY_FACTORS = {"momentum": ("(-1, 1)", lambda v: v, "momentum"),
                   "dana_delta": ("(0, 2)", lambda v: 1.0 - v, "1 - delta")}


def check_preset_values(algo: str, values: dict[str, object], weight_decay=0.0) -> None:
    """ValueError for a value of ``values`` (parameter -> number or array of numbers) that the
    preset ``algo`` cannot converge with on a power law (``weight_decay``: a number or the values
    of a grid axis; the rule applies where one of them is 0)."""
    decays = np.atleast_1d(np.asarray(weight_decay, dtype=float))
    factors_apply = algo == "heavy_ball" or np.any(decays == 0)
    for k, given in values.items():
        for v in np.atleast_1d(np.asarray(given, dtype=float)).ravel():
            if algo == "schedule_free_sgd" and k == "momentum":
                _validation.bounded_scalar(float(v), "--momentum (schedule_free_sgd's beta)", 0.0, 1.0)
            elif k in _MEMORY_FACTORS and factors_apply:
                interval, factor, d = _MEMORY_FACTORS[k]
                _validation.stable_memory_factor(float(v), PARAMETERS[k][0], factor(float(v)), d, interval)


def _preset_values(args) -> dict[str, float]:
    """The preset's parameters: given options, else defaults; refuses options it does not take."""
    preset = PRESETS[args.algo]
    refuse_stray_options(args)
    values = {}
    for k, default in preset.defaults.items():
        given = getattr(args, k, None)
        values[k] = given if given is not None else default
    for k, value in values.items():
        if value == "kappa/nu":
            nu, kappa = getattr(args, "nu", None), getattr(args, "kappa", None)
            if not isinstance(nu, float) or not isinstance(kappa, float):
                raise ValueError(f"--algo {args.algo} needs {PARAMETERS[k][0]} here (no single problem to take "
                                 f"zeta from)")
            values[k] = kappa / nu
        elif value == "scale":
            values[k] = args.scale
    check_preset_values(args.algo, values, getattr(args, "weight_decay", 0.0) or 0.0)
    return values


def algorithm_from_args(args):
    """The [`MemoryAlgorithm`][memsgd.MemoryAlgorithm] or [`Schedule`][memsgd.schedules.Schedule] the options
    describe (with ``--weight-decay`` and ``--ema``)."""
    algo = PRESETS[args.algo].build(**_preset_values(args), weight_decay=args.weight_decay)
    return algo if args.ema is None else ema(algo, args.ema)


def algorithm_label(args) -> str:
    """E.g. ``heavy_ball(lr=0.1, momentum=0.9)`` or ``ema(gd(lr=0.1, weight_decay=0.01), 0.9)``."""
    values = _preset_values(args)
    if args.weight_decay:
        values["weight_decay"] = args.weight_decay
    label = f"{args.algo}({', '.join(f'{k}={v:g}' for k, v in values.items())})"
    return label if args.ema is None else f"ema({label}, {args.ema:g})"


# --- the noise -----------------------------------------------------------------------------------

def add_noise_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("noise (SE approximation, docs/math.md §3)")
    g.add_argument("--batch", type=batch_type("--batch"), default=10,
                   help="batch size B (an integer, e.g. 10 or 1e3), or 'inf' for no noise; default 10")
    g.add_argument("--tau1", type=float_type("--tau1"), default=1.0, help="default 1 (Gaussian data)")
    g.add_argument("--tau2", type=float_type("--tau2"), default=-1.0, help="default -1 (Gaussian data)")
    g.add_argument("--label-noise", type=float_type("--label-noise", nonnegative=True), default=0.0,
                   metavar="SIGMA2", help=LABEL_NOISE_HELP)


# Help texts of the affine model's options, shared by the subcommands (docs/math.md §9).
LABEL_NOISE_HELP = ("variance sigma2 (>= 0) of additive label noise; L_t stays the excess risk, the population "
                    "risk is L_t + sigma2/2; default 0")
WEIGHT_DECAY_HELP = ("weight decay rho (>= 0), L2 coupled at the gradient point as torch.optim.SGD's "
                     "weight_decay; default 0")
EMA_HELP = ("read the loss at an exponential moving average of the iterates, wbar <- DECAY wbar + (1 - DECAY) w, "
            "DECAY in [0, 1) (memsgd.ema: one more auxiliary vector)")


def ema_type(option: str) -> Callable:
    """An EMA decay option: a number in [0, 1)."""
    return _argument_type(lambda t: _validation.bounded_scalar(_validation.float_from_text(t, option), option,
                                                               0.0, 1.0, high_open=True), "number")


def noise_from_args(args) -> Noise:
    return Noise(args.batch, args.tau1, args.tau2, args.label_noise)


def noise_label(noise: Noise) -> str:
    """E.g. ``B=10, Gaussian noise``, ``B=10, Gaussian noise, label noise 0.1`` or ``no noise``."""
    if noise.is_noiseless:
        return "no noise"
    kind = {(1.0, -1.0): "Gaussian noise", (1.0, 1.0): "translation-invariant noise"}.get(
        (noise.tau1, noise.tau2), f"tau1={noise.tau1:g}, tau2={noise.tau2:g}")
    label = f", label noise {noise.label_noise:g}" if noise.label_noise else ""
    return f"B={noise.batch_size:g}, {kind}{label}"


# --- runs too long to start ----------------------------------------------------------------

# The command line refuses step-by-step runs beyond this many scalar updates (100x the auto
# threshold: several minutes on two cores) before starting them, saying how long they would take,
# unless the user asks for the engine explicitly (``curve --method engine``).
LONG_WORK = 100 * _method.AUTO_WORK
# The calibration run of engine_seconds does about this much work (~10 ms).
_CALIBRATION_WORK = 4e8


def engine_seconds(algorithm, spectrum, noise, steps: int) -> float:
    """Wall time a step-by-step run of ``steps`` steps would take on this machine, extrapolated
    from a short run of the same configuration (for messages; not reproducible)."""
    from ..dynamics import loss_curve

    per_step = max(_method.engine_work(algorithm, spectrum, 1), 1.0)
    probe = int(min(steps, max(16, math.ceil(_CALIBRATION_WORK / per_step))))
    start = time.perf_counter()
    loss_curve(algorithm, spectrum, noise, probe, progress=False)
    return (time.perf_counter() - start) * steps / max(probe, 1)


def describe_duration(seconds: float) -> str:
    """E.g. ``40 s``, ``12 min``, ``3.1 h``, ``5.2 days``."""
    if seconds < 90:
        return f"{seconds:.2g} s"
    if seconds < 5400:
        return f"{seconds / 60:.2g} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.2g} h"
    return f"{seconds / 86400:.2g} days"


# --- output --------------------------------------------------------------------------------------

def add_progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: only when stderr is a terminal)")


def check_figure_path(path: str, option: str = "--plot") -> None:
    """Before any work: matplotlib is installed, the folder exists and is writable, and the
    extension names an image format."""
    require("matplotlib", "plot", f"{option}")
    from matplotlib.backend_bases import FigureCanvasBase

    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{option} must name a file, got the folder {path!r}")
    if not os.path.isdir(folder):
        raise ValueError(f"{option}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{option}: folder {folder!r} is not writable")
    kinds = FigureCanvasBase.get_supported_filetypes()
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if suffix not in kinds:
        raise ValueError(f"{option} must end in an image extension ({', '.join('.' + k for k in sorted(kinds))}), "
                         f"got {path!r}")


def print_table(headers, rows) -> None:
    print(format_table(headers, rows))


def dump_json(obj) -> None:
    """Print ``obj`` as strict JSON (non-finite numbers as ``null``)."""
    print(dumps(obj))

