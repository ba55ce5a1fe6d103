"""OpenMP on both sides of fork(): a child forked after the core ran a thread team must not hang.

GCC's libgomp keeps its workers in a pool that a forked child inherits without the threads;
the child's first parallel region of two or more threads then waits for ever. The core runs
such a child on its calling thread (cpp/src/fork_guard.hpp). Each child runs under a deadline,
so that a hang fails the test instead of blocking the suite. Reference values: the same calls
in the parent, which the child must reproduce bit for bit (the values do not depend on threads).
"""
import multiprocessing
import os
import sys

import numpy as np
import pytest

import memsgd as ms

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin",
                                reason="needs the fork start method (Linux)")

ALGO = ms.heavy_ball(0.1, 0.9)
SPEC = ms.Spectrum.power_law(1.5, 0.75, size=300)
NOISE = ms.Noise.gaussian(10)
DEADLINE = 120.0  # seconds; each call below takes well under a second


def _calls():
    return {
        "loss_at": lambda: ms.loss_at(ALGO, SPEC, NOISE, [10 ** 3, 10 ** 6], threads=2).loss,
        "loss_curves": lambda: ms.loss_curves([ALGO, ms.gd(0.5), ms.heavy_ball(0.2, 0.5), ms.gd(0.9)], SPEC,
                                              NOISE, 2000, threads=2).loss,
        "loss_curve": lambda: ms.loss_curve(ALGO, SPEC, NOISE, 3000, threads=2).loss,
        "loss_gradient": lambda: ms.loss_gradient(ms.schedules.constant(ALGO), SPEC, NOISE, 500,
                                                  threads=2).alpha,
    }


def _child(name, conn):
    try:
        conn.send(("ok", _calls()[name]()))
    except BaseException as exc:  # report anything, never hang the parent
        conn.send(("error", repr(exc)))
    finally:
        conn.close()


def _start_a_thread_team():
    """Run parallel regions of two threads in this process (the state a fork must survive)."""
    ms.loss_curves([ALGO, ms.gd(0.5), ms.gd(0.7), ms.gd(0.9)], SPEC, NOISE, 2000, threads=2)
    ms.loss_at(ALGO, SPEC, NOISE, [10 ** 3, 10 ** 6], threads=2)


@pytest.mark.parametrize("name", sorted(_calls()))
def test_forked_child_after_openmp_does_not_hang(name):
    _start_a_thread_team()
    expected = _calls()[name]()
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(name, send))
    child.start()
    send.close()
    try:
        ready = receive.poll(DEADLINE)
        if not ready:
            pytest.fail(f"{name} in a forked child did not finish within {DEADLINE:.0f} s (libgomp after fork)")
        status, value = receive.recv()
    finally:
        if child.is_alive():
            child.kill()
        child.join(10)
    assert status == "ok", value
    assert np.array_equal(np.asarray(value), np.asarray(expected))
