"""Clients' pending ``get`` and ``wait`` requests, answered as the node's objects turn ready."""

from __future__ import annotations

from collections.abc import Callable

from rayredis import serialization
from rayredis.exceptions import ObjectStoreFullError
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.connection import Connection
from rayredis.raylet.connection_objects import readable_by
from rayredis.raylet.object_store import READY, REMOTE, ObjectStore
from rayredis.raylet.ports import Timers
from rayredis.raylet.records import GetWait, WaitRequest

WaitKey = tuple[bytes, int]  # (worker id, request id)


def object_data(objects: ObjectStore, oid: bytes) -> pb.ObjectData:
    """How a client reads ``oid``: its inline bytes, its shared-memory segment (restored first if it
    was spilled), an error blob, or ``missing``."""
    e = objects.get(oid)
    if e is None or e.state != READY:
        return pb.ObjectData(object_id=oid, missing=True)
    if e.inline is not None:
        return pb.ObjectData(object_id=oid, inline_data=e.inline, size=len(e.inline))
    why = objects.ensure_local(oid)
    if why:
        blob = serialization.serialize_error(ObjectStoreFullError(why)).to_bytes()
        return pb.ObjectData(object_id=oid, inline_data=blob, size=len(blob))
    return pb.ObjectData(object_id=oid, shm_name=e.shm_name, size=e.size)


def _spilled(objects: ObjectStore, oid: bytes) -> bool:
    e = objects.get(oid)
    return e is not None and bool(e.spilled)


