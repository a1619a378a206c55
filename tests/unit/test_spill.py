"""Object spilling: the victim policy (pure) and the store spilling to a directory and restoring on read."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayredis.config import Config
from rayredis.exceptions import ObjectStoreFullError
from rayredis.raylet.object_store import READY, Entry, ObjectStore, shm_path
from rayredis.raylet.spill import Spiller, choose_victims, spillable, spiller_for

A = b"a" * 20
B = b"b" * 20
C = b"c" * 20
D = b"d" * 20


def ready(size: int, last_use: int, **kw: object) -> Entry:
    e = Entry(state=READY, shm_name="seg", size=size, refcount=1, last_use=last_use)
    for k, v in kw.items():
        setattr(e, k, v)
    return e


# ---- policy ---------------------------------------------------------------------------------------


def test_victims_are_least_recently_used_first_and_only_as_many_as_needed() -> None:
    entries = {A: ready(100, 3), B: ready(100, 1), C: ready(100, 2)}
    assert choose_victims(entries.items(), 150, READY) == [B, C]
    assert choose_victims(entries.items(), 100, READY) == [B]


def test_objects_in_use_are_not_victims() -> None:
    entries = {
        A: ready(100, 1, pins=1),  # a queued task's argument
        B: ready(100, 2, state=0),  # not sealed yet
        C: ready(100, 3, held_at=b"n"),  # a secondary copy (evicted instead)
        D: ready(100, 4, inline=b"x"),  # inline
    }
    entries[b"e" * 20] = ready(100, 5)
    entries[b"e" * 20].holders[b"n"] += 1  # another node holds it
    assert not any(spillable(e, READY) for e in entries.values())
    assert choose_victims(entries.items(), 1, READY) == []


def test_not_enough_spillable_bytes_means_no_victims() -> None:
    entries = {A: ready(100, 1), B: ready(100, 2, pins=1)}
    assert choose_victims(entries.items(), 150, READY) == []
    assert choose_victims(entries.items(), 100, READY, keep=A) == []


def test_spiller_for_follows_the_config(tmp_path: Path) -> None:
    assert spiller_for(Config(object_spilling=False), str(tmp_path)) is None
    assert spiller_for(Config(), str(tmp_path)) is not None  # on by default, as in Ray
    default = spiller_for(Config(object_spilling=True), str(tmp_path))
    assert default is not None and default.directory == str(tmp_path / "spill") and default.owned
    custom = spiller_for(Config(object_spilling=True, object_spilling_dir=str(tmp_path / "x")), str(tmp_path))
    assert custom is not None and custom.directory == str(tmp_path / "x") and not custom.owned


# ---- the store ------------------------------------------------------------------------------------


@pytest.fixture
def prefix() -> Iterator[str]:
    p = f"rrspill_{os.getpid()}_{uuid.uuid4().hex[:8]}_"
    yield p
    for name in os.listdir("/dev/shm"):
        if name.startswith(p):
            os.unlink(os.path.join("/dev/shm", name))


@pytest.fixture
def store(prefix: str, tmp_path: Path) -> ObjectStore:
    return ObjectStore(capacity=1000, shm_prefix=prefix,
                       spiller=Spiller(str(tmp_path / "spill"), "/dev/shm", owned=True))


def put(store: ObjectStore, oid: bytes, size: int) -> None:
    store.expect(oid)
    name = store.reserve(oid, size)
    with open(shm_path(name), "wb") as f:
        f.write(oid[:1] * size)
    assert store.seal(oid, None, name, size)


def test_full_store_spills_the_oldest_unused_object_and_restores_it_on_read(store: ObjectStore) -> None:
    put(store, A, 600)
    put(store, B, 600)  # A is spilled to make room
    a = store.get(A)
    assert a is not None and a.spilled and not a.shm_name and os.path.exists(a.spilled)
    assert not os.path.exists(shm_path(store.shm_prefix + A.hex()))
    assert store.used == 600
    assert store.ensure_local(A) == ""  # B is spilled in turn
    assert a.shm_name and not a.spilled
    with open(shm_path(a.shm_name), "rb") as f:
        assert f.read() == b"a" * 600
    b = store.get(B)
    assert b is not None and b.spilled
    assert store.used == 600
    assert store.spiller is not None and store.spiller.spilled_bytes == 1200
    assert store.spiller.restored_bytes == 600


def test_pinned_objects_are_not_spilled_and_the_put_fails(store: ObjectStore) -> None:
    put(store, A, 600)
    store.pin(A)  # a queued task's argument
    store.expect(B)
    with pytest.raises(ObjectStoreFullError):
        store.reserve(B, 600)
    store.remove_ref(B)
    store.unpin(A)
    put(store, C, 600)
    a = store.get(A)
    assert a is not None and a.spilled


def test_a_spilled_object_that_cannot_be_restored_says_why(store: ObjectStore) -> None:
    put(store, A, 600)
    put(store, B, 600)
    store.pin(B)
    assert "cannot be restored" in store.ensure_local(A)
    a = store.get(A)
    assert a is not None and a.spilled and os.path.exists(a.spilled)


def test_an_object_larger_than_the_store_is_never_spilled_for(store: ObjectStore) -> None:
    put(store, A, 600)
    store.expect(B)
    with pytest.raises(ObjectStoreFullError, match="larger than"):
        store.reserve(B, 1001)
    a = store.get(A)
    assert a is not None and a.shm_name and not a.spilled


def test_freeing_a_spilled_object_deletes_its_file(store: ObjectStore) -> None:
    put(store, A, 600)
    put(store, B, 600)
    a = store.get(A)
    assert a is not None
    path = a.spilled
    store.remove_ref(A)
    assert not os.path.exists(path)
    assert store.get(A) is None and A in store.freed


def test_close_deletes_spill_files_and_the_owned_directory(store: ObjectStore) -> None:
    put(store, A, 600)
    put(store, B, 600)
    assert store.spiller is not None
    directory = store.spiller.directory
    assert os.listdir(directory)
    store.close()
    assert not os.path.exists(directory)


def test_without_a_spiller_a_full_store_fails(prefix: str) -> None:
    store = ObjectStore(capacity=1000, shm_prefix=prefix)
    put(store, A, 600)
    store.expect(B)
    with pytest.raises(ObjectStoreFullError, match="full"):
        store.reserve(B, 600)


def test_a_new_store_adopts_what_a_crashed_raylet_left_until_dropped(prefix: str, tmp_path: Path) -> None:
    d = tmp_path / "spill"
    d.mkdir()
    (d / f"{prefix}{A.hex()}").write_bytes(b"spilled")
    (d / f"{prefix}junk").write_bytes(b"z")
    (d / "other_node_file").write_bytes(b"y")
    with open(shm_path(f"{prefix}{B.hex()}"), "wb") as f:
        f.write(b"in memory")
    store = ObjectStore(capacity=1000, shm_prefix=prefix, spiller=Spiller(str(d), "/dev/shm", owned=True))
    os.unlink(shm_path(f"{prefix}{B.hex()}"))  # (what the restart's recovery does to the leftover names)
    assert sorted(os.listdir(d)) == sorted([f"{prefix}{A.hex()}", "other_node_file"])
    for oid in (A, B):
        store.expect(oid)  # the driver's reclaiming put holds a ref
    assert store.reclaim(A, []) == len(b"spilled") and store.reclaim(B, []) == len(b"in memory")
    a, b = store.get(A), store.get(B)
    assert a is not None and a.state == READY and a.spilled and store.ensure_local(A) == ""
    assert b is not None and b.state == READY and b.shm_name
    with open(shm_path(a.shm_name), "rb") as f:
        assert f.read() == b"spilled"
    with open(shm_path(b.shm_name), "rb") as f:
        assert f.read() == b"in memory"
    assert store.reclaim(C, []) == -1  # nothing left for it
    store.close()


def test_what_nobody_reclaims_is_dropped(prefix: str, tmp_path: Path) -> None:
    d = tmp_path / "spill"
    d.mkdir()
    (d / f"{prefix}{A.hex()}").write_bytes(b"spilled")
    store = ObjectStore(capacity=1000, shm_prefix=prefix, spiller=Spiller(str(d), "/dev/shm", owned=True))
    store.drop_adopted()
    assert os.listdir(d) == []
    store.expect(A)
    assert store.reclaim(A, []) == -1
    store.close()

