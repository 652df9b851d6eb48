"""config/README.md's "What reruns" table, checked key by key with dry runs.

For every key of the config, one dry run against the finished end-to-end run
with that key changed (and nothing else) must plan exactly the rules the table
says read it, plus every rule below them in the workflow's rule graph (and
`all`). The table must name every key the typed settings declare, no more.

Dataset options that the built-in set does not take (a column mapping, a split
folder, ...) are changed on small file datasets of their own, and only their
questions file is planned: the first dry runs show that what follows a rebuilt
dataset reruns with it.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from helpers import REPO, planned_jobs, snakemake
from truthmap import schema
from truthmap.settings import RunSettings, field_types

MODEL, DATASET = "SmolLM2-135M-Instruct", "builtin"
ROW = re.compile(r"^\| `([\w.<>]+)` \| ((?:`\w+`(?:, )?)+) \|(.*)\|$", re.M)
#: Keys changed on file datasets of their own (see the module docstring).
OWN_DATASET = {"source", "format", "with_context", "columns", "answer_separator", "split"}


def rerun_table() -> dict[str, set[str]]:
    """{key: rules that read it} from config/README.md."""
    text = (REPO / "config" / "README.md").read_text(encoding="utf-8")
    section = text.split("## What reruns when you change a key", 1)[1].split("\n## ", 1)[0]
    rows = {m[1]: set(re.findall(r"`(\w+)`", m[2])) for m in ROW.finditer(section)}
    assert rows, "no rerun table found"
    return rows


def every_key() -> list[str]:
    keys = []
    for name, cls in schema.sections().items():
        if cls is None:
            keys += [f.name for f in dataclasses.fields(RunSettings) if f.name not in schema.sections()]
        else:
            prefix = f"{name}.<name>" if name in ("models", "datasets") else name
            keys += [f"{prefix}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def test_the_table_names_every_key_once():
    assert sorted(rerun_table()) == sorted(every_key())


# --------------------------------------------------------------------------- changing one key


def settings_class(key: str):
    head = key.split(".")[0]
    return RunSettings if head == key else schema.sections()[head]


def changed_value(key: str, value):
    """A different valid value for ``key`` (its type decides; a few keys need a specific one)."""
    special = {
        "models.<name>.source": "embedded:gemma-3-270m",
        "models.<name>.prompt_style": "plain",
        "models.<name>.dtype": "bfloat16",
        "models.<name>.device_map": "cpu",
        "datasets.<name>.limit": 60,
        "datasets.<name>.template": "Reply briefly.\n{question}",
        "datasets.<name>.plain_template": "Question: {question}\nAnswer:",
        "datasets.<name>.max_new_tokens": 16,
        "datasets.<name>.group": "origin",
        "layers": [0, 14],
        "tokens": ["last_q", "exact_answer_first", "-1"],
        "probe.ci_level": 0.9,
        "probe.backend": "sklearn",  # from auto: a name that differs on any machine
        "plot.value": "auc_split_mean",
        "split.test_fraction": 0.25,
    }
    if key in special:
        return special[key]
    hint = field_types(settings_class(key))[key.split(".")[-1]]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2
    if key.endswith("prompt_style"):
        return "chat"
    if key.endswith("sites"):
        return ["residual", "mlp_input"]
    if key.endswith("examples"):
        return "per_cell"
    if isinstance(value, str) and "{question}" in value:
        return value + " Be brief."
    raise AssertionError(f"no changed value for {key} ({hint}, {value!r})")


def variant(config: dict, key: str) -> tuple[dict, str | None]:
    """``config`` with ``key`` changed: (config, the model whose jobs to compare, if several)."""
    config = copy.deepcopy(config)
    filled = RunSettings.from_config(config)
    if key in ("models.<name>.extractor", "exact_answer.extractor"):
        config["models"]["Extractor"] = {"source": "embedded:smollm2-135m-instruct"}
        if key == "exact_answer.extractor":
            config.setdefault("exact_answer", {})["extractor"] = "Extractor"
        else:
            config["models"][MODEL]["extractor"] = "Extractor"
        return config, MODEL
    parts = key.replace("<name>", MODEL if key.startswith("models") else DATASET).split(".")
    node, current = config, filled
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        current = current[part] if isinstance(current, dict) else getattr(current, part)
    value = current[parts[-1]] if isinstance(current, dict) else getattr(current, parts[-1])
    node[parts[-1]] = changed_value(key, value)
    return config, None


def planned_rules(output: str, model: str | None) -> set[str]:
    """Rules of the jobs a dry run plans; with ``model``, only jobs of that model or of no model."""
    if model is None:
        return set(planned_jobs(output))
    jobs = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):\n((?:    .*\n)+)", output, re.M)
    return {rule for rule, body in jobs if f"model={model}" in body or "model=" not in body}


@pytest.fixture(scope="module")
def rule_graph(workdir) -> dict[str, set[str]]:
    """{rule: rules that take its outputs as input} from Snakemake's own rule graph."""
    done = snakemake(workdir, workdir / "config.yaml", "--rulegraph")
    assert done.returncode == 0, done.stderr[-2000:]
    names = dict(re.findall(r"^\s*(\d+)\[label = \"(\w+)\"", done.stdout, re.M))
    below: dict[str, set[str]] = {name: set() for name in names.values()}
    for a, b in re.findall(r"^\s*(\d+) -> (\d+)", done.stdout, re.M):
        below[names[a]].add(names[b])
    return below