class ObjectWaits:
    """Gets (``gets``, indexed by missing object in ``get_index``) and waits (``waits``, indexed by
    not-ready object in ``wait_index``). Indexes may keep keys of requests already answered or
    forgotten; those are skipped when their object turns ready. ``need`` is called for each awaited
    object that is sealed only on other nodes (the node pulls it)."""

    def __init__(self, objects: ObjectStore, timers: Timers, need: Callable[[bytes], None] | None = None):
        self.objects = objects
        self.timers = timers
        self.need = need
        self.gets: dict[WaitKey, GetWait] = {}
        self.get_index: dict[bytes, set[WaitKey]] = {}
        self.waits: dict[WaitKey, WaitRequest] = {}
        self.wait_index: dict[bytes, set[WaitKey]] = {}
        #: ``restore(oid, then)``: copy a spilled object back off the event loop, then call ``then``
        #: (``SpillPump.restore``); None restores synchronously when the reply is built.
        self.restore: Callable[[bytes, Callable[[], None]], None] | None = None

    def drop(self, worker_id: bytes) -> None:
        """The client left: forget its requests (and stop their timers)."""
        for key in [k for k in self.gets if k[0] == worker_id]:
            self.gets.pop(key, None)
        for key in [k for k in self.waits if k[0] == worker_id]:
            timer = self.waits.pop(key).timer
            if timer is not None:
                timer.cancel()

    def object_ready(self, oid: bytes) -> None:
        for key in self.get_index.pop(oid, ()):
            self._check_get(key, oid)
        for key in self.wait_index.pop(oid, ()):
            w = self.waits.get(key)
            if w is not None:
                w.need -= 1
                if w.need <= 0:
                    self._check_wait(key, force=True)

    # ---- gets ----------------------------------------------------------------------------------

    def get(self, conn: Connection, g: pb.GetRequest) -> None:
        objects = self.objects
        oids = list(g.object_ids)
        missing = {o for o in oids if objects.get(o) is not None and not objects.is_ready(o)}
        spilled = {o for o in oids if o not in missing and _spilled(objects, o)} if self.restore else set()
        missing |= spilled
        key = (conn.worker_id, g.req_id)
        self.gets[key] = GetWait(conn, missing, oids)
        for o in missing:
            self.get_index.setdefault(o, set()).add(key)
        for o in spilled:
            assert self.restore is not None
            self.restore(o, lambda o=o: self._restored(o))  # type: ignore[misc]
        failed = next((o for o in oids if o not in missing and self._is_error(o)), None) if missing else None
        self._check_get(key, failed)
        self._pull(missing)

    def _restored(self, oid: bytes) -> None:
        for key in self.get_index.pop(oid, ()):
            self._check_get(key, oid)

    def _pull(self, oids: set[bytes] | list[bytes]) -> None:
        if self.need is not None:
            for o in oids:
                e = self.objects.get(o)
                if e is not None and e.state == REMOTE:
                    self.need(o)

    def _check_get(self, key: WaitKey, now_ready: bytes | None = None) -> None:
        """Reply to a get once nothing it waits for is missing (O(1) per object that turns ready)."""
        w = self.gets.get(key)
        if w is None:
            return
        if now_ready is not None:
            w.missing.discard(now_ready)
        if w.missing and not (now_ready is not None and self._is_error(now_ready)):
            return  # (an error answers at once, as Ray's get raises without waiting for the rest)
        del self.gets[key]
        conn = w.conn
        reply = conn.out().get_replies.add(req_id=key[1])
        for o in w.oids:
            reply.objects.append(readable_by(conn, object_data(self.objects, o)))
        conn.flush()

    def _is_error(self, oid: bytes) -> bool:
        e = self.objects.get(oid)
        return e is not None and e.inline is not None and \
            serialization.blob_kind(e.inline) == serialization.KIND_ERROR

    def forget_get(self, conn: Connection, req_id: int) -> None:
        self.gets.pop((conn.worker_id, req_id), None)

    # ---- waits ---------------------------------------------------------------------------------

    def wait(self, conn: Connection, w: pb.WaitRequest) -> None:
        key = (conn.worker_id, w.req_id)
        timer = None
        if w.timeout_s >= 0:
            timer = self.timers.call_later(w.timeout_s, self._wait_timeout, key)
        oids = list(w.object_ids)
        fetch = not w.no_fetch
        pending = [o for o in oids if not self._ready_for_wait(o, fetch)]
        need = w.num_returns - (len(oids) - len(pending))
        self.waits[key] = WaitRequest(conn, oids, w.num_returns, timer, need, fetch)
        if need <= 0 or w.timeout_s == 0:
            self._check_wait(key, force=True)
            return
        for o in pending:
            self.wait_index.setdefault(o, set()).add(key)
        if fetch:
            self._pull(pending)

    def object_available(self, oid: bytes) -> None:
        """``oid`` was sealed on another node: it satisfies waits that do not fetch; the gets and
        fetching waits that want it make the node pull it."""
        pull = oid in self.get_index
        keys_of = self.wait_index.get(oid)
        if keys_of:
            for key in list(keys_of):
                w = self.waits.get(key)
                if w is None:
                    continue
                if w.fetch:
                    pull = True
                    continue
                keys_of.discard(key)
                w.need -= 1
                if w.need <= 0:
                    self._check_wait(key, force=True)
            if not keys_of:
                self.wait_index.pop(oid, None)
        if pull and self.need is not None:
            self.need(oid)

    def _ready_for_wait(self, oid: bytes, fetch: bool = True) -> bool:
        e = self.objects.get(oid)
        # Unknown objects are reported (get will raise).
        return e is None or e.state == READY or (not fetch and e.state == REMOTE)

    def _check_wait(self, key: WaitKey, force: bool = False) -> None:
        w = self.waits.get(key)
        if w is None:
            return
        conn, oids, num, timer = w.conn, w.oids, w.num_returns, w.timer
        ready = [o for o in oids if self._ready_for_wait(o, w.fetch)]
        if len(ready) < num and not force:
            return
        del self.waits[key]
        if timer is not None:
            timer.cancel()
        for o in oids:
            keys_of = self.wait_index.get(o)
            if keys_of is not None:
                keys_of.discard(key)
                if not keys_of:
                    del self.wait_index[o]
        conn.out().wait_replies.add(req_id=key[1], ready=ready[:num] if num else ready)
        conn.flush()

    def _wait_timeout(self, key: WaitKey) -> None:
        self._check_wait(key, force=True)
