"""A small or full /dev/shm: a put gets ObjectStoreFullError naming the fix instead of SIGBUS, and the
default store capacity never exceeds the free space."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import rayredis
from rayredis import serialization
from rayredis.exceptions import ObjectStoreFullError
from rayredis.raylet.capacity import SMALL_STORE, store_capacity
from rayredis.worker import object_io

MiB = 1024**2

_WRITE = """
import sys, numpy as np
from rayredis import serialization
from rayredis.exceptions import ObjectStoreFullError
from rayredis.worker import object_io
object_io.SHM_DIR = sys.argv[1]
try:
    object_io.write_segment("rayredis_test_big", serialization.serialize(np.ones(8 * 1024 * 1024, np.uint8)))
except ObjectStoreFullError as e:
    print(e)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_a_put_into_a_full_tmpfs_raises_object_store_full_instead_of_sigbus() -> None:
    mnt = tempfile.mkdtemp(prefix="rayredis-small-shm-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt], check=True)
    try:
        root = str(Path(rayredis.__file__).parents[1])
        out = subprocess.run([sys.executable, "-c", _WRITE, mnt], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=root))
        assert out.returncode == 0, out  # it was -7 (SIGBUS) when the copy hit a page with no room
        assert "has no room for an object of" in out.stdout
        assert "--object-store-memory" in out.stdout and "--shm-size" in out.stdout
        assert os.listdir(mnt) == []  # the partial segment is unlinked
    finally:
        subprocess.run(["umount", mnt], check=True)
        os.rmdir(mnt)


def test_enospc_when_reserving_pages_unlinks_the_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(object_io, "SHM_DIR", str(tmp_path))
    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(ObjectStoreFullError, match="docker run --shm-size"):
        object_io.write_segment("seg", serialization.serialize(b"x" * MiB))
    assert list(tmp_path.iterdir()) == []


def test_default_capacity_is_capped_by_free_space() -> None:
    assert store_capacity(0, 10_000 * MiB, 10_000 * MiB) == (3000 * MiB, "")
    capacity, warning = store_capacity(0, 64 * MiB, 20 * MiB)  # Docker's default, partly used
    assert capacity == 20 * MiB and "--shm-size" in warning and "--object-store-memory" in warning
    assert store_capacity(0, 1000 * MiB, 1000 * MiB)[0] == 300 * MiB and 300 * MiB < SMALL_STORE
    assert store_capacity(100 * MiB, 64 * MiB, 64 * MiB) == (100 * MiB, store_capacity(100 * MiB, 0, 64 * MiB)[1])
    assert "ObjectStoreFullError" in store_capacity(100 * MiB, 64 * MiB, 64 * MiB)[1]
    assert store_capacity(100 * MiB, 4000 * MiB, 4000 * MiB) == (100 * MiB, "")
