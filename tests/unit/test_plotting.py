"""Tests for truthmap.plotting: the AUC grid and the heatmap files."""

from __future__ import annotations

import os

import matplotlib.image
import numpy as np
import pytest

from truthmap import plotting
from truthmap.plotting import auc_grid, plot_heatmap

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def grid_rows(layers, tokens, auc=lambda layer, j: 0.5 + 0.01 * layer + 0.02 * j) -> list[dict]:
    return [{"layer": layer, "token": t, "auc": auc(layer, j)}
            for layer in layers for j, t in enumerate(tokens)]


@pytest.fixture
def captured_figures(monkeypatch):
    """The figures plot_heatmap closes, kept open for inspection."""
    figures = []
    real_close = plotting.plt.close

    def keep(fig=None):
        figures.append(fig)

    monkeypatch.setattr(plotting.plt, "close", keep)
    yield figures
    for fig in figures:
        real_close(fig)


# --------------------------------------------------------------------------- auc_grid


def test_auc_grid_orders_axes_and_places_values():
    rows = [  # as read back from auc.tsv: strings, shuffled
        {"layer": "10", "token": "-1", "auc": "0.900000"},
        {"layer": "2", "token": "last_q", "auc": "0.600000"},
        {"layer": "10", "token": "last_q", "auc": "0.700000"},
        {"layer": "2", "token": "-8", "auc": "NaN"},
        {"layer": "10", "token": "-8", "auc": "0.800000"},
        {"layer": "2", "token": "-1", "auc": "0.650000"},
    ]
    grid, layers, tokens = auc_grid(rows)
    assert layers == [2, 10]
    assert tokens == ["last_q", "-8", "-1"]
    expected = np.array([[0.6, np.nan, 0.65], [0.7, 0.8, 0.9]])
    np.testing.assert_allclose(grid, expected, equal_nan=True)


def test_auc_grid_missing_values_are_nan():
    rows = [
        {"layer": 0, "token": "last_q", "auc": None},
        {"layer": 0, "token": "-1", "auc": float("nan")},
        {"layer": 1, "token": "-1", "auc": "NaN"},
        {"layer": 1, "token": "exact_answer_last", "auc": 0.75},
        # (layer 0, exact_answer_last) and (layer 1, last_q) are absent
    ]
    grid, layers, tokens = auc_grid(rows)
    assert layers == [0, 1] and tokens == ["last_q", "exact_answer_last", "-1"]
    assert grid.shape == (2, 3)
    assert grid[1, 1] == 0.75
    assert np.isnan(np.delete(grid.ravel(), 4)).all()


def test_auc_grid_of_nothing():
    grid, layers, tokens = auc_grid([])
    assert grid.shape == (0, 0) and layers == [] and tokens == []


# --------------------------------------------------------------------------- plot_heatmap


def check_png(path) -> np.ndarray:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    return image


def test_plot_heatmap_writes_png_and_pdf(tmp_path):
    rows = grid_rows(range(4), ["last_q", "exact_answer_first", "-2", "-1"])
    out = [tmp_path / "plots" / "heatmap.png", tmp_path / "plots" / "heatmap.pdf"]
    plot_heatmap(rows, "Layer vs. Token\nmodel on data", out)
    check_png(out[0])
    pdf = out[1].read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000
    assert sorted(os.listdir(tmp_path / "plots")) == ["heatmap.pdf", "heatmap.png"]  # no temp files


def test_plot_heatmap_with_nan_cells(tmp_path):
    rows = grid_rows(range(3), ["last_q", "-1"])
    rows[1]["auc"] = float("nan")
    rows[2]["auc"] = None
    rows[4]["auc"] = "NaN"
    plot_heatmap(rows, "t", [tmp_path / "h.png"])
    check_png(tmp_path / "h.png")


def test_plot_heatmap_with_every_cell_skipped(tmp_path):
    rows = grid_rows(range(3), ["last_q", "-1"], auc=lambda layer, j: float("nan"))
    plot_heatmap(rows, "t", [tmp_path / "h.png"])
    check_png(tmp_path / "h.png")


def test_plot_heatmap_with_a_single_layer_and_token(tmp_path):
    rows = [{"layer": 7, "token": "-1", "auc": 0.8}]
    plot_heatmap(rows, "t", [tmp_path / "h.png"], annotate=False)
    check_png(tmp_path / "h.png")


def test_plot_heatmap_axes_and_labels(tmp_path, captured_figures):
    tokens = ["last_q", "exact_answer_last", "-1"]
    plot_heatmap(grid_rows([0, 5, 9], tokens), "my title", [tmp_path / "h.png"])
    (fig,) = captured_figures
    ax = fig.axes[0]
    assert ax.get_title() == "my title"
    assert ax.get_xlabel() == "Token" and ax.get_ylabel() == "Layer"
    assert [t.get_text() for t in ax.get_xticklabels()] == tokens
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "5", "9"]
    bottom, top = ax.get_ylim()
    assert top < bottom  # first layer at the top
    assert "wrong answer" in fig.axes[1].get_ylabel()  # the colour bar says what AUC measures
    low, high = fig.axes[0].collections[0].get_clim()
    assert (low, high) == (0.5, 1.0)
    annotations = [t.get_text() for t in ax.texts]
    assert "0.50" in annotations and len(annotations) == 9


