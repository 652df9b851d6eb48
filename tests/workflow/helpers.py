"""Running the real workflow from a test: one Snakemake command builder and what a dry run planned."""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.connection
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The marker an xdist worker's SLURM test leaves in the session's base folder when it left its
#: cluster running for the controller to stop (``STOP_CLUSTER``) at the session's end.
CLUSTER_LEFT_RUNNING = "slurm-cluster-left-running"
STOP_CLUSTER = REPO / "tests" / "slurm" / "stop-cluster.sh"

_CHILDREN = threading.Lock()
"""Starting a process and reading a process's exit status take turns across threads (tests run two
dry runs at once). ``Process.start`` polls every other child the process has started
(``multiprocessing.process._cleanup``), which reads a forkserver child's exit status from its
pipe; a ``join`` in another thread that reads the same pipe then finds it at its end and reports
255 for a run that ended well: 7 of 400 short processes on four threads, none with the lock."""


def copy_code(to: Path) -> Path:
    """A copy of the workflow's code (Snakefile, workflow/, scripts/) under ``to``, file times kept."""
    for part in ("workflow", "scripts"):
        shutil.copytree(REPO / part, to / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "Snakefile", to / "Snakefile")
    return to


def snakemake_command(workdir: Path, configfile: Path | None, *args: str, profile: str | None = "default",
                      code: Path = REPO) -> list[str]:
    """The command line of the workflow (the one in ``code``) run in ``workdir`` with a workflow profile."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(code / "Snakefile"), "--directory", str(workdir)]
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    if profile is not None:
        cmd += ["--workflow-profile", str(code / "workflow" / "profiles" / profile)]
    return [*cmd, *args]


def snakemake(workdir: Path, configfile: Path | None, *args: str, profile: str | None = "default",
              code: Path = REPO, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run Snakemake as ``python -m snakemake`` would, to its end: its command line's
    ``snakemake.cli.main`` in a process forked from one that has imported it already (a
    second of CPU less per start: the tests start Snakemake some 120 times)."""
    cmd = snakemake_command(workdir, configfile, *args, profile=profile, code=code)
    with tempfile.TemporaryDirectory(prefix="snakemake-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        status = run_forked(_main, (cmd[3:], str(out), str(err)), timeout)
        if status is None:
            raise subprocess.TimeoutExpired(cmd, timeout)
        return subprocess.CompletedProcess(cmd, status, out.read_text(errors="replace"),
                                           err.read_text(errors="replace"))


def run_forked(target, args: tuple, timeout: float) -> int | None:
    """``target(*args)`` in a process from :func:`_forked`'s server: its exit code, or None when it
    ran past ``timeout`` seconds (it is killed). Safe to call from several threads at once."""
    process = _forked().Process(target=target, args=args)
    with _CHILDREN:
        process.start()
    ended = multiprocessing.connection.wait([process.sentinel], timeout)  # reads nothing
    with _CHILDREN:
        if not ended:
            process.kill()
        process.join()
        return process.exitcode if ended else None


@functools.cache
def _forked() -> multiprocessing.context.BaseContext:
    """Processes forked from a server that has imported Snakemake's command line (and nothing of
    the workflow's: each run imports the library from the code it runs)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["snakemake.cli"])
    return context


def _main(argv: list[str], out: str, err: str) -> None:
    """Snakemake's command line with its output in files; its exit code is the process's."""
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    sys.argv = [sys.executable, *argv]
    from snakemake.cli import main

    main(argv)


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run, as {rule: count}; empty when nothing is to be done."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


def assert_error_line(console: str, message: str, log: str | None = None) -> None:
    """A fixable error's one line (``error: ...`` holding ``message``) is on the console and in the
    job log, and neither shows a Python traceback."""
    for where, text in (("console", console), ("job log", log)):
        if text is None:
            continue
        lines = [line for line in text.splitlines() if line.startswith("error: ")]
        assert any(message in line for line in lines), f"{where}: no 'error: ...{message}' line in\n{text[-3000:]}"
        assert "Traceback" not in text, f"{where} shows a traceback:\n{text[-3000:]}"
