"""The algorithm families: one table that the command line's presets and schedule design both read.

Each row names a family (its canonical name and the older names still accepted), its parameters
and its constructor. A parameter carries two starting values, kept apart on purpose:

- ``default``: what the command line uses when the user gives nothing (``memsgd curve --algo
  heavy_ball`` runs ``heavy_ball(0.1, 0.9)``); a string names a value taken from the problem
  (``"kappa/nu"``: zeta; ``"scale"``: the largest eigenvalue);
- ``design_start``: where [`memsgd.design.optimize_schedule`][memsgd.optimize_schedule] starts, with ``bounds`` (natural
  units) and ``scale`` (how the optimiser moves it: ``"log"``, ``"log1m"`` = ``log(1 - value)``
  for momenta, or ``"linear"``).

A family is a command-line preset when every parameter has a ``default``, and a design family
when some have a ``design_start``: those are design's variables, the others keep the
constructor's defaults (design also needs the per-step formulas, which live in ``memsgd.design``).
Every constructor also takes ``weight_decay`` (docs/math.md §9), passed through by ``construct``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np

from . import algorithms, schedules
from ._validation import positive_scalar, real_scalar

__all__ = ["Parameter", "AlgorithmFamily", "TABLE", "lookup", "canonical_name", "presets", "design_families"]


@dataclass(frozen=True)
class Parameter:
    """One parameter of a family: its name, the names it was known by, and its two starts."""

    name: str
    default: Union[float, str, None]          # the CLI's value; a str: from the problem; None: not a preset
    design_start: Optional[float] = None      # optimize_schedule's start; None: not designed
    bounds: Optional[tuple[float, float]] = None
    scale: str = "linear"                     # "log", "log1m" or "linear"
    aliases: tuple[str, ...] = ()
    keyword: Optional[str] = None             # the constructor's name for it, when not ``name``

    @property
    def argument(self) -> str:
        return self.keyword or self.name


@dataclass(frozen=True)
class AlgorithmFamily:
    """A row of ``TABLE``: ``build`` takes the parameters by keyword (``Parameter.argument``)."""

    name: str
    summary: str
    memory: int
    parameters: tuple[Parameter, ...]
    build: Callable
    aliases: tuple[str, ...] = ()

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def is_preset(self) -> bool:
        """Offered by the command line (every parameter has a ``default``)."""
        return all(p.default is not None for p in self.parameters)

    @property
    def is_designed(self) -> bool:
        """Offered by schedule design (some parameters have a ``design_start``)."""
        return any(p.design_start is not None for p in self.parameters)

    @property
    def design_parameters(self) -> tuple[Parameter, ...]:
        """The parameters schedule design optimises (those with a ``design_start``)."""
        return tuple(p for p in self.parameters if p.design_start is not None)

    def defaults(self) -> dict[str, Union[float, str]]:
        return {p.name: p.default for p in self.parameters}

    def design_starts(self) -> dict[str, float]:
        return {p.name: p.design_start for p in self.design_parameters}

    def parameter_name(self, name: str) -> Optional[str]:
        """The canonical name of a parameter given by its name or an alias; None if unknown."""
        for p in self.parameters:
            if name == p.name or name in p.aliases:
                return p.name
        return None

    def constructor(self) -> Callable:
        """``build`` taking the parameters under their table names (and ``weight_decay``): the
        constructor itself where the names agree, so a sweep's provenance names it."""
        renamed = {p.name: p.keyword for p in self.parameters if p.keyword}
        return _Renamed(self.build, renamed) if renamed else self.build

    def construct(self, **values):
        """The algorithm or schedule for ``values`` given by (canonical) parameter name; missing
        parameters keep the constructor's defaults; ``weight_decay`` is passed through."""
        return self.constructor()(**values)


class _Renamed:
    """``build`` called with some keywords renamed (qhm's ``nu`` is the table's ``nu_qhm``); it
    keeps ``build``'s name (a sweep's provenance shows it) and pickles (process pools, Dask)."""

    def __init__(self, build: Callable, renamed: dict):
        self.build, self.renamed = build, dict(renamed)
        self.__qualname__ = getattr(build, "__qualname__", type(build).__name__)
        self.__module__ = getattr(build, "__module__", __name__)

    def __call__(self, **values):
        return self.build(**{self.renamed.get(k, k): v for k, v in values.items()})


def sgd_power_law_rates(lr, power, t0, t):
    """``lr (1 + t/t0)^-power`` at the steps ``t`` (complex values allowed: design's complex step)."""
    return lr * (1.0 + np.asarray(t, float) / t0) ** (-power)


def _sgd_power_law_generator(lr, power, t0, t):
    n = len(t)
    return (sgd_power_law_rates(lr, power, t0, t), np.zeros((n, 0)), np.zeros((n, 0)), np.zeros((n, 0, 0)),
            np.zeros((n, 0)))


def _sgd_power_law(lr, power, t0, weight_decay=0.0) -> schedules.Schedule:
    """SGD with learning rate ``lr (1 + t/t0)^-power`` (memory 0)."""
    if weight_decay:
        raise ValueError("sgd_power_law takes no weight_decay (schedule design optimises without it)")
    lr, power, t0 = positive_scalar(lr, "lr"), real_scalar(power, "power"), positive_scalar(t0, "t0")
    return schedules.Schedule(0, functools.partial(_sgd_power_law_generator, lr, power, t0),
                              name=f"sgd_power_law(lr={lr:g}, power={power:g}, t0={t0:g})")


