"""Bad configurations stop the workflow before any job runs, with an error naming the key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import TEST_CONFIG, snakemake

BASE = yaml.safe_load(TEST_CONFIG.read_text())


def dry_run(tmp_path: Path, config: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return snakemake(tmp_path, path, "--dry-run", timeout=120)


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
        (with_("split.test_fraction", 1.5), "1.5 is greater than or equal to the maximum of 1"),
        (with_("probe.test_fraction", 0.3), "'test_fraction' was unexpected"),
        (with_("detectors.p_true", "yes"), "'yes' is not of type 'boolean'"),
        (with_("datasets.mine", {"source": "builtin", "columns": {"question": "q"}}),
         "option 'columns' does not apply to format 'builtin'"),
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
