"""``rayredis start``: start a head (Redis shards, GCS, raylet) or join a node, optionally blocking."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from rayredis._private import node
from rayredis._private.session import ClusterFile, new_session_dir, write_current_cluster
from rayredis._private.supervisor import NodeSupervisor
from rayredis.cli import external_head, sessions
from rayredis.cli.common import (
    CliError,
    connect,
    default_bind_host,
    local_ip,
    normalize_address,
    parse_resources,
    resolve_cluster,
)
from rayredis.cli.stop import stop_session
from rayredis.config import get_config
from rayredis.exceptions import RaySystemError
from rayredis.metrics.launch import start_exporter
from rayredis.version import __version__

_BANNER = "rayredis runtime started."


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "start", help="Start a rayredis head node, or join this machine to a cluster as a node.",
        description="Start rayredis processes on this machine: `--head` starts a new cluster (Redis shards, "
                    "GCS and a raylet); `--address` joins an existing cluster with a raylet.")
    p.add_argument("--head", action="store_true", help="start a new cluster with this machine as its head")
    p.add_argument("--address", help="host:port of the primary Redis shard of the cluster to join")
    p.add_argument("--port", type=int, default=None,
                   help=f"port of the primary Redis shard (head only; default {get_config().default_port}; "
                        "0 picks a free port)")
    p.add_argument("--num-redis-shards", type=int, default=None,
                   help="redis-server processes to start (head only): one primary plus data shards")
    p.add_argument("--redis-replicas", type=int, default=None,
                   help="replicas of each Redis shard (head only; default RAYREDIS_REDIS_REPLICAS or 0): with N > 0 "
                        "Redis Sentinels fail a dead shard master over to a replica and clients follow it")
    p.add_argument("--num-cpus", type=float, default=None, help="CPUs this node offers (default: all)")
    p.add_argument("--num-gpus", type=float, default=None, help="GPUs this node offers (default 0)")
    p.add_argument("--resources", default=None, help="custom resources as JSON, e.g. '{\"Custom\": 4}'")
    p.add_argument("--object-store-memory", type=int, default=None,
                   help="object store capacity in bytes (default: 30%% of /dev/shm)")
    p.add_argument("--node-ip-address", default=None,
                   help="the IP or hostname other machines use to reach this node")
    p.add_argument("--bind-host", default=None,
                   help="interface the servers listen on (default: --node-ip-address when it is an "
                        f"address of this machine, else {get_config().bind_host}; 0.0.0.0 in containers)")
    p.add_argument("--redis-password", default=None,
                   help="password of the cluster's Redis shards (head: default random; node: default "
                        "RAYREDIS_REDIS_PASSWORD or the local current-cluster file)")
    p.add_argument("--block", action="store_true",
                   help="stay in the foreground, restart the started processes when they die (giving up "
                        "after supervisor_max_restarts within supervisor_restart_window_s), stop them on "
                        "SIGTERM/SIGINT")
    external_head.add_arguments(p)
    p.add_argument("--metrics-export-port", type=int, default=None,
                   help="head only: serve the cluster's Prometheus metrics on this port (on --bind-host)")
    ray_compat = p.add_argument_group("Ray's flags: the dashboard (head only), usage stats (no effect: none are sent)")
    ray_compat.add_argument("--dashboard-host", default=None,
                            help=f"interface the dashboard listens on (default {get_config().bind_host})")
    ray_compat.add_argument("--dashboard-port", type=int, default=None,
                            help=f"the dashboard's port (default {node.DASHBOARD_PORT}; 0 picks a free one)")
    ray_compat.add_argument("--include-dashboard", type=_bool_flag, default=None,
                            help="start the dashboard with the head: true (default) or false")
    ray_compat.add_argument("--disable-usage-stats", action="store_true", help="no effect yet")
    p.set_defaults(func=run)


def _bool_flag(text: str) -> bool:
    """Ray's ``--include-dashboard true|false``."""
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


#: Handles of the nodes this command started, kept for its lifetime: they hold the children's Popen
#: objects, which must not be collected while the children run (see ``node.NodeHandle.popens``).
_handles: list[node.NodeHandle] = []


