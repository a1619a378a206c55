"""The GCS's pure placement decisions for actors and placement-group bundles."""

from __future__ import annotations

import pytest

from rayredis.common.node_view import NodeView
from rayredis.common.resources import ResourceSet
from rayredis.gcs.scheduling import pick_node_for_actor, place_bundles


def rs(**amounts: float) -> ResourceSet:
    return ResourceSet.from_floats(amounts)


def node(node_id: str, total: dict[str, float], available: dict[str, float] | None = None,
         queued: int = 0) -> NodeView:
    return NodeView(node_id, f"addr-{node_id}", ResourceSet.from_floats(total),
                    ResourceSet.from_floats(total if available is None else available), queued)


# ---- actors ---------------------------------------------------------------------------------------


def test_no_nodes_or_no_feasible_node() -> None:
    assert pick_node_for_actor([], rs(CPU=1)) is None
    assert pick_node_for_actor([node("a", {"CPU": 2})], rs(CPU=3)) is None
    assert pick_node_for_actor([node("a", {"CPU": 2})], rs(GPU=1)) is None


def test_feasibility_uses_total_not_available() -> None:
    busy = node("a", {"CPU": 2}, {"CPU": 0}, queued=5)
    got = pick_node_for_actor([busy], rs(CPU=2))
    assert got is busy


def test_prefers_available_now_then_fewer_queued_then_fewer_placed() -> None:
    full = node("a", {"CPU": 4}, {"CPU": 0}, queued=0)
    free_busy_queue = node("b", {"CPU": 4}, {"CPU": 4}, queued=3)
    free_short_queue = node("c", {"CPU": 4}, {"CPU": 4}, queued=1)
    nodes = [full, free_busy_queue, free_short_queue]
    assert pick_node_for_actor(nodes, rs(CPU=1)) is free_short_queue

    twin1 = node("x", {"CPU": 4})
    twin2 = node("y", {"CPU": 4})
    assert pick_node_for_actor([twin1, twin2], rs(CPU=1)) is twin1  # tie-break by id
    got = pick_node_for_actor([twin1, twin2], rs(CPU=1), placed_counts={"x": 2, "y": 1})
    assert got is twin2


def test_burst_of_creations_spreads_with_placed_counts() -> None:
    nodes = [node(n, {"CPU": 8}) for n in ("a", "b", "c")]
    counts: dict[str, int] = {}
    picks = []
    for _ in range(6):
        n = pick_node_for_actor(nodes, rs(CPU=1), placed_counts=counts)
        assert n is not None
        counts[n.node_id] = counts.get(n.node_id, 0) + 1
        picks.append(n.node_id)
    assert counts == {"a": 2, "b": 2, "c": 2}


def test_zero_resource_actor_fits_anywhere() -> None:
    nodes = [node("a", {"CPU": 0.5}, {}), node("b", {"custom": 1})]
    assert pick_node_for_actor(nodes, ResourceSet()) is not None


def test_hard_affinity() -> None:
    a = node("a", {"CPU": 4}, {"CPU": 0}, queued=10)
    b = node("b", {"CPU": 4})
    assert pick_node_for_actor([a, b], rs(CPU=1), affinity="a", soft=False) is a
    assert pick_node_for_actor([a, b], rs(CPU=8), affinity="a", soft=False) is None  # infeasible there
    assert pick_node_for_actor([a, b], rs(CPU=1), affinity="gone", soft=False) is None


def test_soft_affinity_falls_back() -> None:
    a = node("a", {"CPU": 1})
    b = node("b", {"CPU": 8})
    assert pick_node_for_actor([a, b], rs(CPU=1), affinity="a", soft=True) is a
    assert pick_node_for_actor([a, b], rs(CPU=4), affinity="a", soft=True) is b  # infeasible on a
    assert pick_node_for_actor([a, b], rs(CPU=1), affinity="gone", soft=True) is a
    assert pick_node_for_actor([a, b], rs(CPU=16), affinity="gone", soft=True) is None


# ---- placement groups --------------------------------------------------------------------------------


