"""Exception hierarchy mirroring ``ray.exceptions``; remote errors keep their type and traceback."""

from __future__ import annotations

import re
from typing import Any


class RayError(Exception):
    """Root of every rayredis error (named as in Ray so ``except ray.exceptions.RayError`` works).

    Every error has ``cause`` (the user's exception behind it, or None) and
    ``as_instanceof_cause()`` (itself, except for :class:`RayTaskError`)."""

    cause: BaseException | None = None

    def as_instanceof_cause(self) -> RayError:
        return self


RayredisError = RayError


class RaySystemError(RayError):
    """An internal failure of the system rather than of user code."""


class RayTaskError(RayError):
    """A task or actor method raised; ``cause`` is the original exception.

    ``get`` raises an instance of a class that derives from both ``RayTaskError`` and the original
    exception's class (see :meth:`as_instanceof_cause`), so ``except ValueError`` still catches it.
    """

    def __init__(
        self,
        function_name: str = "",
        traceback_str: str = "",
        cause: BaseException | None = None,
        proctitle: str = "",
        pid: int = 0,
        ip: str = "",
        actor_repr: str = "",
        actor_id: str = "",
    ) -> None:
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.proctitle = proctitle
        self.pid = pid
        self.ip = ip
        self.actor_repr = actor_repr
        self._actor_id = actor_id
        super().__init__(self._message())

    def _message(self) -> str:
        """Ray's shape: ``ray::f() (pid=N, ip=IP)`` (actor methods add ``actor_id=..., repr=...``),
        then the user's frames and the error line."""
        where = f"pid={self.pid}, ip={self.ip}"
        if self._actor_id:
            where += f", actor_id={self._actor_id}, repr={self.actor_repr}"
        text = f"ray::{self.function_name}() ({where})\n{_user_frames(self.traceback_str)}"
        cause = self.cause
        if cause is not None and not isinstance(cause, RayError) and \
                f"{type(cause).__name__}:" not in self.traceback_str and \
                type(cause).__name__ not in self.traceback_str.splitlines()[-1:]:
            # e.g. a stand-in for an error that could not be pickled
            text += f"{'' if text.endswith(chr(10)) else chr(10)}{type(cause).__name__}: {cause}"
        return text

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> Any:
        return (
            RayTaskError,
            (self.function_name, self.traceback_str, self.cause, self.proctitle, self.pid, self.ip,
             self.actor_repr, self._actor_id),
        )

    def as_instanceof_cause(self) -> RayTaskError:
        """An exception that is both a RayTaskError and an instance of the cause's class."""
        cause_cls = type(self.cause) if self.cause is not None else None
        if cause_cls is None or issubclass(RayTaskError, cause_cls) or isinstance(self.cause, RayTaskError):
            return self  # as Ray: a RayError cause (e.g. one standing in for an unpicklable error) stays plain
        if not issubclass(cause_cls, Exception):
            return self
        try:
            name = f"RayTaskError({cause_cls.__name__})"
            cls = _DUAL_CACHE.get(cause_cls)
            if cls is None:

                def __init__(inner: Any, outer: RayTaskError) -> None:  # noqa: N807
                    inner.__dict__.update(getattr(outer.cause, "__dict__", {}))  # e.field, as in Ray
                    inner.__dict__.update(outer.__dict__)
                    inner.args = (outer._message(),)

                def __str__(inner: Any) -> str:  # noqa: N807
                    return str(inner.args[0])

                cls = type(
                    name,
                    (RayTaskError, cause_cls),
                    {"__init__": __init__, "__str__": __str__, "__reduce__": RayTaskError.__reduce__},
                )
                cls.__module__ = __name__  # shown as rayredis.exceptions.RayTaskError(Cause), as Ray's
                cls.__qualname__ = name
                _DUAL_CACHE[cause_cls] = cls
            inst = cls(self)
            return inst  # type: ignore[no-any-return]
        except TypeError:
            return self


_DUAL_CACHE: dict[type, type] = {}


#: Frames of rayredis's own code in a remote traceback (the worker's, and the API a nested ``get`` went through).
_OWN_FRAME = re.compile(r'/rayredis/(worker/[^"]+|api|object_ref|generators|actor|remote_function|serialization)\.py"')


def _user_frames(tb: str) -> str:
    """A remote traceback without its first line and without rayredis's own frames."""
    lines = tb.splitlines(keepends=True)
    if lines and lines[0].startswith("Traceback (most recent call last):"):
        lines = lines[1:]
    out: list[str] = []
    skip = False
    for line in lines:
        if line.startswith("  File "):
            skip = _OWN_FRAME.search(line) is not None
        elif not line.startswith("    "):
            skip = False
        if not skip:
            out.append(line)
    return "".join(out)


class RayActorError(RayError):
    """The actor died or could not be created; calls to it fail with this error."""

    def __init__(self, message: str = "The actor died unexpectedly.", actor_id: str = "") -> None:
        self.actor_id = actor_id
        self.error_msg = message
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (type(self), (self.error_msg, self.actor_id))


class ActorDiedError(RayActorError):
    """The actor is dead: killed, out of restarts, or its creation failed."""


