"""Hypothesis strategies for the wire protocol: any message of ``rayredis.proto``, built from its
descriptor, and byte-level mutations of valid encodings.

Byte fields are drawn mostly from a small pool of IDs of the real lengths (so that references
between messages collide: a get of a put object, a result of a submitted task), strings from a
pool that includes plausible shared-memory names, numbers biased to the edges of their ranges.
"""

from __future__ import annotations

import os
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from rayredis import ids

TASKS = [os.urandom(ids.TASK_ID_LEN) for _ in range(4)]
OBJECTS = [ids.object_id_for_return(t, i) for t in TASKS for i in (1, 2)] + [ids.object_id_for_put(1, TASKS[0])]
NODES = [b"N" * 16, os.urandom(16)]
ID_POOL = TASKS + OBJECTS + NODES + [b"", b"\x00" * 20, os.urandom(28)]

#: Strings: names a peer might try (segments of this store and others', paths), and any text.
STRING_POOL = ["", "f", "rr_unit_", "rr_unit_" + OBJECTS[0].hex(), "rr_other_" + OBJECTS[0].hex(), "../x",
               "/etc/passwd", "CPU", "GPU", "memory", "node:127.0.0.1", "__main__", "ns", "a" * 300]

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=24)
_bytes = st.one_of(st.sampled_from(ID_POOL), st.binary(max_size=48))
_strings = st.one_of(st.sampled_from(STRING_POOL), _text)


def _int(bits: int, signed: bool) -> st.SearchStrategy[int]:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return st.one_of(st.integers(0, 4), st.sampled_from([lo, hi, lo + 1, hi - 1, -1 if signed else 1]),
                     st.integers(lo, hi))


_F = FieldDescriptor
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    _F.TYPE_BOOL: st.booleans(),
    _F.TYPE_STRING: _strings,
    _F.TYPE_BYTES: _bytes,
    _F.TYPE_DOUBLE: st.one_of(st.sampled_from([0.0, 0.5, 1.0, -1.0, 1e300]), st.floats()),
    _F.TYPE_FLOAT: st.one_of(st.sampled_from([0.0, 1.0, -1.0]), st.floats(width=32)),
    _F.TYPE_INT32: _int(32, True), _F.TYPE_SINT32: _int(32, True), _F.TYPE_SFIXED32: _int(32, True),
    _F.TYPE_INT64: _int(64, True), _F.TYPE_SINT64: _int(64, True), _F.TYPE_SFIXED64: _int(64, True),
    _F.TYPE_UINT32: _int(32, False), _F.TYPE_FIXED32: _int(32, False),
    _F.TYPE_UINT64: _int(64, False), _F.TYPE_FIXED64: _int(64, False),
}


def _value(f: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if f.type == _F.TYPE_MESSAGE:
        return message_of(f.message_type, depth + 1)
    if f.type == _F.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in f.enum_type.values]), st.integers(-3, 100))
    return _SCALARS[f.type]


def message_of(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Any message of type ``desc``: each field set or not, repeated fields with 0-3 elements."""
    return _message(desc, depth)


@st.composite
def _message(draw: st.DrawFn, desc: Descriptor, depth: int) -> Message:
    from google.protobuf import message_factory

    msg: Any = message_factory.GetMessageClass(desc)()
    for f in desc.fields:
        if depth > 3 or not draw(st.booleans()):
            continue
        is_map = f.type == _F.TYPE_MESSAGE and f.message_type.GetOptions().map_entry
        if is_map:
            kf, vf = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            for k, v in draw(st.dictionaries(_value(kf, depth), _value(vf, depth), max_size=3)).items():
                if vf.type == _F.TYPE_MESSAGE:
                    getattr(msg, f.name)[k].CopyFrom(v)
                else:
                    getattr(msg, f.name)[k] = v
        elif f.is_repeated:
            getattr(msg, f.name).extend(draw(st.lists(_value(f, depth), max_size=3)))
        elif f.type == _F.TYPE_MESSAGE:
            getattr(msg, f.name).CopyFrom(draw(_value(f, depth)))
        else:
            setattr(msg, f.name, draw(_value(f, depth)))
    return msg  # type: ignore[no-any-return]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few byte-level edits: flips, insertions, deletions, truncation, duplication."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat"]))
        i = draw(st.integers(0, len(b)))
        if op == "flip" and b:
            b[min(i, len(b) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del b[i:i + draw(st.integers(1, 8))]
        elif op == "truncate":
            del b[i:]
        elif op == "repeat":
            b[i:i] = b[i:i + draw(st.integers(1, 16))]
    return bytes(b)
