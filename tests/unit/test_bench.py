"""The benchmark's own arithmetic and layout checks (its timings are printed by `make bench`, never asserted)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from truthmap.bench import (
    DEFAULT_TOKENS,
    computed_tokens,
    extraction_workload,
    probe_job,
    write_synthetic_shards,
)
from truthmap.flops import forward_flops_per_token
from truthmap.probes import load_split_features
from truthmap.files import read_tsv


def test_forward_flops_count_every_matrix_product_twice(tiny_model):
    import torch

    model, _ = tiny_model
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert forward_flops_per_token(model.config, context=0) == 2 * linear
    head = model.lm_head.weight.numel()
    assert forward_flops_per_token(model.config, context=0, lm_head=False) == 2 * (linear - head)
    one_layer = forward_flops_per_token(model.config, layers=1, context=10, lm_head=False)
    assert one_layer == 2 * (linear - head) / 4 + 2 * 2 * 32 * 10  # scores and values over 10 tokens


def test_computed_tokens_count_a_shared_prefix_once():
    prefix = list(range(100, 112))
    seqs = [prefix + [1, 2, 3], prefix + [4, 5], prefix + [6, 7, 8, 9]]
    positions = np.array([[12, 14], [12, 13], [13, 15]])
    assert computed_tokens(seqs, positions, [[0, 1, 2]]) == 12 + 3 + 2 + 4
    assert computed_tokens(seqs, positions, [[2, 0], [1]]) == 12 + 3 + 4 + len(seqs[1])
    assert computed_tokens(seqs, positions, [[0], [1], [2]]) == sum(map(len, seqs))  # one per batch: no sharing


def test_extraction_workload_positions_lie_inside_each_sequence(tiny_tokenizer):
    work = extraction_workload(tiny_tokenizer, 20, has_chat_template=False)
    assert len(work.seqs) == 20 and work.positions.shape == (20, len(DEFAULT_TOKENS))
    for seq, pos in zip(work.seqs, work.positions, strict=True):
        assert ((0 <= pos) & (pos < len(seq))).all()
    assert work.tokens == sum(map(len, work.seqs))


def test_a_probe_job_reads_each_cell_once(tmp_path):
    shards, split = write_synthetic_shards(tmp_path, n=300, layers=2, tokens=DEFAULT_TOKENS, hidden=512, shards=3)
    report = probe_job(str(split), shards, layer=1, out_dir=str(tmp_path), started=0.0)
    assert report["cells"] == len(DEFAULT_TOKENS)
    assert report["layer_bytes"] == 300 * len(DEFAULT_TOKENS) * 512 * 2
    # reading the layer touches its own chunks, the small index datasets and the
    # file's metadata (~13 kB a file), nothing of layer 0
    assert report["layer_bytes"] <= report["layer_bytes_read"] < 1.3 * report["layer_bytes"]
    assert report["one_cell_bytes"] <= report["one_cell_bytes_read"] < 1.5 * report["one_cell_bytes"]
    assert report["evaluate_s"] > 0 and len(list(tmp_path.glob("layer1_*.json"))) == len(DEFAULT_TOKENS)


def test_synthetic_shards_carry_a_learnable_signal(tmp_path):
    shards, split = write_synthetic_shards(tmp_path, n=400, layers=3, tokens=DEFAULT_TOKENS[:2], hidden=16, shards=2)
    rows = read_tsv(split)
    data = load_split_features(rows, shards, 1, list(DEFAULT_TOKENS[:2]))
    assert data.X.shape == (400, 2, 16) and 0.2 < data.labels.mean() < 0.5
    gap = data.X[data.labels == 1].astype(np.float32).mean(0) - data.X[data.labels == 0].astype(np.float32).mean(0)
    assert np.linalg.norm(gap, axis=-1).min() > 0.5
    assert sum(r["split"] == "test" for r in rows) == pytest.approx(80, abs=2)


def test_spread_bench_times_both_configurations_as_separate_jobs(tmp_path, capsys):
    from truthmap import spread_bench

    run = tmp_path / "run"
    (run / "probes").mkdir(parents=True)
    _, split = write_synthetic_shards(run / "activations", n=120, layers=2, tokens=DEFAULT_TOKENS[:2], hidden=8,
                                      shards=2)
    split.rename(run / "probes" / "split.tsv")
    assert spread_bench.main([str(run), "--layers", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].strip().startswith("primary split only:") and out[1].strip().startswith("5 seeded splits:")
    assert "x per job (the stage)" in out[2] and "fitting and scoring alone" in out[2]


def test_resampling_bench_times_every_mode_on_the_same_samples(tiny_model, tiny_tokenizer):
    from truthmap.resample_bench import MODES, bench_rows

    model, tok = tiny_model
    prompts = [tok("The capital of France is", add_special_tokens=False)["input_ids"] * 3,
               tok("17 + 25 =", add_special_tokens=False)["input_ids"] * 4]
    rows = bench_rows(model, tok, prompts, n=4, max_new_tokens=5, batch_size=3)  # a batch spans both questions
    assert [r["mode"] for r in rows] == list(MODES)
    by_mode = {r["mode"]: r for r in rows}
    assert all(r["samples"] == 8 and r["samples_per_s"] > 0 for r in rows)
    assert by_mode["one_at_a_time"]["speedup_vs_one_at_a_time"] == 1.0
    # the same seeds: the modes decode the same samples (a tiny fp32 model has no near ties)
    assert all(r["same_as_stage"] == 1.0 for r in rows)


def test_lever_bench_times_both_sides_of_every_lever_on_the_same_outputs(tiny_model_dir, tmp_path):
    import re

    from truthmap.lever_bench import measure

    lines: list[str] = []
    levers = measure(str(tiny_model_dir), 4, 1, 2, lines.append, scratch=tmp_path / "levers.h5")
    assert len(lines) == len(levers) == 9
    assert all(x.a_s > 0 and x.b_s > 0 and x.speedup == x.a_s / x.b_s for x in levers)
    by_name = {x.name: x for x in levers}
    # the two levers that must not change outputs do not
    assert by_name["decoding: stopped rows leave the batch"].agreement == "4 of 4 answers identical"
    gap = re.match(r"log-odds max \|diff\| (\S+),", by_name["P(True): orders share their stem"].agreement)
    assert gap and float(gap.group(1)) < 1e-4
    (tries,) = [x for x in levers if x.name.startswith("extraction: 4 sampled tries at once")]
    assert tries.agreement.endswith("of 16 answers identical")  # the 4 prompts' 4 tries each, both ways
    assert not (tmp_path / "levers.h5").exists()
    only = measure(str(tiny_model_dir), 4, 1, 2, lines.append, scratch=tmp_path / "levers.h5", only="sampled tries")
    assert [x.name for x in only] == [tries.name]


def test_probe_bench_times_both_solvers_on_every_cell_of_a_layer(tmp_path, capsys):
    from truthmap import probe_bench

    out = tmp_path / "results" / "m" / "d"
    (out / "probes").mkdir(parents=True)
    _, split = write_synthetic_shards(out / "activations", n=300, layers=2, tokens=DEFAULT_TOKENS[:2], hidden=8,
                                      shards=2)
    split.rename(out / "probes" / "split.tsv")
    assert probe_bench.main(["--run", str(tmp_path), "--model", "m", "--dataset", "d", "--layer", "1",
                             "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert "layer 1: 2 cells, 20 fits" in printed  # the primary split, 5 folds, 4 further splits, per cell
    row = next(line for line in printed.splitlines() if line.startswith("probe fits of one layer"))
    gaps = [float(x) for x in re.findall(r"within (\S+) \(A\) / (\S+) \(B\)", row)[0]]
    assert len(gaps) == 2 and all(0 <= g < 0.05 for g in gaps)  # both stop near the optimum on a learnable signal
