"""`memsgd sweep`: exact loss curves of a preset over a grid of its parameters, the problem and the
batch size (``memsgd.sweep``), with a summary table, an optional Zarr store and a heat map."""
from __future__ import annotations

import contextlib
import inspect
import math

import numpy as np

from .._affine import ema
from .._validation import fit_window
from ..noise import Noise
from ..spectrum import Spectrum
from . import _common

__all__ = ["register", "run", "build", "parse_values", "open_executor"]

_EXECUTOR_HELP = ("where to run: 'local' (default: this process, all cores), 'processes:N', 'threads:N', "
                  "or a Dask scheduler 'dask://HOST:PORT' (also 'tcp://HOST:PORT')")


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help="exact loss curves of a preset over a grid (lr, momentum, batch, nu, kappa, ...)",
        description="Run a preset over the Cartesian grid of every parameter given several values "
                    "(docs/sweeps.md). A value is a number, a list 'a,b,c', or a range 'start:stop:num[:log|lin]'. "
                    "Prints the best points; --store keeps every curve in a resumable Zarr store; --plot "
                    "writes a heat map over two axes. Presets, their options and defaults: see `memsgd curve --help`.")
    g = p.add_argument_group("algorithm (each parameter: a value, a list or a range; an option the preset "
                             "does not take is an error)")
    g.add_argument("--algo", type=_common.preset_name, choices=list(_common.PRESETS), default="heavy_ball",
                   metavar="PRESET",
                   help="preset, default heavy_ball")
    for dest, (option, _, text) in _common.PARAMETERS.items():
        g.add_argument(option, dest=dest, default=None, metavar="VALUES", help=text)
    g.add_argument("--weight-decay", dest="weight_decay", default="0", metavar="VALUES",
                   help=_common.WEIGHT_DECAY_HELP + " (every preset; values: a grid axis)")
    g.add_argument("--ema", type=_common.ema_type("--ema"), default=None, metavar="DECAY", help=_common.EMA_HELP)
    q = p.add_argument_group("power law (a value, a list or a range)")
    q.add_argument("--nu", default="2", metavar="VALUES", help="eigenvalue decay exponent (> 1), default 2")
    q.add_argument("--kappa", default="1", metavar="VALUES", help="target decay exponent (> 0), default 1")
    _common.add_problem_args(p, with_power_law=False)
    n = p.add_argument_group("noise (SE approximation, docs/math.md §3)")
    n.add_argument("--batch", default="10", metavar="VALUES", help="batch sizes (integers or inf), default 10")
    n.add_argument("--tau1", type=_common.float_type("--tau1"), default=1.0, help="default 1 (Gaussian data)")
    n.add_argument("--tau2", type=_common.float_type("--tau2"), default=-1.0, help="default -1 (Gaussian data)")
    n.add_argument("--label-noise", dest="label_noise", default="0", metavar="VALUES",
                   help=_common.LABEL_NOISE_HELP + " (values: a grid axis)")
    r = p.add_argument_group("run and output")
    r.add_argument("--steps", type=_common.int_type("--steps", 1), default=10000, help="horizon T, default 10000")
    r.add_argument("--record", type=_common.int_type("--record", 2), default=400,
                   help="log-spaced steps kept per curve, default 400")
    r.add_argument("--method", choices=("auto", "engine", "loss_at"), default="auto",
                   help="engine: step by step (cost ~ T); loss_at: the recorded steps only, cost independent of T "
                        "(stationary presets; docs/long-horizons.md); auto (default): loss_at when every "
                        "configuration is stationary and the engine would need more than 1e11 scalar updates "
                        "per configuration")
    r.add_argument("--store", metavar="PATH", help="Zarr store: written as blocks finish, resumed by the same command")
    r.add_argument("--executor", default="local", metavar="SPEC", help=_EXECUTOR_HELP)
    r.add_argument("--chunk-size", type=_common.int_type("--chunk-size", 1), default=None,
                   help="configurations per task (default: from the work)")
    r.add_argument("--fit-window", default=None, metavar="TMIN,TMAX",
                   help="window of the fitted exponent (default T/10,T)")
    r.add_argument("--top", type=_common.int_type("--top", 0), default=10,
                   help="rows of the table (best final loss first); 0: all; default 10")
    r.add_argument("--json", action="store_true", help="machine-readable output (every point)")
    r.add_argument("--plot", metavar="FILE.png", help="heat map over two axes")
    r.add_argument("--color", choices=("final", "exponent"), default="final",
                   help="heat-map colour: final loss L_T (default) or fitted exponent")
    r.add_argument("--x", default=None, metavar="AXIS", help="heat-map x axis (default: the first grid axis)")
    r.add_argument("--y", default=None, metavar="AXIS", help="heat-map y axis (default: the second grid axis)")
    _common.add_progress_arg(r)
    p.set_defaults(func=run)


