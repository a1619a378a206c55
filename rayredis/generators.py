"""Generator tasks and methods (``num_returns="streaming"``/``"dynamic"``): every value a generator
yields becomes an object of its own, handed to the caller as it is yielded, as in Ray.

The worker puts each yielded value (and, if the generator raised, the error) as an object. For a
``"streaming"`` call it also reports each item at once on the task's items stream in Redis
(:func:`rayredis.store.keys.generator_items_key`), after its raylet has the object, and an ``end``
entry once the generator is done. The task's one return value is a
:class:`DynamicObjectRefGenerator` listing every item's ref: it keeps the items alive while the
caller holds the generator, and it is what a ``"dynamic"`` call returns. The caller's
:class:`ObjectRefGenerator` reads the stream, so ``next()`` returns an item while the generator
still runs; once the task has failed as a whole (worker died, cancelled) its return's error is the
last item.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import redis

from rayredis import exceptions
from rayredis._private.worker_context import get_worker
from rayredis.ids import TASK_ID_LEN
from rayredis.object_ref import ObjectRef
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store import keys

if TYPE_CHECKING:
    from rayredis.worker.core_worker import CoreWorker

logger = logging.getLogger(__name__)

#: The ``num_returns`` values that make a task or method a generator.
GENERATOR_RETURNS = ("streaming", "dynamic")

#: How long the caller blocks on the items stream before it checks whether the task ended anyway
#: (its worker died before writing ``end``), in milliseconds.
_CHECK_EVERY_MS = 500

_REDIS_ERRORS = (redis.RedisError, OSError)


def default_num_returns(fn: Any) -> Any:
    """Ray's default: a generator function streams; anything else returns one value."""
    return "streaming" if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn) else 1


class DynamicObjectRefGenerator:
    """The refs of a generator task's items, in order (what ``get`` of a ``"dynamic"`` task returns)."""

    def __init__(self, refs: list[ObjectRef]):
        self._refs = list(refs)

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __reduce__(self) -> Any:
        return (DynamicObjectRefGenerator, (self._refs,))


class ItemCursor:
    """The caller's view of a streaming task's items (no I/O): the stream entries seen so far, the
    next index to hand out, and the end (a count from the stream, or the task's final items)."""

    def __init__(self) -> None:
        #: Streamed items not handed out yet: index -> (object ID, node ID).
        self.items: dict[int, tuple[bytes, bytes]] = {}
        self.next = 0
        #: The ``end`` entry's item count, once seen.
        self.count: int | None = None
        #: The items left once the task ended (known from its return), or None.
        self.rest: list[Any] | None = None
        self.stopped = False

    def apply(self, fields: dict[bytes, bytes]) -> tuple[bytes, bytes] | None:
        """Take one stream entry; returns the ``(object ID, node ID)`` of a new item to reference."""
        if b"end" in fields:
            self.count = int(fields[b"end"])
            return None
        i = int(fields[b"i"])
        item = (fields[b"o"], fields.get(b"n", b""))
        if i < self.next or self.items.get(i) == item:
            return None  # handed out already, or seen (a retried attempt repeats its entries)
        self.items[i] = item
        return item

    def take(self) -> tuple[str, Any]:
        """``("item", value)``, ``("stop", None)`` or ``("wait", None)`` (nothing known yet)."""
        if self.rest is not None:
            if self.rest:
                self.next += 1
                return "item", self.rest.pop(0)
            self.stopped = True
            return "stop", None
        item = self.items.pop(self.next, None)
        if item is not None:
            self.next += 1
            return "item", item
        if self.count is not None and self.next >= self.count:
            self.stopped = True
            return "stop", None
        return "wait", None

    def ready(self) -> bool:
        """Whether :meth:`take` would not wait."""
        return self.rest is not None or self.next in self.items or (
            self.count is not None and self.next >= self.count)

    def ended(self, final: list[Any] | None, error: Any) -> None:
        """The task ended: ``final`` lists all its items (success), or it failed as a whole and
        ``error`` (its return's ref) comes after the items streamed so far."""
        if final is not None:
            self.rest = list(final[self.next:])
            return
        rest: list[Any] = []
        i = self.next
        while i in self.items:
            rest.append(self.items.pop(i))
            i += 1
        self.rest = rest + [error]


