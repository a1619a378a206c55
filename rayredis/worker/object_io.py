"""Writing serialized objects into /dev/shm segments and mapping them read-only without copying."""

from __future__ import annotations

import errno
import mmap
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rayredis.exceptions import ObjectStoreFullError
from rayredis.serialization import SerializedObject

SHM_DIR = "/dev/shm"
#: Buffers at least this large are copied by several threads: most of the cost of a large put is
#: the kernel allocating and zeroing fresh shared-memory pages, which parallelizes across cores.
PARALLEL_COPY_MIN = 16 * 1024 * 1024
_COPY_THREADS = max(1, min(4, os.cpu_count() or 1))
_pool: ThreadPoolExecutor | None = None


def _copy(dst: np.ndarray, src: np.ndarray) -> None:
    np.copyto(dst, src)  # releases the GIL


def write_segment(name: str, obj: SerializedObject) -> memoryview:
    """Create segment ``name``, write ``obj`` into it; returns a read-only view of the data."""
    global _pool
    path = os.path.join(SHM_DIR, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, obj.total_size)
        reserve_pages(fd, path, obj.total_size)
        mm = mmap.mmap(fd, obj.total_size, flags=mmap.MAP_SHARED)
    finally:
        os.close(fd)
    view = memoryview(mm)
    jobs = []
    for buf, pos in obj.write_head_into(view):
        n = buf.nbytes
        if n < PARALLEL_COPY_MIN or _COPY_THREADS == 1:
            view[pos : pos + n] = buf
            continue
        src = np.frombuffer(buf, dtype=np.uint8)
        dst = np.frombuffer(mm, dtype=np.uint8, count=n, offset=pos)
        step = -(-n // _COPY_THREADS)
        jobs += [(dst[i : i + step], src[i : i + step]) for i in range(0, n, step)]
    if jobs:
        if _pool is None:
            _pool = ThreadPoolExecutor(_COPY_THREADS, thread_name_prefix="rayredis-copy")
        for f in [_pool.submit(_copy, d, s) for d, s in jobs]:
            f.result()
        del jobs
    return view.toreadonly()


def reserve_pages(fd: int, path: str, size: int) -> None:
    """Allocate the segment's pages now (``posix_fallocate``), so that a full /dev/shm fails here
    with :class:`ObjectStoreFullError` (the segment unlinked) instead of killing the process with
    SIGBUS when the copy touches a page the filesystem has no room for."""
    if size <= 0:
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            return  # a filesystem without fallocate: map it as before
        try:
            os.unlink(path)
        except OSError:
            pass
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise ObjectStoreFullError(shm_full_message(size, os.path.dirname(path))) from None


def shm_full_message(size: int, directory: str = SHM_DIR) -> str:
    try:
        free = f"{shutil.disk_usage(directory).free} bytes"
    except OSError:
        free = "unknown"
    return (f"{directory} has no room for an object of {size} bytes (free: {free}): the shared memory "
            f"of this machine or container is smaller than the object store. Start the cluster with a "
            f"smaller object store (--object-store-memory / object_store_memory=), free space in "
            f"{directory}, or give the container more shared memory (docker run --shm-size=2g, or "
            f"shm_size: in docker-compose).")


def map_segment(name: str, size: int) -> memoryview:
    """Map an existing segment read-only (the mapping outlives an unlink by the raylet)."""
    fd = os.open(os.path.join(SHM_DIR, name), os.O_RDONLY)
    try:
        mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    return memoryview(mm)
