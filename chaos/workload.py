"""A workload whose every answer is known in advance, and the bookkeeping to check it.

Item kinds (each submitted item records expected value, actual value or error, and latency):

``task``
    ``square(i)``: one short task; expected ``i * i``.
``chain``
    ``add_one`` applied ``CHAIN_LENGTH`` times, each task taking the previous task's ref (the
    driver drops the intermediate refs); expected ``start + CHAIN_LENGTH``.
``actor``
    ``Affine.apply(x)`` on one of a pool of actors created with ``max_restarts=-1`` and
    ``max_task_retries=-1``. A restart loses actor state, so the method is a pure function of its
    argument and the constructor argument: ``2 * x + offset``.
``named``
    The same call on an actor looked up by name with ``get_actor`` at submission time.
``new_actor``
    A fresh unnamed ``Affine`` actor (which needs the GCS to be scheduled), one call, then the
    handle is dropped (which kills it). Submitted at most every ``new_actor_interval_s``.
``put``
    ``put`` of a numpy array (large enough to live in shared memory), then ``get``; the actual
    value is the SHA-256 of the array's bytes.
``array_task``
    ``digest(array)`` run in a worker (the array travels through the object store); expected the
    SHA-256 computed on the driver.

The remote functions and the actor class are defined inside :func:`_remotes` so that
cloudpickle ships them by value: workers never need to import ``chaos``.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import rayredis as ray

CHAIN_LENGTH = 4
ACTOR_NAME = "chaos-affine-{}"
#: Submission pattern of one round: the kinds in the order they are submitted.
ROUND = ("task", "task", "task", "chain", "actor", "named", "task", "put", "array_task", "actor")
KINDS = ("task", "chain", "actor", "named", "new_actor", "put", "array_task")


def sha256_of(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _remotes() -> dict[str, Any]:
    @ray.remote
    def square(i: int) -> int:
        time.sleep(0.005)
        return i * i

    @ray.remote
    def add_one(x: int) -> int:
        time.sleep(0.002)
        return x + 1

    @ray.remote
    def digest(arr: Any) -> str:
        import hashlib

        import numpy

        return hashlib.sha256(numpy.ascontiguousarray(arr).tobytes()).hexdigest()

    @ray.remote(max_restarts=-1, max_task_retries=-1)
    class Affine:
        def __init__(self, offset: int):
            self.offset = offset

        def apply(self, x: int) -> int:
            return 2 * x + self.offset

    return {"square": square, "add_one": add_one, "digest": digest, "Affine": Affine}


@dataclass
class Item:
    """One submitted unit of work and its outcome."""

    id: int
    kind: str
    expected: Any
    submitted: float  # seconds since the run started
    ref: Any = None
    finished: float | None = None
    actual: Any = None
    error: str | None = None
    #: How a fetched value becomes the comparable ``actual`` (e.g. an array into its digest).
    reduce: Any = None
    #: An actor handle the item keeps alive until its result is in (``new_actor``).
    handle: Any = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.finished is not None

    @property
    def status(self) -> str:
        if not self.done:
            return "pending"
        if self.error is not None:
            return "lost"
        return "ok" if self.actual == self.expected else "wrong"

    @property
    def latency(self) -> float | None:
        return None if self.finished is None else self.finished - self.submitted

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "status": self.status, "expected": _short(self.expected),
                "actual": _short(self.actual), "error": self.error, "submitted_s": round(self.submitted, 4),
                "latency_s": None if self.latency is None else round(self.latency, 4), **self.detail}


def _short(v: Any) -> Any:
    if isinstance(v, (int, float, str, type(None))):
        return v if not isinstance(v, str) or len(v) <= 80 else v[:77] + "..."
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


class Workload:
    """Submits items round by round, keeps at most ``max_inflight`` pending, and collects results.

    All calls happen on the caller's thread. ``clock`` gives seconds since the run started.
    """

    def __init__(self, seed: int, clock: Any, *, num_actors: int = 3, max_inflight: int = 40,
                 item_timeout_s: float = 60.0, array_elems: tuple[int, int] = (16_384, 65_536),
                 new_actor_interval_s: float = 1.0):
        self.rng = random.Random(f"workload:{seed}")
        self.seed = seed
        self.clock = clock
        self.max_inflight = max_inflight
        self.item_timeout_s = item_timeout_s
        self.array_elems = array_elems
        self.new_actor_interval_s = new_actor_interval_s
        self._last_new_actor = float("-inf")
        self.items: list[Item] = []
        self.pending: dict[Any, Item] = {}  # ref -> item
        self._ids = itertools.count()
        self._kinds = itertools.cycle(ROUND)
        self.r = _remotes()
        self.num_actors = num_actors
        self.actors: list[Any] = []
        self.offsets = [1000 * (k + 1) for k in range(num_actors)]

    # ---- setup -----------------------------------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> None:
        """Create the named actor pool and wait until every actor answers."""
        self.actors = [self.r["Affine"].options(name=ACTOR_NAME.format(k)).remote(self.offsets[k])
                       for k in range(self.num_actors)]
        got = ray.get([a.apply.remote(0) for a in self.actors], timeout=timeout_s)
        if got != self.offsets:
            raise RuntimeError(f"actor warm-up returned {got}, expected {self.offsets}")
        # Warm the task path too, so the first measured items do not include worker start-up.
        ray.get([self.r["square"].remote(i) for i in range(4)], timeout=timeout_s)

    # ---- submission ------------------------------------------------------------------------------

    def fill(self) -> int:
        """Submit items until ``max_inflight`` are pending; returns how many were submitted."""
        n = 0
        if self.new_actor_interval_s > 0 and self.clock() - self._last_new_actor >= self.new_actor_interval_s:
            self._last_new_actor = self.clock()
            self.submit("new_actor")
            n += 1
        while len(self.pending) < self.max_inflight:
            self.submit(next(self._kinds))
            n += 1
        return n

    def submit(self, kind: str) -> Item:
        item = Item(next(self._ids), kind, None, self.clock())
        self.items.append(item)
        try:
            item.ref = self._submit(item)
        except Exception as e:  # noqa: BLE001 - a failed submission is a lost item, not a crash
            item.handle = None
            item.finished = self.clock()
            item.error = f"submit: {type(e).__name__}: {e}"
            return item
        self.pending[item.ref] = item
        return item

    def _submit(self, item: Item) -> Any:
        rng, r = self.rng, self.r
        if item.kind == "task":
            i = rng.randrange(1_000_000)
            item.expected = i * i
            return r["square"].remote(i)
        if item.kind == "chain":
            start = rng.randrange(1_000_000)
            item.expected = start + CHAIN_LENGTH
            ref = r["add_one"].remote(start)
            for _ in range(CHAIN_LENGTH - 1):
                ref = r["add_one"].remote(ref)
            return ref
        if item.kind in ("actor", "named"):
            k = rng.randrange(self.num_actors)
            x = rng.randrange(1_000_000)
            item.expected = 2 * x + self.offsets[k]
            item.detail["actor"] = ACTOR_NAME.format(k)
            handle = self.actors[k] if item.kind == "actor" else ray.get_actor(ACTOR_NAME.format(k))
            return handle.apply.remote(x)
        if item.kind == "new_actor":
            offset, x = rng.randrange(1_000_000), rng.randrange(1_000_000)
            item.expected = 2 * x + offset
            item.handle = r["Affine"].remote(offset)
            return item.handle.apply.remote(x)
        if item.kind in ("put", "array_task"):
            n = rng.randrange(*self.array_elems)
            arr = np.random.default_rng(rng.randrange(2**63)).integers(0, 2**62, size=n, dtype=np.int64)
            item.expected = sha256_of(arr)
            item.detail["nbytes"] = arr.nbytes
            if item.kind == "put":
                item.reduce = sha256_of
                return ray.put(arr)
            return r["digest"].remote(arr)
        raise ValueError(f"unknown item kind {item.kind!r}")

    # ---- collection ------------------------------------------------------------------------------

    def collect(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for pending items, record every finished one; returns how many."""
        self._expire()
        if not self.pending:
            return 0
        refs = list(self.pending)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout_s)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        for ref in ready:
            self._finish(self.pending.pop(ref))
        return len(ready)

    def _finish(self, item: Item) -> None:
        try:
            value = ray.get(item.ref, timeout=self.item_timeout_s)
            item.actual = item.reduce(value) if item.reduce is not None else value
            del value
        except Exception as e:  # noqa: BLE001 - any error (task, actor, system) is a lost item
            text = str(e)
            item.error = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
            if "\n" in text:
                item.detail["error_detail"] = text[-3000:]
        item.finished = self.clock()
        item.ref = item.handle = None

    def _expire(self) -> None:
        """Items pending longer than ``item_timeout_s`` are lost (never returned)."""
        now = self.clock()
        for ref, item in list(self.pending.items()):
            if now - item.submitted > self.item_timeout_s:
                del self.pending[ref]
                item.finished = now
                item.error = f"timeout: no result after {self.item_timeout_s} s"
                item.ref = item.handle = None

    def drain(self, timeout_s: float) -> None:
        """Collect until nothing is pending or ``timeout_s`` passes (then the rest are lost)."""
        deadline = self.clock() + timeout_s
        while self.pending and self.clock() < deadline:
            self.collect(min(0.2, max(0.0, deadline - self.clock())))
        for ref, item in list(self.pending.items()):
            del self.pending[ref]
            item.finished = self.clock()
            item.error = f"timeout: still pending when the run ended ({timeout_s} s drain)"
            item.ref = item.handle = None

    def close(self) -> None:
        """Drop every handle and ref this workload holds (before the cluster shuts down)."""
        self.pending.clear()
        for item in self.items:
            item.ref = item.handle = None
        self.actors = []
