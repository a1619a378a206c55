"""The raylet core's records: a task it owns, a pending ``get`` and a pending ``wait``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rayredis.common.resources import ResourceSet
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store.tables import TaskState

if TYPE_CHECKING:
    from rayredis.raylet.connection import Connection
    from rayredis.raylet.ports import TimerHandle


@dataclass(slots=True)
class TaskRecord:
    """A task submitted to this node, from submission until its terminal state is recorded.

    ``pinned`` lists the argument and nested objects it pins (one pin each, in order);
    ``return_ids`` the objects it will seal. A task another node owns and forwarded here has
    ``owner_node``; a task this node owns and forwarded elsewhere has ``forwarded_to`` (and the
    ``demand`` it was counted with there); ``deps`` are the arguments it waits for before placement.
    """

    spec: pb.TaskSpec
    submitter: bytes
    pinned: list[bytes]
    attempt: int = 0
    retries_used: int = 0
    state: TaskState = TaskState.PENDING
    worker: bytes = b""
    cancelled: bool = False
    force_cancelled: bool = False
    return_ids: list[bytes] = field(default_factory=list)
    owner_node: bytes = b""
    forwarded_to: bytes = b""
    demand: ResourceSet = field(default_factory=ResourceSet)
    deps: set[bytes] = field(default_factory=set)
    #: Wall clock when this node handed it to a worker (0.0: not yet); the task table's ``start_time``.
    dispatch_time: float = 0.0


@dataclass(slots=True)
class GetWait:
    """A ``get`` that waits for ``missing`` to be sealed; the reply carries every one of ``oids``."""

    conn: Connection
    missing: set[bytes]
    oids: list[bytes]


@dataclass(slots=True)
class WaitRequest:
    """A ``wait``: answered once ``need`` more of ``oids`` turn ready, or when ``timer`` fires."""

    conn: Connection
    oids: list[bytes]
    num_returns: int
    timer: TimerHandle | None
    need: int
    #: ``wait(fetch_local=True)``: objects count once they are here (those elsewhere are pulled).
    fetch: bool = True
