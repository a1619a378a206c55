"""Placement groups: gang-reserved resource bundles kept in the Redis placement-group table."""

from __future__ import annotations

import json
import time
from typing import Any

from rayredis import ids
from rayredis.store import keys

VALID_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class PlacementGroupID:
    def __init__(self, b: bytes):
        self._b = b

    def binary(self) -> bytes:
        return self._b

    def hex(self) -> str:
        return self._b.hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupID) and other._b == self._b

    def __hash__(self) -> int:
        return hash(self._b)

    def __repr__(self) -> str:
        return f"PlacementGroupID({self.hex()})"


class PlacementGroup:
    """A handle to a placement group; ``ready()`` gives an ObjectRef that resolves once it is reserved."""

    def __init__(self, pg_id: PlacementGroupID, bundles: list[dict[str, float]], strategy: str = "PACK"):
        self.id = pg_id
        self.bundle_specs = bundles
        self.strategy = strategy

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self) -> Any:
        """An ObjectRef resolving to True once every bundle is reserved (a task run inside the group)."""
        from rayredis.remote_function import RemoteFunction
        from rayredis.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        rf = RemoteFunction(_bundle_reservation_check, {"num_cpus": 0})
        return rf.options(scheduling_strategy=PlacementGroupSchedulingStrategy(self, -1), max_retries=-1).remote()

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Block until the placement group is created; False on timeout."""
        from rayredis.api import _worker

        deadline = time.monotonic() + timeout_seconds
        p = _worker().store.primary
        while True:
            if p.hget(keys.placement_group_key(self.id.hex()), "state") == b"CREATED":
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def __reduce__(self) -> Any:
        return (PlacementGroup, (self.id, self.bundle_specs, self.strategy))

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()}, {self.strategy}, {self.bundle_specs})"


def _bundle_reservation_check() -> bool:
    return True


def placement_group(bundles: list[dict[str, float]], strategy: str = "PACK", name: str = "",
                    lifetime: str | None = None, _max_cpu_fraction_per_node: float | None = None) -> PlacementGroup:
    """Reserve ``bundles`` (each a resource dict) with ``strategy``; returns at once (see ``ready``)."""
    from rayredis.api import _worker

    if strategy not in VALID_STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy!r}; use one of {', '.join(VALID_STRATEGIES)}.")
    if not isinstance(bundles, list) or not bundles:
        raise ValueError("placement_group() needs a non-empty list of bundles, e.g. [{'CPU': 1}, {'CPU': 1}].")
    for b in bundles:
        if not isinstance(b, dict) or not b or any((not isinstance(v, (int, float))) or v < 0 for v in b.values()):
            raise ValueError(f"Bundle {b!r} is invalid: each bundle is a non-empty dict of resource -> amount.")
        if all(v == 0 for v in b.values()):
            raise ValueError(f"Bundle {b!r} asks for no resources; give at least one positive amount.")
    if lifetime not in (None, "detached"):
        raise ValueError("lifetime must be None or 'detached'.")
    cw = _worker()
    pg_id = PlacementGroupID(ids.new_id(16))
    p = cw.store.primary
    pipe = p.pipeline(transaction=True)
    pipe.hset(keys.placement_group_key(pg_id.hex()), mapping={
        "state": "PENDING", "bundles": json.dumps([{k: float(v) for k, v in b.items()} for b in bundles]),
        "strategy": strategy, "name": name, "job": cw.job_id, "detached": int(lifetime == "detached"),
        "namespace": cw.namespace, "created": time.time(),
    })
    pipe.sadd(keys.placement_groups_index_key(), pg_id.hex())
    pipe.publish(keys.placement_group_channel(), pg_id.hex())
    pipe.execute()
    return PlacementGroup(pg_id, [dict(b) for b in bundles], strategy)


def remove_placement_group(pg: PlacementGroup) -> None:
    """Release the group's reservation; tasks and actors using it lose their resources."""
    from rayredis.api import _worker
    from rayredis.store.scripts import Scripts

    cw = _worker()
    s = Scripts(cw.store.primary)
    k = keys.placement_group_key(pg.id.hex())
    for state in ("PENDING", "CREATED"):
        if s.hfield_cas(keys=[k], args=["state", state, "REMOVED", keys.placement_group_channel(), pg.id.hex()]):
            return


def get_placement_group(name: str) -> PlacementGroup:
    from rayredis.api import _worker

    p = _worker().store.primary
    for raw in p.smembers(keys.placement_groups_index_key()):
        e = p.hgetall(keys.placement_group_key(raw.decode()))
        if e.get(b"name", b"").decode() == name and e.get(b"state") != b"REMOVED":
            return PlacementGroup(PlacementGroupID(bytes.fromhex(raw.decode())), json.loads(e[b"bundles"]),
                                  e[b"strategy"].decode())
    raise ValueError(f"Failed to look up placement group with name {name!r}.")


def placement_group_table(pg: PlacementGroup | None = None) -> dict[str, Any]:
    """State of one placement group (or all of them, keyed by id), as in Ray."""
    from rayredis.api import _worker

    p = _worker().store.primary

    def one(pid: str) -> dict[str, Any]:
        e = p.hgetall(keys.placement_group_key(pid))
        return {"placement_group_id": pid, "name": e.get(b"name", b"").decode(),
                "strategy": e.get(b"strategy", b"").decode(), "state": e.get(b"state", b"").decode(),
                "bundles": dict(enumerate(json.loads(e.get(b"bundles", b"[]")))),
                "bundles_to_node_id": dict(enumerate(json.loads(e.get(b"nodes", b"[]"))))}

    if pg is not None:
        return one(pg.id.hex())
    return {raw.decode(): one(raw.decode()) for raw in p.smembers(keys.placement_groups_index_key())}


def get_current_placement_group() -> PlacementGroup | None:
    """The placement group the current task or actor was scheduled into (None on the driver)."""
    from rayredis.api import _worker

    cw = _worker()
    pg_id = cw.ctx.placement_group_id
    if not pg_id:
        return None
    e = cw.store.primary.hgetall(keys.placement_group_key(pg_id.hex()))
    if not e:
        return None
    return PlacementGroup(PlacementGroupID(pg_id), json.loads(e[b"bundles"]), e[b"strategy"].decode())
