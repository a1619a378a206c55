"""Writing serialized objects into /dev/shm segments and mapping them read-only without copying."""

from __future__ import annotations

import mmap
import os

from rayredis.serialization import SerializedObject

SHM_DIR = "/dev/shm"


def write_segment(name: str, obj: SerializedObject) -> memoryview:
    """Create segment ``name``, write ``obj`` into it; returns a read-only view of the data."""
    path = os.path.join(SHM_DIR, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, obj.total_size)
        # MAP_POPULATE allocates and maps every page up front: far cheaper than one fault per page.
        mm = mmap.mmap(fd, obj.total_size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
    finally:
        os.close(fd)
    view = memoryview(mm)
    obj.write_into(view)
    return view.toreadonly()


def map_segment(name: str, size: int) -> memoryview:
    """Map an existing segment read-only (the mapping outlives an unlink by the raylet)."""
    fd = os.open(os.path.join(SHM_DIR, name), os.O_RDONLY)
    try:
        mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    return memoryview(mm)
