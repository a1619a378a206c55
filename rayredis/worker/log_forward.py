"""Forward what tasks print to the drivers of their job, as Ray's ``(name pid=N) line`` output."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, TextIO

from rayredis._private.logs import FdRotator
from rayredis.config import get_config
from rayredis.experimental import tqdm_ray
from rayredis.protocol._generated import rayredis_pb2 as pb


class ForwardingStream:
    """Wraps a worker's stdout/stderr: writes go to the log file and, line by line, to the raylet."""

    def __init__(self, original: TextIO, cw: Any, is_err: bool, rotator: FdRotator | None = None):
        self._orig = original
        self._cw = cw
        self._is_err = is_err
        self._local = threading.local()
        self._rotator = rotator

    def write(self, s: str) -> int:
        n = self._orig.write(s)
        if self._rotator is not None:
            self._rotator.wrote(len(s))
        buf = getattr(self._local, "buf", "") + s
        if "\n" in buf:
            *lines, buf = buf.split("\n")
            self._forward(lines)
        self._local.buf = buf
        return n

    def _forward(self, lines: list[str]) -> None:
        ctx = self._cw.ctx
        if not ctx.job_id or not lines:
            return
        name = (ctx.name or "worker").split(".")
        label = name[0] if ctx.actor_id else name[-1]
        try:
            self._cw.raylet.send("logs", pb.LogLines(job_id=ctx.job_id, prefix=f"{label} pid={os.getpid()}",
                                                     lines=lines, is_err=self._is_err))
        except Exception:  # noqa: BLE001 - never let printing fail a task
            pass

    def flush(self) -> None:
        self._orig.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._orig, name)


def install(cw: Any) -> None:
    """Forward the worker's stdout/stderr, and keep their log files under the rotation size cap."""
    cfg = get_config()
    for name, is_err in (("stdout", False), ("stderr", True)):
        stream = getattr(sys, name)
        rotator = FdRotator(stream.fileno(), cfg.log_rotation_max_bytes, cfg.log_rotation_backup_count)
        setattr(sys, name, ForwardingStream(stream, cw, is_err, rotator))


def print_lines(batch: pb.LogLines) -> None:
    """Driver side: show forwarded lines with their task's prefix."""
    out = sys.stderr if batch.is_err else sys.stdout
    for line in batch.lines:
        if tqdm_ray.RAY_TQDM_MAGIC in line and tqdm_ray.handle_line(line):
            continue  # a progress bar's state: drawn by the bar manager, not printed
        print(f"({batch.prefix}) {line}", file=out)
    out.flush()
