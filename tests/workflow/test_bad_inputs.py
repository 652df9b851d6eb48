"""Bad input through the real workflow: one clear error each, a non-zero exit, nothing lost.

One Snakemake run builds a good dataset; a second run, with six broken
datasets beside it and --keep-going, must fail, give each broken dataset's
job an error naming its file and row (or option), and leave the good
dataset's output exactly as it was.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import assert_error_line, snakemake

BAD_FILES = {
    "empty": (b"", "empty.jsonl: no questions"),
    "no_question": (b'{"id": "a", "question": "Q?", "answer": "x"}\n{"id": "b", "answer": "y"}\n',
                    "no_question.jsonl, row 2: field 'question': missing"),
    "no_answer": (b'{"id": "a", "question": "Q?", "answer": "x"}\n{"id": "b", "question": "R?"}\n',
                  "no_answer.jsonl, row 2: field 'answer': missing"),
    "duplicate_ids": (b'{"id": "a", "question": "Q1?", "answer": "x"}\n{"id": "a", "question": "Q2?", "answer": "y"}\n',
                      "duplicate_ids.jsonl, row 2: field 'id': duplicate id 'a': row 1 has it too"),
    "latin1": (b'{"id": "a", "question": "Caf\xe9?", "answer": "x"}\n',
               "latin1.jsonl, row 1: not valid UTF-8 (byte 0xe9 at offset 28)"),
    "not_json": (b'{"id": "a", "question": "Q?", "answer": "x"}\n{"id": "b", "question": \n',
                 "not_json.jsonl, row 2: not valid JSON"),
}
COLUMNS = {"question": "question", "answer": "answer", "id": "id"}
ONE_QUESTION = b'{"id": "a", "question": "Q?", "answer": "x"}\n'  # and shards: 2


def run(wd: Path, *targets: str) -> subprocess.CompletedProcess:
    return snakemake(wd, wd / "config.yaml", "--keep-going", *targets, timeout=300)


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("bad_inputs")
    datasets = {"good": {"source": "builtin", "limit": 8}}
    for name, (data, _) in BAD_FILES.items():
        (wd / f"{name}.jsonl").write_bytes(data)
        datasets[name] = {"source": str(wd / f"{name}.jsonl"), "format": "jsonl", "columns": COLUMNS}
    (wd / "one_question.jsonl").write_bytes(ONE_QUESTION)
    datasets["one_question"] = {"source": str(wd / "one_question.jsonl"), "format": "jsonl", "columns": COLUMNS}
    models = {"SmolLM2-135M-Instruct": {"source": "embedded:smollm2-135m-instruct"}}
    (wd / "config.yaml").write_text(yaml.safe_dump({"models": models, "datasets": datasets, "shards": 2}))
    target = "results/datasets/good/questions.jsonl"
    good = wd / target
    first = run(wd, target)
    assert first.returncode == 0, first.stderr[-3000:]
    before = (good.read_bytes(), good.stat().st_mtime_ns)
    done = run(wd, target, "results/datasets/one_question/shards/000.jsonl",
               *(f"results/datasets/{name}/questions.jsonl" for name in BAD_FILES))
    return {"dir": wd, "done": done, "good": good, "before": before}


def test_the_run_fails(bad_run):
    assert bad_run["done"].returncode != 0


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_bad_file_gets_its_own_error_naming_file_and_row(bad_run, name):
    log = (bad_run["dir"] / "logs" / "build_dataset" / f"{name}.log").read_text(encoding="utf-8")
    assert_error_line(bad_run["done"].stdout + bad_run["done"].stderr, BAD_FILES[name][1], log)
    assert not (bad_run["dir"] / "results" / "datasets" / name / "questions.jsonl").exists()


def test_more_shards_than_questions(bad_run):
    log = (bad_run["dir"] / "logs" / "shard_dataset" / "one_question.log").read_text(encoding="utf-8")
    assert_error_line(bad_run["done"].stdout + bad_run["done"].stderr,
                      "cannot split 1 questions into 2 shards: lower 'shards' in the config", log)
    assert (bad_run["dir"] / "results/datasets/one_question/questions.jsonl").exists()  # its step before stays


def test_nothing_already_computed_is_lost(bad_run):
    good = bad_run["good"]
    assert (good.read_bytes(), good.stat().st_mtime_ns) == bad_run["before"]


# Kinds that need a prepared model and computed shards: the session's tiny run.


def test_a_layer_beyond_the_model_names_the_key(workdir, tmp_path):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["layers"] = [0, 99]
    path = tmp_path / "layers.yaml"
    path.write_text(yaml.safe_dump(config))
    done = snakemake(workdir, path, "--dry-run")
    assert done.returncode != 0
    assert_error_line(done.stdout + done.stderr, "config key 'layers': layer(s) [99] out of range for a model "
                                                 "with 30 layers")


def test_a_corrupt_shard_stops_the_probes_and_keeps_the_rest(workdir, tmp_path):
    prefix = Path("results/SmolLM2-135M-Instruct/builtin")
    shutil.copy(workdir / "config.yaml", tmp_path / "config.yaml")
    for path in ("resources", "results/datasets/builtin", str(prefix)):  # copies keep their times
        shutil.copytree(workdir / path, tmp_path / path, symlinks=True)
    (tmp_path / prefix / "activations/000.h5").write_bytes(b"not hdf5 at all")
    done = snakemake(tmp_path, tmp_path / "config.yaml", str(prefix / "auc.tsv"))
    assert done.returncode != 0
    logs = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "logs" / "train_probes").rglob("*.log"))
    assert_error_line(done.stdout + done.stderr, "activations/000.h5: not a readable HDF5 file", logs)
    for kept in ("generations/000.jsonl", "labels/000.jsonl", "positions/000.tsv", "activations/001.h5"):
        assert (tmp_path / prefix / kept).read_bytes() == (workdir / prefix / kept).read_bytes()
