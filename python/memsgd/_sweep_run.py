"""Running many configurations in chunks: in this process, on a concurrent.futures pool, or on Dask.

Every configuration is built and checked by the caller before anything runs; tasks carry the
built payloads (algorithms, spectra, noises), never the factory. Process pools and Dask get them
pre-serialised (plain pickle for ``concurrent.futures`` pools, cloudpickle for Dask, as those
executors would use), so that an unpicklable payload is refused up front, naming the argument.
Results come back to the caller, which is the only writer of the result and of the store.
"""
from __future__ import annotations

import math
import os
import pickle
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, CancelledError, Executor, ThreadPoolExecutor
from concurrent.futures import wait as _futures_wait
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from . import _core
from ._optional import require
from .dynamics import loss_curves
from .long_horizon import loss_at

__all__ = ["Configurations", "executor_kind", "executor_workers", "default_chunk_size", "chunk_tasks", "run_tasks",
           "workers_lost"]

# Scalar updates (steps x components x (M+1)^2) per task: a few seconds on one core, so that
# progress, resume and load balancing are fine-grained while the per-task overhead stays small.
_TASK_WORK = 2e9
_MAX_CHUNK = 1024
_DASK_MIN_IN_FLIGHT = 64
# One loss_at call costs about as much as this many steps of the engine on the same
# configuration (measured: 0.1-0.3 s against 0.22 s for 1e5 engine steps, K = 4437, memory 1).
_LOSS_AT_STEPS = 1e5


@dataclass
class Configurations:
    """C configurations: ``algorithms[i]`` runs on ``spectra[spectrum_index[i]]`` with
    ``noises[noise_index[i]]`` (distinct spectra/noises are stored once)."""

    algorithms: list
    spectra: list
    spectrum_index: np.ndarray
    noises: list
    noise_index: np.ndarray
    steps: int
    record: np.ndarray
    describe: Callable[[int], str] = str   # "grid point ..." of configuration i, for error messages
    method: str = "engine"                 # "engine" (loss_curves, in batches) or "loss_at" (one by one)

    @property
    def size(self) -> int:
        return len(self.algorithms)

    def work(self, i: int) -> float:
        """Scalar updates of configuration i's whole run (for loss_at: as many as it takes the
        time of, ~_LOSS_AT_STEPS engine steps)."""
        spectrum = self.spectra[self.spectrum_index[i]]
        steps = _LOSS_AT_STEPS if self.method == "loss_at" else float(self.steps)
        return steps * spectrum.size * (self.algorithms[i].memory + 1) ** 2

    def select(self, index: np.ndarray):
        """``(algorithms, spectra, noises)`` of the configurations ``index``, spectra/noises as one
        shared object when they all agree, else one per configuration."""
        algos = [self.algorithms[i] for i in index]
        return algos, _shared_or_list(self.spectra, self.spectrum_index[index]), \
            _shared_or_list(self.noises, self.noise_index[index])


def _shared_or_list(unique, index):
    first = index[0]
    if np.all(index == first):
        return unique[first]
    return [unique[i] for i in index]


def executor_kind(executor) -> str:
    """``"local"``, ``"threads"``, ``"processes"`` (any other concurrent.futures executor: its
    tasks may leave the process) or ``"dask"``; ``TypeError`` for anything else."""
    if executor is None:
        return "local"
    if isinstance(executor, ThreadPoolExecutor):
        return "threads"
    if isinstance(executor, Executor):
        return "processes"
    if type(executor).__module__.split(".")[0] == "distributed":
        distributed = require("distributed", "sweep", "a Dask executor")
        if isinstance(executor, distributed.Client):
            return "dask"
    raise TypeError("executor must be None, a concurrent.futures.Executor or a dask.distributed.Client, "
                    f"got {type(executor).__name__}")


