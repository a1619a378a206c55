"""Every Redis key and pub/sub channel name of rayredis, each built by one function documented here.

Shards: the *primary* is shard 0 and holds the cluster-wide tables (cluster metadata, nodes, jobs,
functions, actors, placement groups). Task and object entries live on the *data shards*, chosen by
``shard_index_for_id`` from the task-ID prefix, so a task and its return objects share a shard.
Nothing outside this module formats a key string.
"""

from __future__ import annotations

import zlib

from rayredis.ids import TASK_ID_LEN

PREFIX = "rr:"


def shard_index_for_id(id_bytes: bytes, num_data_shards: int) -> int:
    """Data-shard index (0-based among the data shards) for a task or object ID."""
    if num_data_shards <= 1:
        return 0
    return zlib.crc32(id_bytes[:TASK_ID_LEN]) % num_data_shards


# --- primary shard: cluster-wide tables -------------------------------------------------------


def cluster_key() -> str:
    """HASH on the primary, owned by whoever starts the head: ``token``, ``gcs_address``,
    ``shards`` (JSON list of ``host:port``), ``session_dir``, ``created``, ``version``; with
    replicated shards also ``sentinels``, ``masters`` and ``replicas`` (``store/replication.py``)."""
    return PREFIX + "cluster"


def gcs_lease_key() -> str:
    """STRING on the primary: the random holder id of the one active GCS, with a PX expiry of
    ``gcs_lease_s``. Owned by the GCS: SET NX PX to acquire (which also writes ``gcs_address`` to
    ``cluster_key``), PEXPIRE to renew and DEL to release, each only if it still holds the id (script
    ``gcs_lease``); the GCS's decision writes check it too (the fenced scripts of ``store/scripts.py``)."""
    return PREFIX + "gcs_lease"


def nodes_key() -> str:
    """HASH on the primary, field node-id hex -> node JSON (``node_id``, ``address``, ``node_ip``,
    ``resources``, ``object_store_memory``, ``session_dir``, ``pid``, ``start_time``, ``is_head``,
    ``socket``, ``link_address``). Written once by the raylet at registration; liveness is in
    ``node_state_key``."""
    return PREFIX + "nodes"


def node_state_key() -> str:
    """HASH on the primary, field node-id hex -> ``ALIVE`` or ``DEAD``; moved by the CAS script
    ``hfield_cas``: ``''``->ALIVE by the raylet at registration, ALIVE->DEAD by the raylet on clean
    exit or by the GCS on missed heartbeats; every move is announced on ``node_channel``."""
    return PREFIX + "node_state"


def node_heartbeat_key() -> str:
    """HASH on the primary, field node-id hex -> integer counter; the raylet HINCRBYs it every
    ``heartbeat_interval_s``; the GCS declares a node dead when its counter stops moving."""
    return PREFIX + "node_hb"


def node_load_key() -> str:
    """HASH on the primary, field node-id hex -> JSON of the raylet's whole load report
    (``available``, ``total``, ``queued``, ``running``, ``object_store_used``,
    ``object_store_capacity``, ``num_objects``, ``workers``, ``time``), written at registration and
    with each heartbeat (and after each bundle reservation). Read by ``available_resources``, by the
    GCS when it places actors and bundles, and by every raylet into its cluster view (spillback)."""
    return PREFIX + "node_load"


def job_counter_key() -> str:
    """STRING on the primary; INCR by the GCS to allocate job IDs."""
    return PREFIX + "job_counter"


def jobs_key() -> str:
    """HASH on the primary, field job-id -> job JSON (``job_id``, ``driver_pid``, ``node_id``,
    ``namespace``, ``entrypoint``, ``start_time``). Written by the GCS at registration; the job's
    state is in ``job_state_key``."""
    return PREFIX + "jobs"


def job_state_key() -> str:
    """HASH on the primary, field job-id -> ``RUNNING`` or ``FINISHED``; moved by the CAS script
    ``hfield_cas``: ``''``->RUNNING by the GCS at registration, RUNNING->FINISHED by the raylet when
    the driver's connection closes; every move is announced on ``job_channel``."""
    return PREFIX + "job_state"