def parse_values(text: str, name: str) -> np.ndarray:
    """``'0.1'``, ``'1,10,inf'`` or ``'start:stop:num[:log|lin]'`` -> 1-D float array."""
    text = str(text).strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) not in (3, 4):
                raise ValueError
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
            scale = parts[3].strip().lower() if len(parts) == 4 else "lin"
            if num < 1 or scale not in ("log", "lin"):
                raise ValueError
            if scale == "log":
                if not (start > 0 and stop > 0):
                    raise ValueError(f"--{name} log range needs start, stop > 0")
                return np.geomspace(start, stop, num)
            return np.linspace(start, stop, num)
        values = np.array([float(v) for v in text.split(",") if v.strip()])
    except ValueError as exc:
        detail = f" ({exc})" if str(exc) else ""
        raise ValueError(f"--{name.replace('_', '-')} must be a number, a list 'a,b,c' or a range "
                         f"'start:stop:num[:log|lin]', got {text!r}{detail}") from None
    if values.size == 0:
        raise ValueError(f"--{name.replace('_', '-')} must give at least one value")
    return values


class _Bound:
    """``func(**axes, **constants)`` with a signature naming only the axes (what sweep() inspects)."""

    def __init__(self, func, axes, constants):
        self.func, self.constants = func, constants
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(a, inspect.Parameter.KEYWORD_ONLY) for a in axes])
        self.__qualname__ = getattr(func, "__qualname__", type(func).__name__)
        self.__module__ = getattr(func, "__module__", __name__)

    def __call__(self, **axes):
        return self.func(**axes, **self.constants)


class _WithEma:
    """``memsgd.ema(build(**values), decay)``: a preset read at the EMA of its iterates (picklable)."""

    def __init__(self, build, decay):
        self.build, self.decay = build, decay
        self.__qualname__ = f"ema({getattr(build, '__qualname__', type(build).__name__)}, {decay:g})"
        self.__module__ = getattr(build, "__module__", __name__)

    def __call__(self, **values):
        return ema(self.build(**values), self.decay)


def _preset_grid(args, problem) -> dict:
    """Each parameter of the preset: the values given, else its default (derived from the problem
    where the preset says so); options the preset does not take are refused."""
    preset = _common.PRESETS[args.algo]
    _common.refuse_stray_options(args)
    values = {}
    for k, default in preset.defaults.items():
        given = getattr(args, k)
        if given is not None:
            values[k] = parse_values(given, k)
        elif default == "kappa/nu":
            if problem["nu"].size > 1 or problem["kappa"].size > 1:
                raise ValueError(f"--algo {args.algo} needs {_common.PARAMETERS[k][0]} when --nu or --kappa has "
                                 f"several values")
            values[k] = problem["kappa"] / problem["nu"]
        elif default == "scale":
            values[k] = np.array([args.scale])
        else:
            values[k] = np.array([default], dtype=float)
    _common.check_preset_values(args.algo, values, _nonnegative_values(args.weight_decay, "weight_decay"))
    return values


