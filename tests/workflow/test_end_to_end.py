"""The real workflow, end to end, with the embedded model on the tiny test config.

One run (about 2-3 minutes on 2 CPU cores) is shared by every workflow test
that needs finished results (the ``workdir`` fixture); what reruns when a
setting or the code changes is checked in test_rerun_table.py and test_reruns.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO, planned_jobs, snakemake

from truthmap.files import read_jsonl, read_tsv

FIXTURES_CONFIG = REPO / "tests" / "e2e" / "fixtures.yaml"
RESULTS = Path("results") / "SmolLM2-135M-Instruct" / "builtin"
TOKENS = ["last_q", "exact_answer_first", "exact_answer_last", "exact_answer_after_last",
          "-8", "-7", "-6", "-5", "-4", "-3", "-2", "-1"]
SITES = ["residual", "mlp_input", "mlp_output", "mlp_down_input", "attention_output"]  # both test configs


def test_lint_is_clean():
    lint = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_profile_drops_the_script_timestamp_trigger():
    """Touching a script must not rerun its rule: code changes reach rules through their params."""
    for profile in ("default", "slurm"):
        settings = yaml.safe_load((REPO / "workflow" / "profiles" / profile / "config.yaml").read_text())
        assert settings["rerun-triggers"] == ["mtime", "params", "input", "software-env"]


def test_auc_table_covers_the_grid(workdir):
    lines = (workdir / RESULTS / "auc.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    assert header[:6] == ["site", "layer", "token", "auc", "ci_low", "ci_high"] and "n_test" in header
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    # site by site as configured; the embeddings row (-1) first, then the configured layers
    assert [(r["site"], int(r["layer"]), r["token"]) for r in rows] == [
        (site, layer, t) for site in SITES for layer in (-1, 0, 14, 29) for t in TOKENS]
    emb: dict[str, list[dict]] = {}  # the same embeddings row in every site's panel
    for r in (r for r in rows if r["layer"] == "-1"):
        emb.setdefault(r["token"], []).append({k: v for k, v in r.items() if k != "site"})
    assert all(len(same) == len(SITES) and all(x == same[0] for x in same) for same in emb.values())
    for r in rows:
        if r["status"] == "ok":
            assert 0.0 <= float(r["ci_low"]) <= float(r["auc"]) <= float(r["ci_high"]) <= 1.0
            assert int(r["n_train"]) > int(r["n_test"]) > 0
        else:
            assert r["auc"] == "NaN" and r["reason"]


def test_heatmap_files(workdir):
    import matplotlib.image

    image = matplotlib.image.imread(workdir / RESULTS / "heatmap.png")
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert (workdir / RESULTS / "heatmap.pdf").read_bytes()[:4] == b"%PDF"
    within = matplotlib.image.imread(workdir / RESULTS / "heatmap_within_groups.png")
    assert within.shape[0] > 300 and within.shape[1] > 600
    assert (workdir / RESULTS / "heatmap_within_groups.pdf").read_bytes()[:4] == b"%PDF"
    assert (workdir / RESULTS / "heatmap_vs_baseline.png").read_bytes()[:4] == b"\x89PNG"
    assert (workdir / RESULTS / "heatmap_vs_baseline.pdf").read_bytes()[:4] == b"%PDF"
    log = next((workdir / "logs" / "plot_difference").rglob("*.log")).read_text()
    detectors = {r["method"] for r in read_tsv(workdir / RESULTS / "detectors.tsv")}
    named = re.search(r"baseline (\S+) \(test AUC", log)
    assert named and named.group(1) in detectors, log


def test_auc_table_has_the_within_group_columns(workdir):
    rows = {(r["site"], int(r["layer"]), r["token"]): r for r in read_tsv(workdir / RESULTS / "auc.tsv")}
    fitted = [r for r in rows.values() if r["status"] == "ok"]
    assert fitted and all(int(r["groups"]) >= 1 for r in fitted)  # the built-in set's domains
    for r in fitted:
        within, low, high = float(r["auc_within_group"]), float(r["within_ci_low"]), float(r["within_ci_high"])
        assert 0 <= low <= high <= 1 and 0 <= within <= 1


def test_every_question_is_in_exactly_one_shard(workdir):
    questions = [json.loads(x)["id"] for x in (workdir / "results/datasets/builtin/questions.jsonl").open()]
    sharded = [json.loads(x)["id"] for f in sorted((workdir / "results/datasets/builtin/shards").glob("*.jsonl"))
               for x in f.open()]
    assert len(questions) == 64 and sorted(sharded) == sorted(questions)
    split = (workdir / RESULTS / "probes" / "split.tsv").read_text().splitlines()[1:]
    assert sorted(line.split("\t")[0] for line in split) == sorted(questions)


def test_detectors_and_generalisation(workdir):
    lines = (workdir / RESULTS / "detectors.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    assert header == ["method", "auc", "ci_low", "ci_high", "p_vs_best_probe", "n", "n_wrong",
                      "auc_within_group", "within_ci_low", "within_ci_high", "groups", "train_auc", "detail"]
    rows = {line.split("\t")[0]: dict(zip(header, line.split("\t"))) for line in lines[1:]}
    assert {"probe_best_cell", "probe_best_exact_cell", "probe_last_token", "p_true",
            "logprob_mean_answer", "logit_min_exact", "group_prior"} <= set(rows)
    assert len(rows) == 3 + 1 + 16 + 1 + 3  # probes, P(True), baselines, group_prior, sample-based
    prior = rows["group_prior"]  # the built-in set's domains: every test question has one
    assert "training error rate of the question's meta.domain" in prior["detail"]
    assert float(prior["auc_within_group"]) == 0.5 and int(prior["groups"]) >= 1
    assert 0 <= float(rows["probe_best_cell"]["auc_within_group"]) <= 1  # 10 test questions: anything
    selection = json.loads((workdir / RESULTS / "probes" / "selection.json").read_text())
    best = selection["probe_best_cell"]
    domains = (workdir / RESULTS / "generalisation_domains.tsv").read_text().splitlines()[1:]
    assert len(domains) == 8 * 8  # the built-in set's eight domains, every ordered pair
    datasets = (workdir / "results/SmolLM2-135M-Instruct/generalisation.tsv").read_text().splitlines()
    same = dict(zip(datasets[0].split("\t"), datasets[1].split("\t")))
    assert (same["site"], int(same["layer"]), same["token"]) == (best["site"], best["layer"], best["token"])
    assert float(same["auc"]) == pytest.approx(best["auc"], abs=1e-6)  # A = B is the held-out AUC
    for name in ("detectors", "generalisation_domains"):
        assert (workdir / RESULTS / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_resampling_outputs(workdir):
    """n = 3 samples per question: every stage of the paper's second half ran and agrees with the rest."""
    res = workdir / RESULTS / "resampling"
    questions = {q["id"] for path in (workdir / RESULTS / "generations").glob("*.jsonl") for q in read_jsonl(path)}
    samples = [r for path in sorted((res / "samples").glob("*.jsonl")) for r in read_jsonl(path)]
    assert {r["id"] for r in samples} == questions and all(len(r["samples"]) == 3 for r in samples)
    labels = {r["id"]: r["labels"] for path in sorted((res / "labels").glob("*.jsonl")) for r in read_jsonl(path)}
    assert set(labels) == questions and all(len(x) == 3 for x in labels.values())
    errors = {r["id"]: r for r in read_tsv(res / "error_types.tsv")}
    assert set(errors) == questions
    for qid, row in errors.items():
        assert int(row["correct_size"]) == sum(x["correct"] for x in labels[qid])
    summary = read_tsv(res / "error_type_summary.tsv")
    coarse = [r for r in summary if r["kind"] == "coarse"]
    assert sum(int(r["count"]) for r in coarse) == len(questions)  # mutually exclusive
    methods = {r["method"] for r in read_tsv(workdir / RESULTS / "detectors.tsv")}
    assert {"samples_disagreement", "samples_distinct_answers", "semantic_entropy"} <= methods
    probes = read_tsv(res / "error_type_probes.tsv")
    assert probes and all(r["status"] == "ok" or r["reason"] for r in probes)
    selection = read_tsv(res / "answer_selection.tsv")
    overall = {r["strategy"]: r for r in selection if r["type"] == "all"}
    assert set(overall) == {"greedy", "random", "majority", "probe"}
    test_ids = {r["id"] for r in read_tsv(workdir / RESULTS / "probes" / "split.tsv") if r["split"] == "test"}
    choices = read_tsv(res / "answer_choices.tsv")
    assert {r["id"] for r in choices} == test_ids and int(overall["greedy"]["n"]) == len(test_ids)
    for name in ("error_types", "error_type_probes", "answer_selection"):
        assert (res / f"{name}.png").stat().st_size > 10_000 and (res / f"{name}.pdf").exists()


