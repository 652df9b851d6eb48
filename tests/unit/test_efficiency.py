"""Per-stage MFU from work records and benchmark files, against hand-computed figures."""

from __future__ import annotations

import json
import math

import pytest

from truthmap.efficiency import efficiency_rows, format_table, read_work

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def job(root, rule, name, seconds, **work):
    folder = root / rule / "m" / "d"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.tsv").write_text(HEADER + f"{seconds}\t0\t1\t1\t1\t1\t0\t0\t0\t0\n", encoding="utf-8")
    record = {"flops": 0.0, "tokens": 0, "padded_tokens": 0, "calls": 0, "model_seconds": 0.0,
              "dtype": "float32", "device": "cpu", **work}
    (folder / f"{name}.work.json").write_text(json.dumps(record), encoding="utf-8")


def test_mfu_per_stage(tmp_path):
    root = tmp_path / "benchmarks"
    job(root, "generate_answers", "000", 10.0, flops=40e9, tokens=900, padded_tokens=1000, model_seconds=8.0)
    job(root, "generate_answers", "001", 30.0, flops=60e9, tokens=100, padded_tokens=200, model_seconds=12.0)
    job(root, "extract_activations", "000", 5.0, flops=50e9, tokens=10, padded_tokens=10, model_seconds=4.0,
        dtype="bfloat16")
    job(root, "label_answers", "000", 2.0)  # the extractor never loaded
    (root / "train_probes").mkdir()
    (root / "train_probes" / "layer0.tsv").write_text(HEADER + "3\t0\t1\t1\t1\t1\t0\t0\t0\t0\n", encoding="utf-8")

    peaks = {("cpu", "float32"): 100.0, ("cpu", "bfloat16"): 200.0}
    rows = efficiency_rows(read_work(root), lambda device, dtype: peaks[device, dtype])
    assert [r["rule"] for r in rows] == ["generate_answers", "extract_activations", "label_answers"]
    gen, ext, lab = rows
    assert gen["jobs"] == 2 and gen["tokens"] == 1000 and gen["padding"] == pytest.approx(1 / 6)
    assert gen["gflop"] == pytest.approx(100) and gen["job_s"] == 40 and gen["model_s"] == 20
    assert gen["mfu_job"] == pytest.approx(100 / (40 * 100))
    assert gen["mfu_model"] == pytest.approx(100 / (20 * 100))
    assert ext["dtype"] == "bfloat16" and ext["mfu_model"] == pytest.approx(50 / (4 * 200))
    assert lab["tokens"] == 0 and math.isnan(lab["mfu_job"]) and lab["job_s"] == 2
    lines = format_table(rows)
    assert len(lines) == 4 and "2.5%" in lines[1] and "5.0%" in lines[1] and lines[3].rstrip().endswith("-")
