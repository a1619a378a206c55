"""Value encoding: pickle protocol 5 with out-of-band buffers in one aligned blob, read without copies.

Blob layout (little endian)::

    u8 kind | u8 flags | u16 nbuf | u64 pickle_len | nbuf x u64 buffer_len | pad to 64
    pickle bytes | pad to 64 | buffer 0 | pad to 64 | buffer 1 ...

``kind`` is VALUE or ERROR (an error blob re-raises from ``get``). Buffers (numpy data and other
PickleBuffers) are 64-byte aligned so a reader maps them straight out of shared memory.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import threading
import traceback
import types
from collections.abc import Callable
from typing import Any

import cloudpickle

from rayredis import exceptions

KIND_VALUE = 0
KIND_ERROR = 1
_HDR = struct.Struct("<BBHQ")
_ALIGN = 64

_local = threading.local()


def _pad(n: int) -> int:
    return (-n) % _ALIGN


class SerializedObject:
    """A value ready to be written: header, pickle stream, out-of-band buffers."""

    __slots__ = ("kind", "pickled", "buffers", "contained_refs", "total_size", "_lens")

    def __init__(self, kind: int, pickled: bytes, buffers: list[memoryview], contained_refs: list[Any]):
        self.kind = kind
        self.pickled = pickled
        self.buffers = buffers
        self.contained_refs = contained_refs
        self._lens = [b.nbytes for b in buffers]
        size = _HDR.size + 8 * len(buffers)
        size += _pad(size) + len(pickled)
        for n in self._lens:
            size += _pad(size) + n
        self.total_size = size

    def write_into(self, out: memoryview) -> None:
        """Copy the blob into ``out`` (at least ``total_size`` bytes, e.g. a shared-memory map)."""
        for b, pos in self.write_head_into(out):
            out[pos : pos + b.nbytes] = b

    def write_head_into(self, out: memoryview) -> list[tuple[memoryview, int]]:
        """Write the header and pickle stream; return (buffer, offset) pairs still to be copied,
        so a caller may copy large buffers in parallel."""
        pos = 0
        hdr = _HDR.pack(self.kind, 0, len(self.buffers), len(self.pickled))
        out[pos : pos + len(hdr)] = hdr
        pos += len(hdr)
        for n in self._lens:
            out[pos : pos + 8] = struct.pack("<Q", n)
            pos += 8
        pos += _pad(pos)
        out[pos : pos + len(self.pickled)] = self.pickled
        pos += len(self.pickled)
        todo = []
        for b, n in zip(self.buffers, self._lens):
            pos += _pad(pos)
            todo.append((b, pos))
            pos += n
        return todo

    def to_bytes(self) -> bytes:
        if not self.buffers:
            hdr = _HDR.pack(self.kind, 0, 0, len(self.pickled))
            return hdr + b"\0" * _pad(len(hdr)) + self.pickled
        buf = bytearray(self.total_size)
        self.write_into(memoryview(buf))
        return bytes(buf)


def _dumps(value: Any, buffers: list[memoryview]) -> bytes:
    def cb(pb: pickle.PickleBuffer) -> bool:
        try:
            buffers.append(pb.raw())
        except BufferError:
            return True  # not contiguous: keep it in-band
        return False

    try:
        data = pickle.dumps(value, protocol=5, buffer_callback=cb)
        if b"__main__" not in data:
            return data
    except Exception:  # noqa: BLE001 - any pickling failure falls back to cloudpickle
        pass
    buffers.clear()
    f = io.BytesIO()
    cloudpickle.CloudPickler(f, protocol=5, buffer_callback=cb).dump(value)
    return f.getvalue()


def serialize(value: Any, kind: int = KIND_VALUE) -> SerializedObject:
    """Serialize ``value``; ObjectRefs met inside are collected into ``contained_refs``."""
    collector: list[Any] = []
    prev = getattr(_local, "collector", None)
    _local.collector = collector
    buffers: list[memoryview] = []
    try:
        pickled = _dumps(value, buffers)
    except Exception as e:
        raise exceptions.RaySerializationError(
            f"Could not serialize {type(value).__name__} value {_short_repr(value)}: {e}. "
            "Pass only picklable values (or create the object inside the task), or put it with "
            "rayredis.put() from where it can be pickled."
        ) from e
    finally:
        _local.collector = prev
    return SerializedObject(kind, pickled, buffers, collector)


def note_serialized_ref(ref: Any) -> None:
    """Called by ``ObjectRef.__reduce__`` so the enclosing ``serialize`` records nested refs."""
    collector = getattr(_local, "collector", None)
    if collector is not None:
        collector.append(ref)


def blob_kind(blob: memoryview | bytes) -> int:
    """The blob's kind byte (``KIND_*``); -1 for an empty blob, which no kind names."""
    return int(blob[0]) if len(blob) else -1