class ObjectRefGenerator:
    """What a ``"streaming"`` task or method call returns: iterate it (``for``, ``next()``,
    ``async for``) for the refs of the values the generator yields, each as soon as it is yielded;
    an error the generator raised comes last, as a ref whose ``get`` raises it."""

    def __init__(self, generator_ref: ObjectRef):
        self._generator_ref = generator_ref
        self._task_id = generator_ref.binary()[:TASK_ID_LEN]
        self._key = keys.generator_items_key(self._task_id.hex())
        self._stream_id: bytes | str = "0-0"
        self._cursor = ItemCursor()
        #: Refs of streamed items taken from the cursor's entries (made as soon as they are read).
        self._refs: dict[bytes, ObjectRef] = {}

    # ---- reading -------------------------------------------------------------------------------

    def _read(self, block_ms: int | None) -> bool:
        """Read new stream entries (waiting up to ``block_ms``); True if any came."""
        cw = get_worker()
        try:
            reply = cw.store.for_id(self._task_id).xread({self._key: self._stream_id}, block=block_ms)
        except _REDIS_ERRORS as e:  # the stream only speeds things up: the task's return is the truth
            logger.debug("reading generator items of %s: %s", self._task_id.hex(), e)
            if block_ms:
                time.sleep(block_ms / 1000)
            return False
        got = False
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                self._stream_id = entry_id
                got = True
                item = self._cursor.apply(fields)
                if item is not None and item[0] not in self._refs:
                    oid, node = item
                    if node and node != cw.node_id:  # made on another node: our raylet must know it
                        cw.raylet.send("resolves", pb.ObjectLocation(object_id=oid, node_id=node))
                    self._refs[oid] = ObjectRef(oid, _borrowed=True)
        return got

    def _task_ended(self) -> bool:
        cw = get_worker()
        ref = self._generator_ref
        return bool(cw.wait([ref], [ref.binary()], 1, 0.0)[0])

    def _load_final(self) -> None:
        try:
            value = get_worker().get([self._generator_ref], None)[0]
            self._cursor.ended(list(value), None)
        except exceptions.GetTimeoutError:
            raise
        except Exception:  # noqa: BLE001 - the task failed as a whole: its ref raises that error
            self._cursor.ended(None, self._generator_ref)

    def _as_ref(self, value: Any) -> ObjectRef:
        if isinstance(value, ObjectRef):
            return value
        oid = value[0]
        ref = self._refs.pop(oid, None)
        return ref if ref is not None else ObjectRef(oid, _borrowed=True)

    def _take(self) -> ObjectRef | None:
        """The next item's ref, waiting for it; None once the generator is exhausted."""
        while True:
            what, value = self._cursor.take()
            if what == "item":
                return self._as_ref(value)
            if what == "stop":
                self._refs.clear()
                self._forget_stream()
                return None
            if self._read(None):
                continue
            if self._task_ended():
                self._read(None)  # (entries written just before the end)
                if not self._cursor.ready():
                    self._load_final()
                continue
            self._read(_CHECK_EVERY_MS)

    def _forget_stream(self) -> None:
        try:
            get_worker().store.for_id(self._task_id).delete(self._key)
        except _REDIS_ERRORS:
            pass  # it expires

    # ---- the iterator protocols -----------------------------------------------------------------

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> ObjectRef:
        ref = self._take()
        if ref is None:
            raise StopIteration
        return ref

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> ObjectRef:
        ref = self._take() if self._cursor.ready() else \
            await asyncio.get_running_loop().run_in_executor(None, self._take)
        if ref is None:
            raise StopAsyncIteration
        return ref

    def completed(self) -> ObjectRef:
        """A ref that is ready once the generator task has finished (as Ray's)."""
        return self._generator_ref

    def is_finished(self) -> bool:
        """Whether iteration has ended (``next()`` raised ``StopIteration``), as Ray's."""
        return self._cursor.stopped

    def next_ready(self) -> bool:
        """Whether ``next()`` would return without waiting."""
        if self._cursor.ready() or self._read(None) and self._cursor.ready():
            return True
        return self._task_ended()

    def __reduce__(self) -> Any:
        return (ObjectRefGenerator, (self._generator_ref,))

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._generator_ref.hex()})"


def caller_result(num_returns: Any, ref: ObjectRef) -> Any:
    """What a generator call returns to its caller, given the ref of its one return."""
    return ObjectRefGenerator(ref) if num_returns == "streaming" else ref


def wait_mixed(given: Sequence[Any], num_returns: int, timeout: float | None,
               fetch_local: bool) -> tuple[list[Any], list[Any]]:
    """``wait`` over refs and generators: a generator is ready once ``next()`` would not wait."""
    cw = get_worker()
    deadline = None if timeout is None else time.monotonic() + timeout
    refs = [r for r in given if isinstance(r, ObjectRef)]
    gens = [g for g in given if isinstance(g, ObjectRefGenerator)]
    while True:
        ready_ids = {id(r) for r in cw.wait(refs, [r.binary() for r in refs], len(refs), 0.0,
                                            fetch_local=fetch_local)[0]} if refs else set()
        ready_ids.update(id(g) for g in gens if g.next_ready())
        left = None if deadline is None else deadline - time.monotonic()
        if len(ready_ids) >= num_returns or (left is not None and left <= 0):
            break
        waiting = [g for g in gens if id(g) not in ready_ids]
        block = 50 if refs or len(waiting) != 1 else _CHECK_EVERY_MS
        if left is not None:
            block = max(1, min(block, int(left * 1000)))
        if waiting:
            waiting[0]._read(block)
        else:
            time.sleep(block / 1000)
    ready: list[Any] = []
    rest: list[Any] = []
    for x in given:
        (ready if id(x) in ready_ids and len(ready) < num_returns else rest).append(x)
    return ready, rest


