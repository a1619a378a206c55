"""The one frozen configuration object, with documented defaults overridable by ``RAYREDIS_*`` env vars."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Config:
    """Tunables shared by every rayredis process.

    Each field can be overridden with an environment variable named ``RAYREDIS_<FIELD>`` in upper
    case (``RAYREDIS_NODE_DEATH_TIMEOUT_S=10``). Durations are seconds unless the name says ``_ms``.
    """

    #: Root directory for session directories, logs and the current-cluster file: one per user
    #: (``/tmp/rayredis-<uid>``, created 0700; refused if another user owns it or can write to it,
    #: docs/security.md). (Not ``/tmp/rayredis``: a directory named like the package would shadow it
    #: for scripts in /tmp.)
    temp_dir: str = f"/tmp/rayredis-{os.geteuid()}"
    #: Address every server binds to unless the user asks for another.
    bind_host: str = "127.0.0.1"
    #: Default number of redis-server processes (one primary plus data shards).
    num_redis_shards: int = 2
    #: Default port of the primary Redis shard for ``rayredis start --head``.
    default_port: int = 6379
    #: Values at most this large travel inline in messages instead of through shared memory.
    inline_object_max_bytes: int = 100 * 1024
    #: A raylet pulling an object from another raylet on its own host (same IP address) copies the
    #: shared-memory segment in the kernel instead of streaming it over gRPC (docs/scheduling.md).
    pull_same_host_copy: bool = True
    #: Default object store capacity per node (bytes); 0 means 30% of /dev/shm.
    object_store_memory: int = 0
    #: When the object store is full, copy sealed objects that nothing uses (least recently used
    #: first) to local disk and restore them on read, instead of failing the put, as Ray does
    #: (docs/architecture.md). The copies run on a thread; a raylet restarted under its node ID
    #: gives its drivers' large puts back from what its previous process left.
    #: RAYREDIS_OBJECT_SPILLING=0 turns it off.
    object_spilling: bool = True
    #: Directory of spilled objects; empty means ``<session_dir>/spill`` (removed with the session).
    object_spilling_dir: str = ""
    #: Interval between raylet heartbeats written to Redis.
    heartbeat_interval_s: float = 0.5
    #: A node whose heartbeat counter has not moved for this long is declared dead by the GCS. The
    #: time counts only while the GCS itself runs without a gap: after a pause or starvation of the
    #: GCS longer than half of it, every node gets a full timeout again (``gcs/node_monitor.py``).
    node_death_timeout_s: float = 3.0
    #: The lease of the active GCS in Redis (``keys.gcs_lease_key``): the holder renews it every
    #: third of this and trusts it for 80 % of this after each renewal; a standby GCS takes over
    #: once it lapses. Exactly one GCS of a cluster acts at a time.
    gcs_lease_s: float = 3.0
    #: The cluster is gone once the Redis primary has not answered (or was found empty) for this
    #: long without a success in between: the GCS exits (exit status 3), and so does a worker
    #: (also when its raylet connection is gone), instead of running on without its cluster.
    cluster_gone_timeout_s: float = 30.0
    #: How often the raylet's batched Redis writer flushes (upper bound on added latency).
    redis_flush_interval_ms: float = 2.0
    #: Finished task entries expire from the task table after this long (lineage window).
    task_table_ttl_s: int = 3600
    #: DEAD actors whose entries stay in Redis (the most recent deaths; ``list_actors`` and
    #: ``get_actor`` by ID show them): the GCS deletes older ones, as Ray caps its destroyed-actor
    #: cache (``maximum_gcs_destroyed_actor_cached_count``), so dead actors do not pile up forever.
    dead_actors_kept: int = 10_000
    #: Worker processes started when the raylet starts (0 means num_cpus, capped at 4).
    prestart_workers: int = 0
    #: Pooled task workers per (whole) CPU at most: fractional or zero-CPU tasks run in parallel up
    #: to this many per CPU, as far as their resources allow (tasks blocked in get come on top).
    max_workers_per_cpu: float = 4.0
    #: How long a component keeps retrying an idempotent call to Redis or the GCS.
    connect_timeout_s: float = 30.0
    #: How long a driver whose raylet stream broke keeps trying to reach the same node again (the
    #: raylet restarted under its node ID by its supervisor) before its pending calls fail; 0 = never.
    raylet_reconnect_timeout_s: float = 30.0
    #: Default for ``max_retries`` of tasks whose worker dies (Ray's default is 3).
    default_max_retries: int = 3
    #: Local clients talk to their raylet over its Unix socket (False: always gRPC, as remote ones do).
    local_socket: bool = True
    #: How a driver exchanges large objects with its raylet: ``"auto"`` probes at connection whether
    #: it shares the raylet's /dev/shm (if not, as on another host, objects travel inside the
    #: connection's messages), ``"always"`` sends them over the connection, ``"never"`` uses shared
    #: memory. Workers always use shared memory.
    objects_over_connection: str = "auto"
    #: ``appendfsync`` of every Redis shard's append-only file (AOF persistence is always on):
    #: ``everysec`` (a machine crash loses up to about the last second of writes, a killed
    #: redis-server loses nothing), ``always`` (fsync before each reply: nothing lost, much slower)
    #: or ``no`` (the kernel flushes when it likes, typically within 30 s).
    redis_appendfsync: str = "everysec"
    #: Replicas per Redis shard (primary and data shards alike); 0 (the default) means none. With
    #: N > 0 every shard is N + 1 redis-server processes (one master, N ``replicaof`` it, each with its
    #: AOF) and the head also starts ``num_sentinels`` Redis Sentinels that fail a dead master over to
    #: a replica; clients find the current masters through them (docs/fault-tolerance.md).
    redis_replicas: int = 0
    #: Sentinels a replicated head starts (quorum: a majority of them). 3 lets one die and still
    #: agree on a failover; 1 works (quorum 1) but that Sentinel's own death stops failovers.
    num_sentinels: int = 3
    #: The Sentinels of a replicated cluster, comma separated ``host:port``: rayredis sets it for the
    #: processes it starts (GCS, raylets, their workers) so they find the shards' masters through the
    #: Sentinels even while the primary's first address is down. Set it for a driver or ``rayredis
    #: start --address`` on another machine only if that address may be down when it connects.
    redis_sentinels: str = ""
    #: A master the Sentinels cannot reach for this long is "subjectively down"; once a quorum
    #: agrees, one of them promotes a replica (``down-after-milliseconds``): most of a failover's time.
    sentinel_down_after_ms: int = 1000
    #: With replicas, each write to Redis is followed by ``WAIT 1 <this>`` on its connection: the
    #: write is acknowledged only once a replica has it, so a failover cannot lose it. When no replica
    #: acknowledges in time (none is connected) the write goes on AOF-only and further WAITs are cut to
    #: ``redis_wait_degraded_ms`` until a replica acknowledges again.
    redis_wait_timeout_ms: int = 1000
    #: The WAIT timeout while a shard has no replica acknowledging (see ``redis_wait_timeout_ms``).
    redis_wait_degraded_ms: int = 10
    #: A node's supervisor gives up (and stops the node) when one of its processes (a Redis shard,
    #: the GCS, the raylet) dies more than this many times within ``supervisor_restart_window_s``.
    #: Restarts wait 0.1 s after the first death in the window, doubling up to 5 s.
    supervisor_max_restarts: int = 5
    #: The sliding window over which ``supervisor_max_restarts`` counts restarts.
    supervisor_restart_window_s: float = 60.0
    #: Seconds a stopping process is given after SIGTERM before SIGKILL.
    stop_grace_period_s: float = 5.0
    #: Log level for component log files.
    log_level: str = "INFO"
    #: A log file (a process's ``.log``, a worker's ``.out``/``.err``) is rotated once it exceeds
    #: this many bytes, keeping ``log_rotation_backup_count`` older files (``name.1`` ... ``name.N``),
    #: so a long-running cluster does not fill the disk (Ray's defaults: 512 MiB, 5 backups).
    log_rotation_max_bytes: int = 512 * 1024 * 1024
    log_rotation_backup_count: int = 5

    @classmethod
    def from_env(cls, **overrides: Any) -> Config:
        """Defaults, then ``RAYREDIS_*`` environment variables, then explicit ``overrides``."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            env = os.environ.get("RAYREDIS_" + f.name.upper())
            if env is None:
                continue
            default = f.default
            try:
                if isinstance(default, bool):
                    values[f.name] = env.lower() in ("1", "true", "yes")
                elif isinstance(default, int):
                    values[f.name] = int(env)
                elif isinstance(default, float):
                    values[f.name] = float(env)
                else:
                    values[f.name] = env
            except ValueError as e:
                raise ValueError(
                    f"Environment variable RAYREDIS_{f.name.upper()}={env!r} is not a valid "
                    f"{type(default).__name__}; unset it or give a number."
                ) from e
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


_config: Config | None = None


def get_config() -> Config:
    """The process-wide configuration, read from the environment once."""
    global _config
    if _config is None:
        _config = Config.from_env()
    return _config


def secret_from_env(name: str) -> str | None:
    """A secret handed to child processes through the environment (``RAYREDIS_<NAME>``), never argv."""
    return os.environ.get("RAYREDIS_" + name) or None
