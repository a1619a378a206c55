"""The ``partition`` fault: cut a non-head node's host off the network, hold it, heal it.

Needs ``--netns`` (every node on a host of its own, ``chaos/netns.py``): the switch drops every IPv4
frame to and from the host, so its raylet can reach neither Redis, the GCS, the other raylets nor the
driver, and nobody can reach it, while its own processes go on running. Two regimes:

* **short** (held for less than half the node-death timeout): no node may be declared dead; once
  healed, the same node (same node ID, same raylet process) serves again.
* **long** (held for more than twice the timeout): the GCS declares the node DEAD and its work is
  moved (tasks retried, actors restarted, objects rebuilt); once healed the raylet finds its node
  DEAD, fences itself (SIGKILLs its workers, so no actor instance runs on next to its replacement)
  and re-registers under a new node ID in the same process and session.

Successive partitions alternate long and short (``duration``), so every run with two of them has
both; a range that leaves no room for one of them draws uniformly from ``min_s``..``max_s``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import redis

from chaos import netns
from chaos.faults import (
    Fault,
    FaultContext,
    _non_head_raylets,
    _r,
    _text,
    actors_on_node,
    cluster_token,
    raylet_answers,
)
from rayredis.config import get_config
from rayredis.store import keys, tables

if TYPE_CHECKING:
    from chaos.cluster import ChaosCluster


@dataclass
class PartitionNode(Fault):
    """Cut a random non-head node's host off for ``min_s``..``max_s`` seconds (``duration``), then heal.

    Record fields: ``slot``, ``node_id``, ``host``, ``hold_s`` (drawn), ``healed_s`` (cut -> rules
    removed), ``regime`` (``short``/``long``), ``may_die`` (held long enough that a death is explained
    by the partition), ``declared_dead``/``declared_dead_s`` (cut -> the GCS marked the node DEAD),
    ``fenced_node_id``/``fenced_s`` (cut -> the node is ALIVE again under a new ID in the same session),
    ``same_process`` (the fenced raylet is the same PID, re-executed), ``answers_s`` (cut -> the node's
    raylet answers ``NodeStats`` after the heal), ``actors_hit``. ``error`` if it does not come back
    within ``back_timeout_s`` of the heal, or if a short partition killed it.
    """

    name: ClassVar[str] = "partition"
    recovery: ClassVar[str] = (
        "short (node not declared dead): heal -> a probe task pinned to the slot, submitted at the heal, "
        "succeeds; long (declared dead): cut -> every item in flight on the slot at the cut has completed "
        "and the heal probe succeeded (the work moved, the fenced node serves again)")
    DEFAULT_RANGE_S: ClassVar[tuple[float, float]] = (1.0, 8.0)
    min_s: float = DEFAULT_RANGE_S[0]
    max_s: float = DEFAULT_RANGE_S[1]
    back_timeout_s: float = 60.0
    death_timeout_s: float = field(default_factory=lambda: get_config().node_death_timeout_s)
    heartbeat_s: float = field(default_factory=lambda: get_config().heartbeat_interval_s)
    fired: int = 0

    def duration(self, rng: random.Random) -> tuple[float, str]:
        """The hold of the next partition and its regime: long, short, long, ... (see the module)."""
        k, self.fired = self.fired, self.fired + 1
        short_hi = min(self.max_s, 0.5 * self.death_timeout_s)
        long_lo = max(self.min_s, 2.0 * self.death_timeout_s)
        if k % 2 == 0 and long_lo <= self.max_s:
            return round(rng.uniform(long_lo, self.max_s), 3), "long"
        if k % 2 == 1 and self.min_s <= short_hi:
            return round(rng.uniform(self.min_s, short_hi), 3), "short"
        hold = round(rng.uniform(self.min_s, self.max_s), 3)
        return hold, "long" if hold > self.death_timeout_s else "short"

    def fire(self, rng: random.Random, ctx: FaultContext) -> dict[str, Any]:
        c = ctx.cluster
        t0 = time.monotonic()
        if c.net is None:
            return self._record(t0, target_pid=None, error="the partition fault needs --netns (each node on a "
                                                           "host of its own, to cut off)")
        cands = _non_head_raylets(c)
        if not cands:
            return self._record(t0, skipped="no live non-head node that no other fault holds "
                                            "(run with --nodes 2 or more)", target_pid=None)
        slot, rec, raylet = rng.choice(cands)
        if not c.claim(slot, self.name):
            return self._record(t0, skipped=f"slot {slot} was taken by another node-level fault", target_pid=None)
        try:
            return self._partition(rng, ctx, slot, rec, raylet.pid)
        finally:
            c.release(slot)

    def _partition(self, rng: random.Random, ctx: FaultContext, slot: int, rec: tables.NodeRecord,
                   pid: int) -> dict[str, Any]:
        c = ctx.cluster
        assert c.net is not None and rec.info is not None
        hold_s, regime = self.duration(rng)
        host = c.host_of_slot(slot)
        node_id, session_dir, address = rec.node_id, rec.info.session_dir, rec.info.address
        client = c.redis()
        try:
            hit = actors_on_node(client, node_id)
            token = cluster_token(client)
            dead_s: float | None = None

            def dead() -> bool:
                return _text(client.hget(keys.node_state_key(), node_id)) == tables.NodeState.DEAD.value

            t0 = time.monotonic()
            try:
                netns.partition(c.net, host.name)
                ctx.probe("slot_task", slot)
                while (left := t0 + hold_s - time.monotonic()) > 0:
                    if dead_s is None and dead():
                        dead_s = time.monotonic() - t0
                    time.sleep(min(0.05, left))
            finally:
                netns.heal(c.net, host.name)
            healed_s = time.monotonic() - t0
            ctx.probe("slot_task", slot)
            back = self._wait_back(c, slot, node_id, session_dir, address, token, dead, t0)
            if dead_s is None and back.get("fenced_s") is not None:
                dead_s = back.pop("dead_seen_s", None)
            back.pop("dead_seen_s", None)
        finally:
            client.close()
        may_die = hold_s + self.heartbeat_s >= self.death_timeout_s
        declared = dead_s is not None or back.get("fenced_node_id") is not None
        error = back.pop("error", None)
        if error is None and declared and not may_die:
            error = (f"node {node_id[:8]} was declared dead after a partition of only {hold_s} s (the node-death "
                     f"timeout is {self.death_timeout_s} s): a false death")
        return self._record(t0, target_pid=pid, slot=slot, node_id=node_id, host=host.name, hold_s=hold_s,
                            regime=regime, may_die=may_die, healed_s=_r(healed_s), declared_dead=declared,
                            declared_dead_s=None if dead_s is None else _r(dead_s), actors_hit=hit, **back,
                            error=error)

    def _wait_back(self, c: ChaosCluster, slot: int, node_id: str, session_dir: str, address: str, token: str,
                   dead: Callable[[], bool], t0: float) -> dict[str, Any]:
        """After the heal: until the node serves again, as itself (answers ``NodeStats``, still ALIVE)
        or fenced (a new node ID ALIVE in its session). A node that answers but is then found DEAD
        (declared dead right at the heal) is waited for as fenced."""
        deadline = time.monotonic() + self.back_timeout_s
        out: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                now = c.slot_record(slot)
                if now is not None and now.info is not None and now.info.session_dir == session_dir \
                        and now.node_id != node_id:
                    out.update(fenced_node_id=now.node_id, fenced_s=_r(time.monotonic() - t0),
                               same_process=now.info.pid == self._pid_of(c, node_id))
                    return out
                if dead():
                    out.setdefault("dead_seen_s", _r(time.monotonic() - t0))
                elif raylet_answers(address, token, timeout_s=0.5) and not dead():
                    out["answers_s"] = _r(time.monotonic() - t0)
                    return out
            except (OSError, redis.RedisError) as e:
                out["last_error"] = f"{type(e).__name__}: {e}"
            time.sleep(0.05)
        out["error"] = (f"node {node_id[:8]} (slot {slot}) did not serve again within {self.back_timeout_s} s of "
                        f"the heal, neither as itself nor fenced under a new node ID")
        return out

    @staticmethod
    def _pid_of(c: ChaosCluster, node_id: str) -> int | None:
        for r in c.nodes():
            if r.node_id == node_id and r.info is not None:
                return int(r.info.pid)
        return None
