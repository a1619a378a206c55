"""docker-compose.yml, checked without a Docker engine: each service's command runs as a local process.

Every emulated container gets its own ``RAYREDIS_TEMP_DIR`` (its private /tmp) and the service's
``environment``; compose variables are substituted from a test environment (a random password, a
free port for the head) and service hostnames resolve to HEAD_IP, a loopback address other than
127.0.0.1, so an address the head advertises wrongly (0.0.0.0, 127.0.0.1) is told apart from its
hostname. The head's healthcheck is run as compose would run it, then the worker starts, then
drivers use the cluster.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from rayredis._private import process
from rayredis._private.redis_server import free_port
from rayredis.store import keys

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
#: What the service hostnames (``head``) resolve to here: all of 127.0.0.0/8 is loopback on Linux.
HEAD_IP = "127.0.0.2"
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def substitute(text: str, variables: dict[str, str]) -> str:
    """Compose's interpolation: ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?error}``, ``${VAR?error}`` and ``$$``."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3) or ""
        value = variables.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-") and unset:
            return arg
        if op in (":?", "?") and unset:
            raise AssertionError(f"compose would refuse to start: {name}: {arg}")
        return value or ""

    return _VAR.sub(one, text)


def load_compose(variables: dict[str, str]) -> dict[str, Any]:
    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return substitute(node, variables)
        if isinstance(node, list):
            return [walk(x) for x in node]
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        return node

    with open(COMPOSE) as f:
        return dict(walk(yaml.safe_load(f)))


def local_argv(command: str | list[str], hosts: set[str]) -> list[str]:
    """A service command as local argv: ``rayredis`` from this tree, service hostnames -> HEAD_IP."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    pattern = re.compile(r"^(" + "|".join(map(re.escape, sorted(hosts))) + r")(?=$|:)")
    argv = [pattern.sub(HEAD_IP, a) for a in argv]
    assert argv[0] == "rayredis", f"service commands must be `rayredis ...` invocations: {argv}"
    return [sys.executable, "-m", "rayredis.cli.main", *argv[1:]]


@dataclass
class Container:
    """One service emulated as a local process with its own temp dir and environment."""

    name: str
    env: dict[str, str]
    proc: subprocess.Popen[str] | None = None

    def run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)

    def sessions(self) -> list[str]:
        root = Path(self.env["RAYREDIS_TEMP_DIR"])
        return sorted(str(p) for p in root.glob("session_2*"))


@dataclass
class ComposeCluster:
    spec: dict[str, Any]
    containers: dict[str, Container] = field(default_factory=dict)
    address: str = ""
    password: str = ""


def _container_env(tmp: Path, name: str, environment: dict[str, Any] | list[str],
                   hosts: set[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYREDIS_", "RAY_"))}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    env.update({k: str(v) for k, v in environment.items()})
    pattern = re.compile(r"^(" + "|".join(map(re.escape, sorted(hosts))) + r")(?=$|:)")
    env = {k: pattern.sub(HEAD_IP, v) for k, v in env.items()}
    env["RAYREDIS_TEMP_DIR"] = str(tmp / name)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_healthy(head: Container, test: list[str], hosts: set[str]) -> None:
    assert test[0] in ("CMD", "CMD-SHELL"), test
    argv = local_argv(test[1:] if test[0] == "CMD" else test[1], hosts)
    deadline = time.monotonic() + 45
    while True:
        res = head.run(argv)
        if res.returncode == 0:
            return
        assert head.proc is not None
        assert head.proc.poll() is None, f"head exited: {head.proc.communicate()}"
        assert time.monotonic() < deadline, f"healthcheck never passed: {res.stdout}{res.stderr}"
        time.sleep(0.2)


def _stop(c: Container) -> None:
    if c.proc is None:
        return
    if c.proc.poll() is None:
        c.proc.send_signal(signal.SIGTERM)  # what `docker compose down` does
        try:
            c.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.communicate()
    # Backstop: whatever the command left running in this container's sessions.
    c.run([sys.executable, "-m", "rayredis.cli.main", "stop", "--force"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeCluster]:
    tmp = tmp_path_factory.mktemp("compose")
    password = secrets.token_hex(16)
    port = free_port()
    spec = load_compose({"RAYREDIS_REDIS_PASSWORD": password, "RAYREDIS_PORT": str(port),
                         "RAYREDIS_HEAD_CPUS": "2", "RAYREDIS_WORKER_CPUS": "2"})
    services = spec["services"]
    hosts = set(services) | {s["hostname"] for s in services.values() if "hostname" in s}
    cl = ComposeCluster(spec, address=f"{HEAD_IP}:{port}", password=password)
    try:
        for name in ("head", "worker"):  # the order depends_on gives
            svc = services[name]
            c = cl.containers[name] = Container(name, _container_env(tmp, name, svc.get("environment", {}), hosts))
            c.proc = subprocess.Popen(local_argv(svc["command"], hosts), env=c.env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            if name == "head":
                _wait_healthy(c, svc["healthcheck"]["test"], hosts)
        yield cl
    finally:
        for name in ("worker", "head"):
            if name in cl.containers:
                _stop(cl.containers[name])


def test_compose_file_shape() -> None:
    spec = load_compose({"RAYREDIS_REDIS_PASSWORD": "pw"})
    head, worker = spec["services"]["head"], spec["services"]["worker"]
    assert worker["depends_on"]["head"]["condition"] == "service_healthy"
    assert "--block" in head["command"] and "--block" in worker["command"]
    for svc in (head, worker):
        assert svc["environment"]["RAYREDIS_REDIS_PASSWORD"] == "pw"  # from the environment, never literal
        assert "pw" not in svc["command"]  # and never in argv, where `ps` shows it
        assert svc["shm_size"] and svc["init"] is True
    with pytest.raises(AssertionError, match="RAYREDIS_REDIS_PASSWORD"):
        load_compose({})


DRIVER = textwrap.dedent("""
    import json, subprocess, sys, time
    import rayredis
    from rayredis.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    rayredis.init()  # RAYREDIS_ADDRESS and RAYREDIS_REDIS_PASSWORD come from the service environment
    deadline = time.monotonic() + 30
    while len([n for n in rayredis.nodes() if n["Alive"]]) < 2:
        assert time.monotonic() < deadline, rayredis.nodes()
        time.sleep(0.1)
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

