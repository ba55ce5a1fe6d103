"""Sweeps: exact loss curves over a Cartesian grid of configurations, as a labelled xarray Dataset.

``sweep(factory, grid, spectrum, noise, steps)`` runs ``factory(**point)`` on every point of
``grid`` (spectrum and noise may depend on the point too) with the batched exact engine
([`memsgd.loss_curves`][memsgd.loss_curves], docs/math.md §3), keeps the loss at the recorded steps, and labels
it by the grid's axes. Results can go to a Zarr store that a rerun resumes, and the work can be
spread over a process pool or a Dask cluster. User guide: docs/sweeps.md.
"""
from __future__ import annotations

import hashlib
import inspect
import math
import pickle
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Callable, Optional

import numpy as np

from ._growth import MIN_STEPS, RECORDED, growth
from ._method import AUTO_WORK, check_method, engine_work
from ._optional import require
from ._progress import progress_bar
from ._steps import recorded_steps
from ._sweep_run import Configurations, default_chunk_size, executor_kind, executor_workers, run_tasks, workers_lost
from ._sweep_store import StoreBusyError, StoreMismatchError, SweepStore, check_store_path
from ._validation import positive_int, require_memory, step_count, thread_count
from ._version import __version__
from .algorithms import MemoryAlgorithm
from .long_horizon import MAX_STEP as LOSS_AT_MAX_STEP
from .long_horizon import accuracy_warning, is_accuracy_warning, relative_errors, supports_loss_at
from .noise import Noise
from .schedules import Schedule
from .spectrum import Spectrum

__all__ = ["sweep", "fitted_exponents", "growth_rates", "StoreMismatchError", "StoreBusyError"]

# Names the Dataset uses itself: not available as grid axes.
_RESERVED = ("step", "loss", "diverged_at", "computed", "loss_error")