def build(args):
    """``(factory, grid, spectrum, noise)`` for [`memsgd.sweep`][memsgd.sweeps.sweep] from the parsed flags."""
    problem = {"nu": parse_values(args.nu, "nu"), "kappa": parse_values(args.kappa, "kappa")}
    values = _preset_grid(args, problem)
    values["weight_decay"] = _nonnegative_values(args.weight_decay, "weight_decay")
    batch = _batch_values(args.batch)
    label = _nonnegative_values(args.label_noise, "label_noise")
    grid = {k: v for k, v in {**values, **problem, "batch": batch, "label_noise": label}.items() if v.size > 1}
    if not grid:
        raise ValueError("give at least one parameter several values, e.g. --lr 0.01:1:9:log "
                         "(a single configuration is `memsgd curve`)")

    def split(vals):
        return [k for k in vals if k in grid], {k: v[0].item() for k, v in vals.items() if k not in grid}

    axes, constants = split(values)
    build = _common.PRESETS[args.algo].build
    factory = _Bound(build if args.ema is None else _WithEma(build, args.ema), axes, constants)
    p_axes, p_constants = split(problem)
    shape = dict(size=args.size, scale=args.scale, q=args.q)
    spectrum = (Spectrum.power_law(p_constants["nu"], p_constants["kappa"], **shape) if not p_axes
                else _Bound(_power_law, p_axes, {**p_constants, **shape}))
    n_axes, n_constants = split({"batch": batch, "label_noise": label})
    noise = (Noise(n_constants["batch"], args.tau1, args.tau2, n_constants["label_noise"]) if not n_axes
             else _Bound(_noise, n_axes, {**n_constants, "tau1": args.tau1, "tau2": args.tau2}))
    return factory, grid, spectrum, noise


def _power_law(nu, kappa, size, scale, q):
    return Spectrum.power_law(nu, kappa, size=size, scale=scale, q=q)


def _noise(batch, tau1, tau2, label_noise):
    return Noise(batch, tau1, tau2, label_noise)


def _nonnegative_values(text: str, name: str) -> np.ndarray:
    values = parse_values(text, name)
    if np.any(values < 0):
        raise ValueError(f"--{name.replace('_', '-')} values must be >= 0, got {values.tolist()}")
    return values


def _batch_values(text: str) -> np.ndarray:
    return parse_values(",".join("inf" if v.strip().lower() in ("inf", "infinity", "none") else v
                                 for v in str(text).split(",")), "batch")


@contextlib.contextmanager
def open_executor(spec: str):
    """The executor named by ``--executor`` (closed afterwards; a Dask client is disconnected,
    the cluster itself is left running)."""
    spec = (spec or "local").strip()
    if spec == "local":
        yield None
        return
    kind, _, rest = spec.partition(":")
    if kind in ("processes", "threads"):
        try:
            n = int(rest)
            if n < 1:
                raise ValueError
        except ValueError:
            raise ValueError(f"--executor {kind}:N needs a positive integer N, got {spec!r}") from None
        from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
        if kind == "threads":
            pool = ThreadPoolExecutor(n)
        else:
            import multiprocessing
            # spawn: a forked child would inherit this process's OpenMP runtime state
            pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))
        with pool:
            yield pool
        return
    if kind in ("dask", "tcp") and rest.startswith("//"):
        from .._optional import require
        distributed = require("distributed", "sweep", "--executor dask://")
        client = distributed.Client("tcp:" + rest)
        try:
            yield client
        finally:
            client.close()
        return
    raise ValueError(f"--executor must be 'local', 'processes:N', 'threads:N' or 'dask://HOST:PORT', got {spec!r}")


def run(args) -> int:
    from ..sweeps import fitted_exponents, sweep
    factory, grid, spectrum, noise = build(args)
    t_min, t_max = _fit_window(args.fit_window, args.steps)
    names = list(grid)
    if args.plot:
        x, y = _plot_axes(args, names)
    with open_executor(args.executor) as executor:
        ds = sweep(factory, grid, spectrum, noise, args.steps, record=args.record, executor=executor,
                   store=args.store, chunk_size=args.chunk_size, progress=args.progress, method=args.method)
    ds = ds.load()
    final = ds["loss"].isel(step=-1)
    try:
        exponent = fitted_exponents(ds, t_min, t_max)
    except ValueError:  # fewer than two recorded steps in the window
        exponent = final * np.nan
    rows = _rows(ds, final, exponent)
    if args.json:
        _common.dump_json({"attrs": {k: v for k, v in ds.attrs.items() if not k.startswith("fingerprint_")},
                           "grid": {n: [_value(v) for v in ds[n].values.tolist()] for n in names},
                           "fit_window": [t_min, t_max],
                           "points": [{**{k: _value(v) for k, v in r["point"].items()},
                                       "final_loss": r["final"], "exponent": r["exponent"],
                                       "diverged_at": r["diverged_at"]} for r in rows]})
    else:
        _print_summary(args, ds, rows, names, t_min, t_max)
    if args.plot:
        _heat_map(args, ds, final, exponent, x, y, t_min, t_max)
        if not args.json:
            print(f"# wrote {args.plot}")
    return 0


