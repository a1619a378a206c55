"""The client end of ``Raylet.Connect``: a coalescing sender queue, a reader thread and reply futures."""

from __future__ import annotations

import itertools
import logging
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from rayredis._private import auth, peercred
from rayredis.exceptions import RaySystemError
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol._generated import rayredis_pb2_grpc as pb_grpc
from rayredis.protocol.limits import MAX_MESSAGE_BYTES, MAX_OBJECT_OVER_CONNECTION

logger = logging.getLogger(__name__)

_CLOSE = object()


class Reply:
    """A one-shot slot the reader thread fills."""

    __slots__ = ("_ev", "value", "error", "generation")

    def __init__(self) -> None:
        self._ev = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        #: ``RayletClient.generation`` when it was answered (which raylet process answered).
        self.generation = 0

    def set(self, value: Any) -> None:
        self.value = value
        self._ev.set()

    def fail(self, e: BaseException) -> None:
        self.error = e
        self._ev.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ev.wait(timeout)


@dataclass(frozen=True)
class Endpoint:
    """Where a raylet serves clients: its gRPC address, and its Unix socket ("" for gRPC only)."""

    address: str
    unix_socket: str = ""
    #: The raylet's PID, checked against the socket's listener before the token is sent (0: uid only).
    pid: int = 0


class Reconnector(Protocol):
    """What the client needs from its owner to reconnect to a restarted raylet (the same node)."""

    #: How long to keep trying before pending calls fail.
    timeout_s: float
    #: The node ID the client must find again.
    node_id: bytes

    def locate(self) -> Endpoint | str:
        """The node's current registration; a string says why it will not come back (it is DEAD).
        Raises when it cannot tell yet (the caller retries)."""
        ...

    def register(self) -> tuple[pb.Register, Callable[[], None]]:
        """The ``Register`` to send (the same worker ID), and what to clean up once it is answered."""
        ...

    def restore(self, put: Callable[[str, Any], None], why: str) -> None:
        """Queue, with ``put(field, item)``, what the restarted raylet must hold for this client:
        references, objects, tasks (called under the client's send lock; ``why`` for error texts)."""
        ...


class ReconnectedError(Exception):
    """A message prepared for the raylet's previous process (a segment it reserved) is void: redo it."""


#: Message fields that :meth:`Reconnector.restore` rebuilds, or that the client resends from its
#: pending requests, so queued copies are dropped across a reconnect.
_REBUILT = frozenset({"register", "add_refs", "remove_refs", "puts", "submit", "gets", "waits", "creates",
                      "cancel_gets"})


@dataclass
class _Request:
    reply: Reply
    field: str
    item: Any
    sent: float


class _Stream:
    """One connection to the raylet: Unix socket frames (or a gRPC stream) fed from queue ``q``."""

    def __init__(self, ep: Endpoint, token: str, q: queue.SimpleQueue[Any]):
        self.q = q
        self.channel: grpc.Channel | None = None
        self.sock = _connect_unix(ep.unix_socket, token, ep.pid) if ep.unix_socket else None
        self.sender: threading.Thread | None = None
        self.closing = False
        if self.sock is not None:
            # Same host: length-prefixed frames on the raylet's Unix socket (as Ray's local IPC).
            self.responses: Any = _recv_frames(self.sock, self)
            self.sender = threading.Thread(target=_send_frames, args=(self.sock, q), name="rayredis-raylet-sender",
                                           daemon=True)
            self.sender.start()
        else:
            self.channel = grpc.insecure_channel(ep.address, options=auth.GRPC_OPTIONS)
            stub = pb_grpc.RayletStub(self.channel)
            self.responses = stub.Connect(_batches(q), metadata=auth.metadata(token))

    def close(self) -> None:
        self.closing = True
        self.q.put(_CLOSE)
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            return
        try:
            self.responses.cancel()
        except Exception:  # noqa: BLE001
            pass
        if self.channel is not None:
            self.channel.close()


