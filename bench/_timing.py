"""Timing helper shared by the bench scripts (run as `python bench/NAME.py`)."""
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