def test_pack_puts_all_bundles_on_one_node() -> None:
    nodes = [node("a", {"CPU": 2}), node("b", {"CPU": 8})]
    bundles = [rs(CPU=2), rs(CPU=2), rs(CPU=2)]
    assert place_bundles(nodes, bundles, "PACK") == ["b", "b", "b"]
    assert place_bundles(nodes, bundles, "STRICT_PACK") == ["b", "b", "b"]


def test_pack_prefers_less_queued_node() -> None:
    nodes = [node("a", {"CPU": 8}, queued=4), node("b", {"CPU": 8}, queued=0)]
    assert place_bundles(nodes, [rs(CPU=1), rs(CPU=1)], "PACK") == ["b", "b"]


def test_pack_falls_back_to_several_nodes_strict_pack_does_not() -> None:
    nodes = [node("a", {"CPU": 2}), node("b", {"CPU": 2})]
    bundles = [rs(CPU=2), rs(CPU=2)]
    assert sorted(place_bundles(nodes, bundles, "PACK") or []) == ["a", "b"]
    assert place_bundles(nodes, bundles, "STRICT_PACK") is None


def test_pack_fallback_respects_availability() -> None:
    nodes = [node("a", {"CPU": 3}), node("b", {"CPU": 3})]
    bundles = [rs(CPU=2), rs(CPU=2), rs(CPU=1), rs(CPU=1)]
    got = place_bundles(nodes, bundles, "PACK")
    assert got is not None
    per_node: dict[str, float] = {}
    for n, b in zip(got, bundles):
        per_node[n] = per_node.get(n, 0) + b.to_floats()["CPU"]
    assert all(v <= 3 for v in per_node.values())


def test_spread_uses_distinct_nodes_when_possible() -> None:
    nodes = [node(n, {"CPU": 4}) for n in ("a", "b", "c")]
    bundles = [rs(CPU=1)] * 3
    assert sorted(place_bundles(nodes, bundles, "SPREAD") or []) == ["a", "b", "c"]
    assert sorted(place_bundles(nodes, bundles, "STRICT_SPREAD") or []) == ["a", "b", "c"]


def test_spread_reuses_nodes_strict_spread_fails() -> None:
    nodes = [node("a", {"CPU": 4}), node("b", {"CPU": 4})]
    bundles = [rs(CPU=1)] * 3
    got = place_bundles(nodes, bundles, "SPREAD")
    assert got is not None and len(got) == 3 and set(got) == {"a", "b"}
    assert place_bundles(nodes, bundles, "STRICT_SPREAD") is None


def test_spread_skips_nodes_without_room() -> None:
    nodes = [node("a", {"CPU": 4}, {"CPU": 0}), node("b", {"CPU": 4}), node("c", {"CPU": 4})]
    got = place_bundles(nodes, [rs(CPU=1), rs(CPU=1)], "STRICT_SPREAD")
    assert got is not None and sorted(got) == ["b", "c"]
    assert place_bundles(nodes, [rs(CPU=1)] * 3, "STRICT_SPREAD") is None


def test_spread_accounts_for_earlier_bundles() -> None:
    nodes = [node("a", {"CPU": 1}), node("b", {"CPU": 1})]
    # Three 1-CPU bundles on two 1-CPU nodes: reusing a node would overcommit it.
    assert place_bundles(nodes, [rs(CPU=1)] * 3, "SPREAD") is None


@pytest.mark.parametrize("strategy", ["PACK", "STRICT_PACK", "SPREAD", "STRICT_SPREAD"])
def test_unplaceable_bundle(strategy: str) -> None:
    nodes = [node("a", {"CPU": 2}), node("b", {"CPU": 2})]
    assert place_bundles(nodes, [rs(GPU=1)], strategy) is None
    assert place_bundles([], [rs(CPU=1)], strategy) is None


def test_placement_uses_reported_availability() -> None:
    nodes = [node("a", {"CPU": 8}, {"CPU": 1}), node("b", {"CPU": 8}, {"CPU": 4})]
    assert place_bundles(nodes, [rs(CPU=2), rs(CPU=2)], "STRICT_PACK") == ["b", "b"]


def test_fractional_bundles_pack_exactly() -> None:
    nodes = [node("a", {"CPU": 1})]
    bundles = [rs(CPU=0.1), rs(CPU=0.2), rs(CPU=0.7)]
    assert place_bundles(nodes, bundles, "STRICT_PACK") == ["a", "a", "a"]
