"""Scheduling strategies (Ray's classes) and how they are written into a TaskSpec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rayredis.common.resources import bundle_resource_names
from rayredis.options import check_placement_group_options
from rayredis.protocol._generated import rayredis_pb2 as pb

if TYPE_CHECKING:
    from rayredis.util.placement_group import PlacementGroup


class PlacementGroupSchedulingStrategy:
    """Run the task or actor in a bundle of ``placement_group`` (any bundle when the index is -1)."""

    def __init__(self, placement_group: PlacementGroup, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None):
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


class NodeAffinitySchedulingStrategy:
    """Run on the node with ``node_id`` (hex); with ``soft=True`` another node may be used if it is gone."""

    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False):
        if not isinstance(node_id, str):
            raise TypeError("NodeAffinitySchedulingStrategy(node_id=...) takes the node ID as a hex string, "
                            "e.g. rayredis.get_runtime_context().get_node_id().")
        self.node_id = node_id
        self.soft = soft


SchedulingStrategyT = Any


def fill_strategy(spec: pb.TaskSpec, opts: dict[str, Any]) -> None:
    """Write the scheduling strategy and, for placement groups, the bundle resources into ``spec``."""
    check_placement_group_options(opts)  # the decorator's and .options()'s, merged
    strat = opts.get("scheduling_strategy")
    pg = opts.get("placement_group")
    if pg is not None and pg != "default" and strat is None:
        strat = PlacementGroupSchedulingStrategy(pg, opts.get("placement_group_bundle_index", -1))
    if strat is None or strat == "DEFAULT":
        return
    if strat == "SPREAD":
        spec.strategy.kind = pb.STRATEGY_SPREAD
    elif isinstance(strat, NodeAffinitySchedulingStrategy):
        spec.strategy.kind = pb.STRATEGY_NODE_AFFINITY
        spec.strategy.node_id = bytes.fromhex(strat.node_id)
        spec.strategy.soft = strat.soft
    elif isinstance(strat, PlacementGroupSchedulingStrategy):
        pg_obj = strat.placement_group
        idx = strat.placement_group_bundle_index
        if idx >= pg_obj.bundle_count:
            raise ValueError(f"placement_group_bundle_index={idx} is out of range: the placement group has "
                             f"{pg_obj.bundle_count} bundles.")
        _fill_placement_group(spec, pg_obj.id.binary(), idx, bool(strat.placement_group_capture_child_tasks))
    else:
        raise ValueError(f"Unknown scheduling_strategy {strat!r}: use 'DEFAULT', 'SPREAD', "
                         "NodeAffinitySchedulingStrategy(...) or PlacementGroupSchedulingStrategy(...).")


def _fill_placement_group(spec: pb.TaskSpec, pg_id: bytes, idx: int, capture: bool) -> None:
    """Place ``spec`` in bundle ``idx`` (-1: any) of the group: its demand becomes bundle resources.
    As in Ray, a demand on one bundle takes the group's wildcard (any-bundle) resources too, so
    tasks on a given bundle and tasks on any bundle never use the same capacity twice."""
    spec.strategy.kind = pb.STRATEGY_PLACEMENT_GROUP
    spec.strategy.placement_group_id = pg_id
    spec.strategy.bundle_index = idx
    spec.strategy.capture_child_tasks = capture
    pg_hex = pg_id.hex()
    original = dict(spec.resources)
    spec.resources.clear()
    for name, amount in [*original.items(), ("bundle", 0.001)]:
        indexed, wildcard = bundle_resource_names(name, pg_hex, idx)
        spec.resources[wildcard] = amount
        if idx >= 0:
            spec.resources[indexed] = amount


def capture_in_parent_group(spec: pb.TaskSpec, opts: dict[str, Any], pg_id: bytes, capture: bool) -> None:
    """Ray's ``placement_group_capture_child_tasks``: a task or actor submitted from a task or actor
    whose group captures its children, and that names no strategy or group of its own, goes into any
    bundle of that group (and captures its own children in turn)."""
    if not capture or not pg_id or spec.strategy.kind != pb.STRATEGY_DEFAULT:
        return
    if opts.get("scheduling_strategy") is not None or opts.get("placement_group", "default") != "default":
        return  # (an explicit "DEFAULT" or placement_group=None opts out, as in Ray)
    _fill_placement_group(spec, pg_id, -1, True)
