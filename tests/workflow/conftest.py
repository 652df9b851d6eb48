"""The workflow tests' shared fixture: ``workdir``, the shared run's folder once it has ended
well (tests/shared_run.py starts it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from shared_run import RUN, WORKER_KEY, wait_for


@pytest.fixture(scope="session")
def workdir(request) -> Path:
    config = request.config
    if hasattr(config, "workerinput"):
        return wait_for(Path(config.workerinput[WORKER_KEY]))
    return wait_for(config.stash[RUN].folder)
