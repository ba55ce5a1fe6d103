"""`reproduce fig4` through the batched engine gives exactly the table of the previous
implementation: a triple loop of loss_curve over (problem, batch size, delta), transcribed here
as the reference (from experiments/fig4.py before the batched engine)."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from memsgd import Noise, Spectrum, loss_curve, schedules
from memsgd.experiments import common, fig4
from memsgd.theory import fit_exponent


def fig4_by_loop(cfg):
    """The old loop of fig4.run (results, table, plotted curves and guides), simulation left out."""
    T = cfg.steps
    t_lo, t_hi = cfg.fit_window
    results, rows, curves, guides = [], [], {}, {}
    for nu, kappa in cfg.problems:
        spec = Spectrum.power_law(nu, kappa, head=cfg.head)
        for B in cfg.batch_sizes:
            for d in cfg.deltas:
                algo = schedules.am1_power_law(cfg.kick, d, cfg.gamma, cfg.t0)
                c = loss_curve(algo, spec, Noise.gaussian(B), T)
                pred = common.predicted_am1_exponent(nu, kappa, d)
                fitted = None if c.diverged else fit_exponent(c.loss, t_lo, t_hi)
                rising = None
                if not c.diverged:
                    rising = bool(c.loss[-1] > 1.01 * np.min(c.loss[1:]))
                if pred is not None:
                    status = "diverged" if c.diverged else ("ok" if abs(fitted - pred) <= 0.04 else "off")
                else:
                    formula = kappa / nu * (1 + d)
                    if c.diverged:
                        status = "diverged"
                    elif rising:
                        status = "loss rising at T"
                    elif fitted < formula - 0.04:
                        status = "no divergence within T; slower than formula"
                    else:
                        status = "no divergence within T"
                results.append({"nu": nu, "kappa": kappa, "zeta": kappa / nu, "batch_size": B, "delta": d,
                                "stable_range": d < 1 - 1 / nu, "predicted_exponent": pred,
                                "fitted_exponent": fitted,
                                "error": None if (pred is None or fitted is None) else fitted - pred,
                                "final_loss": float(c.loss[-1]), "diverged_at": c.diverged_at,
                                "loss_rising_at_T": rising, "status": status})
                if B == cfg.batch_sizes[0] and (nu, kappa) == tuple(cfg.problems[0]):
                    curves[f"delta={d:g}"] = c.loss
                    if pred is not None and not c.diverged:
                        guides[f"delta={d:g}"] = common.guide(c.loss, pred, t_lo, t_hi) + (f"t^-{pred:.3g}",)
    for r in results:
        rows.append([f"{r['nu']:g}", f"{r['zeta']:.3g}", f"{1 - 1 / r['nu']:.3g}", r["batch_size"], f"{r['delta']:g}",
                     fig4._pred_text(r), common.fmt(r["fitted_exponent"]), fig4._err_text(r),
                     common.fmt(r["final_loss"], ".3e"),
                     r["diverged_at"] if r["diverged_at"] is not None else "-", r["status"]])
    in_range = [r for r in results if r["predicted_exponent"] is not None]
    max_err = max((abs(r["error"]) for r in in_range if r["error"] is not None), default=None)
    table = (f"Figure 4: AM1 (kick={cfg.kick:g}, gamma={cfg.gamma:g}, t0={cfg.t0:g}), Gaussian noise, infinite "
             f"spectra, T={T}, fitted on [{t_lo:g}, {t_hi:g}]; predicted zeta(1+delta) for delta < 1-1/nu "
             f"(in parentheses: the formula outside that range, where the theory predicts no such rate)\n"
             + common.format_table(["nu", "zeta", "1-1/nu", "B", "delta", "predicted", "fitted", "error", "L_T",
                                    "diverged_at", "status"], rows)
             + f"\nmax |fitted - predicted| for delta < 1 - 1/nu: {common.fmt(max_err)}")
    return results, table, curves, guides


# Every status of the table: ok, off, diverged, rising at T, slower than the formula, plain.
EVERY_STATUS = fig4.Fig4Config(problems=((2.0, 1.0), (1.5, 0.45)), batch_sizes=(2, 10), deltas=(0.1, 0.55, 0.7, 0.9),
                               steps=600, fit_window=(60.0, 600.0), head=64)


def _run_capturing_plots(monkeypatch, tmp_path, cfg, **kwargs):
    seen, plotted = [], {}

    def fake_plots(cfg, results, curves, guides, simulation, out_dir):
        plotted.update(curves=curves, guides=guides)

    monkeypatch.setattr(fig4, "_plots", fake_plots)
    monkeypatch.setattr(common, "write_json", lambda path, obj: None)
    r = fig4.run(cfg, out_dir=tmp_path, progress=lambda d, t, label: seen.append((d, t, label)), simulate=False,
                 **kwargs)
    return r, plotted, seen


def _same_curves(got, want):
    assert list(got) == list(want)
    for k in want:
        if isinstance(want[k], tuple):   # a guide: (t, values, label)
            assert np.array_equal(got[k][0], want[k][0]) and np.array_equal(got[k][1], want[k][1])
            assert got[k][2] == want[k][2]
        else:
            assert np.array_equal(got[k], want[k]), k


@pytest.mark.parametrize("cfg", [fig4.small_config(), EVERY_STATUS], ids=["small_config", "every_status"])
def test_fig4_equals_the_loop_of_loss_curve(monkeypatch, tmp_path, cfg):
    results, table, curves, guides = fig4_by_loop(cfg)
    r, plotted, seen = _run_capturing_plots(monkeypatch, tmp_path, cfg)
    assert r["results"] == results                 # every fitted exponent, loss, step and status, bitwise
    assert r["table"] == table
    _same_curves(plotted["curves"], curves)
    _same_curves(plotted["guides"], guides)
    n = len(results)
    assert [s[:2] for s in seen] == [(i + 1, n) for i in range(n)]   # one call per configuration
    assert seen[0][2] == f"nu={cfg.problems[0][0]:g} kappa={cfg.problems[0][1]:g} B={cfg.batch_sizes[0]} " \
                         f"delta={cfg.deltas[0]:g}"
    if cfg is EVERY_STATUS:  # the reference has teeth: it reaches every branch of the status
        assert {x["status"] for x in results} == {
            "ok", "off", "diverged", "loss rising at T", "no divergence within T",
            "no divergence within T; slower than formula"}


def test_fig4_same_table_with_an_executor_and_small_chunks(monkeypatch, tmp_path):
    cfg = EVERY_STATUS
    results, table, curves, _ = fig4_by_loop(cfg)
    with ThreadPoolExecutor(2) as pool:
        r, plotted, seen = _run_capturing_plots(monkeypatch, tmp_path, cfg, executor=pool, chunk_size=3)
    assert r["results"] == results and r["table"] == table
    _same_curves(plotted["curves"], curves)
    assert sorted(s[0] for s in seen) == list(range(1, len(results) + 1))


def test_fig4_bad_executor_and_chunk_size():
    with pytest.raises(TypeError, match="executor"):
        fig4.run(fig4.small_config(), simulate=False, executor=object())
    with pytest.raises(ValueError, match="chunk_size"):
        fig4.run(fig4.small_config(), simulate=False, chunk_size=0)