def executor_workers(executor, kind: str) -> int:
    """How many tasks can run at once (0 when unknown, e.g. a Dask cluster still scaling up)."""
    if kind == "local":
        return 1
    if kind == "dask":
        return int(sum(executor.nthreads().values()))
    return int(getattr(executor, "_max_workers", 0) or os.cpu_count() or 1)


def default_chunk_size(configs: Configurations, kind: str, workers: int, threads: Optional[int]) -> int:
    """Configurations per task: about ``_TASK_WORK`` scalar updates per OpenMP thread of a task,
    at least one configuration per thread, and (with an executor) at least ~4 tasks per worker."""
    C = configs.size
    sample = range(0, C, max(1, C // 256))
    mean_work = sum(configs.work(i) for i in sample) / len(sample)
    per_thread = max(1, int(_TASK_WORK / max(mean_work, 1.0)))
    task_threads = threads if threads is not None else _core.max_threads() if kind == "local" else 1
    chunk = task_threads * per_thread
    if kind != "local" and workers > 0:
        chunk = min(chunk, math.ceil(C / (4 * workers)))
    return int(max(task_threads if kind == "local" else 1, min(chunk, _MAX_CHUNK)))


def chunk_tasks(configs: Configurations, executor, chunk_size: Optional[int] = None) -> list[np.ndarray]:
    """The configurations 0..C-1 in consecutive chunks of ``chunk_size`` (default: sized for the
    executor by ``default_chunk_size``, one OpenMP thread per task on an executor), as the
    index arrays ``run_tasks`` takes."""
    kind = executor_kind(executor)
    chunk = chunk_size or default_chunk_size(configs, kind, executor_workers(executor, kind), None)
    return [np.arange(i, min(i + chunk, configs.size)) for i in range(0, configs.size, chunk)]


# -- work in a task -------------------------------------------------------------------------

def _compute(method, algorithms, spectra, noises, steps, record, threads, labels=None):
    """``(loss (n, R), diverged_at (n,))`` of a task, plus ``error (n, R)`` and loss_at's warnings
    (a list of strings naming the grid point) for loss_at."""
    if method == "loss_at":
        return _compute_loss_at(algorithms, spectra, noises, record, threads, labels)
    out = loss_curves(algorithms, spectra, noises, steps, record, threads=threads, progress=False)
    return out.loss, out.diverged_at


def _compute_loss_at(algorithms, spectra, noises, record, threads, labels):
    """[`memsgd.loss_at`][memsgd.loss_at] at the recorded steps, one configuration at a time. Its warnings
    are returned (with the grid point), not raised here: in a worker process they would be lost."""
    n = len(algorithms)
    loss = np.empty((n, record.size))
    error = np.empty((n, record.size))
    diverged = np.full(n, -1, dtype=np.int64)
    messages = []
    for i, algo in enumerate(algorithms):
        spectrum = spectra[i] if isinstance(spectra, list) else spectra
        noise = noises[i] if isinstance(noises, list) else noises
        where = labels[i] if labels is not None else f"configuration {i} of its task"
        try:
            res = loss_at(algo, spectrum, noise, record, progress=False, threads=threads or None, warn=False)
        except ValueError as exc:
            raise ValueError(f"loss_at failed at {where}: {exc} (method='engine' runs it step by step)") from None
        loss[i], error[i] = res.loss, res.error
        if res.diverged_at is not None:
            diverged[i] = res.diverged_at
        messages += [f"{where}: {m}" for m in res.warnings]
    return loss, diverged, error, messages


def _compute_serialized(method, algorithms_blob, spectra_blobs, spectrum_index, noise_blobs, noise_index,
                        steps, record, threads, labels):
    """A task on a process pool or a Dask worker: unpickle the payload, run it, return arrays."""
    algorithms = pickle.loads(algorithms_blob)
    spectra = [pickle.loads(b) for b in spectra_blobs]
    noises = [pickle.loads(b) for b in noise_blobs]
    return _compute(method, algorithms, _shared_or_list(spectra, spectrum_index),
                    _shared_or_list(noises, noise_index), steps, record, threads, labels)


# -- serialising payloads (before any work) ---------------------------------------------------

def _dumps_function(kind: str):
    if kind == "dask":
        cloudpickle = require("cloudpickle", "sweep", "a Dask executor")
        return cloudpickle.dumps, "cloudpickle (Dask)"
    return (lambda obj: pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)), "pickle (process executor)"


_PICKLE_ERRORS = (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError)


def _serialize_payloads(configs: Configurations, tasks: Sequence[np.ndarray], kind: str):
    """Pickle every task's algorithms and each distinct spectrum / noise once; ``TypeError``
    naming ``factory`` / ``spectrum`` / ``noise`` for the first payload that does not pickle."""
    dumps, how = _dumps_function(kind)
    hint = ("build schedules from module-level functions or functools.partial, not lambdas or closures, "
            "or use executor=None or a ThreadPoolExecutor")

    def blobs_of(objects, index, name):
        out = []
        for j, obj in enumerate(objects):
            try:
                out.append(dumps(obj))
            except _PICKLE_ERRORS as exc:
                where = configs.describe(int(np.flatnonzero(index == j)[0]))
                raise TypeError(f"{name} cannot be serialised by {how} at {where}: {exc}; {hint}") from None
        return out

    spectra = blobs_of(configs.spectra, configs.spectrum_index, "spectrum")
    noises = blobs_of(configs.noises, configs.noise_index, "noise")
    algorithms = []
    for index in tasks:
        try:
            algorithms.append(dumps([configs.algorithms[i] for i in index]))
        except _PICKLE_ERRORS:
            for i in index:
                try:
                    dumps(configs.algorithms[i])
                except _PICKLE_ERRORS as exc:
                    raise TypeError(f"factory returned an algorithm that {how} cannot serialise at "
                                    f"{configs.describe(int(i))}: {exc}; {hint}") from None
            raise
    return algorithms, spectra, noises


def _task_payload(configs, index, spectra_refs, noise_refs):
    """(spectrum refs, local spectrum index, noise refs, local noise index) of one task: only the
    distinct spectra/noises it uses travel with it."""
    out = []
    for refs, global_index in ((spectra_refs, configs.spectrum_index[index]),
                               (noise_refs, configs.noise_index[index])):
        used, local = np.unique(global_index, return_inverse=True)
        out += [[refs[j] for j in used], local.astype(np.int64)]
    return out


# -- backends -----------------------------------------------------------------------------

class _FuturesBackend:
    def __init__(self, executor):
        self.executor = executor

    def submit(self, fn, *args):
        return self.executor.submit(fn, *args)

    def wait(self, pending):
        done, not_done = _futures_wait(pending, return_when=FIRST_COMPLETED)
        return done, not_done

    def cancel(self, futures):
        for f in futures:
            f.cancel()

    def scatter(self, blob):
        return blob


class _DaskBackend:
    def __init__(self, client):
        self.client = client
        self.distributed = require("distributed", "sweep", "a Dask executor")

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def wait(self, pending):
        result = self.distributed.wait(list(pending), return_when="FIRST_COMPLETED")
        return set(result.done), set(result.not_done)

    def cancel(self, futures):
        if futures:
            self.client.cancel(list(futures))

    def scatter(self, blob):
        # sent once; every task refers to the scattered copy. hash=False: a fresh key per sweep, so
        # that a key released by the previous sweep cannot be lost while this one re-uses it
        return self.client.scatter(blob, hash=False)


def run_tasks(configs: Configurations, tasks: list[np.ndarray], executor, *, threads: Optional[int],
              on_result: Callable[[int, np.ndarray, np.ndarray], None]) -> None:
    """Compute every task (an index array into ``configs``) and hand ``(task number, loss (n, R),
    diverged_at (n,))`` (and ``error (n, R)`` and loss_at's warnings with method loss_at) to
    ``on_result`` in this thread, as tasks finish.

    With an executor at most a few tasks per worker are in flight. If a task fails (or Ctrl-C),
    the tasks not started are cancelled, every task that did finish is still handed over (nothing
    computed is lost), and the first error is raised.
    """
    kind = executor_kind(executor)
    steps, record, method = configs.steps, configs.record, configs.method

    def labels(index):  # grid points, named in a loss_at task's errors (strings travel anywhere)
        return [configs.describe(int(i)) for i in index] if method == "loss_at" else None

    if kind == "local":
        for n, index in enumerate(tasks):
            algos, spectra, noises = configs.select(index)
            on_result(n, *_compute(method, algos, spectra, noises, steps, record, threads, labels(index)))
        return
    task_threads = 1 if threads is None else threads
    if kind == "threads":
        backend = _FuturesBackend(executor)

        def submit(n):
            algos, spectra, noises = configs.select(tasks[n])
            return backend.submit(_compute, method, algos, spectra, noises, steps, record, task_threads,
                                  labels(tasks[n]))
    else:
        algo_blobs, spectrum_blobs, noise_blobs = _serialize_payloads(configs, tasks, kind)
        backend = _DaskBackend(executor) if kind == "dask" else _FuturesBackend(executor)
        spectrum_refs = [backend.scatter(b) for b in spectrum_blobs]
        noise_refs = [backend.scatter(b) for b in noise_blobs]

        def submit(n):
            s_refs, s_local, n_refs, n_local = _task_payload(configs, tasks[n], spectrum_refs, noise_refs)
            return backend.submit(_compute_serialized, method, algo_blobs[n], s_refs, s_local, n_refs, n_local,
                                  steps, record, task_threads, labels(tasks[n]))
    _windowed(backend, submit, len(tasks), _Window(executor, kind), on_result)


class _Window:
    """How many tasks to keep in flight: twice the workers, re-read at most once a second (a Dask
    cluster may grow). Dask gets at least ``_DASK_MIN_IN_FLIGHT`` so that an adaptive cluster sees
    queued work and scales up."""

    def __init__(self, executor, kind):
        self.executor, self.kind = executor, kind
        self._value, self._read_at = 0, -math.inf

    def __call__(self) -> int:
        now = time.monotonic()
        if now - self._read_at >= 1.0:
            workers = executor_workers(self.executor, self.kind)
            self._value = max(_DASK_MIN_IN_FLIGHT if self.kind == "dask" else 4, 2 * workers)
            self._read_at = now
        return self._value


def _windowed(backend, submit, count, window, on_result):
    pending, numbers = {}, iter(range(count))
    try:
        while True:
            while len(pending) < window():
                n = next(numbers, None)
                if n is None:
                    break
                pending[submit(n)] = n
            if not pending:
                return
            done, _ = backend.wait(set(pending))
            failure = None
            for f in done:  # every finished task is handed over before a failure is raised
                n = pending.pop(f)
                if f.exception() is not None:
                    failure = failure or f.exception()
                    continue
                on_result(n, *f.result())
            if failure is not None:
                raise failure
    except BaseException:  # a failed task, Ctrl-C, a failing on_result: keep what finished, stop the rest
        backend.cancel(pending)
        for f, n in pending.items():
            if _finished_ok(f):
                on_result(n, *f.result())
        raise


def workers_lost(exc: BaseException) -> bool:
    """True when ``exc`` says the executor lost its workers or its tasks rather than a task
    failing: a broken process pool, cancelled futures (Dask cancels, as "already forgotten", the
    tasks whose worker and data are gone), a killed or unreachable Dask worker."""
    if isinstance(exc, (BrokenExecutor, CancelledError)):
        return True
    return type(exc).__module__.split(".")[0] == "distributed" and type(exc).__name__ in ("KilledWorker",
                                                                                           "CommClosedError")


def _finished_ok(future) -> bool:
    try:
        return future.done() and not future.cancelled() and future.exception() is None
    except BaseException:  # a cancelled Dask future raises here
        return False