def with_everything_below(rules: set[str], graph: dict[str, set[str]]) -> set[str]:
    out, todo = set(rules), list(rules)
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in out:
                out.add(nxt)
                todo.append(nxt)
    return out


WORKFLOW_KEYS = [k for k in every_key() if not (k.startswith("datasets.") and k.split(".")[-1] in OWN_DATASET)]


@pytest.fixture(scope="module")
def dry_runs(workdir, tmp_path_factory) -> dict[str, tuple[set[str], str]]:
    """One dry run per key against the end-to-end run, two at a time."""
    base = yaml.safe_load((workdir / "config.yaml").read_text())
    folder = tmp_path_factory.mktemp("rerun_table")

    def one(key: str) -> tuple[str, tuple[set[str], str]]:
        config, model = variant(base, key)
        path = folder / f"{key.replace('<name>', 'x')}.yaml"
        path.write_text(yaml.safe_dump(config))
        done = snakemake(workdir, path, "--dry-run", timeout=300)
        assert done.returncode == 0, f"{key}: {done.stderr[-2000:]}"
        return key, (planned_rules(done.stdout, model), done.stdout)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, WORKFLOW_KEYS))


@pytest.mark.parametrize("key", WORKFLOW_KEYS)
def test_changing_a_key_reruns_exactly_its_readers_and_below(key, dry_runs, rule_graph):
    planned, output = dry_runs[key]
    readers = rerun_table()[key]
    expected = with_everything_below(readers, rule_graph) | {"all"}
    if "prepare_model" in readers:
        # A checkpoint: jobs whose inputs depend on its output (the probe cells) are
        # planned once it has rerun, not in a dry run before it.
        expected -= {"train_probes"}
    assert planned == expected, output[-3000:]


# --------------------------------------------------------------------------- options of file datasets

TABLE_CSV = "id,question,answer,context\nq1,Capital of France?,Paris|paris,France is in Europe.\nq2,2 + 2?,4,Arithmetic.\n"


@pytest.fixture(scope="module")
def file_datasets(tmp_path_factory) -> tuple[Path, dict]:
    """A CSV dataset and an aclImdb folder, built once (no model needed)."""
    wd = tmp_path_factory.mktemp("file_datasets")
    (wd / "table.csv").write_text(TABLE_CSV)
    shutil.copy(wd / "table.csv", wd / "other.csv")
    for split in ("test", "train"):
        for label in ("pos", "neg"):
            folder = wd / "reviews" / split / label
            folder.mkdir(parents=True)
            (folder / "0_7.txt").write_text(f"A {label} review from {split}.")
    config = {
        "models": {MODEL: {"source": "embedded:smollm2-135m-instruct"}},
        "datasets": {
            "table": {"source": str(wd / "table.csv"), "format": "csv",
                      "columns": {"question": "question", "answer": "answer"}},
            "reviews": {"source": str(wd / "reviews"), "format": "imdb"},
        },
    }
    (wd / "config.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(wd, wd / "config.yaml", *(f"results/datasets/{d}/questions.jsonl" for d in config["datasets"]))
    assert done.returncode == 0, done.stderr[-3000:]
    return wd, config


FILE_CHANGES = {
    "source": ("table", lambda wd, spec: {**spec, "source": str(wd / "other.csv")}),
    "format": ("table", lambda wd, spec: {**spec, "format": "jsonl"}),
    "with_context": ("table", lambda wd, spec: {**spec, "with_context": True,
                                                "columns": {**spec["columns"], "context": "context"}}),
    "columns": ("table", lambda wd, spec: {**spec, "columns": {**spec["columns"], "id": "id"}}),
    "answer_separator": ("table", lambda wd, spec: {**spec, "answer_separator": "|"}),
    "split": ("reviews", lambda wd, spec: {**spec, "split": "train"}),
}


def test_every_file_dataset_option_is_tried():
    assert set(FILE_CHANGES) == OWN_DATASET


@pytest.fixture(scope="module")
def file_dry_runs(file_datasets, tmp_path_factory) -> dict[str, tuple[set[str], str]]:
    """One dry run per option, of the changed dataset's questions file only, two at a time."""
    wd, config = file_datasets
    targets = [f"results/datasets/{d}/questions.jsonl" for d in config["datasets"]]
    unchanged = snakemake(wd, wd / "config.yaml", "--dry-run", *targets)
    assert planned_jobs(unchanged.stdout) == {}, unchanged.stdout[-2000:]
    folder = tmp_path_factory.mktemp("file_options")

    def one(option: str) -> tuple[str, tuple[set[str], str]]:
        dataset, change = FILE_CHANGES[option]
        changed = copy.deepcopy(config)
        changed["datasets"][dataset] = change(wd, config["datasets"][dataset])
        path = folder / f"{option}.yaml"
        path.write_text(yaml.safe_dump(changed))
        done = snakemake(wd, path, "--dry-run", f"results/datasets/{dataset}/questions.jsonl")
        assert done.returncode == 0, done.stderr[-2000:]
        return option, (set(planned_jobs(done.stdout)), done.stdout)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, sorted(FILE_CHANGES)))


@pytest.mark.parametrize("option", sorted(FILE_CHANGES))
def test_a_file_dataset_option_reruns_its_build(file_dry_runs, option):
    planned, output = file_dry_runs[option]
    assert planned == rerun_table()[f"datasets.<name>.{option}"], output[-2000:]
