"""The real workflow on the tiny test config (tests/e2e/config.yaml), run once per session
and shared by every test here that needs finished results.

The run starts in the background as soon as the session knows a test needs it (after
collection), so the unit tests, collected first, run while it does: most of its jobs keep
one core busy, or wait on Snakemake, and the unit tests mostly need one.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fixture_data import TEST_CONFIG
from helpers import snakemake_command

TIMEOUT = 1800  # seconds for every stage, resampling included


class SharedRun:
    """The shared run's Snakemake process and its folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        shutil.copy(TEST_CONFIG, folder / "config.yaml")
        self.log = (folder / "snakemake.out").open("w")
        self.process = subprocess.Popen(snakemake_command(folder, folder / "config.yaml"), stdout=self.log,
                                        stderr=subprocess.STDOUT, text=True)

    def wait(self) -> Path:
        try:
            code = self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        finally:
            self.log.close()
        assert code == 0, (self.folder / "snakemake.out").read_text()[-8000:]
        return self.folder


RUN = pytest.StashKey[SharedRun]()


def pytest_collection_finish(session):
    """Start the shared run when a collected test needs it (the ``workdir`` fixture)."""
    if any("workdir" in getattr(item, "fixturenames", ()) for item in session.items):
        session.config.stash[RUN] = SharedRun(session.config._tmp_path_factory.mktemp("e2e"))


def pytest_sessionfinish(session):
    """A session that ends before waiting for the run (interrupted, or its tests failed early) stops it."""
    run = session.config.stash.get(RUN, None)
    if run is not None and run.process.poll() is None:
        run.process.kill()
        run.process.wait()


@pytest.fixture(scope="session")
def workdir(request) -> Path:
    return request.config.stash[RUN].wait()
