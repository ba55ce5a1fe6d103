"""A resumed sweep store verifies what it reads (issue 18 item 4): each defect done for real --
a deleted chunk, a flipped byte, a writer killed in the middle of a block, two processes creating
one store, a Dask cluster that loses every worker -- and the resumed sweep is bitwise the
uninterrupted one. The harness (grid, SIGKILLed child, counting executor) is test_sweep_store's.
"""
import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import memsgd
from memsgd import sweep
from tests._counting_executor import CountingExecutor
from tests.test_sweep_store import GRID, KW, C, assert_same_sweep, computed_mask

from ._extras import need

xr = need("xarray")
zarr = need("zarr")

CHUNK = 4       # configurations per block (blocks of shape (1, 2, 2) over lr x momentum x batch_size)


@pytest.fixture(scope="module")
def reference():
    return sweep(**KW)


@pytest.fixture
def complete_store(tmp_path):
    store = tmp_path / "sweep.zarr"
    sweep(**KW, store=store, chunk_size=CHUNK)
    return store


def chunk_file(store, name, block=(2, 0, 0)):
    """The chunk file of array ``name`` that holds the block ``block`` (block indices)."""
    arr = zarr.open_group(str(store), mode="r")[name]
    coords = tuple(block) + (0,) * (len(arr.shape) - len(block))
    return store / name / arr.metadata.encode_chunk_key(coords)


def block_size(store):
    return int(np.prod(zarr.open_group(str(store), mode="r")["computed"].chunks))


def resume_counting(store, match):
    """Resume the sweep on ``store``: (its Dataset, the configurations recomputed); the warning
    must name the damaged block."""
    counting = CountingExecutor()
    with counting, pytest.warns(UserWarning, match=match):
        ds = sweep(**KW, store=store, executor=counting)
    return ds, counting.configurations


# --- damaged stores ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["loss", "diverged_at", "digest"])
def test_a_deleted_chunk_is_recomputed_and_named(complete_store, reference, name):
    # was: loss -> NaN with exit 0; diverged_at -> "diverged at step 0" (the fill value)
    os.remove(chunk_file(complete_store, name))
    ds, recomputed = resume_counting(complete_store,
                                     rf"1 block flagged computed failed verification .*"
                                     rf"lr\[2:3\], momentum\[0:2\], batch_size\[0:2\]\}} \({name} chunk missing\)")
    assert recomputed == block_size(complete_store)
    assert_same_sweep(ds, reference)


def test_a_flipped_byte_is_recomputed_and_named(complete_store, reference):
    # was: different numbers, silently (checksums off)
    path = chunk_file(complete_store, "loss", (3, 1, 0))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    ds, recomputed = resume_counting(complete_store,
                                     r"lr\[3:4\], momentum\[2:3\].*\((checksum mismatch|unreadable chunk)")
    assert recomputed == 2     # the block lr[3:4] x momentum[2:3] x batch_size[0:2]
    assert_same_sweep(ds, reference)


def test_a_flipped_byte_in_an_uncompressed_value_is_caught_by_the_digest(complete_store, reference):
    # rewrite one stored loss value through zarr itself (a valid chunk with a wrong number): only
    # the per-point digest can tell
    g = zarr.open_group(str(complete_store), mode="r+")
    g["loss"][1, 1, 0, 5] = np.nextafter(g["loss"][1, 1, 0, 5], np.inf)
    ds, recomputed = resume_counting(complete_store,
                                     r"lr\[1:2\], momentum\[0:2\], batch_size\[0:2\]\} \(checksum mismatch\)")
    assert recomputed == block_size(complete_store)
    assert_same_sweep(ds, reference)


def test_an_intact_store_is_verified_silently(complete_store, reference):
    import warnings
    counting = CountingExecutor()
    with counting, warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = sweep(**KW, store=complete_store, executor=counting)
    assert counting.configurations == 0
    assert_same_sweep(ds, reference)


# --- a writer killed in the middle of a block -------------------------------------------------

KILLED_MID_BLOCK = r"""
import contextlib, os, signal, sys
import zarr.storage._local as local
import memsgd
from memsgd import Noise, Spectrum

real = local._atomic_write
seen = []

@contextlib.contextmanager
def killed_mid_block(path, mode, exclusive=False):
    with real(path, mode, exclusive) as f:
        yield f
        # the block's loss chunk is in place; its diverged_at chunk is written to the temporary
        # file but not yet renamed: SIGKILL here, in the middle of the block
        if "diverged_at" in str(path) and os.sep + "c" + os.sep in str(path):
            seen.append(path)
            if len(seen) == 4:
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)

local._atomic_write = killed_mid_block
memsgd.sweep(memsgd.heavy_ball, GRID, Spectrum.power_law(2.0, 1.0, size=60), Noise.gaussian, 200, record=25,
             store=sys.argv[1], chunk_size=4)
"""


def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(memsgd.__file__)),
                                         os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                         env.get("PYTHONPATH", "")])
    return env


def partial_files(store):
    return [os.path.join(d, f) for d, _, files in os.walk(store) for f in files if f.endswith(".partial")]


