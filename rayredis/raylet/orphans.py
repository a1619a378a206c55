"""Objects whose owner node died: rebuilt from the task table in Redis, one claimed re-run per attempt (sans-I/O)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from google.protobuf.message import DecodeError

from rayredis import exceptions, ids, serialization
from rayredis.config import get_config
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.object_store import PENDING, READY
from rayredis.store.tables import ObjectEntry, TaskEntry, TaskState

if TYPE_CHECKING:
    from rayredis.raylet.node_manager import NodeManager

logger = logging.getLogger(__name__)

#: Claims one recovery may make before its readers get an error (a safety net: every claim, won or
#: lost, uses up an attempt, so ``max_retries`` bounds the rounds of a task that has a bound).
MAX_ROUNDS = 20

#: What to do instead, named in the errors of objects that cannot outlive their owner.
PUT_ALTERNATIVE = ("To have a value outlive the process and node that made it, return it from a task "
                   "instead of calling put(): task results are rebuilt from the task table.")


class TaskTable(Protocol):
    """The I/O side (``task_table.TaskTableClient``): one read and the claim script, each answered
    by calling back into :class:`Orphans`."""

    def read(self, tid: bytes, oids: list[bytes]) -> None:
        """Read ``rr:task:<tid>`` and the ``rr:obj`` entry of each of ``oids``; ends in
        :meth:`Orphans.read_done` or :meth:`Orphans.io_failed`."""
        ...

    def claim(self, tid: bytes, attempt: int) -> None:
        """Run ``task_claim`` for the attempt after ``attempt``; ends in :meth:`Orphans.claim_done`
        or :meth:`Orphans.io_failed`."""
        ...


@dataclass
class Rebuild:
    """The objects made by (or put inside) one task that this node wants back, and where their
    recovery stands."""

    why: str
    oids: set[bytes] = field(default_factory=set)
    #: A read or a claim is in flight (its answer comes back through the TaskTable).
    busy: bool = False
    #: An object was added while a read was in flight: read again when it returns.
    again: bool = False
    rounds: int = 0
    #: The node this node held the objects at when they were lost (b"": none or unknown).
    holder: bytes = b""
    spec: pb.TaskSpec | None = None


class Orphans:
    """Rebuilds objects that are lost with their owner node, from the lineage the task table holds.

    :meth:`recover` is called (by ``Lineage.recover``) for an object known here that no live node
    serves and whose lineage no live node keeps: its owner node, which would re-run the task,
    died (or answers no more). The task that made it (``ids.task_of_object``) is read from Redis
    together with the object's entry, then:

    - a copy on a live node (``rr:obj`` locations) is asked for, like an owner is (the node
      answers with a hold on its copy, or that it no longer has it);
    - a task the table has PENDING on a live node (another node's claim, or a run the dead owner
      forwarded there) is asked of that node, which describes the result once it is sealed;
    - otherwise this node claims the next attempt with a compare-and-set on the entry's
      ``attempt`` (``task_claim.lua``), so of the nodes that read one attempt exactly one re-runs
      the task, as its new owner (the others then find it PENDING there and ask it). The re-run's
      arguments unknown here are recovered the same way, so a chain is rebuilt from its first
      lost link.

    A node that answers it does not have the object is not asked again at that attempt, so each
    round ends in a claim at worst, and every claim (won here or elsewhere) uses up an attempt of
    the task's ``max_retries``.

    Not rebuilt (the readers get an error naming why, and what to do instead): ``put`` objects
    that no live node has a copy of (:class:`~rayredis.exceptions.OwnerDiedError` when the node
    that held them died), results of actor methods (``OwnerDiedError`` when their owner died, as
    in Ray), tasks with ``max_retries=0`` or whose ``max_retries`` are used up (every attempt so
    far counts), cancelled tasks, and tasks whose entry has expired (``task_table_ttl_s`` after
    they ended).
    """

    def __init__(self, nm: NodeManager, table: TaskTable | None = None):
        self.nm = nm
        self.table = table
        self.me = nm.node_id
        self.rebuilds: dict[bytes, Rebuild] = {}
        #: Objects asked of a live node (a copy, a runner or a claimer): oid -> node.
        self.fetching: dict[bytes, bytes] = {}
        #: Nodes that answered such a request that they do not have the object, at the task
        #: attempt the table showed then: not asked again until the attempt moves on.
        self.refused: dict[bytes, tuple[int, set[bytes]]] = {}
        self._attempt_seen: dict[bytes, int] = {}

    @property
    def active(self) -> bool:
        return bool(self.rebuilds or self.fetching or self.refused)

    # ---- events from the core -------------------------------------------------------------------

    def recover(self, oid: bytes, why: str) -> None:
        """No live node serves ``oid`` nor keeps its lineage: rebuild it from the task table, or fail it."""
        nm = self.nm
        e = nm.objects.get(oid)
        if e is None or e.state == READY or oid in self.fetching:
            return
        holder = e.held_at
        if self.table is None:  # (unit tests of other parts: no task table to read)
            if ids.is_put_object(oid):
                exc: exceptions.ObjectLostError = self._put_error(oid, why, holder)
            else:
                exc = exceptions.ObjectReconstructionFailedError(oid.hex(), (
                    f"Cause: {why}; it cannot be rebuilt: no node that is alive keeps the lineage of the "
                    "task that made it (its owner died?)."))
            self._seal_error(oid, exc, drain=False)
            return
        e.state, e.locations = PENDING, []
        if holder:
            if nm.view.alive(holder):
                nm.objects.released.append((oid, holder))  # the hold it had there is given back
            e.held_at = b""
        tid = ids.task_of_object(oid)
        r = self.rebuilds.get(tid)
        if r is None:
            r = self.rebuilds[tid] = Rebuild(why=why, holder=holder)
        if oid in r.oids:
            return
        r.oids.add(oid)
        if r.busy:
            r.again = True  # (after a claim, the re-run makes every return; after a read, read again)
        else:
            self._read(tid, r)

    def answer_lost(self, oid: bytes, sender: bytes) -> bool:
        """``sender`` answered a request for ``oid`` that it does not have it: True if the request
        was ours (the object is then recovered again rather than failed)."""
        if self.fetching.get(oid) != sender:
            return False
        del self.fetching[oid]
        attempt = self._attempt_seen.pop(oid, -1)
        seen, nodes = self.refused.get(oid, (attempt, set()))
        self.refused[oid] = (attempt, nodes | {sender} if seen == attempt else {sender})
        self.recover(oid, f"node {sender.hex()[:8]}, which was asked for it, does not have it")
        return True

    def node_gone(self, node: bytes) -> None:
        """``node`` died: objects this node waited to hear of from it are recovered from the task table."""
        nm = self.nm
        for oid, n in list(self.fetching.items()):
            if n == node:
                del self.fetching[oid]
                self._attempt_seen.pop(oid, None)
                self.recover(oid, f"node {node.hex()[:8]}, which was asked for it, died")
        for oid, e in list(nm.objects.entries.items()):
            if e.held_at == node and e.state == PENDING and ids.task_of_object(oid) not in nm.tasks:
                nm.lineage.asked.discard(oid)
                self.recover(oid, f"node {node.hex()[:8]}, which was to tell this node about it, died")

    def sweep(self) -> None:
        """Forget objects that were rebuilt, fetched or freed meanwhile (``NodeManager.drain_freed``)."""
        objects = self.nm.objects
        for oid in [o for o in self.fetching if not _pending(objects.get(o))]:
            del self.fetching[oid]
            self._attempt_seen.pop(oid, None)
        for oid in [o for o in self.refused if not _pending(objects.get(o))]:
            del self.refused[oid]
        for tid, r in list(self.rebuilds.items()):
            r.oids = {o for o in r.oids if _pending(objects.get(o))}
            if not r.oids and not r.busy:
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
        attempt = task.attempt if task is not None else -1
        r.oids = {o for o in r.oids if _pending(self.nm.objects.get(o))}
        for oid in sorted(r.oids):
            o = objs.get(oid)
            live = sorted(n for n in (bytes.fromhex(h) for h in (o.locations if o else ())) if n != self.me
                          and self.nm.view.alive(n) and not self._was_refused(oid, attempt, n))
            if live:  # a copy on a live node (another node rebuilt it, or it was never lost)
                self._ask(r, oid, live[0], attempt)
        for oid in sorted(o for o in r.oids if ids.is_put_object(o)):
            r.oids.discard(oid)
            self._seal_error(oid, self._put_error(oid, r.why, r.holder))
        if not r.oids:
            self._finish(tid)
            return
        spec = _spec(task)
        if task is None or spec is None:
            self._fail(tid, r, exceptions.ObjectReconstructionFailedLineageEvictedError, (
                f"Cause: {r.why}; its lineage is gone: {self._owner_phrase(r.holder)}, and the task that made "
                f"it is not in the task table (entries expire task_table_ttl_s={self._ttl()} s after the task "
                "ended; a task submitted just before its owner died may never have been written)."))
            return
        r.spec = spec
        owner = spec.submitter_node
        owner_dead = bool(owner) and owner != self.me and not self.nm.view.alive(owner)
        label = f"task {spec.name!r} ({tid.hex()})"
        if spec.kind != pb.NORMAL_TASK:
            what = f"actor method {spec.method_name!r}" if spec.kind == pb.ACTOR_TASK else "an actor constructor"
            if owner_dead:
                self._fail(tid, r, exceptions.OwnerDiedError, (
                    f"Cause: {r.why}. Its owner, node {owner.hex()[:8]}, died, and it is the result of {what} "
                    f"({label}), which is not re-executed without its owner (as in Ray): its value depends on "
                    "the actor's state. Results that must outlive their owner should come from normal "
                    "tasks, which are rebuilt from the task table."))
            else:
                self._fail(tid, r, exceptions.ObjectReconstructionFailedError, (
                    f"Cause: {r.why}; it is the result of {what} ({label}), and results of actor methods are "
                    "not rebuilt from lineage (their value depends on the actor's state)."))
            return
        if spec.max_retries == 0:
            self._fail(tid, r, exceptions.ObjectReconstructionFailedError, (
                f"Cause: {r.why}; {label} has max_retries=0, so it is not rebuilt from lineage. Consider "
                "enabling retries with @remote(max_retries=N)."))
            return
        if task.state is TaskState.CANCELLED:
            self._fail(tid, r, None, tid.hex())
            return
        runner = bytes.fromhex(task.node) if task.node else b""
        if task.state is TaskState.PENDING and runner == self.me and tid in self.nm.tasks:
            self._finish(tid)  # this node runs it: its returns are sealed here
            return
        if task.state is TaskState.PENDING and runner and runner != self.me and self.nm.view.alive(runner):
            asked = [o for o in sorted(r.oids) if not self._was_refused(o, attempt, runner)]
            for oid in asked:  # its claimer, or the node it was forwarded to: it tells this node once done
                self._ask(r, oid, runner, attempt)
            if not r.oids:
                self._finish(tid)
                return
        if spec.max_retries != -1 and task.attempt >= spec.max_retries:
            self._fail(tid, r, exceptions.ObjectReconstructionFailedMaxAttemptsExceededError, (
                f"Cause: {r.why}; {label} has used its max_retries={spec.max_retries} ({task.attempt} "
                "attempts after the first). Consider more retries with @remote(max_retries=N)."))
            return
        r.rounds += 1
        if r.rounds > MAX_ROUNDS:
            self._fail(tid, r, exceptions.ObjectReconstructionFailedError, (
                f"Cause: {r.why}; rebuilding {label} from the task table was tried {MAX_ROUNDS} times without "
                "getting a copy (its copies were freed, or its claimers died, before it could be fetched)."))
            return
        r.busy = True
        assert self.table is not None
        self.table.claim(tid, task.attempt)

    def claim_done(self, tid: bytes, won: bool, attempt: int) -> None:
        """The claim of attempt ``attempt`` was won, or lost (``attempt``: the entry's current one,
        -1 if the entry is gone)."""
        r = self.rebuilds.get(tid)
        if r is None:
            return
        r.busy = False
        r.again = False
        r.oids = {o for o in r.oids if _pending(self.nm.objects.get(o))}
        if not r.oids:  # nobody here wants it any more (a claim won is left PENDING: see task_claim.lua)
            self._finish(tid)
            return
        if won:
            assert r.spec is not None
            self._rerun(tid, r, r.spec, attempt)
            return
        if attempt < 0:
            self._fail(tid, r, exceptions.ObjectReconstructionFailedLineageEvictedError, (
                f"Cause: {r.why}; its lineage is gone: {self._owner_phrase(r.holder)}, and the task that made "
                f"it left the task table (entries expire task_table_ttl_s={self._ttl()} s after the task "
                "ended)."))
            return
        self._read(tid, r)  # another node claimed it first (or retries it): find it, and ask it

    def io_failed(self, tid: bytes, why: str) -> None:
        r = self.rebuilds.get(tid)
        if r is None:
            return
        r.busy = False
        self._fail(tid, r, exceptions.ObjectReconstructionFailedError, (
            f"Cause: {r.why}; {self._owner_phrase(r.holder)}, and the task table could not be read to "
            f"rebuild it: {why}"))

    # ---- internals ------------------------------------------------------------------------------

    def _read(self, tid: bytes, r: Rebuild) -> None:
        if r.busy:
            r.again = True
            return
        r.busy = True
        assert self.table is not None
        self.table.read(tid, sorted(r.oids))

    def _ask(self, r: Rebuild, oid: bytes, node: bytes, attempt: int) -> None:
        """Ask live ``node`` for ``oid``: it answers with its info and a hold, or that it has none."""
        r.oids.discard(oid)
        self.fetching[oid] = node
        self._attempt_seen[oid] = attempt
        self.nm.peers.resolve(oid, node)

    def _was_refused(self, oid: bytes, attempt: int, node: bytes) -> bool:
        seen, nodes = self.refused.get(oid, (-2, set()))
        return seen == attempt and node in nodes

    def _rerun(self, tid: bytes, r: Rebuild, spec: pb.TaskSpec, attempt: int) -> None:
        """This node holds the claim: submit the task as its own (the same IDs, the claimed attempt)."""
        nm = self.nm
        objects = nm.objects
        del self.rebuilds[tid]
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
            self.recover(o, f"it is an argument of {spec.name!r} ({tid.hex()}), rebuilt because {r.why}")
        nm.drain_freed()
        nm.request_schedule()

    def _fail(self, tid: bytes, r: Rebuild, kind: type[exceptions.ObjectLostError] | None, reason: str) -> None:
        """Seal ``kind(oid, reason)`` for each wanted object (``None``: the task was cancelled)."""
        del self.rebuilds[tid]
        for oid in sorted(r.oids):
            exc = exceptions.TaskCancelledError(reason) if kind is None else kind(oid.hex(), reason)
            self._seal_error(oid, exc)

    def _finish(self, tid: bytes) -> None:
        r = self.rebuilds.get(tid)
        if r is not None and not r.busy:
            del self.rebuilds[tid]

    def _put_error(self, oid: bytes, why: str, holder: bytes) -> exceptions.ObjectLostError:
        """A put object that no live node has a copy of: it has no lineage."""
        if holder and self.nm.view.alive(holder):
            return exceptions.ObjectReconstructionFailedError(oid.hex(), (
                f"Cause: {why}; it is a put object, which has no lineage to rebuild it from, and no live "
                f"node has a copy. {PUT_ALTERNATIVE}"))
        return exceptions.OwnerDiedError(oid.hex(), (
            f"Cause: {why}. {self._owner_phrase(holder).capitalize()}, and it is a put object: put objects "
            f"have no lineage to rebuild them from, and no live node has a copy. {PUT_ALTERNATIVE}"))

    def _owner_phrase(self, holder: bytes) -> str:
        if holder and self.nm.view.alive(holder):
            return f"node {holder.hex()[:8]}, which it was held at, could not provide it"
        return f"its owner, node {holder.hex()[:8]}, died" if holder else "its owner died"

    def _seal_error(self, oid: bytes, exc: exceptions.RayError, drain: bool = True) -> None:
        blob = serialization.serialize_error(exc).to_bytes()
        self.nm.seal(oid, blob, "", len(blob))
        if drain:  # (not from inside Lineage.recover, whose callers drain once they are done)
            self.nm.drain_freed()
            self.nm.request_schedule()

    def _ttl(self) -> int:
        return get_config().task_table_ttl_s


def _pending(e: object) -> bool:
    return e is not None and getattr(e, "state", None) == PENDING


def _spec(task: TaskEntry | None) -> pb.TaskSpec | None:
    if task is None or not task.spec:
        return None
    try:
        return pb.TaskSpec.FromString(task.spec)
    except DecodeError:
        return None
