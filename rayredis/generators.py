"""Generator tasks and methods (``num_returns="streaming"``/``"dynamic"``): every value a generator
yields becomes an object of its own, as in Ray.

The worker runs the generator to its end, puts each yielded value (and, if the generator raised, the
error) as an object, and returns one value: a :class:`DynamicObjectRefGenerator` listing their refs
(the refs it holds keep the objects alive). The caller gets an :class:`ObjectRefGenerator` over that
return (``"streaming"``, the default for generator functions) or the return's ref itself
(``"dynamic"``). Items are therefore available once the generator has finished, not one by one.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from rayredis import exceptions
from rayredis._private.worker_context import get_worker
from rayredis.object_ref import ObjectRef

#: The ``num_returns`` values that make a task or method a generator.
GENERATOR_RETURNS = ("streaming", "dynamic")


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


class ObjectRefGenerator:
    """What a ``"streaming"`` task or method call returns: iterate it (``for``, ``next()``,
    ``async for``) for the refs of the values the generator yielded; an error the generator raised
    comes last, as a ref whose ``get`` raises it."""

    def __init__(self, generator_ref: ObjectRef):
        self._generator_ref = generator_ref
        self._items: list[ObjectRef] | None = None
        self._next = 0

    def _load(self) -> list[ObjectRef]:
        if self._items is None:
            try:
                self._items = list(get_worker().get([self._generator_ref], None)[0])
            except exceptions.GetTimeoutError:
                raise
            except Exception:  # noqa: BLE001 - the task failed as a whole: its ref raises that error
                self._items = [self._generator_ref]
        return self._items

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> ObjectRef:
        items = self._load()
        if self._next >= len(items):
            raise StopIteration
        self._next += 1
        return items[self._next - 1]

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> ObjectRef:
        if self._items is None:
            await asyncio.get_running_loop().run_in_executor(None, self._load)
        try:
            return next(self)
        except StopIteration:
            raise StopAsyncIteration from None

    def completed(self) -> ObjectRef:
        """A ref that is ready once the generator task has finished (as Ray's)."""
        return self._generator_ref

    def is_finished(self) -> bool:
        """Whether every item has been taken."""
        return self._items is not None and self._next >= len(self._items)

    def next_ready(self) -> bool:
        """Whether ``next()`` would return without waiting."""
        return self._items is not None or bool(get_worker().wait(
            [self._generator_ref], [self._generator_ref.binary()], 1, 0.0, fetch_local=True)[0])

    def __reduce__(self) -> Any:
        return (ObjectRefGenerator, (self._generator_ref,))

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._generator_ref.hex()})"


def caller_result(num_returns: Any, ref: ObjectRef) -> Any:
    """What a generator call returns to its caller, given the ref of its one return."""
    return ObjectRefGenerator(ref) if num_returns == "streaming" else ref


def _not_iterable(result: Any) -> TypeError:
    return TypeError(f"A task or method with num_returns='streaming' or 'dynamic' must be a generator (or return "
                     f"an iterable); it returned {type(result).__name__}.")


def collect(result: Any, put: Callable[[Any], ObjectRef], put_error: Callable[[BaseException], ObjectRef]
            ) -> DynamicObjectRefGenerator:
    """Worker side: run the generator ``result`` to its end, each value put as an object; an
    exception it raises becomes the last item (cancellation and actor exits still end the task)."""
    if not hasattr(result, "__iter__"):
        raise _not_iterable(result)
    refs: list[ObjectRef] = []
    try:
        for value in result:
            refs.append(put(value))
    except exceptions.TaskCancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - user code may raise anything; the caller gets it at get
        refs.append(put_error(e))
    return DynamicObjectRefGenerator(refs)


async def collect_async(result: Any, put: Callable[[Any], ObjectRef],
                        put_error: Callable[[BaseException], ObjectRef]) -> DynamicObjectRefGenerator:
    """:func:`collect` for an async generator (an async actor's method)."""
    if not hasattr(result, "__aiter__"):
        return collect(result, put, put_error)
    refs: list[ObjectRef] = []
    agen: AsyncIterator[Any] = result
    try:
        async for value in agen:
            refs.append(put(value))
    except exceptions.TaskCancelledError:
        raise
    except Exception as e:  # noqa: BLE001
        refs.append(put_error(e))
    return DynamicObjectRefGenerator(refs)