def sweep(factory: Callable, grid: Mapping, spectrum, noise, steps: int, record=400, executor=None,
          store=None, *, chunk_size: Optional[int] = None, threads: Optional[int] = None, progress=None,
          method: str = "auto"):
    """Exact loss curves of ``factory(**point)`` for every point of a Cartesian ``grid``.

    Args:
        factory: callable returning a ``MemoryAlgorithm`` or ``Schedule``; it receives, as keyword
            arguments, the values of the grid axes its parameters name (a ``**kwargs`` parameter
            receives every axis).
        grid: ``{name: 1-D values}``; points are the Cartesian product in dict order (C order).
        spectrum: a ``Spectrum``, or a callable taking grid axes like ``factory``; called once per
            distinct combination of the axes it takes.
        noise: a ``Noise``, or a callable taking grid axes likewise (e.g.
            ``noise=lambda batch_size: Noise.gaussian(batch_size)``).
        steps: horizon T.
        record: steps kept per curve: an int R (about R log-spaced steps incl. 0 and T), an
            increasing array of steps in [0, T], or ``None`` (every step: memory O(C T)).
        executor: ``None`` (this process, all cores), a ``concurrent.futures`` executor, or a
            ``dask.distributed.Client``. Tasks get one OpenMP thread each unless ``threads``.
        store: a directory for a Zarr store, written as blocks finish. Rerunning the same sweep
            on it computes only what is missing; a store of another sweep is refused
            ([`StoreMismatchError`][memsgd.sweeps.StoreMismatchError], a ``ValueError``).
        chunk_size: configurations per task (an upper bound: tasks are rectangular blocks of the
            grid, which are also the store's chunks); default from the work per configuration.
        threads: OpenMP threads per task (default: all cores locally, 1 with an executor).
        progress: progress bar over configurations (``True``, ``False``, ``None``: when stderr
            is a terminal), or a callable ``progress(done, total)`` called as blocks finish
            (configurations of this call; a resumed store counts only what is left).
        method: ``"engine"`` (the batched step-by-step engine, [`memsgd.loss_curves`][memsgd.loss_curves]),
            ``"loss_at"`` ([`memsgd.loss_at`][memsgd.loss_at] per configuration at the recorded steps only:
            cost independent of ``steps``, up to 10^12; every configuration must be stationary
            with one batch size, and ``record`` an int or an array), or ``"auto"`` (default):
            ``"loss_at"`` when every configuration allows it and a step-by-step run would
            average more than 1e11 scalar updates per configuration (``steps x nodes x
            step_cost(M)``, a few seconds), else ``"engine"``.

    Returns:
        ``xarray.Dataset`` with ``loss`` (*grid, step) -- ``L_t`` at the recorded steps, ``inf``
        from a divergence on -- and ``diverged_at`` (*grid) (-1: none), a coordinate per axis and
        ``step``, and provenance attributes (memsgd version, problem, method, fingerprints,
        creation time). With method ``"loss_at"`` also ``loss_error`` (*grid, step), the
        estimated absolute error of ``loss``. With ``store`` it is backed by the store (read
        lazily; ``.load()`` to bring it in).

    Everything is checked, and every configuration built, before any work starts. Results are
    bitwise those of [`memsgd.loss_curve`][memsgd.loss_curve] (method ``"engine"``) or
    [`memsgd.loss_at`][memsgd.loss_at]
    (method ``"loss_at"``) at the recorded steps, whatever the executor, chunking, thread count
    or number of resumptions; the two methods agree to ``loss_error`` (about 1e-12 relative).

    Examples:
        >>> import memsgd
        >>> ds = memsgd.sweep(memsgd.heavy_ball, {"lr": [0.05, 0.1], "momentum": [0.9]},
        ...                   memsgd.Spectrum.power_law(2.0, 1.0, size=100), memsgd.Noise.gaussian(10), 1000, record=50)
        >>> ds["loss"].dims
        ('lr', 'momentum', 'step')
        >>> float(ds["loss"].sel(lr=0.1, momentum=0.9)[-1]) == memsgd.loss_curve(
        ...     memsgd.heavy_ball(0.1, 0.9), memsgd.Spectrum.power_law(2.0, 1.0, size=100), memsgd.Noise.gaussian(10),
        ...     1000).loss[-1]
        True
    """
    xr = require("xarray", "sweep", "sweep()")
    if not callable(factory):
        raise TypeError(f"factory must be callable (grid values -> algorithm), got {type(factory).__name__}")
    axes = _check_grid(grid)
    steps = step_count(steps)
    method = check_method(method)
    kept = None if record is None else recorded_steps(record, steps)  # every step: after the method is known
    kind = executor_kind(executor)
    if chunk_size is not None:
        chunk_size = positive_int(chunk_size, "chunk_size")
    if threads is not None:  # None: the default, which chunking reads as such
        threads = thread_count(threads)
    if progress is not None and not isinstance(progress, bool) and not callable(progress):
        raise TypeError("progress must be True, False, None or a callable (done, total), "
                        f"got {type(progress).__name__}")
    if store is not None:
        store = check_store_path(store)   # before any work: '' or a missing folder is a one-line error
        require("zarr", "sweep", "sweep(store=...)")
        require("dask.array", "sweep", "sweep(store=...)")
    takes = {"factory": _taken_axes(factory, "factory", axes)}
    for name, value, cls in (("spectrum", spectrum, Spectrum), ("noise", noise, Noise)):
        if isinstance(value, cls):
            takes[name] = ()
        elif callable(value):
            takes[name] = _taken_axes(value, name, axes)
        else:
            raise TypeError(f"{name} must be a {cls.__name__} or a callable of grid axes, got {type(value).__name__}")
    unused = [a for a in axes if not any(a in t for t in takes.values())]
    if unused:
        raise ValueError(f"grid axes {unused} are not taken by factory, spectrum or noise (every point "
                         "along them would be the same configuration)")

    configs = _build(factory, spectrum, noise, axes, takes, steps, kept)
    shape = tuple(v.size for v in axes.values())
    configs.method = _resolve_method(method, configs, record)
    if kept is None:
        require_memory(8.0 * math.prod(shape) * (steps + 1), f"record=None (every step of {math.prod(shape)} "
                       f"curves of {steps} steps)")
        kept = configs.record = recorded_steps(None, steps)
    with_error = configs.method == "loss_at"
    fingerprints = _fingerprints(axes, configs)
    attrs = _provenance(factory, spectrum, noise, takes, steps, record, axes, fingerprints, configs.method)
    if chunk_size is None:
        chunk_size = default_chunk_size(configs, kind, executor_workers(executor, kind), threads)
    block_shape = _block_shape(shape, chunk_size)

    target = None
    if store is not None:
        target = SweepStore.open(store, _template(xr, axes, kept, block_shape, attrs, with_error), fingerprints)
        block_shape = target.block_shape
    blocks = _blocks(shape, block_shape)
    if target is not None:
        computed = target.computed()
        blocks = [b for b in blocks if not computed[b[0]].all()]
        loss = diverged_at = error = None
    else:
        loss = np.empty(shape + (kept.size,))
        diverged_at = np.empty(shape, dtype=np.int64)
        error = np.empty(shape + (kept.size,)) if with_error else None

    total = sum(b[1].size for b in blocks)
    report = progress if callable(progress) else None
    done = [0]
    with progress_bar(total, "sweep", "config", False if report else progress) as bar:
        messages = []

        def on_result(n, block_loss, block_diverged, block_error=None, block_messages=()):
            messages.extend(block_messages)
            slices = blocks[n][0]
            block = tuple(s.stop - s.start for s in slices)
            block_loss = np.asarray(block_loss).reshape(block + (kept.size,))
            block_diverged = np.asarray(block_diverged, dtype=np.int64).reshape(block)
            if block_error is not None:
                block_error = np.asarray(block_error).reshape(block + (kept.size,))
            if target is not None:
                target.write_block(slices, block_loss, block_diverged, block_error)
            else:
                loss[slices] = block_loss
                diverged_at[slices] = block_diverged
                if error is not None:
                    error[slices] = block_error
            bar.update(block_diverged.size)
            done[0] += block_diverged.size
            if report is not None:
                report(done[0], total)

        try:
            run_tasks(configs, [b[1] for b in blocks], executor, threads=threads, on_result=on_result)
        except Exception as exc:
            _explain_stop(exc, store, done[0], total)
            raise
        finally:
            if target is not None:
                target.close()   # the lock: the blocks are on disk

    ds = target.dataset() if target is not None else _dataset(xr, axes, kept, loss, diverged_at, error, attrs)
    if with_error:
        _surface_loss_at_warnings(ds, configs, messages)
    return ds


