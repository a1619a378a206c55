"""Generate the Redis key and channel tables of docs/architecture.md from rayredis/store/keys.py.

Pattern, type, shard and description come from each function of ``keys.py`` (the pattern by calling
the function with placeholders, type and shard from the first words of its docstring, the
description is the rest of the docstring). Writers, readers and lifetime are not structured in the
docstrings; they are listed in ``USAGE`` below, checked by hand against the code. The script fails
if ``keys.py`` gains or loses a key function without a matching ``USAGE`` entry.

Usage: ``python docs/gen_key_table.py`` prints the Markdown; ``--write`` replaces the tables in
docs/architecture.md; ``--check`` exits 1 if they differ (tests/unit/test_docs_keys.py does the same).
"""

from __future__ import annotations

import argparse
import inspect
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from rayredis.store import keys

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: The document holding the tables, and the heading of its section that holds them.
DOC = ROOT / "docs" / "architecture.md"
SECTION = "## Redis key schema"

#: function -> (writers, readers, lifetime), from reading the code (module paths under rayredis/).
USAGE: dict[str, tuple[str, str, str]] = {
    "cluster_key": (
        "`_private/node.py` start_head (shards, token, session_dir, version, created; with replicas also "
        "sentinels, masters, replicas: `store/replication.py`); "
        "GCS script `gcs_lease` (gcs_address, when a GCS acquires the lease: only the holder writes it)",
        "`store/client.py` connect (shards); GCS `RedisGcsStore.cluster_token`, raylet `Raylet.run`, `api.py` "
        "`_connect`, `_private/debug.validate_cluster` (token); `api.py` RegisterJob retry loop and "
        "`_private/node.py` start_gcs (gcs_address); CLI `start --address` (version), `state dump` (token redacted)",
        "cluster; never deleted"),
    "failover_probe_key": (
        "chaos `redis-primary` fault (`chaos/faults.py` `KillRedisPrimary`) and `benchmarks/failover.py`: INCR "
        "through the Sentinels before and after killing a shard's master",
        "the same (the value after the failover must exceed the acknowledged one)",
        "test and chaos clusters only; never deleted"),
    "metrics_probe_channel": (
        "the metrics exporter (`metrics/collector.py` `_pubsub_lag`): one PUBLISH per shard and scrape",
        "the same process's own SUBSCRIBE, opened for that scrape only (the lag it reports)",
        ""),
    "gcs_lease_key": (
        "GCS `Gcs._keep_lease` through script `gcs_lease` (`RedisGcsStore.lease`): SET NX PX to acquire, PEXPIRE to "
        "renew every `gcs_lease_s`/3, DEL on a clean exit or after losing a term, each only if it holds the id",
        "the same script (the holder check); GCS fenced writes (`store/scripts.py` `FencedScripts`, from "
        "`RedisGcsStore` with a `Fence`): node death, job registration, actor and placement-group writes",
        "expires `gcs_lease_s` after the last renewal (PX)"),
    "nodes_key": (
        "raylet `Raylet._register` (`raylet/server.py`), once per node",
        "`tables.read_nodes` / `aread_nodes` (all four node tables in one round trip): GCS "
        "`RedisGcsStore.nodes` (monitor) and `cluster_view` (placement); `api.py` `_local_node`, `nodes()`, "
        "`cluster_resources`, `available_resources`; `_private/debug.validate_cluster`; CLI `status`, "
        "`state dump`; the state API (`_private/state_reader.py`) (`list nodes`, node session dirs for `logs`); raylet "
        "`Raylet._refresh_view` (cluster view, link addresses). GCS "
        "`GrpcRayletClients` and raylet `_address_of`/`_link_address_of` (`tables.anode_info`)",
        "never deleted (dead nodes stay)"),
    "node_state_key": (
        "raylet `Raylet.run`: `''`->ALIVE at registration, ALIVE->DEAD on clean exit; GCS `_monitor` "
        "(`RedisGcsStore.node_dead_cas`): ALIVE->DEAD (all via `hfield_cas`, `tables.node_state_cas_args`)",
        "`tables.read_nodes` / `aread_nodes` users (GCS, `api.py`, `validate_cluster`, CLI `status`, "
        "`state dump`, state API (`_private/state_reader.py`)); `_private/node.py` start_raylet (`tables.node_alive`)",
        "never deleted"),
    "node_heartbeat_key": (
        "raylet `Raylet._heartbeat` (HINCRBY)",
        "GCS `_monitor` (`RedisGcsStore.nodes`) -> `NodeMonitor.observe_records`; CLI `status`, `state dump`; "
        "state API (`_private/state_reader.py`)",
        "never deleted"),
    "node_load_key": (
        "raylet `Raylet._register` and `_heartbeat` (`NodeManager.load()`, a `NodeLoad`)",
        "GCS `RedisGcsStore.cluster_view` (`NodeRecord.view`: actor and bundle placement); "
        "raylet `Raylet._refresh_view` (`ClusterView`: spillback); `api.available_resources`; CLI `status`, "
        "`state dump`; state API (`_private/state_reader.py`)",
        "never deleted"),
    "job_counter_key": ("GCS `RedisGcsStore.next_job_id` (INCR)", "GCS (INCR)", "cluster"),
    "jobs_key": ("GCS `register_job` (`RedisGcsStore.add_job`)",
                 "CLI `state dump`; state API (`_private/state_reader.py`)", "never deleted"),
    "job_state_key": (
        "GCS `RedisGcsStore.add_job` (`''`->RUNNING); raylet `RedisWriter.job_finished`, queued by "
        "`LocalActors.job_finished` (RUNNING->FINISHED when the driver's stream closes)",
        "GCS (`RedisGcsStore.cluster_view`, `job_finished`); raylets (`Raylet._subscribe`, `_rescan`); "
        "CLI `state dump`; state API (`_private/state_reader.py`)",
        "never deleted"),
    "function_key": (
        "`CoreWorker.export` (SET NX) in any driver or worker calling `.remote()`",
        "`CoreWorker.load_function` in workers (polls up to 10 s); CLI `state dump` (size only)",
        "never deleted"),
    "actor_key": (
        "creator (`actor.py` `ActorClass._remote`, driver or worker) via `actor_create`; GCS "
        "`RedisGcsStore.actor_transition` and raylet `RedisWriter.actor_transition` via `actor_transition`",
        "GCS `RedisGcsStore.actor` / `actors`; raylets `Raylet.lookup_actor`, `_subscribe`, `_rescan` "
        "(state, death_cause); `actor.get_actor`; `runtime_context`; CLI `state dump` (SCAN); "
        "state API (`_private/state_reader.py`) (after the index)",
        "DEAD entries deleted by the GCS beyond `dead_actors_kept` (script `actor_prune`)"),
    "actors_index_key": (
        "`actor_create` (SADD), `actor_prune` (SREM)",
        "state API (`_private/state_reader.py`)",
        "members of pruned dead actors removed (`actor_prune`)"),
    "live_actors_key": (
        "`actor_create` (SADD), `actor_transition` (SREM when the actor becomes DEAD)",
        "GCS `RedisGcsStore.live_actor_ids` (rescans, `on_node_dead`, `on_job_finished`); "
        "raylet `recovery.recover` (its actors' deaths after a restart)",
        "member lives while the actor is not DEAD"),
    "dead_actors_key": (
        "`actor_transition` (ZADD when the actor becomes DEAD)",
        "GCS `RedisGcsStore.prune_dead_actors` (script `actor_prune`, every 2 s)",
        "the oldest beyond `dead_actors_kept` (10,000) are deleted with their entries"),
    "named_actors_key": (
        "`actor_create` (claim), `actor_transition` (HDEL when the holder becomes DEAD)",
        "`actor.get_actor` (`tables.read_named_actor`)",
        "field lives while the actor is not DEAD"),
    "placement_group_key": (
        "`util/placement_group.py` (create by `tables.queue_placement_group_create` in MULTI with "
        "SADD+PUBLISH; ->REMOVED by `hfield_cas`); GCS `RedisGcsStore` (the reservation steps `txn`, "
        "`txn_phase`, `txn_seq`, PENDING->CREATED with `nodes`, by `pg_cas` (`hash_cas`); ->REMOVED when the "
        "job ends, by `pg_state_cas`; `returned` by `mark_pg_returned`)",
        "GCS `RedisGcsStore.pg` / `pgs`; `PlacementGroup.wait`, `get_placement_group`, `placement_group_table` "
        "(`tables.read_placement_group` / `read_placement_groups`); CLI `state dump` (SCAN); "
        "state API (`_private/state_reader.py`)",
        "never deleted"),
    "placement_groups_index_key": (
        "`placement_group()` (SADD)",
        "GCS `RedisGcsStore.pg_ids` (rescans, `on_job_finished`); `tables.read_placement_groups` "
        "(`get_placement_group`, `placement_group_table`, state API (`_private/state_reader.py`))",
        "never shrinks"),
    "task_key": (
        "raylet `RedisWriter` (batched `TaskWrite` ops: `task_transition`; `task_spilled` before a forward); "
        "raylet `TaskTableClient.claim` (`raylet/task_table.py`, script `task_claim`: the next attempt, PENDING "
        "at the claimer, `rebuilt_by`, PERSIST)",
        "raylet `TaskTableClient.read` for `raylet/orphans.py` (the lineage of objects whose owner node died); "
        "CLI `state dump`; state API (`_private/state_reader.py`) (SCAN)",
        "EXPIRE `task_table_ttl_s` after a terminal state (a claim removes it until the re-run ends); entries "
        "that never get one (tasks of a raylet that died, a claim whose claimer died) never expire"),
    "object_key": (
        "raylet `RedisWriter` (`ObjectSealed`: HSET of its `loc:` field, `tables.queue_object_sealed`; "
        "`ObjectFreed`: `object_location_remove`)",
        "raylet `TaskTableClient.read` (`raylet/orphans.py`: live copies of an object whose owner node "
        "died); CLI `state dump`; state API (`_private/state_reader.py`) (SCAN); tests",
        "until the last copy is freed"),
    "generator_items_key": (
        "worker `generators.ItemReporter` (XADD of each item and the end, EXPIRE)",
        "caller `generators.ObjectRefGenerator` (XREAD), which DELetes it once iteration stopped",
        "deleted by the caller at the end; else expires `GENERATOR_ITEMS_TTL_S` (1 day) after the last entry"),
    "actor_channel": (
        "`actor_create`, `actor_transition`",
        "GCS (`ActorManager.handle`); raylets (`Raylet._subscribe`: actors known to `LocalActors`)",
        ""),
    "node_channel": (
        "`hfield_cas` from raylet (join, clean exit) and GCS (declared dead)",
        "GCS (`GrpcRayletClients.forget` drops the cached channel, then rescans actors and placement groups)",
        ""),
    "job_channel": (
        "`hfield_cas` from GCS (`RedisGcsStore.add_job`, RUNNING) and raylet (`RedisWriter.job_finished`, FINISHED)",
        "GCS (`ActorManager.on_job_finished`, `PlacementGroupManager.on_job_finished`); raylets "
        "(`LocalActors.job_finished`)",
        ""),
    "placement_group_channel": (
        "`placement_group()` (`tables.queue_placement_group_create`), `remove_placement_group` (`hfield_cas`), "
        "GCS (`RedisGcsStore.pg_state_cas`)",
        "GCS (`PlacementGroupManager.handle`)",
        ""),
    "object_channel": ("raylet `RedisWriter` on seal (`tables.queue_object_sealed`)", "no subscriber yet", ""),
    "cluster_events_key": (
        "`_private/events.py` (XADD MAXLEN ~ 10000, fire-and-forget): GCS node death and actor restarts on node "
        "death (`gcs/server.py`, `gcs/actor_manager.py`), lease acquired or lost, bundles re-placed "
        "(`gcs/placement_groups.py`); raylet registration, clean exit, actor restart or death "
        "(`raylet/server.py`, `raylet/actors.py`); supervisor restarts, Redis failovers, giving up "
        "(`_private/supervisor.py`)",
        "`util.state.list_cluster_events`, CLI `list cluster-events`, the dashboard's events page (XRANGE after "
        "the last id it showed)",
        "cluster; capped at about 10000 entries"),
    "dashboard_key": (
        "the dashboard (`dashboard/server.py`): HSET when it serves, DEL on a clean exit if it still names it",
        "CLI `status` (prints the URL)",
        "while a dashboard runs"),
}

