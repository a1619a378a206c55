"""Typed records for each Redis control table, and the one place that reads and parses their entries.

Every table has a record class with a ``from_redis`` (or ``from_json``) constructor that parses the
raw entry exactly once. Readers come in pairs sharing one query builder and one parser: the query
builder queues commands on a pipeline (sync or asyncio, as the caller passes it down), and the
parser turns the pipeline's results into records, so the sync driver/CLI code and the asyncio
GCS/raylet code run the same logic with one round trip each. Key names come from ``keys``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from rayredis.actor_state import ActorState
from rayredis.common.node_view import NodeView
from rayredis.common.resources import ResourceSet
from rayredis.store import corrupt, keys
from rayredis.store.corrupt import CorruptEntryError

__all__ = ["CorruptEntryError"]  # (raised by every parser below: corrupt.py)

Raw = Mapping[bytes, bytes]


def _s(v: bytes | str | None, default: str = "") -> str:
    if v is None:
        return default
    return v.decode() if isinstance(v, bytes) else v


def _i(v: bytes | str | None, default: int = 0) -> int:
    return int(_s(v) or default)


def _is(v: bytes | str | None, value: str) -> bool:
    """Whether a raw field holds ``value`` (without decoding it: a corrupt field is just not equal)."""
    return v == value or v == value.encode()


class NodeState(str, Enum):
    """``rr:node_state`` values: a node is ALIVE from registration until it exits or misses heartbeats."""

    ALIVE = "ALIVE"
    DEAD = "DEAD"


class JobState(str, Enum):
    """``rr:job_state`` values."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"


class PlacementGroupState(str, Enum):
    """``rr:pg:<id>`` ``state`` values: PENDING until every bundle is committed, REMOVED is terminal."""

    PENDING = "PENDING"
    CREATED = "CREATED"
    REMOVED = "REMOVED"


class TxnPhase(str, Enum):
    """``rr:pg:<id>`` ``txn_phase`` values of a two-phase bundle reservation ("" = none in progress)."""

    #: Recorded before any raylet is asked to prepare: the raylets named may hold prepared bundles.
    PREPARING = "PREPARING"
    #: Every bundle of the reservation was prepared: it is committed, whichever GCS finishes it.
    PREPARED = "PREPARED"


class TaskState(str, Enum):
    """``rr:task:<id>`` ``state`` values (RUNNING is tracked by the raylet only, never written)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELLED)


# ---- nodes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeInfo:
    """A node's registration (``rr:nodes`` field), written once by its raylet."""

    node_id: str
    address: str
    node_ip: str
    resources: dict[str, float]
    object_store_memory: int = 0
    session_dir: str = ""
    pid: int = 0
    start_time: float = 0.0
    is_head: bool = False
    socket: str = ""
    #: ``host:port`` of the raylet's link server (other raylets' ordered links, docs/scheduling.md).
    link_address: str = ""

    @classmethod
    def from_json(cls, raw: bytes | str, entry: str = "an rr:nodes field") -> NodeInfo:
        """Parse; :class:`CorruptEntryError` (naming ``entry``) if it is not a node registration."""
        with corrupt.parsing(entry):
            d = corrupt.as_dict(json.loads(raw))
            if "node_id" not in d or "address" not in d:
                raise KeyError("node_id and address are required")
            return cls(node_id=corrupt.text(d, "node_id"), address=corrupt.text(d, "address"),
                       node_ip=corrupt.text(d, "node_ip"),
                       resources=corrupt.floats(d.get("resources", {}), "resources"),
                       object_store_memory=corrupt.integer(d.get("object_store_memory", 0), "object_store_memory"),
                       session_dir=corrupt.text(d, "session_dir"), pid=corrupt.integer(d.get("pid", 0), "pid"),
                       start_time=corrupt.number(d.get("start_time", 0.0), "start_time"),
                       is_head=bool(d.get("is_head", False)), socket=corrupt.text(d, "socket"),
                       link_address=corrupt.text(d, "link_address"))

    def to_json(self) -> str:
        return json.dumps({
            "node_id": self.node_id, "address": self.address, "node_ip": self.node_ip,
            "resources": self.resources, "object_store_memory": self.object_store_memory,
            "session_dir": self.session_dir, "pid": self.pid, "start_time": self.start_time,
            "is_head": self.is_head, "socket": self.socket, "link_address": self.link_address,
        })

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])


