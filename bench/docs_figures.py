"""Regenerate the figures of the user docs (docs/figures/*.png) from the reproductions.

    python bench/docs_figures.py            # about 7 minutes on 2 cores, plus ~6 for mnist;
                                            # digits needs .[torch,data], mnist .[torch,mnist]

Runs `memsgd reproduce fig1 | fig4 | compare | scaling | digits | mnist` with their default (paper) settings
into a temporary folder and copies the PNGs the docs show into docs/figures/. The digits
curves are redrawn from digits.json so that a run stopped at its divergence is marked there.
"""
import json
import pathlib
import shutil
import sys
import tempfile

from memsgd.cli import main
from memsgd.plotting import plot_curves

FIGURES = pathlib.Path(__file__).resolve().parents[1] / "docs" / "figures"
SHOWN = ["fig1.png", "fig1_simulation.png", "fig4.png", "fig4_curves.png", "fig4_simulation.png",
         "compare_nu2_kappa1_B10.png", "compare_nu1.5_kappa0.45_B100.png",
         "scaling_phase_plane.png", "scaling_frontiers.png", "scaling_momentum.png"]


def _digits(out: pathlib.Path) -> None:
    if main(["reproduce", "digits", "--no-progress", "--out", str(out)]) != 0:
        print("# digits skipped (needs the torch and data extras)")
        return
    data = json.loads((out / "digits.json").read_text())
    curves = {name: (c["t"], c["loss"]) for name, c in data["curves"].items()}
    stopped = {r["algorithm"]: r["diverged_at"] for r in data["rows"] if r["diverged_at"] is not None}
    cfg = data["config"]
    plot_curves(curves, FIGURES / "digits_curves.png", diverged_at=stopped,
                title=f"digits (8x8, n=1797): one hidden layer N={cfg['hidden']}, MSE, batch {cfg['batch_size']}, "
                      f"seed {cfg['seed']}\nfull-batch training loss; "
                      f"SGD lr = 1/lambda_max = {1 / data['lambda_max']:.3g}, "
                      f"AM1 kick = 1/lambda_max, delta = {cfg['delta']:g}")


def _mnist(out: pathlib.Path) -> None:
    if main(["reproduce", "mnist", "--no-progress", "--out", str(out)]) != 0:
        print("# mnist skipped (needs the torch and mnist extras)")
        return
    for name in ("mnist.png", "mnist_spectrum.png"):
        shutil.copy(out / name, FIGURES / name)


def run() -> int:
    FIGURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp)
        for target in ("fig1", "fig4", "compare", "scaling"):
            if main(["reproduce", target, "--no-progress", "--out", str(out)]) != 0:
                return 1
        for name in SHOWN:
            shutil.copy(out / name, FIGURES / name)
        _digits(out)
        _mnist(out)
    print(f"# figures in {FIGURES}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