def test_summary(workdir):
    summary = json.loads((workdir / RESULTS / "summary.json").read_text())
    assert summary["n_questions"] == 64
    assert 0 <= summary["accuracy"] <= 1
    assert summary["n_probe_examples"] + summary["n_left_out_of_cells"] == 64
    assert summary["positive_class"].startswith("wrong")
    coverage = summary["exact_answer_coverage"]
    assert coverage["n_wrong"] == 64 - summary["n_correct"]
    assert coverage["n_found_first_try"] <= coverage["n_found"] == coverage["n_wrong"] - summary["n_wrong_no_exact_answer"]
    assert sum(coverage["not_found_reasons"].values()) == summary["n_wrong_no_exact_answer"]


MODEL_STAGES = ["generate_answers", "label_answers", "extract_activations", "score_p_true",
                "resample_answers", "label_samples", "extract_candidates"]


def test_every_model_stage_counts_its_work(workdir):
    import torch

    from truthmap.efficiency import efficiency_rows, read_work
    from truthmap.models import dtype_name, pick_dtype

    # a peak no 2-core CPU reaches in any dtype (bfloat16 here measured 569-683 GFLOP/s): MFUs lie in (0, 1)
    rows = {r["rule"]: r for r in efficiency_rows(read_work(workdir / "benchmarks"), lambda *kind: 2000.0)}
    picked = dtype_name(pick_dtype("auto", torch.device("cpu")))
    assert set(rows) == set(MODEL_STAGES)
    for rule in ("generate_answers", "extract_activations", "resample_answers"):
        assert rows[rule]["tokens"] > 0 and rows[rule]["dtype"] == picked  # what auto picks on this machine
        assert int(rows[rule]["threads"]) >= 1  # the threads its jobs computed with, on the CPU
        assert 0 < rows[rule]["model_s"] <= rows[rule]["job_s"]
        assert 0 < rows[rule]["mfu_model"] < 1
    table = subprocess.run([sys.executable, "-m", "truthmap.stage_times", "benchmarks"], cwd=workdir,
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "scripts")})
    assert table.returncode == 0, table.stderr
    assert "MFU model" in table.stdout and "extract_activations" in table.stdout.split("MFU model")[1]


