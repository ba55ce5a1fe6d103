"""Timing and memory helpers shared by the bench scripts (run as `python bench/NAME.py`; the
subprocesses of the memory benches import this module through ``child_env()``)."""
import os
import resource
import time


def best_time(fn, repeats):
    """Best wall time of ``repeats`` calls of ``fn`` and the last result."""
    best = float("inf")
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def rss_bytes():
    """Resident set size now (/proc/self/statm); the peak so far where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_bytes()


def peak_rss_bytes():
    """Peak resident set size of this process (``ru_maxrss``: kilobytes on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_env(**extra):
    """The environment for a bench subprocess: this folder on PYTHONPATH (to import _timing)."""
    env = dict(os.environ, **extra)
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env
