"""Tests for truthmap.plot_resampling: the error-type bars are drawn from the summary table."""

from __future__ import annotations

import pytest

from truthmap import plot_resampling
from truthmap.error_types import COARSE_TYPES, FINE_TYPES, SUMMARY_COLUMNS, type_summary
from truthmap.files import read_tsv, write_tsv
from truthmap.plot_resampling import plot_error_types

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def table_rows(greedy_correct: list[int]) -> list[dict]:
    coarse = [COARSE_TYPES[i % len(COARSE_TYPES)] for i in range(len(greedy_correct))]
    return [{"greedy_correct": g, "coarse_type": c, **{f: int(i % 3 == j % 3) for j, f in enumerate(FINE_TYPES)}}
            for i, (g, c) in enumerate(zip(greedy_correct, coarse))]


@pytest.fixture
def captured_figures(monkeypatch):
    figures = []
    real_close = plot_resampling.plt.close
    monkeypatch.setattr(plot_resampling.plt, "close", figures.append)
    yield figures
    for fig in figures:
        real_close(fig)


def test_writes_png_and_pdf_from_the_summary_read_back(tmp_path):
    summary = tmp_path / "error_type_summary.tsv"
    write_tsv(summary, type_summary(table_rows([0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0])), SUMMARY_COLUMNS)
    png, pdf = tmp_path / "types.png", tmp_path / "types.pdf"
    plot_error_types(read_tsv(summary), "Error types", [png, pdf])
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert pdf.read_bytes().startswith(b"%PDF")


def test_two_panels_with_a_bar_and_a_count_per_type_and_population(tmp_path, captured_figures):
    rows = type_summary(table_rows([0, 1, 0, 1]))
    plot_error_types(rows, "Error types", [tmp_path / "t.png"])
    fine, coarse = captured_figures[0].axes[:2]
    assert [t.get_text() for t in fine.get_yticklabels()] == list(FINE_TYPES)
    assert [t.get_text() for t in coarse.get_yticklabels()] == list(COARSE_TYPES)
    for ax, kind in ((fine, "fine"), (coarse, "coarse")):
        part = [r for r in rows if r["kind"] == kind]
        assert [round(p.get_width(), 6) for p in ax.patches[: len(part)]] == [round(r["share"], 6) for r in part]
        counts = [t.get_text() for t in ax.texts]
        assert counts == [str(r["count"]) for r in part] + [str(r["count_greedy_wrong"]) for r in part]


def test_no_wrong_greedy_answer_leaves_those_bars_empty(tmp_path):
    plot_error_types(type_summary(table_rows([1, 1, 1])), "all right", [tmp_path / "t.png"])
    assert (tmp_path / "t.png").read_bytes().startswith(PNG_MAGIC)
