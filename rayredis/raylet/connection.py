"""One client's stream to the raylet: identity, held references and a coalescing outbound batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from rayredis.protocol._generated import rayredis_pb2 as pb


def _no_wake() -> None:
    pass


class Connection:
    """A driver or worker connected over ``Raylet.Connect`` (or the local Unix socket).

    Outbound messages are appended to one ``RayletBatch`` under construction; the transport's
    writer swaps it out with :meth:`take` and sends it, so bursts coalesce into few messages.
    The first :meth:`flush` after a :meth:`take` calls ``wake`` (the transport's "has data"
    signal); the connection itself does no I/O.
    """

    def __init__(self, worker_id: bytes, pid: int, is_driver: bool, job_id: int, namespace: str,
                 wake: Callable[[], None] = _no_wake):
        self.worker_id = worker_id
        self.pid = pid
        self.is_driver = is_driver
        self.job_id = job_id
        self.namespace = namespace
        self.refs: Counter[bytes] = Counter()
        self.actor_id: bytes = b""
        #: Large objects travel inside this client's messages: it cannot map the raylet's /dev/shm
        #: (decided at connection, see :mod:`.connection_objects`).
        self.objects_over_connection = False
        self.batch = pb.RayletBatch()
        self.has_data = False
        self.closed = False
        #: The worker said it exits after its last result (max_calls): it is out of the pool.
        self.exiting = False
        self._wake = wake

    def out(self) -> pb.RayletBatch:
        """The batch being built; callers append to its repeated fields, then call :meth:`flush`."""
        return self.batch

    def flush(self) -> None:
        if not self.has_data:
            self.has_data = True
            self._wake()

    def take(self) -> pb.RayletBatch:
        b = self.batch
        self.batch = pb.RayletBatch()
        self.has_data = False
        return b
