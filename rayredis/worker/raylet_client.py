"""The client end of ``Raylet.Connect``: a coalescing sender queue, a reader thread and reply futures."""

from __future__ import annotations

import itertools
import logging
import queue
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from rayredis._private import auth
from rayredis.exceptions import RaySystemError
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol._generated import rayredis_pb2_grpc as pb_grpc
from rayredis.protocol.limits import MAX_MESSAGE_BYTES, MAX_OBJECT_OVER_CONNECTION

logger = logging.getLogger(__name__)

_CLOSE = object()


class Reply:
    """A one-shot slot the reader thread fills."""

    __slots__ = ("_ev", "value", "error")

    def __init__(self) -> None:
        self._ev = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def set(self, value: Any) -> None:
        self.value = value
        self._ev.set()

    def fail(self, e: BaseException) -> None:
        self.error = e
        self._ev.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ev.wait(timeout)


class RayletClient:
    """Sends ``ClientBatch`` items and dispatches ``RayletBatch`` replies.

    ``send(field, item)`` is thread-safe; everything queued while the previous message was being
    sent goes out together in one batch, as long as the objects in it fit in one message.
    """

    def __init__(self, address: str, token: str, register: pb.Register,
                 on_assign: Callable[[pb.Assignment], None] | None = None,
                 on_cancel: Callable[[bytes], None] | None = None,
                 on_disconnect: Callable[[], None] | None = None,
                 on_logs: Callable[[pb.LogLines], None] | None = None, unix_socket: str = ""):
        self.address = address
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ids = itertools.count(1)
        self._pending: dict[int, Reply] = {}
        self._lock = threading.Lock()
        self.on_assign = on_assign
        self.on_cancel = on_cancel
        self.on_disconnect = on_disconnect
        self.on_logs = on_logs
        self.closed = False
        self.registered = Reply()
        self._q.put(("register", register))
        self.channel: grpc.Channel | None = None
        self._sock = _connect_unix(unix_socket, token) if unix_socket else None
        if self._sock is not None:
            # Same host: length-prefixed frames on the raylet's Unix socket (as Ray's local IPC).
            self._responses: Any = self._recv_frames(self._sock)
            threading.Thread(target=self._send_frames, args=(self._sock,), name="rayredis-raylet-sender",
                             daemon=True).start()
        else:
            self.channel = grpc.insecure_channel(address, options=auth.GRPC_OPTIONS)
            stub = pb_grpc.RayletStub(self.channel)
            self._responses = stub.Connect(self._requests(), metadata=auth.metadata(token))
        self._reader = threading.Thread(target=self._read, name="rayredis-raylet-reader", daemon=True)
        self._reader.start()
        if not self.registered.wait(30.0) or self.registered.error is not None:
            err = self.registered.error
            self.close()
            raise RaySystemError(f"Could not connect to the raylet at {address}: {err}")
        self.info: pb.RegisterReply = self.registered.value

    def next_id(self) -> int:
        return next(self._ids)

    def send(self, field: str, item: Any) -> None:
        if self.closed:
            if field in ("add_refs", "remove_refs"):
                return  # reference counts die with the connection anyway
            raise RaySystemError(f"The connection to the raylet at {self.address} is closed; was the "
                                 "cluster shut down? Call rayredis.init() again.")
        self._q.put((field, item))

    def request(self, field: str, item: Any, req_id: int) -> Reply:
        r = Reply()
        with self._lock:
            if self.closed:
                r.fail(RaySystemError("The connection to the raylet is closed."))
                return r
            self._pending[req_id] = r
        self._q.put((field, item))
        return r

    def forget(self, req_id: int) -> None:
        with self._lock:
            self._pending.pop(req_id, None)

    def _requests(self) -> Iterator[pb.ClientBatch]:
        yield from _batches(self._q)

    def _read(self) -> None:
        err: BaseException | None = None
        try:
            for b in self._responses:
                self._dispatch(b)
        except (grpc.RpcError, OSError) as e:
            if not self.closed:
                err = e
                logger.warning("raylet stream ended: %s", e)
        except Exception as e:
            err = e
            logger.exception("raylet reader failed")
        with self._lock:
            lost = not self.closed  # the raylet ended the stream (with an error or not), not our close()
            self.closed = True
            pending, self._pending = self._pending, {}
        failure = RaySystemError(f"Lost the connection to the raylet at {self.address}: {err}")
        if not self.registered.wait(0):
            self.registered.fail(failure)
        for r in pending.values():
            r.fail(failure)
        if self.on_disconnect is not None and (lost or err is not None):
            self.on_disconnect()

    def _dispatch(self, b: pb.RayletBatch) -> None:
        if b.HasField("register_reply"):
            self.registered.set(b.register_reply)
        if b.assign and self.on_assign is not None:
            for a in b.assign:
                self.on_assign(a)
        for lst in (b.get_replies, b.wait_replies, b.create_replies):
            for rep in lst:
                with self._lock:
                    r = self._pending.pop(rep.req_id, None)
                if r is not None:
                    r.set(rep)
        if b.logs and self.on_logs is not None:
            for lines in b.logs:
                self.on_logs(lines)
        if b.cancel_tasks and self.on_cancel is not None:
            for tid in b.cancel_tasks:
                self.on_cancel(tid)

    def close(self, drain_s: float = 2.0) -> None:
        """Half-close after everything queued is sent, wait for the raylet to end the stream."""
        if not self.closed:
            self.closed = True
            self._q.put(_CLOSE)
            if threading.current_thread() is not self._reader:
                self._reader.join(drain_s)
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            return
        try:
            self._responses.cancel()
        except Exception:  # noqa: BLE001
            pass
        if self.channel is not None:
            self.channel.close()

    def _send_frames(self, sock: socket.socket) -> None:
        try:
            for batch in self._requests():
                data = batch.SerializeToString()
                sock.sendall(_FRAME.pack(len(data)) + data)
            sock.shutdown(socket.SHUT_WR)  # like a gRPC half-close: the raylet finishes and ends
        except OSError:
            return  # the reader thread notices the broken connection and fails pending replies

    def _recv_frames(self, sock: socket.socket) -> Any:
        while True:
            head = _recv_exact(sock, _FRAME.size)
            if head is None:
                if not self.closed:
                    raise ConnectionError("the raylet closed the connection")
                return
            (n,) = _FRAME.unpack(head)
            if n > MAX_MESSAGE_BYTES:
                raise ConnectionError(f"the raylet sent a frame of {n} bytes (at most {MAX_MESSAGE_BYTES})")
            body = _recv_exact(sock, n)
            if body is None:
                raise ConnectionError("the raylet closed the connection mid-message")
            yield pb.RayletBatch.FromString(body)


