"""Fingerprints of the library code a rule script reaches, definition by definition."""

from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path

import pytest

from codeedits import reworded
from truthmap import provenance
from truthmap.provenance import asset_digest, cached_code_fingerprint, code_fingerprint, import_bindings, script_reach

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def bindings(source: str, current: str | None = None) -> dict:
    out = {}
    for node in ast.walk(ast.parse(source)):
        out.update(import_bindings(node, current))
    return out


def test_import_bindings_read_every_import_form():
    assert bindings(
        "import os\n"
        "import truthmap.files\n"
        "import truthmap.h5io as h5\n"
        "from truthmap import logs\n"
        "from truthmap.settings import ProbeSettings as PS\n"
        "from numpy import array\n"
    ) == {
        "truthmap": ("truthmap", None), "h5": ("truthmap.h5io", None), "logs": ("truthmap", "logs"),
        "PS": ("truthmap.settings", "ProbeSettings"),
    }


def test_relative_imports_resolve_against_the_importing_module():
    assert bindings("from .files import read_tsv", "truthmap.probes") == {"read_tsv": ("truthmap.files", "read_tsv")}
    assert bindings("from . import h5io", "truthmap.probes") == {"h5io": ("truthmap", "h5io")}
    assert bindings("from .x import y", "truthmap.loaders.__init__") == {"y": ("truthmap.loaders.x", "y")}
    assert bindings("from .x import y") == {}  # a script has no package


LIBRARY = {
    "__init__.py": '"""pkg."""\n',
    "a.py": (
        '"""Module a."""\n'
        "from truthmap.b import g\n"
        "from truthmap import c\n\n"
        "def f():\n"
        '    """Uses g."""\n'
        "    return g() + c.h()\n\n"
        "def unused():\n"
        "    return 0\n"
    ),
    "b.py": "LIMIT = 3\n\ndef g():\n    return LIMIT\n\ndef other():\n    return 5\n",
    "c.py": "import math\n\ndef h():\n    return 2\n\ndef k():\n    return math.pi\n",
    "d.py": "def never():\n    return 4\n",
}


@pytest.fixture
def library(tmp_path) -> Path:
    pkg = tmp_path / "truthmap"
    pkg.mkdir()
    for name, text in LIBRARY.items():
        (pkg / name).write_text(text)
    script = tmp_path / "rule.py"
    script.write_text("from truthmap.a import f\nf()\n")
    return script


def edit(script: Path, module: str, old: str, new: str) -> None:
    path = script.parent / "truthmap" / module
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_reach_follows_names_through_modules(library):
    assert script_reach(library).reached() == {
        "truthmap": [], "truthmap.a": ["f"], "truthmap.b": ["LIMIT", "g"], "truthmap.c": ["h"],
    }


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("d.py", "return 4", "return 40"),  # a module nothing imports
        ("a.py", "return 0", "return 1"),  # a definition nothing uses, in a module used
        ("b.py", "return 5", "return 50"),
        ("c.py", "math.pi", "math.e"),
        ("a.py", '"""Uses g."""', '"""Uses g, twice as well."""'),  # docstrings
        ("a.py", '"""Module a."""', '"""Module a, renamed."""'),
        ("b.py", "LIMIT = 3\n", "LIMIT = 3  # a comment\n\n\n"),  # comments and layout
        ("c.py", "def h():\n    return 2", "def h():\n    # two\n    return (\n        2\n    )"),
    ],
)
def test_fingerprint_ignores_what_the_script_cannot_reach_or_run(library, module, old, new):
    before = code_fingerprint(library)
    edit(library, module, old, new)
    assert code_fingerprint(library) == before


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("a.py", "return g() + c.h()", "return g() - c.h()"),
        ("b.py", "LIMIT = 3", "LIMIT = 4"),  # a constant a used function reads
        ("c.py", "return 2", "return 3"),  # reached as an attribute of the module
        ("c.py", "import math\n", "import math\nprint('imported')\n"),  # import-time code
        ("__init__.py", '"""pkg."""\n', '"""pkg."""\nVERSION = 2\nprint(VERSION)\n'),
    ],
)
def test_fingerprint_changes_with_reached_code(library, module, old, new):
    before = code_fingerprint(library)
    edit(library, module, old, new)
    assert code_fingerprint(library) != before


def test_fingerprint_sees_the_script_itself(library):
    before = code_fingerprint(library)
    library.write_text("from truthmap.a import f\nf()\nf()\n")
    assert code_fingerprint(library) != before


