"""docker-compose.yml without a Docker engine: each service's command runs as a local process.

Every emulated container gets its own ``RAYREDIS_TEMP_DIR`` (its private /tmp), the service's
``environment`` and an address of its own on loopback (all of 127.0.0.0/8 is loopback on Linux).
Compose variables are substituted from a test environment, service hostnames become their
containers' addresses, ``--bind-host 0.0.0.0`` the container's own address (the Redis services
share a port, as in their own containers), ``--dir /data`` a directory of the container, and
``rayredis start`` is told the container's address with ``--node-ip-address``: what its hostname
resolves to inside a real container. Healthchecks run as compose runs them.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
#: The emulated containers' addresses: none is 127.0.0.1, so a node advertising that is caught.
ADDRESSES = {"head": "127.0.0.2", "worker": "127.0.0.3", "redis-primary": "127.0.0.4", "redis-shard1": "127.0.0.5",
             "gcs": "127.0.0.6"}
#: The long-running services in the order ``depends_on`` starts them.
ORDER = ("redis-primary", "redis-shard1", "gcs", "head", "worker")
HEAD_IP = ADDRESSES["head"]
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
    """The compose file with variables substituted and ``x-`` extension fields merged (YAML ``<<``)."""

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


def _hosts_pattern(hosts: set[str]) -> re.Pattern[str]:
    return re.compile(r"(^|//|,)(" + "|".join(map(re.escape, sorted(hosts, key=len, reverse=True))) + r")(?=$|:)")


def resolve(text: str, hosts: set[str]) -> str:
    """Service hostnames in ``text`` (an address, a list of URLs) replaced by their containers' addresses."""
    return _hosts_pattern(hosts).sub(lambda m: m.group(1) + ADDRESSES[m.group(2)], text)


def local_argv(command: str | list[str], hosts: set[str], node_ip: str | None = None,
               data_dir: str = "") -> list[str]:
    """A service command as local argv: ``rayredis`` from this tree, service hostnames -> their
    addresses, a wildcard bind -> the container's address (``node_ip``, the healthcheck's too), for
    ``rayredis start`` that address as ``--node-ip-address``, and ``--dir`` -> ``data_dir``."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    argv = [resolve(a, hosts) for a in argv]
    assert argv[0] == "rayredis", f"service commands must be `rayredis ...` invocations: {argv}"
    for i, a in enumerate(argv[:-1]):
        if a == "--bind-host" and argv[i + 1] == "0.0.0.0" and node_ip:
            argv[i + 1] = node_ip
        if a == "--dir" and data_dir:
            argv[i + 1] = data_dir
    if argv[1] == "start" and node_ip:
        assert "--node-ip-address" not in argv, f"a node finds its own address in a container: {argv}"
        argv += ["--node-ip-address", node_ip]
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

    def wait_healthy(self, test: list[str], hosts: set[str], timeout: float = 45) -> None:
        assert test[0] in ("CMD", "CMD-SHELL"), test
        argv = local_argv(test[1:] if test[0] == "CMD" else test[1], hosts, ADDRESSES[self.name])
        deadline = time.monotonic() + timeout
        while True:
            res = self.run(argv)
            if res.returncode == 0:
                return
            assert self.proc is not None
            assert self.proc.poll() is None, f"{self.name} exited: {self.proc.communicate()}"
            assert time.monotonic() < deadline, f"{self.name}: healthcheck never passed: {res.stdout}{res.stderr}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # what `docker compose down` does
            try:
                self.proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
        # Backstop: whatever the command left running in this container's sessions.
        self.run([sys.executable, "-m", "rayredis.cli.main", "stop", "--force"])


@dataclass
class ComposeCluster:
    spec: dict[str, Any]
    containers: dict[str, Container] = field(default_factory=dict)
    address: str = ""
    password: str = ""


def container_env(tmp: Path, name: str, environment: dict[str, Any] | list[str], hosts: set[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYREDIS_", "RAY_"))}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    env.update({k: str(v) for k, v in environment.items()})
    env = {k: resolve(v, hosts) for k, v in env.items()}
    env["RAYREDIS_TEMP_DIR"] = str(tmp / name)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start(tmp: Path, variables: dict[str, str]) -> ComposeCluster:
    """Start the services in ``ORDER`` (what ``depends_on`` gives), each once its predecessor is healthy.

    On failure the caller stops what :attr:`ComposeCluster.containers` holds.
    """
    spec = load_compose(variables)
    services = spec["services"]
    hosts = set(services) | {s["hostname"] for s in services.values() if "hostname" in s}
    cl = ComposeCluster(spec, address=f"{ADDRESSES['redis-primary']}:{variables['RAYREDIS_PORT']}",
                        password=variables["RAYREDIS_REDIS_PASSWORD"])
    for name in ORDER:
        svc = services[name]
        c = cl.containers[name] = Container(name, container_env(tmp, name, svc.get("environment", {}), hosts))
        os.makedirs(c.env["RAYREDIS_TEMP_DIR"], mode=0o700, exist_ok=True)
        c.proc = subprocess.Popen(local_argv(svc["command"], hosts, ADDRESSES[name], str(tmp / name / "data")),
                                  env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        c.wait_healthy(svc["healthcheck"]["test"], hosts)
    return cl
