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
    ``shards`` (JSON list of ``host:port``), ``session_dir``, ``created``, ``version``."""
    return PREFIX + "cluster"


def nodes_key() -> str:
    """HASH on the primary, field node-id hex -> node JSON (address, resources, state, labels).
    Written by the raylet at registration; state moves ALIVE->DEAD by CAS (GCS or raylet)."""
    return PREFIX + "nodes"


def node_state_key() -> str:
    """HASH on the primary, field node-id hex -> ``ALIVE`` or ``DEAD``; moved by the CAS script
    ``hfield_cas`` (GCS on missed heartbeats, raylet on clean exit), announced on ``node_channel``."""
    return PREFIX + "node_state"


def node_heartbeat_key() -> str:
    """HASH on the primary, field node-id hex -> integer counter; the raylet HINCRBYs it every
    ``heartbeat_interval_s``; the GCS declares a node dead when its counter stops moving."""
    return PREFIX + "node_hb"


def node_load_key() -> str:
    """HASH on the primary, field node-id hex -> JSON of available resources and queue length,
    refreshed by the raylet with each heartbeat (read by ``available_resources`` and schedulers)."""
    return PREFIX + "node_load"


def job_counter_key() -> str:
    """STRING on the primary; INCR by the GCS to allocate job IDs."""
    return PREFIX + "job_counter"


def jobs_key() -> str:
    """HASH on the primary, field job-id -> job JSON (driver pid, node, namespace, state, times).
    Written by the GCS at registration; state RUNNING->FINISHED by CAS when the driver leaves."""
    return PREFIX + "jobs"


def job_state_key() -> str:
    """HASH on the primary, field job-id -> ``RUNNING`` or ``FINISHED``; CAS by ``hfield_cas``
    when the raylet sees the driver's connection close; announced on ``job_channel``."""
    return PREFIX + "job_state"


def function_key(function_id_hex: str) -> str:
    """STRING on the primary: the cloudpickled function or actor class, content-addressed.
    Written once (SET NX) by the exporting driver or worker; read by workers; never changed."""
    return PREFIX + "fn:" + function_id_hex


def actor_key(actor_id_hex: str) -> str:
    """HASH on the primary: one actor's entry (``state``, ``spec``, ``node``, ``worker``,
    ``attempt``, ``num_restarts``, ``max_restarts``, ``name``, ``namespace``, ``job``,
    ``detached``, ``class_name``, ``death_cause``, ``pid``). Created by the driver (Lua, with the
    name claim); transitions by CAS scripts from the GCS (scheduling) and the raylet (alive/died)."""
    return PREFIX + "actor:" + actor_id_hex


def actors_index_key() -> str:
    """SET on the primary of every actor-id hex, for rescans after (re)subscribing."""
    return PREFIX + "actors"


def named_actors_key() -> str:
    """HASH on the primary, field ``namespace/name`` -> actor-id hex (claimed with HSETNX in the
    actor-creation script, released when the actor is dead)."""
    return PREFIX + "actor_names"


def placement_group_key(pg_id_hex: str) -> str:
    """HASH on the primary: one placement group (``state``, ``bundles`` JSON, ``strategy``,
    ``node_of_bundle`` JSON, ``name``, ``job``). Created by the driver; moved PENDING->CREATED or
    REMOVED by CAS from the GCS."""
    return PREFIX + "pg:" + pg_id_hex


def placement_groups_index_key() -> str:
    """SET on the primary of every placement-group id hex, for rescans."""
    return PREFIX + "pgs"


# --- data shards: tasks and objects ------------------------------------------------------------


def task_key(task_id_hex: str) -> str:
    """HASH on the data shard of the task ID: ``spec`` (serialized TaskSpec, the lineage needed to
    re-run it), ``state`` (PENDING/RUNNING/FINISHED/FAILED/CANCELLED), ``node``, ``attempt``,
    ``job``. Written by the raylet that received the task; state changes by CAS script
    ``task_transition``; expires ``task_table_ttl_s`` after a terminal state."""
    return PREFIX + "task:" + task_id_hex


def object_key(object_id_hex: str) -> str:
    """HASH on the data shard of the object's task prefix: ``size``, ``task``, ``error`` and one
    field ``loc:<node-id hex>`` per node holding a copy. Written by the raylet that stores the
    object; deleted when the object is freed."""
    return PREFIX + "obj:" + object_id_hex


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
