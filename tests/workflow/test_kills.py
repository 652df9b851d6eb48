"""SIGKILL the whole pipeline at random moments inside each stage, rerun it, get the same bytes.

The tiny end-to-end config runs again in a fresh folder (the prepared model is
copied from the session's run). Snakemake and its jobs are killed together
(one process group) once a job of each stage has started and a seeded random
delay has passed; after every kill, no output on disk may be partial, and the
next run goes on. The final auc.tsv and labels must equal the uninterrupted
run's byte for byte, which also makes two full runs of the test config agree.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import snakemake_command


PREFIX = "results/SmolLM2-135M-Instruct/builtin"
TARGETS = [f"{PREFIX}/auc.tsv"]
# (rule whose job must have started, most seconds to wait after that before the kill)
KILLS = [("generate_answers", 6.0), ("extract_activations", 3.0), ("train_probes", 1.5), ("gather_auc", 0.5)]


def command(wd: Path, *args: str) -> list[str]:
    return snakemake_command(wd, wd / "config.yaml", *args)


def started(wd: Path, rule: str) -> bool:
    """A job of ``rule`` is running its script (its log has been opened and written)."""
    return any(p.stat().st_size > 0 for p in (wd / "logs" / rule).rglob("*.log"))


def kill_inside(wd: Path, rule: str, most: float, rng: random.Random) -> dict:
    """Run the workflow; SIGKILL it and its jobs a random moment after ``rule`` starts.

    A killed Snakemake leaves its lock behind; these runs ignore it (--nolock),
    the last one removes it with --unlock as a user would.
    """
    with (wd / f"killed-in-{rule}.out").open("w") as out:
        run = subprocess.Popen(command(wd, "--nolock", *TARGETS), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 600
        while run.poll() is None and not started(wd, rule) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run.poll() is None, f"the run ended before {rule} started: {(wd / f'killed-in-{rule}.out').read_text()[-3000:]}"
        delay = rng.uniform(0.0, most)
        time.sleep(delay)
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    return {"rule": rule, "delay": delay}


def assert_nothing_partial(wd: Path) -> None:
    """Every output under its final name is whole: JSON parses, HDF5 shards say complete."""
    from truthmap.h5io import read_meta

    for path in (wd / "results").rglob("*"):
        if path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                json.loads(line)
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".h5":
            read_meta(path)  # raises on an incomplete or unreadable shard
        elif path.suffix == ".tsv":
            text = path.read_text(encoding="utf-8")
            assert text.endswith("\n"), f"{path} ends mid-line"


@pytest.fixture(scope="module")
def killed_run(workdir, tmp_path_factory):
    wd = tmp_path_factory.mktemp("kills")
    shutil.copy(workdir / "config.yaml", wd / "config.yaml")
    shutil.copytree(workdir / "resources", wd / "resources", symlinks=True)
    rng = random.Random(7)
    kills = []
    for rule, most in KILLS:
        kills.append(kill_inside(wd, rule, most, rng))
        assert_nothing_partial(wd)
    subprocess.run(command(wd, "--unlock"), capture_output=True, check=True, timeout=120)
    done = subprocess.run(command(wd, *TARGETS), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"dir": wd, "kills": kills}


def test_every_stage_was_killed_while_running(killed_run):
    assert [k["rule"] for k in killed_run["kills"]] == [rule for rule, _ in KILLS]


def test_auc_table_is_byte_identical_after_kills(killed_run, workdir):
    assert (killed_run["dir"] / TARGETS[0]).read_bytes() == (workdir / TARGETS[0]).read_bytes()


def test_no_temporary_file_outlives_the_rerun(killed_run):
    left = [p.name for p in (killed_run["dir"] / "results").rglob(".*tmp")]
    assert left == []


@pytest.mark.parametrize("name", ["labels/000.jsonl", "labels/001.jsonl", "generations/000.jsonl", "probes/split.tsv"])
def test_labels_and_generations_are_identical_across_runs(killed_run, workdir, name):
    assert (killed_run["dir"] / PREFIX / name).read_bytes() == (workdir / PREFIX / name).read_bytes()