@pytest.mark.slow
def test_a_writer_killed_mid_block_leaves_nothing_behind(tmp_path, reference):
    store = tmp_path / "sweep.zarr"
    script = KILLED_MID_BLOCK.replace("GRID", json.dumps(GRID))
    proc = subprocess.run([sys.executable, "-c", script, str(store)], env=child_env(), capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert partial_files(store), "the kill must land inside a chunk write"
    done = computed_mask(store)
    # blocks (1, 2, 2) in C order: lr[0] (two blocks), lr[1] momentum[0:2] committed; the fourth,
    # lr[1] momentum[2:3], had its loss chunk but no flags
    assert done[:1].all() and done[1, :2].all() and not done[1, 2:].any() and not done[2:].any()
    resume = CountingExecutor()
    with resume:
        ds = sweep(**KW, store=store, executor=resume)
    assert resume.configurations == C - done.sum()
    assert partial_files(store) == []   # zarr's temporary file of the killed write is gone
    assert_same_sweep(ds, reference)


def test_a_block_write_fsyncs_its_chunks_before_its_flags(tmp_path, monkeypatch):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name fsynced descriptors")
    synced = []
    real_fsync = os.fsync

    def record(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    store = tmp_path / "sweep.zarr"
    monkeypatch.setattr(os, "fsync", record)
    sweep(**KW, store=store, chunk_size=C)           # one block
    root = os.path.realpath(store)
    files = [os.path.relpath(p, root) for p in synced if p.startswith(root) and os.path.isfile(p)]
    arrays = [f.split(os.sep)[0] for f in files]
    assert set(arrays) == {"loss", "diverged_at", "digest", "computed"}
    assert arrays[-1] == "computed" and arrays.index("computed") == len(arrays) - 1   # the flags last
    assert any(os.path.isdir(p) and p.startswith(os.path.join(root, "computed")) for p in synced)


# --- who may write a store ------------------------------------------------------------------

RACING_CREATOR = r"""
import os, sys, time
import memsgd
from memsgd import Noise, Spectrum
from memsgd._sweep_store import StoreBusyError

real_replace = os.replace

def slow_replace(src, dst):          # widen the window between "no store yet" and moving ours in
    if str(src).endswith(".tmp"):
        time.sleep(1.0)
    return real_replace(src, dst)

os.replace = slow_replace
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))     # both start together
try:
    memsgd.sweep(memsgd.heavy_ball, GRID, Spectrum.power_law(2.0, 1.0, size=60), Noise.gaussian, 200, record=25,
                 store=sys.argv[1], chunk_size=4, progress=lambda done, total: time.sleep(0.3))
except StoreBusyError as exc:
    print("BUSY", exc)
    sys.exit(3)
print("DONE")
"""


@pytest.mark.slow
def test_two_processes_creating_one_store(tmp_path, reference):
    # was: the loser's os.replace failed with OSError [Errno 39] Directory not empty
    store = tmp_path / "sweep.zarr"
    script = RACING_CREATOR.replace("GRID", json.dumps(GRID))
    start = str(time.time() + 3.0)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(store), start], env=child_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 3], results
    busy = next(r for r in results if r[0] == 3)
    assert busy[1].startswith("BUSY") and "being written by another process" in busy[1] and busy[2] == ""
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]   # no half-made store left
    assert_same_sweep(sweep(**KW, store=store), reference)


def test_a_store_in_use_is_refused(complete_store):
    from memsgd._sweep_store import StoreBusyError, SweepStore
    holder = SweepStore(str(complete_store))
    holder._acquire()
    try:
        with pytest.raises(StoreBusyError, match="being written by another process"):
            sweep(**KW, store=complete_store)
    finally:
        holder.close()
    sweep(**KW, store=complete_store)   # free again


@pytest.mark.parametrize("path, message", [
    ("", r"store must be a non-empty path"),
    ("no/such/folder/sweep.zarr", r"its folder '.*no/such/folder' does not exist"),
])
def test_bad_store_paths_are_one_line_errors(tmp_path, monkeypatch, path, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message) as info:
        sweep(**KW, store=path)
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []   # nothing created (not even the missing folders)


def test_a_store_of_the_old_format_is_refused(complete_store):
    g = zarr.open_group(str(complete_store), mode="r+")
    g.attrs["format"] = "memsgd-sweep/1"
    with pytest.raises(ValueError, match="older memsgd without per-point digests"):
        sweep(**KW, store=complete_store)


# --- an executor that loses its workers -------------------------------------------------------

@pytest.mark.slow
def test_dask_losing_every_worker_says_the_store_resumes(tmp_path, reference):
    # was: FuturesCancelledError "... already forgotten"
    distributed = need("distributed")
    store = tmp_path / "sweep.zarr"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as cluster, distributed.Client(cluster) as client:
        def lose_every_worker(done, total):
            if cluster.workers:
                cluster.scale(0)

        with pytest.raises(RuntimeError, match=r"lost its workers .*store '.*sweep.zarr' keeps every block that "
                                               r"finished .*the same call resumes it"):
            sweep(**KW, store=store, executor=client, chunk_size=1, progress=lose_every_worker)
    done = computed_mask(store)
    assert 0 < done.sum() < C
    assert_same_sweep(sweep(**KW, store=store), reference)


def test_a_broken_process_pool_without_a_store_says_nothing_was_kept():
    from concurrent.futures import BrokenExecutor, Executor, Future

    class Broken(Executor):
        _max_workers = 1

        def submit(self, fn, *args, **kwargs):
            f = Future()
            f.set_exception(BrokenExecutor("a child process terminated abruptly"))
            return f

    with pytest.raises(RuntimeError, match=r"lost its workers before every task finished \(BrokenExecutor: a "
                                           r"child process terminated abruptly\); nothing was kept \(pass store="):
        sweep(**KW, executor=Broken())
