"""``rayredis start --head --external-redis``: a head's GCS and/or raylet on Redis servers started elsewhere."""

from __future__ import annotations

import argparse
import os

import redis

from rayredis._private import external_redis, node
from rayredis._private.session import ClusterFile, write_current_cluster
from rayredis.cli import sessions
from rayredis.cli.common import CliError
from rayredis.config import secret_from_env
from rayredis.exceptions import RaySystemError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``rayredis start`` this module handles."""
    p.add_argument("--external-redis", default=None, metavar="URLS",
                   help="head only: attach to Redis servers started elsewhere instead of starting them, "
                        "redis://[user[:password]@]host:port, comma separated: the first is the primary, the "
                        "others the data shards (default RAYREDIS_EXTERNAL_REDIS; a password here is visible "
                        "in `ps`: prefer RAYREDIS_REDIS_PASSWORD, or put the URLs in RAYREDIS_EXTERNAL_REDIS)")
    p.add_argument("--no-gcs", action="store_true",
                   help="with --external-redis: start the head's raylet only (the GCS runs elsewhere)")
    p.add_argument("--no-raylet", action="store_true",
                   help="with --external-redis: start the GCS only (the head's raylet runs elsewhere)")


def requested(args: argparse.Namespace) -> str | None:
    """The ``--external-redis`` URLs of this command (or RAYREDIS_EXTERNAL_REDIS), checking the flags' mix."""
    urls = args.external_redis or secret_from_env("EXTERNAL_REDIS")
    if (args.no_gcs or args.no_raylet) and not urls:
        raise CliError("--no-gcs and --no-raylet split a head across machines and need --external-redis "
                       "(the Redis servers every part shares).")
    if urls and not args.head:
        raise CliError("--external-redis starts a head on existing Redis servers and needs --head; a node "
                       "joins with --address=<primary host:port>.")
    if args.no_gcs and args.no_raylet:
        raise CliError("--no-gcs and --no-raylet together leave nothing to start: pass at most one.")
    if urls:
        for flag, value in (("--port", args.port), ("--num-redis-shards", args.num_redis_shards),
                            ("--redis-replicas", args.redis_replicas)):
            if value is not None:
                raise CliError(f"{flag} configures the Redis servers the head starts; with --external-redis "
                               "it starts none: drop it.")
    return urls or None


def start(args: argparse.Namespace, urls: str, resources: dict[str, float], bind_host: str,
          ip: str) -> tuple[sessions.CliSession, node.NodeHandle]:
    """Start the parts of the head asked for; the session to block on and the handle of its processes."""
    try:
        ext = external_redis.parse(urls)
    except ValueError as e:
        raise CliError(str(e)) from None
    password = ext.password or args.redis_password or os.environ.get("RAYREDIS_REDIS_PASSWORD") or None
    try:
        handle = external_redis.start_head(
            ext, password, gcs=not args.no_gcs, raylet=not args.no_raylet, bind_host=bind_host, node_ip=ip,
            num_cpus=args.num_cpus, num_gpus=args.num_gpus or 0, resources=resources,
            object_store_memory=args.object_store_memory or 0)
    except (RaySystemError, OSError, ValueError) as e:
        raise CliError(f"Failed to start the head on {ext.primary}: {e}") from None
    except redis.exceptions.RedisError as e:  # a refused password, an unreachable server: say which
        raise CliError(f"Failed to start the head on {ext.primary}: {type(e).__name__}: {e}") from None
    entry = sessions.CliSession(handle.session_dir, sessions.HEAD, ext.primary, handle.node_id, bind_host=bind_host)
    parts = " and ".join(p for p, on in (("the GCS", not args.no_gcs), ("the head raylet", not args.no_raylet)) if on)
    if handle.node_id:  # a node of this machine: `rayredis health-check`, `status` and `stop` find it
        sessions.register(entry)
        write_current_cluster(ClusterFile(ext.primary, password or "", handle.session_dir, ()))
    print(f"Started {parts} of the rayredis cluster on the Redis servers {ext.primary} (primary)"
          f"{''.join(', ' + s for s in ext.data_shards if s != ext.primary)}.\n"
          f"  Nodes join with: rayredis start --address='{ext.primary}' (password: RAYREDIS_REDIS_PASSWORD)\n"
          f"  Session directory (logs): {handle.session_dir}", flush=True)
    return entry, handle