def _driver(cluster: ComposeCluster, tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """A driver in a third container of the compose network (`docker compose run --rm worker python ...`)."""
    env = dict(cluster.containers["worker"].env, RAYREDIS_TEMP_DIR=str(tmp_path / "driver"))
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=90)


def test_head_worker_and_driver(cluster: ComposeCluster, tmp_path: Path) -> None:
    res = _driver(cluster, tmp_path, DRIVER)
    assert res.returncode == 0 and "DRIVER OK" in res.stdout, res.stdout + res.stderr
    for c in cluster.containers.values():
        assert c.proc is not None
        assert c.proc.poll() is None, f"{c.name} exited: {c.proc.communicate()}"
    status = cluster.containers["head"].run([sys.executable, "-m", "rayredis.cli.main", "status"])
    assert status.returncode == 0 and status.stdout.count(" 1 node_") == 2, status.stdout + status.stderr


def test_head_advertises_its_hostname(cluster: ComposeCluster) -> None:
    """Other containers reach the head only through its hostname (``--node-ip-address head``)."""
    client = redis.Redis.from_url(f"redis://:{cluster.password}@{cluster.address}", decode_responses=True)
    try:
        shards = json.loads(str(client.hget(keys.cluster_key(), "shards")))
        gcs = str(client.hget(keys.cluster_key(), "gcs_address"))
        nodes = [json.loads(v) for v in client.hvals(keys.nodes_key())]
    finally:
        client.close()
    head_raylet = next(n["address"] for n in nodes if n.get("is_head"))
    advertised = [*shards, gcs, head_raylet]
    assert all(a.startswith(HEAD_IP + ":") for a in advertised), advertised


def test_sigterm_stops_every_container(cluster: ComposeCluster) -> None:
    """`docker compose down`: SIGTERM to each `--block` command stops its node, exit status 0."""
    recorded = {name: [r for s in c.sessions() for r in process.recorded(s)]
                for name, c in cluster.containers.items()}
    assert all(recorded.values()), recorded
    for name in ("worker", "head"):
        c = cluster.containers[name]
        assert c.proc is not None
        c.proc.send_signal(signal.SIGTERM)
        out, err = c.proc.communicate(timeout=30)
        assert c.proc.returncode == 0, f"{name}: {out}{err}"
        assert "Received SIGTERM" in out
        assert not [r for r in recorded[name] if process.is_alive(r)], name
