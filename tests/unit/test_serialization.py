"""Value encoding: pickle 5 with 64-byte-aligned out-of-band buffers, read back without copies."""

from __future__ import annotations

import mmap
import pickle
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from rayredis import exceptions, serialization
from rayredis.object_ref import ObjectRef
from rayredis.serialization import (
    KIND_ERROR,
    KIND_VALUE,
    SerializedObject,
    blob_kind,
    deserialize,
    serialize,
)


def roundtrip(value: Any) -> Any:
    return deserialize(serialize(value).to_bytes())


def blob_address(blob: bytes) -> int:
    return int(np.frombuffer(blob, dtype=np.uint8).ctypes.data)


# ---- plain values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None, True, 0, -1, 2**100, 3.25, float("inf"), "", "héllo", b"", b"\x00" * 1000, bytearray(b"ab"),
        [1, [2, [3]]], (1, "a"), {"k": {"nested": [1, 2]}}, {1, 2, 3}, frozenset({"x"}), range(5),
        "__main__",  # the marker string alone must not break anything
    ],
)
def test_roundtrip_plain_values(value: Any) -> None:
    assert roundtrip(value) == value


def test_blob_layout_and_size() -> None:
    for value in (42, np.zeros(3)):
        ser = serialize(value)
        blob = ser.to_bytes()
        assert len(blob) == ser.total_size
        assert blob_kind(blob) == KIND_VALUE
        # The pickle stream starts at the first 64-byte boundary after the header.
        kind, _flags, nbuf, plen = serialization._HDR.unpack_from(blob, 0)
        assert kind == KIND_VALUE and nbuf == len(ser.buffers) and plen == len(ser.pickled)
        assert blob[64 : 64 + plen] == ser.pickled


def test_nan_roundtrip() -> None:
    out = roundtrip(float("nan"))
    assert out != out


def test_custom_class_instances_roundtrip() -> None:
    out = roundtrip(_Point(1, 2))
    assert isinstance(out, _Point)
    assert (out.x, out.y) == (1, 2)


class _Point:
    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y


# ---- numpy: zero copy and alignment -----------------------------------------------------------------


def test_numpy_array_uses_out_of_band_buffer() -> None:
    arr = np.arange(10_000, dtype=np.float64)
    ser = serialize(arr)
    assert len(ser.buffers) == 1
    assert ser.buffers[0].nbytes == arr.nbytes
    assert len(ser.pickled) < 1000  # the data is not in the pickle stream


def test_numpy_from_bytes_is_read_only_view_into_blob() -> None:
    arr = np.arange(10_000, dtype=np.int64)
    blob = serialize(arr).to_bytes()
    out = deserialize(blob)
    np.testing.assert_array_equal(out, arr)
    assert out.dtype == arr.dtype
    assert not out.flags.writeable
    start = blob_address(blob)
    offset = out.ctypes.data - start
    assert 0 < offset and offset + out.nbytes <= len(blob), "array data must live inside the blob"
    assert offset % 64 == 0
    with pytest.raises(ValueError):
        out[0] = 1


def test_numpy_from_writable_buffer_shares_memory() -> None:
    arr = np.arange(100, dtype=np.int32)
    ser = serialize(arr)
    buf = bytearray(ser.total_size)
    ser.write_into(memoryview(buf))
    out = deserialize(memoryview(buf))
    backing = np.frombuffer(buf, dtype=np.uint8)
    assert np.shares_memory(out, backing)
    offset = out.ctypes.data - backing.ctypes.data
    buf[offset : offset + 4] = (12345).to_bytes(4, "little")
    assert out[0] == 12345  # no copy was made


def test_buffers_are_64_byte_aligned_in_an_aligned_mapping() -> None:
    value = {
        "a": np.arange(3, dtype=np.uint8),  # odd sizes force padding between buffers
        "b": np.arange(7, dtype=np.float64),
        "c": np.ones((5, 3), dtype=np.float32),
    }
    ser = serialize(value)
    assert len(ser.buffers) == 3
    mm = mmap.mmap(-1, ser.total_size)  # page aligned, like a shared-memory segment
    try:
        view = memoryview(mm)
        ser.write_into(view)
        out = deserialize(view)
        for k, arr in value.items():
            np.testing.assert_array_equal(out[k], arr)
            assert out[k].ctypes.data % 64 == 0, k
        del out
        view.release()
    finally:
        mm.close()


def test_offsets_of_several_buffers_in_bytes_blob() -> None:
    arrays = [np.arange(n, dtype=np.uint8) for n in (1, 63, 64, 65, 130)]
    blob = serialize(arrays).to_bytes()
    out = deserialize(blob)
    start = blob_address(blob)
    for a, b in zip(arrays, out):
        np.testing.assert_array_equal(a, b)
        assert (b.ctypes.data - start) % 64 == 0