def _surface_loss_at_warnings(ds, configs, messages):
    """loss_at's warnings for the whole sweep, in the caller whatever executor ran the points:
    the accuracy warning is derived from ``loss`` and ``loss_error`` (so a resumed store gets it
    too), the others come back from the tasks. Each is warned once and kept in
    ``ds.attrs["loss_at_warnings"]``."""
    steps = ds["step"].values
    R = steps.size
    rel = relative_errors(ds["loss"].values, ds["loss_error"].values)
    accuracy = accuracy_warning(rel, lambda i: f"{configs.describe(i // R)} step {int(steps[i % R])}")
    found = ([accuracy] if accuracy else []) + [m for m in messages if not is_accuracy_warning(m)]
    if found:
        ds.attrs["loss_at_warnings"] = found
        for message in found:
            warnings.warn(message, RuntimeWarning, stacklevel=3)


def _explain_stop(exc: Exception, store, done: int, total: int) -> None:
    """A sweep that stopped early says what is kept: a clear RuntimeError when the executor lost its
    workers (Dask's own message is "already forgotten"), a note on any other error with a store."""
    kept = (f"store {store!r} keeps every block that finished ({done} of the {total} configurations this call "
            "runs): the same call resumes it" if store is not None else
            "nothing was kept (pass store= to make a sweep resumable)")
    if workers_lost(exc):
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise RuntimeError(f"sweep stopped: the executor lost its workers before every task finished "
                           f"({type(exc).__name__}{': ' + detail if detail else ''}); {kept}") from exc
    if store is not None and hasattr(exc, "add_note"):   # Python >= 3.11
        exc.add_note(f"sweep stopped early; {kept}")


