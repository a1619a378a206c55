"""The node's resource defaults: the ``memory`` resource and the object store's capacity from /dev/shm."""

from __future__ import annotations

import logging
import os
import shutil

from rayredis.config import get_config

logger = logging.getLogger(__name__)


def default_memory() -> int:
    """Ray's default ``memory`` resource: 70% of the machine's RAM."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.7)
    except (ValueError, OSError):
        return 4 * 1024**3


def default_store_capacity(requested: int = 0) -> int:
    """``requested`` or ``object_store_memory`` if set, else 30 % of /dev/shm (at least 64 MiB), capped by its free
    space; logs a warning when that leaves a small store or /dev/shm cannot hold the one asked for."""
    cfg = get_config()
    try:
        usage = shutil.disk_usage("/dev/shm")
        total, free = usage.total, usage.free
    except OSError:
        total = free = 2 * 1024**3
    capacity, warning = store_capacity(requested or cfg.object_store_memory, total, free)
    if warning:
        logger.warning("%s", warning)
    return capacity


#: A default store smaller than this is worth a warning at start (Docker's default /dev/shm is 64 MiB).
SMALL_STORE = 512 * 1024**2


def store_capacity(requested: int, total: int, free: int) -> tuple[int, str]:
    """The object store's capacity for ``requested`` bytes (0: the default) on a /dev/shm of
    ``total`` bytes with ``free`` free, and a warning to log ("" if none)."""
    fix = ("give the machine or container more shared memory (docker run --shm-size=2g) or set "
           "--object-store-memory / object_store_memory= to what it can hold")
    if requested:
        if requested > free:
            return requested, (f"object_store_memory is {requested} bytes but /dev/shm has only {free} bytes "
                               f"free: large puts will fail with ObjectStoreFullError once it fills; {fix}.")
        return requested, ""
    capacity = min(max(64 * 1024**2, int(total * 0.3)), free)
    if capacity < SMALL_STORE:
        return capacity, (f"the object store gets only {capacity} bytes: /dev/shm is {total} bytes with {free} "
                          f"free (the default is 30 % of it, at most its free space); {fix}.")
    return capacity, ""
