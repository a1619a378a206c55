"""The raylet's abstract Unix socket: both ends check each other (SO_PEERCRED) before the token
travels, and a stranger gets a few KiB, a few seconds and a bounded number of connections.

The other local user is ``nobody``: the tests fork and ``setuid`` (its processes cannot run the
interpreter, which lives under /root), so they need root, as on CI.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
from collections.abc import Callable
from typing import Any

import pytest

from rayredis.exceptions import RaySystemError
from rayredis.raylet import local_transport, preauth
from rayredis.raylet.peer_transport import start_link_server
from rayredis.raylet.preauth import FRAME, PreAuthGate
from rayredis.worker import raylet_client

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second local user (nobody)")
TOKEN = "t" * 40


def _nobody() -> int:
    return pwd.getpwnam("nobody").pw_uid


def _as_nobody(body: Callable[[], int]) -> int:
    """Run ``body`` in a forked child under nobody's uid; its return value is the child's exit status."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.setgid(_nobody())
            os.setuid(_nobody())
            status = body()
        finally:
            os._exit(status)
    return pid


def _exit_status(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.fixture
def name() -> str:
    return f"rayredis-test-{os.getpid()}-{os.urandom(4).hex()}"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The raylet's stream handler, replaced: what reached it (only authenticated clients do)."""
    got: list[Any] = []

    async def serve_stream(raylet: Any, read: Any, write: Any) -> None:
        got.append(raylet)

    monkeypatch.setattr(local_transport, "serve_stream", serve_stream)
    return got


def _listener(name: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\0" + name)
    s.listen(4)
    return s


def _received(server: socket.socket) -> bytes:
    conn, _ = server.accept()
    conn.settimeout(2.0)
    out = b""
    try:
        while chunk := conn.recv(4096):
            out += chunk
    except TimeoutError:
        pass
    conn.close()
    return out


# ---- the client checks the listener ------------------------------------------------------------------


@needs_root
def test_client_sends_no_token_to_a_listener_of_another_user(name: str) -> None:
    ready_r, ready_w = os.pipe()

    def squatter() -> int:
        s = _listener(name)
        os.write(ready_w, b"1")
        return 0 if _received(s) == b"" else 3  # exit 3: it got something

    pid = _as_nobody(squatter)
    try:
        assert os.read(ready_r, 1) == b"1"
        with pytest.raises(RaySystemError, match=f"uid {_nobody()}.*did not send it the cluster token"):
            raylet_client._connect_unix(name, TOKEN)
    finally:
        assert _exit_status(pid) == 0
        os.close(ready_r)
        os.close(ready_w)


def test_client_sends_no_token_to_a_listener_with_another_pid(name: str) -> None:
    server = _listener(name)
    try:
        with pytest.raises(RaySystemError, match="records the raylet as pid"):
            raylet_client._connect_unix(name, TOKEN, raylet_pid=os.getpid() + 100000)
        assert _received(server) == b""
        sock = raylet_client._connect_unix(name, TOKEN, raylet_pid=os.getpid())  # the recorded raylet
        assert sock is not None
        sock.close()
        assert _received(server) == FRAME.pack(len(TOKEN)) + TOKEN.encode()
    finally:
        server.close()


# ---- the raylet checks its clients ---------------------------------------------------------------------


def _run_server(name: str, body: Callable[[], Any], gate: PreAuthGate | None = None) -> Any:
    """Serve the raylet's socket ``name`` while ``body`` runs (in a thread) as the client."""
    async def main() -> Any:
        server = await local_transport.start_unix_server(object(), name, TOKEN, gate)  # type: ignore[arg-type]
        try:
            return await asyncio.get_running_loop().run_in_executor(None, body)
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def _connect(name: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30.0)  # a guard against a hang, not a measurement
    s.connect("\0" + name)
    return s


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


@needs_root
def test_raylet_closes_a_client_of_another_user(name: str, served: list[Any]) -> None:
    def client() -> int:
        s = _connect(name)
        with s:
            try:
                s.sendall(FRAME.pack(len(TOKEN)) + TOKEN.encode())  # even with the right token
            except (BrokenPipeError, ConnectionResetError):
                return 0  # already closed
            return 0 if _closed(s) else 3

    assert _run_server(name, lambda: _exit_status(_as_nobody(client))) == 0
    assert served == []

    def own_client() -> None:
        s = _connect(name)
        s.sendall(FRAME.pack(len(TOKEN)) + TOKEN.encode())
        _closed(s)  # (the replaced handler returns at once)
        s.close()

    _run_server(name, own_client)
    assert len(served) == 1


def test_oversized_first_frame_is_closed_unread(name: str, served: list[Any]) -> None:
    def client() -> bool:
        s = _connect(name)
        with s:
            s.sendall(FRAME.pack(100 * 1024 * 1024) + b"x" * 65536)
            return _closed(s)

    assert _run_server(name, client)
    assert served == []


def test_silent_client_is_closed_after_the_deadline(name: str, served: list[Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preauth, "AUTH_TIMEOUT_S", 0.2)

    def client() -> bool:
        s = _connect(name)
        with s:
            s.sendall(FRAME.pack(len(TOKEN)) + b"t")  # starts, never finishes
            return _closed(s)

    assert _run_server(name, client)
    assert served == []


def test_unauthenticated_connections_are_bounded(name: str, served: list[Any]) -> None:
    gate = PreAuthGate(limit=2)

    def client() -> tuple[bool, bool, bool]:
        waiting = [_connect(name), _connect(name)]
        while gate.pending < 2:  # both reached the gate (the server runs in another thread)
            pass
        third = _connect(name)
        third_closed = _closed(third)
        waiting[0].setblocking(False)
        try:
            waiting[0].recv(1)
            first_open = False
        except BlockingIOError:
            first_open = True
        for s in waiting:
            s.close()
        while gate.pending:  # the server saw them go
            pass
        fourth = _connect(name)  # room again
        fourth.sendall(FRAME.pack(len(TOKEN)) + TOKEN.encode())
        fourth_ok = _closed(fourth)
        third.close()
        fourth.close()
        return third_closed, first_open, fourth_ok

    assert _run_server(name, client, gate) == (True, True, True)
    assert len(served) == 1 and gate.refused == 1


def test_link_server_bounds_unauthenticated_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preauth, "MAX_UNAUTHENTICATED", 1)
    monkeypatch.setattr(preauth, "AUTH_TIMEOUT_S", 60.0)

    async def main() -> list[bytes]:
        server = await start_link_server("127.0.0.1", TOKEN, lambda b: None)
        port = server.sockets[0].getsockname()[1]
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        reads = [asyncio.ensure_future(r.read()) for r, _ in conns]
        try:
            # One waits for its token (60 s); the other was refused at once.
            done, _ = await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
            return [t.result() for t in done]
        finally:
            for _, w in conns:
                w.close()
            for t in reads:
                t.cancel()
            server.close()
            await server.wait_closed()

    assert asyncio.run(main()) == [b""]
