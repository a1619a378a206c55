"""Objects whose owner node died: rebuilt from the task table in Redis, one claimed re-run per attempt (sans-I/O)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from google.protobuf.message import DecodeError

from rayredis import exceptions, ids, serialization
from rayredis.config import get_config
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.object_store import PENDING
from rayredis.store.tables import ObjectEntry, TaskEntry, TaskState

if TYPE_CHECKING:
    from rayredis.raylet.node_manager import NodeManager

logger = logging.getLogger(__name__)

#: Rounds of read-and-claim (or fetch) for one task before its readers get an error: each round
#: follows a copy that was freed before it could be fetched, or a claimer that died.
MAX_ROUNDS = 20


class TaskTable(Protocol):
    """The I/O side (``task_table.TaskTableClient``): task and object table reads, the claim script
    and watches on the object channel, each answered by calling back into :class:`Orphans`."""

    def read(self, tid: bytes, oids: list[bytes]) -> None:
        """Read ``rr:task:<tid>`` and the ``rr:obj`` entry of each of ``oids``; ends in
        :meth:`Orphans.read_done` or :meth:`Orphans.io_failed`."""
        ...

    def claim(self, tid: bytes, attempt: int) -> None:
        """Run ``task_claim`` for the attempt after ``attempt``; ends in :meth:`Orphans.claim_done`
        or :meth:`Orphans.io_failed`."""
        ...

    def watch(self, oid: bytes) -> None:
        """Call :meth:`Orphans.published` when a copy of ``oid`` is announced (and once the
        subscription is in place: subscribe, then rescan)."""
        ...

    def unwatch(self, oid: bytes) -> None: ...


@dataclass
class Rebuild:
    """The objects of one task this node wants back, and where their recovery stands."""

    why: str
    oids: set[bytes] = field(default_factory=set)
    #: A read or a claim is in flight (its answer comes back through the TaskTable).
    busy: bool = False
    claiming: bool = False
    #: A copy was announced while a read was in flight: read again when it returns.
    again: bool = False
    #: The live node that runs the task now (another node's claim, or a forwarded run): wait for it.
    waiting_on: bytes = b""
    rounds: int = 0
    owner: bytes = b""
    spec: pb.TaskSpec | None = None


class Orphans:
    """Rebuilds objects that are lost with their owner node, from the lineage the task table holds.

    :meth:`recover` is called for an object that this node knows, that no live node has a copy of
    and whose lineage no live node keeps (the owner that would re-run it died). The task that made
    it is found from the object ID (``ids.task_of_object``) and read from Redis together with the
    object's entry. Then, for each task: a copy on a live node is fetched from that node (asked
    like an owner, so it holds the copy for this node); a task that a live node runs is waited for
    (its seal is announced on the object channel); otherwise this node claims the next attempt with
    a compare-and-set on the entry's ``attempt`` (``task_claim.lua``), so of the nodes that read the
    same attempt exactly one re-runs the task, as its new owner, and the others wait for its copy.
    The re-run's arguments that this node does not know are recovered the same way first (through
    the usual argument wait), so a chain is rebuilt from its first lost link.

    Not rebuilt (the readers get an error naming why): ``put`` objects and the results of actor
    methods (:class:`~rayredis.exceptions.OwnerDiedError`), tasks with ``max_retries=0`` or whose
    ``max_retries`` are used up (each attempt so far counts one, as the task's own retries do), and
    tasks whose entry has expired (``task_table_ttl_s`` after they ended).
    """

    def __init__(self, nm: NodeManager, table: TaskTable | None = None):
        self.nm = nm
        self.table = table
        self.me = nm.node_id
        self.rebuilds: dict[bytes, Rebuild] = {}
        #: Objects asked of a live node that the object table lists with a copy: oid -> node.
        self.fetching: dict[bytes, bytes] = {}
        #: Nodes that answered a fetch that they no longer had the object, at the task attempt the
        #: table showed then: not asked again until the attempt moves on.
        self.refused: dict[bytes, tuple[int, set[bytes]]] = {}
        self._attempt_seen: dict[bytes, int] = {}

    @property
    def active(self) -> bool:
        return bool(self.rebuilds or self.fetching)

    # ---- events from the core -------------------------------------------------------------------

    def recover(self, oid: bytes, why: str) -> None:
        """No live node has ``oid`` nor keeps its lineage: rebuild it from the task table, or fail it."""
        nm = self.nm
        e = nm.objects.get(oid)
        if e is None or oid in self.fetching:
            return
        holder = e.held_at
        if ids.is_put_object(oid) or self.table is None:
            if ids.is_put_object(oid):
                exc: exceptions.ObjectLostError = exceptions.OwnerDiedError(oid.hex(), (
                    f"Cause: {why}; its owner{_node(holder)} died, and it is a put object, which has no "
                    "lineage to rebuild it from."))
            else:
                exc = exceptions.ObjectLostError(oid.hex(), (
                    f"Cause: {why}; it cannot be rebuilt: no node that is alive keeps the lineage of the "
                    "task that made it (its owner died?)."))
            self._seal_error(oid, exc)
            return
        e.state, e.locations = PENDING, []
        if holder:
            if nm.view.alive(holder):
                nm.objects.released.append((oid, holder))  # the hold it had there is given back
            e.held_at = b""
        tid = ids.task_of_object(oid)
        r = self.rebuilds.get(tid)
        if r is None:
            r = self.rebuilds[tid] = Rebuild(why=why, owner=holder)
        if oid in r.oids:
            return
        r.oids.add(oid)
        if r.waiting_on:
            self._watch({oid})
        elif not r.claiming:
            self._read(tid, r)

    def answer_lost(self, oid: bytes, sender: bytes) -> bool:
        """``sender`` answered a fetch for ``oid`` that it no longer has it: True if this was ours
        (the object is recovered again rather than failed)."""
        if self.fetching.get(oid) != sender:
            return False
        del self.fetching[oid]
        attempt = self._attempt_seen.pop(oid, -1)
        seen, nodes = self.refused.get(oid, (attempt, set()))
        self.refused[oid] = (attempt, nodes | {sender} if seen == attempt else {sender})
        self.recover(oid, f"the copy at node {sender.hex()[:8]} was freed before it could be fetched")
        return True

    def node_gone(self, node: bytes) -> None:
        """``node`` died: objects waited for from it are recovered from the task table."""
        nm = self.nm
        for oid, e in list(nm.objects.entries.items()):
            if e.held_at == node and e.state == PENDING and ids.task_of_object(oid) not in nm.tasks \
                    and self.fetching.get(oid) != node:
                nm.lineage.asked.discard(oid)
                self.recover(oid, f"node {node.hex()[:8]}, which was to tell this node about it, died")
        for oid, n in list(self.fetching.items()):
            if n == node:
                del self.fetching[oid]
                entry = nm.objects.get(oid)
                if entry is not None:
                    entry.held_at = b""
                self.recover(oid, f"node {node.hex()[:8]}, which had a copy, died")
        for tid, r in list(self.rebuilds.items()):
            if r.waiting_on == node:
                r.waiting_on = b""
                self._read(tid, r)

    def published(self, oid: bytes) -> None:
        """A copy of a watched object was announced: look again."""
        tid = ids.task_of_object(oid)
        r = self.rebuilds.get(tid)
        if r is None or oid not in r.oids or r.claiming:
            return
        if r.busy:
            r.again = True
            return
        r.waiting_on = b""
        self._read(tid, r)

    def sweep(self) -> None:
        """Forget objects that were rebuilt, fetched or freed meanwhile (``NodeManager.drain_freed``)."""
        objects = self.nm.objects
        for oid in [o for o in self.fetching if not _pending(objects.get(o))]:
            del self.fetching[oid]
            self._attempt_seen.pop(oid, None)
        for oid in [o for o in self.refused if not _pending(objects.get(o))]:
            del self.refused[oid]
        for tid, r in list(self.rebuilds.items()):
            done = {o for o in r.oids if not _pending(objects.get(o))}
            if done:
                r.oids -= done
                self._unwatch(done)
            if not r.oids and not r.claiming:
                del self.rebuilds[tid]

    # ---- answers from the task table ------------------------------------------------------------

    def read_done(self, tid: bytes, task: TaskEntry | None, objs: dict[bytes, ObjectEntry | None]) -> None:
        r = self.rebuilds.get(tid)
        if r is None:
            return
        r.busy = False
        if r.again:
            r.again = False
            self._read(tid, r)
            return
        view = self.nm.view
        attempt = task.attempt if task is not None else -1
        for oid in sorted(r.oids):
            o = objs.get(oid)
            seen, refused = self.refused.get(oid, (attempt, set()))
            live = sorted(n for n in (bytes.fromhex(h) for h in (o.locations if o else ())) if n != self.me
                          and view.alive(n) and (seen != attempt or n not in refused))
            if live:  # a copy on a live node (another node rebuilt it, or it was never lost)
                r.oids.discard(oid)
                self._unwatch({oid})
                self.fetching[oid] = live[0]
                self._attempt_seen[oid] = attempt
                self.nm.peers.resolve(oid, live[0])  # it answers with a hold on its copy (or "lost")
        if not r.oids:
            self._done(tid)
            return
        spec = _spec(task)
        if task is None or spec is None:
            self._fail(tid, r, exceptions.ObjectReconstructionFailedLineageEvictedError, (
                f"its owner{_node(r.owner)} died, and the task that made it is no longer in the task table "
                f"(entries expire task_table_ttl_s={self._ttl()} s after the task ended)."))
            return
        r.spec = spec
        if not r.owner:
            r.owner = spec.submitter_node
        label = f"task {spec.name!r} ({tid.hex()})"
        if spec.kind != pb.NORMAL_TASK:
            what = f"actor method {spec.method_name!r}" if spec.kind == pb.ACTOR_TASK else "an actor constructor"
            self._fail(tid, r, exceptions.OwnerDiedError, (
                f"Cause: {r.why}; its owner{_node(r.owner)} died, and it is the result of {what} (task "
                f"{tid.hex()}), which cannot be re-executed from the task table: its value depends on the "
                "actor's state."))
            return
        if spec.max_retries == 0:
            self._fail(tid, r, exceptions.ObjectReconstructionFailedError, (
                f"Cause: {r.why}; its owner{_node(r.owner)} died, and {label} has max_retries=0, so it is "
                "not rebuilt from lineage."))
            return
        if task.state is TaskState.CANCELLED:
            self._fail(tid, r, None, tid.hex())
            return
        runner = bytes.fromhex(task.node) if task.node else b""
        if task.state is TaskState.PENDING and runner and runner != self.me and view.alive(runner):
            r.waiting_on = runner  # its claimer, or the node it was forwarded to, runs it: wait for the copy
            self._watch(r.oids)
            return
        if task.state is TaskState.PENDING and runner == self.me and tid in self.nm.tasks:
            return  # this node runs it already: its returns are sealed here
        if spec.max_retries != -1 and task.attempt >= spec.max_retries:
            self._fail(tid, r, exceptions.ObjectReconstructionFailedMaxAttemptsExceededError, (
                f"Cause: {r.why}; its owner{_node(r.owner)} died, and {label} has used its "
                f"max_retries={spec.max_retries} ({task.attempt} attempts after the first)."))
            return
        r.rounds += 1
        if r.rounds > MAX_ROUNDS:
            self._fail(tid, r, exceptions.ObjectReconstructionFailedError, (
                f"Cause: {r.why}; rebuilding {label} from the task table was tried {MAX_ROUNDS} times "
                "without keeping a copy (its copies were freed, or its claimers died, before it was fetched)."))
            return
        r.busy = r.claiming = True
        assert self.table is not None
        self.table.claim(tid, task.attempt)

    def claim_done(self, tid: bytes, won: bool, attempt: int, holder: bytes) -> None:
        """The claim of attempt ``attempt`` (won) or the entry's current ``attempt`` and node (lost;
        ``attempt`` -1: the entry is gone)."""
        r = self.rebuilds.get(tid)
        if r is None:
            return
        r.busy = r.claiming = False
        if won:
            assert r.spec is not None
            self._rerun(tid, r, r.spec, attempt)
            return
        if attempt < 0:
            self._fail(tid, r, exceptions.ObjectReconstructionFailedLineageEvictedError, (
                f"its owner{_node(r.owner)} died, and the task that made it left the task table (entries "
                f"expire task_table_ttl_s={self._ttl()} s after the task ended)."))
            return
        if not r.oids:
            del self.rebuilds[tid]
            return
        if holder and holder != self.me and self.nm.view.alive(holder):
            r.waiting_on = holder  # another node claimed it first (or retries it): wait for its copy
            self._watch(r.oids)
            return
        self._read(tid, r)

    def io_failed(self, tid: bytes, why: str) -> None:
        r = self.rebuilds.get(tid)
        if r is None:
            return
        self._fail(tid, r, exceptions.ObjectReconstructionFailedError, (
            f"Cause: {r.why}; its owner{_node(r.owner)} died, and the task table could not be read to "
            f"rebuild it: {why}"))

    # ---- internals ------------------------------------------------------------------------------

    def _read(self, tid: bytes, r: Rebuild) -> None:
        if r.busy:
            r.again = True
            return
        r.busy = True
        assert self.table is not None
        self.table.read(tid, sorted(r.oids))

    def _rerun(self, tid: bytes, r: Rebuild, spec: pb.TaskSpec, attempt: int) -> None:
        """This node holds the claim: submit the task as its own (the same IDs, the claimed attempt)."""
        nm = self.nm
        objects = nm.objects
        del self.rebuilds[tid]
        self._unwatch(r.oids)
        if tid in nm.tasks:
            return
        logger.info("rebuilding the returns of %s (%s) from the task table, attempt %d: %s",
                    spec.name, tid.hex(), attempt, r.why)
        spec.attempt = attempt
        spec.submitter_node = self.me
        unknown = [o for o in [a.object_id for a in spec.args if a.object_id] + list(spec.nested_refs)
                   if objects.get(o) is None]
        for o in unknown:
            objects.expect(o, refs=0)  # pinned by the task below; recovered like its returns
        nm.submit(b"", spec)
        rec = nm.tasks.get(tid)
        if rec is not None:
            rec.retries_used = attempt
            for o in rec.return_ids:  # nobody is connected to hold them: only the readers' refs count
                nm.unowned_refs[o] -= 1
                if nm.unowned_refs[o] <= 0:
                    del nm.unowned_refs[o]
                objects.remove_ref(o)
        for o in unknown:
            self.recover(o, f"an argument of the rebuilt task {spec.name!r} ({tid.hex()}) is not known here")
        nm.drain_freed()
        nm.request_schedule()

    def _fail(self, tid: bytes, r: Rebuild, kind: type[exceptions.ObjectLostError] | None, reason: str) -> None:
        """Seal ``kind(oid, reason)`` for each wanted object (``None``: the task was cancelled)."""
        del self.rebuilds[tid]
        self._unwatch(r.oids)
        for oid in sorted(r.oids):
            exc = exceptions.TaskCancelledError(reason) if kind is None else kind(oid.hex(), reason)
            self._seal_error(oid, exc)
        self.nm.drain_freed()
        self.nm.request_schedule()

    def _done(self, tid: bytes) -> None:
        r = self.rebuilds.pop(tid, None)
        if r is not None:
            self._unwatch(r.oids)

    def _seal_error(self, oid: bytes, exc: exceptions.RayError) -> None:
        blob = serialization.serialize_error(exc).to_bytes()
        self.nm.seal(oid, blob, "", len(blob))

    def _watch(self, oids: set[bytes]) -> None:
        assert self.table is not None
        for o in sorted(oids):
            self.table.watch(o)

    def _unwatch(self, oids: set[bytes]) -> None:
        if self.table is not None:
            for o in sorted(oids):
                self.table.unwatch(o)

    def _ttl(self) -> int:
        return get_config().task_table_ttl_s


def _pending(e: object) -> bool:
    return e is not None and getattr(e, "state", None) == PENDING


def _node(node: bytes) -> str:
    return f", node {node.hex()[:8]}," if node else ""


def _spec(task: TaskEntry | None) -> pb.TaskSpec | None:
    if task is None or not task.spec:
        return None
    try:
        return pb.TaskSpec.FromString(task.spec)
    except DecodeError:
        return None
