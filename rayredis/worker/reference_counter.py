"""Per-process reference counts of ObjectRefs and the local cache of object values they keep alive."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class ReferenceCounter:
    """Counts live ObjectRef instances per object ID in this process.

    The raylet holds one reference per process that holds the object: taken implicitly when this
    process created the object (submit or put), or by an ``add_refs`` message when the ref arrived
    from elsewhere (borrowed). When the last local instance dies, ``remove_refs`` goes out and the
    cached value is dropped.
    """

    def __init__(self, send: Callable[[str, Any], None], on_released: Callable[[bytes], None] | None = None):
        self._send = send
        #: Called once the last local ref of an object is gone (a driver's unhandled-error report).
        self._on_released = on_released
        self._counts: dict[bytes, int] = {}
        self._lock = threading.RLock()  # __del__ of a ref may run while this thread holds it
        #: Object blobs (bytes, or read-only views of shared memory) cached while referenced.
        self.values: dict[bytes, Any] = {}
        #: Objects known to be sealed (from earlier wait replies); readiness is permanent while held.
        self.ready: set[bytes] = set()

    def add_local(self, oid: bytes, borrowed: bool) -> None:
        with self._lock:
            n = self._counts.get(oid, 0)
            self._counts[oid] = n + 1
        if n == 0 and borrowed:
            self._send("add_refs", oid)

    def remove_local(self, oid: bytes) -> None:
        with self._lock:
            n = self._counts.get(oid, 0) - 1
            if n > 0:
                self._counts[oid] = n
                return
            self._counts.pop(oid, None)
            self.values.pop(oid, None)
            self.ready.discard(oid)
        if n == 0:
            self._send("remove_refs", oid)
            if self._on_released is not None:
                self._on_released(oid)

    def snapshot_values(self) -> dict[bytes, Any]:
        """A copy of the cache (for a raylet that restarted and must be given the values back)."""
        with self._lock:
            return dict(self.values)

    def holds(self, oid: bytes) -> bool:
        return oid in self._counts

    def count(self) -> int:
        return len(self._counts)
