"""The shared run: the real workflow on the tiny test config (tests/e2e/config.yaml), run once
per session and shared by every workflow test that needs finished results (``workdir``).

It starts in the background as soon as the session knows a test needs it (after collection),
so the unit tests, collected first, run while it does. Under pytest-xdist (``make test`` runs
``pytest -n auto --dist loadfile``) the controller starts it once, when a worker reports that
it collected a workflow test, and tells every worker its folder; a worker waits for the exit
code the controller writes next to it. Without xdist the session's own process starts it.

The hooks below are registered by tests/conftest.py, which the controller loads (it loads no
conftest under tests/workflow/: it collects nothing).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fixture_data import TEST_CONFIG

# The workflow tests import their helpers as ``helpers`` (tests/workflow/ is on their path, not
# on the xdist controller's): the same name here, so that a worker loads the file once.
sys.path.insert(0, str(Path(__file__).resolve().parent / "workflow"))
from helpers import CLUSTER_LEFT_RUNNING, STOP_CLUSTER, snakemake_command  # noqa: E402

TIMEOUT = 1800  # seconds for every stage, resampling included
EXIT_CODE = "snakemake.exit"  # written in the run's folder when Snakemake has ended
WORKER_KEY = "truthmap_shared_run"  # the folder, in each xdist worker's workerinput


class SharedRun:
    """The shared run's Snakemake process and its folder; its exit code lands in ``EXIT_CODE``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        shutil.copy(TEST_CONFIG, folder / "config.yaml")
        self.log = (folder / "snakemake.out").open("w")
        self.process = subprocess.Popen(snakemake_command(folder, folder / "config.yaml"), stdout=self.log,
                                        stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._record_exit, daemon=True).start()

    def _record_exit(self) -> None:
        code = self.process.wait()
        self.log.close()
        (self.folder / EXIT_CODE).write_text(str(code))

    def stop(self) -> None:
        """Kill it if it is still running (the session ended before waiting for it)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_for(folder: Path) -> Path:
    """The shared run's folder once it has ended well; a failed run fails the test with its log."""
    deadline = time.monotonic() + TIMEOUT
    while not (folder / EXIT_CODE).is_file():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the shared run in {folder} did not end within {TIMEOUT} s")
        time.sleep(0.5)
    code = int((folder / EXIT_CODE).read_text())
    assert code == 0, (folder / "snakemake.out").read_text()[-8000:]
    return folder


RUN = pytest.StashKey[SharedRun]()


def start(config, folder: Path) -> None:
    if RUN not in config.stash:
        folder.mkdir(parents=True, exist_ok=True)
        config.stash[RUN] = SharedRun(folder)


def shared_folder(config) -> Path:
    """Where the xdist controller runs the shared run: under the session's base temporary folder."""
    return config._tmp_path_factory.getbasetemp() / "e2e-shared"


def pytest_collection_finish(session):
    """Without xdist: start the shared run when a collected test needs it (the ``workdir`` fixture)."""
    if hasattr(session.config, "workerinput"):
        return
    if any("workdir" in getattr(item, "fixturenames", ()) for item in session.items):
        start(session.config, session.config._tmp_path_factory.mktemp("e2e"))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """The xdist controller: start the shared run when a worker collected a workflow test."""
    if any(i.startswith("tests/workflow/") for i in ids):
        start(node.config, shared_folder(node.config))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """The xdist controller: the folder the shared run will use, for every worker."""
    node.workerinput[WORKER_KEY] = str(shared_folder(node.config))


def pytest_sessionfinish(session):
    """A session that ends before its run does (interrupted, or its tests failed early) stops it;
    the xdist controller stops the SLURM test's cluster, which its worker left running."""
    run = session.config.stash.get(RUN, None)
    if run is not None:
        run.stop()
    if not hasattr(session.config, "workerinput"):
        marker = session.config._tmp_path_factory.getbasetemp() / CLUSTER_LEFT_RUNNING
        if marker.is_file():
            subprocess.run([str(STOP_CLUSTER)], capture_output=True, timeout=120)
            marker.unlink()
