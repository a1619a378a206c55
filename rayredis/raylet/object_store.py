"""The node's object store: sealed immutable objects, inline or in /dev/shm, with reference counts."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from rayredis.exceptions import ObjectStoreFullError

SHM_DIR = "/dev/shm"

PENDING = 0
READY = 1


@dataclass
class Entry:
    """One object known to this node (pending until its creating task or put seals it)."""

    state: int = PENDING
    inline: bytes | None = None
    shm_name: str = ""
    size: int = 0
    refcount: int = 0
    pins: int = 0
    contained: list[bytes] = field(default_factory=list)
    reserved: int = 0  # bytes reserved by a create that is not sealed yet


def shm_path(name: str) -> str:
    return os.path.join(SHM_DIR, name)


class ObjectStore:
    """Reference-counted objects of one node.

    An object is freed (its memory returned, its shared-memory file unlinked) as soon as no process
    holds a reference and no queued task or containing object pins it, so memory is bounded by what
    the program still references. ``freed`` collects IDs whose Redis entries the shell must delete.
    """

    def __init__(self, capacity: int, shm_prefix: str):
        self.capacity = capacity
        self.shm_prefix = shm_prefix
        self.used = 0
        self.entries: dict[bytes, Entry] = {}
        self.freed: list[bytes] = []

    # ---- lifecycle ---------------------------------------------------------------------------

    def expect(self, oid: bytes, refs: int = 1) -> Entry:
        """Declare an object that a submitted task or put will produce; the submitter holds refs."""
        e = self.entries.get(oid)
        if e is None:
            e = self.entries[oid] = Entry()
        e.refcount += refs
        return e

    def reserve(self, oid: bytes, size: int) -> str:
        """Reserve room for a large object about to be written; returns the shm segment name."""
        if size > self.capacity:
            raise ObjectStoreFullError(
                f"Object of {size} bytes is larger than the node's object store ({self.capacity} "
                f"bytes). Start the cluster with a larger object_store_memory= (or --object-store-"
                f"memory), or split the object."
            )
        if self.used + size > self.capacity:
            raise ObjectStoreFullError(
                f"The object store is full: {self.used} of {self.capacity} bytes are held by objects "
                f"that are still referenced, and {size} more were requested. Drop references to "
                f"objects you no longer need (del ref), or raise object_store_memory=."
            )
        e = self.entries.get(oid)
        if e is None:
            e = self.entries[oid] = Entry()
        self.used += size
        e.reserved += size
        if e.state == READY:
            # A duplicate writer (a late retried attempt) gets its own segment, so it can never
            # truncate memory that readers have mapped; its seal is then refused and unlinked.
            return f"{self.shm_prefix}{oid.hex()}-dup{os.urandom(3).hex()}"
        return self.shm_prefix + oid.hex()

    def seal(self, oid: bytes, inline: bytes | None, shm_name: str, size: int,
             contained: list[bytes] | None = None) -> bool:
        """Mark the object ready. Returns False if it was already sealed (duplicate result)."""
        e = self.entries.get(oid)
        if e is None:
            e = self.entries[oid] = Entry()
        if e.state == READY:
            if shm_name and shm_name != e.shm_name:
                _unlink(shm_name)
            self.used -= e.reserved
            e.reserved = 0
            return False
        e.state = READY
        e.inline = inline
        e.shm_name = shm_name
        e.size = size
        if inline is not None:
            self.used += len(inline)
        if shm_name and e.reserved == 0:
            self.used += size
        e.reserved = 0
        for c in contained or ():
            ce = self.entries.get(c)
            if ce is not None:
                ce.pins += 1
                e.contained.append(c)
        if e.refcount <= 0 and e.pins <= 0:
            self._free(oid, e)
        return True

    def abort(self, oid: bytes, shm_name: str) -> None:
        """Throw away an unsealed write (a failed attempt that will be retried)."""
        e = self.entries.get(oid)
        if e is None:
            _unlink(shm_name)
            return
        self.used -= e.reserved
        e.reserved = 0
        if e.state == PENDING:
            _unlink(shm_name)
            self._maybe_free(oid, e)
        elif shm_name != e.shm_name:
            _unlink(shm_name)  # a duplicate writer's own segment

    def add_ref(self, oid: bytes, n: int = 1) -> None:
        e = self.entries.get(oid)
        if e is not None:
            e.refcount += n

    def remove_ref(self, oid: bytes, n: int = 1) -> None:
        e = self.entries.get(oid)
        if e is None:
            return
        e.refcount -= n
        self._maybe_free(oid, e)

    def pin(self, oid: bytes) -> None:
        e = self.entries.get(oid)
        if e is not None:
            e.pins += 1

    def unpin(self, oid: bytes) -> None:
        e = self.entries.get(oid)
        if e is None:
            return
        e.pins -= 1
        self._maybe_free(oid, e)

    def release_all(self, refs: Counter[bytes]) -> None:
        """A connection closed: drop every reference it still held."""
        for oid, n in refs.items():
            if n > 0:
                self.remove_ref(oid, n)

    # ---- queries -----------------------------------------------------------------------------

    def is_ready(self, oid: bytes) -> bool:
        e = self.entries.get(oid)
        return e is not None and e.state == READY

    def get(self, oid: bytes) -> Entry | None:
        return self.entries.get(oid)

    def close(self) -> None:
        """Unlink every shared-memory segment (raylet exit)."""
        for e in self.entries.values():
            if e.shm_name:
                _unlink(e.shm_name)
        self.entries.clear()
        self.used = 0

    # ---- internals ---------------------------------------------------------------------------

    def _maybe_free(self, oid: bytes, e: Entry) -> None:
        if e.refcount <= 0 and e.pins <= 0 and e.state == READY:
            self._free(oid, e)
        elif e.refcount <= 0 and e.pins <= 0 and e.reserved == 0:
            # Pending and nobody wants it: forget the entry; a late seal frees on arrival.
            del self.entries[oid]

    def _free(self, oid: bytes, e: Entry) -> None:
        self.entries.pop(oid, None)
        if e.inline is not None:
            self.used -= len(e.inline)
        if e.shm_name:
            self.used -= e.size
            _unlink(e.shm_name)
        self.freed.append(oid)
        for c in e.contained:
            self.unpin(c)


def _unlink(name: str) -> None:
    try:
        os.unlink(shm_path(name))
    except FileNotFoundError:
        pass
