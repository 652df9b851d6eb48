"""The real workflow on the tiny test config (tests/e2e/config.yaml), run once per session
and shared by every test here that needs finished results."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fixture_data import TEST_CONFIG
from helpers import snakemake


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("e2e")
    shutil.copy(TEST_CONFIG, wd / "config.yaml")
    done = snakemake(wd, wd / "config.yaml", timeout=1800)  # every stage, resampling included
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return wd