def function_key(function_id_hex: str) -> str:
    """STRING on the primary: the cloudpickled function or actor class, content-addressed.
    Written once (SET NX) by the exporting driver or worker; read by workers; never changed."""
    return PREFIX + "fn:" + function_id_hex


def actor_key(actor_id_hex: str) -> str:
    """HASH on the primary: one actor's entry (``state``, ``spec``, ``node``, ``worker``, ``pid``,
    ``attempt``, ``num_restarts``, ``max_restarts``, ``max_task_retries``, ``name``, ``namespace``,
    ``name_key``, ``job``, ``detached``, ``class_name``, ``methods``, ``is_async``, ``owner_node``,
    ``death_cause``). Created by the driver or worker that calls ``.remote()`` (script
    ``actor_create``, with the name claim); transitions by the CAS script ``actor_transition``
    from the GCS (scheduling, node death, DEAD for actors of finished jobs) and the hosting raylet
    (alive, died, restarting, DEAD when it kills the actor)."""
    return PREFIX + "actor:" + actor_id_hex


def actors_index_key() -> str:
    """SET on the primary of every actor-id hex, for rescans after (re)subscribing."""
    return PREFIX + "actors"


def live_actors_key() -> str:
    """SET on the primary of the actor-id hex of every actor not DEAD: added by ``actor_create``,
    removed by ``actor_transition`` when the actor becomes DEAD. What the GCS's rescans walk, so
    their cost follows the live actors, not every actor ever created (``actors_index_key``)."""
    return PREFIX + "actors:live"


def dead_actors_key() -> str:
    """ZSET on the primary, actor-id hex -> when it became DEAD (ms, the primary's clock): added by
    ``actor_transition``; the GCS prunes the oldest (script ``actor_prune``, deleting their entries)
    beyond ``Config.dead_actors_kept``, so dead actors do not accumulate in Redis forever."""
    return PREFIX + "actors:dead"


def named_actors_key() -> str:
    """HASH on the primary, field ``namespace/name`` -> actor-id hex (claimed in the
    ``actor_create`` script unless a live actor holds it; released by ``actor_transition`` when the
    actor becomes DEAD)."""
    return PREFIX + "actor_names"


def placement_group_key(pg_id_hex: str) -> str:
    """HASH on the primary: one placement group (``state``, ``bundles`` JSON, ``strategy``,
    ``nodes`` JSON (node per bundle), ``name``, ``namespace``, ``job``, ``detached``, ``created``,
    ``returned``, and the two-phase reservation in progress: ``txn`` JSON (``tables.BundleTxn``),
    ``txn_phase`` and ``txn_seq``). Created as PENDING by whichever process calls
    ``placement_group()`` (a driver or a worker). The GCS reserves bundles by ``hash_cas`` steps:
    records the reservation PREPARING, asks the raylets to prepare, moves it to PREPARED, asks them
    to commit, then moves the group to CREATED with its ``nodes`` and clears the reservation (or,
    when a prepare fails, cancels and clears it). ``remove_placement_group`` moves it to REMOVED by
    CAS and the GCS then returns the bundles and sets ``returned``."""
    return PREFIX + "pg:" + pg_id_hex


def placement_groups_index_key() -> str:
    """SET on the primary of every placement-group id hex, for rescans."""
    return PREFIX + "pgs"


def cluster_events_key() -> str:
    """STREAM on the primary: the cluster's events (node registered or dead and why, actor restarted
    or died, GCS lease acquired, a process restarted or a Redis failover seen by a node supervisor,
    placement-group bundles re-placed), each entry ``kind``, ``severity``, ``source``, ``message``
    and ``custom`` (JSON of ids and durations). Appended (XADD MAXLEN ~ ``events.MAXLEN``, so
    capped) fire-and-forget by the GCS, the raylets and the supervisors (``_private/events.py``);
    read by ``list_cluster_events`` and the dashboard, which follows it with XREAD."""
    return PREFIX + "events"


def dashboard_key() -> str:
    """HASH on the primary, owned by the dashboard (``rayredis/dashboard``): ``url``, ``pid`` and
    ``started`` of the last dashboard that started serving (HSET at start, DEL at a clean exit, only
    if it still names this one); read by ``rayredis status`` and ``rayredis start`` to print the URL."""
    return PREFIX + "dashboard"


