"""Spill and restore copies off the raylet's event loop: which copy to run when (no I/O here), the
copies themselves handed to a runner that does them on a thread and calls back on the loop.

A create that does not fit waits in a FIFO while victims are spilled (``ObjectStore.victims``, the
same LRU policy as the synchronous path); a get of a spilled object waits while room is made and
the file is copied back. An entry being copied is ``busy``: it is never chosen again meanwhile, and
what happened to it during the copy (freed, pinned, restored by a synchronous reader) is checked
when the copy ends (``ObjectStore.finish_spill``/``finish_restore``). Callers that cannot wait (task
arguments at dispatch, a peer's pull) keep the synchronous ``ensure_local``/``reserve`` path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from rayredis.raylet.object_store import ObjectStore

#: ``done(result, error)``, called on the event loop once a copy has ended.
Done = Callable[[Any, BaseException | None], None]


class Runner(Protocol):
    """Runs ``fn`` somewhere else (a thread), then ``done`` with its result or error on the loop."""

    def __call__(self, fn: Callable[[], Any], done: Done) -> None: ...


def inline_runner(fn: Callable[[], Any], done: Done) -> None:
    """A runner that copies at once, on the caller's thread (tests, and without an event loop)."""
    try:
        result = fn()
    except BaseException as e:  # noqa: BLE001 - handed to done, as a thread's error would be
        done(None, e)
        return
    done(result, None)


class ThreadRunner:
    """A runner over a small thread pool, calling back on the asyncio ``loop``."""

    def __init__(self, loop: Any, threads: int = 2):
        self.loop = loop
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="rayredis-spill")

    def __call__(self, fn: Callable[[], Any], done: Done) -> None:
        fut = self.loop.run_in_executor(self.executor, fn)

        def finished(f: Any) -> None:
            error = f.exception()
            done(None if error is not None else f.result(), error)

        fut.add_done_callback(finished)

    def close(self) -> None:
        """Wait for the copies in flight (raylet exit: none may write a file after the store's
        cleanup)."""
        self.executor.shutdown(wait=True)


class SpillPump:
    """Makes room for creates and restores, one round of spills at a time."""

    def __init__(self, objects: ObjectStore, run: Runner):
        assert objects.spiller is not None
        self.objects = objects
        self.run = run
        #: ``(size, keep, proceed)``: proceed(True) once ``size`` more bytes fit, False if never.
        self.waiting: deque[tuple[int, bytes, Callable[[bool], None]]] = deque()
        self.copies = 0
        self._round_failed = False
        #: Objects being restored -> what to call once they are (or could not be).
        self.restoring: dict[bytes, list[Callable[[], None]]] = {}

    def close(self) -> None:
        close = getattr(self.run, "close", None)
        if close is not None:
            close()

    # ---- room ----------------------------------------------------------------------------------

    def need_room(self, size: int, keep: bytes, proceed: Callable[[bool], None]) -> None:
        self.waiting.append((size, keep, proceed))
        self._pump()

    def _pump(self) -> None:
        objects = self.objects
        while self.waiting:
            size, keep, proceed = self.waiting[0]
            if objects.fits(size):
                self.waiting.popleft()
                proceed(True)
                continue
            if self.copies:
                return  # spills in flight free room: the next one ending pumps again
            victims = [] if self._round_failed else objects.victims(size, keep)
            self._round_failed = False
            if not victims:
                self.waiting.popleft()
                proceed(False)
                continue
            for oid in victims:
                self._spill(oid)
            return

    def _spill(self, oid: bytes) -> None:
        objects = self.objects
        spiller = objects.spiller
        assert spiller is not None
        e = objects.entries[oid]
        e.busy = True
        name = e.shm_name
        self.copies += 1

        def done(path: Any, error: BaseException | None) -> None:
            self.copies -= 1
            if not objects.finish_spill(oid, name, path if error is None else None):
                self._round_failed = True
            self._pump()

        self.run(lambda: spiller.spill(name), done)

    # ---- restores ------------------------------------------------------------------------------

    def restore(self, oid: bytes, then: Callable[[], None]) -> None:
        """Copy spilled ``oid`` back into shared memory, then call ``then`` (also if it could not:
        the reader's synchronous ``ensure_local`` then says why)."""
        e = self.objects.entries.get(oid)
        if e is None or not e.spilled:
            then()
            return
        waiting = self.restoring.get(oid)
        if waiting is not None:
            waiting.append(then)
            return
        self.restoring[oid] = [then]
        e.busy = True
        self.need_room(e.size, oid, lambda ok: self._copy_back(oid, ok))

    def _copy_back(self, oid: bytes, ok: bool) -> None:
        objects = self.objects
        spiller = objects.spiller
        assert spiller is not None
        e = objects.entries.get(oid)
        if not ok or e is None or not e.spilled:
            if e is not None:
                e.busy = False
            self._restored(oid)
            return
        name, path, size = objects.start_restore(oid)

        def done(_: Any, error: BaseException | None) -> None:
            objects.finish_restore(oid, name, size, error is None)
            self._restored(oid)

        self.run(lambda: spiller.restore(path, name, size), done)

    def _restored(self, oid: bytes) -> None:
        for then in self.restoring.pop(oid, []):
            then()
        self._pump()
