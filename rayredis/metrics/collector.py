"""A stateless Prometheus collector: each scrape reads the cluster's Redis tables and shards once.

Nothing is kept between scrapes but the Redis connections, so any number of exporters (or one
restarted at any time) report the same values. One scrape costs: a pipeline on the primary (jobs,
actors, placement groups, nodes, the GCS lease), a SCAN with ``HMGET state attempt`` of each data
shard's task entries (O(task entries), which ``task_table_ttl_s`` bounds), and per shard a PING,
``INFO``, and one PUBLISH received on a subscription opened for the scrape (the pub/sub lag).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from rayredis.metrics.families import ShardSample, Snapshot, families, parse_commandstats
from rayredis.store import keys
from rayredis.store.client import ShardedRedis
from rayredis.store.tables import read_nodes, read_placement_groups

logger = logging.getLogger(__name__)

#: How long a scrape waits for its own PUBLISH to come back on a shard.
PUBSUB_TIMEOUT_S = 2.0
_SCAN_COUNT = 1000


def _s(v: bytes | str | None) -> str:
    return v.decode() if isinstance(v, bytes) else (v or "")


class RedisCollector(Collector):
    """Registered in a ``CollectorRegistry``; ``collect`` runs once per scrape."""

    def __init__(self, store: ShardedRedis, clock: Any = time.time):
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        snap = Snapshot(now=self.clock())
        try:
            self._read_tables(snap)
        except (redis.RedisError, OSError) as e:  # the shard samples still say which shard is down
            logger.warning("metrics scrape: reading the tables failed: %s", e)
        snap.shards = [self._sample_shard(addr, role, c) for addr, role, c in self._shards()]
        yield from families(snap)

    # ---- tables ---------------------------------------------------------------------------------

    def _read_tables(self, snap: Snapshot) -> None:
        p = self.store.primary
        pipe = p.pipeline(transaction=False)
        pipe.hgetall(keys.job_state_key())
        pipe.smembers(keys.actors_index_key())
        pipe.exists(keys.gcs_lease_key())
        job_states, actor_ids, lease = pipe.execute()
        snap.job_states = Counter(_s(v) for v in job_states.values())
        snap.gcs_lease_held = bool(lease)
        ids = sorted(_s(a) for a in actor_ids)
        pipe = p.pipeline(transaction=False)
        for aid in ids:
            pipe.hmget(keys.actor_key(aid), ["state", "num_restarts"])
        for state, restarts in pipe.execute():
            if state is not None:
                snap.actor_states[_s(state)] += 1
                snap.actor_restarts += int(_s(restarts) or 0)
        snap.pg_states = Counter(pg.state.value for pg in read_placement_groups(p))
        snap.nodes = read_nodes(p)
        prefix = keys.task_key("")
        seen: set[str] = set()
        for addr, client in zip(self.store.shard_addresses, self.store.shards, strict=True):
            if addr in seen:
                continue
            seen.add(addr)
            names = list(client.scan_iter(match=prefix + "*", count=_SCAN_COUNT))
            pipe = client.pipeline(transaction=False)
            for k in names:
                pipe.hmget(k, ["state", "attempt"])
            for state, attempt in pipe.execute():
                if state is not None:
                    snap.task_states[_s(state)] += 1
                    if int(_s(attempt) or 0) > 0:
                        snap.tasks_retried += 1

    # ---- shards ---------------------------------------------------------------------------------

    def _shards(self) -> list[tuple[str, str, Any]]:
        """(address, role, client) of every distinct shard, the primary first."""
        data = dict(zip(self.store.shard_addresses, self.store.shards, strict=True))
        prim = self.store.primary_address
        out = [(prim, "primary+data" if prim in data else "primary", self.store.primary)]
        out += [(addr, "data", c) for addr, c in data.items() if addr != prim]
        return out

    def _sample_shard(self, address: str, role: str, client: Any) -> ShardSample:
        try:
            t0 = time.perf_counter()
            client.ping()
            ping = time.perf_counter() - t0
            info = client.info("all")
        except (redis.RedisError, OSError):
            return ShardSample(address, role, up=False)
        return ShardSample(address, role, up=True, ping_s=ping, pubsub_lag_s=self._pubsub_lag(client),
                           commands=parse_commandstats(info),
                           connected_clients=int(info.get("connected_clients", 0)),
                           used_memory=int(info.get("used_memory", 0)))

    def _pubsub_lag(self, client: Any) -> float | None:
        """Seconds from PUBLISH to receipt on our own subscription (None: not received in time)."""
        channel = keys.metrics_probe_channel()
        ps = client.pubsub()
        try:
            ps.subscribe(channel)
            deadline = time.monotonic() + PUBSUB_TIMEOUT_S
            while (m := ps.get_message(timeout=PUBSUB_TIMEOUT_S)) is None or m["type"] != "subscribe":
                if time.monotonic() > deadline:
                    return None
            token = f"{time.time_ns()}"
            t0 = time.perf_counter()
            client.publish(channel, token)
            while time.monotonic() < deadline:
                m = ps.get_message(timeout=max(deadline - time.monotonic(), 0.0))
                if m is not None and m["type"] == "message" and _s(m["data"]) == token:
                    return time.perf_counter() - t0
            return None
        except (redis.RedisError, OSError):
            return None
        finally:
            ps.close()
