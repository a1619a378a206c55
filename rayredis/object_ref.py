"""ObjectRef: a reference to an immutable object; counts itself so the store frees what nobody holds."""

from __future__ import annotations

import asyncio
from typing import Any

from rayredis import serialization


def _core() -> Any:
    from rayredis.worker import core_worker

    return core_worker.global_worker


class ObjectRef:
    """A future value in the object store, as returned by ``f.remote()`` and ``put``."""

    __slots__ = ("_id", "__weakref__")

    def __init__(self, oid: bytes, _borrowed: bool = False):
        self._id = oid
        cw = _core()
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
            cw = _core()
            if cw is not None:
                cw.refs.remove_local(self._id)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def future(self) -> Any:
        """A ``concurrent.futures.Future`` resolved with the value."""
        import concurrent.futures

        from rayredis import api

        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(api.get(self))
            except BaseException as e:  # noqa: BLE001
                fut.set_exception(e)

        import threading

        threading.Thread(target=run, daemon=True).start()
        return fut

    def __await__(self) -> Any:
        from rayredis import api

        loop = asyncio.get_event_loop()
        return loop.run_in_executor(None, api.get, self).__await__()


def _rebuild_ref(oid: bytes) -> ObjectRef:
    return ObjectRef(oid, _borrowed=True)