_TYPE_RE = re.compile(r"^(HASH|STRING|SET|ZSET|STREAM|LIST|Channel)\s+on\s+"
                      r"(the primary|the data shard[^:,]*|each data shard)[:,]?\s*")


def _key_functions() -> list[tuple[str, object]]:
    fns = [(n, f) for n, f in inspect.getmembers(keys, inspect.isfunction)
           if f.__module__ == keys.__name__ and (n.endswith("_key") or n.endswith("_channel"))]
    return sorted(fns, key=lambda nf: inspect.getsourcelines(nf[1])[1])  # type: ignore[arg-type]


def _pattern(fn: object) -> str:
    params = inspect.signature(fn).parameters  # type: ignore[arg-type]
    placeholders = ["<" + p.removesuffix("_hex").replace("_", "-") + ">" for p in params]
    return str(fn(*placeholders))  # type: ignore[operator]


def _row(name: str, fn: object) -> tuple[str, str, str, str]:
    doc = " ".join((inspect.getdoc(fn) or "").split())
    m = _TYPE_RE.match(doc)
    if m is None:
        raise SystemExit(f"keys.{name}: docstring does not start with '<TYPE> on <shard>': {doc[:60]!r}")
    shard = {"the primary": "primary"}.get(m.group(2), "data shard (by task-ID prefix)")
    if m.group(2) == "each data shard":
        shard = "each data shard"
    desc = doc[m.end():].lstrip(";, ")
    if desc.startswith("of "):
        desc = "Set " + desc
    desc = re.sub(r"``([^`]+)``", r"`\1`", desc).replace("|", "\\|")
    return _pattern(fn), m.group(1), shard, desc