def fitted_exponents(loss, t_min, t_max):
    """Least-squares slope ``p`` of ``-log L_t`` against ``log t`` over the recorded steps in
    ``[t_min, t_max]``, per grid point: a curve ``L_t = C t^-p`` gives ``p``.

    ``loss``: a sweep's Dataset or its ``loss`` DataArray. With log-spaced recorded steps the fit
    weighs ``log t`` evenly, like [`memsgd.fit_exponent`][memsgd.fit_exponent] on a full curve. ``NaN`` where the
    loss is not finite and positive over the window (e.g. diverged points).

    Examples:
        >>> import numpy as np, xarray as xr
        >>> from memsgd.sweeps import fitted_exponents
        >>> t = np.arange(1, 1001)
        >>> loss = xr.DataArray(np.stack([t ** -0.5, t ** -1.0]), dims=("lr", "step"),
        ...                     coords={"lr": [0.1, 0.2], "step": t})
        >>> np.round(fitted_exponents(loss, 100, 1000).values, 12).tolist()
        [0.5, 1.0]
    """
    xr = require("xarray", "sweep", "fitted_exponents()")
    if isinstance(loss, xr.Dataset):
        loss = loss["loss"]
    if not isinstance(loss, xr.DataArray) or "step" not in loss.dims:
        raise TypeError("loss must be a sweep Dataset or a DataArray with a 'step' dimension")
    t_min = float(t_min)
    t_max = float(t_max)
    if not 0 < t_min < t_max:
        raise ValueError(f"need 0 < t_min < t_max, got t_min={t_min}, t_max={t_max}")
    t = np.asarray(loss["step"].values)
    window = np.flatnonzero((t >= t_min) & (t <= t_max))
    if window.size < 2:
        raise ValueError(f"the window [t_min, t_max] = [{t_min:g}, {t_max:g}] must contain at least two "
                         f"recorded steps, got {window.size}")
    L = loss.isel(step=window)
    x = np.log(t[window].astype(np.float64))
    xc = xr.DataArray(x - x.mean(), dims="step")
    ok = (np.isfinite(L) & (L > 0)).all("step")
    with np.errstate(divide="ignore", invalid="ignore"):  # points that fail `ok` become NaN
        logL = np.log(L.where(ok, 1.0))
        p = -(logL * xc).sum("step") / float(np.sum(xc.values ** 2))
    p = p.where(ok)
    p.name = "exponent"
    p.attrs = {"long_name": "fitted loss exponent p (L_t ~ t^-p)", "t_min": t_min, "t_max": t_max}
    return p


