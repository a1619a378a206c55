"""``rayredis redis-shard``: one password-protected redis-server with an AOF, in the foreground (in a container)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rayredis._private.redis_server import APPENDFSYNC_POLICIES, check_password, conf_quote, find_redis_server
from rayredis._private.session import temp_root
from rayredis.cli.common import CliError
from rayredis.config import get_config, secret_from_env


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "redis-shard", help="Run one Redis shard for a cluster whose head uses --external-redis (e.g. in a container).",
        description="Write a redis.conf (password from RAYREDIS_REDIS_PASSWORD, never argv; with "
                    "RAYREDIS_REDIS_USERNAME an ACL user of that name instead of the default user) and exec "
                    "redis-server with it: append-only file in --dir, no RDB snapshots. --check pings it instead.")
    p.add_argument("--port", type=int, default=get_config().default_port,
                   help="port to listen on (default %(default)s)")
    p.add_argument("--bind-host", default=None,
                   help=f"interface to listen on (default {get_config().bind_host}; 0.0.0.0 in containers)")
    p.add_argument("--dir", default="/data", help="the data directory holding the AOF (default %(default)s)")
    p.add_argument("--check", action="store_true",
                   help="exit 0 if the shard on --bind-host (127.0.0.1 for 0.0.0.0) and --port answers PING with "
                        "the credentials (a healthcheck)")
    p.set_defaults(func=run)


def conf_text(port: int, bind_host: str, directory: str, password: str, username: str, appendfsync: str) -> str:
    """The redis.conf of one shard: its credentials, its AOF, nothing persisted besides."""
    check_password(password)
    if appendfsync not in APPENDFSYNC_POLICIES:
        raise CliError(f"redis_appendfsync must be one of {', '.join(APPENDFSYNC_POLICIES)} (got {appendfsync!r}); "
                       "set RAYREDIS_REDIS_APPENDFSYNC accordingly.")
    if username:
        if not username.isascii() or not username.replace("-", "").replace("_", "").isalnum():
            raise CliError(f"RAYREDIS_REDIS_USERNAME must be letters, digits, '-' or '_' (got {username!r}).")
        auth = (f"user default off\nuser {username} on {conf_quote('>' + password)} ~* &* +@all\n"
                f"masterauth {conf_quote(password)}\nmasteruser {username}\n")
    else:
        auth = f"requirepass {conf_quote(password)}\nmasterauth {conf_quote(password)}\n"
    return (f"{auth}port {port}\nbind {bind_host}\nprotected-mode no\ndir {conf_quote(directory)}\n"
            'save ""\nappendonly yes\n'
            f'appendfsync {appendfsync}\nappendfilename "appendonly.aof"\ndaemonize no\nloglevel notice\n'
            "databases 1\nclient-output-buffer-limit pubsub 256mb 128mb 60\n")


def run(args: argparse.Namespace) -> int:
    cfg = get_config()
    password = secret_from_env("REDIS_PASSWORD")
    if not password:
        raise CliError("rayredis redis-shard takes its password from RAYREDIS_REDIS_PASSWORD, which is not set.")
    if args.check:
        host = args.bind_host if args.bind_host not in (None, "0.0.0.0", "::") else "127.0.0.1"
        return check(host, args.port, password, cfg.redis_username)
    os.makedirs(args.dir, exist_ok=True)
    conf = os.path.join(temp_root(), f"redis-shard-{args.port}.conf")
    text = conf_text(args.port, args.bind_host or cfg.bind_host, os.path.abspath(args.dir), password,
                     cfg.redis_username, cfg.redis_appendfsync)
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # only we read the password in it
    with os.fdopen(fd, "w") as f:
        f.write(text)
    server = find_redis_server()
    sys.stdout.flush()
    os.execv(server, [server, conf])  # the container's process is redis-server itself: signals reach it


def check(host: str, port: int, password: str, username: str) -> int:
    client = redis.Redis(host=host, port=port, password=password, username=username or None,
                         socket_connect_timeout=2.0, socket_timeout=5.0, retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
    except redis.exceptions.RedisError as e:  # LOADING (reading its AOF) counts as not ready yet
        print(f"unhealthy: Redis on port {port}: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0
