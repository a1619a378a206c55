"""Helpers shared by the CLI verbs: errors, finding the cluster and its password, parsing flags."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from typing import Any

import redis

from rayredis import exceptions
from rayredis._private.session import read_current_cluster
from rayredis.store.client import ShardedRedis, parse_address, probe


class CliError(Exception):
    """A user-facing failure: ``main`` prints the message (no traceback) and exits with status 1."""


def normalize_address(address: str) -> str:
    address = address.strip().removeprefix("redis://")
    try:
        parse_address(address)
    except ValueError as e:
        raise CliError(str(e)) from None
    return address


def resolve_cluster(address: str | None, password: str | None) -> tuple[str, str | None]:
    """(address, password) of the cluster to talk to.

    Address: ``--address``, then ``RAYREDIS_ADDRESS``, then the cluster ``rayredis start --head`` left
    in the current-cluster file. Password: ``--redis-password``, then ``RAYREDIS_REDIS_PASSWORD``, then
    the current-cluster file when it describes the same address (the order ``rayredis.init`` uses).
    """
    info = read_current_cluster()
    if not address or address == "auto":
        address = os.environ.get("RAYREDIS_ADDRESS") or ""
        if address == "auto":
            address = ""
        if not address and info is not None:
            address = info.address
    if not address:
        raise CliError("Could not find any running rayredis cluster on this machine: no --address was given, "
                       "RAYREDIS_ADDRESS is not set and no cluster was started with `rayredis start --head`. "
                       "Start one with `rayredis start --head`, or pass --address=<host:port>.")
    address = normalize_address(address)
    if not password:
        password = os.environ.get("RAYREDIS_REDIS_PASSWORD") or None
    if not password and info is not None and info.address == address:
        password = info.password
    return address, password


def connect(address: str, password: str | None) -> ShardedRedis:
    """A connected :class:`ShardedRedis`, or a :class:`CliError` that says what went wrong."""
    info = read_current_cluster()
    sentinels = list(info.sentinels) if info is not None and info.address == address and info.sentinels else None
    try:
        if sentinels is None:  # (a replicated cluster's Sentinels find it even while that address is down)
            probe(address, password, password_hint="--redis-password=<password>")
        return ShardedRedis(address, password, socket_timeout=10.0, sentinels=sentinels).connect()
    except exceptions.ControlStoreUnavailable as e:
        raise CliError(str(e)) from None
    except redis.exceptions.RedisError as e:
        raise CliError(f"Could not talk to the rayredis cluster at {address}: {e}") from None


def parse_resources(text: str | None) -> dict[str, float]:
    """``--resources`` JSON (``'{"Custom": 4}'``) as a dict; CPU/GPU must use their own flags."""
    if not text:
        return {}
    example = "--resources='{\"Custom\": 4}'"
    try:
        value: Any = json.loads(text)
    except ValueError as e:
        raise CliError(f"--resources must be a JSON object mapping resource names to quantities, e.g. "
                       f"{example}; could not parse {text!r}: {e}") from None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
            for k, v in value.items()):
        raise CliError(f"--resources must be a JSON object mapping resource names to non-negative numbers, "
                       f"e.g. {example}; got {text!r}.")
    for reserved in ("CPU", "GPU", "object_store_memory"):
        if reserved in value:
            flag = {"CPU": "--num-cpus", "GPU": "--num-gpus"}.get(reserved, "--object-store-memory")
            raise CliError(f"Use {flag} instead of putting {reserved!r} in --resources.")
    return {k: float(v) for k, v in value.items()}


def default_bind_host(node_ip: str | None, configured: str) -> str:
    """Where the servers listen when ``--bind-host`` is not given.

    ``--node-ip-address`` when it is an IP address of this machine: it is what other machines are
    told to connect to, so listening on ``configured`` (127.0.0.1 by default) instead would make
    the node unreachable (a head failed to start; a joining raylet registered an address nothing
    listened on). Otherwise ``configured`` (``Config.bind_host``): no node IP, a hostname, an
    address of another machine (behind NAT), or ``RAYREDIS_BIND_HOST`` set explicitly.
    """
    if not node_ip or "RAYREDIS_BIND_HOST" in os.environ:
        return configured
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(node_ip).version == 6 else socket.AF_INET
    except ValueError:
        return configured
    try:
        with socket.socket(family) as s:
            s.bind((node_ip, 0))  # binding sends nothing; it fails unless the address is ours
    except OSError:
        return configured
    return node_ip


def local_ip(bind_host: str, node_ip: str | None) -> str:
    """The IP other machines should use for this node.

    ``--node-ip-address`` wins; a specific bind host is used as is; for a wildcard bind (0.0.0.0)
    the address the hostname resolves to (in a container: the container's IP).
    """
    if node_ip:
        return node_ip
    if bind_host not in ("0.0.0.0", "::", ""):
        return bind_host
    try:
        # In a container the hostname resolves to the container's own address (/etc/hosts).
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def format_memory(num_bytes: float) -> str:
    """Bytes the way ``ray status`` prints them: ``0B``, ``512.00MiB``, ``1.50GiB``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.2f}{unit}"
    return f"{int(num_bytes)}B"


def decode(value: Any) -> Any:
    """Redis bytes as text when they are UTF-8, else as hex (pickles and other binary values)."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value.hex()
    return value