def test_non_contiguous_and_fortran_arrays_roundtrip() -> None:
    base = np.arange(100, dtype=np.float64).reshape(10, 10)
    strided = base[::2, ::3]
    fortran = np.asfortranarray(base)
    out_s = roundtrip(strided)
    out_f = roundtrip(fortran)
    np.testing.assert_array_equal(out_s, strided)
    np.testing.assert_array_equal(out_f, fortran)
    assert out_f.flags.f_contiguous


# ---- errors ----------------------------------------------------------------------------------------


def test_error_blob_kind() -> None:
    blob = serialization.serialize_error(ValueError("boom")).to_bytes()
    assert blob_kind(blob) == KIND_ERROR
    assert blob_kind(memoryview(blob)) == KIND_ERROR
    err = deserialize(blob)
    assert isinstance(err, ValueError) and str(err) == "boom"
    assert blob_kind(serialize(ValueError("a value, not an error")).to_bytes()) == KIND_VALUE


class _UnpicklableError(Exception):
    def __init__(self) -> None:
        super().__init__("has a lock")
        self.lock = threading.Lock()


def test_unpicklable_exception_becomes_system_error() -> None:
    blob = serialization.serialize_error(_UnpicklableError()).to_bytes()
    assert blob_kind(blob) == KIND_ERROR
    err = deserialize(blob)
    assert isinstance(err, exceptions.RaySystemError)
    assert "has a lock" in str(err)


def test_task_error_with_unpicklable_cause_keeps_traceback() -> None:
    te = exceptions.RayTaskError("f", "Traceback: line 1", _UnpicklableError(), "", 7, "1.2.3.4")
    err = deserialize(serialization.serialize_error(te).to_bytes())
    assert isinstance(err, exceptions.RayTaskError)
    assert err.traceback_str == "Traceback: line 1"
    assert err.function_name == "f" and err.pid == 7 and err.ip == "1.2.3.4"
    assert type(err.cause) is exceptions.RayError  # Ray's stand-in: get raises a plain RayTaskError
    assert "_UnpicklableError isn't serializable: " in str(err.cause)
    assert str(err.cause).endswith("Original exception details:\nTraceback: line 1")
    assert err.as_instanceof_cause() is err


def test_error_that_cannot_be_unpickled_becomes_unserializable_exception() -> None:
    class TwoArgs(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"{a}-{b}")

    te = exceptions.RayTaskError("f", "Traceback: line 1\nTwoArgs: 1-2\n", TwoArgs(1, 2), "", 7, "1.2.3.4")
    err = deserialize(serialization.serialize_error(te).to_bytes())
    assert type(err) is exceptions.UnserializableException
    assert str(err).startswith("Failed to deserialize exception.") and "TwoArgs: 1-2" in str(err)


def test_make_task_error_formats_remote_traceback() -> None:
    def user_code() -> None:
        raise ValueError("bad input")

    try:
        user_code()
    except ValueError as e:
        te = serialization.make_task_error("my_task", e, 123, "10.0.0.1")
    assert isinstance(te, exceptions.RayTaskError)
    assert "user_code" in te.traceback_str
    assert "ValueError: bad input" in te.traceback_str
    assert te.cause is not None and te.cause.__traceback__ is None  # frames are not kept alive
    assert te.function_name == "my_task" and te.pid == 123
    assert serialization.make_task_error("my_task", te, 1, "") is te  # already this task's error
    outer = serialization.make_task_error("other", te, 1, "")  # another task's (a nested get): wrapped, as Ray
    assert outer.function_name == "other" and outer.cause is te.cause
    assert str(outer).startswith("ray::other() (pid=1, ip=)") and "ray::my_task() (pid=123" in str(outer)


def test_unserializable_value_names_the_fix() -> None:
    lock = threading.Lock()
    with pytest.raises(exceptions.RaySerializationError) as ei:
        serialize({"lock": lock})
    msg = str(ei.value)
    assert "dict" in msg
    assert "lock" in msg
    assert "rayredis.put()" in msg
    assert "picklable" in msg
    assert isinstance(ei.value, TypeError)  # like Ray, a TypeError subclass
    assert isinstance(ei.value, exceptions.RayError)


def test_unserializable_value_with_unprintable_repr() -> None:
    class BadRepr:
        def __init__(self) -> None:
            self.lock = threading.Lock()

        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    with pytest.raises(exceptions.RaySerializationError) as ei:
        serialize(BadRepr())
    assert "<BadRepr>" in str(ei.value)


def test_unserializable_value_long_repr_is_shortened() -> None:
    with pytest.raises(exceptions.RaySerializationError) as ei:
        serialize([threading.Lock()] + list(range(1000)))
    assert "..." in str(ei.value)
    assert len(str(ei.value)) < 500


