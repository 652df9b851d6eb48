"""Bad configurations stop the workflow before any job runs, with an error naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((REPO / "tests" / "e2e" / "config.yaml").read_text())


def dry_run(tmp_path: Path, config: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(tmp_path), "--configfile", str(path), "--dry-run", "--cores", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def with_(key: str, value) -> dict:
    config = yaml.safe_load(yaml.safe_dump(BASE))
    node = config
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return config


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (with_("shard", 2), "'shard' was unexpected"),
        (with_("shards", "two"), "'two' is not of type 'integer'"),
        (with_("probe.test_fraction", 1.5), "test_fraction"),
        (with_("tokens", ["last_q", "first_answer"]), "config key 'tokens': unknown token"),
        (with_("models.broken", {"source": "/no/such/model"}), "config key 'models.broken.source'"),
        (with_("datasets.mine", {"source": "/no/such/file.jsonl"}), "config key 'datasets.mine.source'"),
        (with_("generation.template", "no placeholder"), "generation.template"),
        (with_("exact_answer.extractor", "ghost"), "config key 'exact_answer.extractor'"),
    ],
)
def test_bad_config_is_refused_with_the_key(tmp_path, config, message):
    done = dry_run(tmp_path, config)
    assert done.returncode != 0
    assert message in done.stdout + done.stderr, (done.stdout + done.stderr)[-2000:]
    assert not (tmp_path / "results").exists()


def test_good_config_plans_the_pipeline(tmp_path):
    done = dry_run(tmp_path, BASE)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "prepare_model" in done.stdout


def test_schema_lists_every_loader_format():
    from truthmap.loaders import FORMATS

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    entry = schema["properties"]["datasets"]["additionalProperties"]["properties"]["format"]
    assert [f for f in entry["enum"] if f is not None] == list(FORMATS)


def schema_errors(config: dict) -> str:
    """The schema's verdict on a config, in-process (what the workflow checks first): '' when valid."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    except WorkflowError as err:
        return str(err)
    return ""


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (with_("probe.Cee", 1.0), "'Cee' was unexpected"),
        (with_("activations.site", "attention"), "'attention' is not one of"),
        (with_("models.SmolLM2-135M-Instruct.trust_remote_code", "yes"), "'yes' is not of type 'boolean'"),
        (with_("models.SmolLM2-135M-Instruct.allow_pickle", 1), "1 is not of type 'boolean'"),
        (with_("models.SmolLM2-135M-Instruct.dtype", "fp8"), "'fp8' is not one of"),
        (with_("models.x; rm -rf ~", {"source": "embedded:smollm2-135m-instruct"}), "'x; rm -rf ~' does not match"),
        (with_("datasets.$(reboot)", {"source": "builtin"}), "'$(reboot)' does not match"),
        (with_("layers", [0, "1"]), "[0, '1'] is not valid under any of the given schemas"),
    ],
)
def test_schema_refuses_wrong_types_and_names_a_shell_could_misread(config, message):
    assert message in schema_errors(config)


def test_safety_opt_ins_default_to_off():
    config = yaml.safe_load(yaml.safe_dump(BASE))
    assert schema_errors(config) == ""
    entry = config["models"]["SmolLM2-135M-Instruct"]
    assert entry["trust_remote_code"] is False and entry["allow_pickle"] is False


def test_no_rule_runs_a_shell_command():
    """Rules run Python scripts: no wildcard or config value is ever pasted into a shell line."""
    import re

    rules = [*sorted((REPO / "workflow" / "rules").glob("*.smk")), REPO / "Snakefile"]
    for path in rules:
        text = path.read_text(encoding="utf-8")
        for pattern in (r"^\s*(shell|run):", r"\bshell\(", r"os\.system", r"subprocess"):
            assert not re.search(pattern, text, re.MULTILINE), f"{path.name} matches {pattern}"
    assert len(re.findall(r"^\s*script:", "".join(p.read_text(encoding="utf-8") for p in rules), re.MULTILINE)) >= 15
