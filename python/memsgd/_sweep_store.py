"""The Zarr store of a sweep: created once, filled block by block, resumed, or refused.

Layout (readable with ``xarray.open_zarr``): ``loss`` (*grid, step), ``diverged_at`` (*grid),
``computed`` (*grid, bool), ``digest`` (*grid, uint64), coordinates, and the sweep's provenance
and fingerprints as attributes. Zarr chunks are the sweep's blocks.

Integrity. A block is committed in two steps: its data and the digest of every point (a 64-bit
BLAKE2b of the point's loss row, ``diverged_at`` and error row) are written and fsynced, then its
``computed`` flags (fsynced too). A sweep killed at any point leaves each block complete and
flagged, or unflagged (recomputed). A resume trusts no flag: every block flagged computed is read
back and its digests recomputed; a block with a missing, unreadable or altered chunk is recomputed,
and a warning names it. Zarr's own temporary files (``*.partial``) of a write that was killed are
removed when the store is opened.

One writer at a time. The store's lock file is held (``flock``, where the platform has it) for the
whole sweep: a second process on the same store -- also two processes creating it at once -- gets
``StoreBusyError`` instead of writing beside the first.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import uuid
import warnings

import numpy as np

from ._optional import require

__all__ = ["SweepStore", "StoreMismatchError", "StoreBusyError", "check_store_path"]

FORMAT = "memsgd-sweep/2"       # /2: per-point digests (/1 stores had none: refused, not trusted)
_LOCK = ".memsgd-sweep.lock"
_DATA = ("loss", "loss_error", "diverged_at")


class StoreMismatchError(ValueError):
    """The store holds a different sweep (another grid, problem, horizon or algorithms).

    Examples:
        >>> import memsgd
        >>> from memsgd.sweeps import StoreMismatchError
        >>> spec, noise = memsgd.Spectrum.power_law(2.0, 1.0, size=50), memsgd.Noise.gaussian(10)
        >>> _ = memsgd.sweep(memsgd.gd, {"lr": [0.1, 0.2]}, spec, noise, 100, record=10, store="sweep.zarr")
        >>> try:   # the same store, another grid
        ...     memsgd.sweep(memsgd.gd, {"lr": [0.1, 0.3]}, spec, noise, 100, record=10, store="sweep.zarr")
        ... except StoreMismatchError as exc:
        ...     print("refused")
        refused
    """


class StoreBusyError(ValueError):
    """Another process is writing the store (a sweep on it is running).

    Examples:
        >>> from memsgd.sweeps import StoreBusyError, StoreMismatchError
        >>> issubclass(StoreBusyError, ValueError), issubclass(StoreMismatchError, ValueError)
        (True, True)
    """


@contextlib.contextmanager
def _quiet():
    """Zarr v3 warns that fixed-length strings (string grid axes) have no v3 spec yet; the store
    is read back by the same libraries, so say nothing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        yield


def check_store_path(path) -> str:
    """``store=`` as a path string: a non-empty path whose folder exists (checked before any work:
    a typo must not end a long sweep, nor create a tree of folders)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"store must be a path (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        raise TypeError("store must be a str path, got bytes")
    if not path.strip():
        raise ValueError("store must be a non-empty path (a directory for the Zarr store), got ''")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"store {path!r}: its folder {parent!r} does not exist (create it first)")
    return path


def point_digests(loss: np.ndarray, diverged_at: np.ndarray, error=None) -> np.ndarray:
    """uint64 BLAKE2b digest of each point (leading axes of ``diverged_at``) of a block's data."""
    n = diverged_at.size
    rows = np.ascontiguousarray(loss, dtype=np.float64).reshape(n, -1)
    div = np.ascontiguousarray(diverged_at, dtype=np.int64).reshape(n)
    err = None if error is None else np.ascontiguousarray(error, dtype=np.float64).reshape(n, -1)
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        h = hashlib.blake2b(rows[i].tobytes(), digest_size=8)
        h.update(div[i].tobytes())
        if err is not None:
            h.update(err[i].tobytes())
        out[i] = np.frombuffer(h.digest(), dtype=np.uint64)[0]
    return out.reshape(diverged_at.shape)