def _batches(q: queue.SimpleQueue[Any]) -> Iterator[pb.ClientBatch]:
    """``ClientBatch`` messages from the send queue until ``_CLOSE``: everything queued meanwhile, up
    to 5000 items, as long as the objects in it fit in one message."""
    carry: Any = None
    while True:
        item, carry = (q.get() if carry is None else carry), None
        if item is _CLOSE:
            return
        batch = pb.ClientBatch()
        _add(batch, item)
        size = _object_bytes(item)
        for _ in range(5000):
            try:
                item = q.get_nowait()
            except queue.Empty:
                break
            if item is _CLOSE:
                yield batch
                return
            n = _object_bytes(item)
            if size + n > MAX_OBJECT_OVER_CONNECTION:
                carry = item  # it opens the next batch: every message stays under the cap
                break
            size += n
            _add(batch, item)
        yield batch


def _object_bytes(item: tuple[str, Any]) -> int:
    """At most how many bytes of object data ``item`` adds to a batch (puts carry them, unless they
    name a segment; other items are small). ``PutObject.size``: reading ``data`` would copy it."""
    field, value = item
    return int(value.size) if field == "puts" else 0


def _add(batch: pb.ClientBatch, item: tuple[str, Any]) -> None:
    field, value = item
    if field == "register":
        batch.register.CopyFrom(value)
    else:
        getattr(batch, field).append(value)


_FRAME = struct.Struct("<I")


def _connect_unix(name: str, token: str) -> socket.socket | None:
    """Connect to the raylet's abstract Unix socket and present the token; None if unreachable
    (another host or network namespace), in which case the caller uses gRPC."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect("\0" + name)
        data = token.encode()
        sock.sendall(_FRAME.pack(len(data)) + data)
        return sock
    except OSError:
        sock.close()
        return None


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            return None
        got += k
    return bytes(buf)

