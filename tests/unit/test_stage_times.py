"""Tests for truthmap.stage_times: per-rule wall times from Snakemake benchmark files."""

from __future__ import annotations

import pytest

from truthmap.stage_times import main, stage_times

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(path, *rows: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")


def test_stage_times_from_benchmark_files(tmp_path):
    root = tmp_path / "benchmarks"
    bench(root / "generate_answers" / "m" / "d" / "0.tsv",
          "12.5\t0:00:12\t900.10\t2000.0\t850.0\t860.0\t1.2\t3.4\t95.0\t12.0")
    bench(root / "generate_answers" / "m" / "d" / "1.tsv",
          "20.0\t0:00:20\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA")
    bench(root / "train_probes" / "m" / "d" / "layer0.tsv",
          "1.0\t0:00:01\t-\t-\t-\t-\t-\t-\t-\t-",
          "3.0\t0:00:03\t120.5\t300.0\t100.0\t110.0\t0.0\t0.1\t50.0\t2.5")  # a repeated benchmark
    bench(root / "prepare_model" / "m.tsv", "0.5\t0:00:00\t-\t-\t-\t-\t-\t-\t-\t-")
    (root / "notes.txt").write_text("not a benchmark", encoding="utf-8")

    rows = stage_times(root)
    assert [r["rule"] for r in rows] == ["generate_answers", "train_probes", "prepare_model"]
    by_rule = {r["rule"]: r for r in rows}
    assert by_rule["generate_answers"] == pytest.approx(
        {"rule": "generate_answers", "jobs": 2, "sum_s": 32.5, "max_s": 20.0, "max_rss_mb": 900.1})
    assert by_rule["train_probes"] == pytest.approx(
        {"rule": "train_probes", "jobs": 2, "sum_s": 4.0, "max_s": 3.0, "max_rss_mb": 120.5})
    assert by_rule["prepare_model"] == pytest.approx(
        {"rule": "prepare_model", "jobs": 1, "sum_s": 0.5, "max_s": 0.5, "max_rss_mb": 0.0})
    assert stage_times(str(root)) == rows


def test_stage_times_of_an_empty_folder(tmp_path):
    assert stage_times(tmp_path) == []


def test_stage_times_main_prints_a_table(tmp_path, capsys):
    bench(tmp_path / "b" / "plot_heatmap" / "m.tsv", "2.0\t0:00:02\t50\t60\t40\t45\t0\t0\t10\t1.0")
    assert main(["prog", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "plot_heatmap" in out and "total" in out
    assert main(["prog", str(tmp_path / "empty")]) == 1
    assert "no benchmark files" in capsys.readouterr().err
