"""Objects over the connection without processes: the /dev/shm probe decision, the raylet's
``connection_objects`` functions, the NodeManager hooks and the client's size-bounded batching."""

from __future__ import annotations

import os
import queue
import stat
from pathlib import Path
from typing import Any

import pytest

from rayredis import exceptions, serialization
from rayredis._private import auth
from rayredis.config import Config
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol.limits import MAX_MESSAGE_BYTES, MAX_OBJECT_OVER_CONNECTION
from rayredis.raylet import connection_objects as co
from rayredis.raylet import local_transport
from rayredis.raylet.connection import Connection
from rayredis.raylet.object_store import ObjectStore, shm_path
from rayredis.worker import raylet_client, shm_probe
from tests.unit.test_node_manager import Node, error_of

# ---- the probe: client side, raylet side, and the decision -----------------------------------------


def _register(probe: shm_probe.Probe, is_driver: bool = True) -> pb.Register:
    return pb.Register(is_driver=is_driver, shm_probe_name=probe.name, shm_probe_data=probe.data)


def test_auto_writes_a_private_probe_that_remove_deletes(tmp_path: Path) -> None:
    probe = shm_probe.create("auto", str(tmp_path))
    path = tmp_path / probe.name
    assert probe.name.startswith(f"rayredis_probe_{os.getpid()}_") and len(probe.data) == 16
    assert path.read_bytes() == probe.data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert shm_probe.create("auto", str(tmp_path)).data != probe.data  # random content
    probe.remove()
    probe.remove()  # idempotent
    assert not path.exists()


def test_modes_and_an_unusable_shm_dir(tmp_path: Path) -> None:
    assert shm_probe.create("never", str(tmp_path)) == shm_probe.Probe()  # asks nothing
    always = shm_probe.create("always", str(tmp_path))
    assert always.data and not always.name  # asks, with nothing to read back
    for unusable in (tmp_path / "missing", tmp_path / "a-file"):
        (tmp_path / "a-file").write_text("not a directory")
        p = shm_probe.create("auto", str(unusable))
        assert p.data and not p.name
    assert sorted(os.listdir(tmp_path)) == ["a-file"]
    with pytest.raises(ValueError, match="RAYREDIS_OBJECTS_OVER_CONNECTION='sometimes'.*auto, always, never"):
        shm_probe.create("sometimes", str(tmp_path))


def test_decision_shared_shm_keeps_shared_memory(tmp_path: Path) -> None:
    probe = shm_probe.create("auto", str(tmp_path))
    try:
        assert co.over_connection(_register(probe), str(tmp_path)) is False
    finally:
        probe.remove()


def test_decision_another_shm_or_no_probe_goes_over_the_connection(tmp_path: Path) -> None:
    mine, raylets = tmp_path / "driver", tmp_path / "raylet"
    mine.mkdir()
    raylets.mkdir()
    probe = shm_probe.create("auto", str(mine))
    try:
        assert co.over_connection(_register(probe), str(raylets)) is True  # a different /dev/shm
    finally:
        probe.remove()
    assert co.over_connection(_register(shm_probe.create("always")), str(raylets)) is True
    assert co.over_connection(_register(shm_probe.create("auto", str(tmp_path / "none"))), str(raylets)) is True


def test_decision_workers_and_never_keep_shared_memory(tmp_path: Path) -> None:
    assert co.over_connection(_register(shm_probe.Probe()), str(tmp_path)) is False  # never / old clients
    worker = _register(shm_probe.create("always"), is_driver=False)
    assert co.over_connection(worker, str(tmp_path)) is False


def test_probe_read_back_rejects_wrong_content_paths_symlinks_and_fifos(tmp_path: Path) -> None:
    (tmp_path / "p").write_bytes(b"secret-content")
    assert co.probe_readable("p", b"secret-content", str(tmp_path))
    assert not co.probe_readable("p", b"secret", str(tmp_path))  # a prefix is not the content
    assert not co.probe_readable("p", b"other-content!", str(tmp_path))
    sub = tmp_path / "sub"
    sub.mkdir()
    assert not co.probe_readable("../p", b"secret-content", str(sub))
    assert not co.probe_readable("", b"secret-content", str(tmp_path))
    assert not co.probe_readable("p", b"", str(tmp_path))
    assert not co.probe_readable("p", b"x" * (co.MAX_PROBE_BYTES + 1), str(tmp_path))
    (tmp_path / "link").symlink_to(tmp_path / "p")
    assert not co.probe_readable("link", b"secret-content", str(tmp_path))
    os.mkfifo(tmp_path / "fifo")
    assert not co.probe_readable("fifo", b"secret-content", str(tmp_path))  # and does not block


