"""What a driver's raylet holds for it, mirrored so that a restarted raylet can be given it back (sans-I/O).

The raylet keeps a client's state in memory only: the references it holds for the client, the
tasks the client submitted and the objects they made. When the raylet is SIGKILLed and restarted
under its node ID, all of that is gone, so the client, as the owner of its work (Ray's owner
model), resends it: :class:`OwnerState` records, at the moment each message is queued, what the
raylet will hold for it, and :meth:`OwnerState.plan` turns that record into the messages that give
a fresh raylet the same state (docs/fault-tolerance.md, "Raylet restart").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rayredis import exceptions, ids
from rayredis.protocol._generated import rayredis_pb2 as pb

#: Cached values up to this size are put again from the client's cache after a restart (inline:
#: a copy in the raylet's memory); a larger cached put object is lost, a larger task return rebuilt.
REPUT_MAX_BYTES = 64 * 1024 * 1024


@dataclass
class OwnedTask:
    """A submitted task kept while its returns are referenced here or another kept task needs them."""

    spec: pb.TaskSpec
    seq: int
    #: Refs this submission created for its arguments (large values put for it), released once the
    #: task's returns are known to be sealed.
    keep: list[Any] = field(default_factory=list)
    #: Times it was resubmitted after a raylet restart.
    resubmits: int = 0


@dataclass
class Plan:
    """The messages that rebuild the client's state at a restarted raylet, in the order to send them."""

    #: (object, blob) put again from the cache: values of puts and of task returns read before.
    reput: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: (object, error) for returns of work that may not run again, and put objects that are lost.
    failed: list[tuple[bytes, BaseException]] = field(default_factory=list)
    #: Tasks submitted again, in their original order (a new attempt each).
    resubmit: list[pb.TaskSpec] = field(default_factory=list)
    #: Returns of resubmitted or failed tasks that this client no longer references.
    remove_refs: list[bytes] = field(default_factory=list)


def returns_of(spec: pb.TaskSpec) -> list[bytes]:
    return [ids.object_id_for_return(spec.task_id, i + 1) for i in range(spec.num_returns)]