def render() -> str:
    """Both tables, as Markdown (keys, a blank line, channels), ending with a newline."""
    fns = _key_functions()
    names = {n for n, _ in fns}
    if names != set(USAGE):
        raise SystemExit(f"USAGE is out of date: missing {sorted(names - set(USAGE))}, "
                         f"stale {sorted(set(USAGE) - names)}")
    lines = ["| Key | Type | Shard | Contents (keys.py docstring) | Writers | Readers | Lifetime |",
             "|---|---|---|---|---|---|---|"]
    for name, fn in fns:
        if name.endswith("_channel"):
            continue
        pattern, typ, shard, desc = _row(name, fn)
        w, r, life = USAGE[name]
        lines.append(f"| `{pattern}` | {typ} | {shard} | {desc} | {w} | {r} | {life} |")
    lines += ["", "| Channel | Shard | Message (keys.py docstring) | Publishers | Subscribers |",
              "|---|---|---|---|---|"]
    for name, fn in fns:
        if not name.endswith("_channel"):
            continue
        pattern, _typ, shard, desc = _row(name, fn)
        w, r, _ = USAGE[name]
        lines.append(f"| `{pattern}` | {shard} | {desc} | {w} | {r} |")
    return "\n".join(lines) + "\n"


def replace_tables(doc: str, tables: str) -> str:
    """``doc`` with the two tables of its key-schema section replaced by ``tables``.

    The tables are the lines from the first one starting ``| Key |`` to the last table line before
    the next heading (the blank line between the two tables included).
    """
    start = doc.index(SECTION)
    end = doc.find("\n## ", start + len(SECTION))
    end = len(doc) if end < 0 else end + 1
    section = doc[start:end].splitlines(keepends=True)
    first = next(i for i, line in enumerate(section) if line.startswith("| Key |"))
    last = max(i for i, line in enumerate(section) if line.startswith("|"))
    return doc[:start] + "".join(section[:first]) + tables + "".join(section[last + 1:]) + doc[end:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"update the tables in {DOC.relative_to(ROOT)}")
    mode.add_argument("--check", action="store_true", help=f"exit 1 if {DOC.relative_to(ROOT)} is stale")
    args = ap.parse_args(argv)
    tables = render()
    if not (args.write or args.check):
        print(tables, end="")
        return 0
    doc = DOC.read_text()
    fresh = replace_tables(doc, tables)
    if args.check:
        if fresh != doc:
            print(f"{DOC.relative_to(ROOT)}: the key tables are stale; run python docs/gen_key_table.py --write",
                  file=sys.stderr)
            return 1
        return 0
    DOC.write_text(fresh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
