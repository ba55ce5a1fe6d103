import os

import pytest
from hypothesis import HealthCheck, settings

# CI runs the same examples every time (a red build is reproducible); locally hypothesis
# explores new ones on each run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


# --- Ctrl-C ---------------------------------------------------------------------------------------

# The child installs Python's own SIGINT handler first: a suite started in the background (`cmd &`
# in a script) hands its children SIGINT ignored, and then neither a real Ctrl-C nor
# _thread.interrupt_main reaches the code under test.
_CTRL_C_SCRIPT = """
import _thread, os, signal, sys, threading, time
signal.signal(signal.SIGINT, signal.default_int_handler)
{setup}
def _interrupt():
    if {real_signal}:
        os.kill(os.getpid(), signal.SIGINT)     # what a terminal's Ctrl-C sends
    else:
        _thread.interrupt_main()
threading.Timer({after}, _interrupt).start()
_start = time.perf_counter()
try:
{call}
except KeyboardInterrupt:
    print("interrupted after %.3f s" % (time.perf_counter() - _start))
"""


class CtrlC:
    """Runs code in a fresh interpreter and presses Ctrl-C ``after`` seconds into it (the timer
    starts once ``setup`` has run, so imports and problem building are never what is interrupted).

    ``ctrl_c(call, setup=...)`` runs the statement(s) ``call``, which must end in KeyboardInterrupt
    (fails otherwise, e.g. when the run finished or swallowed the interrupt) and returns the
    seconds from the start of ``call`` until the interrupt reached it, and stderr.
    ``ctrl_c.command(argv)`` runs ``memsgd.cli.main(argv)`` with a real SIGINT and returns
    ``(exit status, stdout, stderr)``. ``ctrl_c.subprocess_run(argv, ...)`` is ``subprocess.run``
    with SIGINT at its default in the child.
    """

    def __call__(self, call: str, setup: str = "", after: float = 0.5, timeout: float = 120,
                 real_signal: bool = False):
        import subprocess
        import sys
        import textwrap

        code = _CTRL_C_SCRIPT.format(setup=textwrap.dedent(setup), real_signal=real_signal, after=after,
                                     call=textwrap.indent(textwrap.dedent(call).strip(), "    "))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("interrupted after"), (out.stdout, out.stderr)
        return float(out.stdout.split()[2]), out.stderr

    @staticmethod
    def subprocess_run(argv, **kwargs):
        """``subprocess.run`` with SIGINT at its default disposition in the child, for tests of
        what a process does with Ctrl-C itself (start-up, handlers): a suite started in the
        background would hand the child SIGINT ignored."""
        import signal
        import subprocess

        return subprocess.run(argv, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)

    def command(self, argv, after: float = 1.0, timeout: float = 120):
        import subprocess
        import sys

        code = _CTRL_C_SCRIPT.format(setup="import memsgd.cli", real_signal=True, after=after,
                                     call=f"    sys.exit(memsgd.cli.main({list(argv)!r}))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
        return out.returncode, out.stdout, out.stderr


@pytest.fixture
def ctrl_c():
    """The Ctrl-C harness (:class:`CtrlC`) shared by the tests of cancellable runs."""
    return CtrlC()
