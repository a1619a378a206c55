"""A head whose GCS and raylet attach to Redis servers rayredis did not start (``--external-redis``)."""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import redis

from rayredis._private import node, process
from rayredis._private.session import new_session_dir
from rayredis.config import get_config, set_config
from rayredis.store import keys
from rayredis.store.client import parse_address
from rayredis.version import __version__

_EXAMPLE = "redis://[user:password@]host:port[,redis://host:port...]"


@dataclass(frozen=True)
class ExternalRedis:
    """The servers of ``--external-redis``: the first URL is the primary, the others the data shards."""

    primary: str  # host:port
    data_shards: tuple[str, ...]  # host:port each; (primary,) when only one URL is given
    username: str  # ACL user ("" is the default user)
    password: str | None  # from the URLs, if they carry one


def parse(text: str) -> ExternalRedis:
    """``redis://[user:pass@]host:port`` URLs, comma separated; every URL's credentials must agree."""
    urls = [u.strip() for u in text.split(",") if u.strip()]
    if not urls:
        raise ValueError(f"--external-redis needs at least one URL: {_EXAMPLE}")
    addresses: list[str] = []
    creds: set[tuple[str, str | None]] = set()
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "rediss":
            raise ValueError(f"{url!r}: TLS to external Redis (rediss://) is not supported yet; use redis://.")
        if parts.scheme != "redis" or not parts.hostname:
            raise ValueError(f"{url!r} is not a Redis URL: expected {_EXAMPLE}")
        if parts.path not in ("", "/", "/0") or parts.query:
            raise ValueError(f"{url!r}: rayredis uses database 0 and takes no URL options; drop "
                             f"{parts.path + ('?' + parts.query if parts.query else '')!r}.")
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError(f"{url!r}: the port is not a number") from None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        addresses.append(f"{host}:{port}")
        creds.add((urllib.parse.unquote(parts.username or ""),
                   urllib.parse.unquote(parts.password) if parts.password is not None else None))
    if len(set(addresses)) != len(addresses):
        raise ValueError(f"--external-redis names a server twice: {', '.join(addresses)}")
    if len(creds) > 1:
        raise ValueError("Every --external-redis URL must carry the same user and password (one set of "
                         "credentials for all shards), or none: set RAYREDIS_REDIS_PASSWORD instead.")
    username, password = creds.pop()
    return ExternalRedis(addresses[0], tuple(addresses[1:] or addresses[:1]), username, password)


def use_username(username: str) -> None:
    """Authenticate as ``username`` from now on, in this process and in those it starts."""
    if username and username != get_config().redis_username:
        os.environ["RAYREDIS_REDIS_USERNAME"] = username
        set_config(get_config().replace(redis_username=username))


def init_or_attach(ext: ExternalRedis, password: str | None, session_dir: str, timeout_s: float = 60.0) -> bool:
    """Write the cluster hash to the primary unless there is one already (compare-and-set); True if written.

    A head restarted against the same servers (a GCS container brought back by its restart policy)
    finds the hash it wrote before, token included, and attaches; one naming other data shards
    than the hash does is refused, since the data would be routed to the wrong servers. Waits up to
    ``timeout_s`` for the primary to answer (it may be starting in the next container).
    """
    host, port = parse_address(ext.primary)
    client = redis.Redis(host=host.strip("[]"), port=port, password=password, socket_connect_timeout=5.0,
                         socket_timeout=10.0, username=ext.username or get_config().redis_username or None)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                return _write_if_absent(client, ext, session_dir)
            except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        client.close()


def _write_if_absent(client: Any, ext: ExternalRedis, session_dir: str) -> bool:
    with client.pipeline() as pipe:
        while True:
            try:
                pipe.watch(keys.cluster_key())
                existing = pipe.hget(keys.cluster_key(), "shards")
                if existing is not None:
                    pipe.unwatch()
                    found = json.loads(existing)
                    if found != list(ext.data_shards):
                        raise ValueError(
                            f"The Redis primary {ext.primary} already holds a rayredis cluster whose data shards "
                            f"are {found}, not {list(ext.data_shards)}: pass the same --external-redis URLs as "
                            "when the cluster was created, or FLUSHALL the servers to start a new cluster.")
                    return False
                mapping: Any = {"shards": json.dumps(list(ext.data_shards)), "token": secrets.token_hex(24),
                                "session_dir": session_dir, "version": __version__, "created": str(time.time()),
                                "external_redis": "1"}
                pipe.multi()
                pipe.hset(keys.cluster_key(), mapping=mapping)
                pipe.execute()
                return True
            except redis.WatchError:
                continue  # another head wrote it meanwhile: read what it wrote


def start_head(ext: ExternalRedis, password: str | None, *, gcs: bool = True, raylet: bool = True,
               bind_host: str | None = None, node_ip: str = "", num_cpus: float | None = None,
               num_gpus: float = 0, resources: dict[str, float] | None = None,
               object_store_memory: int = 0) -> node.NodeHandle:
    """Attach a GCS and/or a head raylet to ``ext``'s servers, creating the cluster there if needed.

    Either part can run alone (in its own container): ``gcs=False`` waits for another process's GCS
    to register, ``raylet=False`` runs the GCS only. Returns once what it started serves.
    """
    if not gcs and not raylet:
        raise ValueError("Nothing to start: a head needs its GCS, its raylet or both.")
    use_username(ext.username)
    host = bind_host or get_config().bind_host
    advertised = node_ip or (host if host not in ("0.0.0.0", "::") else "127.0.0.1")
    session_dir = new_session_dir()
    handle = node.NodeHandle(session_dir, ext.primary, password or "")
    try:
        init_or_attach(ext, password or None, session_dir)
        if gcs:
            node.start_gcs(handle, host, node_ip=advertised)
            node.wait_for_gcs(handle)
        if raylet:
            handle.node_id = node.start_raylet(handle, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
                                               object_store_memory=object_store_memory, head=True,
                                               bind_host=host, node_ip=advertised)
        return handle
    except BaseException:
        process.stop_recorded(session_dir, grace_s=1.0, force=True)
        handle.collect()
        raise