def deserialize(blob: memoryview | bytes) -> Any:
    """Decode a blob. Buffers are views into ``blob``: no copy is made of numpy data."""
    mv = blob if isinstance(blob, memoryview) else memoryview(blob)
    kind, _flags, nbuf, plen = _HDR.unpack_from(mv, 0)
    pos = _HDR.size
    lens = list(struct.unpack_from(f"<{nbuf}Q", mv, pos)) if nbuf else []
    pos += 8 * nbuf
    pos += _pad(pos)
    pickled = mv[pos : pos + plen]
    pos += plen
    bufs = []
    for n in lens:
        pos += _pad(pos)
        bufs.append(mv[pos : pos + n])
        pos += n
    try:
        return pickle.loads(pickled, buffers=bufs)
    except Exception as e:
        raise exceptions.RaySerializationError(f"Could not deserialize an object: {e!r}") from e


def serialize_error(exc: BaseException) -> SerializedObject:
    """Serialize an exception for an error object. One that does not survive a pickle round trip
    takes Ray's shapes: a cause that cannot be pickled becomes a ``RayError`` carrying its text and
    traceback (``get`` raises a plain ``RayTaskError``); one that pickles but cannot be unpickled
    (say, an ``__init__`` pickle cannot call) arrives as ``UnserializableException``."""
    try:
        ser = serialize(exc, kind=KIND_ERROR)
    except exceptions.RaySerializationError as e:
        if isinstance(exc, exceptions.RayTaskError) and exc.cause is not None:
            cause = exc.cause
            why = e.__cause__ if e.__cause__ is not None else e
            stand_in = exceptions.RayError(
                f"Exception {type(cause).__module__}.{type(cause).__name__} isn't serializable: {why}.\n"
                f"Original exception details:\n{exc.traceback_str}")
            fallback = exceptions.RayTaskError(exc.function_name, exc.traceback_str, stand_in, "", exc.pid, exc.ip,
                                               exc.actor_repr, exc._actor_id)
            return serialize_error(fallback)
        return serialize(exceptions.RaySystemError(repr(exc)), kind=KIND_ERROR)
    try:
        deserialize(ser.to_bytes())  # errors are rare: checking here beats an opaque error at get
        return ser
    except exceptions.RaySerializationError:
        return serialize(exceptions.UnserializableException(f"{type(exc).__module__}.{type(exc).__name__}: {exc}"),
                         kind=KIND_ERROR)


def make_task_error(function_name: str, exc: BaseException, pid: int, ip: str, actor_repr: str = "",
                    actor_id: str = "") -> exceptions.RayTaskError:
    """Wrap a user exception with its formatted remote traceback (and, for a method, its actor).

    A ``RayTaskError`` of another task (a nested ``get`` that raised) is wrapped as Ray does: this
    task's header and frames, then the other error, the cause unchanged; one already made for this
    task (an argument that failed) is kept."""
    if isinstance(exc, exceptions.RayTaskError) and exc.function_name == function_name:
        return exc
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    exc.__traceback__ = None
    cause = exc.cause if isinstance(exc, exceptions.RayTaskError) else exc
    return exceptions.RayTaskError(function_name, tb, cause, "", pid, ip, actor_repr, actor_id)


class _DependencyFailed:
    """Pickles (on a raylet, which cannot unpickle user errors) into the error of a task whose
    argument failed: unpickled where it is read, it becomes :func:`exceptions.dependency_failed`."""

    def __init__(self, function_name: str, blob: bytes):
        self.function_name = function_name
        self.blob = blob

    def __reduce__(self) -> Any:
        return (_rebuild_dependency_error, (self.function_name, self.blob))


def _rebuild_dependency_error(function_name: str, blob: bytes) -> BaseException:
    inner = deserialize(blob)
    if isinstance(inner, exceptions.RayTaskError):
        return exceptions.dependency_failed(function_name, inner)
    if isinstance(inner, BaseException):
        return inner  # (a lost or cancelled argument: that error itself)
    return exceptions.RaySystemError(f"An argument of {function_name} failed: {inner!r}")


def dependency_error_blob(function_name: str, upstream_blob: bytes) -> bytes:
    """The error object of task ``function_name``, which cannot run because an argument is the
    error ``upstream_blob`` (Ray's "At least one of the input arguments ..." shape)."""
    return serialize(_DependencyFailed(function_name, upstream_blob), kind=KIND_ERROR).to_bytes()


def _code_reduce_keeping_filename(code: types.CodeType) -> Any:
    """cloudpickle's code reducer, but the code keeps its file name: tracebacks from tasks then name
    the user's file, as in Ray (cloudpickle 3.1.3 writes ``<dynamic-code>``)."""
    fn, args = cloudpickle.cloudpickle._code_reduce(code)
    return fn, tuple(code.co_filename if a == "<dynamic-code>" else a for a in args)


class _FunctionPickler(cloudpickle.Pickler):  # type: ignore[misc]  # untyped base
    dispatch_table = collections.ChainMap({types.CodeType: _code_reduce_keeping_filename},
                                          cloudpickle.Pickler.dispatch_table)


def dumps_function(fn: Any) -> bytes:
    """Cloudpickle a function or class by value for the function table."""
    buf = io.BytesIO()
    _FunctionPickler(buf, protocol=5).dump(fn)
    return buf.getvalue()


def loads_function(data: bytes) -> Callable[..., Any]:
    return pickle.loads(data)  # type: ignore[no-any-return]


def _short_repr(value: Any) -> str:
    try:
        r = repr(value)
    except Exception:  # noqa: BLE001
        r = f"<{type(value).__name__}>"
    return r if len(r) < 80 else r[:77] + "..."