def growth_rates(dataset):
    """[`memsgd.LossCurve.growth_rate`][memsgd.LossCurve.growth_rate] and ``grows_exponentially`` of every grid point
    of a
    sweep, from its recorded steps: the least-squares slope ``r`` of ``ln L_t`` against ``t`` over
    the recorded steps in the last quarter of the run (``L_t ~ C e^(r t)`` there), and whether the
    loss rises there at least e-fold through four successive parts.

    Flags points that grow like an unstable run without having crossed the divergence threshold
    (``diverged_at`` says which did). The fit needs at least 5 recorded steps: those in
    ``[3T/4, T]``, or the last 5 recorded steps when that quarter holds fewer (log-spaced records
    are sparse at the end) provided they lie in ``[T/2, T]``; otherwise ``nan`` and False, with a
    warning that says so. ``inf`` and True for diverged points. Returns a Dataset with
    ``growth_rate`` and ``grows_exponentially`` over the grid axes.

    Examples:
        >>> import memsgd
        >>> from memsgd.sweeps import growth_rates
        >>> ds = memsgd.sweep(memsgd.gd, {"lr": [1.0, 2.5]}, memsgd.Spectrum([1.0], [2.0]), memsgd.Noise.none(), 40,
        ...                   record=None)
        >>> growth_rates(ds)["grows_exponentially"].values.tolist()   # |1 - 2.5| > 1
        [False, True]
    """
    xr = require("xarray", "sweep", "growth_rates()")
    if not isinstance(dataset, xr.Dataset) or not {"loss", "diverged_at"} <= set(dataset.data_vars):
        raise TypeError("dataset must be a sweep Dataset (with loss and diverged_at)")
    t = np.asarray(dataset["step"].values)
    loss = dataset["loss"].transpose(..., "step")
    L = np.asarray(loss.values).reshape(-1, t.size)
    d = np.asarray(dataset["diverged_at"].transpose(*loss.dims[:-1]).values).reshape(-1)
    T = int(t[-1]) if t.size else 0
    half = T - 2 * -(-T // 4)
    in_half = int(np.count_nonzero(t >= half))
    if T >= MIN_STEPS and in_half < RECORDED and np.any(d < 0):
        warnings.warn(f"growth_rates: only {in_half} recorded step{'s' if in_half != 1 else ''} "
                      "lie in the last half of "
                      f"the run [{half}, {T}], fewer than the {RECORDED} a growth rate needs: nan and False for "
                      "every point that did not diverge; sweep with more recorded steps (e.g. record=400)",
                      UserWarning, stacklevel=2)
    pairs = [growth(row, None if k < 0 else int(k), t) for row, k in zip(L, d)]
    shape, dims = loss.shape[:-1], loss.dims[:-1]
    rate = np.array([r for r, _ in pairs], dtype=np.float64).reshape(shape)
    grows = np.array([g for _, g in pairs], dtype=bool).reshape(shape)
    coords = {n: dataset[n] for n in dims}
    return xr.Dataset({"growth_rate": (dims, rate, {"long_name": "per-step growth rate of ln L over the last quarter"}),
                       "grows_exponentially": (dims, grows, {"long_name": "diverged or sustained exponential growth"})},
                      coords=coords)


# -- the grid -------------------------------------------------------------------------------

def _check_grid(grid) -> dict[str, np.ndarray]:
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a dict {{axis name: 1-D values}}, got {type(grid).__name__}")
    if not grid:
        raise ValueError("grid must have at least one axis (a non-empty dict {name: 1-D values})")
    axes = {}
    for name, values in grid.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"grid axis names must be identifiers (they are keyword arguments), got {name!r}")
        if name in _RESERVED:
            raise ValueError(f"grid axis name {name!r} is reserved (the Dataset uses {_RESERVED})")
        try:
            arr = np.asarray(values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"grid[{name!r}] must be a 1-D array of values ({exc})") from None
        if arr.ndim != 1:
            raise ValueError(f"grid[{name!r}] must be 1-D, got shape {arr.shape}")
        if arr.size == 0:
            raise ValueError(f"grid[{name!r}] must not be empty")
        if arr.dtype.kind not in "biufU":
            raise TypeError(f"grid[{name!r}] must hold numbers or strings, got dtype {arr.dtype}")
        if arr.dtype.kind == "f" and np.any(np.isnan(arr)):
            raise ValueError(f"grid[{name!r}] must not contain NaN")
        arr = arr.copy()
        arr.setflags(write=False)
        axes[name] = arr
    return axes


