"""Corrupt Redis entries: the one error a parser raises for them, typed field reads, and skip-and-log.

A Redis reader (anyone with the password, or a damaged AOF) can leave any bytes in a control table.
Every record parser in :mod:`rayredis.store.tables` runs under :func:`parsing`, so bad JSON, wrong
types, bad UTF-8 or unknown enum values become one :class:`CorruptEntryError` naming the entry;
readers of whole tables log and skip such entries (:func:`skip`), single-entry readers raise it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from rayredis.exceptions import RaySystemError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: What a parser may raise on bytes it did not expect (json.JSONDecodeError and
#: UnicodeDecodeError are ValueErrors; RecursionError for JSON nested thousands deep).
PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError, OverflowError)


class CorruptEntryError(RaySystemError, ValueError):
    """A Redis control-table entry could not be parsed: it was not written by rayredis, or is damaged."""

    def __init__(self, entry: str, cause: BaseException):
        self.entry = entry
        super().__init__(
            f"corrupt Redis entry {entry}: {type(cause).__name__}: {str(cause)[:200]}. It was not written by this "
            f"version of rayredis or was damaged (AOF, manual edit); delete it (redis-cli HDEL/DEL) or restart "
            f"the cluster from a clean state")


@contextmanager
def parsing(entry: str) -> Iterator[None]:
    """Turn any parse error inside the block into :class:`CorruptEntryError` for ``entry``."""
    try:
        yield
    except CorruptEntryError:
        raise
    except PARSE_ERRORS as e:
        raise CorruptEntryError(entry, e) from e


_reported: set[str] = set()
_lock = threading.Lock()
_MAX_REPORTED = 10_000


def report(error: CorruptEntryError) -> None:
    """Log ``error`` once per entry (the tables are reread every heartbeat), then stay quiet."""
    with _lock:
        first = error.entry not in _reported
        if first and len(_reported) < _MAX_REPORTED:
            _reported.add(error.entry)
    if first:
        logger.error("%s; skipping it", error)


def skip(parse: Callable[..., _T], *args: Any) -> _T | None:
    """``parse(*args)``, or None (logged once) if the entry is corrupt: for readers of whole tables."""
    try:
        return parse(*args)
    except CorruptEntryError as e:
        report(e)
        return None


def as_dict(v: Any) -> dict[str, Any]:
    """``v``, checked to be a JSON object."""
    if not isinstance(v, dict):
        raise TypeError(f"expected a JSON object, got {type(v).__name__}")
    return v


def text(d: Mapping[str, Any], key: str, default: str = "") -> str:
    """``d[key]`` (``default`` when absent), checked to be a string."""
    v = d.get(key, default)
    if not isinstance(v, str):
        raise TypeError(f"field {key!r}: expected a string, got {type(v).__name__}")
    return v


def number(v: Any, what: str) -> float:
    """``v``, checked to be a JSON number (not a bool, string or container)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{what}: expected a number, got {type(v).__name__}")
    return float(v)


def integer(v: Any, what: str) -> int:
    """``v``, checked to be an integer (a whole float, as JSON may write one, is accepted)."""
    f = number(v, what)
    if f != f or f in (float("inf"), float("-inf")) or f != int(f):
        raise ValueError(f"{what}: expected an integer, got {v!r}")
    return int(v)


def floats(v: Any, what: str) -> dict[str, float]:
    """``v``, checked to be a JSON object of numbers (a resource map)."""
    return {_key(k, what): number(x, f"{what}[{k!r}]") for k, x in as_dict(v).items()}


def strings(v: Any, what: str) -> list[str]:
    """``v``, checked to be a JSON list of strings."""
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise TypeError(f"{what}: expected a list of strings")
    return list(v)


def _key(k: Any, what: str) -> str:
    if not isinstance(k, str):
        raise TypeError(f"{what}: expected string keys")
    return k

