"""Fingerprints of the library code a rule script runs."""

from __future__ import annotations

from pathlib import Path

from truthmap.provenance import code_fingerprint, imported_modules, module_files

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_imported_modules_reads_every_import_form():
    source = (
        "import os\n"
        "import truthmap.files\n"
        "from truthmap import logs\n"
        "from truthmap.config import ProbeConfig\n"
        "from numpy import array\n"
        "def f():\n"
        "    from truthmap.models import load_model\n"
    )
    assert imported_modules(source) == {
        "truthmap", "truthmap.files", "truthmap.logs", "truthmap.config",
        "truthmap.config.ProbeConfig", "truthmap.models", "truthmap.models.load_model",
    }


def test_relative_imports_resolve_against_the_importing_module():
    assert imported_modules("from .files import read_tsv", current="truthmap.probes") >= {"truthmap.files"}
    assert imported_modules("from . import h5io", current="truthmap.probes") >= {"truthmap.h5io"}
    assert imported_modules("from .x import y", current="truthmap.__init__") >= {"truthmap.x"}
    assert imported_modules("from .x import y") == set()  # a script has no package


def make_library(root: Path) -> Path:
    pkg = root / "truthmap"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""pkg."""\n')
    (pkg / "a.py").write_text("from truthmap.b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    return 1\n")
    (pkg / "c.py").write_text("def h():\n    return 2\n")
    script = root / "rule.py"
    script.write_text("from truthmap.a import f\nf()\n")
    return script


def test_module_files_follow_imports_transitively(tmp_path):
    script = make_library(tmp_path)
    assert list(module_files(script, tmp_path)) == ["truthmap", "truthmap.a", "truthmap.b"]


def test_fingerprint_changes_with_reached_code_only(tmp_path):
    script = make_library(tmp_path)
    before = code_fingerprint(script)
    (tmp_path / "truthmap" / "c.py").write_text("def h():\n    return 3\n")  # not reached
    assert code_fingerprint(script) == before
    (tmp_path / "truthmap" / "b.py").write_text("# a comment\ndef g():\n\n    return 1  # same code\n")
    assert code_fingerprint(script) == before
    (tmp_path / "truthmap" / "b.py").write_text("def g():\n    return 2\n")  # reached through a
    assert code_fingerprint(script) != before


def test_fingerprint_sees_the_script_itself(tmp_path):
    script = make_library(tmp_path)
    before = code_fingerprint(script)
    script.write_text("from truthmap.a import f\nf()\nf()\n")
    assert code_fingerprint(script) != before


def test_real_rule_scripts_reach_their_stage_and_not_torch_stages():
    plot = module_files(SCRIPTS / "plot_heatmap.py", SCRIPTS)
    assert "truthmap.plotting" in plot
    assert not {"truthmap.models", "truthmap.generation", "truthmap.activations"} & set(plot)
    train = module_files(SCRIPTS / "train_probes.py", SCRIPTS)
    assert {"truthmap.probes", "truthmap.h5io"} <= set(train)
    assert "truthmap.models" not in train
    generate = module_files(SCRIPTS / "generate_answers.py", SCRIPTS)
    assert {"truthmap.generation", "truthmap.models"} <= set(generate)
    assert "truthmap.probes" not in generate