# ---- puts -------------------------------------------------------------------------------------------


@pytest.fixture
def store() -> Any:
    s = ObjectStore(1 << 20, f"rr_unit_co_{os.getpid()}_")
    yield s
    s.close()
    leaked = [n for n in os.listdir("/dev/shm") if n.startswith(s.shm_prefix)]
    for n in leaked:
        os.unlink(shm_path(n))
    assert leaked == []


def _oid(n: int) -> bytes:
    return bytes([n]) * 20


def _error(p: pb.PutObject) -> BaseException:
    assert serialization.blob_kind(p.inline_data) == serialization.KIND_ERROR and not p.shm_name
    err = serialization.deserialize(p.inline_data)
    assert isinstance(err, BaseException)
    return err


def test_received_put_writes_the_reserved_segment(store: ObjectStore) -> None:
    data = os.urandom(4096)
    store.expect(_oid(1))
    name = store.reserve(_oid(1), len(data))
    p = pb.PutObject(object_id=_oid(1), shm_name=name, size=len(data), data=data)
    assert co.received_put(store, p) is p
    assert Path(shm_path(name)).read_bytes() == data
    assert stat.S_IMODE(os.stat(shm_path(name)).st_mode) == 0o600
    assert store.seal(_oid(1), None, name, len(data)) and store.used == len(data)


def test_received_put_without_a_reservation_or_with_a_foreign_name_is_an_error(
        store: ObjectStore, tmp_path: Path) -> None:
    data = b"x" * 100
    err = _error(co.received_put(store, pb.PutObject(object_id=_oid(2), shm_name=store.shm_prefix + _oid(2).hex(),
                                                     size=100, data=data)))
    assert isinstance(err, exceptions.RaySystemError) and "CreateRequest" in str(err)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    store.reserve(_oid(3), 100)
    foreign = os.path.relpath(victim, "/dev/shm")
    assert isinstance(_error(co.received_put(store, pb.PutObject(object_id=_oid(3), shm_name=foreign, size=100,
                                                                 data=data))), exceptions.RaySystemError)
    assert victim.read_text() == "keep me"  # never written, never unlinked
    assert not os.path.exists(shm_path(store.shm_prefix + _oid(2).hex()))


def test_received_put_with_a_wrong_size_returns_the_reservation(store: ObjectStore) -> None:
    name = store.reserve(_oid(4), 100)
    store.expect(_oid(4))
    err = _error(co.received_put(store, pb.PutObject(object_id=_oid(4), shm_name=name, size=100, data=b"x" * 99)))
    assert "size" in str(err)
    assert store.used == 0 and not os.path.exists(shm_path(name))


# ---- gets and outgoing batches ---------------------------------------------------------------------------


def _conn(over: bool) -> Connection:
    c = Connection(os.urandom(16), 1, True, 1, "")
    c.objects_over_connection = over
    return c


def test_readable_by_sends_segment_bytes_only_over_the_connection(store: ObjectStore) -> None:
    data = os.urandom(1000)
    store.expect(_oid(5))
    name = store.reserve(_oid(5), len(data))
    co.received_put(store, pb.PutObject(object_id=_oid(5), shm_name=name, size=len(data), data=data))
    store.seal(_oid(5), None, name, len(data))
    shm = pb.ObjectData(object_id=_oid(5), shm_name=name, size=len(data))
    assert co.readable_by(_conn(False), shm) is shm
    got = co.readable_by(_conn(True), shm)
    assert got.data == data and got.size == len(data) and not got.shm_name
    inline = pb.ObjectData(object_id=_oid(6), inline_data=b"small", size=5)
    assert co.readable_by(_conn(True), inline) is inline
    gone = pb.ObjectData(object_id=_oid(7), shm_name=store.shm_prefix + "gone", size=10)
    assert co.readable_by(_conn(True), gone).missing


def test_an_object_too_large_for_one_message_becomes_a_clear_error() -> None:
    huge = pb.ObjectData(object_id=_oid(8), shm_name="never-read", size=MAX_OBJECT_OVER_CONNECTION + 1)
    got = co.readable_by(_conn(True), huge)
    err = error_of(got)
    assert isinstance(err, exceptions.RaySystemError)
    assert str(MAX_OBJECT_OVER_CONNECTION) in str(err) and "Run the driver on a node of the cluster" in str(err)


def _reply(req: int, size: int) -> pb.GetReply:
    return pb.GetReply(req_id=req, objects=[pb.ObjectData(object_id=_oid(req), data=b"d" * size, size=size)])


