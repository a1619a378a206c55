"""Per-process log files in the session directory."""

from __future__ import annotations

import logging
import logging.handlers
import os
import threading
import time

from rayredis.config import get_config


def setup_process_logging(session_dir: str, name: str) -> str:
    """Send this process's ``logging`` output to ``<session>/logs/<name>.log`` (size-capped, rotated
    as ``log_rotation_max_bytes``/``log_rotation_backup_count`` say); returns the path."""
    path = os.path.join(session_dir, "logs", f"{name}.log")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cfg = get_config()
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=cfg.log_rotation_max_bytes,
                                                   backupCount=cfg.log_rotation_backup_count)
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


def shift_backups(path: str, backup_count: int) -> None:
    """``path.{N-1}`` -> ``path.N``, ..., ``path`` -> ``path.1`` (the oldest beyond N is dropped)."""
    for i in range(backup_count - 1, 0, -1):
        if os.path.exists(f"{path}.{i}"):
            os.replace(f"{path}.{i}", f"{path}.{i + 1}")
    if backup_count > 0:
        os.replace(path, f"{path}.1")
    else:
        os.remove(path)


class FdRotator:
    """Rotates the file behind one of this process's file descriptors (a worker's stdout/stderr,
    which its raylet pointed at ``<session>/logs/worker-*.out|.err``) once it is over the size cap:
    the file moves to ``.1`` and the descriptor is pointed at a fresh file with ``dup2``, so
    output written to the descriptor by C code or subprocesses lands in the new file too."""

    def __init__(self, fd: int, max_bytes: int, backup_count: int, check_every: int = 1 << 20):
        self.fd = fd
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.check_every = min(check_every, max(1, max_bytes))
        self._since_check = 0
        self._lock = threading.Lock()
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        self.path = path if path.startswith("/") and os.path.isfile(path) else ""  # not a pipe or tty

    def wrote(self, n: int) -> None:
        """Account ``n`` bytes written; now and then, rotate if the file is over the cap."""
        if not self.path or self.max_bytes <= 0:
            return
        self._since_check += n
        if self._since_check < self.check_every:
            return
        with self._lock:
            self._since_check = 0
            try:
                if os.fstat(self.fd).st_size <= self.max_bytes:
                    return
                shift_backups(self.path, self.backup_count)
                new = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(new, self.fd)
                os.close(new)
            except OSError:
                pass  # a log that cannot rotate must not fail the task that prints
