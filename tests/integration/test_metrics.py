"""The Prometheus exporter scraped over HTTP on real local clusters: Ray's families under the
``rayredis_`` prefix, the shards', and a killed node showing up as DEAD."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

import rayredis as ray
from rayredis.cluster_utils import Cluster
from rayredis.metrics.server import serve
from rayredis.store.client import ShardedRedis

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample of ``name`` with these labels (0 when there is none: Ray's gauges omit zeros)."""
    got = [v for lab, v in samples.get(name, []) if all(lab.get(k) == want for k, want in labels.items())]
    assert len(got) <= 1, (name, labels, got)
    return got[0] if got else 0.0


def wait_for(port: int, what: str, cond: Callable[[Samples], bool], timeout_s: float = 30.0) -> Samples:
    deadline = time.monotonic() + timeout_s
    while True:
        s = scrape(port)
        if cond(s):
            return s
        assert time.monotonic() < deadline, f"the metrics never showed {what}"
        time.sleep(0.2)


@ray.remote
def one(x: int) -> int:
    return x


@ray.remote
class Box:
    def get(self) -> int:
        return 1


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_redis_shards": 2})
    try:
        c.add_node(num_cpus=1)
        c.wait_for_nodes()
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def test_scrape_after_tasks_and_a_killed_node(cluster: Cluster) -> None:
    assert cluster.address is not None
    ray.init(address=cluster.address)
    store = ShardedRedis(cluster.address, cluster.redis_password).connect()
    server, thread = serve(store, 0)
    port = server.server_address[1]
    try:
        n = 20
        assert ray.get([one.remote(i) for i in range(n)]) == list(range(n))
        box = Box.options(num_cpus=1).remote()  # (holds a CPU while it lives)
        assert ray.get(box.get.remote()) == 1
        # (the raylets' batched writes land within a flush interval)
        s = wait_for(port, f"{n} finished tasks and the alive actor",
                     lambda s: value(s, "rayredis_tasks", State="FINISHED") >= n + 2
                     and value(s, "rayredis_actors", State="ALIVE") == 1
                     and sum(v for lab, v in s.get("rayredis_resources", []) if lab["Name"] == "CPU"
                             and lab["State"] == "USED") == 1)
        assert value(s, "rayredis_nodes", State="ALIVE") == 2 and value(s, "rayredis_node_deaths_total") == 0
        assert value(s, "rayredis_jobs", State="RUNNING") == 1 and value(s, "rayredis_gcs_lease_held") == 1
        nodes = {lab["NodeId"] for lab, _ in s["rayredis_node_heartbeat_age_seconds"]}
        assert len(nodes) == 2
        for nid in nodes:
            total = value(s, "rayredis_resources", Name="CPU", State="USED", NodeId=nid) + \
                value(s, "rayredis_resources", Name="CPU", State="AVAILABLE", NodeId=nid)
            assert total == 1
            assert value(s, "rayredis_node_heartbeats_total", NodeId=nid) >= 1
            assert value(s, "rayredis_object_store_available_memory", NodeId=nid) > 0
        assert not any(lab["Name"].startswith("node:") for lab, _ in s["rayredis_resources"])
        shards = {lab["shard"]: lab["role"] for lab, _ in s["rayredis_redis_up"]}
        assert sorted(shards.values()) == ["data", "primary"]  # (num_redis_shards counts the primary)
        for shard in shards:
            assert value(s, "rayredis_redis_up", shard=shard) == 1
            assert value(s, "rayredis_redis_pubsub_lag_seconds", shard=shard) > 0
            assert value(s, "rayredis_redis_ping_seconds", shard=shard) > 0
            assert value(s, "rayredis_redis_commands_total", shard=shard, command="ping") >= 1
        # The raylets' task-table writes are EVALSHA calls on the data shards.
        assert sum(value(s, "rayredis_redis_commands_total", shard=sh, command="evalsha")
                   for sh, role in shards.items() if role == "data") >= n

        [worker] = cluster.worker_nodes
        cluster.remove_node(worker, allow_graceful=False)  # SIGKILL: the GCS detects the death
        s = wait_for(port, "the killed node as DEAD", lambda s: value(s, "rayredis_nodes", State="DEAD") == 1)
        assert value(s, "rayredis_node_deaths_total") == 1 and value(s, "rayredis_nodes", State="ALIVE") == 1
        assert [lab["NodeId"] for lab, _ in s["rayredis_node_heartbeat_age_seconds"]] != [worker.node_id]
        assert worker.node_id not in {lab["NodeId"] for lab, _ in s["rayredis_node_heartbeat_age_seconds"]}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        store.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_init_starts_the_exporter_process() -> None:
    port = _free_port()
    ray.init(num_cpus=1, _metrics_export_port=port)
    try:
        deadline = time.monotonic() + 30
        while True:  # (the exporter process is starting)
            try:
                s = scrape(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "the exporter init() started never served /metrics"
                time.sleep(0.2)
        assert value(s, "rayredis_nodes", State="ALIVE") == 1
        assert ray.get(one.remote(7)) == 7
        wait_for(port, "the task", lambda s: value(s, "rayredis_tasks", State="FINISHED") >= 1)
    finally:
        ray.shutdown()  # stops the exporter with the cluster (the suite's leak check sees it otherwise)