def test_plot_heatmap_thins_layer_ticks_for_many_layers(tmp_path, captured_figures):
    plot_heatmap(grid_rows(range(30), ["last_q", "-1"]), "t", [tmp_path / "h.png"])
    (fig,) = captured_figures
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(layer) for layer in range(0, 30, 2)]
    np.testing.assert_allclose(ax.get_yticks(), np.arange(0, 30, 2) + 0.5)
    bottom, top = ax.get_ylim()
    assert top == pytest.approx(0) and bottom == pytest.approx(30)  # layer 0 at the top


def test_plot_heatmap_grows_with_the_number_of_layers(tmp_path):
    tokens = ["last_q", "-1"]
    plot_heatmap(grid_rows(range(3), tokens), "t", [tmp_path / "small.png"])
    plot_heatmap(grid_rows(range(30), tokens), "t", [tmp_path / "large.png"])
    small, large = check_png(tmp_path / "small.png"), check_png(tmp_path / "large.png")
    assert large.shape[0] > 1.5 * small.shape[0]


def test_plot_heatmap_replaces_an_old_file(tmp_path):
    path = tmp_path / "h.png"
    path.write_bytes(b"old")
    plot_heatmap(grid_rows(range(2), ["-1"]), "t", [path])
    check_png(path)
    assert path.stat().st_size > 1000


def test_difference_map_draws_each_cell_minus_the_baseline(tmp_path, monkeypatch):
    import truthmap.plotting as plotting

    drawn = {}
    real = plotting._draw_grids

    def spy(panels, title, out_paths, annotate, scale, label):
        drawn.update(panels={site: grid.copy() for site, (grid, _, _) in panels.items()}, scale=scale, label=label)
        real(panels, title, out_paths, annotate, scale, label)

    monkeypatch.setattr(plotting, "_draw_grids", spy)
    rows = grid_rows(range(3), ["last_q", "-1"])
    rows[0]["auc"] = "NaN"
    plotting.plot_difference(rows, "logprob_min_exact", 0.7, "t", [tmp_path / "d.png", tmp_path / "d.pdf"])
    expected, _, _ = plotting.auc_grid(rows)
    (grid,) = drawn["panels"].values()
    np.testing.assert_allclose(grid, expected - 0.7)
    assert np.isnan(grid[0, 0])
    assert drawn["scale"]["center"] == 0.0 and drawn["scale"]["vmin"] == -drawn["scale"]["vmax"]
    assert drawn["label"] == "AUC minus logprob_min_exact (0.700)"
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "d.pdf").read_bytes()[:4] == b"%PDF"


def test_each_site_gets_its_own_panel_on_one_scale(tmp_path, captured_figures):
    tokens = ["last_q", "-1"]
    residual = [{**r, "site": "residual"} for r in grid_rows(range(3), tokens)]
    mlp = [{**r, "site": "mlp_output", "auc": 1.5 - float(r["auc"])} for r in grid_rows(range(3), tokens)]
    plot_heatmap(residual + mlp, "two sites", [tmp_path / "h.png"])
    (fig,) = captured_figures
    heatmaps = [ax for ax in fig.axes if ax.get_title().startswith("site: ")]
    assert [ax.get_title() for ax in heatmaps] == ["site: residual", "site: mlp_output"]
    assert fig._suptitle.get_text() == "two sites"
    for ax, rows in zip(heatmaps, (residual, mlp)):
        values = ax.collections[0].get_array().reshape(3, 2)
        np.testing.assert_allclose(values, np.array([float(r["auc"]) for r in rows]).reshape(3, 2))
        assert ax.collections[0].get_clim() == (0.5, 1.0)
    assert len(fig.axes) == 3  # two panels, one colour bar
    assert heatmaps[0].get_ylabel() == "Layer" and heatmaps[1].get_ylabel() == ""


def test_the_embeddings_row_is_labelled_and_kept_when_ticks_thin(tmp_path, captured_figures):
    plot_heatmap(grid_rows(range(-1, 30), ["last_q", "-1"]), "t", [tmp_path / "h.png"])
    (fig,) = captured_figures
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["emb", *(str(layer) for layer in range(0, 30, 2))]
    np.testing.assert_allclose(ax.get_yticks(), np.array([0, *range(1, 31, 2)]) + 0.5)


def test_five_sites_wrap_to_two_rows_of_equal_panels(tmp_path, captured_figures):
    sites = ["residual", "mlp_input", "mlp_output", "mlp_down_input", "attention_output"]
    rows = [{**r, "site": site} for site in sites for r in grid_rows(range(4), ["last_q", "-1"])]
    plot_heatmap(rows, "five", [tmp_path / "h.png"])
    (fig,) = captured_figures
    panels = [ax for ax in fig.axes if ax.get_title().startswith("site: ")]
    assert [ax.get_title()[6:] for ax in panels] == sites and len(fig.axes) == len(sites) + 1  # + the colour bar
    tops = sorted({round(ax.get_position().y1, 3) for ax in panels}, reverse=True)
    assert len(tops) == 2  # two rows: three panels, then two
    widths = {round(ax.get_position().width, 3) for ax in panels}
    assert len(widths) == 1
