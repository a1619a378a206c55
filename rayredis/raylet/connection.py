"""One client's stream to the raylet: identity, held references and a coalescing outbound batch."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from rayredis.protocol._generated import rayredis_pb2 as pb


class Connection:
    """A driver or worker connected over ``Raylet.Connect``.

    Outbound messages are appended to one ``RayletBatch`` under construction; the stream's writer
    coroutine swaps it out and sends it, so bursts coalesce into few gRPC messages.
    """

    def __init__(self, worker_id: bytes, pid: int, is_driver: bool, job_id: int, namespace: str):
        self.worker_id = worker_id
        self.pid = pid
        self.is_driver = is_driver
        self.job_id = job_id
        self.namespace = namespace
        self.refs: Counter[bytes] = Counter()
        self.actor_id: bytes = b""
        self.batch = pb.RayletBatch()
        self.has_data = asyncio.Event()
        self.closed = False

    def out(self) -> Any:
        """The batch being built; callers append to its repeated fields, then call :meth:`flush`."""
        return self.batch

    def flush(self) -> None:
        if not self.has_data.is_set():
            self.has_data.set()

    def take(self) -> pb.RayletBatch:
        b = self.batch
        self.batch = pb.RayletBatch()
        self.has_data.clear()
        return b
