"""Fuzz the pybind11 entry points ``_core.evolve``, ``_core.evolve_batch`` and ``_core.solve_renewal``
with malformed input.

Only Python exceptions are acceptable: TypeError / ValueError (and OverflowError for out of
range integers, MemoryError for an impossible allocation requested through a broadcast view).
A crash (segfault, abort) kills the process; any other exception type, or NaN in an output,
is a *finding* and is printed.

Engines:
  --engine atheris   libFuzzer-driven (``pip install atheris``); the default when it imports
  --engine hypothesis  hypothesis-driven (the fallback when atheris is missing)
  --engine random    a seeded random generator (no dependencies); used by tests/test_fuzz.py

    python bench/fuzz_core.py --minutes 10            # long run (atheris if available)
    python bench/fuzz_core.py --seconds 5 --engine random --seed 1

Prints the execution count and the findings; exits 1 if there were findings.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time

import numpy as np

from memsgd import _core

ALLOWED = (TypeError, ValueError, OverflowError, MemoryError)

STEPS = [0, 1, 2, 3, 7, 33, -1, -2 ** 63, 2 ** 36, 2 ** 39, 2 ** 40, 2 ** 40 - 1, 2 ** 62, 2 ** 63 - 1, 2 ** 64,
         3.0, 2.5, "3", None, np.int64(4), np.int32(-5), np.uint64(2 ** 63), True, float("nan")]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.1, 1e-300, 1e300, -1e300, 5e-324, float("inf"), float("-inf"), float("nan"),
          2e30, 1.7976931348623157e308]
SCALAR_ARGS = [0.0, 0.5, -0.5, 1.0, float("nan"), float("inf"), None, "x", 1j, np.float32(0.3), 10 ** 400]
METHODS = ["fft", "direct", "FFT", "", "direct\0", None, 3, b"fft", "fft" * 100]


class Source:
    """Choices from a libFuzzer byte string (atheris) or a random generator."""

    def __init__(self, fdp=None, rng=None, draw=None):
        self.fdp, self.rng, self.draw = fdp, rng, draw

    def int(self, lo, hi):
        if self.fdp is not None:
            return self.fdp.ConsumeIntInRange(lo, hi)
        if self.draw is not None:
            return self.draw(lo, hi)
        return self.rng.randint(lo, hi)

    def pick(self, seq):
        return seq[self.int(0, len(seq) - 1)]

    def float(self):
        if self.int(0, 3) == 0:
            return self.pick(FLOATS)
        if self.fdp is not None:
            return self.fdp.ConsumeRegularFloat()
        if self.draw is not None:
            return self.int(-2000, 2000) / 1000.0
        return self.rng.uniform(-2.0, 2.0)

    def coin(self, p_num=1, p_den=2):
        return self.int(0, p_den - 1) < p_num


def make_array(src: Source, shape, positive=False):
    """An array for an argument that should have ``shape``: often right, often malformed."""
    mode = 0 if src.coin(6, 7) else src.int(9, 24)  # mostly well formed: reach the kernel
    n = int(np.prod(shape)) if len(shape) else 1

    def good():
        # bulk values from one drawn seed (cheap for every engine), a few drawn values planted
        rng = np.random.default_rng(src.int(0, 2 ** 32 - 1))
        vals = (0.1 + 0.9 * rng.random(n)) * (1.0 if positive or src.coin(3, 4) else rng.choice([-1.0, 1.0], n))
        if n and src.coin(1, 3):
            for _ in range(src.int(1, 3)):
                vals[src.int(0, n - 1)] = src.float()
        vals = vals.reshape(shape)
        return np.abs(vals) if positive else vals

    if mode <= 8:
        return good()
    if mode == 9:   # wrong dtype, numeric
        return good().astype(src.pick([np.float32, np.float16, np.int64, np.int8, np.uint8, np.bool_, np.longdouble]))
    if mode == 10:  # complex / object / str / bytes / datetime
        base = good()
        kind = src.int(0, 5)
        if kind == 0:
            return base.astype(np.complex128)
        if kind == 1:
            return base.astype(object)
        if kind == 2:
            return base.astype(str)
        if kind == 3:
            return base.astype("S8")
        if kind == 4:
            return np.zeros(shape, dtype="datetime64[s]")
        return np.array([object()] * n, dtype=object).reshape(shape) if n else np.zeros(shape, dtype=object)
    if mode == 11:  # non-contiguous view of the right shape
        big = np.repeat(good()[..., None], 3, axis=-1) if len(shape) else good()
        return big[..., 1] if len(shape) else big
    if mode == 12:  # Fortran order
        return np.asfortranarray(good())
    if mode == 13:  # read-only
        a = good()
        a.setflags(write=False)
        return a
    if mode == 14:  # zero-size
        return np.zeros((0,) * max(len(shape), 1))
    if mode == 15:  # 0-d
        return np.array(src.float())
    if mode == 16:  # wrong ndim
        if src.coin():
            return good().reshape(shape + (1,))
        return good().reshape(-1) if len(shape) > 1 else good().reshape(1, -1)
    if mode == 17:  # wrong length
        s = list(shape) or [1]
        s[src.int(0, len(s) - 1)] += src.pick([-1, 1, 5])
        s = [max(x, 0) for x in s]
        return np.ones(s)
    if mode == 18:  # NaN / inf planted
        a = good()
        if a.size:
            a.reshape(-1)[src.int(0, a.size - 1)] = src.pick([np.nan, np.inf, -np.inf])
        return a
    if mode == 19:  # python list / nested list / ragged
        a = good()
        return a.tolist() if src.coin() else [[1.0, 2.0], [3.0]]
    if mode == 20:  # None / scalar / string
        return src.pick([None, 1.0, "abc", b"xyz", 3, {}, object()])
    if mode == 21:  # zero-stride broadcast view of the right shape (read-only)
        return np.broadcast_to(np.float64(src.float()), shape)
    if mode == 22:  # huge virtual array (zero strides): a copy would need terabytes
        return np.broadcast_to(np.float64(0.5), (2 ** 40,) + tuple(shape[1:]))
    if mode == 23:  # negative strides
        a = good()
        return a[::-1] if a.ndim else a
    return np.ma.masked_array(good(), mask=False) if src.coin() else memoryview(good().copy())


def fuzz_evolve(src: Source):
    K = src.pick([1, 2, 3, 17, 64])
    M = src.pick([0, 1, 2, 3, 4, 6])
    T = src.pick([1, 1, 2, 5, 40])
    Tn = src.pick([1, 1, T, 40])
    args = [make_array(src, (K,), positive=True), make_array(src, (K,), positive=True),
            make_array(src, (K,), positive=True), make_array(src, (T,)), make_array(src, (T, M)),
            make_array(src, (T, M)), make_array(src, (T, M, M)), make_array(src, (T, M)),
            noise_array(src, (Tn,), 0.05), noise_array(src, (Tn,), -0.05)]
    steps = src.pick(STEPS) if src.coin(1, 3) else src.int(0, 40)
    kwargs = {}
    if src.coin():
        kwargs["initial_ggt"] = src.pick([True, False, 0, 1, None, "yes"])
    if src.coin():
        kwargs["overflow_only"] = src.pick([True, False, None, "no"])
    if src.coin(1, 4):
        kwargs["threads"] = src.pick([0, 1, 2, 3, -1, 2 ** 31, None])
    out = _core.evolve(tuple(args[:3]), tuple(args[3:8]), tuple(args[8:10]), steps, **kwargs)
    loss, gp, diverged = out
    return check_outputs("evolve", loss, gp, diverged)


def noise_array(src: Source, shape, unit):
    if src.coin(1, 6):
        return src.pick(SCALAR_ARGS) if src.coin() else make_array(src, shape)
    return np.full(shape, unit * src.int(0, 4))


def check_outputs(name, loss, gp, diverged):
    assert isinstance(diverged, int)
    n = loss.shape[0]
    assert loss.shape == gp.shape == (n,) and loss.dtype == np.float64
    findings = []
    if np.isnan(loss).any() or np.isnan(gp).any():
        findings.append(f"{name} returned NaN")
    d = diverged if diverged >= 0 else n
    if not (np.all(np.isinf(loss[d:])) and np.all(np.isinf(gp[d:]))):
        findings.append(f"{name}: not inf from diverged_at on")
    if not (np.all(np.isfinite(loss[:d])) and np.all(np.isfinite(gp[:d]))):
        findings.append(f"{name}: not finite before diverged_at")
    return findings


def fuzz_evolve_batch(src: Source):
    C = src.pick([1, 2, 3, 5])
    K = src.pick([1, 3, 17])
    T = src.pick([1, 5])
    steps = src.pick(STEPS) if src.coin(1, 4) else src.int(0, 5)
    spec = (make_array(src, (K,), positive=True), make_array(src, (K,), positive=True),
            make_array(src, (K,), positive=True))
    algos, noises = [], []
    for _ in range(C):
        M = src.pick([0, 1, 3, 5])
        algos.append(tuple(make_array(src, s) for s in ((T,), (T, M), (T, M), (T, M, M), (T, M))))
        noises.append((noise_array(src, (1,), 0.05), noise_array(src, (1,), -0.05)))
    if src.coin(1, 8):
        algos[src.int(0, C - 1)] = src.pick([None, 1.0, (np.ones(1),), "x"])
    record = None
    if src.coin():
        record = src.pick([np.array([0, 1]), np.array([1, 0]), np.array([-1]), np.array([0, 2 ** 40]),
                           np.arange(3), np.array([0.5]), "x", np.zeros((1, 1), dtype=np.int64)])
    # With a few recorded steps a huge horizon is valid (and would run for days): cancel it
    # from another thread, which also exercises cancellation.
    control = _core.RunControl()
    timer = threading.Timer(0.02, control.cancel)
    timer.start()
    try:
        loss, diverged = _core.evolve_batch([spec] * C, algos, noises, steps, record,
                                            threads=src.pick([0, 1, 2]), control=control)
    except RuntimeError as exc:
        if str(exc) != "run cancelled":
            raise
        return []
    finally:
        timer.cancel()
    findings = []
    for i in range(C):
        findings += check_outputs("evolve_batch", loss[i], loss[i], int(diverged[i]))
    return findings


def fuzz_renewal(src: Source):
    n = src.pick([0, 1, 2, 3, 64, 65, 129, 300])
    args = [make_array(src, (n,)) for _ in range(4)]
    method = src.pick(METHODS) if src.coin(1, 4) else src.pick(["fft", "direct"])
    L, l, _ = _core.solve_renewal(*args, method)
    assert L.shape == l.shape
    return []


class Stats:
    def __init__(self):
        self.executions = 0
        self.accepted = 0
        self.rejected = {}
        self.findings = {}
        self.start = time.time()

    def report(self, file=sys.stdout):
        dt = time.time() - self.start
        print(f"executions: {self.executions} in {dt:.1f} s ({self.executions / max(dt, 1e-9):.0f}/s); "
              f"ran to completion: {self.accepted}; rejected with: "
              + ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())), file=file, flush=True)
        print(f"findings: {sum(self.findings.values())} " + (repr(self.findings) if self.findings else ""),
              file=file, flush=True)


STATS = Stats()


def one_input(src: Source):
    STATS.executions += 1
    target = src.pick([fuzz_evolve, fuzz_evolve, fuzz_evolve_batch, fuzz_renewal])
    try:
        found = target(src)
        STATS.accepted += 1
    except ALLOWED as exc:
        name = type(exc).__name__
        STATS.rejected[name] = STATS.rejected.get(name, 0) + 1
        msg = str(exc)
        if not msg:
            found = [f"{name} without a message"]
        else:
            found = []
    except Exception as exc:  # a finding: wrong exception type
        found = [f"{type(exc).__name__}: {str(exc)[:200]}"]
    for f in found:
        if f not in STATS.findings:
            print("FINDING:", f, flush=True)
        STATS.findings[f] = STATS.findings.get(f, 0) + 1
    if STATS.executions % 20000 == 0:
        STATS.report()


def run_random(seconds: float, seed: int):
    rng = random.Random(seed)
    src = Source(rng=rng)
    end = time.time() + seconds
    while time.time() < end:
        for _ in range(50):
            one_input(src)


def run_hypothesis(seconds: float):
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=50, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def test_one(data):
        one_input(Source(draw=lambda lo, hi: data.draw(st.integers(lo, hi))))

    end = time.time() + seconds
    while time.time() < end:
        test_one()


def run_atheris(seconds: float):
    import atheris

    # Coverage of the harness's own branches (which malformation, which entry point) guides
    # libFuzzer; the C++ core is not instrumented.
    g = globals()
    for name in ("make_array", "noise_array", "fuzz_evolve", "fuzz_evolve_batch", "fuzz_renewal", "one_input"):
        g[name] = atheris.instrument_func(g[name])
    for name in ("int", "pick", "float", "coin"):
        setattr(Source, name, atheris.instrument_func(getattr(Source, name)))

    def test_one(data: bytes):
        one_input(Source(fdp=atheris.FuzzedDataProvider(data)))

    import atexit
    atexit.register(STATS.report)
    argv = [sys.argv[0], f"-max_total_time={int(seconds)}", "-rss_limit_mb=8192", "-print_final_stats=1",
            "-max_len=4096"]
    atheris.Setup(argv, test_one)
    atheris.Fuzz()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--engine", choices=["atheris", "hypothesis", "random", "auto"], default="auto")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    seconds = a.seconds if a.seconds is not None else 60.0 * (a.minutes if a.minutes is not None else 1.0)
    engine = a.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            try:
                import hypothesis  # noqa: F401
                engine = "hypothesis"
            except ImportError:
                engine = "random"
    print(f"fuzzing memsgd._core for {seconds:.0f} s with engine={engine}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", flush=True)
    np.seterr(all="ignore")
    if engine == "atheris":
        run_atheris(seconds)
    elif engine == "hypothesis":
        run_hypothesis(seconds)
    else:
        run_random(seconds, a.seed)
    STATS.report()
    return 1 if STATS.findings else 0


if __name__ == "__main__":
    sys.exit(main())
