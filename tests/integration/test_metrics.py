"""The Prometheus exporter scraped over HTTP on real local clusters: Ray's families under the
``rayredis_`` prefix, the shards', and a killed node showing up as DEAD."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

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
        assert time.monotonic() < deadline, f"the metrics never showed {what}: nodes {s.get('rayredis_nodes')}"
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
        s = wait_for(port, "the killed node as DEAD", lambda s: value(s, "rayredis_nodes", State="DEAD") == 1,
                     timeout_s=90.0)  # (a generous bound: the GCS's detection on a loaded 2-core machine)
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
        s = _scrape_when_up(port)
        assert value(s, "rayredis_nodes", State="ALIVE") == 1
        assert ray.get(one.remote(7)) == 7
        wait_for(port, "the task", lambda s: value(s, "rayredis_tasks", State="FINISHED") >= 1)
    finally:
        ray.shutdown()  # stops the exporter with the cluster (the suite's leak check sees it otherwise)


def _scrape_when_up(port: int, timeout_s: float = 30.0) -> Samples:
    deadline = time.monotonic() + timeout_s
    while True:  # (the exporter process is starting)
        try:
            return scrape(port)
        except OSError:
            assert time.monotonic() < deadline, "the exporter never served /metrics"
            time.sleep(0.2)


def test_start_head_with_metrics_export_port(tmp_path: Path) -> None:
    env = dict(os.environ, RAYREDIS_TEMP_DIR=str(tmp_path / "rr"))
    for name in ("RAYREDIS_ADDRESS", "RAY_ADDRESS", "RAYREDIS_REDIS_PASSWORD"):
        env.pop(name, None)
    cli = [sys.executable, "-m", "rayredis.cli.main"]
    port = _free_port()
    res = subprocess.run([*cli, "start", "--head", "--port", str(_free_port()), "--num-cpus", "1",
                          "--metrics-export-port", str(port)], env=env, capture_output=True, text=True, timeout=120)
    try:
        assert res.returncode == 0, res.stderr
        assert f"http://127.0.0.1:{port}/metrics" in res.stdout
        s = _scrape_when_up(port)
        assert value(s, "rayredis_nodes", State="ALIVE") == 1 and value(s, "rayredis_gcs_lease_held") == 1
        joined = subprocess.run([*cli, "start", "--address", "127.0.0.1:1", "--metrics-export-port", "1"],
                                env=env, capture_output=True, text=True, timeout=60)
        assert joined.returncode == 1 and "--metrics-export-port is for the head" in joined.stderr
    finally:
        cluster_file = tmp_path / "rr" / "current_cluster"
        if cluster_file.exists():
            address = json.loads(cluster_file.read_text())["address"]
            stop = subprocess.run([*cli, "stop", "--address", address], env=env, capture_output=True, text=True,
                                  timeout=60)
            assert stop.returncode == 0, stop.stderr
    with pytest.raises(OSError):
        scrape(port)  # stopped with the cluster