def run(args: argparse.Namespace) -> int:
    if args.head and args.address:
        raise CliError("--head and --address cannot be used together: --head starts a new cluster, "
                       "--address joins an existing one.")
    if not args.head and not args.address:
        raise CliError("rayredis start needs either --head (start a new cluster) or --address=<host:port> "
                       "(join an existing cluster).")
    external = external_head.requested(args)
    for flag, value in (("--port", args.port), ("--num-redis-shards", args.num_redis_shards),
                        ("--redis-replicas", args.redis_replicas)):
        if not args.head and value is not None:
            raise CliError(f"If --head is not passed in, {flag} is not allowed.")
    if args.num_redis_shards is not None and args.num_redis_shards < 1:
        raise CliError("--num-redis-shards must be at least 1.")
    if args.redis_replicas is not None and args.redis_replicas < 0:
        raise CliError("--redis-replicas must not be negative.")
    for flag, num in (("--num-cpus", args.num_cpus), ("--num-gpus", args.num_gpus),
                      ("--object-store-memory", args.object_store_memory)):
        if num is not None and num < 0:
            raise CliError(f"{flag} must not be negative (got {num}).")
    resources = parse_resources(args.resources)
    # A SIGTERM while starting unwinds like Ctrl-C, so start_head/_join stop what they had spawned.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    bind_host = args.bind_host or default_bind_host(args.node_ip_address, get_config().bind_host)
    ip = local_ip(bind_host, args.node_ip_address)
    if external:
        entry, handle = external_head.start(args, external, resources, bind_host, ip)
        _handles.append(handle)
    elif args.head:
        entry = _start_head(args, resources, bind_host, ip)
    else:
        entry = _join(args, resources, bind_host, ip)
    if args.block:
        return block(entry, _handles[-1])
    return 0


def _start_head(args: argparse.Namespace, resources: dict[str, float], bind_host: str,
                ip: str) -> sessions.CliSession:
    port = get_config().default_port if args.port is None else args.port
    try:
        handle = node.start_head(
            port=port, num_redis_shards=args.num_redis_shards, num_cpus=args.num_cpus,
            num_gpus=args.num_gpus or 0, resources=resources, object_store_memory=args.object_store_memory or 0,
            bind_host=bind_host, node_ip=ip, redis_replicas=args.redis_replicas,
            password=args.redis_password or os.environ.get("RAYREDIS_REDIS_PASSWORD") or None)
    except (RaySystemError, OSError, ValueError) as e:
        raise CliError(f"Failed to start the head node: {e}") from None
    _handles.append(handle)
    if args.metrics_export_port:
        start_exporter(handle, args.metrics_export_port, bind_host)
    address = f"{ip}:{handle.address.rpartition(':')[2]}"
    entry = sessions.CliSession(handle.session_dir, sessions.HEAD, address, handle.node_id, bind_host=bind_host)
    sessions.register(entry)
    try:  # before the cluster is findable (`rayredis status`), which says that everything is up
        dashboard = _start_dashboard(args, handle, ip)
    except BaseException:  # interrupted (SIGTERM, Ctrl-C) while it starts: stop the whole head
        stop_session(entry, grace_s=1.0, force=True)
        raise
    write_current_cluster(ClusterFile(address, handle.password, handle.session_dir, tuple(handle.sentinels)))
    _print_banner(ip)
    from_env = not args.redis_password and bool(os.environ.get("RAYREDIS_REDIS_PASSWORD"))
    # A password from the environment stays out of the output (which often ends up in logs).
    pw = '"$RAYREDIS_REDIS_PASSWORD"' if from_env else _quote(handle.password)
    py_pw = 'os.environ["RAYREDIS_REDIS_PASSWORD"]' if from_env else pw
    replicated = ""
    if handle.sentinels:
        replicated = (f"\n  Redis shards are replicated; Sentinels: {','.join(handle.sentinels)}. A driver or node on "
                      "another machine that\n  must connect while the primary's first address is down: add "
                      f"RAYREDIS_REDIS_SENTINELS={','.join(handle.sentinels)}\n")
    print(f"""Next steps
  To add another node to this rayredis cluster, run
    rayredis start --address='{address}' --redis-password={pw}

  To connect to this rayredis cluster from this machine:
    import rayredis
    rayredis.init()

  To connect from another machine:
    import rayredis
    rayredis.init(address='{address}', _redis_password={py_pw})
  or run the program with RAYREDIS_ADDRESS='{address}' RAYREDIS_REDIS_PASSWORD={pw}

  To terminate the rayredis runtime, run
    rayredis stop

  To view the status of the cluster, use
    rayredis status{dashboard}

  Session directory (logs): {handle.session_dir}{replicated}""", flush=True)
    if args.metrics_export_port:
        print(f"  Prometheus metrics: http://{bind_host}:{args.metrics_export_port}/metrics", flush=True)
    return entry