def _taken_axes(func, name: str, axes) -> tuple[str, ...]:
    """The grid axes ``func`` takes: the parameters it names (all axes for ``**kwargs``); a
    required parameter that is not an axis is an error."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a callable with an inspectable signature (its parameters name "
                        "grid axes)") from None
    taken = []
    for p in params:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return tuple(axes)
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if p.name in axes:
            if p.kind is inspect.Parameter.POSITIONAL_ONLY:
                raise ValueError(f"{name} takes grid axis {p.name!r} as a positional-only parameter; "
                                 "grid values are passed by keyword")
            taken.append(p.name)
        elif p.default is inspect.Parameter.empty:
            raise ValueError(f"{name} takes {p.name!r}, which is not a grid axis (axes: {list(axes)})")
    return tuple(taken)


def _build(factory, spectrum, noise, axes, takes, steps, kept) -> Configurations:
    """Every configuration, in grid (C) order; spectra and noises built once per distinct value
    of the axes they take."""
    names = list(axes)
    position = {n: i for i, n in enumerate(names)}
    values = [[v.item() for v in axes[n]] for n in names]
    shape = tuple(len(v) for v in values)

    def point(idx):
        return {n: values[position[n]][idx[position[n]]] for n in names}

    def describe(i):
        p = point(np.unravel_index(i, shape))
        return "grid point {" + ", ".join(f"{k}={v!r}" for k, v in p.items()) + "}"

    def call(func, name, idx):
        kwargs = {n: values[position[n]][idx[position[n]]] for n in takes[name]}
        try:
            return func(**kwargs)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{name} failed at {describe(np.ravel_multi_index(idx, shape))}: {exc}") from exc

    def unique_objects(value, name, cls):
        if isinstance(value, cls):
            return [value], np.zeros(math.prod(shape), dtype=np.int64)
        cache, objects = {}, []
        index = np.empty(math.prod(shape), dtype=np.int64)
        for i, idx in enumerate(np.ndindex(*shape)):
            key = tuple(idx[position[n]] for n in takes[name])
            if key not in cache:
                obj = call(value, name, idx)
                if not isinstance(obj, cls):
                    raise TypeError(f"{name} must return a {cls.__name__}, got {type(obj).__name__} at "
                                    f"{describe(i)}")
                cache[key] = len(objects)
                objects.append(obj)
            index[i] = cache[key]
        return objects, index

    spectra, spectrum_index = unique_objects(spectrum, "spectrum", Spectrum)
    noises, noise_index = unique_objects(noise, "noise", Noise)
    for j, n in enumerate(noises):
        if n.per_step and n.batch_size.size < steps:
            i = int(np.flatnonzero(noise_index == j)[0])
            raise ValueError(f"noise has {n.batch_size.size} per-step batch sizes, fewer than steps = {steps}, "
                             f"at {describe(i)}")
    algorithms = []
    for i, idx in enumerate(np.ndindex(*shape)):
        algo = call(factory, "factory", idx)
        if not isinstance(algo, (MemoryAlgorithm, Schedule)):
            raise TypeError(f"factory must return a MemoryAlgorithm or a Schedule, got {type(algo).__name__} "
                            f"at {describe(i)}")
        if isinstance(algo, Schedule) and algo.length is not None and steps > algo.length:
            raise ValueError(f"factory returned a schedule of length {algo.length} < steps = {steps} at "
                             f"{describe(i)}")
        algorithms.append(algo)
    return Configurations(algorithms, spectra, spectrum_index, noises, noise_index, steps, kept, describe)


def _resolve_method(method: str, configs: Configurations, record) -> str:
    """``"engine"`` or ``"loss_at"`` for the whole sweep (one method per sweep: a store never mixes
    them). ``"auto"`` takes loss_at when every configuration allows it and the step-by-step runs
    would average more than ``AUTO_WORK`` scalar updates per configuration (docs/sweeps.md)."""
    if method == "engine":
        return method
    unsupported = next((i for i in range(configs.size)
                        if not supports_loss_at(configs.algorithms[i], configs.noises[configs.noise_index[i]])), None)
    if method == "auto":
        if unsupported is not None:
            return "engine"
        sample = range(0, configs.size, max(1, configs.size // 256))
        mean_work = sum(engine_work(configs.algorithms[i], configs.spectra[configs.spectrum_index[i]],
                                    configs.steps) for i in sample) / len(sample)
        if mean_work <= AUTO_WORK:
            return "engine"
        why = (f"method='auto' chose loss_at (the step-by-step runs would average {mean_work:.2g} scalar "
               f"updates per configuration)")
    else:
        if unsupported is not None:
            a = configs.algorithms[unsupported]
            n = configs.noises[configs.noise_index[unsupported]]
            what = ("a Schedule" if isinstance(a, Schedule) else "a per-step batch size" if n.per_step
                    else "a preconditioner together with weight decay")
            raise ValueError(f"method='loss_at' needs stationary algorithms or Schedule.piecewise with one batch "
                             f"size (and no preconditioner together with weight decay); got {what} at "
                             f"{configs.describe(unsupported)} (use method='engine' or 'auto')")
        why = "method='loss_at'"
    if record is None:
        raise ValueError(f"record=None keeps every step: {configs.size} x {configs.steps + 1} losses "
                         f"({8e-9 * configs.size * (configs.steps + 1):.3g} GB); {why}, which evaluates chosen "
                         "steps only: pass record=R (about R log-spaced steps) or an array of steps, or "
                         "method='engine'")
    if configs.steps > LOSS_AT_MAX_STEP:
        raise ValueError(f"steps must be <= 10**12 with loss_at ({why}), got {configs.steps}")
    return "loss_at"


def _block_shape(shape, chunk_size: int) -> tuple[int, ...]:
    """A rectangular block of at most ``chunk_size`` points, filled from the last axis."""
    block, left = [1] * len(shape), chunk_size
    for i in reversed(range(len(shape))):
        block[i] = min(shape[i], max(1, left))
        left //= block[i]
    return tuple(block)


def _blocks(shape, block_shape) -> list[tuple[tuple, np.ndarray]]:
    """``(slices, flat configuration indices)`` of every block, in C order."""
    counts = [-(-s // b) for s, b in zip(shape, block_shape)]
    flat = np.arange(math.prod(shape)).reshape(shape)
    out = []
    for bidx in np.ndindex(*counts):
        slices = tuple(slice(i * b, min((i + 1) * b, s)) for i, b, s in zip(bidx, block_shape, shape))
        out.append((slices, flat[slices].ravel()))
    return out


# -- provenance ---------------------------------------------------------------------------------

def _sha(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\x00")
    return h.hexdigest()


def _spectrum_digest(s: Spectrum) -> str:
    return _sha(*(np.ascontiguousarray(a, dtype=np.float64).tobytes()
                  for a in (s.eigenvalues, s.coefficients2, s.weights)))


def _noise_digest(n: Noise) -> str:
    b = n.batch_size
    size = np.ascontiguousarray(b, dtype=np.float64).tobytes() if n.per_step else float(b).hex()
    # label noise only when present: the digests of stores without it stay what they were
    label = (f"label_noise:{float(n.label_noise).hex()}",) if n.label_noise else ()
    return _sha(size, float(n.tau1).hex(), float(n.tau2).hex(), *label)


def _affine_bytes(a, steps: int) -> bytes:
    """Weight decay (per step), readout and preconditioner of an algorithm (docs/math.md §9); empty
    for the plain model, so that older stores keep their fingerprints."""
    if a.is_plain:
        return b""
    rho = np.array([a.weight_decay]) if isinstance(a, MemoryAlgorithm) else a.weight_decays(steps)
    return (b"affine:" + np.ascontiguousarray(rho, dtype=np.float64).tobytes() + b"|"
            + np.ascontiguousarray(a.readout, dtype=np.float64).tobytes() + b"|"
            + float(a.preconditioner).hex().encode())


def _algorithm_digest(a, steps: int) -> bytes:
    if isinstance(a, MemoryAlgorithm):
        flat = np.concatenate(([a.alpha], a.b, a.c, a.D.ravel(), a.e))
        return hashlib.sha256(b"algorithm %d:" % a.memory + flat.tobytes() + _affine_bytes(a, steps)).digest()
    try:  # named schedules pickle to their formula's name and arguments (and affine features): exact
        return hashlib.sha256(b"schedule-pickle:" + pickle.dumps(a, protocol=4)).digest()
    except Exception:  # e.g. a generator built on a lambda: hash its parameters over the run
        return _sha("schedule-parameters", a.memory,
                    *(np.ascontiguousarray(x).tobytes() for x in a.parameters(steps)),
                    _affine_bytes(a, steps)).encode()


def _content_digest(digests, index) -> str:
    """Digest of "configuration i uses the object with content digests[index[i]]", independent of
    how the objects were made (one shared object, or equal ones from a callable)."""
    first_seen = {}
    canonical = np.array([first_seen.setdefault(digests[j], len(first_seen)) for j in range(len(digests))])
    return _sha(*first_seen, canonical[index].astype(np.int64).tobytes())


def _fingerprints(axes, configs: Configurations) -> dict[str, str]:
    """Content digests of what defines a sweep's results; a store is resumed only when all agree."""
    parts = {
        "grid": _sha(*(f"{n}:{v.dtype.str}:{v.tolist()!r}" for n, v in axes.items())),
        "steps": _sha(configs.steps),
        "record": _sha(configs.record.tobytes()),
        "spectrum": _content_digest([_spectrum_digest(s) for s in configs.spectra], configs.spectrum_index),
        "noise": _content_digest([_noise_digest(n) for n in configs.noises], configs.noise_index),
        "algorithms": _sha(b"".join(_algorithm_digest(a, configs.steps) for a in configs.algorithms)),
        "method": _sha(configs.method),
        "memsgd_version": _sha(__version__),
    }
    parts["fingerprint"] = _sha(*(f"{k}={v}" for k, v in sorted(parts.items())))
    return parts