@dataclass(frozen=True)
class NodeLoad:
    """A node's last heartbeat report (``rr:node_load`` field); totals include bundle resources."""

    available: dict[str, float]
    total: dict[str, float]
    queued: int = 0
    running: int = 0
    object_store_used: int = 0
    object_store_capacity: int = 0
    num_objects: int = 0
    workers: int = 0
    time: float = 0.0

    @classmethod
    def from_json(cls, raw: bytes | str, entry: str = "an rr:node_load field") -> NodeLoad:
        """Parse; :class:`CorruptEntryError` (naming ``entry``) if it is not a load report."""
        with corrupt.parsing(entry):
            d = corrupt.as_dict(json.loads(raw))

            def count(k: str) -> int:
                return corrupt.integer(d.get(k, 0), k)

            return cls(available=corrupt.floats(d.get("available", {}), "available"),
                       total=corrupt.floats(d.get("total", {}), "total"), queued=count("queued"),
                       running=count("running"), object_store_used=count("object_store_used"),
                       object_store_capacity=count("object_store_capacity"), num_objects=count("num_objects"),
                       workers=count("workers"), time=corrupt.number(d.get("time", 0.0), "time"))

    def to_json(self) -> str:
        return json.dumps({
            "available": self.available, "total": self.total, "queued": self.queued, "running": self.running,
            "object_store_used": self.object_store_used, "object_store_capacity": self.object_store_capacity,
            "num_objects": self.num_objects, "workers": self.workers, "time": self.time,
        })


@dataclass(frozen=True)
class NodeRecord:
    """One node joined across the node tables: registration, liveness, last load and heartbeats."""

    node_id: str
    state: str  # a NodeState value, or "UNKNOWN" for a node that has a state but no registration yet
    info: NodeInfo | None
    load: NodeLoad | None = None
    heartbeats: int = 0

    @property
    def alive(self) -> bool:
        return self.state == NodeState.ALIVE.value and self.info is not None

    def view(self) -> NodeView:
        """The scheduler's view: the heartbeat's totals (bundles included), else the registration's."""
        assert self.info is not None
        res = self.info.resources
        return NodeView(node_id=self.node_id, address=self.info.address,
                        total=ResourceSet.from_floats(self.load.total if self.load else res),
                        available=ResourceSet.from_floats(self.load.available if self.load else res),
                        queued=self.load.queued if self.load else 0)


def queue_nodes(pipe: Any) -> None:
    """Queue the four node-table reads on ``pipe`` (parse the results with :func:`parse_nodes`)."""
    pipe.hgetall(keys.nodes_key())
    pipe.hgetall(keys.node_state_key())
    pipe.hgetall(keys.node_load_key())
    pipe.hgetall(keys.node_heartbeat_key())


def parse_nodes(results: Sequence[Any]) -> list[NodeRecord]:
    """Every node that has registered or has a state, sorted by node id."""
    infos, states, loads, beats = results[:4]
    out = []
    for nid in sorted(set(infos) | set(states)):
        # A corrupt entry is logged and left out (a node ID that is not hex, a registration that does
        # not parse), or read as absent (a load report, a heartbeat count).
        record = corrupt.skip(_node_record, nid, infos, states, loads, beats)
        if record is not None:
            out.append(record)
    return out


def _node_record(nid: bytes, infos: Raw, states: Raw, loads: Raw, beats: Raw) -> NodeRecord:
    with corrupt.parsing(f"{keys.nodes_key()}[{nid!r}]"):
        node_id = _s(nid)
        bytes.fromhex(node_id)  # (every consumer turns it into bytes)
    state = corrupt.skip(lambda: _field(keys.node_state_key(), nid, states.get(nid), "UNKNOWN")) or "UNKNOWN"
    info = NodeInfo.from_json(infos[nid], f"{keys.nodes_key()}[{node_id}]") if nid in infos else None
    load = corrupt.skip(lambda: NodeLoad.from_json(loads[nid], f"{keys.node_load_key()}[{node_id}]")) \
        if nid in loads else None
    heartbeats = corrupt.skip(lambda: int(_field(keys.node_heartbeat_key(), nid, beats.get(nid), "0"))) or 0
    return NodeRecord(node_id=node_id, state=state, info=info, load=load, heartbeats=heartbeats)


