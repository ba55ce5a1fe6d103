"""The one progress adapter: a tqdm bar when wanted and available, otherwise nothing.

``show``: ``True`` always (tqdm required: ``memsgd[progress]``), ``False`` never, ``None`` only
when stderr is a terminal and tqdm is installed (no ``\\r`` updates in redirected logs).

Two ways in: :func:`progress_bar` for code that counts its own units, and the callback
protocol ``progress(done, total, label)`` of the experiments (:class:`Tracker` calls it,
:func:`progress_callback` turns it into a bar).
"""
from __future__ import annotations

import contextlib
import sys
from typing import Callable, Optional

from ._optional import require

__all__ = ["ProgressBar", "progress_bar", "ProgressFn", "Tracker", "progress_callback"]

# progress(done, total, label): called after each unit of work of an experiment.
ProgressFn = Optional[Callable[[int, int, str], None]]


class ProgressBar:
    """``update(n)`` adds n units, ``set(n)`` moves to n; a no-op when disabled."""

    def __init__(self, bar=None):
        self._bar = bar

    @property
    def n(self) -> int:
        return 0 if self._bar is None else int(self._bar.n)

    def update(self, n: int = 1) -> None:
        if self._bar is not None and n:
            self._bar.update(n)

    def set(self, n: int) -> None:
        if self._bar is not None and n != self._bar.n:
            self._bar.update(n - self._bar.n)

    def set_total(self, total: int) -> None:
        if self._bar is not None and self._bar.total != total:
            self._bar.total = total

    def set_label(self, label: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(str(label)[:40], refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total, desc: str = "", unit: str = "it", show=None) -> ProgressBar:
    """A :class:`ProgressBar` over ``total`` units (see the module docstring for ``show``)."""
    if show is not None and not isinstance(show, bool):
        raise TypeError(f"progress must be True, False or None, got {type(show).__name__}")
    if show is False or (show is None and not sys.stderr.isatty()):
        return ProgressBar()
    try:
        tqdm_auto = require("tqdm.auto", "progress", "a progress bar")
    except ImportError:
        if show:
            raise
        return ProgressBar()
    return ProgressBar(tqdm_auto.tqdm(total=total, desc=desc, unit=unit, leave=False, mininterval=0.25))


class Tracker:
    """Counts units of work and reports each to ``progress(done, total, label)`` (or to nobody)."""

    def __init__(self, progress: ProgressFn, total: int):
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be None or a callable (done, total, label), got {type(progress).__name__}")
        self.progress, self.total, self.done = progress, int(total), 0

    def step(self, label: str = "") -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done), label)


@contextlib.contextmanager
def progress_callback(desc: str = "", unit: str = "it", show=None):
    """A ``progress(done, total, label)`` callable drawing a :func:`progress_bar` (``show`` as
    there), or ``None`` when no bar is shown; the bar is closed on exit."""
    holder = {}

    def progress(done, total, label=""):
        bar = holder.get("bar")
        if bar is None:
            bar = holder["bar"] = progress_bar(total, desc, unit, show)
        bar.set_total(total)
        bar.set_label(label)
        bar.set(done)

    if show is not None and not isinstance(show, bool):
        raise TypeError(f"progress must be True, False or None, got {type(show).__name__}")
    if show is False or (show is None and not sys.stderr.isatty()):
        yield None
        return
    if show:  # fail before the work starts, not at its first unit
        require("tqdm.auto", "progress", "a progress bar")
    try:
        yield progress
    finally:
        if "bar" in holder:
            holder["bar"].close()
