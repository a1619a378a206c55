"""What the raylet's sans-I/O core (NodeManager, LocalActors) needs from the world, as typing protocols.

The I/O shell (``server.py``) passes real implementations: the asyncio event loop is the
:class:`Timers`, :class:`~rayredis.raylet.worker_pool.WorkerPool` the :class:`WorkerProcesses`,
:class:`~rayredis.raylet.redis_writer.RedisWriter` the :class:`TableWriter`, the raylet itself the
:class:`ActorDirectory`. Unit tests pass fakes. The protocols only type the calls; the calls stay
direct (no adapters on the hot path). A client's outbox is a plain
:class:`~rayredis.raylet.connection.Connection` (``out()`` then ``flush()``, which only calls the
transport's wake callback), so the core uses it directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store.tables import TaskState

if TYPE_CHECKING:
    from rayredis.raylet.connection import Connection
    from rayredis.raylet.records import TaskRecord


class TimerHandle(Protocol):
    """A scheduled callback that can still be called off."""

    def cancel(self) -> None: ...


class Timers(Protocol):
    """Deferred callbacks (``asyncio.AbstractEventLoop`` satisfies this)."""

    def call_soon(self, callback: Callable[..., object], *args: Any) -> TimerHandle: ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle: ...


class WorkerProcesses(Protocol):
    """The node's worker processes: started in bulk, each connects back and exits (or is killed)."""

    def start(self, n: int) -> None: ...

    def kill(self, wid: bytes) -> None: ...

    def dedicate(self, wid: bytes, actor_id: bytes) -> None: ...

    def registered(self, wid: bytes) -> None: ...

    def exited(self, wid: bytes) -> None: ...


class TableWriter(Protocol):
    """Queued, idempotent Redis table writes (flushed in the background, never awaited by the core)."""

    def task_submitted(self, task_id: bytes, spec_bytes: bytes, job_id: int, attempt: int) -> None: ...

    def task_state(self, task_id: bytes, state: TaskState, attempt: int, worker: bytes = b"",
                   error_type: str = "", start_time: float = 0.0) -> None: ...

    def task_spilled(self, task_id: bytes, node: bytes, attempt: int) -> None: ...

    def object_sealed(self, oid: bytes, size: int, is_error: bool) -> None: ...

    def object_freed(self, oid: bytes) -> None: ...

    def actor_transition(self, actor_id: bytes, allowed: str, attempt: str, fields: Mapping[str, Any]) -> None: ...

    def job_finished(self, job_id: int) -> None: ...


class ActorDirectory(Protocol):
    """Looks an actor up in the actor table; the answer comes back through
    :meth:`~rayredis.raylet.actors.LocalActors.apply_remote_state`."""

    def lookup_actor(self, actor_id: bytes) -> None: ...


class TaskSide(Protocol):
    """What :class:`~rayredis.raylet.actors.LocalActors` asks of the task side (the NodeManager)."""

    def submit_creation(self, spec: pb.TaskSpec) -> TaskRecord: ...

    def dispatch(self, rec: TaskRecord, conn: Connection, gpu_ids: Iterable[int] = ()) -> None: ...

    def finish(self, rec: TaskRecord, returns: Iterable[pb.PutObject], state: TaskState) -> None: ...

    def fail_task(self, rec: TaskRecord, exc: BaseException, state: TaskState = TaskState.FAILED) -> None: ...

    def release(self, rec: TaskRecord, state: TaskState | None = None) -> None: ...

    def missing_args(self, spec: pb.TaskSpec) -> set[bytes]: ...

    def pending_args(self, spec: pb.TaskSpec) -> set[bytes]: ...

    def node_alive(self, node: bytes) -> bool: ...

    def forward_call(self, rec: TaskRecord, node: bytes) -> None: ...

    def kill_remote_actor(self, node: bytes, actor_id: bytes, no_restart: bool, when_idle: bool) -> None: ...
