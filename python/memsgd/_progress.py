"""The one progress adapter: a tqdm bar when wanted and available, otherwise nothing.

``show``: ``True`` always (tqdm required: ``memsgd[progress]``), ``False`` never, ``None`` only
when stderr is a terminal and tqdm is installed (no ``\\r`` updates in redirected logs).

Two ways in: ``progress_bar`` for code that counts its own units, and the callback
protocol ``progress(done, total, label)`` of the experiments (``Tracker`` calls it,
``progress_callback`` turns it into a bar).
"""
from __future__ import annotations

import contextlib
import sys
from typing import Callable, Optional

from . import _core
from ._optional import require

__all__ = ["ProgressBar", "progress_bar", "ProgressFn", "Tracker", "progress_callback", "run_watched", "watched"]

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

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total, desc: str = "", unit: str = "it", show=None) -> ProgressBar:
    """A ``ProgressBar`` over ``total`` units (see the module docstring for ``show``)."""
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
    """A ``progress(done, total, label)`` callable drawing a ``progress_bar`` (``show`` as
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


def run_watched(call, total, desc: str = "", unit: str = "it", show=None, counter: str = "steps_done"):
    """``call(control)`` in a worker thread, watched from this one; returns what it returns.

    ``control`` is a fresh ``_core.RunControl``: the core publishes its progress in
    ``control.<counter>`` (``steps_done`` or ``configs_done``; shown as a ``progress_bar``
    over ``total`` units) and stops early once ``control.cancel()`` is called, which this thread
    does on Ctrl-C before re-raising KeyboardInterrupt. Exceptions of the call are re-raised here.
    """
    import threading

    control = _core.RunControl()
    outcome = {}
    finished = threading.Event()  # not Thread.join: an interrupted join can return early later

    def target():
        try:
            outcome["value"] = call(control)
        except BaseException as exc:  # handed to the calling thread below
            outcome["error"] = exc
        finally:
            finished.set()

    def done():
        return min(int(getattr(control, counter)), int(total))

    with progress_bar(total, desc, unit, show) as bar:
        threading.Thread(target=target, name=f"memsgd-{desc or 'run'}", daemon=True).start()
        try:
            while not finished.wait(0.1):
                bar.set(done())
        except KeyboardInterrupt:
            control.cancel()  # the core stops at its next check
            while not finished.wait(0.1):
                pass
            raise
        bar.set(done())
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# Runs of more scalar updates than this go through a watched worker thread (progress bar,
# Ctrl-C); shorter ones call the core directly. About 0.1 s of work.
WATCH_WORK = 1e8
# Auto progress bars (progress=None) from about this much work: several seconds.
BAR_WORK = 5e9


def watched(call, work: float, progress, total: int, desc: str, unit: str, counter: str):
    """The watch policy of the library's core calls: ``call(control)`` with a progress bar over
    ``total`` units and Ctrl-C cancellation (``run_watched``) when the run is long, ``call(None)``
    directly when it is short (below ``WATCH_WORK`` scalar updates) and no bar is asked for.

    ``progress``: True / False / None as in [`memsgd.loss_curve`][memsgd.loss_curve] (None: a bar from
    ``BAR_WORK`` on, when stderr is a terminal); ``counter``: the ``RunControl`` attribute the
    core counts in (``steps_done`` or ``configs_done``).
    """
    show = progress if progress is not None else (None if work >= BAR_WORK else False)
    if show is False and work < WATCH_WORK:
        return call(None)
    return run_watched(call, total, desc, unit, show, counter)
