"""The plan's time estimates: a bench report's FLOP rates, and each stage's tokens worked out by hand."""

from __future__ import annotations

import json

import pytest

from truthmap.estimate import Rates, duration, estimate_lines, stage_seconds
from truthmap.files import InputError
from truthmap.settings import RunSettings
from truthmap.shapes import ModelShape

SHAPE = ModelShape(layers=2, hidden=8, intermediate=16, heads=2, kv_heads=1, head_dim=4, vocab=10, tied=False)
REPORT = {"model": "bench-model", "device": "cpu (test)", "dtype": "float32", "date": "2026-12-04",
          "extraction": {"ours_computed_tokens_per_s": 1000.0, "flops_per_token_ours": 2e6},
          "generation": {"batched_tokens_per_s": 100.0, "flops_per_generated_token": 4e6, "mean_prompt_tokens": 20.0}}


def settings(**sections) -> RunSettings:
    config = {"models": {"m": {"source": "embedded:smollm2-135m-instruct"}},
              "datasets": {"d": {"source": "builtin"}}, **sections}
    return RunSettings.from_config(config)


@pytest.fixture
def rates(tmp_path) -> Rates:
    (tmp_path / "bench.json").write_text(json.dumps(REPORT))
    return Rates.read(tmp_path / "bench.json")


def test_the_rates_are_the_bench_models_flops_per_second(rates):
    assert rates.forward_flops == 1000.0 * 2e6 and rates.decode_flops == 100.0 * 4e6
    assert rates.prompt_tokens == 20.0 and rates.where == "bench-model on cpu (test), float32, 2026-12-04"


def test_each_stage_is_its_tokens_flops_over_its_rate(rates):
    run = settings(generation={"max_new_tokens": 10}, resampling={"n": 3},
                   detectors={"p_true_train_questions": 5}, split={"test_fraction": 0.5})
    got = stage_seconds("m", "d", 40, {"m": SHAPE}, run, rates)
    seq = 20 + 10  # prompt + the longest answer
    fwd, dec = 2e9, 4e8
    # whole sequences, no LM head, attention over half the sequence on average
    assert got["extract_activations"] == pytest.approx(40 * seq * SHAPE.flops_per_token(seq / 2, lm_head=False) / fwd)
    flops = SHAPE.flops_per_token(seq / 2)
    assert got["generate_answers"] == pytest.approx(40 * 20 * flops / fwd + 40 * 10 * flops / dec)
    assert got["resample_answers"] == pytest.approx(40 * 20 * flops / fwd + 3 * 40 * 10 * flops / dec)
    assert got["score_p_true"] == pytest.approx(2 * (40 * 0.5 + 5) * seq * flops / fwd)  # two option orders
    short = run.exact_answer.max_new_tokens
    label = 40 * seq * SHAPE.flops_per_token(seq) / fwd + 40 * short * SHAPE.flops_per_token(seq) / dec
    assert got["label_answers"] == pytest.approx(label) and got["label_samples"] == pytest.approx(3 * label)


def test_stages_that_are_off_take_no_time(rates):
    got = stage_seconds("m", "d", 40, {"m": SHAPE}, settings(detectors={"p_true": False}), rates)
    assert set(got) == {"generate_answers", "label_answers", "extract_activations"}


def test_a_missing_or_broken_bench_report(tmp_path):
    lines = estimate_lines(tmp_path / "none.json", [], {}, settings())
    assert "no make bench figures at" in lines[0] and "--bench" in lines[0]
    (tmp_path / "old.json").write_text(json.dumps({**REPORT, "generation": {"batched_tokens_per_s": 1.0}}))
    with pytest.raises(InputError, match=r"old.json: not a make bench report"):
        estimate_lines(tmp_path / "old.json", [], {}, settings())


def test_durations_read_in_their_unit():
    assert duration(42) == "42 s" and duration(450) == "7.5 min" and duration(3 * 3600) == "3.0 h"


PROBES = {"scale": {"layers": 32, "tokens": 12, "hidden": 4096, "questions": 10_000},
          "timings": [{"backend": "sklearn", "per_cell_s": 80.0}, {"backend": "numpy", "per_cell_s": 30.0},
                      {"backend": "torch:cpu", "per_cell_s": 27.0}]}


@pytest.mark.parametrize("backend, timed, per_cell", [("auto", "numpy", 30.0), ("numpy", "numpy", 30.0),
                                                      ("torch", "torch:cpu", 27.0), ("sklearn", "sklearn", 80.0)])
def test_probe_jobs_scale_the_benchs_cell_by_questions_times_features(tmp_path, backend, timed, per_cell):
    from truthmap.plan import run_plan

    (tmp_path / "bench.json").write_text(json.dumps(REPORT))
    (tmp_path / "probe_scale.json").write_text(json.dumps(PROBES))
    run = settings(probe={"backend": backend}, layers=[0, 1], tokens=["last_q", "-1"])
    plan = run_plan("m", "d", SHAPE, run, 500)
    lines = estimate_lines(tmp_path / "bench.json", [plan], {"m": SHAPE}, run)
    # 2 layers x 2 tokens of 500 questions x 8 features, and the embeddings row (2 tokens)
    seconds = per_cell * (4 + 2) * 500 * 8 / (10_000 * 4096)
    assert plan.values == (4 + 2) * 500 * 8
    assert lines[-1] == (f"  m x d: train_probes {duration(seconds)} of probe jobs (6 cells, {timed}, scaled by "
                         "questions x features from the bench's paper-scale cell)")


def test_the_gpu_figure_is_used_where_the_bench_had_a_gpu(tmp_path):
    from truthmap.estimate import probe_seconds_per_value

    report = {**PROBES, "timings": [*PROBES["timings"], {"backend": "torch:cuda", "per_cell_s": 0.5}]}
    (tmp_path / "probe_scale.json").write_text(json.dumps(report))
    assert probe_seconds_per_value(tmp_path / "probe_scale.json", "auto") == (0.5 / (10_000 * 4096), "torch:cuda")
    assert probe_seconds_per_value(tmp_path / "none.json", "auto") is None