class OwnerState:
    """The client's side of its raylet's state, updated as each message is queued (under the
    client's send lock, so the record and the queue agree).

    ``held``: the objects the raylet holds one reference to for this client (a put, the returns
    of a submitted task, an ``add_refs``; a ``remove_refs`` drops it). ``tasks``: the lineage, the
    submitted tasks whose returns are held, or that a kept task takes a return of as an argument.
    """

    def __init__(self) -> None:
        self.held: set[bytes] = set()
        self.tasks: dict[bytes, OwnedTask] = {}
        #: For each kept task, how many kept tasks take one of its returns as an argument.
        self.dependents: Counter[bytes] = Counter()
        #: Objects that refs inside put values point to (the raylet pins them for the container).
        self.contained: dict[bytes, list[bytes]] = {}
        self._seq = 0

    # ---- recording ---------------------------------------------------------------------------

    def submitted(self, spec: pb.TaskSpec, keep: list[Any] | None = None) -> None:
        rets = returns_of(spec)
        self.held.update(rets)
        if not rets:
            return  # nothing refers to it: its loss cannot be seen, nor retried
        self._seq += 1
        self.tasks[spec.task_id] = OwnedTask(spec, self._seq, list(keep or ()))
        for dep in self._arg_tasks(spec):
            self.dependents[dep] += 1

    def put_sent(self, oid: bytes, contained: Iterable[bytes] = ()) -> None:
        self.held.add(oid)
        c = list(contained)
        if c:
            self.contained[oid] = c

    def ref_added(self, oid: bytes) -> None:
        self.held.add(oid)

    def ref_removed(self, oid: bytes) -> None:
        self.held.discard(oid)
        self.contained.pop(oid, None)
        if not ids.is_put_object(oid):
            self._maybe_drop(ids.task_of_object(oid))

    def sealed(self, oid: bytes) -> None:
        """``oid`` was reported sealed: once all of its task's returns are, the refs the task kept
        for its arguments are let go (a later rebuild of the task finds them lost, as in Ray)."""
        t = self.tasks.get(ids.task_of_object(oid)) if not ids.is_put_object(oid) else None
        if t is not None and t.keep:
            t.keep = []

    def _arg_tasks(self, spec: pb.TaskSpec) -> list[bytes]:
        out = []
        for a in spec.args:
            if a.object_id and not ids.is_put_object(a.object_id):
                tid = ids.task_of_object(a.object_id)
                if tid in self.tasks and tid != spec.task_id:
                    out.append(tid)
        return out

    def _maybe_drop(self, tid: bytes) -> None:
        stack = [tid]
        while stack:
            t = stack.pop()
            rec = self.tasks.get(t)
            if rec is None or self.dependents[t] > 0 or any(o in self.held for o in returns_of(rec.spec)):
                continue
            del self.tasks[t]
            self.dependents.pop(t, None)
            for dep in self._arg_tasks(rec.spec):
                self.dependents[dep] -= 1
                if self.dependents[dep] <= 0:
                    del self.dependents[dep]
                    stack.append(dep)

    # ---- planning ------------------------------------------------------------------------------

    def plan(self, values: Mapping[bytes, Any], may_run_again: Callable[[OwnedTask], bool],
             why: str) -> Plan:
        """The messages that give a fresh raylet this client's state (``values``: the client's
        cache of object blobs; ``may_run_again(task)``: whether it may run again; ``why``: the
        text for the errors of work that may not). Updates the kept specs of resubmitted tasks."""
        out = Plan()
        rebuild: dict[bytes, OwnedTask] = {}
        for oid in sorted(self.held):
            blob = _cached(values.get(oid))
            t = None if ids.is_put_object(oid) else self.tasks.get(ids.task_of_object(oid))
            if t is not None:
                held_rets = [o for o in returns_of(t.spec) if o in self.held]
                if all(_cached(values.get(o)) is not None for o in held_rets):
                    continue  # put back below, one by one
                rebuild[t.spec.task_id] = t
            elif blob is not None:
                out.reput.append((oid, blob))
            else:
                out.failed.append((oid, _lost_object_error(oid, why, oid in values)))
        for oid in sorted(self.held):
            t = None if ids.is_put_object(oid) else self.tasks.get(ids.task_of_object(oid))
            if t is not None and t.spec.task_id not in rebuild:
                blob = _cached(values.get(oid))
                assert blob is not None
                out.reput.append((oid, blob))
        # Lineage: a task rebuilt needs the returns it takes as arguments, rebuilt too if not held.
        stack = list(rebuild.values())
        while stack:
            t = stack.pop()
            for a in t.spec.args:
                o = a.object_id
                if not o or ids.is_put_object(o) or o in self.held:
                    continue
                dep = self.tasks.get(ids.task_of_object(o))
                if dep is not None and dep.spec.task_id not in rebuild:
                    rebuild[dep.spec.task_id] = dep
                    stack.append(dep)
        for t in sorted(rebuild.values(), key=lambda t: t.seq):
            spec = t.spec
            rets = returns_of(spec)
            if may_run_again(t):
                new = pb.TaskSpec()
                new.CopyFrom(spec)
                # A new attempt above any the lost raylet may have used for it.
                new.attempt = spec.attempt + 1 + max(spec.max_retries, 0)
                if spec.kind == pb.NORMAL_TASK and spec.max_retries > 0:
                    new.max_retries = spec.max_retries - 1
                t.spec, t.resubmits = new, t.resubmits + 1
                out.resubmit.append(new)
            else:
                err = _lost_work_error(spec, why)
                out.failed.extend((o, err) for o in rets)
            out.remove_refs.extend(o for o in rets if o not in self.held)
        return out


def _cached(v: Any) -> bytes | None:
    """A cached blob small enough to put again, as bytes."""
    if v is None:
        return None
    if isinstance(v, bytes):
        return v
    if len(v) > REPUT_MAX_BYTES:
        return None
    return bytes(v)


def _lost_object_error(oid: bytes, why: str, cached: bool) -> BaseException:
    if ids.is_put_object(oid) and cached:
        how = (f"it was a put object, and this driver's cached copy is larger than {REPUT_MAX_BYTES} "
               "bytes, so it was not put again")
    elif ids.is_put_object(oid):
        how = "it was a put object whose value this driver does not cache (put objects have no lineage)"
    else:
        how = "this driver did not submit the task that made it, so it cannot rebuild it"
    return exceptions.ObjectLostError(oid.hex(), f"The raylet of this driver, which kept it, {why}; {how}.")


def _lost_work_error(spec: pb.TaskSpec, why: str) -> BaseException:
    if spec.kind == pb.ACTOR_TASK:
        return exceptions.ActorDiedError(
            f"The call {spec.name or spec.method_name!r} was in flight when the raylet of this driver "
            f"{why}; it may or may not have run, and the actor allows no more retries "
            "(max_task_retries), so it is not sent again.", spec.actor_id.hex())
    return exceptions.NodeDiedError(
        f"Task {spec.name!r} was in flight when the raylet of this driver {why}, and it has no "
        f"retries left (max_retries={spec.max_retries}).")