class RayletClient:
    """Sends ``ClientBatch`` items and dispatches ``RayletBatch`` replies.

    ``send(field, item)`` is thread-safe; everything queued while the previous message was being
    sent goes out together in one batch, as long as the objects in it fit in one message.

    With a ``reconnector``, a broken stream is not the end: the client connects to the same node
    again (its raylet restarted under its node ID) with bounded backoff for up to
    ``reconnector.timeout_s``, registers with the same worker ID, lets the reconnector queue what the
    new raylet must hold (under the send lock, so nothing sent meanwhile slips in between), and
    resends its pending requests; callers keep waiting meanwhile. If the node does not come back,
    pending and later calls fail with a ``RaySystemError`` that says so.
    """

    def __init__(self, address: str, token: str, register: pb.Register,
                 on_assign: Callable[[pb.Assignment], None] | None = None,
                 on_cancel: Callable[[bytes], None] | None = None,
                 on_disconnect: Callable[[], None] | None = None,
                 on_logs: Callable[[pb.LogLines], None] | None = None, unix_socket: str = "",
                 reconnector: Reconnector | None = None, raylet_pid: int = 0):
        self.address = address
        self.token = token
        self._ids = itertools.count(1)
        self._pending: dict[int, _Request] = {}
        self._lock = threading.Lock()
        #: Held while a message is recorded and queued, and while a reconnect swaps the stream.
        self.send_lock = threading.RLock()
        self.on_assign = on_assign
        self.on_cancel = on_cancel
        self.on_disconnect = on_disconnect
        self.on_logs = on_logs
        #: Called with the ids in ``RayletBatch.tasks_done`` (tasks submitted with ``notify_done``).
        self.on_tasks_done: Callable[[Sequence[bytes]], None] | None = None
        #: Called with ``RayletBatch.failed_returns`` (a driver's failed task returns, with their errors).
        self.on_failed_returns: Callable[[Any], None] | None = None
        self.reconnector = reconnector
        self.closed = False
        #: Counts the raylet processes this client was connected to (a reconnect adds one).
        self.generation = 0
        self._fatal: RaySystemError | None = None
        self._stop = threading.Event()
        self.registered = Reply()
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._q.put(("register", register))
        self._stream = _Stream(Endpoint(address, unix_socket, raylet_pid), token, self._q)
        self.channel = self._stream.channel
        self._reader = threading.Thread(target=self._read, name="rayredis-raylet-reader", daemon=True)
        self._reader.start()
        if not self.registered.wait(30.0) or self.registered.error is not None:
            err = self.registered.error
            self.close()
            raise RaySystemError(f"Could not connect to the raylet at {address}: {err}")
        self.info: pb.RegisterReply = self.registered.value

    @property
    def _sock(self) -> socket.socket | None:
        """The current connection's Unix socket (None over gRPC)."""
        return self._stream.sock

    def next_id(self) -> int:
        return next(self._ids)

    def _closed_error(self) -> RaySystemError:
        return self._fatal or RaySystemError(
            f"The connection to the raylet at {self.address} is closed; was the cluster shut down? "
            "Call rayredis.init() again.")

    def send(self, field: str, item: Any, record: Callable[[], None] | None = None,
             generation: int | None = None) -> None:
        """Queue ``item``; ``record`` runs first under the send lock (so a reconnect sees both or
        neither); ``generation``: raise :class:`ReconnectedError` unless still connected to that raylet."""
        with self.send_lock:
            if self.closed:
                if field in ("add_refs", "remove_refs"):
                    return  # reference counts die with the connection anyway
                raise self._closed_error()
            if generation is not None and generation != self.generation:
                raise ReconnectedError()
            if record is not None:
                record()
            self._q.put((field, item))

    def request(self, field: str, item: Any, req_id: int) -> Reply:
        r = Reply()
        with self.send_lock:
            with self._lock:
                if self.closed:
                    r.fail(self._closed_error())
                    return r
                self._pending[req_id] = _Request(r, field, item, time.monotonic())
            self._q.put((field, item))
        return r

    def forget(self, req_id: int) -> None:
        with self._lock:
            self._pending.pop(req_id, None)

    # ---- the reader thread ------------------------------------------------------------------------

    def _read(self) -> None:
        while True:
            stream = self._stream
            err: BaseException | None = None
            try:
                for b in stream.responses:
                    self._dispatch(b)
            except (grpc.RpcError, OSError) as e:
                if not self.closed:
                    err = e
                    logger.warning("raylet stream ended: %s", e)
            except Exception as e:
                err = e
                logger.exception("raylet reader failed")
            if self.closed or self.reconnector is None or not self.registered.wait(0):
                break
            if self._reconnect(err or ConnectionError("the raylet ended the stream")):
                continue
            err = err or self._fatal
            break
        with self._lock:
            lost = not self.closed  # the raylet ended the stream (with an error or not), not our close()
            self.closed = True
            pending, self._pending = self._pending, {}
        failure = self._fatal or RaySystemError(f"Lost the connection to the raylet at {self.address}: {err}")
        if not self.registered.wait(0):
            self.registered.fail(failure)
        for p in pending.values():
            p.reply.fail(failure)
        if self.on_disconnect is not None and (lost or err is not None):
            self.on_disconnect()

    def _reconnect(self, err: BaseException) -> bool:
        """Connect to the node's restarted raylet and restore this client's state; False if it does
        not come back in time (``_fatal`` says why)."""
        rc = self.reconnector
        assert rc is not None
        node = rc.node_id.hex()[:8]
        logger.warning("lost the raylet of node %s (%s); reconnecting for up to %.0f s", node, err, rc.timeout_s)
        with self.send_lock:
            old, self._q = self._q, queue.SimpleQueue()  # sends wait here meanwhile
            self.generation += 1
        self._stream.close()
        deadline = time.monotonic() + rc.timeout_s
        delay, why = 0.05, f"{err}"
        while not self._stop.is_set():
            try:
                ep = rc.locate()
                if isinstance(ep, str):
                    why = ep
                    break
                if self._adopt(ep, old):
                    logger.warning("reconnected to the restarted raylet of node %s", node)
                    return True
                why = "another node answers at its address"
            except Exception as e:  # noqa: BLE001 - not back yet: retry until the deadline
                why = f"{type(e).__name__}: {e}"
            left = deadline - time.monotonic()
            if left <= 0:
                why = f"it did not come back within {rc.timeout_s:g} s (raylet_reconnect_timeout_s; last: {why})"
                break
            self._stop.wait(min(delay, left))
            delay = min(1.0, delay * 2)
        self._fatal = RaySystemError(f"The raylet of node {rc.node_id.hex()} (at {self.address}) died and did "
                                     f"not come back: {why}")
        logger.error("%s", self._fatal)
        return False

    def _adopt(self, ep: Endpoint, old: queue.SimpleQueue[Any]) -> bool:
        """Connect to ``ep``, register, then queue the restored state, the pending requests and what
        was sent meanwhile, in that order. False if another node answered."""
        rc = self.reconnector
        assert rc is not None
        q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        reg, cleanup = rc.register()
        q.put(("register", reg))
        try:
            stream = _Stream(ep, self.token, q)
            try:
                first = next(iter(stream.responses))
            except BaseException:
                stream.close()
                raise
        finally:
            cleanup()
        if not first.HasField("register_reply") or first.register_reply.node_id != rc.node_id:
            stream.close()
            return False
        with self.send_lock:
            self.generation += 1
            self._stream, self.channel, self.address = stream, stream.channel, ep.address
            self.info = first.register_reply
            try:
                rc.restore(lambda f, item: q.put((f, item)), "was restarted")
            except Exception:  # a bug must not cost the connection: what was restored stands
                logger.exception("restoring the state at the restarted raylet failed")
            with self._lock:
                pending = sorted(self._pending.items())
            now = time.monotonic()
            for _, p in pending:
                item = p.item
                if p.field == "waits" and item.timeout_s > 0:
                    item = pb.WaitRequest()
                    item.CopyFrom(p.item)
                    item.timeout_s = max(0.0, p.item.timeout_s - (now - p.sent))
                q.put((p.field, item))
            for src in (old, self._q):
                while True:
                    try:
                        it = src.get_nowait()
                    except queue.Empty:
                        break
                    # (a task without returns is not recorded for restoring: nothing refers to it)
                    if it is not _CLOSE and (it[0] not in _REBUILT or it[0] == "submit" and not it[1].num_returns):
                        q.put(it)
            self._q = q
        self._dispatch(first)
        return True

    def _dispatch(self, b: pb.RayletBatch) -> None:
        if b.HasField("register_reply") and not self.registered.wait(0):
            self.registered.set(b.register_reply)
        if b.assign and self.on_assign is not None:
            for a in b.assign:
                self.on_assign(a)
        if b.failed_returns and self.on_failed_returns is not None:  # before the replies that read them
            self.on_failed_returns(b.failed_returns)
        gen = self.generation
        for lst in (b.get_replies, b.wait_replies, b.create_replies):
            for rep in lst:
                with self._lock:
                    p = self._pending.pop(rep.req_id, None)
                if p is not None:
                    p.reply.generation = gen
                    p.reply.set(rep)
        if b.logs and self.on_logs is not None:
            for lines in b.logs:
                self.on_logs(lines)
        if b.tasks_done and self.on_tasks_done is not None:
            self.on_tasks_done(b.tasks_done)
        if b.cancel_tasks and self.on_cancel is not None:
            for tid in b.cancel_tasks:
                self.on_cancel(tid)

    def close(self, drain_s: float = 2.0) -> None:
        """Half-close after everything queued is sent, wait for the raylet to end the stream."""
        self._stop.set()
        if not self.closed:
            self.closed = True
            with self.send_lock:
                self._q.put(_CLOSE)
            if threading.current_thread() is not self._reader:
                self._reader.join(drain_s)
        self._stream.close()


