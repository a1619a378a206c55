"""The GCS's narrow view of the Redis tables: typed reads (via store.tables) and compare-and-set writes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rayredis.actor_state import ActorState
from rayredis.gcs.decisions import ClusterView, FieldValue
from rayredis.gcs.lease import LeaseLostError
from rayredis.store import keys, tables
from rayredis.store.scripts import FENCED_OUT, FencedScripts, Scripts
from rayredis.store.tables import ActorEntry, JobInfo, JobState, NodeRecord, PlacementGroupEntry, PlacementGroupState


class ClusterReader(Protocol):
    async def cluster_view(self, jobs: Sequence[int] | None = None) -> ClusterView:
        """Alive nodes and which of ``jobs`` finished (all finished jobs when None)."""
        ...


class ActorStore(ClusterReader, Protocol):
    """What the actor manager reads and writes."""

    async def live_actor_ids(self) -> list[str]:
        """The actors not DEAD (a restarted GCS's rescan walks these, not every actor ever made)."""
        ...

    async def actor(self, actor_id: str) -> ActorEntry | None: ...

    async def actors(self, actor_ids: Sequence[str]) -> list[ActorEntry]: ...

    async def actor_transition(self, actor_id: str, from_state: ActorState, from_attempt: int,
                               fields: Mapping[str, FieldValue]) -> bool:
        """CAS the actor from (``from_state``, ``from_attempt``) to ``fields``; False if it moved."""
        ...

    async def prune_dead_actors(self, keep: int, most: int) -> int:
        """Delete the oldest DEAD actors beyond ``keep`` (at most ``most``); returns how many."""
        ...


class PlacementGroupStore(ClusterReader, Protocol):
    """What the placement-group manager reads and writes."""

    async def pg_ids(self) -> list[str]: ...

    async def pg(self, pg_id: str) -> PlacementGroupEntry | None: ...

    async def pgs(self, pg_ids: Sequence[str]) -> list[PlacementGroupEntry]: ...

    async def pg_state_cas(self, pg_id: str, old: PlacementGroupState, new: PlacementGroupState) -> bool: ...

    async def pg_cas(self, pg_id: str, expect: Mapping[str, str], fields: Mapping[str, str]) -> bool:
        """Set ``fields`` of the group's entry if each field of ``expect`` has that value ("" = absent)."""
        ...

    async def mark_pg_returned(self, pg_id: str) -> None: ...


@dataclass(frozen=True)
class Fence:
    """The lease a GCS term writes under: its holder id, checked by Redis in every fenced script,
    and ``check``, which raises :class:`LeaseLostError` when this process may no longer act."""

    holder: str
    check: Callable[[], None]


def _applied(result: Any) -> bool:
    if result == FENCED_OUT:
        raise LeaseLostError("Redis refused a write: the GCS lease has another holder")
    return bool(result)


class RedisGcsStore:
    """Both stores over the primary shard (an asyncio client) and its registered scripts.

    With a ``fence`` every write first checks the lease locally, and the table writes go through
    the fenced scripts, which Redis applies only while the lease holds ``fence.holder``; either
    failing raises :class:`LeaseLostError`.
    """

    def __init__(self, primary: Any, fence: Fence | None = None):
        self.primary = primary
        self.scripts = Scripts(primary)
        self.fence = fence
        self.fenced = FencedScripts(primary) if fence is not None else None

    async def _hfield_cas(self, k: list[str], a: list[str], client: Any = None) -> Any:
        """``hfield_cas`` (fenced when the store is); returns the script's result (a pipeline's call when
        ``client`` is one)."""
        if self.fence is None or self.fenced is None:
            return await self.scripts.hfield_cas(keys=k, args=a, client=client)
        self.fence.check()
        return await self.fenced.hfield_cas(keys=[*k, keys.gcs_lease_key()], args=[*a, self.fence.holder],
                                            client=client)

    async def _hset(self, key: str, mapping: Mapping[str, str], client: Any = None) -> Any:
        if self.fence is None or self.fenced is None:
            return await (client or self.primary).hset(key, mapping=dict(mapping))
        self.fence.check()
        args = [x for kv in mapping.items() for x in kv]
        return await self.fenced.hset(keys=[key, keys.gcs_lease_key()], args=[*args, self.fence.holder],
                                      client=client)

    # ---- cluster ---------------------------------------------------------------------------------

    async def nodes(self) -> list[NodeRecord]:
        return await tables.aread_nodes(self.primary)

    async def cluster_view(self, jobs: Sequence[int] | None = None) -> ClusterView:
        records, finished = await tables.aread_nodes_and_finished_jobs(self.primary, jobs)
        return ClusterView.from_records(records, finished)

    async def node_dead_cas(self, node_id: str) -> bool:
        """CAS the node ALIVE -> DEAD (announced on the node channel)."""
        k, a = tables.node_state_cas_args(node_id, tables.NodeState.ALIVE.value, tables.NodeState.DEAD)
        return _applied(await self._hfield_cas(k, a))

    # ---- jobs ------------------------------------------------------------------------------------

    async def next_job_id(self) -> int:
        if self.fence is not None:
            self.fence.check()
        return int(await self.primary.incr(keys.job_counter_key()))

    async def add_job(self, info: JobInfo) -> None:
        """Record the job's registration, then move it to RUNNING (announced on the job channel): one pipeline."""
        pipe = self.primary.pipeline(transaction=False)
        await self._hset(keys.jobs_key(), {str(info.job_id): info.to_json()}, client=pipe)
        k, a = tables.job_state_cas_args(info.job_id, "", JobState.RUNNING)
        await self._hfield_cas(k, a, client=pipe)
        for result in await pipe.execute():
            _applied(result)

    async def job_finished(self, job: str) -> bool:
        return await tables.ajob_finished(self.primary, job)

    async def cluster_token(self) -> str:
        return (await self.primary.hget(keys.cluster_key(), "token") or b"").decode()

    async def lease(self, op: str, holder: str, lease_s: float, address: str = "") -> int:
        """Run the ``gcs_lease`` script (``op``: acquire, renew, release): 1 done, 0 another holder,
        -1 the primary is not a cluster's (no shard map). Acquiring also publishes ``address``."""
        return int(await self.scripts.gcs_lease(keys=[keys.gcs_lease_key(), keys.cluster_key()],
                                                args=[op, holder, max(1, int(lease_s * 1000)), address]))

    # ---- actors ----------------------------------------------------------------------------------

    async def live_actor_ids(self) -> list[str]:
        return await tables.alive_actor_ids(self.primary)

    async def actor(self, actor_id: str) -> ActorEntry | None:
        return await tables.aread_actor(self.primary, actor_id)

    async def actors(self, actor_ids: Sequence[str]) -> list[ActorEntry]:
        return await tables.aread_actors(self.primary, actor_ids) if actor_ids else []

    async def actor_transition(self, actor_id: str, from_state: ActorState, from_attempt: int,
                               fields: Mapping[str, FieldValue]) -> bool:
        k, a = tables.actor_transition_call(actor_id, from_state.value, str(from_attempt), fields)
        if self.fence is None or self.fenced is None:
            return bool(await self.scripts.actor_transition(keys=k, args=a))
        self.fence.check()
        return _applied(await self.fenced.actor_transition(keys=[*k, keys.gcs_lease_key()],
                                                           args=[*a, self.fence.holder]))

    async def prune_dead_actors(self, keep: int, most: int) -> int:
        k, a = tables.actor_prune_call(keep, most)
        return int(await self.scripts.actor_prune(keys=k, args=a))

    # ---- placement groups ------------------------------------------------------------------------

    async def pg_ids(self) -> list[str]:
        return await tables.aplacement_group_ids(self.primary)

    async def pg(self, pg_id: str) -> PlacementGroupEntry | None:
        return await tables.aread_placement_group(self.primary, pg_id)

    async def pgs(self, pg_ids: Sequence[str]) -> list[PlacementGroupEntry]:
        return await tables.aread_placement_groups(self.primary, pg_ids) if pg_ids else []

    async def pg_state_cas(self, pg_id: str, old: PlacementGroupState, new: PlacementGroupState) -> bool:
        k, a = tables.pg_state_cas_args(pg_id, old, new)
        return _applied(await self._hfield_cas(k, a))

    async def pg_cas(self, pg_id: str, expect: Mapping[str, str], fields: Mapping[str, str]) -> bool:
        k, a = tables.pg_cas_args(pg_id, expect, fields)
        if self.fence is None or self.fenced is None:
            return bool(await self.scripts.hash_cas(keys=k, args=a))
        self.fence.check()
        return _applied(await self.fenced.hash_cas(keys=[*k, keys.gcs_lease_key()], args=[*a, self.fence.holder]))

    async def mark_pg_returned(self, pg_id: str) -> None:
        _applied(await self._hset(keys.placement_group_key(pg_id), {"returned": "1"}))
