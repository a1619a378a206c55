"""Another node's raylet restarted under its node ID: tell it apart, drop its old process's state here (sans-I/O).

A restart faster than ``node_death_timeout_s`` never makes the node leave the cluster view, so the
usual node-death path (``PeerCore.node_gone``) does not run. This node sees the restart either in
the node table (the registration's PID and start time changed) or on the link (the first batch
from the new process carries a new epoch), whichever comes first, and handles it once:

* tasks this node forwarded there are placed again or fail (``NodeManager.forwarded_lost``); calls
  forwarded to actors there are sent again, in order, to the restarted actor within their
  ``max_task_retries`` (``LocalActors.resend_lost_calls``), else fail with ``ActorDiedError``;
* the holds the old process had on this node's objects are void, except on the returns of the
  tasks it forwarded here that still run (or are actor calls): their outcome is sent to the new
  process, whose driver resubmits the same tasks (a resubmission that arrives while the old one
  still runs here is a duplicate and is ignored, so the running one answers for it);
* objects this node knows only as copies there lose that location, so reading them (here, or on a
  node this one describes them to) rebuilds them from lineage instead of pulling from a process
  that does not have them, and the holds the old process granted are void;
* the normal tasks it forwarded here that have not started are dropped: the new process resubmits
  them, with fresh information about their arguments.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rayredis import exceptions, serialization
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.object_store import REMOTE
from rayredis.store.tables import TaskState

if TYPE_CHECKING:
    from rayredis.raylet.node_manager import NodeManager
    from rayredis.raylet.records import TaskRecord

logger = logging.getLogger(__name__)


class Incarnations:
    """Which process of each other node this node last heard from."""

    def __init__(self) -> None:
        self.registrations: dict[bytes, tuple[int, float]] = {}
        self.epochs: dict[bytes, int] = {}
        #: Nodes whose restart the link reported first: their next registration change is that one.
        self._seen_on_link: set[bytes] = set()

    def registration(self, node: bytes, pid: int, start_time: float) -> bool:
        """A registration of ``node`` read from the node table; True if it shows a restart not yet handled."""
        key = (pid, start_time)
        old = self.registrations.get(node)
        self.registrations[node] = key
        if old is None or old == key:
            return False
        self.epochs.pop(node, None)  # the next link epoch from it is the new process's
        if node in self._seen_on_link:
            self._seen_on_link.discard(node)
            return False
        return True

    def link_epoch(self, node: bytes, epoch: int) -> bool:
        """A batch from ``node`` with link ``epoch``; True if it comes from a new process not yet handled."""
        old = self.epochs.get(node)
        self.epochs[node] = epoch
        if old is None or old == epoch:
            return False
        self._seen_on_link.add(node)
        return True

    def forget(self, node: bytes) -> None:
        """``node`` left the cluster (its death is handled as such)."""
        self.registrations.pop(node, None)
        self.epochs.pop(node, None)
        self._seen_on_link.discard(node)


def drop_old_process(nm: NodeManager, node: bytes) -> None:
    """Forget what the previous raylet process of ``node`` had on this node (see the module doc)."""
    keep: set[bytes] = set()
    unstarted: list[TaskRecord] = []
    for rec in nm.tasks.values():
        if rec.owner_node != node:
            continue
        if rec.spec.kind == pb.NORMAL_TASK and rec.state is TaskState.PENDING and \
                (rec.deps or rec.spec.task_id in nm.scheduler.waiting or rec.spec.task_id in nm.scheduler.ready_ids):
            unstarted.append(rec)
        else:
            keep.update(rec.return_ids)
    for rec in unstarted:
        tid = rec.spec.task_id
        if nm.scheduler.cancel(tid) is None and not rec.deps:
            keep.update(rec.return_ids)
            continue
        # Nobody to tell, nothing to record: the new process resubmits it (its own entry, a new attempt).
        nm.placement.drop_deps(rec)
        del nm.tasks[tid]
        for oid in rec.pinned:
            nm.objects.unpin(oid)
        for oid in rec.return_ids:
            nm.objects.unhold(oid, node)  # the hold taken when it arrived (the entry goes with it)
            if nm.objects.get(oid) is not None:  # another reader here waits for it: tell it
                err = serialization.serialize_error(exceptions.ObjectLostError(
                    oid.hex(), f"The raylet of node {node.hex()[:8]}, which owned the task that was to make "
                    "it, restarted.")).to_bytes()
                nm.seal(oid, err, "", len(err))
    for oid, e in list(nm.objects.entries.items()):
        if node in e.locations and e.state == REMOTE:
            e.locations = [n for n in e.locations if n != node]  # its copy there is gone (a pull rebuilds it)
        if e.held_at == node:
            e.held_at = b""  # the hold the old process granted is void: a new copy's hold is not a duplicate
        if oid in keep:
            continue
        while e.holders.get(node, 0) > 0:
            nm.objects.unhold(oid, node)
    for nodes in nm.peers.watchers.values():
        nodes.discard(node)
    sent = [r for r in nm.tasks.values() if r.forwarded_to == node]
    resend = [r for r in sent if r.spec.kind == pb.ACTOR_TASK and nm.actors.can_resend(r)]
    for rec in resend:
        nm.view.returned(node, rec.demand)
    nm.actors.resend_lost_calls(resend)
    resent = {r.spec.task_id for r in resend}
    for rec in sent:
        if rec.spec.task_id not in resent:
            nm.forwarded_lost(rec, f"raylet of node {node.hex()[:8]} running it restarted")
    logger.warning("node %s restarted: dropped %d of its unstarted tasks, kept %d returns of its running ones",
                   node.hex()[:8], len(unstarted), len(keep))
    nm.drain_freed()
    nm.request_schedule()
