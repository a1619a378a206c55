"""docker-compose.yml on a real Docker engine: one compose project per test module, and its diagnostics.

Works with Compose v1 (``docker-compose``) and v2 (``docker compose``). The project gets a unique
name and image tag, so runs from several checkouts on one engine do not meet; ``down`` removes its
containers, network and volumes, and :meth:`Project.remove_image` the tag.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Every container, network and volume compose makes carries this label with the project's name.
PROJECT_LABEL = "com.docker.compose.project"


def docker_unavailable() -> str | None:
    """Why no Docker engine can be used here (None: ``docker info`` answers)."""
    if shutil.which("docker") is None:
        return "no `docker` command on PATH (deploy/docker-setup.sh installs the engine)"
    try:
        res = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                             text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 60 s"
    if res.returncode != 0:
        return f"`docker info` failed (no Docker engine running; deploy/docker-setup.sh starts one): " \
               f"{res.stderr.strip()[:300]}"
    return None


def find_compose() -> list[str] | None:
    """``docker-compose`` (v1) if installed, else the ``docker compose`` plugin (v2), else None."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 timeout=60).returncode == 0:
        return ["docker", "compose"]
    return None


def compose_command() -> list[str]:
    found = find_compose()
    if found:
        return found
    raise AssertionError("a Docker engine runs but neither `docker-compose` nor `docker compose` is installed "
                         "(deploy/docker-setup.sh installs Debian's docker-compose)")


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({res.returncode}): {res.stdout}{res.stderr}")
    return res


@dataclass
class Project:
    """One compose project of docker-compose.yml, with the variables its file reads."""

    name: str = field(default_factory=lambda: f"rrtest{secrets.token_hex(4)}")
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    compose: list[str] = field(default_factory=compose_command)

    @property
    def image(self) -> str:
        return f"rayredis:test-{self.name}"

    @property
    def env(self) -> dict[str, str]:
        # Everything the file interpolates is set here, so a developer's .env changes nothing.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYREDIS_", "RAY_", "COMPOSE_"))}
        env.update(RAYREDIS_REDIS_PASSWORD=self.password, RAYREDIS_IMAGE=self.image, RAYREDIS_PORT="6379",
                   RAYREDIS_HEAD_CPUS="2", RAYREDIS_WORKER_CPUS="2", RAYREDIS_SHM_SIZE="1gb",
                   RAYREDIS_BASE_IMAGE=os.environ.get("RAYREDIS_BASE_IMAGE", "rayredis-base:bookworm"))
        return env

    def run(self, *args: str, timeout: float = 300, check: bool = True,
            all_profiles: bool = False) -> subprocess.CompletedProcess[str]:
        """``compose -p NAME ARGS`` in the repository root; ``all_profiles`` adds the driver service's
        profile (for ``down``: `up` must not start the driver, `down` must remove its containers too)."""
        profiles = ["--profile", "driver"] if all_profiles else []
        argv = [*self.compose, "-f", str(ROOT / "docker-compose.yml"), "-p", self.name, *profiles, *args]
        res = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({res.returncode}):\n{res.stdout}{res.stderr}\n"
                                 f"{self.diagnostics()}")
        return res

    def build_image(self) -> None:
        """The rayredis image of this checkout under the project's tag (cached layers make it quick)."""
        res = subprocess.run([str(ROOT / "deploy" / "docker-setup.sh"), "--images"], cwd=ROOT, env=self.env,
                             capture_output=True, text=True, timeout=1200)
        assert res.returncode == 0, f"deploy/docker-setup.sh --images failed:\n{res.stdout}{res.stderr}"

    def remove_image(self) -> None:
        docker("rmi", self.image, check=False)

    # ---- what the engine has for this project ----------------------------------------------------

    def containers(self, service: str | None = None) -> list[str]:
        label = [f"label={PROJECT_LABEL}={self.name}"]
        if service:
            label.append(f"label=com.docker.compose.service={service}")
        args = ["ps", "-a", "--format", "{{.Names}}"] + [a for lab in label for a in ("--filter", lab)]
        return sorted(docker(*args).stdout.split())

    def leftovers(self) -> dict[str, list[str]]:
        """The project's containers, networks and volumes that still exist."""
        flt = ["--filter", f"label={PROJECT_LABEL}={self.name}"]
        return {"containers": self.containers(),
                "networks": docker("network", "ls", "-q", *flt).stdout.split(),
                "volumes": docker("volume", "ls", "-q", *flt).stdout.split()}

    def inspect(self, container: str) -> dict[str, object]:
        return dict(json.loads(docker("inspect", container).stdout)[0])

    def ip(self, container: str) -> str:
        networks = self.inspect(container)["NetworkSettings"]["Networks"]  # type: ignore[index]
        return str(networks[f"{self.name}_default"]["IPAddress"])

    def health(self, container: str) -> str:
        state = self.inspect(container)["State"]
        assert isinstance(state, dict)
        return str(state.get("Health", {}).get("Status", "none")) if state.get("Running") else \
            f"exited({state.get('ExitCode')})"

    def wait_healthy(self, services: dict[str, int], timeout: float = 240) -> None:
        """Until ``services`` (name: replica count) all have that many healthy containers."""
        deadline = time.monotonic() + timeout
        while True:
            states = {c: self.health(c) for s in services for c in self.containers(s)}
            counts = {s: len(self.containers(s)) for s in services}
            if counts == services and all(v == "healthy" for v in states.values()):
                return
            if any(v.startswith("exited") for v in states.values()) or time.monotonic() > deadline:
                raise AssertionError(f"the cluster did not become healthy: {states}\n{self.diagnostics()}")
            time.sleep(1.0)

    def diagnostics(self, tail: int = 60) -> str:
        """Each container's output and the ends of its rayredis logs, for failure messages."""
        out = []
        for c in self.containers():
            logs = docker("logs", "--tail", str(tail), c, check=False)
            out.append(f"===== {c} ({self.health(c)}): output\n{logs.stdout}{logs.stderr}")
            if self.health(c).startswith("exited"):
                continue
            files = docker("exec", c, "sh", "-c", f"cd /tmp/rayredis/session_latest/logs 2>/dev/null && "
                           f"tail -n {tail // 3} raylet.log gcs_server.log *.err 2>/dev/null", check=False)
            out.append(f"===== {c}: session logs\n{files.stdout[-6000:]}")
        return "\n".join(out)
