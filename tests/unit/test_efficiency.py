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

    peaks = {("cpu", "float32", 0): 100.0, ("cpu", "bfloat16", 0): 200.0}
    rows = efficiency_rows(read_work(root), lambda device, dtype, threads: peaks[device, dtype, threads])
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


def test_a_stage_is_measured_against_the_threads_its_jobs_had(tmp_path):
    root = tmp_path / "benchmarks"
    job(root, "score_p_true", "000", 10.0, flops=80e9, tokens=10, padded_tokens=10, model_seconds=4.0, threads=1)
    job(root, "score_p_true", "001", 10.0, flops=80e9, tokens=10, padded_tokens=10, model_seconds=4.0, threads=1)
    asked = []
    rows = efficiency_rows(read_work(root), lambda *kind: asked.append(kind) or 100.0 * kind[2])
    assert asked == [("cpu", "float32", 1)]
    assert rows[0]["threads"] == "1" and rows[0]["mfu_model"] == pytest.approx(160 / (8 * 100))
    assert format_table(rows)[1].split()[3] == "1"


def test_measured_peaks_use_the_threads_asked_and_restore_the_default():
    import torch

    from truthmap.efficiency import measured_peaks

    before = torch.get_num_threads()
    seen = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("truthmap.flops.matmul_peak_gflops",
                      lambda device, dtype: seen.append(torch.get_num_threads()) or 1.0)
        peak = measured_peaks()
        peak("cpu", "float32", 1)
        peak("cpu", "float32", 1)  # measured once
        peak("cpu", "float32", 0)
    assert seen == [1, before] and torch.get_num_threads() == before
