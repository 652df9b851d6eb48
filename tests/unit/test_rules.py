"""The rule files: wiring only, Python scripts only, params that name their settings."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RULES = [*sorted((REPO / "workflow" / "rules").glob("*.smk")), REPO / "Snakefile"]


def test_no_rule_runs_a_shell_command():
    """Rules run Python scripts: no wildcard or config value is ever pasted into a shell line."""
    for path in RULES:
        text = path.read_text(encoding="utf-8")
        for pattern in (r"^\s*(shell|run):", r"\bshell\(", r"os\.system", r"subprocess"):
            assert not re.search(pattern, text, re.MULTILINE), f"{path.name} matches {pattern}"
    assert len(re.findall(r"^\s*script:", "".join(p.read_text(encoding="utf-8") for p in RULES), re.MULTILINE)) >= 15


def test_rules_read_settings_not_the_raw_config():
    """Params come from the typed settings (exactly the keys a script reads), never a whole config section."""
    for path in RULES:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"config\[", text), f"{path.name} reads the raw config"
        assert "lambda" not in text, f"{path.name}: a lambda where a named input function belongs"