class ItemReporter:
    """Worker side of a ``"streaming"`` call: reports the items on the task's items stream once the
    raylet has their objects, then the end. A thread sends them, in batches while the generator
    yields faster than one round trip (one barrier and one pipeline per batch)."""

    def __init__(self, cw: CoreWorker, task_id: bytes):
        self._cw = cw
        self._key = keys.generator_items_key(task_id.hex())
        self._client = cw.store.for_id(task_id)
        self._warned = False
        self._pending: list[dict[str, Any]] = []
        self._ended = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def item(self, index: int, ref: ObjectRef) -> None:
        self._queue({"i": str(index), "o": ref.binary(), "n": self._cw.node_id})

    def end(self, count: int) -> None:
        """Report the end, and return once everything is sent."""
        self._queue({"end": str(count)})
        self.close()

    def close(self) -> None:
        """Send what is queued and stop the thread (also when the generator did not end: cancelled)."""
        with self._cond:
            self._ended = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _queue(self, fields: dict[str, Any]) -> None:
        with self._cond:
            self._pending.append(fields)
            if self._thread is None:
                self._thread = threading.Thread(target=self._send_loop, name="rayredis-generator-items",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._ended:
                    self._cond.wait()
                batch, self._pending = self._pending, []
                if not batch:
                    return
            self._send(batch)

    def _send(self, batch: list[dict[str, Any]]) -> None:
        try:
            if any("o" in f for f in batch):
                self._cw.barrier()  # the caller may reference them at once: the raylet must have them
            pipe = self._client.pipeline(transaction=False)
            for fields in batch:
                pipe.xadd(self._key, fields)
            pipe.expire(self._key, keys.GENERATOR_ITEMS_TTL_S)
            pipe.execute()
        except Exception as e:  # noqa: BLE001 - the caller then gets the items when the task ends
            if not self._warned:
                self._warned = True
                logger.warning("cannot report generator items as they come (%s): the caller gets them "
                               "when the generator ends", e)


def _not_iterable(result: Any) -> TypeError:
    return TypeError(f"A task or method with num_returns='streaming' or 'dynamic' must be a generator (or return "
                     f"an iterable); it returned {type(result).__name__}.")


class _Items:
    """The refs of a running generator's items, each reported as it is added (if ``report``)."""

    def __init__(self, report: ItemReporter | None):
        self.refs: list[ObjectRef] = []
        self.report = report

    def add(self, ref: ObjectRef) -> None:
        self.refs.append(ref)
        if self.report is not None:
            self.report.item(len(self.refs) - 1, ref)

    def end(self) -> None:
        if self.report is not None:
            self.report.end(len(self.refs))

    def close(self) -> DynamicObjectRefGenerator:
        if self.report is not None:
            self.report.close()
        return DynamicObjectRefGenerator(self.refs)


def collect(result: Any, put: Callable[[Any], ObjectRef], put_error: Callable[[BaseException], ObjectRef],
            report: ItemReporter | None = None) -> DynamicObjectRefGenerator:
    """Worker side: run the generator ``result`` to its end, each value put as an object (and
    reported, if ``report``); an exception it raises becomes the last item (cancellation and actor
    exits still end the task)."""
    if not hasattr(result, "__iter__"):
        raise _not_iterable(result)
    items = _Items(report)
    try:
        try:
            for value in result:
                items.add(put(value))
        except exceptions.TaskCancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - user code may raise anything; the caller gets it at get
            items.add(put_error(e))
        items.end()
    finally:
        out = items.close()
    return out


async def collect_async(result: Any, put: Callable[[Any], ObjectRef],
                        put_error: Callable[[BaseException], ObjectRef],
                        report: ItemReporter | None = None) -> DynamicObjectRefGenerator:
    """:func:`collect` for an async generator (an async actor's method)."""
    if not hasattr(result, "__aiter__"):
        return collect(result, put, put_error, report)
    items = _Items(report)
    agen: AsyncIterator[Any] = result
    try:
        try:
            async for value in agen:
                items.add(put(value))
        except exceptions.TaskCancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            items.add(put_error(e))
        items.end()
    finally:
        out = items.close()
    return out
