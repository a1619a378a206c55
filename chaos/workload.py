"""A workload whose every answer is known in advance, and the bookkeeping to check it.

Work is placed on the cluster's *slots* (``chaos.cluster``: slot ``k`` is the node that currently
holds the custom resource ``chaos_slot_<k>``; a node lost to a fault is replaced by one that takes
over its slot). Item kinds (each submitted item records expected value, actual value or error,
latency, the slots it is pinned to and the IDs of the tasks it submitted):

``task``
    ``square(i)``: one short task, placed by the default policy; expected ``i * i``.
``pinned``
    ``square(i)`` pinned to a random slot (forwarded to that node unless it is the head).
``spread``
    ``square(i)`` with the ``SPREAD`` strategy.
``chain``
    ``add_one`` applied ``CHAIN_LENGTH`` times, each task taking the previous task's ref (the
    driver drops the intermediate refs); expected ``start + CHAIN_LENGTH``.
``actor``
    ``Affine.apply(x)`` on one of a pool of named actors created with ``max_restarts=-1`` and
    ``max_task_retries=-1``. A restart loses actor state, so the method is a pure function of its
    argument and the constructor argument: ``2 * x + offset``.
``named``
    The same call on an actor looked up by name with ``get_actor`` at submission time.
``new_actor``
    A fresh unnamed ``Affine`` actor (which needs the GCS to be scheduled), one call, then the
    handle is dropped (which kills it). Submitted at most every ``new_actor_interval_s``.
``counter``
    ``Counter.step(seq)`` on the counter actor of a random slot (one per slot, pinned to it,
    ``max_restarts=-1, max_task_retries=-1``). Each call returns ``(seq, incarnation, n)``: the
    instance's random incarnation token and how many calls it has run. Expected ``seq``; after the
    run :meth:`Workload.check_counters` checks the call sequence (see there).
``pg``
    A placement group of one ``{"chaos_node": 1}`` bundle per slot (at most 3), alternately
    ``STRICT_SPREAD`` and ``SPREAD``, a task in each bundle returning ``(v * v, node_id)``, and a
    ``combine`` task over them; expected the squares, plus (STRICT_SPREAD) that every bundle ran on a
    different node. The group is removed when the item ends. At most every ``pg_interval_s``.
``put``
    ``put`` of a numpy array (large enough to live in shared memory), then ``get``; the actual
    value is the SHA-256 of the array's bytes.
``array_task``
    ``digest(array)`` run in a worker (the array travels through the object store); expected the
    SHA-256 computed on the driver.
``xnode``
    ``make_array(seed, n)`` (1-3 MiB, made on slot A's node) consumed by ``digest`` pinned to another
    slot B: the array is pulled between raylets. Expected the SHA-256 of the same array made on the
    driver.
``xnode_get``
    ``make_array`` on slot A, fetched by the driver (pulled to the head) and checksummed there.
``lineage``
    ``make_array`` on slot A; ``lineage_delay_s`` later (1-3 s) a ``digest`` of it pinned to slot B.
    If A's node dies in between, the array must be rebuilt from lineage.
``probe``
    Submitted when a fault asks for one (``FaultContext.probe``): a task pinned to a slot, or a new
    actor and one call. Its result time is the fault's service recovery.

The remote functions and the actor classes are defined inside :func:`_remotes` so that
cloudpickle ships them by value: workers never need to import ``chaos``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import queue
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import rayredis as ray
from chaos.cluster import NODE_RESOURCE, slot_resource
from rayredis.util.placement_group import placement_group, placement_group_table, remove_placement_group
from rayredis.util.scheduling_strategies import PlacementGroupSchedulingStrategy

CHAIN_LENGTH = 4
ACTOR_NAME = "chaos-affine-{}"
COUNTER_NAME = "chaos-counter-{}"
#: What a pinned task asks of its slot's resource.
PIN = 0.01
#: Submission pattern of one round: the kinds in the order they are submitted.
ROUND = ("task", "pinned", "task", "chain", "actor", "counter", "named", "xnode", "task", "put", "array_task",
         "counter", "xnode_get", "spread", "actor", "lineage", "pinned", "counter")
KINDS = ("task", "pinned", "spread", "chain", "actor", "named", "counter", "new_actor", "pg", "put", "array_task",
         "xnode", "xnode_get", "lineage", "probe")


def sha256_of(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def make_array_here(seed: int, n: int) -> np.ndarray:
    """The array ``make_array(seed, n)`` makes in a worker (the same numpy, so the same bytes)."""
    return np.random.default_rng(seed).integers(0, 2**62, size=n, dtype=np.int64)


def _remotes() -> dict[str, Any]:
    @ray.remote
    def square(i: int) -> int:
        import time

        time.sleep(0.005)
        return i * i

    @ray.remote
    def add_one(x: int) -> int:
        import time

        time.sleep(0.002)
        return x + 1

    @ray.remote
    def digest(arr: Any) -> str:
        import hashlib

        import numpy

        return hashlib.sha256(numpy.ascontiguousarray(arr).tobytes()).hexdigest()

    @ray.remote
    def make_array(seed: int, n: int) -> Any:
        import numpy

        return numpy.random.default_rng(seed).integers(0, 2**62, size=n, dtype=numpy.int64)

    @ray.remote
    def where_square(v: int) -> tuple[int, str]:
        return v * v, ray.get_runtime_context().get_node_id()

    @ray.remote
    def combine(*pairs: tuple[int, str]) -> tuple[list[int], int, list[str]]:
        return [p[0] for p in pairs], len({p[1] for p in pairs}), [p[1] for p in pairs]

    @ray.remote(max_restarts=-1, max_task_retries=-1)
    class Affine:
        def __init__(self, offset: int):
            self.offset = offset

        def apply(self, x: int) -> int:
            return 2 * x + self.offset

    @ray.remote(max_restarts=-1, max_task_retries=-1)
    class Counter:
        def __init__(self) -> None:
            import os

            self.incarnation = os.urandom(8).hex()
            self.n = 0

        def step(self, seq: int) -> tuple[int, str, int]:
            self.n += 1
            return seq, self.incarnation, self.n

    return {"square": square, "add_one": add_one, "digest": digest, "make_array": make_array,
            "where_square": where_square, "combine": combine, "Affine": Affine, "Counter": Counter}


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
    #: The slots whose nodes the item's tasks and actor calls are pinned to.
    slots: tuple[int, ...] = ()
    #: Hex IDs of the tasks the item submitted (their task-table entries count attempts).
    task_ids: list[str] = field(default_factory=list)
    #: Slots of the nodes the item's work was found on after the run (task table, placement
    #: groups, node IDs named in its error): with ``slots``, what a node-level fault could hit.
    ran_on: tuple[int, ...] = ()
    #: What the raylets logged about the item's tasks (retry and rebuild reasons), set after the run.
    evidence: str = ""
    #: Set by a check after the run (a counter's call sequence): the item is wrong.
    violation: str | None = None
    #: Refs the item keeps alive (a ``lineage`` item's array) and what to do when it ends.
    keep: list[Any] = field(default_factory=list)
    cleanup: Callable[[], None] | None = None

    @property
    def done(self) -> bool:
        return self.finished is not None

    @property
    def status(self) -> str:
        if not self.done:
            return "pending"
        if self.error is not None:
            return "lost"
        if self.violation is not None:
            return "wrong"
        return "ok" if self.actual == self.expected else "wrong"

    @property
    def hung(self) -> bool:
        """No result (and no error) came back within the item timeout: a hang."""
        return self.error is not None and self.error.startswith("timeout")

    @property
    def latency(self) -> float | None:
        return None if self.finished is None else self.finished - self.submitted

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "kind": self.kind, "status": self.status, "expected": _short(self.expected),
               "actual": _short(self.actual), "error": self.error, "submitted_s": round(self.submitted, 4),
               "latency_s": None if self.latency is None else round(self.latency, 4), **self.detail}
        if self.slots:
            out["slots"] = list(self.slots)
        if self.ran_on:
            out["ran_on"] = list(self.ran_on)
        if self.violation:
            out["violation"] = self.violation
        return out


def _short(v: Any) -> Any:
    if isinstance(v, (int, float, str, type(None))):
        return v if not isinstance(v, str) or len(v) <= 80 else v[:77] + "..."
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


@dataclass(frozen=True)
class ProbeRequest:
    fault_index: int
    what: str  # "slot_task" or "actor"
    slot: int | None


class Workload:
    """Submits items round by round, keeps at most ``max_inflight`` pending, and collects results.

    All driver calls happen on the caller's thread (the runner's main thread). ``clock`` gives
    seconds since the run started. Faults ask for probes through :meth:`request_probe`, from any
    thread; the next :meth:`fill` submits them.
    """

    def __init__(self, seed: int, clock: Any, *, num_actors: int = 3, max_inflight: int = 40,
                 item_timeout_s: float = 60.0, array_elems: tuple[int, int] = (16_384, 65_536),
                 big_array_elems: tuple[int, int] = (131_072, 393_216), new_actor_interval_s: float = 1.0,
                 num_slots: int = 1, pg_interval_s: float = 2.0, lineage_delay_s: tuple[float, float] = (1.0, 3.0)):
        self.rng = random.Random(f"workload:{seed}")
        self.seed = seed
        self.clock = clock
        self.max_inflight = max_inflight
        self.item_timeout_s = item_timeout_s
        self.array_elems = array_elems
        self.big_array_elems = big_array_elems
        self.new_actor_interval_s = new_actor_interval_s
        self.pg_interval_s = pg_interval_s
        self.lineage_delay_s = lineage_delay_s
        self.num_slots = num_slots
        self._last_new_actor = float("-inf")
        self._last_pg = float("-inf")
        self._pgs = 0
        self.items: list[Item] = []
        self.pending: dict[Any, Item] = {}  # ref -> item
        #: Items waiting for their second step (``lineage``): (due time, item, submit).
        self.deferred: list[tuple[float, Item, Callable[[], Any]]] = []
        self.probes: queue.SimpleQueue[ProbeRequest] = queue.SimpleQueue()
        self._ids = itertools.count()
        self._kinds = itertools.cycle(ROUND)
        self.r = _remotes()
        self.num_actors = num_actors
        self.actors: list[Any] = []
        self.offsets = [1000 * (k + 1) for k in range(num_actors)]
        self.counters: list[Any] = []
        self.counter_seq = [0] * num_slots
        #: Each counter's warm-up call result (seq 0).
        self.counter_warmup: list[tuple[int, str, int]] = []
        #: Per counter, how many instances answered calls (set by :meth:`check_counters`).
        self.counter_incarnations: dict[int, int] = {}

    # ---- setup -----------------------------------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> None:
        """Create the named actor pool and the counters, and wait until every actor answers."""
        self.actors = [self.r["Affine"].options(name=ACTOR_NAME.format(k)).remote(self.offsets[k])
                       for k in range(self.num_actors)]
        self.counters = [self.r["Counter"].options(name=COUNTER_NAME.format(k), resources={slot_resource(k): PIN})
                         .remote() for k in range(self.num_slots)]
        got = ray.get([a.apply.remote(0) for a in self.actors], timeout=timeout_s)
        if got != self.offsets:
            raise RuntimeError(f"actor warm-up returned {got}, expected {self.offsets}")
        self.counter_warmup = [tuple(v) for v in ray.get([c.step.remote(0) for c in self.counters],
                                                          timeout=timeout_s)]
        if [(s, n) for s, _, n in self.counter_warmup] != [(0, 1)] * self.num_slots:
            raise RuntimeError(f"counter warm-up returned {self.counter_warmup}")
        # Warm the task path on every node too, so the first measured items do not include worker start-up.
        ray.get([self.r["square"].options(resources={slot_resource(k): PIN}).remote(i)
                 for k in range(self.num_slots) for i in range(2)], timeout=timeout_s)

    # ---- submission ------------------------------------------------------------------------------

    def request_probe(self, fault_index: int, what: str, slot: int | None) -> None:
        """Ask for a probe item (thread-safe): submitted by the next :meth:`fill`."""
        self.probes.put(ProbeRequest(fault_index, what, slot))

    def inflight(self) -> int:
        return len(self.pending) + len(self.deferred)

    def fill(self) -> int:
        """Submit probes, due second steps, periodic items, then items until ``max_inflight`` are
        pending; returns how many were submitted."""
        n = 0
        while True:
            try:
                req = self.probes.get_nowait()
            except queue.Empty:
                break
            self.submit("probe", probe=req)
            n += 1
        self._run_deferred()
        now = self.clock()
        if self.new_actor_interval_s > 0 and now - self._last_new_actor >= self.new_actor_interval_s:
            self._last_new_actor = now
            self.submit("new_actor")
            n += 1
        if self.pg_interval_s > 0 and now - self._last_pg >= self.pg_interval_s:
            self._last_pg = now
            self.submit("pg")
            n += 1
        while self.inflight() < self.max_inflight:
            self.submit(next(self._kinds))
            n += 1
        return n

    def submit(self, kind: str, probe: ProbeRequest | None = None) -> Item:
        item = Item(next(self._ids), kind, None, self.clock())
        self.items.append(item)
        try:
            ref = self._submit(item, probe)
        except Exception as e:  # noqa: BLE001 - a failed submission is a lost item, not a crash
            self._lose(item, f"submit: {type(e).__name__}: {e}")
            return item
        if ref is not None:
            self._track(item, ref)
        return item

    def _track(self, item: Item, ref: Any) -> None:
        item.ref = ref
        item.task_ids.append(ref.task_id().hex())
        self.pending[ref] = item

    def _lose(self, item: Item, error: str) -> None:
        item.finished = self.clock()
        item.error = error
        self._end(item)

    def _end(self, item: Item) -> None:
        item.ref = item.handle = None
        item.keep = []
        if item.cleanup is not None:
            cleanup, item.cleanup = item.cleanup, None
            try:
                cleanup()
            except Exception as e:  # noqa: BLE001 - recorded; the resource check shows what it left
                item.detail["cleanup_error"] = f"{type(e).__name__}: {e}"

    def _slot(self) -> int:
        return self.rng.randrange(self.num_slots)

    def _two_slots(self) -> tuple[int, int]:
        if self.num_slots == 1:
            return 0, 0
        a, b = self.rng.sample(range(self.num_slots), 2)
        return a, b

    def _pinned(self, fn: Any, slot: int) -> Any:
        return fn.options(resources={slot_resource(slot): PIN})

    def _big_array(self, item: Item) -> tuple[int, int]:
        seed, n = self.rng.randrange(2**63), self.rng.randrange(*self.big_array_elems)
        item.expected = sha256_of(make_array_here(seed, n))
        item.detail["nbytes"] = n * 8
        return seed, n

    def _submit(self, item: Item, probe: ProbeRequest | None) -> Any:
        rng, r = self.rng, self.r
        kind = item.kind
        if kind == "probe":
            assert probe is not None
            item.detail.update(probe_for=probe.fault_index, probe=probe.what)
            if probe.what == "slot_task" and probe.slot is not None:
                i = rng.randrange(1_000_000)
                item.expected, item.slots = i * i, (probe.slot,)
                return self._pinned(r["square"], probe.slot).remote(i)
            offset, x = rng.randrange(1_000_000), rng.randrange(1_000_000)
            item.expected = 2 * x + offset
            item.handle = r["Affine"].remote(offset)
            item.detail["actor_id"] = item.handle._actor_id.hex()
            return item.handle.apply.remote(x)
        if kind in ("task", "pinned", "spread"):
            i = rng.randrange(1_000_000)
            item.expected = i * i
            if kind == "pinned":
                item.slots = (self._slot(),)
                return self._pinned(r["square"], item.slots[0]).remote(i)
            if kind == "spread":
                return r["square"].options(scheduling_strategy="SPREAD").remote(i)
            return r["square"].remote(i)
        if kind == "chain":
            start = rng.randrange(1_000_000)
            item.expected = start + CHAIN_LENGTH
            ref = r["add_one"].remote(start)
            for _ in range(CHAIN_LENGTH - 1):
                item.task_ids.append(ref.task_id().hex())
                ref = r["add_one"].remote(ref)
            return ref
        if kind in ("actor", "named"):
            k = rng.randrange(self.num_actors)
            x = rng.randrange(1_000_000)
            item.expected = 2 * x + self.offsets[k]
            item.detail["actor"] = ACTOR_NAME.format(k)
            handle = self.actors[k] if kind == "actor" else ray.get_actor(ACTOR_NAME.format(k))
            return handle.apply.remote(x)
        if kind == "new_actor":
            offset, x = rng.randrange(1_000_000), rng.randrange(1_000_000)
            item.expected = 2 * x + offset
            item.handle = r["Affine"].remote(offset)
            item.detail["actor_id"] = item.handle._actor_id.hex()
            return item.handle.apply.remote(x)
        if kind == "counter":
            k = self._slot()
            self.counter_seq[k] += 1
            seq = self.counter_seq[k]
            item.expected, item.slots = seq, (k,)
            item.detail.update(counter=k, seq=seq, actor=COUNTER_NAME.format(k))
            item.reduce = functools.partial(_counter_reduce, item)
            return self.counters[k].step.remote(seq)
        if kind == "pg":
            return self._submit_pg(item)
        if kind in ("put", "array_task"):
            n = rng.randrange(*self.array_elems)
            arr = np.random.default_rng(rng.randrange(2**63)).integers(0, 2**62, size=n, dtype=np.int64)
            item.expected = sha256_of(arr)
            item.detail["nbytes"] = arr.nbytes
            if kind == "put":
                item.reduce = sha256_of
                return ray.put(arr)
            return r["digest"].remote(arr)
        if kind in ("xnode", "xnode_get", "lineage"):
            a, b = self._two_slots()
            seed, n = self._big_array(item)
            src = self._pinned(r["make_array"], a).remote(seed, n)
            item.task_ids.append(src.task_id().hex())
            if kind == "xnode_get":
                item.slots, item.reduce = (a,), sha256_of
                return src
            item.slots = (a, b)
            if kind == "xnode":
                return self._pinned(r["digest"], b).remote(src)
            delay = rng.uniform(*self.lineage_delay_s)
            item.keep = [src]
            item.detail["delay_s"] = round(delay, 3)
            self.deferred.append((self.clock() + delay, item, lambda: self._pinned(r["digest"], b).remote(src)))
            return None
        raise ValueError(f"unknown item kind {kind!r}")

    def _submit_pg(self, item: Item) -> Any:
        r = self.r
        n = min(self.num_slots, 3)
        self._pgs += 1
        strategy = "STRICT_SPREAD" if self._pgs % 2 else "SPREAD"
        values = [self.rng.randrange(1_000_000) for _ in range(n)]
        pg = placement_group([{NODE_RESOURCE: 1}] * n, strategy=strategy)
        item.cleanup = functools.partial(_end_pg, item, pg)
        item.detail.update(strategy=strategy, bundles=n, pg=pg.id.hex())
        strict = strategy == "STRICT_SPREAD"
        item.expected = ([v * v for v in values], n if strict else None)
        item.reduce = functools.partial(_pg_reduce, item, strict)
        parts = [r["where_square"].options(num_cpus=0, resources={NODE_RESOURCE: 1},
                                           scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote(v)
                 for i, v in enumerate(values)]
        item.task_ids += [p.task_id().hex() for p in parts]
        return r["combine"].remote(*parts)

    def _run_deferred(self) -> None:
        now = self.clock()
        due = [d for d in self.deferred if d[0] <= now]
        if not due:
            return
        self.deferred = [d for d in self.deferred if d[0] > now]
        for _, item, step in due:
            try:
                self._track(item, step())
            except Exception as e:  # noqa: BLE001 - a failed submission is a lost item
                self._lose(item, f"submit: {type(e).__name__}: {e}")

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
        self._end(item)

    def _expire(self) -> None:
        """Items pending longer than ``item_timeout_s`` are lost (never returned: a hang)."""
        now = self.clock()
        for ref, item in list(self.pending.items()):
            if now - item.submitted > self.item_timeout_s:
                del self.pending[ref]
                self._lose(item, f"timeout: no result after {self.item_timeout_s} s")

    def drain(self, timeout_s: float) -> None:
        """Collect until nothing is pending or ``timeout_s`` passes (then the rest are lost)."""
        deadline = self.clock() + timeout_s
        while (self.pending or self.deferred) and self.clock() < deadline:
            self._run_deferred()
            self.collect(min(0.2, max(0.0, deadline - self.clock())))
        for _, item, _step in self.deferred:
            self._lose(item, f"timeout: its second step was still waiting when the run ended ({timeout_s} s drain)")
        self.deferred = []
        for ref, item in list(self.pending.items()):
            del self.pending[ref]
            self._lose(item, f"timeout: still pending when the run ended ({timeout_s} s drain)")

    # ---- checks after the run --------------------------------------------------------------------

    def check_counters(self) -> list[str]:
        """Check each counter's call sequence; marks offending items wrong, returns the violations.

        Over the items of one counter in ``seq`` order (with the warm-up call, seq 0, first), for
        consecutive results ``a``, ``b`` that came back:

        - same incarnation: ``1 <= b.n - a.n <= b.seq - a.seq``, with equality when every call in
          between came back (calls ran once each, in submission order; a lost call in between may
          or may not have run);
        - different incarnation (the actor restarted): ``b``'s incarnation was never seen before
          (no call ran on an instance that had already been replaced).

        A call that ran twice (an in-flight call retried after a restart) shows up once, from the
        instance that answered, so at-least-once across restarts passes; twice on one instance,
        out of order, or skipped does not.
        """
        out = []
        for k in range(len(self.counters) or self.num_slots):
            items = sorted((i for i in self.items if i.kind == "counter" and i.detail.get("counter") == k),
                           key=lambda i: i.detail["seq"])
            lost = {i.detail["seq"] for i in items if i.status in ("lost", "pending")}
            prev: tuple[int, str, int] | None = self.counter_warmup[k] if k < len(self.counter_warmup) else None
            seen = {prev[1]} if prev else set()
            for item in items:
                if item.status != "ok" or "incarnation" not in item.detail:
                    continue
                cur = (item.detail["seq"], item.detail["incarnation"], item.detail["n"])
                why = None
                if prev is not None and cur[1] == prev[1]:
                    dn, ds = cur[2] - prev[2], cur[0] - prev[0]
                    gap = any(prev[0] < s < cur[0] for s in lost)
                    if not (1 <= dn <= ds) or (dn != ds and not gap):
                        why = (f"counter {k}: seq {prev[0]} -> {cur[0]} ran as call {prev[2]} -> {cur[2]} of "
                               f"incarnation {cur[1][:8]}")
                elif cur[1] in seen:
                    why = f"counter {k}: seq {cur[0]} ran on incarnation {cur[1][:8]}, which had been replaced"
                seen.add(cur[1])
                prev = cur
                if why:
                    item.violation = why
                    out.append(why)
            self.counter_incarnations[k] = len(seen)
        return out

    def close(self) -> None:
        """Drop every handle and ref this workload holds (before the cluster shuts down)."""
        for ref, item in list(self.pending.items()):
            del self.pending[ref]
            if not item.done:
                self._lose(item, "the run ended before its result came back")
        for _, item, _step in self.deferred:
            self._lose(item, "the run ended before its second step")
        self.deferred = []
        for item in self.items:
            item.ref = item.handle = None
            item.keep = []
        self.actors = []
        self.counters = []

    def end_actors(self) -> None:
        """Kill the pool actors and counters (their resources come back; nothing is lost: the run
        is over)."""
        for a in [*self.actors, *self.counters]:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead or unreachable: nothing to free
                pass
        self.actors = []
        self.counters = []


def _pg_reduce(item: Item, strict: bool, got: Any) -> tuple[list[int], int | None]:
    values, distinct, nodes = got
    item.detail["ran_on_nodes"] = [n[:8] for n in nodes]
    return list(values), distinct if strict else None


def _end_pg(item: Item, pg: Any) -> None:
    """Record where the group's bundles are (the placement-group table), then remove the group."""
    try:
        where = placement_group_table(pg).get("bundles_to_node_id", {})
        item.detail["bundle_nodes"] = [where[i][:8] for i in sorted(where)]
    finally:
        remove_placement_group(pg)


def _counter_reduce(item: Item, value: Any) -> int:
    seq, incarnation, n = value
    item.detail.update(incarnation=incarnation, n=n)
    return int(seq)
