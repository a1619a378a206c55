"""ObjectRef: a reference to an immutable object; counts itself so the store frees what nobody holds."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

from rayredis import serialization
from rayredis._private import worker_context


class ObjectRef:
    """A future value in the object store, as returned by ``f.remote()`` and ``put``."""

    __slots__ = ("_id", "__weakref__")

    def __class_getitem__(cls, item: object) -> object:
        """``ObjectRef[int]`` in annotations, as Ray's ObjectRef is generic."""
        import types

        return types.GenericAlias(cls, item)

    def __init__(self, oid: bytes, _borrowed: bool = False):
        self._id = oid
        cw = worker_context.global_worker
        if cw is not None:
            cw.refs.add_local(oid, borrowed=_borrowed)

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def task_id(self) -> bytes:
        return self._id[:16]

    def __hash__(self) -> int:
        return hash(self._id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def __reduce__(self) -> Any:
        serialization.note_serialized_ref(self)
        return (_rebuild_ref, (self._id,))

    def __del__(self) -> None:
        try:
            cw = worker_context.global_worker
            if cw is not None:
                cw.refs.remove_local(self._id)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def future(self) -> Any:
        """A ``concurrent.futures.Future`` resolved with the value."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(_get_value(self))
            except BaseException as e:  # noqa: BLE001
                fut.set_exception(e)

        threading.Thread(target=run, daemon=True).start()
        return fut

    def __await__(self) -> Any:
        loop = asyncio.get_event_loop()
        return loop.run_in_executor(None, _get_value, self).__await__()


class ActorTaskRef(ObjectRef):
    """The ref an actor call returns to its caller (only its type differs): ``cancel(force=True)``
    refuses it, as Ray does. A ref passed to another process becomes a plain ObjectRef."""

    __slots__ = ()


def _get_value(ref: ObjectRef) -> Any:
    """``get(ref)`` without a timeout (what ``future()`` and ``await ref`` resolve to)."""
    return worker_context.get_worker().get([ref], None)[0]


def _rebuild_ref(oid: bytes) -> ObjectRef:
    return ObjectRef(oid, _borrowed=True)
