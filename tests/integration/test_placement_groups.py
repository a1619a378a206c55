"""Placement groups and scheduling strategies on a single-node cluster."""

from __future__ import annotations

import time

import pytest

import rayredis as ray
from rayredis.util import placement_group, placement_group_table, remove_placement_group
from rayredis.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)


def _wait_available_cpu(expected: float, timeout: float = 10.0) -> float:
    deadline = time.time() + timeout
    cpu = -1.0
    while time.time() < deadline:
        cpu = ray.available_resources().get("CPU", 0.0)
        if cpu == expected:
            return cpu
        time.sleep(0.1)
    return cpu


def test_reserve_use_and_remove(ray_start_regular):
    pg = placement_group([{"CPU": 1}, {"CPU": 0.5}], strategy="PACK", name="pg1")
    assert ray.get(pg.ready(), timeout=30) is True
    assert pg.wait(5)
    assert placement_group_table(pg)["state"] == "CREATED"
    assert _wait_available_cpu(0.5) == 0.5

    @ray.remote(num_cpus=1)
    def inside():
        from rayredis.util import get_current_placement_group

        return get_current_placement_group().id.hex()

    strat = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)
    assert ray.get(inside.options(scheduling_strategy=strat).remote(), timeout=30) == pg.id.hex()
    from rayredis.util import get_current_placement_group

    assert get_current_placement_group() is None

    @ray.remote(num_cpus=0.5)
    class InBundle:
        def ping(self):
            return "pong"

    a = InBundle.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 1)).remote()
    assert ray.get(a.ping.remote(), timeout=30) == "pong"
    ray.kill(a)
    remove_placement_group(pg)
    assert _wait_available_cpu(2.0) == 2.0


def test_infeasible_group_stays_pending(ray_start_regular):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    assert not pg.wait(1.5)  # one node cannot hold two strictly spread bundles
    assert placement_group_table(pg)["state"] == "PENDING"
    remove_placement_group(pg)


def test_bad_arguments(ray_start_regular):
    with pytest.raises(ValueError, match="strategy"):
        placement_group([{"CPU": 1}], strategy="DIAGONAL")
    with pytest.raises(ValueError, match="bundle"):
        placement_group([])
    pg = placement_group([{"CPU": 1}])

    @ray.remote
    def f():
        return 1

    with pytest.raises(ValueError, match="out of range"):
        f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 3)).remote()
    remove_placement_group(pg)


def test_node_affinity_and_spread(ray_start_regular):
    node = ray.get_runtime_context().get_node_id()

    @ray.remote
    def where():
        return ray.get_runtime_context().get_node_id()

    strat = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
    assert ray.get(where.options(scheduling_strategy=strat).remote()) == node
    assert ray.get(where.options(scheduling_strategy="SPREAD").remote()) == node


def test_group_is_removed_when_its_job_ends(ray_start_regular, tmp_path):
    import os
    import subprocess
    import sys

    from rayredis._private import worker_context

    cw = worker_context.global_worker
    script = tmp_path / "pg_driver.py"
    script.write_text(
        "import rayredis as ray\n"
        "from rayredis.util import placement_group\n"
        f"ray.init(address={cw.store.primary_address!r})\n"
        "pg = placement_group([{'CPU': 1}], name='job-scoped')\n"
        "assert pg.wait(30)\n"
    )
    env = dict(os.environ, RAYREDIS_REDIS_PASSWORD=cw.store.password)
    subprocess.run([sys.executable, str(script)], check=True, env=env, timeout=60)
    deadline = time.time() + 20
    while time.time() < deadline:
        states = [t["state"] for t in placement_group_table().values() if t["name"] == "job-scoped"]
        if states == ["REMOVED"]:
            break
        time.sleep(0.1)
    assert states == ["REMOVED"]
    assert _wait_available_cpu(2.0) == 2.0