def _name(obj) -> str:
    target = getattr(obj, "func", obj)  # functools.partial
    module = getattr(target, "__module__", None) or type(target).__module__
    qual = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}.{qual}"


def _provenance(factory, spectrum, noise, takes, steps, record, axes, fingerprints, method) -> dict:
    def describe(value, name):
        if callable(value) and not isinstance(value, (Spectrum, Noise)):
            return f"{_name(value)}({', '.join(takes[name])})"
        return repr(value)

    if record is None:
        record_text = "every step"
    elif isinstance(record, (int, np.integer)):
        record_text = f"log-spaced, {int(record)} points requested"
    else:
        record_text = "explicit steps"
    attrs = {
        "title": "memsgd sweep: exact expected loss L_t over a grid (docs/sweeps.md)",
        "memsgd_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "factory": f"{_name(factory)}({', '.join(takes['factory'])})",
        "spectrum": describe(spectrum, "spectrum"),
        "noise": describe(noise, "noise"),
        "steps": int(steps),
        "record": record_text,
        "method": {"engine": "engine (exact recursion, step by step: memsgd.loss_curves)",
                   "loss_at": "loss_at (exact losses at the recorded steps by contour integration: "
                              "memsgd.loss_at; error in loss_error)"}[method],
        "grid_axes": list(axes),
    }
    attrs.update({("fingerprint" if k == "fingerprint" else f"fingerprint_{k}"): v
                  for k, v in fingerprints.items()})
    return attrs


