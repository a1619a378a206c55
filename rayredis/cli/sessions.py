"""The CLI's registry of sessions it started on this machine, so ``rayredis stop`` finds exactly those.

Each ``rayredis start`` (head or joining node) writes ``<temp_dir>/cli_sessions/<session>.json``
before or right after spawning anything. ``rayredis stop`` reads every entry, stops the processes
recorded in that session's ``pids/`` directory (verified by kernel start time, never by name),
removes the session's shared-memory segments and deletes the entry. A ``stopping`` marker in the
session directory tells a ``rayredis start --block`` monitor that the stop was requested.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass

from rayredis._private import trusted
from rayredis._private.session import temp_root
from rayredis.config import get_config

HEAD = "head"
NODE = "node"
_STOPPING_MARKER = "stopping"


@dataclass(frozen=True)
class CliSession:
    """One head or joined node started by the CLI on this machine."""

    session_dir: str
    kind: str  # HEAD or NODE
    address: str  # the cluster's primary Redis address
    node_id: str = ""
    created: float = 0.0
    bind_host: str = ""  # what the head's servers listen on (a restarted GCS binds the same)


def registry_dir() -> str:
    return os.path.join(get_config().temp_dir, "cli_sessions")


def _entry_path(session_dir: str) -> str:
    return os.path.join(registry_dir(), os.path.basename(os.path.normpath(session_dir)) + ".json")


def register(entry: CliSession) -> None:
    """Record ``entry`` atomically (mode 0600); re-registering the same session overwrites it."""
    temp_root()
    trusted.private_dir(registry_dir(), "CLI session registry")
    if not entry.created:
        entry = dataclasses.replace(entry, created=time.time())
    path = _entry_path(entry.session_dir)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(entry), f)
    os.replace(tmp, path)


def unregister(session_dir: str) -> None:
    try:
        os.unlink(_entry_path(session_dir))
    except OSError:
        pass


def registered() -> list[CliSession]:
    """Every registered session, joined nodes before heads (so raylets stop before the Redis they use).

    Raises :class:`~rayredis._private.trusted.UntrustedPathError` if the temp dir, the registry or an
    entry belongs to another user or is writable by others (an entry names processes to stop)."""
    out: list[CliSession] = []
    d = registry_dir()
    if not trusted.check(os.path.dirname(d), "rayredis temp dir (RAYREDIS_TEMP_DIR)") or \
            not trusted.check(d, "CLI session registry"):
        return []
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return []
    for name in names:
        if not name.endswith(".json"):
            continue
        if not trusted.check(os.path.join(d, name), "CLI session registry entry"):
            continue
        try:
            with open(os.path.join(registry_dir(), name)) as f:
                out.append(CliSession(**json.load(f)))
        except (OSError, ValueError, TypeError):
            continue
    out.sort(key=lambda s: (s.kind == HEAD, s.created))
    return out


def mark_stopping(session_dir: str) -> None:
    """Tell a blocking ``rayredis start`` of this session that its processes are being stopped on purpose."""
    try:
        with open(os.path.join(session_dir, _STOPPING_MARKER), "w") as f:
            f.write(str(os.getpid()))
    except OSError:
        pass


def stopping_requested(session_dir: str) -> bool:
    return os.path.exists(os.path.join(session_dir, _STOPPING_MARKER))
