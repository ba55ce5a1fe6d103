"""Short fuzz of the pybind11 entry points (the long run is bench/fuzz_core.py).

Malformed arrays must raise Python exceptions, never crash the interpreter. The random run
is in a subprocess so that a segfault fails this test instead of killing pytest.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memsgd import _core

ROOT = Path(__file__).resolve().parents[1]


def _args(K=3, M=1, T=1, coupling=0.1, self_noise=-0.1):
    return [np.full(K, 0.5), np.ones(K), np.ones(K), np.full(T, 0.1), np.full((T, M), 0.5),
            np.full((T, M), 0.1), np.full((T, M, M), 0.5), np.zeros((T, M)), np.array([coupling]),
            np.array([self_noise])]


def _evolve(args, steps=5, **kw):
    return _core.evolve(tuple(args[:3]), tuple(args[3:8]), tuple(args[8:10]), steps, **kw)


@pytest.mark.slow
def test_random_fuzz_subprocess():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz_core.py"), "--seconds", "6",
                           "--engine", "random", "--seed", "12345"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "findings: 0" in proc.stdout
    executions = int(proc.stdout.split("executions: ")[1].split()[0])
    assert executions > 100


MALFORMED = {
    "complex": np.ones(3, dtype=complex),
    "object": np.ones(3).astype(object),
    "str": np.array(["1", "2", "3"]),
    "bytes": np.array([b"1", b"2", b"3"]),
    "datetime": np.zeros(3, dtype="datetime64[s]"),
    "None": None,
    "dict": {},
    "0-d": np.array(0.5),
    "2-d": np.ones((3, 1)),
    "zero-size": np.zeros(0),
    "wrong-length": np.ones(4),
    "nan": np.array([0.5, np.nan, 0.5]),
    "-inf": np.array([0.5, -np.inf, 0.5]),
    "ragged": [[1.0], [1.0, 2.0]],
    "huge-broadcast": np.broadcast_to(np.float64(0.5), (2 ** 40,)),
}


@pytest.mark.parametrize("slot", [0, 1, 2, 3, 8, 9], ids=["eigenvalues", "weights", "scales", "alpha", "coupling",
                                                         "self_noise"])
@pytest.mark.parametrize("bad", list(MALFORMED.values()), ids=list(MALFORMED))
def test_evolve_malformed_array(slot, bad):
    args = _args()
    args[slot] = bad
    with pytest.raises((TypeError, ValueError, MemoryError)):
        _evolve(args)


@pytest.mark.parametrize("bad", [np.array(0.5), np.ones((1, 1, 1, 1)), np.ones((2, 1)), np.ones(0), None,
                                 np.ones((1, 1), dtype=complex), np.full((1, 1), np.nan)],
                         ids=["0-d", "4-d", "T-mismatch", "empty", "None", "complex", "nan"])
@pytest.mark.parametrize("slot", [4, 5, 6, 7], ids=["b", "c", "D", "e"])
def test_evolve_malformed_memory(slot, bad):
    args = _args()
    args[slot] = bad
    with pytest.raises((TypeError, ValueError)):
        _evolve(args)


@pytest.mark.parametrize("steps", [-1, 2 ** 39, 2 ** 40, 2 ** 63 - 1, 2 ** 64, 2.0, "3", None, np.nan])
def test_evolve_bad_steps_raise_quickly(steps):
    with pytest.raises((TypeError, ValueError)):
        _evolve(_args(), steps=steps)


def test_evolve_schedule_rows_must_cover_steps():
    args = _args()
    args[3:8] = [np.full(4, 0.1), np.full((4, 1), 0.5), np.full((4, 1), 0.1), np.full((4, 1, 1), 0.5), np.zeros((4, 1))]
    with pytest.raises(ValueError, match="schedule has 4 rows of parameters, fewer than steps = 5"):
        _evolve(args, steps=5)
    assert _evolve(args, steps=4)[0].shape == (5,)


def test_evolve_per_step_noise_must_cover_steps():
    args = _args()
    args[8:10] = [np.full(4, 0.1), np.full(4, -0.1)]
    with pytest.raises(ValueError, match="per-step noise has 4 entries, fewer than steps = 5"):
        _evolve(args, steps=5)
    assert _evolve(args, steps=4)[0].shape == (5,)


def test_evolve_accepts_odd_layouts_of_valid_data():
    ref = _evolve(_args(K=6))
    strided = np.repeat(np.full(6, 0.5), 2)[::2]
    ro = np.full(6, 0.5)
    ro.setflags(write=False)
    rev = np.full(12, 0.5)[::-2]
    bcast = np.broadcast_to(np.float64(0.5), (6,))
    f32 = np.full(6, 0.5, dtype=np.float32)
    for eig in (strided, ro, rev, bcast, f32, [0.5] * 6):
        args = _args(K=6)
        args[0] = eig
        out = _evolve(args)
        np.testing.assert_array_equal(out[0], ref[0])
    D = np.asfortranarray(np.arange(4.0).reshape(2, 2)[None] * 0.1)
    args = _args(M=2)
    args[6] = D
    args2 = _args(M=2)
    args2[6] = np.ascontiguousarray(D)
    np.testing.assert_array_equal(_evolve(args)[0], _evolve(args2)[0])


def test_evolve_inputs_are_not_modified():
    args = _args(K=4, M=2, T=6)
    copies = [a.copy() for a in args]
    _evolve(args, steps=6)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)


def test_evolve_overflow_gives_inf_not_nan():
    args = _args(K=2, M=1)
    args[4] = np.array([[1e300]])
    args[5] = np.array([[1e300]])
    for overflow_only in (False, True):
        L, l, d = _evolve(args, steps=20, overflow_only=overflow_only)
        assert d >= 0
        assert not np.isnan(L).any() and not np.isnan(l).any()
        assert np.all(np.isinf(L[d:])) and np.all(np.isinf(l[d:]))
        assert np.all(np.isfinite(L[:d])) and np.all(np.isfinite(l[:d]))


@pytest.mark.parametrize("method", ["fft", "direct"])
@pytest.mark.parametrize("n", [0, 1, 2, 65, 300])
def test_renewal_sizes(method, n):
    rng = np.random.default_rng(n)
    U, V = rng.random(n), 0.1 * rng.random(n) / max(n, 1)
    L, l, _ = _core.solve_renewal(U, U, V, V, method)
    assert L.shape == (n,) and np.all(np.isfinite(L))


@pytest.mark.parametrize("bad", [np.ones((3, 1)), np.array(1.0), np.ones(3, dtype=complex), ["a"] * 3,
                                 np.array([1.0, np.inf, 1.0]), None])
def test_renewal_malformed(bad):
    good = np.ones(3)
    with pytest.raises((TypeError, ValueError)):
        _core.solve_renewal(bad, good, good, good, "fft")
    with pytest.raises((TypeError, ValueError)):
        _core.solve_renewal(good, good, good, bad, "direct")


@pytest.mark.parametrize("method", [None, 3, "FFT", "", "direct\0"])
def test_renewal_bad_method(method):
    with pytest.raises((TypeError, ValueError)):
        _core.solve_renewal(np.ones(3), np.ones(3), np.ones(3), np.ones(3), method)
