"""The one progress adapter: a tqdm bar when wanted and available, otherwise nothing.

``show``: ``True`` always (tqdm required: ``memsgd[progress]``), ``False`` never, ``None`` only
when stderr is a terminal and tqdm is installed (no ``\\r`` updates in redirected logs).
"""
from __future__ import annotations

import sys

__all__ = ["ProgressBar", "progress_bar", "run_watched"]


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
        from tqdm.auto import tqdm
    except ImportError:
        if show:
            raise ImportError("a progress bar needs tqdm: pip install 'memsgd[progress]'") from None
        return ProgressBar()
    return ProgressBar(tqdm(total=total, desc=desc, unit=unit, leave=False, mininterval=0.25))


def run_watched(call, total, desc: str = "", unit: str = "it", show=None):
    """``call(control)`` in a worker thread, watched from this one; returns what it returns.

    ``control`` is a fresh ``_core.RunControl``: the core publishes its progress in
    ``control.steps_done`` (shown as a :func:`progress_bar` over ``total`` units) and stops
    early once ``control.cancel()`` is called, which this thread does on Ctrl-C before
    re-raising KeyboardInterrupt. Exceptions of the call are re-raised here.
    """
    import threading

    from . import _core
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

    with progress_bar(total, desc, unit, show) as bar:
        threading.Thread(target=target, name=f"memsgd-{desc or 'run'}", daemon=True).start()
        try:
            while not finished.wait(0.1):
                bar.set(min(int(control.steps_done), int(total)))
        except KeyboardInterrupt:
            control.cancel()  # the core stops at its next check
            while not finished.wait(0.1):
                pass
            raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