def _field(key: str, field_name: bytes, v: bytes | str | None, default: str) -> str:
    """A hash field's value as text; :class:`CorruptEntryError` if it is not UTF-8 or, for a
    number's field (``default`` "0"), not an integer."""
    with corrupt.parsing(f"{key}[{field_name!r}]"):
        out = _s(v, default)
        if default == "0":
            int(out)
        return out


def read_nodes(primary: Any) -> list[NodeRecord]:
    """All nodes, from a blocking client of the primary (one round trip)."""
    pipe = primary.pipeline(transaction=False)
    queue_nodes(pipe)
    return parse_nodes(pipe.execute())


async def aread_nodes(primary: Any) -> list[NodeRecord]:
    """All nodes, from an asyncio client of the primary (one round trip)."""
    pipe = primary.pipeline(transaction=False)
    queue_nodes(pipe)
    return parse_nodes(await pipe.execute())


def alive(nodes: Sequence[NodeRecord]) -> list[NodeRecord]:
    """The registered ALIVE nodes among ``nodes``, head first, then by node id."""
    return sorted((n for n in nodes if n.alive), key=lambda n: (not n.info.is_head if n.info else True, n.node_id))


async def anode_info(primary: Any, node_id: str) -> NodeInfo | None:
    """``node_id``'s registration, None if there is none; :class:`CorruptEntryError` if it does not parse."""
    raw = await primary.hget(keys.nodes_key(), node_id)
    return NodeInfo.from_json(raw, f"{keys.nodes_key()}[{node_id}]") if raw else None


async def anode_dead(primary: Any, node_id: str) -> bool:
    """Whether ``node_id`` was declared DEAD (a raylet started under it must fence)."""
    return _is(await primary.hget(keys.node_state_key(), node_id), NodeState.DEAD.value)


def node_alive(primary: Any, node_id: str) -> bool:
    """Whether ``node_id`` is ALIVE, from a blocking client of the primary."""
    return _is(primary.hget(keys.node_state_key(), node_id), NodeState.ALIVE.value)


def node_state_cas_args(node_id: str, old: str, new: NodeState) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of the ``hfield_cas`` script that moves a node from ``old`` to ``new``."""
    return [keys.node_state_key()], [node_id, old, new.value, keys.node_channel(), node_id]


# ---- jobs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobInfo:
    """A job's registration (``rr:jobs`` field), written by the GCS."""

    job_id: int
    driver_pid: int
    node_id: str
    namespace: str
    entrypoint: str = ""
    start_time: float = 0.0

    @classmethod
    def from_json(cls, raw: bytes | str, entry: str = "an rr:jobs field") -> JobInfo:
        """Parse; :class:`CorruptEntryError` (naming ``entry``) if it is not a job registration."""
        with corrupt.parsing(entry):
            d = corrupt.as_dict(json.loads(raw))
            return cls(job_id=corrupt.integer(d["job_id"], "job_id"),
                       driver_pid=corrupt.integer(d.get("driver_pid", 0), "driver_pid"),
                       node_id=corrupt.text(d, "node_id"), namespace=corrupt.text(d, "namespace"),
                       entrypoint=corrupt.text(d, "entrypoint"),
                       start_time=corrupt.number(d.get("start_time", 0.0), "start_time"))

    def to_json(self) -> str:
        return json.dumps({"job_id": self.job_id, "driver_pid": self.driver_pid, "node_id": self.node_id,
                           "namespace": self.namespace, "entrypoint": self.entrypoint,
                           "start_time": self.start_time})


