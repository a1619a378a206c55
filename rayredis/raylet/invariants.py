"""The raylet core's consistency invariants, checked on demand (tests, the ``Validate`` RPC).

The NodeManager, its ObjectStore, LocalScheduler and LocalActors each keep part of one node's
state; these checks say that the parts agree:

* **Reference counts.** Every object the store knows has ``refcount`` equal to the sum of its
  connections' ``refs`` for it plus ``NodeManager.unowned_refs`` for it. A client's ``put`` and each
  return object of a task it submits add one to both sides (``unowned_refs`` when the submitter is
  not connected, e.g. an actor constructor from the GCS); ``add_refs``/``remove_refs`` move both;
  a closed connection releases all of its refs at once. Connections may hold refs to objects this
  store does not know (they live on other nodes), and no count is ever negative.
* **Pins.** Every object the store knows has ``pins`` equal to the number of times it appears in the
  ``pinned`` lists of the live task records plus the number of sealed objects that contain it.
* **Scheduler vs. records.** Every queued or running scheduler entry carries the live record of its
  task, except an actor's constructor that already finished: its worker keeps the resources while
  the actor is hosted here. Every live normal or constructor record is queued if PENDING and
  running if RUNNING (or waits for arguments sealed nowhere yet, indexed under each, or was
  forwarded to another node); every live actor-call record is queued or in flight at its actor exactly
  once, and every queued or in-flight call is a live record.
* **Gets and waits.** Every pending get is indexed under each object it still misses (none of which
  is sealed), every pending wait under each of its objects that is not ready and still needs one
  more; both belong to a connected client. (Indexes may keep stale keys: they are skipped lazily.)
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.object_store import READY
from rayredis.raylet.records import TaskRecord
from rayredis.store.tables import TaskState

if TYPE_CHECKING:
    from rayredis.raylet.node_manager import NodeManager


def check(nm: NodeManager) -> list[str]:
    """Every violated invariant, one line each (empty when the node's state is consistent)."""
    out: list[str] = []
    _refs(nm, out)
    _pins(nm, out)
    _scheduler(nm, out)
    _actors(nm, out)
    _waits(nm, out)
    return out


def _refs(nm: NodeManager, out: list[str]) -> None:
    entries = nm.objects.entries
    held: Counter[bytes] = Counter(nm.unowned_refs)
    for conn in nm.conns.values():
        for oid, n in conn.refs.items():
            if n <= 0:
                out.append(f"connection {conn.worker_id.hex()[:12]} holds {n} refs to {oid.hex()}")
            if oid in entries:
                held[oid] += n
    for oid, e in entries.items():
        if e.refcount != held[oid]:
            out.append(f"object {oid.hex()}: store refcount {e.refcount} != {held[oid]} held by clients")


def _pins(nm: NodeManager, out: list[str]) -> None:
    entries = nm.objects.entries
    want: Counter[bytes] = Counter()
    for rec in nm.tasks.values():
        want.update(rec.pinned)
    for e in entries.values():
        if e.state == READY:
            want.update(e.contained)
    for oid, e in entries.items():
        if e.pins != want[oid]:
            out.append(f"object {oid.hex()}: {e.pins} pins in the store != {want[oid]} by records and "
                       "containing objects")


def _scheduler(nm: NodeManager, out: list[str]) -> None:
    s = nm.scheduler
    queued: set[bytes] = set()
    for tid, t in s.waiting.items():
        queued.add(tid)
        _same_record(nm, tid, t.payload, "waiting", out)
    for q in s.ready.values():
        for t in q:
            if t.task_id in queued:
                out.append(f"task {t.task_id.hex()} is queued twice")
            queued.add(t.task_id)
            _same_record(nm, t.task_id, t.payload, "ready", out)
    if s.ready_ids != queued - set(s.waiting):
        out.append(f"scheduler ready_ids {len(s.ready_ids)} != {len(queued) - len(s.waiting)} ready tasks")
    for tid, run in s.running.items():
        rec = run.task.payload
        if run.task.dedicated and tid not in nm.tasks and isinstance(rec, TaskRecord) \
                and nm.actors.hosts(rec.spec.actor_id):
            continue  # a hosted actor's worker keeps its constructor's resources
        _same_record(nm, tid, rec, "running", out)
    for tid, rec in nm.tasks.items():
        if rec.spec.kind == pb.ACTOR_TASK:
            continue
        if rec.forwarded_to:
            continue  # runs on another node; its record waits here for the outcome
        if rec.state is TaskState.PENDING and rec.deps:
            if any(tid not in nm.deps_index.get(o, ()) for o in rec.deps):
                out.append(f"task {tid.hex()} ({rec.spec.name}) waits for arguments it is not indexed under")
            continue
        if rec.state is TaskState.PENDING and tid not in queued:
            out.append(f"task {tid.hex()} ({rec.spec.name}) is PENDING but not queued")
        elif rec.state is TaskState.RUNNING and tid not in s.running:
            out.append(f"task {tid.hex()} ({rec.spec.name}) is RUNNING but not running in the scheduler")


def _same_record(nm: NodeManager, tid: bytes, rec: object, where: str, out: list[str]) -> None:
    live = nm.tasks.get(tid)
    if live is None:
        out.append(f"{where} task {tid.hex()} has no live record")
    elif live is not rec:
        out.append(f"{where} task {tid.hex()} carries another record than the live one")


def _actors(nm: NodeManager, out: list[str]) -> None:
    seen: set[bytes] = set()
    for a, rec in nm.actors.records():
        tid = rec.spec.task_id
        if tid in seen:
            out.append(f"actor call {tid.hex()} is queued or in flight twice")
        seen.add(tid)
        if nm.tasks.get(tid) is not rec:
            out.append(f"actor {a.actor_id.hex()} call {tid.hex()} has no live record")
        if rec.spec.actor_id != a.actor_id:
            out.append(f"actor call {tid.hex()} is queued at actor {a.actor_id.hex()}, not its own")
    for tid, rec in nm.tasks.items():
        if rec.spec.kind == pb.ACTOR_TASK and tid not in seen:
            out.append(f"actor call {tid.hex()} ({rec.spec.method_name}) is neither queued nor in flight")
    for a in nm.actors.actors.values():
        if a.conn is not None and not a.conn.closed and nm.conns.get(a.conn.worker_id) is not a.conn:
            out.append(f"actor {a.actor_id.hex()} is served by a connection that is gone")


def _waits(nm: NodeManager, out: list[str]) -> None:
    objects, waiters = nm.objects, nm.waiters
    for key, g in waiters.gets.items():
        if nm.conns.get(key[0]) is not g.conn:
            out.append(f"get {key[1]} of {key[0].hex()[:12]} belongs to no connected client")
        for o in g.missing:
            if objects.is_ready(o):
                out.append(f"get {key[1]} of {key[0].hex()[:12]} still waits for sealed {o.hex()}")
            if key not in waiters.get_index.get(o, ()):
                out.append(f"get {key[1]} of {key[0].hex()[:12]} is not indexed under {o.hex()}")
    for key, w in waiters.waits.items():
        if nm.conns.get(key[0]) is not w.conn:
            out.append(f"wait {key[1]} of {key[0].hex()[:12]} belongs to no connected client")
        if w.need <= 0:
            out.append(f"wait {key[1]} of {key[0].hex()[:12]} has what it needs but was not answered")
        for o in w.oids:
            e = objects.get(o)
            if e is not None and e.state != READY and key not in waiters.wait_index.get(o, ()):
                out.append(f"wait {key[1]} of {key[0].hex()[:12]} is not indexed under {o.hex()}")