def _start_dashboard(args: argparse.Namespace, handle: node.NodeHandle, ip: str) -> str:
    """Start the head's dashboard unless ``--include-dashboard false``; the lines that tell where it is."""
    if args.include_dashboard is False:
        return ""
    try:
        url = node.start_dashboard(handle, args.dashboard_host or get_config().bind_host,
                                   node.DASHBOARD_PORT if args.dashboard_port is None else args.dashboard_port, ip)
    except RaySystemError as e:  # the cluster runs without it (Ray does the same)
        print(f"Warning: {e}", file=sys.stderr, flush=True)
        return ""
    return f"\n  or the dashboard at\n    {url}\n  (log in with the cluster's Redis password)"


def _join(args: argparse.Namespace, resources: dict[str, float], bind_host: str,
          ip: str) -> sessions.CliSession:
    if args.metrics_export_port:
        raise CliError("--metrics-export-port is for the head (rayredis start --head): one exporter serves "
                       "the whole cluster.")
    address, password = resolve_cluster(normalize_address(args.address), args.redis_password)
    store = connect(address, password)
    try:
        version = store.cluster_info().get("version", "")
    finally:
        store.close()
    if version and version != __version__:
        raise CliError(f"Version mismatch: The cluster was started with: rayredis {version}. This process on "
                       f"node {ip} was started with: rayredis {__version__}. Install the same version.")
    session_dir = new_session_dir()
    entry = sessions.CliSession(session_dir, sessions.NODE, address)
    sessions.register(entry)  # before spawning, so `rayredis stop` finds a half-started node too
    handle = node.NodeHandle(session_dir, address, password or "")
    _handles.append(handle)
    try:
        node_id = node.start_raylet(handle, num_cpus=args.num_cpus, num_gpus=args.num_gpus or 0,
                                    resources=resources, object_store_memory=args.object_store_memory or 0,
                                    bind_host=bind_host, node_ip=ip if ip != bind_host else "")
    except BaseException as e:
        stop_session(entry, grace_s=1.0, force=True)
        if isinstance(e, (RaySystemError, OSError)):
            raise CliError(f"Failed to start a raylet joining {address}: {e}") from None
        raise
    entry = sessions.CliSession(session_dir, sessions.NODE, address, node_id, entry.created)
    sessions.register(entry)
    _print_banner(ip)
    print(f"""Joined the rayredis cluster at {address} as node {node_id}.
  Session directory (logs): {session_dir}

  To terminate the rayredis runtime on this machine, run
    rayredis stop""", flush=True)
    return entry


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name} while starting")


def _print_banner(ip: str) -> None:
    rule = "-" * len(_BANNER)
    print(f"Local node IP: {ip}\n\n{rule}\n{_BANNER}\n{rule}\n")


def _quote(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    import shlex

    return shlex.quote(value)


def block(entry: sessions.CliSession, handle: node.NodeHandle) -> int:
    """Stay in the foreground, restarting the node's processes when they die, until a signal (stop
    cleanly, exit 0), ``rayredis stop`` (exit 0) or too many deaths (stop the node, exit 1)."""
    print("--block\nThis command will now block forever until terminated by a signal.\n"
          "Running subprocesses are monitored: one that terminates unexpectedly is restarted (a message "
          "is printed), and after too many restarts the rest are stopped.", flush=True)
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    supervisor = NodeSupervisor(handle, report=lambda msg: print(msg, flush=True),
                                should_stop=lambda: bool(received) or sessions.stopping_requested(entry.session_dir),
                                on_give_up=lambda reason: None)  # stopped below, as the session it is
    while True:
        if received:
            name = signal.Signals(received[0]).name
            print(f"Received {name}; stopping the rayredis processes started by this command.", flush=True)
            stopped, found = stop_session(entry, grace_s=get_config().stop_grace_period_s)
            _collect(handle)
            print(f"Stopped {stopped} of {found} rayredis processes.", flush=True)
            return 0
        if sessions.stopping_requested(entry.session_dir):
            if all(c.proc.poll() is not None for c in handle.components.values()):
                print("`rayredis stop` stopped the processes of this node; exiting.", flush=True)
                return 0
        else:
            supervisor.tick()
        if supervisor.gave_up.is_set():
            print(f"{supervisor.give_up_reason}\nRemaining processes will be killed.", file=sys.stderr, flush=True)
            stop_session(entry, grace_s=get_config().stop_grace_period_s)
            _collect(handle)
            return 1
        time.sleep(0.1)


def _collect(handle: node.NodeHandle) -> None:
    """Reap the node's stopped processes (their Popen objects record the exit)."""
    for c in handle.components.values():
        c.proc.poll()
