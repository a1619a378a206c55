"""Objects for drivers that cannot map the raylet's /dev/shm: their bytes travel inside the stream's messages.

A driver on another host, or in a container with a /dev/shm of its own, can neither write the
store's segments nor map them. At connection it writes a small probe segment and names it in its
``Register``; :func:`over_connection` reads it back. If the raylet cannot, the connection is flagged
(``Connection.objects_over_connection``, echoed in ``RegisterReply``) and then:

- the driver's large puts reserve room with the usual ``CreateRequest`` and carry their bytes in
  ``PutObject.data``; :func:`received_put` writes them into the reserved segment before the seal;
- its get replies carry a segment's bytes in ``ObjectData.data`` instead of its name
  (:func:`readable_by`), or an error blob when they cannot fit in one message;
- batches to it are split so that every message stays under the cap (:func:`outgoing`).

Workers always run next to their raylet and keep the shared-memory path. Each function takes the
store, a connection or a message and returns what to seal or send; the only I/O is reading and
writing local /dev/shm files, synchronously.
"""

from __future__ import annotations

import hmac
import os
import re
import stat
from collections.abc import Iterable

from rayredis import exceptions, serialization
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol.limits import MAX_OBJECT_OVER_CONNECTION, too_large_message
from rayredis.raylet.connection import Connection
from rayredis.raylet.object_store import SHM_DIR, ObjectStore, shm_path

#: A probe must be a plain file name in the shm directory, and its content short.
_PROBE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}")
MAX_PROBE_BYTES = 64


# ---- at connection ------------------------------------------------------------------------------


def over_connection(reg: pb.Register, shm_dir: str = SHM_DIR) -> bool:
    """Whether the client that sent ``reg`` exchanges objects over the connection: a driver that asked
    (``shm_probe_data`` set) and whose probe this raylet cannot read back."""
    if not reg.is_driver or not reg.shm_probe_data:
        return False
    return not probe_readable(reg.shm_probe_name, reg.shm_probe_data, shm_dir)


def probe_readable(name: str, data: bytes, shm_dir: str = SHM_DIR) -> bool:
    """Whether ``shm_dir/name`` is a regular file holding exactly ``data``."""
    if not _PROBE_NAME.fullmatch(name) or not data or len(data) > MAX_PROBE_BYTES:
        return False
    try:
        # O_NONBLOCK: a FIFO planted under the name must not hang the raylet.
        fd = os.open(os.path.join(shm_dir, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        got = os.read(fd, len(data) + 1)
    except OSError:
        return False
    finally:
        os.close(fd)
    return hmac.compare_digest(got, data)


# ---- puts -----------------------------------------------------------------------------------------


def received_put(objects: ObjectStore, p: pb.PutObject) -> pb.PutObject:
    """What to seal for a put that carries its bytes (``p.data``): ``p`` once they are written into
    the segment its ``CreateRequest`` reserved, or, if that fails, an inline error blob (the
    reservation returned) that ``get`` raises."""
    oid = p.object_id
    name = p.shm_name
    data = p.data  # each read of a bytes field copies it
    e = objects.get(oid)
    own_name = "/" not in name and name.startswith(objects.shm_prefix + oid.hex())
    if not own_name or e is None or e.reserved < len(data):
        why = f"no room was reserved for it under the name {name!r} (send a CreateRequest first)"
    elif p.size != len(data):
        why = f"its size {p.size} is not the length of its data ({len(data)} bytes)"
    else:
        try:
            _write_segment(shm_path(name), data)
            return p
        except OSError as exc:
            why = f"the raylet could not write it to {SHM_DIR}: {exc}"
    if own_name:
        objects.abort(oid, name)  # returns the reservation, unlinks a partial segment
    return _error_put(oid, exceptions.RaySystemError(f"The put of object {oid.hex()} failed: {why}."))


def _write_segment(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def disown_foreign_segments(objects: ObjectStore, puts: Iterable[pb.PutObject]) -> None:
    """Turn each put naming a segment that is not this store's for its object (another session's,
    a path) into an error blob: the store would map, and one day unlink, whatever it names."""
    for p in puts:
        if p.shm_name and ("/" in p.shm_name or not p.shm_name.startswith(objects.shm_prefix + p.object_id.hex())):
            p.CopyFrom(_error_put(p.object_id, exceptions.RaySystemError(
                f"The put of object {p.object_id.hex()} named the segment {p.shm_name[:80]!r}, which is not one "
                f"the raylet reserved for it (send a CreateRequest and use the name of its reply).")))


def _error_put(oid: bytes, exc: BaseException) -> pb.PutObject:
    blob = serialization.serialize_error(exc).to_bytes()
    return pb.PutObject(object_id=oid, inline_data=blob, size=len(blob))


# ---- gets -----------------------------------------------------------------------------------------


def readable_by(conn: Connection, d: pb.ObjectData) -> pb.ObjectData:
    """``d`` as ``conn`` can read it: unchanged, or for a client over the connection the segment's
    bytes in place of its name (an error blob if they cannot fit in one message, ``missing`` if the
    segment is gone)."""
    if not conn.objects_over_connection or not d.shm_name:
        return d
    if d.size > MAX_OBJECT_OVER_CONNECTION:
        exc = exceptions.RaySystemError(too_large_message(f"Object {d.object_id.hex()}", d.size))
        blob = serialization.serialize_error(exc).to_bytes()
        return pb.ObjectData(object_id=d.object_id, inline_data=blob, size=len(blob))
    try:
        with open(shm_path(d.shm_name), "rb") as f:
            data = f.read(d.size)
    except OSError:
        data = b""
    if len(data) != d.size:
        return pb.ObjectData(object_id=d.object_id, missing=True)
    return pb.ObjectData(object_id=d.object_id, data=data, size=d.size)


def outgoing(conn: Connection, batch: pb.RayletBatch,
             limit: int = MAX_OBJECT_OVER_CONNECTION) -> list[pb.RayletBatch]:
    """The messages that carry ``batch`` to ``conn``: the batch itself, or for a client over the
    connection whose get replies hold more than ``limit`` bytes of objects, the same items with the
    replies spread over several batches (each reply holds one object, which fits: the client asks
    for one object per get, see ``CoreWorker._send_gets``). The rest of a batch is small, within
    the message's headroom (``limits.MESSAGE_HEADROOM_BYTES``)."""
    if not conn.objects_over_connection:
        return [batch]
    sizes = [_reply_bytes(r) for r in batch.get_replies]  # ObjectData.size: reading data would copy it
    if sum(sizes) <= limit:
        return [batch]
    replies = list(batch.get_replies)
    batch.ClearField("get_replies")  # the replies stay valid, detached from the batch
    parts = [batch]
    total = 0
    for r, n in zip(replies, sizes):
        if total and total + n > limit:
            parts.append(pb.RayletBatch())
            total = 0
        parts[-1].get_replies.append(r)
        total += n
    return parts


def _reply_bytes(r: pb.GetReply) -> int:
    return sum(d.size for d in r.objects)
