"""RayletClient against a fake raylet on a Unix socket: a broken stream is followed by a reconnect to
the same node, the restored state, then the pending requests; or, if it never comes back, a clear error."""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import pytest

from rayredis.exceptions import RaySystemError
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.worker.raylet_client import Endpoint, RayletClient

FRAME = struct.Struct("<I")
NODE = b"N" * 16
TOKEN = "tok"


def _read(sock: socket.socket) -> bytes | None:
    head = b""
    while len(head) < 4:
        part = sock.recv(4 - len(head))
        if not part:
            return None
        head += part
    (n,) = FRAME.unpack(head)
    body = b""
    while len(body) < n:
        part = sock.recv(n - len(body))
        if not part:
            return None
        body += part
    return body


class FakeRaylet:
    """Accepts one client on ``name``, answers its registration, records what it sends."""

    def __init__(self, name: str, on_batch: Callable[[FakeRaylet, pb.ClientBatch], None] | None = None):
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind("\0" + name)
        self.srv.listen(4)
        self.items: list[tuple[str, Any]] = []
        self.conn: socket.socket | None = None
        self.on_batch = on_batch
        self.got = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.srv.accept()
        except OSError:
            return
        self.conn = conn
        try:
            self._frames(conn)
        except OSError:
            return  # closed by die()

    def _frames(self, conn: socket.socket) -> None:
        if _read(conn) != TOKEN.encode():
            return
        while (data := _read(conn)) is not None:
            b = pb.ClientBatch.FromString(data)
            if b.HasField("register"):
                self.items.append(("register", b.register.worker_id))
                self.send(pb.RayletBatch(register_reply=pb.RegisterReply(node_id=NODE)))
            for f in ("add_refs", "puts", "submit", "gets", "waits"):
                self.items.extend((f, x) for x in getattr(b, f))
            if self.on_batch is not None:
                self.on_batch(self, b)
            self.got.set()

    def send(self, b: pb.RayletBatch) -> None:
        assert self.conn is not None
        data = b.SerializeToString()
        self.conn.sendall(FRAME.pack(len(data)) + data)

    def die(self) -> None:
        self.srv.close()
        if self.conn is not None:
            self.conn.shutdown(socket.SHUT_RDWR)
            self.conn.close()


class FakeReconnector:
    def __init__(self, name: str, timeout_s: float):
        self.name = name
        self.timeout_s = timeout_s
        self.node_id = NODE
        self.restored: list[str] = []

    def locate(self) -> Endpoint | str:
        return Endpoint("127.0.0.1:1", self.name)

    def register(self) -> tuple[pb.Register, Callable[[], None]]:
        return pb.Register(worker_id=b"W" * 16, is_driver=True), lambda: None

    def restore(self, put: Callable[[str, Any], None], why: str) -> None:
        self.restored.append(why)
        put("add_refs", b"R" * 20)


def _client(name: str, timeout_s: float) -> tuple[RayletClient, FakeReconnector]:
    client = RayletClient("127.0.0.1:1", TOKEN, pb.Register(worker_id=b"W" * 16, is_driver=True), unix_socket=name)
    rc = FakeReconnector(name, timeout_s)
    client.reconnector = rc
    return client, rc


def test_a_broken_stream_reconnects_restores_state_then_resends_pending_requests() -> None:
    name = f"rayredis-test-{os.urandom(6).hex()}"
    first = FakeRaylet(name)
    client, rc = _client(name, 10.0)
    try:
        reply = client.request("gets", pb.GetRequest(req_id=5, object_ids=[b"O" * 20]), 5)
        assert first.got.wait(5)
        first.die()

        def answer(fake: FakeRaylet, b: pb.ClientBatch) -> None:
            for g in b.gets:
                fake.send(pb.RayletBatch(get_replies=[pb.GetReply(req_id=g.req_id)]))

        second = FakeRaylet(name, answer)
        assert reply.wait(10), "the pending get was not answered by the restarted raylet"
        assert reply.error is None and reply.generation == client.generation
        assert rc.restored == ["was restarted"]
        assert [f for f, _ in second.items] == ["register", "add_refs", "gets"]  # state, then requests
        client.send("add_refs", b"S" * 20)
        second.got.clear()
        assert second.got.wait(5) and second.items[-1] == ("add_refs", b"S" * 20)
        second.die()
    finally:
        client.close(0.5)


def test_a_raylet_that_does_not_come_back_fails_pending_and_later_calls_clearly() -> None:
    name = f"rayredis-test-{os.urandom(6).hex()}"
    first = FakeRaylet(name)
    client, _ = _client(name, 0.5)
    try:
        reply = client.request("gets", pb.GetRequest(req_id=1, object_ids=[b"O" * 20]), 1)
        assert first.got.wait(5)
        first.die()
        assert reply.wait(10)
        assert isinstance(reply.error, RaySystemError) and "did not come back" in str(reply.error)
        with pytest.raises(RaySystemError, match="did not come back"):
            client.send("submit", pb.TaskSpec())
    finally:
        client.close(0.5)
