"""Every label of a figure is inside the PNG that memsgd writes (issue 18: the sweep heat map's
axis label was cut): the union of the figure's texts, measured at the saved resolution, fits in
the saved image."""
import numpy as np
import pytest

from ._extras import need, requires

pytestmark = requires("matplotlib")


def _texts_fit(fig, path):
    need("matplotlib")
    from matplotlib.image import imread
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    from memsgd import plotting

    height, width = imread(str(path)).shape[:2]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert texts
    union = Bbox.union([t.get_window_extent(renderer) for t in texts])
    scale = plotting._DPI / fig.dpi
    return union.width * scale <= width + 1 and union.height * scale <= height + 1, (union, width, height, scale)


@pytest.mark.parametrize("x, y, colorbar_label", [
    (np.geomspace(0.01, 1.0, 9), [0.9, 0.99], "final loss L_T"),                  # the README's sweep
    ([0.1, 0.2], [0.9, 0.99], "fitted exponent on [1000, 10000] over the window of the fit"),
    (np.geomspace(1.23456e-5, 0.987654, 30), [1, 10, 100, 1000], "final loss L_T"),
])
def test_heat_map_keeps_every_label(tmp_path, x, y, colorbar_label):
    from memsgd.plotting import plot_heatmap

    path = tmp_path / "map.png"
    values = np.random.default_rng(0).random((len(y), len(x)))
    fig = plot_heatmap(values, x, y, str(path), xlabel="lr", ylabel="momentum", colorbar_label=colorbar_label,
                       title="heavy_ball, T = 10000\nmin over batch_size")
    ok, detail = _texts_fit(fig, path)
    assert ok, detail


def test_sweep_command_heat_map_keeps_every_label(tmp_path, monkeypatch):
    need("xarray")
    import memsgd.plotting
    from memsgd.cli import main

    figures = []
    original = memsgd.plotting.plot_heatmap

    def keep(*args, **kwargs):
        figures.append(original(*args, **kwargs))
        return figures[-1]

    monkeypatch.setattr(memsgd.plotting, "plot_heatmap", keep)
    path = tmp_path / "hb.png"
    assert main(["sweep", "--algo", "heavy_ball", "--lr", "0.01:1:9:log", "--momentum", "0.9,0.99", "--batch", "1,10",
                 "--size", "100", "--steps", "300", "--color", "exponent", "--plot", str(path), "--no-progress"]) == 0
    ok, detail = _texts_fit(figures[0], path)
    assert ok, detail
