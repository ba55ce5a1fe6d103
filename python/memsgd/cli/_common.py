"""Arguments shared by subcommands: the problem, the algorithm preset, the noise, output files.

The command line only parses and prints: values are checked by ``memsgd._validation`` as
they are parsed (a bad value is an argparse error naming the option), and a preset refuses
options it does not take instead of ignoring them.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

from .. import _families, _validation
from .._json import dumps
from .._optional import require
from ..experiments.common import format_table
from ..noise import Noise
from ..spectrum import Spectrum

__all__ = ["PRESETS", "PARAMETERS", "Preset", "preset_name", "preset_list", "add_problem_args", "add_algorithm_args", "add_noise_args", "add_progress_arg",
           "spectrum_from_args", "algorithm_from_args", "noise_from_args", "algorithm_label", "problem_label",
           "noise_label", "check_figure_path", "print_table", "dump_json", "int_type", "float_type",
           "batch_type", "refuse_stray_options"]


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
    defaults: Dict[str, object]     # parameter -> default (a str: the rule taking it from the problem)
    summary: str
    aliases: Tuple[str, ...] = ()


# parameter -> (option, argparse type, help)
PARAMETERS: Dict[str, Tuple[str, Callable, str]] = {
    "lr": ("--lr", float_type("--lr", positive=True), "learning rate (> 0)"),
    "momentum": ("--momentum", float_type("--momentum"), "momentum beta"),
    "kick": ("--kick", float_type("--kick", nonnegative=True), "AM1 kick eta (>= 0)"),
    "nu_qhm": ("--nu-qhm", float_type("--nu-qhm"), "QHM nu"),
    "g1": ("--g1", float_type("--g1"), "DANA g1"),
    "g2": ("--g2", float_type("--g2"), "DANA g2"),
    "g3": ("--g3", float_type("--g3"), "DANA g3"),
    "dana_delta": ("--dana-delta", float_type("--dana-delta"), "DANA Delta"),
    "delta": ("--delta", float_type("--delta", nonnegative=True),
              "AM1 power-law schedule: alpha_eff,t = kick (1 + t/t0)^delta (>= 0)"),
    "gamma": ("--gamma", float_type("--gamma", positive=True),
              "AM1 power-law schedule: 1 - beta_t = (1 + t/t0)^-gamma (> 0)"),
    "t0": ("--t0", float_type("--t0", positive=True), "AM1 power-law schedule time scale (> 0)"),
    "nu_b": ("--nu-b", float_type("--nu-b", positive=True),
             "Jacobi heavy ball parameter (> 0); default zeta = kappa/nu of the problem"),
    "lambda_max": ("--lambda-max", float_type("--lambda-max", positive=True),
                   "Jacobi heavy ball: largest eigenvalue it is tuned for; default --scale"),
}

# The presets are the rows of the algorithm table that have command-line defaults (the same
# table schedule design reads: memsgd._families); their options are PARAMETERS.
PRESETS: Dict[str, Preset] = {
    name: Preset(family.construct, family.defaults(), family.summary, family.aliases)
    for name, family in _families.presets().items()}

# Defaults taken from the problem: the table's rule -> how the preset list shows it.
_DERIVED = {"kappa/nu": "kappa/nu", "scale": "= --scale"}


def preset_name(text: str) -> str:
    """The canonical name of the preset ``text`` names (older names such as ``gd`` accepted)."""
    name = _families.canonical_name(text)
    if name not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset {text!r}: choose from {', '.join(PRESETS)}")
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


def refuse_stray_options(args) -> None:
    """ValueError naming the given options that --algo's preset does not take."""
    preset = PRESETS[args.algo]
    stray = [PARAMETERS[k][0] for k in PARAMETERS if k not in preset.defaults and getattr(args, k, None) is not None]
    if stray:
        takes = ", ".join(PARAMETERS[k][0] for k in preset.defaults)
        raise ValueError(f"{', '.join(stray)} {'is' if len(stray) == 1 else 'are'} not an option of --algo "
                         f"{args.algo} (it takes {takes})")


def _preset_values(args) -> Dict[str, float]:
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
    return values


def algorithm_from_args(args):
    """The [`MemoryAlgorithm`][memsgd.MemoryAlgorithm] or [`Schedule`][memsgd.schedules.Schedule] the options
    describe."""
    return PRESETS[args.algo].build(**_preset_values(args))


def algorithm_label(args) -> str:
    """E.g. ``heavy_ball(lr=0.1, momentum=0.9)``."""
    values = _preset_values(args)
    return f"{args.algo}({', '.join(f'{k}={v:g}' for k, v in values.items())})"


# --- the noise -----------------------------------------------------------------------------------

def add_noise_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("noise (SE approximation, docs/math.md §3)")
    g.add_argument("--batch", type=batch_type("--batch"), default=10,
                   help="batch size B (an integer, e.g. 10 or 1e3), or 'inf' for no noise; default 10")
    g.add_argument("--tau1", type=float_type("--tau1"), default=1.0, help="default 1 (Gaussian data)")
    g.add_argument("--tau2", type=float_type("--tau2"), default=-1.0, help="default -1 (Gaussian data)")


def noise_from_args(args) -> Noise:
    return Noise(args.batch, args.tau1, args.tau2)


def noise_label(noise: Noise) -> str:
    """E.g. ``B=10, Gaussian noise`` or ``no noise``."""
    if noise.is_noiseless:
        return "no noise"
    kind = {(1.0, -1.0): "Gaussian noise", (1.0, 1.0): "translation-invariant noise"}.get(
        (noise.tau1, noise.tau2), f"tau1={noise.tau1:g}, tau2={noise.tau2:g}")
    return f"B={noise.batch_size:g}, {kind}"


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

