"""Bad configurations stop the workflow before any job runs, with an error naming the key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from fixture_data import FIXTURES, TEST_CONFIG, config_with
from helpers import assert_error_line, snakemake

BASE = yaml.safe_load(TEST_CONFIG.read_text())


def dry_run(tmp_path: Path, config: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return snakemake(tmp_path, path, "--dry-run", timeout=120)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (config_with("shard", 2), "'shard' was unexpected"),
        (config_with("shards", "two"), "'two' is not of type 'integer'"),
        (config_with("split.test_fraction", 1.5), "1.5 is greater than or equal to the maximum of 1"),
        (config_with("probe.test_fraction", 0.3), "'test_fraction' was unexpected"),
        (config_with("detectors.p_true", "yes"), "'yes' is not of type 'boolean'"),
        (config_with("datasets.mine", {"source": "builtin", "columns": {"question": "q"}}),
         "option 'columns' does not apply to format 'builtin'"),
        (config_with("tokens", ["last_q", "third_answer"]), "config key 'tokens': unknown token"),
        (config_with("models.broken", {"source": "/no/such/model"}), "config key 'models.broken.source'"),
        (config_with("models.SmolLM2-135M-Instruct.device_map", {"model.layers.0": "tpu"}),
         "config key 'models.SmolLM2-135M-Instruct.device_map': module 'model.layers.0' is mapped to 'tpu'"),
        (config_with("datasets.mine", {"source": "/no/such/file.jsonl"}), "config key 'datasets.mine.source'"),
        (config_with("generation.template", "no placeholder"), "generation.template"),
        (config_with("exact_answer.extractor", "ghost"), "config key 'exact_answer.extractor'"),
        (config_with("resampling.n", -1), "config key 'resampling.n': -1 is less than the minimum of 0"),
        (config_with("resampling", {"n": 4, "temperature": 0}), "config key 'resampling.temperature': 0 (greedy)"),
        (config_with("datasets.mine", {"source": str(FIXTURES / "triviaqa-hf.jsonl"), "format": "generic"}),
         "config key 'datasets.mine.format': 'generic' is not one of ['builtin', 'truthmap',"),
        (config_with("datasets.mine", {"source": str(FIXTURES / "triviaqa-hf.jsonl"), "format": "jsonl",
                                       "columns": {"answer": "a"}}),
         "dataset 'mine': option 'columns.question' is required for format 'jsonl'"),
    ],
)
def test_bad_config_is_refused_with_the_key(tmp_path, config, message):
    done = dry_run(tmp_path, config)
    assert done.returncode != 0
    assert message in done.stdout + done.stderr, (done.stdout + done.stderr)[-2000:]
    assert not (tmp_path / "results").exists()
    assert_error_line(done.stdout + done.stderr, message)
    last = done.stderr.splitlines()[-2:]  # nothing after the line and its hint
    assert last[-1].startswith("error: ") or (last[0].startswith("error: ") and last[1].startswith("hint: ")), \
        done.stderr[-2000:]


def test_good_config_plans_the_pipeline(tmp_path):
    done = dry_run(tmp_path, BASE)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "prepare_model" in done.stdout