def _fit_window(text, steps):
    if text is None:
        return steps / 10, float(steps)
    return fit_window(text.split(","), steps, "--fit-window")


def _plot_axes(args, names):
    x = args.x or names[0]
    y = args.y or next((n for n in names if n != x), None)
    for flag, axis in (("--x", x), ("--y", y)):
        if axis is None:
            raise ValueError("--plot needs two grid axes (parameters with several values)")
        if axis not in names:
            raise ValueError(f"{flag} must be one of the grid axes {names}, got {axis!r}")
    if x == y:
        raise ValueError(f"--x and --y must be different axes, got {x!r} twice")
    return x, y


def _value(v):
    return float(v) if isinstance(v, (float, np.floating)) else v


def _rows(ds, final, exponent):
    names = [d for d in ds["diverged_at"].dims]
    flat_final = final.values.ravel()
    flat_exp = exponent.values.ravel()
    flat_div = ds["diverged_at"].values.ravel()
    coords = [ds[n].values for n in names]
    shape = ds["diverged_at"].shape
    rows = []
    for i in range(flat_final.size):
        idx = np.unravel_index(i, shape)
        rows.append({"point": {n: coords[a][idx[a]].item() for a, n in enumerate(names)},
                     "final": float(flat_final[i]), "exponent": float(flat_exp[i]),
                     "diverged_at": int(flat_div[i]) if flat_div[i] >= 0 else None})
    return rows


def _print_summary(args, ds, rows, names, t_min, t_max):
    sizes = " x ".join(f"{n} ({ds[n].size})" for n in names)
    diverged = sum(r["diverged_at"] is not None for r in rows)
    print(f"# memsgd sweep: {ds.attrs['factory']}\n# spectrum {ds.attrs['spectrum']}\n# noise {ds.attrs['noise']}")
    print(f"# grid {sizes} = {len(rows)} configurations; T = {args.steps}, {ds['step'].size} recorded steps; "
          f"diverged: {diverged}/{len(rows)}" + (f"; store {args.store}" if args.store else ""))
    print(f"# method: {ds.attrs['method']}")
    order = sorted(range(len(rows)), key=lambda i: (not math.isfinite(rows[i]["final"]), rows[i]["final"]))
    if args.top:
        order = order[:args.top]
    table = [[f"{rows[i]['point'][n]:g}" if isinstance(rows[i]["point"][n], float) else str(rows[i]["point"][n])
              for n in names]
             + [f"{rows[i]['final']:.4e}", f"{rows[i]['exponent']:.4f}",
                "-" if rows[i]["diverged_at"] is None else str(rows[i]["diverged_at"])] for i in order]
    print(f"# best {len(order)} by L_T (exponent fitted on [{t_min:g}, {t_max:g}])")
    _common.print_table(names + ["L_T", "exponent", "diverged_at"], table)


def _heat_map(args, ds, final, exponent, x, y, t_min, t_max):
    from ..plotting import plot_heatmap
    from ..sweeps import growth_rates
    others = [n for n in final.dims if n not in (x, y)]
    # Points that diverged or grow exponentially without having crossed the threshold yet are
    # greyed alike: one growing cell (L_T ~ 1e21) would otherwise set a colour scale on which every
    # converging cell looks the same.
    unstable = growth_rates(ds)["grows_exponentially"]
    if args.color == "final":
        values, label, log = final.where(np.isfinite(final) & ~unstable), "final loss L_T", True
        values = values.min(others) if others else values
    else:
        values, label, log = exponent.where(~unstable), f"fitted exponent on [{t_min:g}, {t_max:g}]", False
        values = values.max(others) if others else values
    values = values.transpose(y, x)
    title = f"{args.algo}, T = {args.steps}"
    if others:
        title += f"\n{'min' if args.color == 'final' else 'max'} over {', '.join(others)}"
    plot_heatmap(values.values, ds[x].values, ds[y].values, args.plot, xlabel=x, ylabel=y, title=title,
                 colorbar_label=label, log_color=log, grey_means="diverged or growing exponentially")
