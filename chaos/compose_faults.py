"""The docker faults of ``chaos.compose``: each does the damage and the operator's repair, and returns its record."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any, ClassVar, cast

from chaos.compose import docker
from chaos.faults import FaultContext

if TYPE_CHECKING:
    from chaos.compose import ComposeProject


class DockerFault:
    """Base: ``fire(rng, ctx)`` does the damage and the repair, and returns the fault's record."""

    name: ClassVar[str] = ""
    recovery: ClassVar[str] = ""

    def __init__(self, args: argparse.Namespace):
        self.args = args

    def record(self, t: float, **fields: Any) -> dict[str, Any]:
        return {"kind": self.name, "monotonic": t, "target_pid": None, **fields}

    def worker(self, rng: Any, p: ComposeProject) -> tuple[int, str]:
        k = rng.randrange(1, p.slots)
        return k, f"worker{k}"


class CrashGcs(DockerFault):
    name = "gcs"
    recovery = "container crash -> a new actor (probe) answers; the restart policy restarted the GCS"

    def fire(self, rng: Any, ctx: FaultContext) -> dict[str, Any]:
        p = cast("ComposeProject", ctx.cluster)
        t = time.monotonic()
        before = p.crash("gcs")
        ctx.probe("actor", None)
        back = p.wait_healthy("gcs", self.args.restart_timeout, restarts_above=before)
        return self.record(t, component="gcs container", restarted_s=round(time.monotonic() - t, 3),
                           healthy_wait_s=round(back, 3))


class CrashRedis(DockerFault):
    name = "redis"
    recovery = "container crash -> restarted from its AOF (restart policy) and a new actor (probe) answers"

    def fire(self, rng: Any, ctx: FaultContext) -> dict[str, Any]:
        p = cast("ComposeProject", ctx.cluster)
        service = rng.choice(["redis-primary", "redis-shard1"])
        t = time.monotonic()
        before = p.crash(service)
        ctx.probe("actor", None)
        p.wait_healthy(service, self.args.restart_timeout, restarts_above=before)
        return self.record(t, component=service, restarted_s=round(time.monotonic() - t, 3))


class KillNode(DockerFault):
    name = "node"
    recovery = ("docker kill -> docker start: a probe task pinned to the slot succeeds on the new node and every "
                "item in flight on the killed node completed")

    def fire(self, rng: Any, ctx: FaultContext) -> dict[str, Any]:
        p = cast("ComposeProject", ctx.cluster)
        k, service = self.worker(rng, p)
        node = p.node_id(service)
        t = time.monotonic()
        docker("kill", p.container(service))
        docker("start", p.container(service))  # the operator's repair: the node comes back, a new node ID
        try:
            p.wait_healthy(service, self.args.restart_timeout)
        except RuntimeError as e:
            return self.record(t, slot=k, node_id=node, component=service, error=str(e)[:2000])
        ctx.probe("slot_task", k)
        return self.record(t, slot=k, node_id=node, component=service, replaced_s=round(time.monotonic() - t, 3))


def freeze(container: str, attempts: int = 5) -> None:
    """``docker pause``, again when the cgroup freezer gives up ("unable to freeze": a busy machine)."""
    for i in range(attempts):
        res = docker("pause", container, check=i == attempts - 1)
        if res.returncode == 0:
            return
        time.sleep(0.2)


class PauseWorker(DockerFault):
    name = "pause"
    recovery = "docker pause/unpause -> the node's healthcheck passes again (no node declared dead)"

    def span(self) -> tuple[float, float]:
        return self.args.pause_min, self.args.pause_max

    def fire(self, rng: Any, ctx: FaultContext) -> dict[str, Any]:
        p = cast("ComposeProject", ctx.cluster)
        k, service = self.worker(rng, p)
        node = p.node_id(service)
        pause_s = round(rng.uniform(*self.span()), 3)
        t = time.monotonic()
        freeze(p.container(service))
        time.sleep(max(0.0, t + pause_s - time.monotonic()))
        docker("unpause", p.container(service))
        ctx.probe("slot_task", k)
        deadline = time.monotonic() + self.args.restart_timeout + 30
        while not p.healthy_now(service):
            if time.monotonic() > deadline:
                return self.record(t, slot=k, node_id=node, pause_s=pause_s,
                                   error=f"{service} not healthy again after the pause")
            time.sleep(0.2)
        return self.record(t, slot=k, node_id=node, component=service, pause_s=pause_s,
                           answers_s=round(time.monotonic() - t, 3))


class FreezeWorker(PauseWorker):
    name = "freeze"
    recovery = ("docker pause beyond the node-death timeout -> the node is declared dead, the unpaused raylet "
                "fences and re-registers; a probe pinned to the slot succeeds")

    def span(self) -> tuple[float, float]:
        return self.args.freeze_min, self.args.freeze_max

    def fire(self, rng: Any, ctx: FaultContext) -> dict[str, Any]:
        rec = super().fire(rng, ctx)
        rec["fenced_node_id"] = rec.get("node_id")
        return rec


class PartitionWorker(DockerFault):
    name = "partition"
    recovery = "docker network disconnect/connect -> a probe pinned to the slot, submitted at the heal, succeeds"

    def fire(self, rng: Any, ctx: FaultContext) -> dict[str, Any]:
        p = cast("ComposeProject", ctx.cluster)
        k, service = self.worker(rng, p)
        node = p.node_id(service)
        cut_s = round(rng.uniform(self.args.partition_min, self.args.partition_max), 3)
        t = time.monotonic()
        docker("network", "disconnect", "-f", p.network(), p.container(service))
        time.sleep(max(0.0, t + cut_s - time.monotonic()))
        docker("network", "connect", "--ip", p.ips[service], p.network(), p.container(service))
        healed = time.monotonic() - t
        ctx.probe("slot_task", k)
        return self.record(t, slot=k, node_id=node, component=service, cut_s=cut_s, healed_s=round(healed, 3),
                           may_die=cut_s >= self.args.death_timeout)


FAULT_CLASSES: dict[str, type[Any]] = {c.name: c for c in (CrashGcs, KillNode, CrashRedis, PauseWorker,
                                                             FreezeWorker, PartitionWorker)}
