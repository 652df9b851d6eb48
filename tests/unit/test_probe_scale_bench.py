"""The paper-scale probe bench, run at a tiny scale: every backend is timed and the figures add up
(no timing is asserted)."""

from __future__ import annotations

import json

import pytest

from truthmap.probe_scale_bench import Scale, main, synthetic_cells


def test_the_planted_signal_is_there_and_the_cells_differ():
    from truthmap.stats import roc_auc

    features, y = synthetic_cells(Scale(questions=400, hidden=16), 2)
    assert 0.3 < y.mean() < 0.5 and features[0].shape == (400, 16)
    assert not (features[0] == features[1]).all()
    assert abs(features[0].mean()) > 0.1  # large means, as hidden states have
    centred = features[0] - features[0][y == 0].mean(0)
    direction = features[0][y == 1].mean(0) - features[0][y == 0].mean(0)
    assert roc_auc(y, centred @ direction) > 0.6


def test_the_bench_times_every_backend_and_extrapolates(tmp_path, capsys):
    assert main(["--questions", "300", "--hidden", "24", "--cells", "2", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "probe_scale.json").read_text())
    timings = {t["backend"]: t for t in report["timings"]}
    assert {"sklearn", "numpy", "torch:cpu"} <= set(timings)
    cells = 32 * 12
    for t in timings.values():
        assert t["stage_s"] == pytest.approx(t["per_cell_s"] * cells)
        assert t["measured_s"] > 0
    assert timings["numpy"]["per_cell_s"] == pytest.approx(timings["numpy"]["measured_s"] / 2)
    assert timings["numpy"]["primary_auc"] == pytest.approx(timings["torch:cpu"]["primary_auc"], abs=1e-6)
    assert timings["sklearn"]["primary_auc"] == pytest.approx(timings["numpy"]["primary_auc"], abs=0.005)
    printed = capsys.readouterr().out
    assert "extrapolated" in printed and "1 of a cell's 10 fits" in printed
