"""A rule script's errors: one line for what the user can fix, a traceback for a bug."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def run_script(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess, str]:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(SCRIPTS)!r})
        from truthmap import logs
        from truthmap.files import InputError
        from truthmap.questions import BadField
        log = logs.setup({str(tmp_path / "job.log")!r}, "job")
        log.info("started")
    """) + textwrap.dedent(body))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    return done, (tmp_path / "job.log").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("raise_it", "lines"),
    [
        ("raise InputError(\"config key 'layers': empty list\")", ["error: config key 'layers': empty list"]),
        ("raise InputError('mine.h5: broken', hint='delete it')", ["error: mine.h5: broken", "hint: delete it"]),
        ("raise BadField('aliases', 'must be a list').at('mine.jsonl, row 2')",
         ["error: mine.jsonl, row 2: field 'aliases': must be a list"]),
        ("from truthmap.prompts import resolve_style\nresolve_style('chat', has_chat_template=False)",
         ["error: config key 'generation.prompt_style' is 'chat' but the model has no chat template",
          "hint: set it to 'plain' or 'auto'"]),
    ],
)
def test_an_input_error_ends_the_job_with_its_line(tmp_path, raise_it, lines):
    done, log = run_script(tmp_path, raise_it)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-len(lines):] == lines  # the console
    assert log.splitlines()[-len(lines):] == lines  # the job log
    assert "Traceback" not in done.stderr + log
    assert "started" in log


def test_any_other_error_keeps_its_traceback(tmp_path):
    done, log = run_script(tmp_path, "def broken():\n    return {}['key']\nbroken()\n")
    assert done.returncode == 1
    for text in (done.stderr, log):
        assert "Traceback (most recent call last)" in text and "KeyError: 'key'" in text
        assert "error: " not in text


def test_hidden_states_beyond_float16_end_the_extraction_with_a_line(tmp_path):
    done, log = run_script(tmp_path, f"""
        import numpy as np
        from truthmap.h5io import ActivationWriter
        with ActivationWriter({str(tmp_path / "000.h5")!r}, ids=["a", "b"], labels=np.array([0, 1], dtype=np.int8),
                              positions=np.zeros((2, 1), dtype=np.int64), tokens=["last_q"], layers=[3],
                              hidden_size=2, widths={{"residual": 2}}, model="m") as writer:
            writer.write(np.array([0, 1]), {{"sites/residual/3": np.array([[[1.0, 2.0]], [[7e4, 0.0]]], dtype=np.float32)}})
    """)
    assert done.returncode == 1
    message = f"error: {tmp_path / '000.h5'}: residual of layer 3, rows [1]: hidden states are NaN or beyond the float16 range"
    for text in (done.stderr, log):
        assert message in text.splitlines() and "Traceback" not in text
        assert "hint: leave layer 3 out of config key 'layers'" in text
    assert not (tmp_path / "000.h5").exists()
