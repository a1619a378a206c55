"""Session directory layout, recorded child PIDs, the current-cluster file and the session's shm segments."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass

from rayredis._private import process, trusted
from rayredis.config import get_config

logger = logging.getLogger(__name__)

#: Where the raylets of a session create their object segments.
SHM_DIR = "/dev/shm"


@dataclass(frozen=True)
class ClusterFile:
    """What ``rayredis start --head`` leaves for local drivers (mode 0600)."""

    address: str
    password: str
    session_dir: str
    #: The Sentinels of a replicated cluster (``host:port``), else empty.
    sentinels: tuple[str, ...] = ()


def new_session_dir() -> str:
    root = temp_root()
    while True:
        name = time.strftime("session_%Y-%m-%d_%H-%M-%S") + f"_{os.getpid()}_{os.urandom(2).hex()}"
        path = os.path.join(root, name)
        try:
            os.mkdir(path, 0o700)
            break
        except FileExistsError:
            continue
    os.mkdir(os.path.join(path, "logs"), 0o700)
    os.mkdir(os.path.join(path, "pids"), 0o700)
    latest = os.path.join(root, "session_latest")
    try:
        if os.path.islink(latest):
            os.unlink(latest)
        os.symlink(path, latest)
    except OSError:
        pass
    return path


def temp_root() -> str:
    """The temp dir (``Config.temp_dir``), created 0700 if absent; refused unless this user's own and
    writable by nobody else (:mod:`rayredis._private.trusted`)."""
    return trusted.private_dir(get_config().temp_dir, "rayredis temp dir (RAYREDIS_TEMP_DIR)")


def log_path(session_dir: str, name: str) -> str:
    return os.path.join(session_dir, "logs", name)


def current_cluster_path() -> str:
    return os.path.join(get_config().temp_dir, "current_cluster")


def write_current_cluster(info: ClusterFile) -> None:
    temp_root()
    path = current_cluster_path()
    tmp = path + f".{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(info), f)
    os.replace(tmp, path)


def read_current_cluster() -> ClusterFile | None:
    """The cluster ``rayredis start --head`` recorded, None if none; raises
    :class:`~rayredis._private.trusted.UntrustedPathError` if the file or the temp dir belongs to
    another user or is writable by others (it says which cluster to connect to, with which password)."""
    path = current_cluster_path()
    if not trusted.check(os.path.dirname(path), "rayredis temp dir (RAYREDIS_TEMP_DIR)"):
        return None
    if not trusted.check(path, "current-cluster file"):
        return None
    try:
        with open(path) as f:
            raw = json.load(f)
            raw["sentinels"] = tuple(raw.get("sentinels", ()))
            return ClusterFile(**raw)
    except (OSError, ValueError, TypeError):
        return None


def remove_current_cluster(session_dir: str) -> None:
    info = read_current_cluster()
    if info is not None and info.session_dir == session_dir:
        try:
            os.unlink(current_cluster_path())
        except OSError:
            pass


def session_shm_tag(session_dir: str) -> str:
    """The name prefix of every shared-memory segment the raylets of ``session_dir`` create: 48 bits
    of a hash of the whole session name (date, time, PID and random suffix), so that stopping one
    session never matches another live session's segments (4 characters of it used to collide
    among a few hundred sessions). The basename only: a container sees the same name at another path."""
    digest = hashlib.sha256(os.path.basename(os.path.normpath(session_dir)).encode()).hexdigest()[:12]
    return f"rayredis_{digest}_"


def remove_session_shm(session_dir: str) -> None:
    """Unlink the session's leftover object segments (after its raylets have stopped)."""
    tag = session_shm_tag(session_dir)
    try:
        for name in os.listdir(SHM_DIR):
            if name.startswith(tag):
                os.unlink(os.path.join(SHM_DIR, name))
    except OSError:
        pass


#: A session whose PID records changed this recently may be between a process's death and its
#: restart by a supervisor: the sweep leaves it alone.
SWEEP_IDLE_S = 60.0


def sweep_dead_sessions_shm() -> int:
    """Unlink the /dev/shm segments, owned by this user, of the sessions in the temp dir whose
    recorded processes are all gone (a driver killed hard leaves its ``init()`` cluster's segments
    behind); returns how many. ``init()`` and ``rayredis stop`` call it. Another user's segments and
    sessions, and a session whose records changed within ``SWEEP_IDLE_S``, are never touched."""
    root = get_config().temp_dir
    try:
        if not trusted.check(root, "rayredis temp dir (RAYREDIS_TEMP_DIR)"):
            return 0
        names = os.listdir(root)
    except (OSError, trusted.UntrustedPathError):
        return 0
    now = time.time()
    tags: list[str] = []
    for name in names:
        d = os.path.join(root, name)
        if not name.startswith("session_") or os.path.islink(d):
            continue
        try:
            if now - os.stat(os.path.join(d, "pids")).st_mtime < SWEEP_IDLE_S:
                continue
            if any(process.is_alive(r) for r in process.recorded(d)):
                continue
        except (OSError, trusted.UntrustedPathError):
            continue
        tags.append(session_shm_tag(d))
    if not tags:
        return 0
    removed, me, prefixes = 0, os.geteuid(), tuple(tags)
    try:
        segments = os.listdir(SHM_DIR)
    except OSError:
        return 0
    for seg in segments:
        if not seg.startswith(prefixes):
            continue
        path = os.path.join(SHM_DIR, seg)
        try:
            if os.lstat(path).st_uid == me:
                os.unlink(path)
                removed += 1
        except OSError:
            continue
    if removed:
        logger.info("removed %d shared-memory segments of stopped sessions in %s", removed, root)
    return removed
