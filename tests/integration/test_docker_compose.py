"""docker-compose.yml: its shape, its commands run as local processes, and the real cluster on Docker.

The real-engine tests start ``up -d --scale worker=2`` (three containers, three nodes with their
own IPs) and run drivers with ``run --rm driver``; they are skipped only when ``docker info`` fails
(CI's docker stage, deploy/docker-setup.sh, starts an engine). The emulated tests
(:mod:`tests.integration.compose_emulated`) need no engine.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from rayredis._private import process
from rayredis._private.redis_server import free_port
from rayredis.store import keys
from tests.integration import compose_emulated as emu
from tests.integration.compose_docker import ROOT, Project, docker_unavailable, find_compose

# ---- the file ---------------------------------------------------------------------------------------


def test_compose_file_shape() -> None:
    spec = emu.load_compose({"RAYREDIS_REDIS_PASSWORD": "pw"})
    services = spec["services"]
    head, worker, driver, gcs = services["head"], services["worker"], services["driver"], services["gcs"]
    shards = [services["redis-primary"], services["redis-shard1"]]
    # One service per component, started in dependency order once the previous ones are healthy.
    assert all(gcs["depends_on"][r]["condition"] == "service_healthy" for r in ("redis-primary", "redis-shard1"))
    assert head["depends_on"]["gcs"]["condition"] == "service_healthy"
    assert worker["depends_on"]["head"]["condition"] == "service_healthy"
    assert driver["depends_on"]["head"]["condition"] == "service_healthy"
    urls = "--external-redis redis://redis-primary:6379,redis://redis-shard1:6379"
    assert urls in gcs["command"] and "--no-raylet" in gcs["command"]
    assert urls in head["command"] and "--no-gcs" in head["command"]
    for r, volume in zip(shards, ("redis-primary", "redis-shard1")):
        assert r["command"].startswith("rayredis redis-shard ") and "--dir /data" in r["command"]
        assert r["volumes"] == [f"{volume}:/data"] and volume in spec["volumes"]  # the AOF outlives the container
        assert r["healthcheck"]["test"][:4] == ["CMD", "rayredis", "redis-shard", "--check"]
    for svc in (*shards, gcs, head, worker):
        assert "--block" in svc["command"] or "redis-shard" in svc["command"]
        assert svc["restart"] == "unless-stopped"
        assert svc["tmpfs"] == ["/tmp/rayredis:mode=0700"]  # a restarted container starts afresh
    for svc in (*shards, gcs, head, worker, driver):
        assert svc["environment"]["RAYREDIS_REDIS_PASSWORD"] == "pw"  # from the environment, never literal
        assert "pw" not in json.dumps(svc["command"])  # and never in argv, where `ps` shows it
        assert svc["init"] is True and svc["image"] == "rayredis:local"
        assert svc["build"]["args"]["BASE_IMAGE"] == "python:3.11-slim"
    for svc in (head, worker):
        assert svc["shm_size"] == "2gb" and svc["healthcheck"]["test"] == ["CMD", "rayredis", "health-check"]
    for svc in (gcs, head, worker):
        assert "--node-ip-address" not in svc["command"]  # each finds its container's own IP
    # Scalable: nothing in the worker is fixed per container.
    assert not {"hostname", "container_name", "ports"} & set(worker)
    # The driver runs on demand, as a process of the head's node (its network and /dev/shm).
    assert driver["profiles"] == ["driver"]
    assert driver["network_mode"] == driver["ipc"] == "service:head" and head["ipc"] == "shareable"
    assert not any("ports" in svc for svc in services.values())  # nothing published to the host
    with pytest.raises(AssertionError, match="RAYREDIS_REDIS_PASSWORD"):
        emu.load_compose({})


def test_compose_config_validates() -> None:
    """Compose itself accepts the file (``config`` needs no engine)."""
    compose = find_compose()
    if compose is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    env = {**Project().env, "RAYREDIS_IMAGE": "rayredis:local"}
    res = subprocess.run([*compose, "-f", str(ROOT / "docker-compose.yml"), "--profile", "driver", "config"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    resolved = yaml.safe_load(res.stdout)["services"]
    assert set(resolved) == {"redis-primary", "redis-shard1", "gcs", "head", "worker", "driver"}
    assert resolved["driver"]["network_mode"] == "service:head"


# ---- without an engine: the services' commands as local processes ----------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emu.ComposeCluster]:
    tmp = tmp_path_factory.mktemp("compose")
    variables = {"RAYREDIS_REDIS_PASSWORD": secrets.token_hex(16), "RAYREDIS_PORT": str(free_port()),
                 "RAYREDIS_HEAD_CPUS": "2", "RAYREDIS_WORKER_CPUS": "2"}
    started: list[emu.ComposeCluster] = []
    try:
        started.append(emu.start(tmp, variables))
        yield started[0]
    finally:
        for c in reversed(list(started[0].containers.values()) if started else []):
            c.stop()


EMULATED_DRIVER = textwrap.dedent("""
    import json, subprocess, sys, time
    import rayredis
    from rayredis.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    rayredis.init()  # RAYREDIS_ADDRESS and RAYREDIS_REDIS_PASSWORD come from the service environment
    assert len([n for n in rayredis.nodes() if n["Alive"]]) == 2, rayredis.nodes()
    assert rayredis.cluster_resources()["CPU"] == 4.0, rayredis.cluster_resources()
    worker_id = next(n["NodeID"] for n in rayredis.nodes() if not n["IsHead"])

    @rayredis.remote
    def square(x):
        return x * x

    assert rayredis.get([square.remote(i) for i in range(20)]) == [i * i for i in range(20)]

    @rayredis.remote
    class Pinned:
        def node(self):
            return rayredis.get_runtime_context().get_node_id()

    # An actor the GCS places on the worker node: a worker process starts there and runs __init__.
    actor = Pinned.options(scheduling_strategy=NodeAffinitySchedulingStrategy(worker_id, soft=False)).remote()
    deadline = time.monotonic() + 30
    while True:
        dump = json.loads(subprocess.run([sys.executable, "-m", "rayredis.cli.main", "state", "dump", "--json"],
                                         capture_output=True, text=True, check=True, timeout=60).stdout)
        if [a for a in dump["actors"] if a["state"] == "ALIVE" and a["node"] == worker_id]:
            break
        assert time.monotonic() < deadline, dump["actors"]
        time.sleep(0.2)
    print("DRIVER OK")