def _send_frames(sock: socket.socket, q: queue.SimpleQueue[Any]) -> None:
    try:
        for batch in _batches(q):
            data = batch.SerializeToString()
            sock.sendall(_FRAME.pack(len(data)) + data)
        sock.shutdown(socket.SHUT_WR)  # like a gRPC half-close: the raylet finishes and ends
    except OSError:
        return  # the reader thread notices the broken connection and fails pending replies


def _recv_frames(sock: socket.socket, stream: _Stream) -> Iterator[pb.RayletBatch]:
    while True:
        head = _recv_exact(sock, _FRAME.size)
        if head is None:
            if not stream.closing:
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


def _connect_unix(name: str, token: str, raylet_pid: int = 0) -> socket.socket | None:
    """Connect to the raylet's abstract Unix socket and, once its listener proves to be this user's
    raylet (``SO_PEERCRED``: our uid, and ``raylet_pid`` if known), present the token. None if
    unreachable (another host or network namespace) or unidentifiable (another PID namespace), in
    which case the caller uses gRPC; :class:`RaySystemError` if someone else holds the name."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect("\0" + name)
        if not peercred.check_listener(sock, name, raylet_pid):
            sock.close()
            return None
        data = token.encode()
        sock.sendall(_FRAME.pack(len(data)) + data)
        return sock
    except OSError:
        sock.close()
        return None
    except BaseException:
        sock.close()
        raise


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

