"""A raylet restarted under its node ID holds again the bundles CREATED groups place on it."""

from __future__ import annotations

from rayredis.raylet.recovery import BundleRestore, committed_bundles
from rayredis.store.tables import PlacementGroupEntry, PlacementGroupState


def _pg(pg_id: str, state: PlacementGroupState, nodes: list[str], returned: bool = False) -> PlacementGroupEntry:
    return PlacementGroupEntry(pg_id=pg_id, state=state, bundles=[{"CPU": 1.0}, {"CPU": 2.0}, {"GPU": 1.0}],
                               strategy="PACK", nodes=nodes, returned=returned, txn_seq=3)


def test_only_created_groups_bundles_on_this_node_are_restored() -> None:
    me, other = "aa" * 16, "bb" * 16
    entries = [
        _pg("01", PlacementGroupState.CREATED, [me, other, me]),
        _pg("02", PlacementGroupState.CREATED, [other, other, other]),
        _pg("03", PlacementGroupState.PENDING, [me, me, me]),  # (its reservation is the GCS's to finish)
        _pg("04", PlacementGroupState.REMOVED, [me, me, me]),
        _pg("05", PlacementGroupState.CREATED, [me]),  # malformed: nodes do not match bundles
    ]
    assert committed_bundles(entries, me) == [BundleRestore("01", [0, 2], [{"CPU": 1.0}, {"GPU": 1.0}], 3)]