def job_state_cas_args(job_id: int | str, old: str, new: JobState) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of the ``hfield_cas`` script that moves a job from ``old`` to ``new``."""
    return [keys.job_state_key()], [str(job_id), old, new.value, keys.job_channel(), str(job_id)]


async def ajob_finished(primary: Any, job_id: int | str) -> bool:
    return _is(await primary.hget(keys.job_state_key(), str(job_id)), JobState.FINISHED.value)


async def afinished_jobs(primary: Any) -> set[int]:
    states = await primary.hgetall(keys.job_state_key())
    return _finished(states.items())


def _job_id(j: bytes) -> int:
    return int(_field(keys.job_state_key(), j, j, "0"))


def _finished(states: Any) -> set[int]:
    """The job IDs among ``(job, state)`` pairs whose state is FINISHED (corrupt pairs logged, skipped)."""
    out = set()
    for j, s in states:
        job = corrupt.skip(_job_id, j)
        if job is not None and _is(s, JobState.FINISHED.value):
            out.add(job)
    return out


async def aread_nodes_and_finished_jobs(primary: Any, jobs: Sequence[int] | None = None
                                        ) -> tuple[list[NodeRecord], set[int]]:
    """All nodes and which of ``jobs`` finished (every finished job when None), in one round trip."""
    pipe = primary.pipeline(transaction=False)
    queue_nodes(pipe)
    wanted = None if jobs is None else sorted(set(jobs))
    if wanted is None:
        pipe.hgetall(keys.job_state_key())
    elif wanted:
        pipe.hmget(keys.job_state_key(), [str(j) for j in wanted])
    results = await pipe.execute()
    finished: set[int] = set()
    if wanted is None:
        finished = _finished(results[4].items())
    elif wanted:
        finished = {j for j, s in zip(wanted, results[4]) if _is(s, JobState.FINISHED.value)}
    return parse_nodes(results), finished


# ---- actors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActorEntry:
    """One ``rr:actor:<id>`` hash, parsed (see ``keys.actor_key`` for the writers)."""

    actor_id: str
    state: ActorState
    spec: bytes = b""
    node: str = ""
    worker: str = ""
    pid: int = 0
    attempt: int = -1
    num_restarts: int = 0
    max_restarts: int = 0
    max_task_retries: int = 0
    name: str = ""
    namespace: str = ""
    name_key: str = ""
    job: int = 0
    detached: bool = False
    class_name: str = ""
    methods: dict[str, Any] = field(default_factory=dict)
    is_async: bool = False
    owner_node: str = ""
    death_cause: str = ""

    @classmethod
    def from_redis(cls, actor_id: str, raw: Raw) -> ActorEntry | None:
        """The entry, or None when the hash is empty (no such actor); :class:`CorruptEntryError` if it
        does not parse."""
        if not raw:
            return None
        with corrupt.parsing(keys.actor_key(actor_id)):
            return cls._parse(actor_id, raw)

    @classmethod
    def _parse(cls, actor_id: str, raw: Raw) -> ActorEntry:
        methods = raw.get(b"methods")
        spec = raw.get(b"spec", b"")
        if not isinstance(spec, bytes):
            raise TypeError("spec: expected bytes")
        return cls(
            actor_id=actor_id, state=ActorState(_s(raw.get(b"state"), ActorState.PENDING_CREATION.value)),
            spec=spec, node=_s(raw.get(b"node")), worker=_s(raw.get(b"worker")),
            pid=_i(raw.get(b"pid")), attempt=_i(raw.get(b"attempt"), -1),
            num_restarts=_i(raw.get(b"num_restarts")), max_restarts=_i(raw.get(b"max_restarts")),
            max_task_retries=_i(raw.get(b"max_task_retries")), name=_s(raw.get(b"name")),
            namespace=_s(raw.get(b"namespace")), name_key=_s(raw.get(b"name_key")), job=_i(raw.get(b"job")),
            detached=_s(raw.get(b"detached")) == "1", class_name=_s(raw.get(b"class_name")),
            methods=corrupt.as_dict(json.loads(methods)) if methods else {}, is_async=_s(raw.get(b"is_async")) == "1",
            owner_node=_s(raw.get(b"owner_node")), death_cause=_s(raw.get(b"death_cause")))


def read_actor(primary: Any, actor_id: str) -> ActorEntry | None:
    return ActorEntry.from_redis(actor_id, primary.hgetall(keys.actor_key(actor_id)))


async def aread_actor(primary: Any, actor_id: str) -> ActorEntry | None:
    return ActorEntry.from_redis(actor_id, await primary.hgetall(keys.actor_key(actor_id)))


async def aread_actors(primary: Any, actor_ids: Sequence[str]) -> list[ActorEntry]:
    """Several actors in one round trip (missing ones are left out)."""
    pipe = primary.pipeline(transaction=False)
    for aid in actor_ids:
        pipe.hgetall(keys.actor_key(aid))
    out = []
    for aid, raw in zip(actor_ids, await pipe.execute()):
        e = corrupt.skip(ActorEntry.from_redis, aid, raw)  # (a corrupt one is logged, left out)
        if e is not None:
            out.append(e)
    return out


async def alive_actor_ids(primary: Any) -> list[str]:
    """The actors not DEAD (``keys.live_actors_key``): what a rescan has to look at."""
    return sorted(_s(r) for r in await primary.smembers(keys.live_actors_key()))


def read_named_actor(primary: Any, namespace: str, name: str) -> ActorEntry | None:
    """The actor holding ``namespace/name``, or None."""
    aid = primary.hget(keys.named_actors_key(), f"{namespace}/{name}")
    return read_actor(primary, _s(aid)) if aid else None


def actor_transition_call(actor_id: str, allowed: str, attempt: str,
                          fields: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of the ``actor_transition`` CAS script: from a state in ``allowed`` (comma list)
    and ``attempt`` ("" for any) to ``fields``, announced on the actor channel."""
    args: list[Any] = [allowed, attempt, keys.actor_channel(), actor_id]
    for k, v in fields.items():
        args += [k, v.value if isinstance(v, Enum) else v]
    return [keys.actor_key(actor_id), keys.named_actors_key(), keys.live_actors_key(), keys.dead_actors_key()], args