def test_corrupt_blob_raises_serialization_error() -> None:
    blob = SerializedObject(KIND_VALUE, b"this is not a pickle", [], []).to_bytes()
    with pytest.raises(exceptions.RaySerializationError) as ei:
        deserialize(blob)
    assert "deserialize" in str(ei.value)


# ---- cloudpickle fallback ------------------------------------------------------------------------------


def test_lambda_and_closure_via_cloudpickle() -> None:
    k = 10
    fn = roundtrip(lambda x: x + k)
    assert fn(5) == 15
    nested = roundtrip({"f": lambda: "hi", "n": 1})
    assert nested["f"]() == "hi" and nested["n"] == 1


def test_lambda_with_numpy_keeps_out_of_band_buffers() -> None:
    arr = np.arange(1000, dtype=np.float64)
    value = (lambda: 1, arr)
    ser = serialize(value)
    assert len(ser.buffers) == 1  # the failed plain-pickle attempt's buffers are discarded
    out = deserialize(ser.to_bytes())
    assert out[0]() == 1
    np.testing.assert_array_equal(out[1], arr)


_MAIN_SRC = """
class Counter:
    def __init__(self, n):
        self.n = n
    def bump(self):
        return self.n + 1

def square(x):
    return x * x
"""


@pytest.fixture
def main_namespace() -> Iterator[dict[str, Any]]:
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec(_MAIN_SRC, ns)
    yield ns


def test_main_objects_not_importable_use_cloudpickle(main_namespace: dict[str, Any]) -> None:
    counter = main_namespace["Counter"](41)
    assert counter.__module__ == "__main__"
    out = roundtrip(counter)
    assert out.bump() == 42
    assert roundtrip(main_namespace["square"])(7) == 49


def test_main_objects_pickled_by_value_even_when_importable(
    main_namespace: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Plain pickle would succeed by reference to __main__.Counter, which a worker's __main__ lacks.
    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "Counter", main_namespace["Counter"], raising=False)
    blob = serialize(main_namespace["Counter"](1)).to_bytes()
    monkeypatch.delattr(main, "Counter")
    out = deserialize(blob)
    assert out.bump() == 2


def test_dumps_and_loads_function() -> None:
    base = 3

    def add(x: int) -> int:
        return x + base

    data = serialization.dumps_function(add)
    assert isinstance(data, bytes)
    assert serialization.loads_function(data)(4) == 7


# ---- contained ObjectRefs ------------------------------------------------------------------------------


def test_contained_refs_collected() -> None:
    r1 = ObjectRef(b"\x01" * 20)
    r2 = ObjectRef(b"\x02" * 20)
    ser = serialize({"a": r1, "b": [r2, 3]})
    assert set(ser.contained_refs) == {r1, r2}
    out = deserialize(ser.to_bytes())
    assert isinstance(out["a"], ObjectRef)
    assert out["a"] == r1 and out["a"].binary() == b"\x01" * 20
    assert out["b"][0] == r2 and out["b"][1] == 3


def test_no_refs_no_contained() -> None:
    assert serialize([1, 2, 3]).contained_refs == []


def test_refs_pickled_outside_serialize_are_not_collected() -> None:
    r = ObjectRef(b"\x03" * 20)
    data = pickle.dumps(r)
    assert pickle.loads(data) == r
    assert serialize(5).contained_refs == []  # nothing leaked into a later collector


def test_contained_refs_collected_through_cloudpickle_fallback() -> None:
    r = ObjectRef(b"\x04" * 20)
    ser = serialize([r, lambda: 0])
    assert set(ser.contained_refs) == {r}
    out = deserialize(ser.to_bytes())
    assert out[0] == r and out[1]() == 0


def _rebuild_nested(blob: bytes) -> Any:
    return deserialize(blob)


class _SerializesInReduce:
    """An object whose pickling itself calls ``serialize`` (nested collectors)."""

    def __init__(self, ref: ObjectRef) -> None:
        self.ref = ref

    def __reduce__(self) -> Any:
        return (_rebuild_nested, (serialize([self.ref]).to_bytes(),))


def test_nested_serialize_restores_outer_collector() -> None:
    inner = ObjectRef(b"\x05" * 20)
    outer = ObjectRef(b"\x06" * 20)
    ser = serialize([_SerializesInReduce(inner), outer])
    assert outer in ser.contained_refs
    out = deserialize(ser.to_bytes())
    assert out[0] == [inner] and out[1] == outer
    assert getattr(serialization._local, "collector", None) is None


def test_collector_is_per_thread() -> None:
    results: list[list[Any]] = []
    r = ObjectRef(b"\x07" * 20)

    def worker() -> None:
        results.append(serialize([r]).contained_refs)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[r]] * 8
