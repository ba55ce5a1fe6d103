"""`reproduce fig4` through the batched engine, checked row by row against separate runs of
loss_curve (the single-curve path through the engine) and the table's documented rules: the
prediction zeta (1 + delta) for delta < 1 - 1/nu (none outside), the exponent fitted on the fit
window, and the status (docs/reproductions.md): in range "ok" within 0.04 of the prediction,
"off" beyond; outside it "loss rising at T" when L_T exceeds 1.01 times the curve's minimum, "no
divergence within T; slower than formula" when the fit is 0.04 below zeta (1 + delta), else "no
divergence within T"; "diverged" wherever the run diverged."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from memsgd import Noise, Spectrum, loss_curve, schedules
from memsgd.experiments import common, fig4
from memsgd.theory import fit_exponent

from ._extras import requires


def _expected_status(curve, nu, kappa, delta, fitted):
    zeta = kappa / nu
    if curve.diverged:
        return "diverged"
    if delta < 1 - 1 / nu:
        return "ok" if abs(fitted - zeta * (1 + delta)) <= 0.04 else "off"
    if curve.loss[-1] > 1.01 * np.min(curve.loss[1:]):
        return "loss rising at T"
    if fitted < zeta * (1 + delta) - 0.04:
        return "no divergence within T; slower than formula"
    return "no divergence within T"


def check_against_loss_curve(cfg, results, table, curves):
    """Every row of fig4.run's results (and its line of the table, and the plotted curves)
    against loss_curve; returns the statuses seen."""
    t_lo, t_hi = cfg.fit_window
    keys = [(nu, kappa, B, d) for nu, kappa in cfg.problems for B in cfg.batch_sizes for d in cfg.deltas]
    assert [(r["nu"], r["kappa"], r["batch_size"], r["delta"]) for r in results] == keys
    lines = table.splitlines()
    for r, (nu, kappa, B, d) in zip(results, keys):
        curve = loss_curve(schedules.am1_power_law(cfg.kick, d, cfg.gamma, cfg.t0),
                           Spectrum.power_law(nu, kappa, head=cfg.head), Noise.gaussian(B), cfg.steps)
        assert r["final_loss"] == float(curve.loss[-1])          # the batched engine is bitwise loss_curve
        assert r["diverged_at"] == curve.diverged_at
        fitted = None if curve.diverged else fit_exponent(curve.loss, t_lo, t_hi)
        assert r["fitted_exponent"] == fitted
        pred = kappa / nu * (1 + d) if d < 1 - 1 / nu else None
        assert (r["predicted_exponent"] is None) == (pred is None)
        if pred is not None:
            assert r["predicted_exponent"] == pytest.approx(pred, rel=1e-15)
            assert r["error"] == (None if fitted is None else pytest.approx(fitted - pred, abs=1e-15))
        assert r["stable_range"] == (d < 1 - 1 / nu)
        assert r["status"] == _expected_status(curve, nu, kappa, d, fitted)
        row = [ln for ln in lines if len(ln.split()) > 4 and [ln.split()[i] for i in (0, 3, 4)]
               == [f"{nu:g}", str(B), f"{d:g}"]]
        assert len(row) == 1 and row[0].rstrip().endswith(r["status"]), (r, row)
        if B == cfg.batch_sizes[0] and (nu, kappa) == tuple(cfg.problems[0]):
            assert np.array_equal(curves[f"delta={d:g}"], curve.loss)
    in_range = [abs(r["error"]) for r in results if r["error"] is not None]
    assert table.endswith(f"max |fitted - predicted| for delta < 1 - 1/nu: "
                          f"{common.fmt(max(in_range) if in_range else None)}")
    return {r["status"] for r in results}


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


@requires("matplotlib")
@pytest.mark.parametrize("cfg", [fig4.small_config(), EVERY_STATUS], ids=["small_config", "every_status"])
def test_fig4_agrees_with_loss_curve_row_by_row(monkeypatch, tmp_path, cfg):
    r, plotted, seen = _run_capturing_plots(monkeypatch, tmp_path, cfg)
    results = r["results"]
    statuses = check_against_loss_curve(cfg, results, r["table"], plotted["curves"])
    # a guide for each plotted curve with a prediction that did not diverge
    assert set(plotted["guides"]) == {f"delta={x['delta']:g}" for x in results
                                      if x["batch_size"] == cfg.batch_sizes[0]
                                      and (x["nu"], x["kappa"]) == tuple(cfg.problems[0])
                                      and x["predicted_exponent"] is not None and x["diverged_at"] is None}
    n = len(results)
    assert [s[:2] for s in seen] == [(i + 1, n) for i in range(n)]   # one call per configuration
    assert seen[0][2] == f"nu={cfg.problems[0][0]:g} kappa={cfg.problems[0][1]:g} B={cfg.batch_sizes[0]} " \
                         f"delta={cfg.deltas[0]:g}"
    if cfg is EVERY_STATUS:  # the check has teeth: it reaches every branch of the status
        assert statuses == {
            "ok", "off", "diverged", "loss rising at T", "no divergence within T",
            "no divergence within T; slower than formula"}


@requires("matplotlib")
def test_fig4_same_table_with_an_executor_and_small_chunks(monkeypatch, tmp_path):
    cfg = EVERY_STATUS
    plain, plotted, _ = _run_capturing_plots(monkeypatch, tmp_path, cfg)
    with ThreadPoolExecutor(2) as pool:
        r, pooled, seen = _run_capturing_plots(monkeypatch, tmp_path, cfg, executor=pool, chunk_size=3)
    assert r["results"] == plain["results"] and r["table"] == plain["table"]
    assert all(np.array_equal(pooled["curves"][k], plotted["curves"][k]) for k in plotted["curves"])
    assert sorted(s[0] for s in seen) == list(range(1, len(r["results"]) + 1))


def test_fig4_bad_executor_and_chunk_size():
    with pytest.raises(TypeError, match="executor"):
        fig4.run(fig4.small_config(), simulate=False, executor=object())
    with pytest.raises(ValueError, match="chunk_size"):
        fig4.run(fig4.small_config(), simulate=False, chunk_size=0)
