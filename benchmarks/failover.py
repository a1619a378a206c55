"""Failover time of replicated Redis shards: SIGKILL a shard's master, time until a write is accepted again.

Starts a local cluster with ``_redis_replicas=1`` (3 Sentinels), then ``--rounds`` times: INCR a
counter on the shard through its Sentinels (WAITed for the replica), SIGKILL the master the
Sentinels name, INCR until one is accepted (the failover time), check the acknowledged value
survived, and wait for the killed member to be back as a replica before the next round. Also
reports the cost of WAIT: the latency of a HSET with and without it.

    python benchmarks/failover.py [--rounds 5] [--shard 0] [--down-after-ms 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from typing import Any


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--shard", type=int, default=0, help="0: the primary shard, 1: the data shard")
    ap.add_argument("--down-after-ms", type=int, default=1000, help="Sentinel down-after-milliseconds")
    args = ap.parse_args()
    os.environ["RAYREDIS_SENTINEL_DOWN_AFTER_MS"] = str(args.down_after_ms)

    import redis
    import redis.sentinel
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    import rayredis as ray
    from rayredis import api
    from rayredis._private import sentinel
    from rayredis.store import keys, replication

    ray.init(_redis_replicas=1, num_cpus=1, num_redis_shards=2)
    h = api._started
    assert h is not None
    name = replication.master_name(args.shard)
    manager: Any = redis.sentinel.Sentinel(replication.sentinel_addresses(h.sentinels),
                                           sentinel_kwargs=replication.sentinel_kwargs(h.password))
    client = manager.master_for(name, password=h.password, socket_timeout=1.0, socket_connect_timeout=0.5,
                                retry=Retry(NoBackoff(), 0))
    times: list[float] = []
    lost = 0
    try:
        for n in range(args.rounds):
            view = sentinel.ask_sentinels(h.sentinels, h.password, name)
            assert view.master is not None
            port = int(view.master.rpartition(":")[2])
            member = redis.Redis(host="127.0.0.1", port=port, password=h.password, socket_timeout=1.0,
                                 retry=Retry(NoBackoff(), 0))
            pid = int(member.info("server")["process_id"])
            before = int(client.incr(keys.failover_probe_key()))
            client.wait(1, 1000)
            t0 = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            while True:
                try:
                    after = int(client.incr(keys.failover_probe_key()))
                    break
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    time.sleep(0.005)
            times.append(time.monotonic() - t0)
            lost += after <= before
            deadline = time.monotonic() + 60
            while True:  # the supervisor brings the killed member back as a replica
                try:
                    if member.info("replication")["role"] == "slave" and \
                            member.info("replication")["master_link_status"] == "up":
                        break
                except redis.exceptions.RedisError:
                    pass
                assert time.monotonic() < deadline, "the killed member did not rejoin"
                time.sleep(0.05)
            member.close()
            print(f"round {n}: killed :{port} (pid {pid}); writes accepted after {times[-1]:.2f} s", flush=True)
        wait_cost = _wait_cost(client)
    finally:
        client.close()
        manager.close()
        ray.shutdown()
    result = {"rounds": args.rounds, "shard": args.shard, "down_after_ms": args.down_after_ms,
              "failover_s": [round(t, 3) for t in times], "median_s": round(statistics.median(times), 3),
              "acked_writes_lost": lost, **wait_cost}
    print(json.dumps(result))
    return 0 if lost == 0 else 1


def _wait_cost(client: Any, n: int = 2000) -> dict[str, float]:
    """Mean latency of HSET alone and of HSET + WAIT 1 (what each runtime write pays with replicas)."""
    from rayredis.store import keys

    key = keys.failover_probe_key() + ":hset"
    t0 = time.perf_counter()
    for i in range(n):
        client.hset(key, "f", i)
    plain = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for i in range(n):
        pipe = client.pipeline(transaction=False)
        pipe.hset(key, "f", i)
        pipe.wait(1, 1000)
        pipe.execute()
    waited = (time.perf_counter() - t0) / n
    client.delete(key)
    return {"hset_us": round(plain * 1e6, 1), "hset_wait_us": round(waited * 1e6, 1)}


if __name__ == "__main__":
    sys.exit(main())