def test_outgoing_splits_only_large_batches_to_clients_over_the_connection() -> None:
    batch = pb.RayletBatch(get_replies=[_reply(i, 40) for i in range(1, 6)],
                           wait_replies=[pb.WaitReply(req_id=9, ready=[b"r"])])
    assert co.outgoing(_conn(False), batch, limit=100) == [batch]
    assert co.outgoing(_conn(True), batch, limit=1000) == [batch]
    expected = pb.RayletBatch()
    expected.CopyFrom(batch)
    parts = co.outgoing(_conn(True), batch, limit=100)
    assert [[r.req_id for r in p.get_replies] for p in parts] == [[1, 2], [3, 4], [5]]
    assert [len(p.wait_replies) for p in parts] == [1, 0, 0]  # the rest rides in the first part
    assert [r for p in parts for r in p.get_replies] == list(expected.get_replies)
    single = co.outgoing(_conn(True), pb.RayletBatch(get_replies=[_reply(1, 500)]), limit=100)
    assert len(single) == 1  # one reply that alone exceeds the limit still goes (the client bounds it)


def test_limits_are_consistent_across_transports() -> None:
    for options in (auth.GRPC_OPTIONS, auth.SERVER_OPTIONS):
        assert dict(options)["grpc.max_send_message_length"] == MAX_MESSAGE_BYTES
        assert dict(options)["grpc.max_receive_message_length"] == MAX_MESSAGE_BYTES
    assert local_transport.MAX_FRAME == MAX_MESSAGE_BYTES
    assert 0 < MAX_OBJECT_OVER_CONNECTION < MAX_MESSAGE_BYTES


# ---- through the NodeManager -------------------------------------------------------------------


def test_node_manager_put_and_get_over_the_connection() -> None:
    node = Node()
    driver = node.driver()
    driver.objects_over_connection = True
    data = serialization.serialize(os.urandom(300_000)).to_bytes()
    oid = _oid(9)
    node.send(driver, creates=[pb.CreateRequest(req_id=1, object_id=oid, size=len(data))])
    name = driver.take().create_replies[0].shm_name
    try:
        node.send(driver, puts=[pb.PutObject(object_id=oid, shm_name=name, size=len(data), data=data)])
        assert node.nm.objects.is_ready(oid) and node.nm.objects.get(oid).shm_name == name
        node.send(driver, gets=[pb.GetRequest(req_id=2, object_ids=[oid])])
        (d,) = driver.take().get_replies[0].objects
        assert d.data == data and not d.shm_name
        local = node.driver()  # a driver that maps /dev/shm gets the segment's name
        node.send(local, gets=[pb.GetRequest(req_id=3, object_ids=[oid])])
        assert local.take().get_replies[0].objects[0].shm_name == name
    finally:
        node.nm.objects.close()
    assert not os.path.exists(shm_path(name))


def test_node_manager_failed_put_over_the_connection_seals_an_error() -> None:
    node = Node()
    driver = node.driver()
    driver.objects_over_connection = True
    oid = _oid(10)
    node.send(driver, puts=[pb.PutObject(object_id=oid, shm_name=node.nm.objects.shm_prefix + oid.hex(),
                                         size=3, data=b"abc")])  # no CreateRequest first
    node.send(driver, gets=[pb.GetRequest(req_id=1, object_ids=[oid])])
    assert isinstance(error_of(driver.take().get_replies[0].objects[0]), exceptions.RaySystemError)
    assert node.nm.validate() == []


# ---- the client's batching -------------------------------------------------------------------------


def test_client_batches_keep_objects_within_one_message() -> None:
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    big = MAX_OBJECT_OVER_CONNECTION // 2 + 1
    for i in range(3):
        q.put(("puts", pb.PutObject(object_id=_oid(i), shm_name="s", size=big)))  # sizes only: no real data
        q.put(("add_refs", _oid(i)))
    q.put(raylet_client._CLOSE)
    batches = list(raylet_client._batches(q))
    assert [(len(b.puts), len(b.add_refs)) for b in batches] == [(1, 1), (1, 1), (1, 1)]
    assert [p.object_id for b in batches for p in b.puts] == [_oid(0), _oid(1), _oid(2)]  # order kept


def test_client_batches_coalesce_small_items() -> None:
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for i in range(10):
        q.put(("puts", pb.PutObject(object_id=_oid(i), inline_data=b"v", size=1)))
    q.put(raylet_client._CLOSE)
    assert [len(b.puts) for b in raylet_client._batches(q)] == [10]


def test_config_field_and_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAYREDIS_OBJECTS_OVER_CONNECTION", raising=False)
    assert Config.from_env().objects_over_connection == "auto"
    monkeypatch.setenv("RAYREDIS_OBJECTS_OVER_CONNECTION", "always")
    assert Config.from_env().objects_over_connection == "always"
