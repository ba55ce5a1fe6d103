"""Bitwise determinism across thread counts, and thread safety with the GIL released.

The core adds components in fixed 8-lane groups and fixed blocks of 1024, block sums in order,
so the bits must not depend on the thread count (OMP_NUM_THREADS or the threads argument), on
whether configurations run together (loss_curves) or alone (loss_curve), or on how they are
grouped into calls. K = 9000 gives 9 blocks, so a single curve can run on several threads (the
thread policy may keep a short run on one: "forced_team" runs a team from the first step, and
tests/test_thread_policy.py hands over between a team and one thread mid-run).
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from memsgd import _core

SCRIPT = textwrap.dedent(r'''
    import hashlib, json, sys
    import numpy as np
    from memsgd import (MemoryAlgorithm, Noise, Spectrum, heavy_ball, loss_curve, loss_curves, nesterov,
                        propagators, schedules, _core)

    def h(a):
        return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float64).tobytes()).hexdigest()

    K = 9000                                  # 9 blocks; M = 1: K * 3 = 27000 >= 16384
    spec = Spectrum.power_law(1.5, 0.8, size=K)
    noise = Noise(5)
    out = {"threads": _core.max_threads()}
    out["hb"] = h(loss_curve(heavy_ball(0.4, 0.8), spec, noise, 80).loss)
    out["nesterov"] = h(loss_curve(nesterov(0.4, 0.7), spec, noise, 80).gradient_point_loss)
    out["schedule"] = h(loss_curve(schedules.am1_power_law(0.5, 0.3), spec, noise, 80).loss)
    M4 = MemoryAlgorithm(0.2, [0.3, 0.1, 0.2, 0.1], [0.1, 0.2, 0.1, 0.05], np.diag([0.5, 0.6, 0.7, 0.8]),
                         [0.0, 0.1, 0.0, 0.1])   # general kernel: K * 25 >= 16384
    out["M4"] = h(loss_curve(M4, spec, noise, 30).loss)
    gd_spec = Spectrum(np.linspace(1.0, 1e-3, 20000), np.ones(20000))  # M = 0: 20000 >= 16384
    from memsgd import gd
    out["gd"] = h(loss_curve(gd(0.9), gd_spec, noise, 60).loss)
    # weight decay: the engine's affine state (M = 0, 1 with and without e, the dense M >= 4, the
    # preconditioner's per-node decay)
    out["hb_wd"] = h(loss_curve(heavy_ball(0.4, 0.8, weight_decay=0.01), spec, noise, 80).loss)
    out["nesterov_wd"] = h(loss_curve(nesterov(0.4, 0.7, weight_decay=0.01), spec, noise, 80).gradient_point_loss)
    out["gd_wd"] = h(loss_curve(gd(0.9, weight_decay=0.01), gd_spec, noise, 60).loss)
    M4_wd = MemoryAlgorithm(*M4.parameters(), weight_decay=0.01)
    out["M4_wd"] = h(loss_curve(M4_wd, spec, noise, 30).loss)
    hb_pwd = MemoryAlgorithm(*heavy_ball(0.2, 0.8).parameters(), weight_decay=0.01, preconditioner=0.3)
    out["hb_precond_wd"] = h(loss_curve(hb_pwd, spec, noise, 80).loss)
    p = propagators(heavy_ball(0.4, 0.8), spec, noise, 80)
    out["props"] = [h(p.U), h(p.U_prime), h(p.V), h(p.V_prime)]
    p = propagators(nesterov(0.4, 0.7), spec, noise, 80)
    out["props_e"] = [h(p.U), h(p.U_prime), h(p.V), h(p.V_prime)]
    # batched: configuration-parallel (C >= threads) and chunked, against the single curves
    algos = [heavy_ball(0.4, 0.8), nesterov(0.4, 0.7), schedules.am1_power_law(0.5, 0.3), M4, gd(0.9),
             heavy_ball(0.4, 0.8, weight_decay=0.01), M4_wd, hb_pwd]
    batch = loss_curves(algos, spec, noise, 30, record=12)
    out["batch"] = h(batch.loss)
    single = [loss_curve(a, spec, noise, 30).loss[batch.steps] for a in algos]
    out["batch_equals_single"] = all(np.array_equal(batch.loss[i], single[i]) for i in range(len(algos)))
    parts = [loss_curves(algos[a:b], spec, noise, 30, record=12) for a, b in ((0, 2), (2, 3), (3, 6), (6, 8))]
    out["chunked_equals_whole"] = bool(np.array_equal(np.concatenate([p.loss for p in parts]), batch.loss))
    # the threads argument, whatever OMP_NUM_THREADS says
    out["threads_arg"] = [h(loss_curve(heavy_ball(0.4, 0.8), spec, noise, 80, threads=n).loss) for n in (1, 2, 3)]
    # a team that never falls back to one thread (the adaptive policy may on a busy machine)
    hb = heavy_ball(0.4, 0.8)
    args = ((spec.eigenvalues, spec.weights, spec.coefficients2),
            (np.array([hb.alpha]), hb.b.reshape(1, 1), hb.c.reshape(1, 1), hb.D.reshape(1, 1, 1), hb.e.reshape(1, 1)),
            (np.array([noise.coupling]), np.array([noise.self_noise])), 80)
    out["forced_team"] = [h(_core.evolve(*args, threads=n, adaptive_threads=False)[0]) for n in (1, 2, 3)]
    wd_args = (args[0], args[1] + (np.array([0.01]),), *args[2:])
    out["forced_team_wd"] = [h(_core.evolve(*wd_args, threads=n, adaptive_threads=False)[0]) for n in (1, 2, 3)]
    print(json.dumps(out))
''')


def _run(threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_DYNAMIC="false")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_bitwise_identical_for_1_2_3_threads():
    results = {n: _run(n) for n in (1, 2, 3)}
    if _core.max_threads() >= 1 and results[2]["threads"] == 1:
        pytest.skip("core built without OpenMP: nothing to compare")
    for n in (1, 2, 3):
        assert results[n]["threads"] == n
    keys = [k for k in results[1] if k != "threads"]
    for n in (1, 2, 3):
        assert results[n]["batch_equals_single"] and results[n]["chunked_equals_whole"]
        assert len(set(results[n]["threads_arg"])) == 1, "threads=1, 2, 3 differ"
        assert len(set(results[n]["forced_team"])) == 1, "forced teams of 1, 2, 3 threads differ"
        assert len(set(results[n]["forced_team_wd"])) == 1, "forced teams of 1, 2, 3 threads differ (weight decay)"
        for k in keys:
            assert results[n][k] == results[1][k], f"{k} differs between 1 and {n} threads"


THREAD_SCRIPT = textwrap.dedent(r'''
    import json, sys, threading, time
    # No forced GIL hand-offs: a thread that returns from a GIL-holding call records its end
    # time at once, so GIL-held calls would show as back-to-back intervals. (With the default
    # 5 ms interval the end stamp can wait for the GIL and make serial calls look overlapped.)
    sys.setswitchinterval(10.0)
    import numpy as np
    from memsgd import Noise, Spectrum, heavy_ball, loss_curve

    K, steps = 200000, 300                 # ~0.3 s per call: far longer than thread start-up jitter
    specs = [Spectrum(np.geomspace(1.0, 1e-4, K) * (1 + 0.01 * i), np.ones(K)) for i in range(4)]
    algo, noise = heavy_ball(0.5, 0.8), Noise(8)
    serial = [loss_curve(algo, s, noise, steps).loss for s in specs]
    barrier = threading.Barrier(4)
    intervals, results = [None] * 4, [None] * 4

    def work(i):
        barrier.wait()
        t0 = time.perf_counter()
        results[i] = loss_curve(algo, specs[i], noise, steps).loss
        intervals[i] = (t0, time.perf_counter())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    same = [bool(np.array_equal(a, b)) for a, b in zip(serial, results)]
    print(json.dumps({"same": same, "intervals": intervals}))
''')


@pytest.mark.slow
def test_python_threads_overlap_and_agree():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", THREAD_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(out["same"]), "threaded results differ from serial results"
    iv = sorted(out["intervals"])
    # Each call overlaps at least one other call in time ...
    for i, (a, b) in enumerate(iv):
        assert any(a < d and c < b for j, (c, d) in enumerate(iv) if j != i), iv
    # ... and the calls together cover clearly less wall time than their summed durations.
    # With the GIL held through the core they would run one after another (union == sum).
    # (On an idle machine all four are in flight at once; a loaded machine staggers the
    # starts, so "all at one instant" would be a scheduling assertion, not a GIL one.)
    union, cur_a, cur_b = 0.0, iv[0][0], iv[0][1]
    for a, b in iv[1:]:
        if a > cur_b:
            union += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    union += cur_b - cur_a
    total = sum(b - a for a, b in iv)
    assert total > 1.25 * union, (total, union, iv)
