"""Rebuilding objects lost with a node: the owner re-runs the task that made them (sans-I/O)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rayredis import ids
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.object_store import PENDING, REMOTE
from rayredis.store.tables import TaskState

if TYPE_CHECKING:
    from rayredis.raylet.node_manager import NodeManager
    from rayredis.raylet.records import TaskRecord

logger = logging.getLogger(__name__)

#: A holder that answered with locations this node has as dead (the two nodes' views of the node
#: table differ for up to a heartbeat or two) is asked again this often, this many times at most.
REASK_S = 0.5
REASK_LIMIT = 10


class Lineage:
    """The tasks this node owns whose return objects live only on other nodes.

    When a forwarded task ends and some of its returns stay where they were made (large values),
    its record is kept here, with the pins on its arguments, as long as any of those returns is
    known here: if the node holding them dies, :meth:`recover` runs the task again (the same task
    and object IDs, a new attempt), and its own lost arguments are rebuilt the same way when the
    re-run needs them, recursively. Tasks with ``max_retries=0`` keep no lineage (as in Ray).
    A node that is not the owner asks the node it holds the object at (``Entry.held_at``), which
    recovers it or asks further; an object with no lineage on a live node (its owner died) goes to
    :class:`~rayredis.raylet.orphans.Orphans` (rebuilt from the task table, or failed saying why).
    """

    def __init__(self, nm: NodeManager):
        self.nm = nm
        self.records: dict[bytes, TaskRecord] = {}
        #: Objects whose rebuild this node asked another node for (answers arrive as ObjectInfo).
        self.asked: set[bytes] = set()
        #: How often each of those was asked again (see ``REASK_LIMIT``).
        self.reasked: dict[bytes, int] = {}

    def keep(self, rec: TaskRecord) -> bool:
        """Keep ``rec`` (and its pins) if some of its returns live only elsewhere; True if kept."""
        if rec.spec.kind != pb.NORMAL_TASK or rec.spec.max_retries == 0:
            return False
        objects = self.nm.objects
        if any((e := objects.get(o)) is not None and e.state == REMOTE for o in rec.return_ids):
            self.records[rec.spec.task_id] = rec
            return True
        return False

    def gone(self, oids: list[bytes]) -> None:
        """Entries were freed: drop the lineage of tasks none of whose returns is known any more."""
        objects = self.nm.objects
        for oid in oids:
            self.asked.discard(oid)
            self.reasked.pop(oid, None)
            tid = ids.task_of_object(oid)
            rec = self.records.get(tid)
            if rec is not None and all(objects.get(o) is None for o in rec.return_ids):
                del self.records[tid]
                for p in rec.pinned:
                    objects.unpin(p)

    def recover(self, oid: bytes, why: str) -> None:
        """``oid`` is known here but no live node has a copy: rebuild it, ask for it, or fail it."""
        nm = self.nm
        e = nm.objects.get(oid)
        if e is None or e.state not in (REMOTE, PENDING):
            return
        tid = ids.task_of_object(oid)
        if tid in nm.tasks:
            return  # the task that makes it is queued or runs (its rebuild, say): it will seal it
        rec = self.records.get(tid)
        if rec is not None:
            self._rerun(rec, why)
            return
        holder = e.held_at
        if holder and nm.view.alive(holder) and holder not in e.locations:
            if oid not in self.asked:
                self.asked.add(oid)
                e.state, e.locations = PENDING, []
                nm.peers.resolve(oid, holder)  # it rebuilds it (or asks its own holder) and tells us
                return
            # Asked already, and the holder answered with locations that are dead here: it has not
            # seen them die yet (its view lags), and will rebuild the object once it does.
            n = self.reasked.get(oid, 0)
            if n < REASK_LIMIT:
                self.reasked[oid] = n + 1
                e.state, e.locations = PENDING, []
                nm.timers.call_later(REASK_S, self._reask, oid, holder)
                return
        nm.orphans.recover(oid, why)  # no live node keeps its lineage: the task table's, or an error

    def _reask(self, oid: bytes, holder: bytes) -> None:
        e = self.nm.objects.get(oid)
        if e is None or e.state != PENDING or e.locations:
            return  # answered meanwhile
        if self.nm.view.alive(holder):
            self.nm.peers.resolve(oid, holder)
        else:
            self.reasked[oid] = REASK_LIMIT
            self.recover(oid, f"node {holder.hex()[:8]}, which was asked for it, died")
            self.nm.drain_freed()
            self.nm.request_schedule()

    def _rerun(self, rec: TaskRecord, why: str) -> None:
        nm = self.nm
        tid = rec.spec.task_id
        del self.records[tid]
        logger.info("rebuilding the returns of %s (%s): %s", rec.spec.name, tid.hex(), why)
        for o in rec.return_ids:
            e = nm.objects.get(o)
            if e is not None and e.state == REMOTE:
                e.state, e.locations = PENDING, []
                if e.held_at:
                    # The hold on the copy that could not be read goes back (if its node may still
                    # be there), so the rebuilt copy's hold is taken rather than returned as a
                    # duplicate: returned, it let the rebuilding node free its copy before this
                    # node's pull reached it, which failed ("no longer has it") into another
                    # rebuild, and so on, each spending one of the task's retries.
                    if nm.view.alive(e.held_at):
                        nm.objects.released.append((o, e.held_at))
                    e.held_at = b""
        rec.forwarded_to = b""
        rec.retries_used += 1
        rec.attempt += 1
        rec.state = TaskState.PENDING
        nm.tasks[tid] = rec
        nm.writer.task_state(tid, TaskState.PENDING, rec.attempt)
        nm.placement.enqueue(rec)
        nm.request_schedule()
