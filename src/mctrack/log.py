"""Logging for workflow scripts: one log file per job plus stderr."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from pathlib import Path


def setup_logging(log_file: str | os.PathLike | None, name: str = "mctrack") -> logging.Logger:
    """Send ``mctrack`` log records (INFO and up) to ``log_file`` and stderr; return the stage logger.

    Also routes uncaught exceptions into the log file, so a failed job's log
    says why it failed, and turns SIGTERM into ``SystemExit`` so that
    ``finally`` blocks (atomic writes) clean up when Snakemake stops the job.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    root = logging.getLogger("mctrack")
    root.handlers.clear()
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(logging.INFO)
    logger = logging.getLogger(name)

    def hook(exc_type, exc, tb):
        logger.error("failed", exc_info=(exc_type, exc, tb))

    sys.excepthook = hook

    def terminate(signum, frame):  # Snakemake stops jobs with SIGTERM: unwind so temporary files are removed
        raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError):  # only possible in the main thread
        signal.signal(signal.SIGTERM, terminate)
    return logger
