"""Object spilling: which sealed objects go to disk when the store is full (a sans-I/O policy), and the file copies.

When a ``reserve`` would exceed the store's capacity, the store first evicts secondary copies, then
spills primary copies chosen by :func:`choose_victims`: sealed, in shared memory, least recently
used first, and not in use: no queued or running task or containing object pins it, and no other
node holds it (it may be copying the segment). A spilled object's segment is copied to a file in the
spill directory and unlinked; :class:`Spiller` copies it back into a fresh segment when a client or
a peer reads it (``ObjectStore.ensure_local``), and deletes the file when the object is freed or
the raylet exits. A client that still maps the unlinked segment (it holds a value it got) keeps
reading the same pages, which the kernel frees when it drops the value; until then they are
outside the store's accounting. A client whose get reply names a segment spilled in the meantime
asks again (``CoreWorker.get_blobs``), and the raylet restores it.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable
from typing import Protocol

from rayredis.config import Config
from rayredis.ids import OBJECT_ID_LEN


class Spillable(Protocol):
    """What the policy reads of an object-store entry (``object_store.Entry``)."""

    state: int
    inline: bytes | None
    shm_name: str
    size: int
    pins: int
    held_at: bytes
    last_use: int
    busy: bool

    @property
    def holders(self) -> object: ...


def spillable(e: Spillable, ready_state: int) -> bool:
    """Whether ``e`` may be spilled: a sealed primary copy in shared memory that nothing uses."""
    return (e.state == ready_state and e.inline is None and bool(e.shm_name) and e.size > 0
            and e.pins <= 0 and not e.held_at and not e.holders and not e.busy)


def choose_victims(entries: Iterable[tuple[bytes, Spillable]], need: int, ready_state: int,
                   keep: bytes = b"") -> list[bytes]:
    """The objects to spill to free ``need`` bytes, least recently used first; ``[]`` if even
    spilling every spillable object (other than ``keep``) would not free enough."""
    candidates = sorted(((e.last_use, oid, e.size) for oid, e in entries
                         if oid != keep and spillable(e, ready_state)))
    out: list[bytes] = []
    got = 0
    for _, oid, size in candidates:
        if got >= need:
            break
        out.append(oid)
        got += size
    return out if got >= need else []


class SpillError(Exception):
    """A spill or restore copy failed (the disk is full, the file vanished, ...)."""


class Spiller:
    """Copies segments to files in ``directory`` and back; ``owned`` (the default spill directory
    under the session directory) means the raylet removes the directory itself on exit."""

    def __init__(self, directory: str, shm_dir: str, owned: bool = False):
        self.directory = directory
        self.shm_dir = shm_dir
        self.owned = owned
        self.files: set[str] = set()
        self.spilled_bytes = 0
        self.restored_bytes = 0

    def spill(self, shm_name: str) -> str:
        """Copy segment ``shm_name`` to a file (the segment is left for the caller to unlink)."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        path = os.path.join(self.directory, shm_name)
        try:
            shutil.copyfile(os.path.join(self.shm_dir, shm_name), path)
        except OSError as exc:
            _remove(path)
            raise SpillError(f"could not spill {shm_name} to {self.directory}: {exc}") from exc
        self.files.add(path)
        self.spilled_bytes += os.path.getsize(path)
        return path

    def restore(self, path: str, shm_name: str, size: int) -> None:
        """Copy spill file ``path`` into a new segment ``shm_name`` (its pages allocated first, so that
        a full /dev/shm fails here); the file is deleted once the copy is complete."""
        dst = os.path.join(self.shm_dir, shm_name)
        try:
            fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                try:
                    os.posix_fallocate(fd, 0, size)
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                        raise
                with open(path, "rb") as src:
                    copied = 0
                    while copied < size:
                        n = os.sendfile(fd, src.fileno(), copied, size - copied)
                        if n == 0:
                            raise OSError(errno.EIO, f"spill file {path} is shorter than {size} bytes")
                        copied += n
            finally:
                os.close(fd)
        except OSError as exc:
            _remove(dst)
            raise SpillError(f"could not restore {shm_name} from {path}: {exc}") from exc
        self.restored_bytes += size
        self.delete(path)

    def adopt_leftovers(self, prefix: str) -> dict[bytes, str]:
        """Take over the spill files named ``prefix<object id hex>`` that a previous raylet of this
        node left (it crashed): returns them by object ID, for its drivers to reclaim; other files
        of that prefix are deleted."""
        try:
            names = [n for n in os.listdir(self.directory) if n.startswith(prefix)]
        except FileNotFoundError:
            return {}
        out: dict[bytes, str] = {}
        for n in names:
            oid = object_id_of(n, prefix)
            path = os.path.join(self.directory, n)
            if oid is None:
                _remove(path)
            else:
                out[oid] = path
                self.files.add(path)
        return out

    def take(self, path: str) -> int:
        """Count an adopted file as spilled (its object was reclaimed); returns its size."""
        size = os.path.getsize(path)
        self.spilled_bytes += size
        return size

    def spill_fd(self, fd: int, shm_name: str, size: int) -> str:
        """Copy ``size`` bytes of the open segment ``fd`` to a spill file named ``shm_name``."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        path = os.path.join(self.directory, shm_name)
        try:
            with open(path, "wb") as dst:
                copy_fd(fd, dst.fileno(), size)
        except OSError as exc:
            _remove(path)
            raise SpillError(f"could not spill {shm_name} to {self.directory}: {exc}") from exc
        self.files.add(path)
        self.spilled_bytes += size
        return path

    def delete(self, path: str) -> None:
        self.files.discard(path)
        _remove(path)

    def close(self) -> None:
        """Delete every spill file (raylet exit), and the directory if the raylet owns it."""
        for path in list(self.files):
            self.delete(path)
        if self.owned:
            shutil.rmtree(self.directory, ignore_errors=True)


def spiller_for(cfg: Config, session_dir: str, shm_dir: str = "/dev/shm") -> Spiller | None:
    """The raylet's spiller as configured (``object_spilling``, ``object_spilling_dir``), or None."""
    if not cfg.object_spilling:
        return None
    if cfg.object_spilling_dir:
        return Spiller(cfg.object_spilling_dir, shm_dir)
    return Spiller(os.path.join(session_dir, "spill"), shm_dir, owned=True)


def object_id_of(name: str, prefix: str) -> bytes | None:
    """The object ID in a segment or spill file name ``prefix<hex>`` (None for other names)."""
    hexid = name[len(prefix):] if name.startswith(prefix) else ""
    if len(hexid) != 2 * OBJECT_ID_LEN:
        return None
    try:
        return bytes.fromhex(hexid)
    except ValueError:
        return None


def copy_fd(src: int, dst: int, size: int) -> None:
    """Copy the first ``size`` bytes of file ``src`` to file ``dst`` (in the kernel)."""
    copied = 0
    while copied < size:
        n = os.sendfile(dst, src, copied, size - copied)
        if n == 0:
            raise OSError(errno.EIO, f"source is shorter than {size} bytes")
        copied += n


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
