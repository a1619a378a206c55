"""Per-process log files in the session directory."""

from __future__ import annotations

import logging
import os
import threading
import time

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


class Throttle:
    """Lets a repeated warning through at most once per ``interval_s`` per key, counting the rest."""

    def __init__(self, interval_s: float = 10.0):
        self.interval_s = interval_s
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> int | None:
        """None to stay quiet; else how many were suppressed since the last one let through."""
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(key, (float("-inf"), 0))
            if now - last < self.interval_s:
                self._last[key] = (last, suppressed + 1)
                return None
            self._last[key] = (now, 0)
            return suppressed
