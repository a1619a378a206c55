"""The raylet core's side of the links to other raylets: forwarded tasks, object holds, pulls (sans-I/O)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from rayredis import exceptions, serialization
from rayredis.common.resources import ResourceSet
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.cluster_view import ClusterView
from rayredis.raylet.object_store import PENDING, READY, REMOTE

if TYPE_CHECKING:
    from rayredis.raylet.node_manager import NodeManager
    from rayredis.raylet.records import TaskRecord

logger = logging.getLogger(__name__)

#: A pull that fails while the view still lists a source as alive is retried this often, this far
#: apart: long enough for the GCS to declare a node that died dead (3 s, plus a GCS failover's lease
#: and a full death timeout again when the GCS itself was replaced meanwhile). After that the
#: object is rebuilt from lineage as if its nodes had died (a duplicate run is harmless), and only
#: an object without lineage fails.
PULL_RETRIES = 30
PULL_RETRY_S = 1.0


class PeerLinks(Protocol):
    """The I/O side: one ordered outbox per other raylet, and object pulls."""

    def out(self, node: bytes) -> pb.PeerBatch:
        """The batch being filled for ``node`` (sent in order after the ones before it)."""
        ...

    def flush(self, node: bytes) -> None: ...

    def pull(self, oid: bytes, locations: list[bytes], size: int) -> None:
        """Copy ``oid`` here from one of ``locations``; ends in :meth:`PeerCore.pulled` or
        :meth:`PeerCore.pull_failed`."""
        ...


class NoLinks:
    """The links of a node that has never seen another node (unit tests)."""

    def out(self, node: bytes) -> pb.PeerBatch:
        raise RuntimeError(f"no link to node {node.hex()}: this NodeManager was built without links")

    def flush(self, node: bytes) -> None:
        raise RuntimeError("no links")

    def pull(self, oid: bytes, locations: list[bytes], size: int) -> None:
        raise RuntimeError("no links")


class PeerCore:
    """What one raylet tells others and applies from them (docs/scheduling.md, "Objects between nodes").

    Holds: every ``ObjectInfo`` without an inline value grants its receiver one hold on the
    sender's entry (``Entry.holders``), which keeps it, and so the copy or the hold it stands on,
    alive until the receiver frees its own entry and sends the ID back in ``free``. An entry keeps
    at most one hold (``Entry.held_at``): a second grant is returned at once. Holds are granted by
    the node that sends the information, before it sends it, so no object can be freed while a
    message about it is in flight.
    """

    def __init__(self, nm: NodeManager, links: PeerLinks, view: ClusterView):
        self.nm = nm
        self.links = links
        self.view = view
        self.node_id = nm.node_id
        #: Pending objects other nodes were told about (or asked for): described again once sealed.
        self.watchers: dict[bytes, set[bytes]] = {}
        self.pulling: set[bytes] = set()
        #: Objects whose pulls failed while their sources still looked alive: retries so far.
        self.failed_pulls: dict[bytes, int] = {}
        #: Nodes declared dead (node IDs are never reused: a raylet that comes back fences itself and
        #: re-registers under a new one). What they still send is void: their work was moved.
        self.dead: set[bytes] = set()

    # ---- telling ------------------------------------------------------------------------------

    def describe(self, oid: bytes, to: bytes, batch: pb.PeerBatch, seen: set[bytes] | None = None) -> None:
        """Append what this node knows of ``oid`` (and of the refs inside an inline value) to
        ``batch`` for node ``to``, granting ``to`` the holds the infos stand for."""
        seen = set() if seen is None else seen
        if oid in seen:
            return
        seen.add(oid)
        objects = self.nm.objects
        e = objects.get(oid)
        if e is None:
            batch.objects.add(object_id=oid, lost=True)
            return
        if e.state == READY and e.inline is not None:
            info = batch.objects.add(object_id=oid, has_inline=True, inline_data=e.inline, size=len(e.inline))
            info.contained.extend(e.contained)
            for c in e.contained:
                self.describe(c, to, batch, seen)
            return
        objects.hold(oid, to)
        info = batch.objects.add(object_id=oid, size=e.size)
        if e.state == READY:
            info.locations.append(self.node_id)
        elif e.state == REMOTE and e.locations:
            info.locations.extend(e.locations)
        else:
            self.watchers.setdefault(oid, set()).add(to)
            if e.state == REMOTE:
                # Its copies were lost with a restarted raylet: rebuild it and tell ``to`` then. (Not
                # now: a rebuild that fails seals an error, which would flush the batch being built.)
                self.nm.timers.call_soon(self._rebuild_lost, oid)

    def _rebuild_lost(self, oid: bytes) -> None:
        e = self.nm.objects.get(oid)
        if e is not None and e.state == REMOTE and not e.locations:
            self.nm.lineage.recover(oid, "its copies were lost with a restarted raylet")
            self.nm.drain_freed()
            self.nm.request_schedule()

    def object_ready(self, oid: bytes) -> None:
        """``oid`` was sealed here or turned REMOTE: tell the nodes that wait to hear of it."""
        nodes = self.watchers.pop(oid, None)
        if nodes:
            for to in nodes:
                self.describe(oid, to, self.links.out(to))
                self.links.flush(to)

    def forward(self, rec: TaskRecord, to: bytes, demand: ResourceSet) -> None:
        """Hand a task this node owns over to ``to`` (its spill is recorded in the task table first)."""
        batch = self.links.out(to)
        seen: set[bytes] = set()
        spec = rec.spec
        for a in spec.args:
            if a.object_id:
                self.describe(a.object_id, to, batch, seen)
        for oid in spec.nested_refs:
            self.describe(oid, to, batch, seen)
        batch.tasks.add(spec=spec, attempt=rec.attempt)
        rec.forwarded_to = to
        rec.demand = demand
        if spec.kind != pb.ACTOR_TASK:  # an actor call goes where its actor is: no decision to record
            self.nm.writer.task_spilled(spec.task_id, to, rec.attempt)
        self.view.forwarded(to, demand)
        self.links.flush(to)

    def task_done(self, rec: TaskRecord, failed: bool) -> None:
        """A task another node forwarded here ended: send its returns' infos and the outcome."""
        to = rec.owner_node
        batch = self.links.out(to)
        seen: set[bytes] = set()
        for oid in rec.return_ids:
            self.describe(oid, to, batch, seen)
        batch.done.add(task_id=rec.spec.task_id, attempt=rec.attempt, failed=failed)
        for oid in rec.return_ids:
            self.nm.objects.unhold(oid, to)  # the hold taken when the task arrived
        self.links.flush(to)

    def cancel(self, rec: TaskRecord, oid: bytes, force: bool) -> None:
        self.links.out(rec.forwarded_to).cancels.add(object_id=oid, force=force)
        self.links.flush(rec.forwarded_to)

    def kill_actor(self, node: bytes, actor_id: bytes, no_restart: bool, when_idle: bool) -> None:
        self.links.out(node).kills.add(actor_id=actor_id, no_restart=no_restart, when_idle=when_idle)
        self.links.flush(node)

    def resolve(self, oid: bytes, owner: bytes) -> None:
        """Ask ``owner`` about an object this node has no information on (an actor constructor's
        argument that came through the GCS); this node's entry waits PENDING meanwhile."""
        self.links.out(owner).resolve.append(oid)
        self.links.flush(owner)

    # ---- applying -----------------------------------------------------------------------------

    def apply(self, b: pb.PeerBatch) -> None:
        """One batch from another raylet, in the order it was sent."""
        nm = self.nm
        sender = b.from_node
        if sender in self.dead:
            # A node cut off the network, declared dead, sends what it queued once it is healed,
            # before it finds itself DEAD and fences: results of tasks retried elsewhere meanwhile
            # (an error of its own, say), which must not seal their returns here.
            logger.warning("ignoring a batch from node %s, which was declared dead", sender.hex()[:8])
            return
        created = self.apply_infos(sender, b.objects)
        for ft in b.tasks:
            nm.submit_forwarded(sender, ft.spec, ft.attempt)
        for d in b.done:
            nm.forwarded_done(sender, d)
        for oid in b.free:
            nm.objects.unhold(oid, sender)
        for oid in b.resolve:
            e = nm.objects.get(oid)
            if e is not None and e.state == REMOTE and not any(self.view.alive(n) for n in e.locations):
                self.watchers.setdefault(oid, set()).add(sender)
                nm.lineage.recover(oid, "the nodes that had it are gone")
            elif e is not None and e.state == PENDING:
                self.watchers.setdefault(oid, set()).add(sender)
            else:
                self.describe(oid, sender, self.links.out(sender))
                self.links.flush(sender)
        for c in b.cancels:
            nm.cancel(c.object_id, c.force)
        for k in b.kills:
            nm.actors.kill_request(k)
        nm.objects.sweep(created)
        nm.drain_freed()
        nm.request_schedule()

    def apply_infos(self, sender: bytes, infos: Iterable[pb.ObjectInfo]) -> list[bytes]:
        """Create or update entries from ``infos``; returns the IDs of entries created for them
        (the caller sweeps those nothing ended up using)."""
        nm = self.nm
        objects = nm.objects
        created: list[bytes] = []
        to_seal: list[pb.ObjectInfo] = []
        available: list[bytes] = []
        dup: list[bytes] = []
        for info in infos:
            oid = info.object_id
            e = objects.get(oid)
            if e is None:
                e = objects.expect(oid, refs=0)
                e.pins += 1  # until the whole message is applied (see ObjectStore.sweep)
                created.append(oid)
            if info.lost:
                if e.state == PENDING and not nm.orphans.answer_lost(oid, sender):
                    blob = serialization.serialize_error(exceptions.ObjectLostError(
                        oid.hex(), f"Node {sender.hex()[:8]}, which was asked for it, no longer knows it.")).to_bytes()
                    to_seal.append(pb.ObjectInfo(object_id=oid, has_inline=True, inline_data=blob))
                continue
            if info.has_inline:
                if e.state != READY:
                    to_seal.append(info)
                continue
            if e.held_at or e.state == READY:
                dup.append(oid)
            else:
                e.held_at = sender
            if info.locations and e.state == PENDING and objects.mark_remote(oid, list(info.locations), info.size):
                self.failed_pulls.pop(oid, None)  # new copies (rebuilt, say): pulled at once, not at the old retry
                available.append(oid)
        for info in to_seal:
            nm.seal(info.object_id, info.inline_data, "", len(info.inline_data), list(info.contained))
        for oid in available:
            nm.object_available(oid)
        if dup:
            out = self.links.out(sender)
            out.free.extend(dup)
            self.links.flush(sender)
        return created

    # ---- pulls --------------------------------------------------------------------------------

    def need_local(self, oid: bytes) -> None:
        """A local reader needs ``oid``'s data: pull it if it is only elsewhere (once at a time, and
        not while a failed pull waits for its retry: every reader's get would otherwise fail one more
        pull at once, using up in a second the retries meant to outlast a death not declared yet)."""
        e = self.nm.objects.get(oid)
        if e is not None and e.state == REMOTE and oid not in self.pulling and oid not in self.failed_pulls:
            self._start_pull(oid, e.locations, e.size)

    def _start_pull(self, oid: bytes, locations: list[bytes], size: int) -> None:
        # Never from a node the view has as dead: a node cut off the network would leave the pull
        # hanging until TCP gives up, while the object could be rebuilt at once. (With no location
        # left the pull fails at once, through the links, never from inside this call.)
        self.pulling.add(oid)
        self.links.pull(oid, [n for n in locations if self.view.alive(n)], size)

    def pulled(self, oid: bytes, sender: bytes, inline: bytes | None, shm_name: str, size: int,
               contained: list[pb.ObjectInfo]) -> None:
        """A pull finished: ``sender`` granted holds on the ``contained`` refs."""
        self.pulling.discard(oid)
        self.failed_pulls.pop(oid, None)
        created = self.apply_infos(sender, contained)
        nm = self.nm
        e = nm.objects.get(oid)
        if e is None or e.state == READY:
            if shm_name:
                nm.objects.abort(oid, shm_name)
        else:
            nm.seal(oid, inline, shm_name, size, [c.object_id for c in contained])
        nm.objects.sweep(created)
        nm.drain_freed()
        nm.request_schedule()

    def pull_failed(self, oid: bytes, why: str, missing: bool = False) -> None:
        """No location could serve ``oid``: retry while a source may still answer, else rebuild it
        from lineage, ask its holder, or fail it. ``missing``: every source answered that it no
        longer has the object (a restarted raylet), so waiting for them is pointless."""
        self.pulling.discard(oid)
        nm = self.nm
        e = nm.objects.get(oid)
        if e is None or e.state != REMOTE:
            self.failed_pulls.pop(oid, None)  # sealed or rebuilt meanwhile: no retry is due
        else:
            logger.warning("object %s could not be fetched: %s", oid.hex(), why)
            where = ", ".join(n.hex()[:8] for n in e.locations)
            if not missing and any(self.view.alive(n) and n != self.node_id for n in e.locations):
                # Its nodes look alive: one may have just died (not declared yet) or this copy
                # failed (no room). Try again shortly; the view decides by then.
                tries = self.failed_pulls.get(oid, 0) + 1
                if tries <= PULL_RETRIES:
                    self.failed_pulls[oid] = tries
                    nm.timers.call_later(PULL_RETRY_S, self._retry_pull, oid)
                    return
                why = f"{why} (still failing after {PULL_RETRIES} retries {PULL_RETRY_S:g} s apart)"
            self.failed_pulls.pop(oid, None)
            nm.lineage.recover(oid, f"it could not be fetched from node(s) {where}: {why}")
            nm.drain_freed()
            nm.request_schedule()

    def _retry_pull(self, oid: bytes) -> None:
        if oid not in self.failed_pulls or oid in self.pulling:
            return  # pulled, rebuilt or given new locations meanwhile (a pull of those may run)
        e = self.nm.objects.get(oid)
        if e is None or e.state != REMOTE:
            self.failed_pulls.pop(oid, None)
            return
        if not any(self.view.alive(n) for n in e.locations):
            self.pull_failed(oid, "its nodes died")
            return
        self._start_pull(oid, e.locations, e.size)

    def contained_infos(self, oid: bytes, to: bytes) -> list[pb.ObjectInfo]:
        """For a pull by ``to``: infos (with holds) of the refs inside ``oid``."""
        e = self.nm.objects.get(oid)
        if e is None or not e.contained:
            return []
        batch = pb.PeerBatch()
        seen = {oid}
        for c in e.contained:
            self.describe(c, to, batch, seen)
        return list(batch.objects)

    def node_gone(self, node: bytes) -> None:
        """A node died or left: its holds here are void, and the tasks forwarded to it are retried
        elsewhere (if they may) or fail with ``NodeDiedError``."""
        nm = self.nm
        self.dead.add(node)
        nm.objects.drop_holder(node)
        for nodes in self.watchers.values():
            nodes.discard(node)
        nm.orphans.node_gone(node)  # what was to come from it is rebuilt from the task table
        nm.actors.node_gone(node)  # its actors' calls wait for their restart (or their death)
        lost = [r for r in nm.tasks.values() if r.forwarded_to == node]
        resend = [r for r in lost if r.spec.kind == pb.ACTOR_TASK and nm.actors.can_resend(r)]
        for rec in resend:
            self.view.returned(node, rec.demand)
        nm.actors.resend_lost_calls(resend)  # in submission order, within max_task_retries
        for rec in lost:
            if rec not in resend:
                nm.forwarded_lost(rec, f"node {node.hex()[:8]} running it died")
        nm.drain_freed()
        nm.request_schedule()
