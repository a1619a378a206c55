"""A driver's failed task results that it never reads are reported when their last ref goes, as
Ray's "Unhandled error (suppress with 'RAY_IGNORE_UNHANDLED_ERRORS=1'): ..." lines."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from rayredis import serialization

#: Either variable, set to anything, silences the reports (Ray's name, and rayredis's), as Ray checks.
SUPPRESS_VARS = ("RAY_IGNORE_UNHANDLED_ERRORS", "RAYREDIS_IGNORE_UNHANDLED_ERRORS")


class UnhandledErrors:
    """The raylet sends a driver the errors of its failed task returns (``failed_returns``); the
    ones still unread when the driver drops the last ref (or already dropped) are printed."""

    def __init__(self, holds: Callable[[bytes], bool], out: TextIO | None = None):
        self._holds = holds
        self._out = out
        self._errors: dict[bytes, bytes] = {}
        self._lock = threading.Lock()

    def failed(self, items: Any) -> None:
        """Reader thread: errors of returns of this driver's tasks (``ObjectData`` with the blob)."""
        for d in items:
            with self._lock:
                self._errors[d.object_id] = d.inline_data
            if not self._holds(d.object_id):  # dropped already (or just now): report it
                self.released(d.object_id)

    def handled(self, oids: Any) -> None:
        """The driver read these objects (``get``) or passed them on (as task arguments)."""
        if not self._errors:
            return
        with self._lock:
            for oid in oids:
                self._errors.pop(oid, None)

    def released(self, oid: bytes) -> None:
        """The driver's last ref to ``oid`` is gone."""
        if not self._errors:
            return
        with self._lock:
            blob = self._errors.pop(oid, None)
        if blob is not None:
            self._report(blob)

    def _report(self, blob: bytes) -> None:
        if any(v in os.environ for v in SUPPRESS_VARS):
            return
        try:
            err: Any = serialization.deserialize(blob)
            out = self._out or sys.stderr
            print(f"Unhandled error (suppress with 'RAY_IGNORE_UNHANDLED_ERRORS=1'): {err}", file=out)
            out.flush()
        except Exception:  # noqa: BLE001 - a report must never break the program (interpreter exit, ...)
            pass
