"""The Zarr store of a sweep: created once, filled block by block, resumed, or refused.

Layout (readable with ``xarray.open_zarr``): ``loss`` (*grid, step), ``diverged_at`` (*grid),
``computed`` (*grid, bool), coordinates, and the sweep's provenance and fingerprints as attributes.
Zarr chunks are the sweep's blocks; a block's ``computed`` flags are written after its data, so
a sweep killed at any point leaves every block either complete and flagged or to be recomputed.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
import warnings
from typing import Dict, Tuple

import numpy as np

from ._optional import require

__all__ = ["SweepStore", "StoreMismatchError"]

FORMAT = "memsgd-sweep/1"


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


@contextlib.contextmanager
def _quiet():
    """Zarr v3 warns that fixed-length strings (string grid axes) have no v3 spec yet; the store
    is read back by the same libraries, so say nothing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        yield


class SweepStore:
    """A sweep's Zarr store at ``path`` (a local directory)."""

    def __init__(self, path: str):
        self.path = path
        self._zarr = require("zarr", "sweep", "sweep(store=...)")
        self._group = None

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def open(cls, path, template, fingerprints: Dict[str, str]) -> "SweepStore":
        """Open the store at ``path`` (creating it from ``template``, an xarray Dataset whose
        dask-backed variables give the chunks, if there is none). ``StoreMismatchError`` if it
        holds another sweep; then nothing is written. ``block_shape``: the store's chunks of the
        grid (an existing store keeps its own)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"store must be a path (str or os.PathLike), got {type(path).__name__}")
        path = os.fspath(path)
        if not _exists(path):
            _create(path, template)
        store = cls(path)
        store._check(fingerprints)
        store.block_shape: Tuple[int, ...] = tuple(store.group["computed"].chunks)
        return store

    @property
    def group(self):
        if self._group is None:
            with _quiet():
                self._group = self._zarr.open_group(self.path, mode="r+")
        return self._group

    def _check(self, fingerprints: Dict[str, str]) -> None:
        try:
            attrs = dict(self.group.attrs)
        except Exception as exc:  # not a Zarr group at all
            raise StoreMismatchError(f"store {self.path!r} exists and is not a memsgd sweep store ({exc}); "
                                     "choose another path") from None
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

    # -- reading and writing ----------------------------------------------------------------
    def computed(self) -> np.ndarray:
        return np.asarray(self.group["computed"][...], dtype=bool)

    def write_block(self, slices, loss: np.ndarray, diverged_at: np.ndarray, error=None) -> None:
        """Data first, then the block's ``computed`` flags (a kill in between recomputes the block)."""
        g = self.group
        g["loss"][slices + (slice(None),)] = loss
        if error is not None:
            g["loss_error"][slices + (slice(None),)] = error
        g["diverged_at"][slices] = diverged_at
        g["computed"][slices] = np.ones(diverged_at.shape, dtype=bool)

    def dataset(self):
        """The stored sweep as an xarray Dataset backed by the store (dask arrays, read lazily)."""
        xr = require("xarray", "sweep", "sweep()")
        with _quiet():
            ds = xr.open_zarr(self.path)
        ds = ds.drop_vars("computed")
        ds.attrs = {k: v for k, v in ds.attrs.items() if k != "format"}
        return ds


def _exists(path: str) -> bool:
    return os.path.exists(path) and not (os.path.isdir(path) and not os.listdir(path))


def _create(path: str, template) -> None:
    """Write the store's metadata and coordinates into a fresh directory, then move it into place
    (a kill during creation leaves no half-made store behind)."""
    zarr = require("zarr", "sweep", "sweep(store=...)")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    template = template.copy()
    template.attrs["format"] = FORMAT
    try:
        with _quiet():
            template.to_zarr(tmp, mode="w-", compute=False, consolidated=True)  # metadata never changes after
            zarr.open_group(tmp, mode="r+")["computed"][...] = False
        if os.path.isdir(path):
            os.rmdir(path)  # an empty directory the user made for it
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
