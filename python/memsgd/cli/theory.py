"""`memsgd stability` and `memsgd phase` (theory toolkit, docs/math.md §5-6)."""
from __future__ import annotations

from .. import _method, theory
from .._validation import float_list_from_text
from ..plotting import plot_phase, plot_stability
from ..spectrum import Spectrum
from ..theory._measured import MIN_MEASURE_STEPS
from . import _common

__all__ = ["register", "run_stability", "run_phase"]


def register(sub) -> None:
    p = sub.add_parser(
        "stability", help="strict stability, noise sums V, V' and convergence of a preset on a power law",
        description="Stability report (docs/math.md §5): rho(S_lambda) over the spectrum, noise sums V and V' "
                    "from per-component Lyapunov solves, convergence (V' < 1); for memory-1 presets "
                    "also the Jury / H2 closed forms and the eigenvalue geometry; the asymptotic phase "
                    "(docs/math.md §6, §6.1).")
    _common.add_problem_args(p)
    _common.add_algorithm_args(p)
    _common.add_noise_args(p)
    p.add_argument("--check-at", metavar="T1,T2,...", default=None,
                   help="also compare the asymptotic law with the exact loss at these steps (e.g. 1e4,1e6,1e9; "
                        "up to 1e12): the exact L_t by loss_at (docs/long-horizons.md) and the ratio exact / "
                        "predicted, which tends to 1; about a second")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plot", metavar="FILE.png",
                   help="write the eigenvalues of S_lambda in the complex plane and the per-component noise "
                        "terms (memory 1: the circle of complex pairs and the three noise regions)")
    p.set_defaults(func=run_stability)

    q = sub.add_parser(
        "phase", help="phase / exponent / V of a preset over a grid of (nu, zeta)",
        description="For each (nu, zeta) of the grid (kappa = zeta nu) report the asymptotic phase "
                    "('signal' if zeta < 2 - 1/nu, 'noise' above, 'diverges' if V' >= 1 or unstable), "
                    "the loss exponent and the noise sum V (docs/math.md §6).")
    q.add_argument("--nu", type=str, default="1.5,2,3", help="comma-separated nu values (> 1), default 1.5,2,3")
    q.add_argument("--zeta", type=str, default="0.25,0.5,1,1.5,2,3",
                   help="comma-separated zeta values (> 0), default 0.25,0.5,1,1.5,2,3")
    _common.add_problem_args(q, with_power_law=False)
    _common.add_algorithm_args(q)
    _common.add_noise_args(q)
    q.add_argument("--measure-steps", type=_common.int_type("--measure-steps", MIN_MEASURE_STEPS),
                   default=None, metavar="T",
                   help="also measure the exponent: fitted on the exact loss curves over [T/10, T] of the same "
                        "grid (one batched run of the engine; e.g. 1e4); shown next to the predicted one")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.add_argument("--plot", metavar="FILE.png",
                   help="write a heat map of the exponent over (nu, zeta) (with --measure-steps: predicted "
                        "and measured side by side)")
    _common.add_progress_arg(q)
    q.set_defaults(func=run_phase)


def _num(x):
    """A float for JSON (non-finite values become null in the strict JSON writer)."""
    return float(x)


def run_stability(args) -> int:
    spectrum = _common.spectrum_from_args(args)
    algo = _common.algorithm_from_args(args)
    noise = _common.noise_from_args(args)
    check_at = None if args.check_at is None else _check_steps(args.check_at)
    if check_at is not None and algo.weight_decay:
        raise ValueError("--check-at compares the power-law asymptotics with the exact loss; with --weight-decay "
                         "the loss approaches its floor geometrically (no power law): see noise_floor")
    rep = theory.stability(algo, spectrum, noise)
    if check_at is not None and not rep.converges:
        raise ValueError("--check-at compares the asymptotic law with the exact loss: it needs a run whose loss "
                         f"converges (strictly stable and V' < 1), got V' = {rep.noise_sum_prime:.6g}, "
                         f"strictly stable: {rep.strictly_stable}")
    out = {
        "problem": repr(spectrum), "algorithm": repr(algo),
        "batch_size": noise.batch_size,
        "alpha_eff": _num(rep.alpha_eff),
        "strictly_stable": rep.strictly_stable, "max_spectral_radius": _num(rep.max_spectral_radius),
        "moment_stable": rep.moment_stable, "max_moment_radius": _num(rep.max_moment_radius),
        "noise_sum": _num(rep.noise_sum), "noise_sum_prime": _num(rep.noise_sum_prime),
        "converges": rep.converges, "noise_floor": _num(rep.noise_floor),
    }
    # the memory-1 closed forms describe the plain matrix form; weight decay has no power-law approach
    plain_form = not (algo.weight_decay or algo.preconditioner)
    if algo.memory == 1 and plain_form:
        beta, a0, a1 = theory.memory1_coefficients(algo)
        geo = theory.memory1_geometry(algo)
        out["memory1"] = {"beta": beta, "alpha0": a0, "alpha1": a1,
                          "jury_stable": theory.jury_stable_memory1(beta, a0, a1, spectrum.lambda_max),
                          "noise_sum_prime_closed_form": _num(theory.noise_sum_memory1(algo, spectrum, noise)),
                          "eigenvalues": geo.kind,
                          "complex_interval": (None if geo.complex_interval is None
                                               else [_num(v) for v in geo.complex_interval]),
                          "circle_center": geo.center, "circle_radius": geo.radius}
    if rep.converges and not algo.weight_decay:
        asy = theory.asymptotics(algo, spectrum, noise, check_at=check_at)
        out["asymptotics"] = {"phase": asy.phase, "exponent": asy.exponent, "constant": _num(asy.constant)}
        if asy.floor:
            out["asymptotics"]["floor"] = asy.floor
        if check_at is not None:
            out["asymptotics"]["check"] = [
                {"t": t, "exact": L, "exact_error": e, "predicted": _num(asy.predict(t)), "ratio": r}
                for t, L, e, r in zip(asy.check_steps, asy.exact, asy.exact_error, asy.ratios)]
    if args.plot:
        profile = theory.stability_profile(algo, spectrum, noise)
        plot_stability(profile, args.plot, title=f"{algo!r} on {spectrum!r}, {noise!r}")
    if args.json:
        _common.dump_json(out)
        return 0
    print(f"# {spectrum!r}\n# {algo!r}\n# batch size {out['batch_size']}")
    rows = [(k, v) for k, v in out.items() if k not in ("problem", "algorithm", "batch_size", "memory1", "asymptotics")]
    rows += [(f"memory1.{k}", v) for k, v in out.get("memory1", {}).items()]
    rows += [(f"asymptotics.{k}", v) for k, v in out.get("asymptotics", {}).items() if k != "check"]
    _common.print_table(["quantity", "value"], [(k, f"{v:.10g}" if isinstance(v, float) else str(v)) for k, v in rows])
    if check_at is not None:
        if asy.floor:
            print(f"# the law against the exact loss (loss_at): ratio = (L_t - L_inf) / (predicted - L_inf) -> 1 "
                  f"as t grows, L_inf = {asy.floor:.10g}")
        else:
            print("# the law against the exact loss (loss_at; ratio -> 1 as t grows)")
        _common.print_table(["t", "exact L_t", "predicted", "ratio", "ratio - 1"],
                            [(c["t"], f"{c['exact']:.6e}", f"{c['predicted']:.6e}", f"{c['ratio']:.10f}",
                              f"{c['ratio'] - 1:.2e}") for c in out["asymptotics"]["check"]])
    if args.plot:
        print(f"# wrote {args.plot}")
    return 0


