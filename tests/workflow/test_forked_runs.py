"""Tests for the tests' own Snakemake runner (helpers.run_forked): exit codes read right from many threads."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from helpers import run_forked


def test_every_exit_code_is_read_right_when_threads_start_and_join_at_once():
    """Unlocked, a start in one thread read another thread's exit status first, which then read
    255: 7 of 400 such runs."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(lambda i: run_forked(time.sleep, (0.01 * (i % 3),), 60), range(400)))
    assert codes == [0] * 400


def test_a_run_past_its_timeout_is_killed():
    start = time.monotonic()
    assert run_forked(time.sleep, (30,), 0.5) is None
    assert time.monotonic() - start < 10