""")


def test_emulated_head_worker_and_driver(cluster: emu.ComposeCluster, tmp_path: Path) -> None:
    # A driver in a third container of the network: the worker's environment, a temp dir of its own.
    env = dict(cluster.containers["worker"].env, RAYREDIS_TEMP_DIR=str(tmp_path / "driver"))
    res = subprocess.run([sys.executable, "-c", EMULATED_DRIVER], env=env, capture_output=True, text=True,
                         timeout=90)
    assert res.returncode == 0 and "DRIVER OK" in res.stdout, res.stdout + res.stderr
    for c in cluster.containers.values():
        assert c.proc is not None
        assert c.proc.poll() is None, f"{c.name} exited: {c.proc.communicate()}"
    status = cluster.containers["head"].run([sys.executable, "-m", "rayredis.cli.main", "status"])
    assert status.returncode == 0 and status.stdout.count(" 1 node_") == 2, status.stdout + status.stderr


def test_emulated_nodes_advertise_their_container_address(cluster: emu.ComposeCluster) -> None:
    """Other containers reach each part at the address it advertises, never 0.0.0.0 or 127.0.0.1: the
    data shard by its service name (here: its container's address), the GCS and raylets by their IPs."""
    client = redis.Redis.from_url(f"redis://:{cluster.password}@{cluster.address}", decode_responses=True)
    try:
        shards = json.loads(str(client.hget(keys.cluster_key(), "shards")))
        gcs = str(client.hget(keys.cluster_key(), "gcs_address"))
        nodes = [json.loads(v) for v in client.hvals(keys.nodes_key())]
    finally:
        client.close()
    raylets = {"head" if n.get("is_head") else "worker": n["address"] for n in nodes}
    advertised = {"redis-shard1": shards, "gcs": [gcs], "head": [raylets["head"]], "worker": [raylets["worker"]]}
    assert all(a.startswith(emu.ADDRESSES[k] + ":") for k, v in advertised.items() for a in v), advertised


def test_emulated_sigterm_stops_every_container(cluster: emu.ComposeCluster) -> None:
    """`docker compose down`: SIGTERM to each `--block` command stops its node, exit status 0."""
    recorded = {name: [r for s in c.sessions() for r in process.recorded(s)]
                for name, c in cluster.containers.items() if name in ("gcs", "head", "worker")}
    assert all(recorded.values()), recorded
    for name in reversed(emu.ORDER):
        c = cluster.containers[name]
        assert c.proc is not None
        c.proc.send_signal(signal.SIGTERM)
        out, err = c.proc.communicate(timeout=30)
        assert c.proc.returncode == 0, f"{name}: {out}{err}"
        if name in recorded:  # (redis-server, which the Redis services exec, logs its shutdown instead)
            assert "Received SIGTERM" in out
            assert not [r for r in recorded[name] if process.is_alive(r)], name


# ---- on a Docker engine: three containers, three nodes ----------------------------------------------

#: Generous: the fixture may build the base image (debootstrap) and the rayredis image first.
engine = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)
    p = Project()
    try:
        p.build_image()
        p.run("up", "-d", "--scale", "worker=2", timeout=300)
        p.wait_healthy({"redis-primary": 1, "redis-shard1": 1, "gcs": 1, "head": 1, "worker": 2})
        yield p
    finally:
        p.run("down", "-v", "--remove-orphans", "--timeout", "30", check=False, all_profiles=True)
        for c in p.leftovers()["containers"]:  # only if `down` failed; test_down_leaves_nothing says so
            subprocess.run(["docker", "rm", "-f", "-v", c], capture_output=True, timeout=120)
        p.remove_image()