def actor_prune_call(keep: int, most: int) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of the ``actor_prune`` script: delete the oldest DEAD actors beyond ``keep``,
    at most ``most`` in one call."""
    return [keys.dead_actors_key(), keys.actors_index_key()], [keep, most]


def actor_create_call(actor_id: str, fields: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of the ``actor_create`` script: a new entry with ``fields``, claiming its
    ``name_key`` (if not empty), added to the index and announced on the actor channel."""
    args: list[Any] = [actor_id, fields.get("name_key", ""), keys.actor_channel()]
    for k, v in fields.items():
        args += [k, v.value if isinstance(v, Enum) else v]
    return [keys.actor_key(actor_id), keys.named_actors_key(), keys.actors_index_key(), keys.live_actors_key()], args


# ---- placement groups --------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleTxn:
    """A two-phase reservation of some bundles of a group (``rr:pg:<id>`` ``txn``): all of them for a
    PENDING group, those of dead nodes for a CREATED one. ``seq`` numbers the group's reservations."""

    seq: int
    #: (bundle index, node) for each bundle the reservation places.
    moves: tuple[tuple[int, str], ...]

    def to_json(self) -> str:
        return json.dumps({"seq": self.seq, "moves": [[i, n] for i, n in self.moves]})

    @classmethod
    def from_json(cls, s: str) -> BundleTxn:
        d = corrupt.as_dict(json.loads(s))
        moves = d["moves"]
        if not isinstance(moves, list) or not all(isinstance(m, list) and len(m) == 2 and isinstance(m[1], str)
                                                  for m in moves):
            raise TypeError("txn moves: expected a list of [bundle index, node] pairs")
        return cls(corrupt.integer(d["seq"], "txn seq"), tuple((corrupt.integer(i, "txn bundle index"), n)
                                                              for i, n in moves))

    def nodes(self) -> tuple[str, ...]:
        """The nodes it places bundles on, in order of first use."""
        return tuple(dict.fromkeys(n for _, n in self.moves))