# -- the Dataset ----------------------------------------------------------------------------

_VARIABLE_ATTRS = {
    "loss": {"long_name": "expected loss L_t at the recorded steps (inf from a divergence on)"},
    "diverged_at": {"long_name": "first diverged step (-1: did not diverge)"},
    "loss_error": {"long_name": "estimated absolute error of loss (loss_at; 0 where loss is inf)"},
}


def _coords(axes, kept):
    coords = {n: (n, np.asarray(v)) for n, v in axes.items()}
    coords["step"] = ("step", kept)
    return coords


def _dataset(xr, axes, kept, loss, diverged_at, error, attrs):
    dims = tuple(axes)
    variables = {"loss": (dims + ("step",), loss, _VARIABLE_ATTRS["loss"]),
                 "diverged_at": (dims, diverged_at, _VARIABLE_ATTRS["diverged_at"])}
    if error is not None:
        variables["loss_error"] = (dims + ("step",), error, _VARIABLE_ATTRS["loss_error"])
    return xr.Dataset(variables, coords=_coords(axes, kept), attrs=attrs)


def _template(xr, axes, kept, block_shape, attrs, with_error):
    """The store's layout: dask-backed placeholders (nothing computed) chunked by blocks."""
    da = require("dask.array", "sweep", "sweep(store=...)")
    dims = tuple(axes)
    shape = tuple(v.size for v in axes.values())
    R = kept.size
    variables = {
        "loss": (dims + ("step",), da.empty(shape + (R,), chunks=block_shape + (R,), dtype=np.float64),
                 _VARIABLE_ATTRS["loss"]),
        "diverged_at": (dims, da.empty(shape, chunks=block_shape, dtype=np.int64), _VARIABLE_ATTRS["diverged_at"]),
        "computed": (dims, da.zeros(shape, chunks=block_shape, dtype=bool),
                     {"long_name": "the point's curve is in the store"})}
    if with_error:
        variables["loss_error"] = (dims + ("step",), da.empty(shape + (R,), chunks=block_shape + (R,),
                                                             dtype=np.float64), _VARIABLE_ATTRS["loss_error"])
    return xr.Dataset(variables, coords=_coords(axes, kept), attrs=attrs)