PRELUDE = textwrap.dedent("""
    import json, subprocess, sys, time, zlib
    import numpy as np
    import rayredis
    from rayredis.exceptions import GetTimeoutError
    from rayredis.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    rayredis.init()  # the service's RAYREDIS_ADDRESS and RAYREDIS_REDIS_PASSWORD
    nodes = [n for n in rayredis.nodes() if n["Alive"]]
    head = next(n["NodeID"] for n in nodes if n["IsHead"])
    workers = sorted(n["NodeID"] for n in nodes if not n["IsHead"])

    def on(node):
        return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}

    def get(ref, timeout=90):
        try:
            return rayredis.get(ref, timeout=timeout)
        except GetTimeoutError as e:
            return f"GetTimeoutError: {e}"

    def result(**values):
        print("RESULT " + json.dumps(values), flush=True)

    @rayredis.remote
    def node_of(_=None):
        return rayredis.get_runtime_context().get_node_id()
""")


def drive(p: Project, script: str, timeout: float = 300) -> dict[str, Any]:
    """Run PRELUDE + ``script`` in a driver container; its RESULT line, parsed."""
    res = p.run("run", "--rm", "-T", "driver", "python", "-c", PRELUDE + textwrap.dedent(script),
                timeout=timeout, check=False)
    found = re.findall(r"^RESULT (.*)$", res.stdout, re.MULTILINE)
    assert res.returncode == 0 and found, \
        f"driver failed ({res.returncode}):\n{res.stdout}{res.stderr}\n{p.diagnostics()}"
    return dict(json.loads(found[-1]))


def container_ips(p: Project) -> dict[str, str]:
    return {c: p.ip(c) for c in p.containers("head") + p.containers("worker")}


@engine
def test_three_nodes_with_the_containers_ips(project: Project) -> None:
    r = drive(project, """
        result(nodes=[{k: n[k] for k in ("NodeID", "NodeManagerAddress", "IsHead")} for n in nodes],
               cpus=rayredis.cluster_resources().get("CPU"))
    """)
    ips = container_ips(project)
    addresses = sorted(n["NodeManagerAddress"] for n in r["nodes"])
    why = f"{r}, containers {ips}\n{project.diagnostics()}"
    assert len(r["nodes"]) == 3 and r["cpus"] == 6.0, why
    assert len(set(addresses)) == 3, why
    for a in addresses:
        ip = ipaddress.ip_address(a)  # an IP, not a hostname
        assert not ip.is_loopback and not ip.is_unspecified, why
    assert addresses == sorted(ips.values()), why
    head_ip = ips[project.containers("head")[0]]
    assert [n["NodeManagerAddress"] for n in r["nodes"] if n["IsHead"]] == [head_ip], why


@engine
def test_parts_advertise_addresses_other_containers_reach(project: Project) -> None:
    """The data shard by its service name (it may come back with another IP), the GCS and every raylet
    at their containers' IPs."""
    res = project.run("exec", "-T", "head", "rayredis", "state", "dump", "--json", timeout=120)
    dump = json.loads(res.stdout)
    ips = container_ips(project)
    assert dump["cluster"]["shards"] == ["redis-shard1:6379"], dump["cluster"]
    gcs_ip = project.ip(project.containers("gcs")[0])
    assert dump["cluster"]["gcs_address"].startswith(gcs_ip + ":"), (dump["cluster"], gcs_ip)
    assert sorted(n["address"].rpartition(":")[0] for n in dump["nodes"]) == sorted(ips.values()), dump["nodes"]