@dataclass(frozen=True)
class PlacementGroupEntry:
    """One ``rr:pg:<id>`` hash, parsed."""

    pg_id: str
    state: PlacementGroupState
    bundles: list[dict[str, float]]
    strategy: str
    nodes: list[str] = field(default_factory=list)
    name: str = ""
    namespace: str = ""
    job: int = 0
    detached: bool = False
    created: float = 0.0
    returned: bool = False
    #: The reservation in progress (None: none) and its phase.
    txn: BundleTxn | None = None
    txn_phase: TxnPhase | None = None
    #: The ``seq`` of the group's last reservation (0: none yet).
    txn_seq: int = 0

    @classmethod
    def from_redis(cls, pg_id: str, raw: Raw) -> PlacementGroupEntry | None:
        """The entry, or None when the hash is empty; :class:`CorruptEntryError` if it does not parse."""
        if not raw:
            return None
        with corrupt.parsing(keys.placement_group_key(pg_id)):
            return cls._parse(pg_id, raw)

    @classmethod
    def _parse(cls, pg_id: str, raw: Raw) -> PlacementGroupEntry:
        txn, phase = _s(raw.get(b"txn")), _s(raw.get(b"txn_phase"))
        bundles = json.loads(raw.get(b"bundles", b"[]"))
        if not isinstance(bundles, list):
            raise TypeError("bundles: expected a list")
        return cls(pg_id=pg_id, state=PlacementGroupState(_s(raw.get(b"state"), "PENDING")),
                   bundles=[corrupt.floats(b, "bundle") for b in bundles], strategy=_s(raw.get(b"strategy"), "PACK"),
                   nodes=corrupt.strings(json.loads(raw.get(b"nodes", b"[]")), "nodes"), name=_s(raw.get(b"name")),
                   namespace=_s(raw.get(b"namespace")), job=_i(raw.get(b"job")),
                   detached=_s(raw.get(b"detached")) == "1", created=float(_s(raw.get(b"created")) or 0.0),
                   returned=_s(raw.get(b"returned")) == "1",
                   txn=BundleTxn.from_json(txn) if txn and phase else None,
                   txn_phase=TxnPhase(phase) if txn and phase else None, txn_seq=_i(raw.get(b"txn_seq")))


def read_placement_group(primary: Any, pg_id: str) -> PlacementGroupEntry | None:
    return PlacementGroupEntry.from_redis(pg_id, primary.hgetall(keys.placement_group_key(pg_id)))


async def aread_placement_group(primary: Any, pg_id: str) -> PlacementGroupEntry | None:
    return PlacementGroupEntry.from_redis(pg_id, await primary.hgetall(keys.placement_group_key(pg_id)))


def read_placement_groups(primary: Any) -> list[PlacementGroupEntry]:
    """Every placement group, in one round trip after the index read."""
    ids = sorted(_s(r) for r in primary.smembers(keys.placement_groups_index_key()))
    pipe = primary.pipeline(transaction=False)
    for pg in ids:
        pipe.hgetall(keys.placement_group_key(pg))
    return [e for pg, raw in zip(ids, pipe.execute())
            if (e := corrupt.skip(PlacementGroupEntry.from_redis, pg, raw))]


async def aplacement_group_ids(primary: Any) -> list[str]:
    return sorted(_s(r) for r in await primary.smembers(keys.placement_groups_index_key()))


async def aread_placement_groups(primary: Any, pg_ids: Sequence[str]) -> list[PlacementGroupEntry]:
    """Several placement groups in one round trip (missing ones are left out)."""
    pipe = primary.pipeline(transaction=False)
    for pg in pg_ids:
        pipe.hgetall(keys.placement_group_key(pg))
    return [e for pg, raw in zip(pg_ids, await pipe.execute())
            if (e := corrupt.skip(PlacementGroupEntry.from_redis, pg, raw))]


def pg_state_cas_args(pg_id: str, old: PlacementGroupState,
                      new: PlacementGroupState) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of the ``hfield_cas`` script on a placement group's ``state`` field."""
    return [keys.placement_group_key(pg_id)], ["state", old.value, new.value, keys.placement_group_channel(), pg_id]


