"""Logging for rule scripts: messages and errors go to the rule's log file and stderr.

An error the user can fix (:class:`~truthmap.files.InputError`: a bad file,
config value or model folder) ends the job with its one-line message, a hint
where there is one, and exit status 1; any other exception keeps its
traceback, since it is a bug to report.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TextIO


class _Tee:
    """A text stream that writes to several streams."""

    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def setup(log_path: str | os.PathLike, name: str) -> logging.Logger:
    """Send log records and uncaught tracebacks to ``log_path`` and to stderr.

    Also makes Hugging Face libraries offline and quiet: nothing is fetched
    from a hub, and no progress bars fill the logs.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 (lives as long as the job)
    sys.stderr = _Tee(log_file, sys.__stderr__)  # type: ignore[assignment]
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
        force=True,
    )
    sys.excepthook = _one_line_for_input_errors
    return logging.getLogger(name)


def input_error_lines(err: BaseException) -> str:
    """The lines an :class:`InputError` ends a job with: ``error: ...`` and ``hint: ...``."""
    hint = getattr(err, "hint", None)
    return f"error: {err}\n" + (f"hint: {hint}\n" if hint else "")


def _one_line_for_input_errors(kind, err, tb) -> None:
    from truthmap.files import InputError

    if isinstance(err, InputError):
        sys.stderr.write(input_error_lines(err))
        sys.stderr.flush()
    else:
        sys.__excepthook__(kind, err, tb)


def progress_logger(logger: logging.Logger, what: str, every: float = 0.1):
    """A ``progress(done, total)`` callback that logs about every ``every`` of the total."""
    state = {"next": 0.0}

    def report(done: int, total: int) -> None:
        if total and (done / total >= state["next"] or done == total):
            logger.info("%s: %d/%d", what, done, total)
            state["next"] = done / total + every

    return report