def test_a_module_read_by_getattr_counts_as_a_whole(library):
    library.write_text("from truthmap import d\ngetattr(d, 'never')()\n")
    before = code_fingerprint(library)
    edit(library, "d.py", "return 4", "return 40")
    assert code_fingerprint(library) != before


def test_real_rule_scripts_reach_their_stage_and_not_torch_stages():
    plot = script_reach(SCRIPTS / "plot_heatmap.py").reached()
    assert "truthmap.plotting" in plot
    assert not {"truthmap.models", "truthmap.generation", "truthmap.activations"} & set(plot)
    train = script_reach(SCRIPTS / "train_probes.py").reached()
    assert {"truthmap.probes", "truthmap.h5io"} <= set(train)
    assert "truthmap.models" not in train
    generate = script_reach(SCRIPTS / "generate_answers.py").reached()
    assert {"truthmap.generation", "truthmap.models"} <= set(generate)
    assert "truthmap.probes" not in generate


def test_each_rule_reaches_only_its_own_settings():
    split = script_reach(SCRIPTS / "split_examples.py").reached()["truthmap.settings"]
    assert "SplitSettings" in split and "ProbeSettings" not in split
    generate = script_reach(SCRIPTS / "generate_answers.py").reached()["truthmap.settings"]
    assert "GenerationSettings" in generate and not {"ProbeSettings", "RunSettings"} & set(generate)


def test_rewording_every_docstring_and_comment_changes_no_rule_fingerprint(tmp_path):
    copy = tmp_path / "scripts"
    shutil.copytree(SCRIPTS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    scripts = sorted(copy.glob("*.py"))
    before = {p.name: code_fingerprint(p) for p in scripts}
    for path in [*scripts, *(copy / "truthmap").rglob("*.py")]:
        new = reworded(path.read_text(encoding="utf-8"))
        ast.parse(new)  # still Python
        path.write_text(new, encoding="utf-8")
    assert {p.name: code_fingerprint(p) for p in scripts} == before


def test_asset_digest_follows_bytes_and_names_not_file_times(tmp_path):
    (tmp_path / "page.js").write_text("let a = 1;\n")
    (tmp_path / "page.css").write_text("body {}\n")
    first = asset_digest(tmp_path)
    os.utime(tmp_path / "page.js", (1, 1))
    assert asset_digest(tmp_path) == first
    (tmp_path / "page.js").write_text("let a = 2;\n")
    changed = asset_digest(tmp_path)
    assert changed != first
    (tmp_path / "extra.html").write_text("")
    assert asset_digest(tmp_path) != changed
    (tmp_path / "extra.html").rename(tmp_path / "other.html")
    assert asset_digest(tmp_path) not in (first, changed)


def test_a_cached_fingerprint_is_the_computed_one_and_is_computed_once(library, monkeypatch):
    first = cached_code_fingerprint(library)
    assert first == code_fingerprint(library)
    assert (library.parent / provenance.CACHE).is_file()
    monkeypatch.setattr(provenance, "code_fingerprint", lambda *a, **k: pytest.fail("computed again"))
    assert cached_code_fingerprint(library) == first


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("a.py", "return g() + c.h()", "return g() - c.h()"),  # code the script reaches
        ("d.py", "return 4", "return 40"),  # code it does not: the key changes, the fingerprint not
        ("b.py", "LIMIT = 3\n", "LIMIT = 3  # a comment\n"),
    ],
)
def test_any_edit_of_the_package_recomputes_the_cached_fingerprint(library, module, old, new):
    cached_code_fingerprint(library)
    calls = []
    real = provenance.code_fingerprint

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    edit(library, module, old, new)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(provenance, "code_fingerprint", counted)
        assert cached_code_fingerprint(library) == code_fingerprint(library)
    assert len(calls) == 1


def test_an_edit_of_the_script_recomputes_the_cached_fingerprint(library):
    before = cached_code_fingerprint(library)
    library.write_text("from truthmap.a import f\nf()\nf()\n")
    assert cached_code_fingerprint(library) == code_fingerprint(library) != before


def test_a_corrupt_or_unwritable_cache_is_only_slower(library):
    cache = library.parent / provenance.CACHE
    cache.parent.mkdir()
    cache.write_text("{not json")
    assert cached_code_fingerprint(library) == code_fingerprint(library)
    cache.unlink()
    cache.mkdir()  # unreadable and unwritable as a file, even for root
    assert cached_code_fingerprint(library) == code_fingerprint(library)
    assert list(cache.parent.iterdir()) == [cache]  # no temporary file left behind