def _check_steps(text: str):
    """--check-at: comma-separated integral steps >= 1, increasing, up to 1e12."""
    from .._validation import step_array
    from ..long_horizon import MAX_STEP
    return step_array(float_list_from_text(text, "--check-at"), "--check-at", max_step=MAX_STEP, min_step=1)


def _refuse_long_measurement(args, algo, noise, nus, zetas) -> None:
    """--measure-steps runs the engine over every step of one curve per grid point: refuse, before
    any work, a run beyond _common.LONG_WORK, saying how long it would take here."""
    T = args.measure_steps
    spectra = [Spectrum.power_law(nu, zeta * nu, size=args.size, scale=args.scale, q=args.q)
               for nu in nus for zeta in zetas]
    work = sum(_method.engine_work(algo, s, T) for s in spectra)
    if work > _common.LONG_WORK:
        largest = max(spectra, key=lambda s: s.size)
        seconds = _common.engine_seconds(algo, largest, noise, T) * len(spectra)
        raise ValueError(f"--measure-steps {T:.3g} runs the engine over every step of {len(spectra)} curves: about "
                         f"{_common.describe_duration(seconds)} here ({work:.2g} scalar updates, more than "
                         f"{_common.LONG_WORK:.0e}); use a smaller --measure-steps (e.g. 1e5)")


def run_phase(args) -> int:
    nus = float_list_from_text(args.nu, "--nu")
    zetas = float_list_from_text(args.zeta, "--zeta")
    if any(n <= 1 for n in nus):
        raise ValueError(f"--nu values must be > 1, got {nus}")
    if any(z <= 0 for z in zetas):
        raise ValueError(f"--zeta values must be > 0, got {zetas}")
    algo = _common.algorithm_from_args(args)
    noise = _common.noise_from_args(args)
    T = args.measure_steps
    if T is not None:
        _refuse_long_measurement(args, algo, noise, nus, zetas)
    rows = theory.phase_diagram(algo, noise, nus, zetas, size=args.size, scale=args.scale, q=args.q,
                                measure_steps=T, progress=args.progress)
    if args.json:
        out = {"algorithm": repr(algo), "alpha_eff": algo.alpha_eff, "batch_size": noise.batch_size}
        if T is not None:
            out.update(measure_steps=T, fit_window=[T / 10, float(T)])
        out["rows"] = [{k: (_num(v) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
        _common.dump_json(out)
    else:
        print(f"# {algo!r}  (alpha_eff = {algo.alpha_eff:.6g})\n# batch size {noise.batch_size}"
              f"\n# phase boundary zeta = 2 - 1/nu")
        headers = ["nu", "zeta", "kappa", "phase", "exponent", "V"]
        if T is not None:
            print(f"# measured: exponent fitted on the exact loss over [{T / 10:g}, {T}] (nan: diverged within T)")
            headers.insert(5, "measured")
        table = []
        for r in rows:
            cells = [f"{r['nu']:g}", f"{r['zeta']:g}", f"{r['kappa']:g}", r["phase"], f"{r['exponent']:.4g}",
                     f"{r['noise_sum']:.6g}"]
            if T is not None:
                cells.insert(5, f"{r['measured_exponent']:.4g}")
            table.append(cells)
        _common.print_table(headers, table)
    if args.plot:
        plot_phase(rows, nus, zetas, args.plot, title=f"{_common.algorithm_label(args)}, alpha_eff = "
                                                       f"{algo.alpha_eff:.3g}, {_common.noise_label(noise)}",
                   measured_steps=T)
        if not args.json:
            print(f"# wrote {args.plot}")
    return 0