@engine
def test_status_in_the_head_lists_three_nodes(project: Project) -> None:
    res = project.run("exec", "-T", "head", "rayredis", "status", timeout=120)
    active = res.stdout.split("Active:")[1].split("Pending:")[0]
    assert len(re.findall(r"^ 1 node_[0-9a-f]{32}$", active, re.MULTILINE)) == 3, res.stdout
    assert "Dead:" not in res.stdout and " 0.0/6.0 CPU" in res.stdout, res.stdout


@engine
def test_tasks_run_on_every_node(project: Project) -> None:
    r = drive(project, """
        pinned = {n: get(node_of.options(**on(n)).remote()) for n in [head, *workers]}
        spread = get([node_of.options(scheduling_strategy="SPREAD").remote(i) for i in range(6)])
        result(pinned=pinned, spread=spread)
    """)
    wrong = {target: ran for target, ran in r["pinned"].items() if ran != target}
    spread = r["spread"] if isinstance(r["spread"], list) else []
    assert not wrong and len(set(spread)) == 3, \
        f"tasks with hard node affinity ran elsewhere (target: ran on): {wrong}; SPREAD tasks ran on: {r['spread']}"


@engine
def test_large_object_crosses_containers(project: Project) -> None:
    """100 MB made by a task on one worker, read by a task on the other and by the driver on the head."""
    r = drive(project, """
        N = 100 * 2**20
        @rayredis.remote(num_returns=2)
        def make(n):
            return rayredis.get_runtime_context().get_node_id(), (np.arange(n) % 251).astype(np.uint8)

        @rayredis.remote
        def read(array):
            return rayredis.get_runtime_context().get_node_id(), array.nbytes, zlib.crc32(array)

        made_on, array = make.options(**on(workers[0])).remote(N)
        expected = zlib.crc32((np.arange(N) % 251).astype(np.uint8))
        read_on = get(read.options(**on(workers[1])).remote(array), timeout=120)
        local = get(array, timeout=120)
        result(workers=workers, made_on=get(made_on), read_on=read_on, expected=expected,
               driver=[local.nbytes, zlib.crc32(local)] if isinstance(local, np.ndarray) else local)
    """)
    workers = r["workers"]
    assert r["read_on"][1:] == [100 * 2**20, r["expected"]], f"the reading task got: {r['read_on']}"
    assert r["driver"] == [100 * 2**20, r["expected"]], f"the driver got: {r['driver']}"
    assert r["made_on"] == workers[0] and r["read_on"][0] == workers[1], \
        f"made on {r['made_on']}, read on {r['read_on'][0]}; wanted {workers[0]}, then {workers[1]}"


@engine
def test_actor_on_a_worker_answers(project: Project) -> None:
    r = drive(project, """
        @rayredis.remote
        class Pinned:
            def node(self):
                return rayredis.get_runtime_context().get_node_id()

        actor = Pinned.options(**on(workers[0])).remote()
        deadline = time.monotonic() + 60
        while True:  # the GCS places it: its worker process starts on workers[0] and runs __init__
            dump = json.loads(subprocess.run(["rayredis", "state", "dump", "--json"], capture_output=True,
                                             text=True, check=True, timeout=60).stdout)
            placed = [a["node"] for a in dump["actors"] if a["state"] == "ALIVE"]
            if placed or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        result(worker=workers[0], placed=placed, answer=get(actor.node.remote(), timeout=60))
    """)
    assert r["placed"] == [r["worker"]], f"the actor is ALIVE on {r['placed']}, wanted {r['worker']}"
    assert r["answer"] == r["worker"], f"the actor's method returned: {r['answer']}"


@engine
def test_driver_service_runs_the_example_job(project: Project) -> None:
    res = project.run("run", "--rm", "-T", "-e", "CLUSTER_JOB_TIMEOUT_S=60", "driver", timeout=400, check=False)
    assert res.returncode == 0 and "3 alive nodes" in res.stdout and "done in" in res.stdout, \
        f"examples/cluster_job.py failed ({res.returncode}):\n{res.stdout}{res.stderr}\n{project.diagnostics()}"


@engine
def test_stop_and_down_leave_nothing(project: Project) -> None:
    """SIGTERM (through docker-init) stops each node cleanly, then `down -v` removes everything."""
    containers = project.containers()
    project.run("stop", "--timeout", "30", timeout=180)
    for c in containers:
        state = project.inspect(c)["State"]
        logs = subprocess.run(["docker", "logs", c], capture_output=True, text=True, timeout=60).stdout
        assert isinstance(state, dict) and state["ExitCode"] == 0 and "Received SIGTERM" in logs, (c, state, logs)
    project.run("down", "-v", "--remove-orphans", timeout=180, all_profiles=True)
    assert project.leftovers() == {"containers": [], "networks": [], "volumes": []}
