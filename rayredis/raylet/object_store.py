"""The node's object store: sealed immutable objects, inline or in /dev/shm, with reference counts."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from rayredis.exceptions import ObjectStoreFullError
from rayredis.raylet.spill import Spiller, SpillError, choose_victims, copy_fd, object_id_of, spillable

SHM_DIR = "/dev/shm"

PENDING = 0
READY = 1
#: Sealed elsewhere (at ``locations``) and not copied here yet; pulled when a local reader needs it.
REMOTE = 2


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
    #: Other nodes holding this entry alive (granted with an ``ObjectInfo``, returned by ``free``).
    holders: Counter[bytes] = field(default_factory=Counter)
    #: The node on which this entry holds one hold (b"" for none), given back when it is freed.
    held_at: bytes = b""
    #: Nodes with a copy, for a REMOTE entry.
    locations: list[bytes] = field(default_factory=list)
    #: The file holding a spilled object's bytes (its ``shm_name`` is then empty), see ``spill``.
    spilled: str = ""
    #: When the entry was last sealed or read (the store's use counter), for LRU spilling.
    last_use: int = 0
    #: A spill or restore copy of it runs on a thread (``spill_pump``): not chosen again meanwhile.
    busy: bool = False

    def unused(self) -> bool:
        return self.refcount <= 0 and self.pins <= 0 and not self.holders


def shm_path(name: str) -> str:
    return os.path.join(SHM_DIR, name)


class ObjectStore:
    """Reference-counted objects of one node.

    An object is freed (its memory returned, its shared-memory file unlinked) as soon as no process
    holds a reference and no queued task or containing object pins it, so memory is bounded by what
    the program still references. ``freed`` collects IDs of local copies whose Redis locations the
    shell must delete; ``released`` the ``(object, node)`` holds to give back to other nodes.

    Other nodes keep an entry alive through ``holders`` (one count per hold granted to them); an
    entry that was told about by another node holds one hold there (``held_at``) until it is freed.
    """

    def __init__(self, capacity: int, shm_prefix: str, spiller: Spiller | None = None):
        self.capacity = capacity
        self.shm_prefix = shm_prefix
        self.spiller = spiller
        #: What a previous raylet of this node left (it crashed), for its drivers to reclaim
        #: (:meth:`reclaim`) until :meth:`drop_adopted`: spill files, and open segments by fd
        #: (their names are unlinked by the restart's recovery; the fd keeps the pages).
        self.adopted_files: dict[bytes, str] = {}
        self.adopted_segments: dict[bytes, tuple[int, int]] = {}
        if spiller is not None:  # (without spilling, drivers keep their puts mapped and put them again)
            self.adopted_files = spiller.adopt_leftovers(shm_prefix)
            self.adopted_segments = _open_leftovers(shm_prefix)
        self.uses = 0
        self.used = 0
        self.entries: dict[bytes, Entry] = {}
        self.freed: list[bytes] = []
        self.released: list[tuple[bytes, bytes]] = []

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
        if not self._make_room(size, keep=oid):
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
        self.uses += 1
        e.last_use = self.uses
        e.inline = inline
        e.shm_name = shm_name
        e.size = size
        if inline is not None:  # (in place of a reserved segment, such as a put that found /dev/shm full)
            self.used += len(inline) - e.reserved
        if shm_name and e.reserved == 0:
            self.used += size
        e.reserved = 0
        if not e.held_at:
            e.locations = []  # (a copy of another node's object keeps its sources, for eviction)
        for c in contained or ():
            ce = self.entries.get(c)
            if ce is not None:
                ce.pins += 1
                e.contained.append(c)
        if e.unused():
            self._free(oid, e)
        return True

    def evict_secondary(self, need: int) -> int:
        """Drop local copies of objects that other nodes hold (pulled here, no task pinning them)
        until ``need`` bytes are free; they turn REMOTE again (pulled anew if read). Primary copies
        are never evicted. Returns the bytes freed; their locations go to ``freed``."""
        got = 0
        for oid, e in list(self.entries.items()):
            if got >= need:
                break
            if e.state != READY or not e.shm_name or not e.held_at or not e.locations or e.pins > 0:
                continue
            _unlink(e.shm_name)
            self.used -= e.size
            got += e.size
            e.state, e.shm_name = REMOTE, ""
            contained, e.contained = e.contained, []
            for c in contained:
                self.unpin(c)
            self.freed.append(oid)
        return got

    def _make_room(self, size: int, keep: bytes = b"") -> bool:
        """Evict secondary copies, then spill unused primary copies, until ``size`` more bytes fit."""
        if self.used + size > self.capacity:
            self.evict_secondary(self.used + size - self.capacity)
        if self.used + size > self.capacity and self.spiller is not None:
            victims = choose_victims(self.entries.items(), self.used + size - self.capacity, READY, keep)
            for oid in victims:
                self._spill_one(self.entries[oid])
        return self.used + size <= self.capacity

    def _spill_one(self, e: Entry) -> None:
        assert self.spiller is not None
        try:
            path = self.spiller.spill(e.shm_name)
        except SpillError:
            return  # (the disk is full: the object stays in memory, the reserve may fail)
        _unlink(e.shm_name)
        self.used -= e.size
        e.shm_name, e.spilled = "", path

    def ensure_local(self, oid: bytes) -> str:
        """Make a READY entry readable (restore it into shared memory if it was spilled) and mark it
        used; returns ``""`` or why it could not be restored (the store is full of objects in use)."""
        e = self.entries.get(oid)
        if e is None or e.state != READY:
            return ""
        self.uses += 1
        e.last_use = self.uses
        if not e.spilled:
            return ""
        assert self.spiller is not None
        if not self._make_room(e.size, keep=oid):
            return (f"Object {oid.hex()} ({e.size} bytes) was spilled to disk and cannot be restored: "
                    f"{self.used} of {self.capacity} bytes of the object store are in use.")
        name = self.shm_prefix + oid.hex()
        if e.busy:  # (a restore copy on a thread writes that name: it finds this one done and drops its own)
            name += f"-r{os.urandom(3).hex()}"
        try:
            self.spiller.restore(e.spilled, name, e.size)
        except SpillError as exc:
            return f"Object {oid.hex()} was spilled to disk and cannot be restored: {exc}"
        self.used += e.size
        e.shm_name, e.spilled = name, ""
        return ""

    # ---- copies on a thread (spill_pump) ----------------------------------------------------------

    def fits(self, size: int) -> bool:
        """Whether ``size`` more bytes fit, once secondary copies are evicted."""
        if self.used + size > self.capacity:
            self.evict_secondary(self.used + size - self.capacity)
        return self.used + size <= self.capacity

    def victims(self, size: int, keep: bytes) -> list[bytes]:
        """What to spill so that ``size`` more bytes fit (``[]``: spilling cannot make room)."""
        return choose_victims(self.entries.items(), self.used + size - self.capacity, READY, keep)

    def finish_spill(self, oid: bytes, shm_name: str, path: str | None) -> bool:
        """A spill copy of segment ``shm_name`` to ``path`` ended (``None``: it failed, returns
        False): the entry is spilled now, unless it was freed or came into use meanwhile."""
        e = self.entries.get(oid)
        if e is not None and e.shm_name == shm_name:
            e.busy = False
        if path is None:
            return False
        assert self.spiller is not None
        if e is None or e.shm_name != shm_name or not spillable(e, READY):
            self.spiller.delete(path)
            return True
        _unlink(shm_name)
        self.used -= e.size
        e.shm_name, e.spilled = "", path
        return True

    def start_restore(self, oid: bytes) -> tuple[str, str, int]:
        """Reserve room for restoring spilled ``oid`` (the caller made it); returns the segment name
        to copy it into, its spill file and its size."""
        e = self.entries[oid]
        self.used += e.size
        self.uses += 1
        e.last_use = self.uses
        return self.shm_prefix + oid.hex(), e.spilled, e.size

    def finish_restore(self, oid: bytes, shm_name: str, size: int, ok: bool) -> None:
        """The restore copy into ``shm_name`` ended: the entry reads from it now, unless the copy
        failed, or the entry was freed or restored by a synchronous reader meanwhile."""
        e = self.entries.get(oid)
        if e is not None:
            e.busy = False
        if not ok or e is None or not e.spilled:
            self.used -= size
            if ok:
                _unlink(shm_name)
            return
        e.shm_name, e.spilled = shm_name, ""

    # ---- after a restart -------------------------------------------------------------------------

    def reclaim(self, oid: bytes, contained: list[bytes]) -> int:
        """A reconnecting driver's put of ``oid``: seal the copy the previous raylet left (in a new
        segment, else spilled); returns its size, or -1 if there is none."""
        path = self.adopted_files.pop(oid, None)
        fd_size = self.adopted_segments.pop(oid, None)
        if path is None and fd_size is None:
            return -1
        e = self.entries.get(oid)
        if e is None or e.state == READY:
            self._close_adopted(path, fd_size)
            return -1
        assert self.spiller is not None
        try:
            if fd_size is not None:
                fd, size = fd_size
                try:
                    name = self.reserve(oid, size)
                except ObjectStoreFullError:
                    self.spill_adopted(oid, e, self.spiller.spill_fd(fd, self.shm_prefix + oid.hex(), size), size,
                                       contained)
                    return size
                _unlink(name)  # (the leftover's name, if recovery has not unlinked it yet: the fd keeps it)
                try:
                    with open(shm_path(name), "wb") as dst:
                        copy_fd(fd, dst.fileno(), size)
                except OSError:
                    self.abort(oid, name)
                    raise
                self.seal(oid, None, name, size, contained)
                return size
            assert path is not None
            size = self.spiller.take(path)
            spilled: str = path
            path = None  # (it is the entry's now: not deleted below)
            self.spill_adopted(oid, e, spilled, size, contained)
            return size
        except (OSError, SpillError):
            return -1
        finally:
            self._close_adopted(path, fd_size)

    def spill_adopted(self, oid: bytes, e: Entry, path: str, size: int, contained: list[bytes]) -> None:
        """Seal ``e`` as spilled to ``path``."""
        self.seal(oid, b"", "", 0, contained)
        e.inline, e.size, e.spilled = None, size, path

    def _close_adopted(self, path: str | None, fd_size: tuple[int, int] | None) -> None:
        if fd_size is not None:
            os.close(fd_size[0])
        if path is not None and self.spiller is not None:
            self.spiller.delete(path)

    def drop_adopted(self) -> None:
        """The time for drivers to reclaim their puts is over: release what is left."""
        for path in list(self.adopted_files.values()):
            self._close_adopted(path, None)
        for fd_size in self.adopted_segments.values():
            self._close_adopted(None, fd_size)
        self.adopted_files.clear()
        self.adopted_segments.clear()

    def mark_remote(self, oid: bytes, locations: list[bytes], size: int) -> bool:
        """A pending entry's object was sealed on other nodes: it is REMOTE now. False if not pending."""
        e = self.entries.get(oid)
        if e is None or e.state != PENDING:
            return False
        e.state, e.locations, e.size = REMOTE, list(locations), size
        return True

    def hold(self, oid: bytes, node: bytes) -> bool:
        """Grant ``node`` one hold on the entry (False if the entry is unknown)."""
        e = self.entries.get(oid)
        if e is None:
            return False
        e.holders[node] += 1
        return True

    def unhold(self, oid: bytes, node: bytes) -> None:
        e = self.entries.get(oid)
        if e is None or e.holders[node] <= 0:
            if e is not None:
                del e.holders[node]
            return
        e.holders[node] -= 1
        if e.holders[node] <= 0:
            del e.holders[node]
        self._maybe_free(oid, e)

    def drop_holder(self, node: bytes) -> None:
        """``node`` is gone: every hold it had here is void."""
        for oid, e in list(self.entries.items()):
            if node in e.holders:
                del e.holders[node]
                self._maybe_free(oid, e)

    def abort(self, oid: bytes, shm_name: str) -> None:
        """Throw away an unsealed write (a failed attempt that will be retried)."""
        e = self.entries.get(oid)
        if e is None:
            _unlink(shm_name)
            return
        self.used -= e.reserved
        e.reserved = 0
        if e.state != READY:
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

    def sweep(self, oids: list[bytes]) -> None:
        """Drop the temporary pin of entries created while a message was applied (freeing those that
        nothing else came to use)."""
        for oid in oids:
            self.unpin(oid)

    def is_ready(self, oid: bytes) -> bool:
        e = self.entries.get(oid)
        return e is not None and e.state == READY

    def get(self, oid: bytes) -> Entry | None:
        return self.entries.get(oid)

    def close(self) -> None:
        """Unlink every shared-memory segment and delete every spill file (raylet exit)."""
        for e in self.entries.values():
            if e.shm_name:
                _unlink(e.shm_name)
        self.entries.clear()
        self.used = 0
        if self.spiller is not None:
            self.spiller.close()

    # ---- internals ---------------------------------------------------------------------------

    def _maybe_free(self, oid: bytes, e: Entry) -> None:
        if not e.unused():
            return
        if e.state == READY:
            self._free(oid, e)
        elif e.reserved == 0:
            # Pending or remote and nobody wants it: forget the entry; a late seal frees on arrival.
            del self.entries[oid]
            if e.held_at:
                self.released.append((oid, e.held_at))

    def _free(self, oid: bytes, e: Entry) -> None:
        self.entries.pop(oid, None)
        if e.inline is not None:
            self.used -= len(e.inline)
        if e.shm_name:
            self.used -= e.size
            _unlink(e.shm_name)
        if e.spilled and self.spiller is not None:
            self.spiller.delete(e.spilled)
        self.freed.append(oid)
        if e.held_at:
            self.released.append((oid, e.held_at))
        for c in e.contained:
            self.unpin(c)


def _open_leftovers(shm_prefix: str) -> dict[bytes, tuple[int, int]]:
    """Open (fd, size) the segments ``shm_prefix<object id hex>`` a previous raylet left."""
    out: dict[bytes, tuple[int, int]] = {}
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return out
    for name in names:
        oid = object_id_of(name, shm_prefix)
        if oid is None:
            continue
        try:
            fd = os.open(shm_path(name), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        out[oid] = (fd, os.fstat(fd).st_size)
    return out


def _unlink(name: str) -> None:
    try:
        os.unlink(shm_path(name))
    except FileNotFoundError:
        pass