class ActorUnavailableError(RayActorError):
    """The actor is restarting; the call could not be delivered."""


class WorkerCrashedError(RayError):
    """The worker process executing the task died (and the task is out of retries)."""


class TaskCancelledError(RayError):
    """The task was cancelled with ``cancel``."""

    def __init__(self, task_id: str = "") -> None:
        self.task_id = task_id
        super().__init__(f"Task {task_id} was cancelled." if task_id else "Task was cancelled.")

    def __reduce__(self) -> Any:
        return (TaskCancelledError, (self.task_id,))


class GetTimeoutError(RayError, TimeoutError):
    """``get`` did not finish within its timeout."""


class ObjectLostError(RayError):
    """The object's value was lost and cannot be recovered."""

    def __init__(self, object_ref_hex: str = "", reason: str = "") -> None:
        self.object_ref_hex = object_ref_hex
        self.reason = reason
        super().__init__(f"Object {object_ref_hex} is lost. {reason}".strip())

    def __reduce__(self) -> Any:
        return (type(self), (self.object_ref_hex, self.reason))


class ObjectFetchError(ObjectLostError):
    """The object exists on another node, but this node could not copy it (no room, transfer failed)."""


class OwnerDiedError(ObjectLostError):
    """The node that owned the object died, and the object cannot be made again without it: a ``put``
    object (no lineage) or the result of an actor method (its value depends on the actor's state)."""


class ObjectReconstructionFailedError(ObjectLostError):
    """The object was lost and rebuilding it from lineage was not possible (``max_retries=0``, the
    result of an actor method, a ``put`` object, or the task table could not be read)."""


class ObjectReconstructionFailedMaxAttemptsExceededError(ObjectReconstructionFailedError):
    """The object was lost and the task that makes it has used all of its ``max_retries``."""


class ObjectReconstructionFailedLineageEvictedError(ObjectReconstructionFailedError):
    """The object was lost and the lineage of the task that made it is gone (its owner died and its
    task-table entry expired, ``task_table_ttl_s`` after the task ended)."""


class ObjectStoreFullError(RayError):
    """The node's object store cannot hold the object even after evicting unreferenced objects."""


class OutOfMemoryError(RayError):
    """A task was killed because the node ran out of memory."""


class NodeDiedError(RayError):
    """The node executing the task died."""


class RaySerializationError(RayError, TypeError):
    """A value could not be serialized or deserialized."""


class ControlStoreUnavailable(RaySystemError, ConnectionError):
    """Redis could not be reached within the retry budget (``connect_timeout_s``); the message
    names the shard and what to check."""


class TaskUnschedulableError(RayError):
    """The task can never be scheduled (e.g. a hard node affinity to a node that is dead)."""


class PendingCallsLimitExceeded(RayError):
    """An actor handle already has ``max_pending_calls`` calls that have not finished."""


class PlacementGroupSchedulingError(RayError):
    """A placement group could not be created."""


# ---- Errors that could not travel as they were (Ray's shapes; issue 8) ------------------------------


class UnserializableException(RayError):
    """A task's error could be pickled but not unpickled where it was read: its text and traceback
    as they were captured (Ray's class and message)."""

    def __init__(self, original_stack_trace: str = "") -> None:
        self._original_stack_trace = original_stack_trace
        super().__init__(original_stack_trace)

    def __str__(self) -> str:
        return ("Failed to deserialize exception. Refer to https://docs.ray.io/en/latest/ray-core/objects/"
                "serialization.html#custom-serializers-for-exceptions for more information.\n"
                f"Original exception:\n{self._original_stack_trace}")

    def __reduce__(self) -> Any:
        return (UnserializableException, (self._original_stack_trace,))


def dependency_failed(function_name: str, upstream: RayTaskError, pid: int = 0, ip: str = "",
                      actor_repr: str = "", actor_id: str = "") -> RayTaskError:
    """The error of task ``function_name`` that could not run because an argument's task failed with
    ``upstream``, in Ray's shape: this task's header, then the upstream error (same cause)."""
    text = ("  At least one of the input arguments for this task could not be computed:\n"
            f"rayredis.exceptions.RayTaskError: {upstream}")
    return RayTaskError(function_name, text, upstream.cause, "", pid or upstream.pid, ip or upstream.ip,
                        actor_repr, actor_id)


#: Ray's ``ErrorType`` name of each system error the raylet fails a task with (the state API's
#: ``error_type``); an application error is ``TASK_EXECUTION_EXCEPTION``.
_ERROR_TYPES: tuple[tuple[type[BaseException], str], ...] = (
    (ActorDiedError, "ACTOR_DIED"), (NodeDiedError, "NODE_DIED"), (TaskCancelledError, "TASK_CANCELLED"),
    (WorkerCrashedError, "WORKER_DIED"), (TaskUnschedulableError, "TASK_UNSCHEDULABLE_ERROR"),
)


def ray_error_type(exc: BaseException) -> str:
    """Ray's ``ErrorType`` name for a system error ``exc`` ("" when it has none)."""
    return next((name for cls, name in _ERROR_TYPES if isinstance(exc, cls)), "")