_LR = (1e-5, 4.0)                 # learning-rate bounds of the memory-1 families
_MOMENTUM = (0.0, 0.99999)

TABLE: tuple[AlgorithmFamily, ...] = (
    AlgorithmFamily("sgd", "SGD", 0,
                    (Parameter("lr", 0.1, 0.5, (1e-4, 10.0), "log"),),
                    algorithms.gd, aliases=("gd",)),
    AlgorithmFamily("sgd_power_law", "schedule: SGD with a power-law learning rate lr (1 + t/t0)^-power", 0,
                    (Parameter("lr", None, 1.0, (1e-4, 10.0), "log"),
                     Parameter("power", None, 0.3, (0.0, 5.0)),
                     Parameter("t0", None, 10.0, (0.1, 1e7), "log")),
                    _sgd_power_law),
    AlgorithmFamily("heavy_ball", "heavy ball", 1,
                    (Parameter("lr", 0.1, 0.1, _LR, "log"), Parameter("momentum", 0.9, 0.9, _MOMENTUM, "log1m")),
                    algorithms.heavy_ball),
    AlgorithmFamily("nesterov", "Nesterov momentum", 1,
                    (Parameter("lr", 0.1, 0.1, _LR, "log"), Parameter("momentum", 0.9, 0.9, _MOMENTUM, "log1m")),
                    algorithms.nesterov),
    AlgorithmFamily("am1", "heavy ball + kick (AM1)", 1,
                    (Parameter("lr", 0.1), Parameter("momentum", 0.9), Parameter("kick", 1.0)),
                    algorithms.am1),
    AlgorithmFamily("qhm", "quasi-hyperbolic momentum", 1,
                    (Parameter("lr", 0.1, 1.0, (1e-4, 100.0), "log"),
                     Parameter("momentum", 0.9, 0.99, _MOMENTUM, "log1m"),
                     Parameter("nu_qhm", 0.7, 0.7, (0.0, 1.0), aliases=("nu",), keyword="nu")),
                    algorithms.qhm),
    AlgorithmFamily("dana", "DANA (constant)", 1,
                    (Parameter("g1", 0.1), Parameter("g2", 0.1), Parameter("g3", 0.1),
                     Parameter("dana_delta", 0.1, keyword="delta")),
                    algorithms.dana),
    AlgorithmFamily("am1_power_law", "schedule: AM1 with power-law momentum", 1,
                    (Parameter("kick", 1.0, 1.0, (1e-3, 4.0), "log"),
                     Parameter("delta", 0.45, 0.3, (0.0, 0.95)),
                     Parameter("gamma", 1.0, 1.0, (0.2, 3.0), "log"),
                     Parameter("t0", 10.0, 10.0, (1e-2, 1e5), "log"),
                     Parameter("lambda_max", "scale")),     # the kick's unit 1/lambda_max; design: 1
                    schedules.am1_power_law),
    AlgorithmFamily("dana_decaying", "schedule: DANA with decaying momentum (g1 = 1)", 1,
                    (Parameter("g2", None, 0.5, (1e-4, 4.0), "log"),
                     Parameter("g3", None, 0.5, (1e-4, 10.0), "log"),
                     Parameter("delta", None, 5.0, (0.1, 1e5), "log"),
                     Parameter("power", None, 0.5, (0.0, 1.5))),
                    schedules.dana_decaying),
    AlgorithmFamily("jacobi_heavy_ball", "schedule: Jacobi heavy ball (Brakhage's nu-method)", 1,
                    (Parameter("nu_b", "kappa/nu", 0.5, (1e-2, 10.0), "log"),
                     Parameter("lambda_max", "scale", 1.0, (0.5, 100.0), "log")),
                    schedules.jacobi_heavy_ball, aliases=("jacobi",)),
    AlgorithmFamily("schedule_free_sgd", "schedule: schedule-free SGD (momentum = its beta)", 1,
                    (Parameter("lr", 1.0), Parameter("momentum", 0.9, keyword="beta")),
                    schedules.schedule_free_sgd),
)

_BY_NAME: dict[str, AlgorithmFamily] = {}
for _family in TABLE:
    for _name in (_family.name,) + _family.aliases:
        assert _name not in _BY_NAME, f"family name {_name!r} appears twice"
        _BY_NAME[_name] = _family


def canonical_name(name: str) -> Optional[str]:
    """The canonical name of the family called ``name`` (or an alias of it); None if unknown."""
    family = _BY_NAME.get(name) if isinstance(name, str) else None
    return None if family is None else family.name


def lookup(name: str) -> AlgorithmFamily:
    """The family called ``name`` or one of its aliases (KeyError if none)."""
    return _BY_NAME[name]


def presets() -> dict[str, AlgorithmFamily]:
    """The command line's presets, by canonical name, in table order."""
    return {f.name: f for f in TABLE if f.is_preset}


def design_families() -> dict[str, AlgorithmFamily]:
    """Schedule design's parametric families, by canonical name, in table order."""
    return {f.name: f for f in TABLE if f.is_designed}