class SweepStore:
    """A sweep's Zarr store at ``path`` (a local directory), locked for this process until
    ``close``."""

    def __init__(self, path: str):
        self.path = path
        self._zarr = require("zarr", "sweep", "sweep(store=...)")
        self._group = None
        self._lock = None

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def open(cls, path, template, fingerprints: dict[str, str]) -> SweepStore:
        """Open the store at ``path`` (creating it from ``template``, an xarray Dataset whose
        dask-backed variables give the chunks, if there is none). ``StoreMismatchError`` if it
        holds another sweep (then nothing is written), ``StoreBusyError`` if another process is
        writing it. ``block_shape``: the store's chunks of the grid (an existing store keeps its
        own)."""
        path = check_store_path(path)
        if not _exists(path):
            _create(path, template)   # or another process just did: the checks below decide
        store = cls(path)
        store._check(fingerprints)
        store._acquire()
        try:
            store._remove_partial_writes()
            store.block_shape: tuple[int, ...] = tuple(store.group["computed"].chunks)
        except BaseException:
            store.close()
            raise
        return store

    @property
    def group(self):
        if self._group is None:
            with _quiet():
                self._group = self._zarr.open_group(self.path, mode="r+")
        return self._group

    def _check(self, fingerprints: dict[str, str]) -> None:
        try:
            with _quiet():
                attrs = dict(self._zarr.open_group(self.path, mode="r").attrs)
        except Exception as exc:  # not a Zarr group at all
            raise StoreMismatchError(f"store {self.path!r} exists and is not a memsgd sweep store ({exc}); "
                                     "choose another path") from None
        if attrs.get("format") == "memsgd-sweep/1":
            raise StoreMismatchError(f"store {self.path!r} was written by an older memsgd without per-point "
                                     "digests, so a resume could not verify it; delete it to start over, or "
                                     "use another path")
        if attrs.get("format") != FORMAT or "fingerprint" not in attrs:
            raise StoreMismatchError(f"store {self.path!r} exists and is not a memsgd sweep store "
                                     f"(format {attrs.get('format')!r}); choose another path")
        if attrs["fingerprint"] == fingerprints["fingerprint"]:
            return
        labels = {"algorithms": "algorithms (from factory)", "memsgd_version": "memsgd version",
                  "method": "method (engine or loss_at)"}
        differ = [labels.get(k, k) for k, v in fingerprints.items()
                  if k != "fingerprint" and attrs.get(f"fingerprint_{k}") != v]
        raise StoreMismatchError(
            f"store {self.path!r} holds a different sweep (different: {', '.join(differ) or 'definition'}); "
            "results of different sweeps are never mixed: use another store path, or delete this one "
            "to start over")

    def _acquire(self) -> None:
        """The store's lock, held until ``close`` (the kernel drops it if the process dies)."""
        try:
            import fcntl
        except ImportError:  # no flock on this platform: one writer is the user's to ensure
            return
        fd = os.open(os.path.join(self.path, _LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StoreBusyError(
                    f"store {self.path!r} is being written by another process (a sweep on it is running); "
                    "two sweeps never write one store at once: wait until it finishes, then the same call "
                    "resumes it (or use another store path)") from None
            return  # a file system without locks (e.g. some network mounts): carry on unlocked
        self._lock = fd

    def close(self) -> None:
        """Release the lock (the data are on disk already)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __del__(self):  # a store dropped on an error path never keeps its lock
        self.close()

    def _remove_partial_writes(self) -> None:
        """Zarr writes each chunk to ``<chunk>.<uuid>.partial`` and renames it into place; a process
        killed in between leaves the partial file, which zarr never reads. Under the lock no
        other writer can own one."""
        for folder, _, files in os.walk(self.path):
            for name in files:
                if name.endswith(".partial"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(folder, name))

    # -- reading and verifying ----------------------------------------------------------------
    def computed(self) -> np.ndarray:
        """The points whose curves are in the store, verified: every block flagged computed is
        read back and checked against its digests; a block that fails (a chunk missing,
        unreadable or altered) counts as not computed, and a warning names it."""
        g = self.group
        try:
            flags = np.asarray(g["computed"][...], dtype=bool)
        except Exception:   # an unreadable flag chunk: read block by block below
            flags = None
        shape = tuple(g["computed"].shape)
        block = tuple(g["computed"].chunks)
        counts = [-(-s // b) for s, b in zip(shape, block)]
        verified = np.zeros(shape, dtype=bool)
        failed: list[str] = []
        for bidx in np.ndindex(*counts):
            slices = tuple(slice(i * b, min((i + 1) * b, s)) for i, b, s in zip(bidx, block, shape))
            try:
                flagged = flags[slices] if flags is not None else np.asarray(g["computed"][slices], dtype=bool)
            except Exception:
                continue  # unreadable flags: recompute
            if not flagged.all():
                continue
            problem = self._verify_block(bidx, slices)
            if problem is None:
                verified[slices] = True
            else:
                failed.append(f"{self._block_label(slices)} ({problem})")
        if failed:
            warnings.warn(f"store {self.path!r}: {len(failed)} block{'s' if len(failed) > 1 else ''} flagged computed "
                          f"failed verification and will be recomputed: {'; '.join(failed[:10])}"
                          + (f"; and {len(failed) - 10} more" if len(failed) > 10 else ""), UserWarning, stacklevel=3)
        return verified

    def _verify_block(self, bidx, slices):
        """None if the block's stored data match its digests, else what is wrong with them."""
        g = self.group
        names = [n for n in _DATA if n in g] + ["digest"]
        for name in names:
            if not os.path.exists(self._chunk_file(name, bidx)):
                return f"{name} chunk missing"
        try:
            data = {n: np.asarray(g[n][slices + (slice(None),) * (len(g[n].shape) - len(slices))]) for n in names}
        except Exception as exc:
            return f"unreadable chunk: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        expected = point_digests(data["loss"], data["diverged_at"], data.get("loss_error"))
        if not np.array_equal(expected, data["digest"]):
            return "checksum mismatch"
        return None

    def _block_label(self, slices) -> str:
        arr = self.group["computed"]
        dims = (getattr(getattr(arr, "metadata", None), "dimension_names", None)
                or arr.attrs.get("_ARRAY_DIMENSIONS") or [f"axis{i}" for i in range(len(slices))])
        return "{" + ", ".join(f"{d}[{s.start}:{s.stop}]" for d, s in zip(dims, slices)) + "}"

    def _chunk_file(self, name: str, bidx) -> str:
        """The file of the chunk of array ``name`` that holds block ``bidx`` (zarr 3 and zarr 2)."""
        arr = self.group[name]
        coords = tuple(bidx) + (0,) * (len(arr.shape) - len(bidx))
        encode = getattr(getattr(arr, "metadata", None), "encode_chunk_key", None)
        if encode is not None:                     # zarr 3: key relative to the array's folder
            return os.path.normpath(os.path.join(self.path, name, encode(coords)))
        return os.path.normpath(os.path.join(self.path, arr._chunk_key(coords)))   # zarr 2: with its path

    # -- writing ------------------------------------------------------------------------------
    def write_block(self, slices, loss: np.ndarray, diverged_at: np.ndarray, error=None) -> None:
        """Data and digests first (fsynced), then the block's ``computed`` flags (fsynced): a
        kill in between leaves the block unflagged, so it is recomputed."""
        g = self.group
        full = slices + (slice(None),)
        g["loss"][full] = loss
        if error is not None:
            g["loss_error"][full] = error
        g["diverged_at"][slices] = diverged_at
        g["digest"][slices] = point_digests(loss, diverged_at, error)
        bidx = self._block_index(slices)
        self._sync([n for n in _DATA if n in g and (n != "loss_error" or error is not None)] + ["digest"], bidx)
        g["computed"][slices] = np.ones(diverged_at.shape, dtype=bool)
        self._sync(["computed"], bidx)

    def _block_index(self, slices) -> tuple[int, ...]:
        block = self.group["computed"].chunks
        return tuple(s.start // b for s, b in zip(slices, block))

    def _sync(self, names, bidx) -> None:
        """fsync the block's chunk files of ``names`` and the folders that name them, up to the
        array's folder (new chunk folders are created by the first write into them)."""
        folders = set()
        for name in names:
            chunk = self._chunk_file(name, bidx)
            _fsync(chunk)
            top, folder = os.path.normpath(os.path.join(self.path, name)), os.path.dirname(chunk)
            while len(folder) >= len(top):
                folders.add(folder)
                folder = os.path.dirname(folder)
        for folder in sorted(folders, key=len, reverse=True):
            _fsync(folder)

    def dataset(self):
        """The stored sweep as an xarray Dataset backed by the store (dask arrays, read lazily)."""
        xr = require("xarray", "sweep", "sweep()")
        with _quiet():
            ds = xr.open_zarr(self.path)
        ds = ds.drop_vars(["computed", "digest"])
        ds.attrs = {k: v for k, v in ds.attrs.items() if k != "format"}
        return ds


def _fsync(path: str) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:   # e.g. folders cannot be opened on this platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _exists(path: str) -> bool:
    return os.path.exists(path) and not (os.path.isdir(path) and not os.listdir(path))


def _create(path: str, template) -> None:
    """Write the store's metadata and coordinates into a fresh directory, then move it into place
    (a kill during creation leaves no half-made store behind; a process that loses a race to
    create the same store opens the winner's)."""
    zarr = require("zarr", "sweep", "sweep(store=...)")
    da = require("dask.array", "sweep", "sweep(store=...)")
    parent = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(parent, f".{os.path.basename(os.path.abspath(path))}.{uuid.uuid4().hex}.tmp")
    template = template.copy()
    template.attrs["format"] = FORMAT
    computed = template["computed"]
    template["digest"] = (computed.dims, da.zeros(computed.shape, chunks=computed.data.chunks, dtype=np.uint64),
                          {"long_name": "BLAKE2b digest (64 bits) of the point's stored data, checked on resume"})
    try:
        with _quiet():
            template.to_zarr(tmp, mode="w-", compute=False, consolidated=True)  # metadata never changes after
            zarr.open_group(tmp, mode="r+")["computed"][...] = False
        open(os.path.join(tmp, _LOCK), "w").close()   # present from the start: opening never adds a file
        if os.path.isdir(path) and not os.listdir(path):
            with contextlib.suppress(OSError):
                os.rmdir(path)  # an empty directory the user made for it
        try:
            os.replace(tmp, path)
        except OSError as exc:
            # another process created the store between our check and now (Errno 39/17): its store
            # is complete (it was moved into place whole); the fingerprint check and the lock decide
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not _exists(path):
                raise
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)

