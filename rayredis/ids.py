"""Identifiers: tasks, objects, actors, nodes, workers and placement groups as fixed-width bytes."""

from __future__ import annotations

import os
import struct

TASK_ID_LEN = 16
OBJECT_ID_LEN = TASK_ID_LEN + 4
#: Return indexes at or above this mark identify objects created by ``put``.
PUT_INDEX_BASE = 1 << 31


def new_id(n: int = 16) -> bytes:
    """A random identifier of ``n`` bytes."""
    return os.urandom(n)


def task_id() -> bytes:
    return os.urandom(TASK_ID_LEN)


def object_id_for_return(tid: bytes, index: int) -> bytes:
    """The ID of the ``index``-th (1-based) return value of task ``tid``."""
    return tid + struct.pack(">I", index)


def object_id_for_put(put_index: int, base: bytes | None = None) -> bytes:
    """The ID of an object created by ``put``: a fresh task-sized prefix plus a put marker."""
    return (base or os.urandom(TASK_ID_LEN)) + struct.pack(">I", PUT_INDEX_BASE + put_index)


def task_of_object(oid: bytes) -> bytes:
    """The creating task's ID (the shard-routing prefix) of an object ID."""
    return oid[:TASK_ID_LEN]


def object_index(oid: bytes) -> int:
    return int(struct.unpack(">I", oid[TASK_ID_LEN:OBJECT_ID_LEN])[0])


def is_put_object(oid: bytes) -> bool:
    return object_index(oid) >= PUT_INDEX_BASE


def hexid(b: bytes) -> str:
    return b.hex()
