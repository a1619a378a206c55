"""SpillPump: creates and restores wait while spill and restore copies run elsewhere (a deferred
runner stands for the raylet's thread), over a real store and real files."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rayredis.raylet.object_store import ObjectStore, shm_path
from rayredis.raylet.spill import Spiller
from rayredis.raylet.spill_pump import Done, SpillPump, inline_runner

A, B, C = b"a" * 20, b"b" * 20, b"c" * 20


class Deferred:
    """A runner whose copies run only when the test says (one at a time, in order)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[[], Any], Done]] = []

    def __call__(self, fn: Callable[[], Any], done: Done) -> None:
        self.jobs.append((fn, done))

    def run_all(self) -> None:
        while self.jobs:
            inline_runner(*self.jobs.pop(0))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ObjectStore]:
    prefix = f"rrpump_{os.getpid()}_{uuid.uuid4().hex[:8]}_"
    s = ObjectStore(capacity=1000, shm_prefix=prefix, spiller=Spiller(str(tmp_path / "spill"), "/dev/shm"))
    yield s
    s.close()
    for name in os.listdir("/dev/shm"):
        if name.startswith(prefix):
            os.unlink(os.path.join("/dev/shm", name))


def put(store: ObjectStore, oid: bytes, size: int) -> None:
    store.expect(oid)
    name = store.reserve(oid, size)
    with open(shm_path(name), "wb") as f:
        f.write(oid[:1] * size)
    assert store.seal(oid, None, name, size)


def test_a_create_waits_for_the_spill_copy_and_a_get_for_the_restore(store: ObjectStore) -> None:
    run = Deferred()
    pump = SpillPump(store, run)
    put(store, A, 600)
    outcomes: list[bool] = []
    pump.need_room(600, B, outcomes.append)
    a = store.get(A)
    assert a is not None and a.busy and a.shm_name and not outcomes  # copying: still readable in memory
    assert store.victims(600, B) == []  # (not chosen twice)
    run.run_all()
    assert outcomes == [True] and a.spilled and not a.shm_name and not a.busy and store.used == 0
    put(store, B, 600)
    restored: list[str] = []
    pump.restore(A, lambda: restored.append("A"))
    pump.restore(A, lambda: restored.append("again"))  # one copy, both told
    run.run_all()  # B is spilled, then A copied back
    b = store.get(B)
    assert restored == ["A", "again"] and b is not None and b.spilled
    assert a.shm_name and not a.spilled and store.used == 600
    with open(shm_path(a.shm_name), "rb") as f:
        assert f.read() == b"a" * 600


def test_an_object_freed_during_its_spill_leaves_no_file(store: ObjectStore, tmp_path: Path) -> None:
    run = Deferred()
    pump = SpillPump(store, run)
    put(store, A, 600)
    outcomes: list[bool] = []
    pump.need_room(600, B, outcomes.append)
    store.remove_ref(A)  # freed while its copy runs
    run.run_all()
    assert outcomes == [True] and store.get(A) is None and store.used == 0
    assert os.listdir(tmp_path / "spill") == []


def test_a_create_that_spilling_cannot_fit_fails(store: ObjectStore) -> None:
    pump = SpillPump(store, inline_runner)
    put(store, A, 600)
    store.pin(A)  # in use: not a victim
    outcomes: list[bool] = []
    pump.need_room(600, B, outcomes.append)
    assert outcomes == [False]
    store.unpin(A)
