"""The node's reference-counted object store (sans-I/O apart from unlinking /dev/shm files)."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from rayredis.exceptions import ObjectStoreFullError
from rayredis.raylet.object_store import PENDING, READY, ObjectStore, shm_path

A = b"a" * 20
B = b"b" * 20
C = b"c" * 20


@pytest.fixture
def prefix() -> Iterator[str]:
    p = f"rrunit_{os.getpid()}_{uuid.uuid4().hex[:8]}_"
    yield p
    for name in os.listdir("/dev/shm"):
        if name.startswith(p):
            os.unlink(os.path.join("/dev/shm", name))


@pytest.fixture
def store(prefix: str) -> ObjectStore:
    return ObjectStore(capacity=1000, shm_prefix=prefix)


def make_segment(name: str, size: int) -> str:
    with open(shm_path(name), "wb") as f:
        f.write(b"\0" * size)
    return name


# ---- expect / seal / refcounts --------------------------------------------------------------------


def test_expect_then_seal_inline(store: ObjectStore) -> None:
    e = store.expect(A)
    assert e.state == PENDING
    assert e.refcount == 1
    assert not store.is_ready(A)
    assert store.seal(A, b"hello", "", 5) is True
    assert store.is_ready(A)
    got = store.get(A)
    assert got is not None and got.state == READY and got.inline == b"hello"
    assert store.used == 5
    assert store.freed == []


def test_expect_accumulates_refs(store: ObjectStore) -> None:
    store.expect(A, refs=2)
    store.expect(A)
    entry = store.get(A)
    assert entry is not None and entry.refcount == 3


def test_refcount_to_zero_frees_sealed_object(store: ObjectStore) -> None:
    store.expect(A, refs=2)
    store.seal(A, b"xyz", "", 3)
    store.remove_ref(A)
    assert store.is_ready(A)
    assert store.freed == []
    store.add_ref(A)
    store.remove_ref(A)
    assert store.is_ready(A)
    store.remove_ref(A)
    assert not store.is_ready(A)
    assert store.get(A) is None
    assert store.freed == [A]
    assert store.used == 0


def test_ref_ops_on_unknown_objects_are_noops(store: ObjectStore) -> None:
    store.add_ref(A)
    store.remove_ref(A)
    store.pin(A)
    store.unpin(A)
    assert store.get(A) is None
    assert store.freed == []


def test_duplicate_seal_returns_false_and_keeps_first_value(store: ObjectStore) -> None:
    store.expect(A)
    assert store.seal(A, b"first", "", 5)
    assert store.seal(A, b"second", "", 6) is False
    entry = store.get(A)
    assert entry is not None and entry.inline == b"first"
    assert store.used == 5


def test_seal_of_unwanted_object_frees_immediately(store: ObjectStore) -> None:
    # Nobody ever expected it (or every reference was dropped before the result arrived).
    assert store.seal(A, b"late", "", 4) is True
    assert store.get(A) is None
    assert store.freed == [A]
    assert store.used == 0


def test_dropping_refs_of_pending_object_forgets_it_and_late_seal_frees(store: ObjectStore) -> None:
    store.expect(A)
    store.remove_ref(A)
    assert store.get(A) is None
    assert store.freed == []  # never sealed: no Redis entry to delete
    store.seal(A, b"late", "", 4)
    assert store.get(A) is None
    assert store.freed == [A]
    assert store.used == 0


def test_release_all_drops_a_connections_refs(store: ObjectStore) -> None:
    store.expect(A, refs=2)
    store.expect(B, refs=1)
    store.seal(A, b"1", "", 1)
    store.seal(B, b"2", "", 1)
    store.release_all(Counter({A: 2, B: 0}))
    assert store.get(A) is None
    assert store.is_ready(B)
    assert store.freed == [A]


# ---- pins -----------------------------------------------------------------------------------------


def test_pin_keeps_object_after_last_ref(store: ObjectStore) -> None:
    store.expect(A)
    store.seal(A, b"arg", "", 3)
    store.pin(A)  # a queued task uses it as an argument
    store.remove_ref(A)
    assert store.is_ready(A)
    store.unpin(A)
    assert store.get(A) is None
    assert store.freed == [A]


def test_pin_of_pending_object_keeps_entry(store: ObjectStore) -> None:
    store.expect(A)
    store.pin(A)
    store.remove_ref(A)
    assert store.get(A) is not None
    store.seal(A, b"v", "", 1)
    assert store.is_ready(A)
    store.unpin(A)
    assert store.freed == [A]


def test_contained_refs_pinned_by_outer_object(store: ObjectStore) -> None:
    store.expect(A)
    store.seal(A, b"inner", "", 5)
    store.expect(B)
    store.seal(B, b"outer", "", 5, contained=[A, C])  # C is unknown here: not pinned
    outer = store.get(B)
    assert outer is not None and outer.contained == [A]
    store.remove_ref(A)
    assert store.is_ready(A)  # still pinned by B
    store.remove_ref(B)
    assert store.get(B) is None
    assert store.get(A) is None
    assert store.freed == [B, A]
    assert store.used == 0


def test_contained_ref_pinned_while_pending(store: ObjectStore) -> None:
    store.expect(A)  # inner object not produced yet
    store.expect(B)
    store.seal(B, b"outer", "", 5, contained=[A])
    store.remove_ref(A)
    entry = store.get(A)
    assert entry is not None and entry.pins == 1
    store.seal(A, b"inner", "", 5)
    assert store.is_ready(A)
    store.remove_ref(B)
    assert store.freed == [B, A]


def test_nested_containment_frees_transitively(store: ObjectStore) -> None:
    for oid in (A, B, C):
        store.expect(oid)
    store.seal(A, b"a", "", 1)
    store.seal(B, b"b", "", 1, contained=[A])
    store.seal(C, b"c", "", 1, contained=[B])
    store.remove_ref(A)
    store.remove_ref(B)
    assert store.is_ready(A) and store.is_ready(B)
    store.remove_ref(C)
    assert store.freed == [C, B, A]
    assert store.entries == {}


# ---- shared memory: reserve / seal / abort / free -----------------------------------------------------


def test_reserve_returns_prefixed_name_and_counts_usage(store: ObjectStore, prefix: str) -> None:
    name = store.reserve(A, 400)
    assert name == prefix + A.hex()
    assert store.used == 400
    entry = store.get(A)
    assert entry is not None and entry.reserved == 400


def test_reserve_larger_than_capacity_names_the_fix(store: ObjectStore) -> None:
    with pytest.raises(ObjectStoreFullError) as ei:
        store.reserve(A, 1001)
    msg = str(ei.value)
    assert "1001" in msg and "1000" in msg
    assert "object_store_memory" in msg
    assert store.used == 0
    assert store.get(A) is None


def test_reserve_when_full_names_the_fix(store: ObjectStore) -> None:
    store.expect(A)
    store.reserve(A, 700)
    with pytest.raises(ObjectStoreFullError) as ei:
        store.reserve(B, 400)
    msg = str(ei.value)
    assert "full" in msg
    assert "700 of 1000" in msg
    assert "400" in msg
    assert "del ref" in msg or "object_store_memory" in msg
    assert store.used == 700
    # Exactly filling the store is allowed.
    store.reserve(B, 300)
    assert store.used == 1000


def test_reserve_seal_free_unlinks_segment(store: ObjectStore) -> None:
    store.expect(A)
    name = make_segment(store.reserve(A, 100), 100)
    assert store.seal(A, None, name, 100)
    assert store.used == 100
    entry = store.get(A)
    assert entry is not None and entry.reserved == 0 and entry.shm_name == name
    assert os.path.exists(shm_path(name))
    store.remove_ref(A)
    assert not os.path.exists(shm_path(name))
    assert store.used == 0
    assert store.freed == [A]


def test_seal_of_unreserved_segment_counts_size(store: ObjectStore, prefix: str) -> None:
    # A segment created without a reserve (e.g. copied from another node) still counts.
    store.expect(A)
    name = make_segment(prefix + "copy", 50)
    store.seal(A, None, name, 50)
    assert store.used == 50
    store.remove_ref(A)
    assert store.used == 0
    assert not os.path.exists(shm_path(name))


def test_duplicate_seal_unlinks_the_duplicate_segment(store: ObjectStore, prefix: str) -> None:
    store.expect(A)
    first = make_segment(prefix + "first", 10)
    second = make_segment(prefix + "second", 10)
    assert store.seal(A, None, first, 10)
    assert store.seal(A, None, second, 10) is False
    assert os.path.exists(shm_path(first))
    assert not os.path.exists(shm_path(second))
    # The same name again must not unlink the live segment.
    assert store.seal(A, None, first, 10) is False
    assert os.path.exists(shm_path(first))


def test_abort_returns_reservation_and_unlinks(store: ObjectStore) -> None:
    store.expect(A)
    name = make_segment(store.reserve(A, 600), 600)
    store.abort(A, name)
    assert store.used == 0
    assert not os.path.exists(shm_path(name))
    entry = store.get(A)
    assert entry is not None and entry.state == PENDING and entry.reserved == 0
    # The retried attempt can reserve again and seal.
    name2 = make_segment(store.reserve(A, 600), 600)
    assert store.seal(A, None, name2, 600)
    assert store.used == 600


def test_abort_of_missing_file_is_harmless(store: ObjectStore, prefix: str) -> None:
    store.abort(A, prefix + "never-created")
    assert store.used == 0


def test_seal_of_unwanted_reserved_segment_frees_it(store: ObjectStore) -> None:
    # The reserving writer has no reference (all refs dropped while the task ran).
    name = make_segment(store.reserve(A, 100), 100)
    store.seal(A, None, name, 100)
    assert store.get(A) is None
    assert store.freed == [A]
    assert store.used == 0
    assert not os.path.exists(shm_path(name))


def test_freed_memory_is_reusable(store: ObjectStore) -> None:
    store.expect(A)
    store.seal(A, None, make_segment(store.reserve(A, 900), 900), 900)
    with pytest.raises(ObjectStoreFullError):
        store.reserve(B, 200)
    store.remove_ref(A)
    store.reserve(B, 200)
    assert store.used == 200


def test_close_unlinks_everything(store: ObjectStore) -> None:
    store.expect(A)
    store.expect(B)
    a = make_segment(store.reserve(A, 10), 10)
    store.seal(A, None, a, 10)
    store.seal(B, b"inline", "", 6)
    store.close()
    assert not os.path.exists(shm_path(a))
    assert store.entries == {}
    assert store.used == 0


# ---- bugs (see the report): writing an object again after it was sealed ---------------------------------


def test_reserve_for_sealed_object_gets_a_distinct_segment(store: ObjectStore) -> None:
    # A second writer of the same object (a duplicate/retried result) gets the *same* segment name as
    # the sealed copy: its O_CREAT|O_TRUNC write clobbers memory readers have mapped, and an abort of
    # that write unlinks the live object's segment.
    store.expect(A)
    live = make_segment(store.reserve(A, 100), 100)
    store.seal(A, None, live, 100)
    dup = store.reserve(A, 100)
    assert dup != live, "a reservation for an already-sealed object must not reuse the live segment"


def test_duplicate_result_reservation_is_returned(store: ObjectStore, prefix: str) -> None:
    store.expect(A)
    store.seal(A, None, make_segment(store.reserve(A, 100), 100), 100)
    assert store.used == 100
    store.reserve(A, 100)  # a duplicate writer reserves room ...
    dup = make_segment(prefix + "dup", 100)
    assert store.seal(A, None, dup, 100) is False  # ... and its seal is refused as a duplicate
    assert not os.path.exists(shm_path(dup))
    assert store.used == 100, "the duplicate's reservation should be given back on the refused seal"
    store.remove_ref(A)
    assert store.used == 0, "freeing the object should leave no bytes accounted"