def pg_cas_args(pg_id: str, expect: Mapping[str, str], fields: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of the ``hash_cas`` script on a placement group: set ``fields`` if every field of
    ``expect`` has its value there ("" = absent), announced on the placement-group channel."""
    conditions = [x for kv in expect.items() for x in kv]
    sets = [x for kv in fields.items() for x in kv]
    return ([keys.placement_group_key(pg_id)],
            [str(len(expect)), *conditions, keys.placement_group_channel(), pg_id, *sets])


def queue_placement_group_create(pipe: Any, pg_id: str, bundles: Sequence[Mapping[str, float]], strategy: str, *,
                                 name: str, job: int, detached: bool, namespace: str, created: float) -> None:
    """Queue a new PENDING placement group on ``pipe`` (a transaction): its entry, index and announcement."""
    pipe.hset(keys.placement_group_key(pg_id), mapping={
        "state": PlacementGroupState.PENDING.value,
        "bundles": json.dumps([{k: float(v) for k, v in b.items()} for b in bundles]),
        "strategy": strategy, "name": name, "job": job, "detached": int(detached), "namespace": namespace,
        "created": created,
    })
    pipe.sadd(keys.placement_groups_index_key(), pg_id)
    pipe.publish(keys.placement_group_channel(), pg_id)


# ---- tasks and objects (data shards) -----------------------------------------------------------


@dataclass(frozen=True)
class TaskEntry:
    """One ``rr:task:<id>`` hash, parsed (``spec`` is the serialized TaskSpec: the lineage)."""

    task_id: str
    state: TaskState
    spec: bytes = b""
    node: str = ""
    attempt: int = 0
    job: int = 0
    #: The worker that ran it ("" until it ended, or when it ended without running).
    worker: str = ""
    #: Wall-clock seconds: received by its first raylet, ended (0.0: not recorded).
    creation_time: float = 0.0
    end_time: float = 0.0
    #: Wall-clock seconds when the raylet that ran it handed it to its worker (0.0: not recorded).
    start_time: float = 0.0
    #: Ray's ``ErrorType`` name of a failure ("" otherwise).
    error_type: str = ""

    @classmethod
    def from_redis(cls, task_id: str, raw: Raw) -> TaskEntry | None:
        if not raw:
            return None
        with corrupt.parsing(keys.task_key(task_id)):
            spec = raw.get(b"spec", b"")
            if not isinstance(spec, bytes):
                raise TypeError("spec: expected bytes")
            return cls(task_id=task_id, state=TaskState(_s(raw.get(b"state"), "PENDING")), spec=spec,
                       node=_s(raw.get(b"node")), attempt=_i(raw.get(b"attempt")), job=_i(raw.get(b"job")),
                       worker=_s(raw.get(b"worker")), creation_time=float(_s(raw.get(b"creation_time")) or 0.0),
                       end_time=float(_s(raw.get(b"end_time")) or 0.0), error_type=_s(raw.get(b"error_type")),
                       start_time=float(_s(raw.get(b"start_time")) or 0.0))


@dataclass(frozen=True)
class ObjectEntry:
    """One ``rr:obj:<id>`` hash, parsed: size, producing task, error flag and the nodes holding copies."""

    object_id: str
    size: int
    task: str = ""
    error: bool = False
    locations: frozenset[str] = frozenset()

    @classmethod
    def from_redis(cls, object_id: str, raw: Raw) -> ObjectEntry | None:
        if not raw:
            return None
        with corrupt.parsing(keys.object_key(object_id)):
            locs = frozenset(_s(k)[4:] for k in raw if _s(k).startswith("loc:"))
            return cls(object_id=object_id, size=_i(raw.get(b"size")), task=_s(raw.get(b"task")),
                       error=_s(raw.get(b"error")) == "1", locations=locs)


def location_field(node_hex: str) -> str:
    """The ``rr:obj:<id>`` field that records a copy on ``node_hex``."""
    return "loc:" + node_hex


def queue_object_sealed(pipe: Any, object_id_hex: str, size: int, is_error: bool, node_hex: str) -> None:
    """Record a new copy of an object on ``node_hex`` and announce it on the shard's object channel."""
    pipe.hset(keys.object_key(object_id_hex), mapping={
        "size": size, "task": object_id_hex[:32], "error": int(is_error), location_field(node_hex): 1})
    pipe.publish(keys.object_channel(), object_id_hex)
