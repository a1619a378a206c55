"""Fault injectors for a local rayredis cluster, and the seeded schedule that fires them.

A fault is a small object with a ``name`` (its mode) and ``fire(rng, handle) -> dict``. ``fire``
does the damage *and* the repair the operator would do (``KillGcs`` starts a replacement GCS),
then returns a record of what was done and when. Targets come from ``<session_dir>/pids``
(``rayredis._private.process.recorded``), so only processes of this cluster are ever touched.

When faults fire is decided up front by :func:`plan_schedule`: a Poisson process (exponentially
distributed gaps, as in dask's ``distributed/chaos.py``) drawn from ``random.Random(seed)``, so
the same seed gives the same fault times and kinds whatever the cluster does in between.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import redis

from rayredis._private import node, process
from rayredis._private.node import NodeHandle
from rayredis.store import keys


def live(handle: NodeHandle, role: str) -> list[process.Recorded]:
    """The live recorded processes of ``role`` in ``handle``'s session, by PID."""
    return sorted((r for r in process.recorded(handle.session_dir) if r.role == role and process.is_alive(r)),
                  key=lambda r: r.pid)


def _sigkill_and_wait(r: process.Recorded, timeout_s: float = 5.0) -> bool:
    """SIGKILL ``r`` and wait until it is gone (reaping it if it is our child); True if it died."""
    try:
        os.kill(r.pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while process.is_alive(r):
        try:
            os.waitpid(r.pid, os.WNOHANG)  # the GCS is a child of the driver that started the cluster
        except ChildProcessError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _redis(handle: NodeHandle) -> redis.Redis:
    return redis.Redis.from_url(f"redis://:{handle.password}@{handle.address}", socket_timeout=5.0)


class Fault:
    """Base class: ``name`` is the mode shown in reports and accepted by ``--faults``."""

    name: ClassVar[str] = ""

    def fire(self, rng: random.Random, handle: NodeHandle) -> dict[str, Any]:
        raise NotImplementedError

    def _record(self, t0: float, **fields: Any) -> dict[str, Any]:
        return {"kind": self.name, "wall_time": time.time() - (time.monotonic() - t0), "monotonic": t0,
                **fields}


@dataclass
class KillGcs(Fault):
    """SIGKILL the GCS, leave the cluster without one for ``downtime_s``, start a replacement.

    The record says when the old GCS was killed (``monotonic``), its PID (``target_pid``), the
    replacement's PID (``new_pid``) and how long the replacement took to publish its address
    (``gcs_ready_s``, measured from its start).
    """

    name: ClassVar[str] = "gcs"
    downtime_s: float = 1.0
    ready_timeout_s: float = 30.0

    def fire(self, rng: random.Random, handle: NodeHandle) -> dict[str, Any]:
        from rayredis import api

        # The driver's own GCS supervisor would restart the GCS at once; this fault sets the downtime.
        sup = api._supervisor
        with sup.pause() if sup is not None else contextlib.nullcontext():
            return self._fire(handle)

    def _fire(self, handle: NodeHandle) -> dict[str, Any]:
        targets = live(handle, "gcs")
        client = _redis(handle)
        try:
            old_address = client.hget(keys.cluster_key(), "gcs_address")
            t0 = time.monotonic()
            if not targets:
                return self._record(t0, skipped="no live GCS process is recorded", target_pid=None)
            died = [_sigkill_and_wait(r) for r in targets]
            killed_s = time.monotonic() - t0
            time.sleep(self.downtime_s)
            started = time.monotonic()
            new_pid = node.start_gcs(handle)
            ready_s = None
            deadline = started + self.ready_timeout_s
            while time.monotonic() < deadline:
                if client.hget(keys.cluster_key(), "gcs_address") != old_address:
                    ready_s = time.monotonic() - started
                    break
                time.sleep(0.01)
            return self._record(t0, target_pid=targets[0].pid, all_targets=[r.pid for r in targets],
                                target_died=all(died), kill_s=round(killed_s, 4),
                                downtime_s=self.downtime_s, new_pid=new_pid,
                                gcs_ready_s=None if ready_s is None else round(ready_s, 4),
                                error=None if ready_s is not None else
                                f"the replacement GCS (pid {new_pid}) did not publish an address within "
                                f"{self.ready_timeout_s} s; see {handle.session_dir}/logs/gcs_server.err")
        finally:
            client.close()


@dataclass
class KillWorker(Fault):
    """SIGKILL one live worker process (task worker or actor), chosen uniformly with ``rng``.

    The record names the PID and, when the worker hosted an actor, that actor's name and ID; the
    raylet notices the death and retries the task (``max_retries``) or restarts the actor.
    """

    name: ClassVar[str] = "worker"

    def fire(self, rng: random.Random, handle: NodeHandle) -> dict[str, Any]:
        workers = live(handle, "worker")
        t0 = time.monotonic()
        if not workers:
            return self._record(t0, skipped="no live worker process is recorded", target_pid=None)
        target = rng.choice(workers)
        actor = _actor_hosted_by(handle, target.pid)
        died = _sigkill_and_wait(target)
        return self._record(t0, target_pid=target.pid, live_workers=len(workers), target_died=died,
                            actor=actor)


def _text(v: bytes | str | None) -> str:
    return "" if v is None else v.decode() if isinstance(v, bytes) else v


def _actor_hosted_by(handle: NodeHandle, pid: int) -> dict[str, str] | None:
    """The actor (name, class, id) whose worker process is ``pid``, from the actor table."""
    client = _redis(handle)
    try:
        for aid in client.smembers(keys.actors_index_key()):
            aid_hex = _text(aid)
            got = client.hmget(keys.actor_key(aid_hex), "pid", "state", "name", "class_name")
            if _text(got[0]) == str(pid) and _text(got[1]) == "ALIVE":
                return {"actor_id": aid_hex, "name": _text(got[2]), "class_name": _text(got[3])}
    except redis.RedisError:
        return None
    finally:
        client.close()
    return None


#: Every fault ``--faults`` accepts, by name.
FAULTS: dict[str, type[Fault]] = {KillGcs.name: KillGcs, KillWorker.name: KillWorker}

#: Faults on the roadmap that are not implemented yet (see chaos/README.md).
PLANNED = {
    "raylet": "SIGKILL the raylet of a non-head node; needs multi-node local clusters",
    "redis": "SIGKILL a Redis shard and restart it from AOF / fail over with Sentinel",
    "partition": "cut a node off the network with ip netns / iptables",
    "slow": "SIGSTOP / SIGCONT a process to simulate a hung GCS, raylet or Redis",
}


def make_faults(names: list[str], *, gcs_downtime_s: float = 1.0) -> list[Fault]:
    """Fault objects for ``names`` (``["gcs", "worker"]``); unknown or planned names raise."""
    out: list[Fault] = []
    for n in names:
        if n == KillGcs.name:
            out.append(KillGcs(downtime_s=gcs_downtime_s))
        elif n in FAULTS:
            out.append(FAULTS[n]())
        elif n in PLANNED:
            raise ValueError(f"The fault {n!r} is planned but not implemented: {PLANNED[n]}.")
        else:
            raise ValueError(f"Unknown fault {n!r}; choose from {', '.join(FAULTS)}.")
    return out


@dataclass(frozen=True)
class Planned:
    """One scheduled fault: fire ``kind`` at ``t`` seconds after the run starts."""

    index: int
    t: float
    kind: str


def plan_schedule(seed: int, kinds: list[str], mean_interval_s: float, start_s: float, end_s: float,
                  order: str = "cycle") -> list[Planned]:
    """Fault times in ``[start_s, end_s]`` with exponential gaps of mean ``mean_interval_s``.

    ``order="cycle"`` fires every kind once per round, in a freshly shuffled order each round (so
    each kind fires as soon as there are ``len(kinds)`` faults); ``"random"`` picks each kind
    independently.
    """
    if mean_interval_s <= 0:
        raise ValueError("mean_interval_s must be > 0")
    if order not in ("cycle", "random"):
        raise ValueError(f"order must be 'cycle' or 'random', not {order!r}")
    rng = random.Random(seed)
    out: list[Planned] = []
    t = start_s
    bag: list[str] = []
    while kinds:
        t += rng.expovariate(1.0 / mean_interval_s)
        if t > end_s:
            break
        if order == "random":
            kind = rng.choice(kinds)
        else:
            if not bag:
                bag = list(kinds)
                rng.shuffle(bag)
            kind = bag.pop()
        out.append(Planned(len(out), round(t, 4), kind))
    return out


def fault_rng(seed: int, index: int) -> random.Random:
    """The generator a fault uses for its own choices (its target): independent of the schedule."""
    return random.Random(f"chaos:{seed}:{index}")
