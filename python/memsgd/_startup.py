"""Ctrl-C while the ``memsgd`` command is still starting ends in one line, not a traceback.

The command imports numpy, scipy and the core before ``memsgd.cli.main`` runs (about a
second), outside any ``try`` of its own: the package is imported first, by the console script or
by ``python -m memsgd``. So the package's first import installs, *only when this process is that
command*, a SIGINT handler that prints ``memsgd: interrupted`` and exits with status 130 (as the
command does for a Ctrl-C later); ``memsgd.cli.main`` puts Python's own handler back
(``restore``) as soon as it runs, so a run is interrupted as usual (KeyboardInterrupt, which
the core's long loops honour). A library user's process is never touched.
"""
from __future__ import annotations

import os
import signal
import sys

__all__ = ["restore"]

_NAMES = ("memsgd", "memsgd.exe", "memsgd-script.py")


def _is_command() -> bool:
    """True in ``memsgd ...`` (the console script) and ``python -m memsgd[.cli] ...``."""
    if os.path.basename(sys.argv[0] if sys.argv else "") in _NAMES:
        return True
    argv = getattr(sys, "orig_argv", [])          # the interpreter's own command line (Python >= 3.10)
    for i, arg in enumerate(argv[:-1]):
        if arg == "-m":
            return argv[i + 1] in ("memsgd", "memsgd.cli")
    return False


def _interrupted(signum, frame):  # pragma: no cover - runs in the command's process only
    try:
        sys.stderr.write("memsgd: interrupted\n")
        sys.stderr.flush()
    finally:
        os._exit(130)   # nothing written yet and no state to save: no Python teardown mid-import


def restore() -> None:
    """Python's own SIGINT handler again (KeyboardInterrupt), if ``install`` replaced it."""
    if signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def install() -> None:
    """The quiet handler, in the command's process, while Python's default one is in place."""
    try:
        if _is_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _interrupted)
    except ValueError:  # not the main thread (an import from a worker thread): leave signals alone
        pass


install()
