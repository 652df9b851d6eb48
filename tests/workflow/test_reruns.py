"""What reruns when the code changes: the rules that can reach the change and what is below them.

Each test edits a copy of the workflow (Snakefile, rule files, scripts and the
library) and makes a dry run of the copy against the finished end-to-end run.
A file touched without a change, or a docstring or comment edited anywhere,
reruns nothing; a change to a definition reruns the rules whose scripts reach
it, with everything below them, and nothing above.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from codeedits import reworded, with_statement_added
from helpers import copy_code, planned_jobs, snakemake

PLOTS = {"plot_heatmap", "plot_difference", "plot_detectors", "plot_dataset_generalisation",
         "plot_domain_generalisation", "plot_error_types", "plot_error_type_probes", "plot_answer_selection"}
BELOW_PROBES = {
    "gather_auc", "select_cells", "plot_heatmap", "plot_difference", "summarise_run", "compare_detectors",
    "plot_detectors",
    "generalise_datasets", "generalise_domains", "plot_dataset_generalisation", "plot_domain_generalisation",
    # the resampling stages that read the chosen cell (the e2e config resamples)
    "probe_error_types", "extract_candidates", "choose_answers", "plot_error_type_probes", "plot_answer_selection",
    "build_explorer",  # the explorer embeds every cell, the AUC table and the detectors
}


@pytest.fixture
def code(tmp_path) -> Path:
    """A copy of the workflow's code, file times kept."""
    return copy_code(tmp_path / "code")


def planned(workdir: Path, code: Path) -> set[str]:
    dry = snakemake(workdir, workdir / "config.yaml", "--dry-run", code=code, timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    return set(planned_jobs(dry.stdout))


def python_files(code: Path) -> list[Path]:
    return sorted((code / "scripts").rglob("*.py"))


def test_touching_every_file_reruns_nothing(workdir, code):
    later = time.time() + 3600
    for path in code.rglob("*"):
        if path.is_file():
            os.utime(path, (later, later))
    assert planned(workdir, code) == set()


def test_rewording_every_docstring_and_comment_reruns_nothing(workdir, code):
    for path in python_files(code):
        path.write_text(reworded(path.read_text(encoding="utf-8")), encoding="utf-8")
    assert planned(workdir, code) == set()


@pytest.mark.parametrize(
    ("module", "definition", "expected"),
    [
        ("plotting", "_save", PLOTS),  # every figure is saved by it
        ("plotting", "plot_heatmap", {"plot_heatmap"}),
        ("probes", "evaluate_cells", {"train_probes"} | BELOW_PROBES),
        ("probes", "split_table", {"split_examples", "score_p_true", "train_probes"} | BELOW_PROBES),
        ("settings", "PlotSettings", {"plot_heatmap", "plot_difference"}),
        ("settings", "SplitSettings", {"split_examples", "score_p_true", "train_probes"} | BELOW_PROBES),
        ("stats", "paired_bootstrap_pvalue", {"compare_detectors", "plot_detectors", "plot_difference", "build_explorer"}),
    ],
)
def test_a_changed_definition_reruns_the_rules_that_reach_it(workdir, code, module, definition, expected):
    path = code / "scripts" / "truthmap" / f"{module}.py"
    path.write_text(with_statement_added(path.read_text(encoding="utf-8"), definition), encoding="utf-8")
    assert planned(workdir, code) == expected | {"all"}