# --- data shards: tasks and objects ------------------------------------------------------------


def task_key(task_id_hex: str) -> str:
    """HASH on the data shard of the task ID: ``spec`` (serialized TaskSpec, the lineage needed to
    re-run it), ``state`` (PENDING/FINISHED/FAILED/CANCELLED; RUNNING is not written, to keep one
    write per transition off the hot path), ``node``, ``attempt``, ``job``, ``creation_time`` (when
    the first raylet received it) and, once ended, ``end_time``, ``worker``, ``start_time`` (when the
    raylet that ran it handed it to that worker; absent if it never reached one) and (failures)
    ``error_type``; ``spilled_from``
    when the submitter's raylet forwarded it (its spill written, ``node`` = the target, before the
    forward is sent), and ``rebuilt_by`` when a node re-runs it because its owner died (claimed by the
    CAS script ``task_claim`` on ``attempt``: one node per attempt; the entry is PENDING at that node
    and loses its expiry). Written by the raylets that receive the task, batched per flush; state
    changes by CAS script ``task_transition``; expires ``task_table_ttl_s`` after a terminal state,
    which bounds how long an owner's death leaves the task rebuildable."""
    return PREFIX + "task:" + task_id_hex


def object_key(object_id_hex: str) -> str:
    """HASH on the data shard of the object's task prefix: ``size``, ``task``, ``error`` and one
    field ``loc:<node-id hex>`` per node holding a copy. Each raylet that stores a copy adds its
    ``loc:`` field; when it frees its copy it removes only that field (script
    ``object_location_remove``), and the entry is deleted when no location is left."""
    return PREFIX + "obj:" + object_id_hex



def generator_items_key(task_id_hex: str) -> str:
    """STREAM on the data shard of the task ID: the items of a ``"streaming"`` generator task or
    method, reported as they are yielded: one entry per item (``i`` its index, ``o`` its object ID,
    ``n`` the node ID of the worker that put it), then ``end`` (the item count). Written by the
    worker running the generator (XADD, each renewing an expiry of ``GENERATOR_ITEMS_TTL_S``), read
    by the caller's ``ObjectRefGenerator`` (XREAD) and deleted by it once it has stopped
    (``rayredis/generators.py``). A retried task appends its attempt's entries again."""
    return PREFIX + "gen:" + task_id_hex


#: Expiry of a :func:`generator_items_key` stream after its last entry, in seconds.
GENERATOR_ITEMS_TTL_S = 24 * 3600

# --- pub/sub channels --------------------------------------------------------------------------


def actor_channel() -> str:
    """Channel on the primary: actor-id hex published after every actor state change."""
    return PREFIX + "ch:actor"


def node_channel() -> str:
    """Channel on the primary: node-id hex published when a node joins or dies."""
    return PREFIX + "ch:node"


def job_channel() -> str:
    """Channel on the primary: job-id published when a job starts or finishes."""
    return PREFIX + "ch:job"


def placement_group_channel() -> str:
    """Channel on the primary: placement-group id hex published after each state change."""
    return PREFIX + "ch:pg"


def object_channel() -> str:
    """Channel on each data shard: object-id hex published when a location is added."""
    return PREFIX + "ch:obj"


def metrics_probe_channel() -> str:
    """Channel on each data shard (and the primary), owned by the metrics exporter
    (``rayredis/metrics``): at each scrape it publishes a timestamp there and times its own
    subscription's receipt of it (pub/sub lag). Nobody else subscribes."""
    return PREFIX + "ch:metrics_probe"


def failover_probe_key() -> str:
    """STRING on each data shard (and the primary), a counter owned by the chaos runner's
    ``redis-primary`` fault: INCRed (and WAITed for) before it kills a shard's master and after,
    to time when writes are accepted again and to check that the acknowledged value survived."""
    return PREFIX + "chaos:failover_probe"


ALL_TABLE_PREFIXES = {
    "cluster": cluster_key(),
    "nodes": nodes_key(),
    "jobs": jobs_key(),
    "actors": PREFIX + "actor:*",
    "placement_groups": PREFIX + "pg:*",
    "functions": PREFIX + "fn:*",
    "tasks": PREFIX + "task:*",
    "objects": PREFIX + "obj:*",
}
