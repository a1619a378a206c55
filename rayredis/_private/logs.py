"""Per-process log files in the session directory."""

from __future__ import annotations

import logging
import os

from rayredis.config import get_config


def setup_process_logging(session_dir: str, name: str) -> str:
    """Send this process's ``logging`` output to ``<session>/logs/<name>.log``; returns the path."""
    path = os.path.join(session_dir, "logs", f"{name}.log")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s:%(lineno)d %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(get_config().log_level)
    return path
