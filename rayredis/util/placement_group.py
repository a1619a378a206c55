"""Placement groups: gang-reserved resource bundles kept in the Redis placement-group table."""

from __future__ import annotations

import time
from typing import Any

import rayredis
from rayredis import ids
from rayredis._private.worker_context import get_worker
from rayredis.store import tables
from rayredis.store.scripts import Scripts
from rayredis.store.tables import PlacementGroupState
from rayredis.util.scheduling_strategies import PlacementGroupSchedulingStrategy

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
        # Through the public ``remote`` (resolved at call time, as Ray's placement_group does): the
        # remote-function module imports ``rayredis.util``, whose package init imports this module.
        rf = rayredis.remote(num_cpus=0)(_bundle_reservation_check)
        return rf.options(scheduling_strategy=PlacementGroupSchedulingStrategy(self, -1), max_retries=-1).remote()

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Block until the placement group is created; False on timeout."""
        deadline = time.monotonic() + timeout_seconds
        p = get_worker().store.primary
        while True:
            entry = tables.read_placement_group(p, self.id.hex())
            if entry is not None and entry.state is PlacementGroupState.CREATED:
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
    cw = get_worker()
    pg_id = PlacementGroupID(ids.new_id(16))
    pipe = cw.store.primary.pipeline(transaction=True)
    tables.queue_placement_group_create(pipe, pg_id.hex(), bundles, strategy, name=name, job=cw.job_id,
                                        detached=lifetime == "detached", namespace=cw.namespace,
                                        created=time.time())
    pipe.execute()
    return PlacementGroup(pg_id, [dict(b) for b in bundles], strategy)


def remove_placement_group(pg: PlacementGroup) -> None:
    """Release the group's reservation; tasks and actors using it lose their resources."""
    s = Scripts(get_worker().store.primary)
    for state in (PlacementGroupState.PENDING, PlacementGroupState.CREATED):
        cas_keys, cas_args = tables.pg_state_cas_args(pg.id.hex(), state, PlacementGroupState.REMOVED)
        if s.hfield_cas(keys=cas_keys, args=cas_args):
            return


def _handle(entry: tables.PlacementGroupEntry) -> PlacementGroup:
    return PlacementGroup(PlacementGroupID(bytes.fromhex(entry.pg_id)), entry.bundles, entry.strategy)


def get_placement_group(name: str) -> PlacementGroup:
    """The live (not removed) placement group called ``name``."""
    for e in tables.read_placement_groups(get_worker().store.primary):
        if e.name == name and e.state is not PlacementGroupState.REMOVED:
            return _handle(e)
    raise ValueError(f"Failed to look up placement group with name {name!r}.")


def _table_row(pg_id: str, e: tables.PlacementGroupEntry | None) -> dict[str, Any]:
    if e is None:  # not (or no longer) in the table: the fields read as empty
        return {"placement_group_id": pg_id, "name": "", "strategy": "", "state": "", "bundles": {},
                "bundles_to_node_id": {}}
    return {"placement_group_id": pg_id, "name": e.name, "strategy": e.strategy, "state": e.state.value,
            "bundles": dict(enumerate(e.bundles)), "bundles_to_node_id": dict(enumerate(e.nodes))}


def placement_group_table(pg: PlacementGroup | None = None) -> dict[str, Any]:
    """State of one placement group (or all of them, keyed by id), as in Ray."""
    p = get_worker().store.primary
    if pg is not None:
        return _table_row(pg.id.hex(), tables.read_placement_group(p, pg.id.hex()))
    return {e.pg_id: _table_row(e.pg_id, e) for e in tables.read_placement_groups(p)}


def get_current_placement_group() -> PlacementGroup | None:
    """The placement group the current task or actor was scheduled into (None on the driver)."""
    cw = get_worker()
    pg_id = cw.ctx.placement_group_id
    if not pg_id:
        return None
    e = tables.read_placement_group(cw.store.primary, pg_id.hex())
    return _handle(e) if e is not None else None
