"""Docker faults on the compose cluster while the chaos workload runs: each one loses nothing and gets nothing wrong.

One compose project (chaos.compose's derivation of docker-compose.yml: slots, fixed worker IPs) for the
module; each test runs the known-answer workload in the driver container for a few seconds with one
fault of its kind at t=4 s, and checks the chaos report (the one ``python -m chaos.runner --compose``
writes). Skipped only when ``docker info`` fails (CI's docker stage starts an engine).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from chaos import compose, runner
from chaos.faults import Planned
from tests.integration.compose_docker import ROOT, docker_unavailable

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[compose.ComposeProject]:
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)
    p = compose.ComposeProject(workers=2, out=str(tmp_path_factory.mktemp("compose-chaos")))
    p.image = f"rayredis:test-{p.name}"
    try:
        res = subprocess.run([str(ROOT / "deploy" / "docker-setup.sh"), "--images"], cwd=ROOT,
                             env=dict(os.environ, RAYREDIS_IMAGE=p.image), capture_output=True, text=True,
                             timeout=1200)
        assert res.returncode == 0, f"deploy/docker-setup.sh --images failed:\n{res.stdout}{res.stderr}"
        p.up()
        yield p
    finally:
        p.down()
        subprocess.run(["docker", "rmi", p.image], capture_output=True, timeout=120)


def one_fault(p: compose.ComposeProject, kind: str, duration: float = 16.0) -> dict[str, Any]:
    args = compose.parse_args(["--faults", kind, "--duration", str(duration), "--item-timeout", "45",
                               "--quiet"])
    report = compose.run(args, project=p, plan=[Planned(0, 4.0, kind)])
    text = runner.format_report(report)
    fault = report["faults"][0] if report["faults"] else {}
    assert report["submitted"] > 100 and report["lost"] == 0 and report["wrong"] == 0, text
    assert report["faults_fired"] == {kind: 1} and not fault.get("error"), text
    assert report["passed"], text
    return dict(fault)


def test_gcs_container_crash_is_restarted(project: compose.ComposeProject) -> None:
    before = project.state("gcs")["RestartCount"]
    fault = one_fault(project, "gcs")
    assert project.state("gcs")["RestartCount"] == before + 1 and fault["probe_recovery_s"] is not None, fault


def test_redis_shard_container_crash_restarts_from_its_aof(project: compose.ComposeProject) -> None:
    fault = one_fault(project, "redis")
    assert project.state(fault["component"])["RestartCount"] >= 1, fault


def test_docker_kill_of_a_worker_moves_its_work(project: compose.ComposeProject) -> None:
    fault = one_fault(project, "node")
    assert fault["inflight_on_node_lost"] == 0 and fault["node_id"], fault


def test_short_docker_pause_is_no_death(project: compose.ComposeProject) -> None:
    fault = one_fault(project, "pause")
    assert fault["declared_dead"] is False and fault["pause_s"] < 3.0, fault


def test_long_docker_pause_is_fenced(project: compose.ComposeProject) -> None:
    fault = one_fault(project, "freeze", duration=24.0)
    assert fault["declared_dead"] is True and fault["pause_s"] > 3.0, fault


def test_network_disconnect_is_healed(project: compose.ComposeProject) -> None:
    fault = one_fault(project, "partition")
    assert fault["declared_dead"] is False and fault["heal_probe_s"] is not None, fault


def test_down_leaves_nothing(project: compose.ComposeProject) -> None:
    assert project.down() == {"containers": [], "networks": [], "volumes": []}