def test_second_run_does_nothing(workdir):
    dry = snakemake(workdir, workdir / "config.yaml", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert planned_jobs(dry.stdout + dry.stderr) == {}


@pytest.fixture(scope="module")
def fixture_runs(workdir) -> Path:
    """The embedded base model on the format fixtures, in the same working
    folder as the main run (outputs never collide)."""
    config = yaml.safe_load(FIXTURES_CONFIG.read_text())
    for spec in config["datasets"].values():
        spec["source"] = str(REPO / spec["source"])
    path = workdir / "fixtures.yaml"
    path.write_text(yaml.safe_dump(config))
    done = snakemake(workdir, path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return workdir


@pytest.mark.parametrize("dataset", ["triviaqa", "winogrande"])
def test_every_dataset_gets_its_heatmap(fixture_runs, dataset):
    out = fixture_runs / "results" / "Gemma-3-270M" / dataset
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (out / "auc.tsv").read_text().splitlines()[1:]
    assert len(rows) == len(SITES) * (1 + 2) * len(TOKENS)  # the embeddings row and the config's two layers
    summary = json.loads((out / "summary.json").read_text())
    questions = [json.loads(x) for x in (fixture_runs / "results/datasets" / dataset / "questions.jsonl").open()]
    assert summary["n_questions"] == len(questions) > 0


def test_base_model_prompts_are_plain_and_choice_tasks_need_no_extractor(fixture_runs):
    gens = [json.loads(x) for x in
            (fixture_runs / "results/Gemma-3-270M/winogrande/generations/000.jsonl").open()]
    assert all(g["prompt_style"] == "plain" and g["prompt"].startswith("Q: ") for g in gens)
    labels = [json.loads(x) for x in
              (fixture_runs / "results/Gemma-3-270M/winogrande/labels/000.jsonl").open()]
    assert all(x["extractor_reply"] is None for x in labels)
    assert {x["exact_method"] for x in labels} <= {"choice", "none"}
    manifest = json.loads((fixture_runs / "resources/models/Gemma-3-270M/manifest.json").read_text())
    assert (manifest["num_layers"], manifest["hidden_size"]) == (18, 640)


def test_report_is_one_self_contained_page(workdir):
    done = snakemake(workdir, workdir / "config.yaml", "--report", str(workdir / "report.html"), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    page = (workdir / "report.html").read_text()
    for category in ("Layer x Token heatmap", "Error detectors", "Generalisation", "Run summary"):
        assert category in page
    assert "positive class" in page and "image/png" in page
    assert 'src="http' not in page and 'href="http' not in page  # self-contained: nothing to fetch
