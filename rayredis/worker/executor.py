"""Executes assigned tasks and actor methods inside a worker process and reports their results."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import inspect
import logging
import os
import queue
import signal
import threading
from typing import Any

from rayredis import exceptions, generators, ids, serialization
from rayredis.common.resources import original_resources
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.worker.core_worker import CoreWorker, TaskContext

logger = logging.getLogger(__name__)

NORMAL, ACTOR_CREATION, ACTOR_TASK = pb.NORMAL_TASK, pb.ACTOR_CREATION, pb.ACTOR_TASK


class ActorExit(BaseException):
    """Raised by ``exit_actor()``; unwinds the method and ends the actor's process."""

    def __init__(self, how: str = "exit_actor()") -> None:
        super().__init__(how)
        self.how = how


def _ray_ready() -> bool:
    return True


def _ray_terminate() -> None:
    raise ActorExit("__ray_terminate__()")


#: Ray's built-in actor methods (``rayredis.actor.BUILTIN_METHODS``), which no user class defines.
_BUILTINS = {"__ray_ready__": _ray_ready, "__ray_terminate__": _ray_terminate}


class Executor:
    """Runs assignments from the raylet: in order on the main thread, or on the actor's pool/loop."""

    def __init__(self) -> None:
        self.cw: CoreWorker | None = None
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.instance: Any = None
        self.actor_id: bytes = b""
        self.actor_spec: pb.TaskSpec | None = None
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.async_sem: asyncio.Semaphore | None = None
        self.running: dict[bytes, int] = {}  # task id -> thread id
        self.async_calls: dict[bytes, asyncio.Task[Any]] = {}  # task id -> asyncio task, async actors
        self.cancelled: set[bytes] = set()
        #: Actor calls received and not started yet, by task id (a cancel fails them at once).
        self.queued: dict[bytes, pb.TaskSpec] = {}
        #: Queued calls already failed as cancelled: skipped when their turn comes.
        self.skip: set[bytes] = set()
        self._lock = threading.RLock()
        self.exit_requested = threading.Event()
        self.cancel_target: bytes | None = None
        #: Tasks run per function id, for ``max_calls``.
        self.calls: dict[bytes, int] = {}
        #: How the actor ended itself ("exit_actor()", "__ray_terminate__()"), "" if it did not.
        self.exit_how = ""

    # ---- callbacks from the raylet reader thread --------------------------------------------------

    def on_assign(self, a: pb.Assignment) -> None:
        if a.spec.kind == ACTOR_TASK:
            with self._lock:
                self.queued[a.spec.task_id] = a.spec
        self.inbox.put(a)

    def _start(self, spec: pb.TaskSpec) -> bool:
        """Take a call off the queue (under the lock); False if a cancel already failed it."""
        self.queued.pop(spec.task_id, None)
        if spec.task_id in self.skip:
            self.skip.discard(spec.task_id)
            return False
        return True

    def on_cancel(self, tid: bytes) -> None:
        with self._lock:
            spec = self.queued.pop(tid, None)
            if spec is not None:  # an actor call waiting its turn here fails at once, as in Ray
                self.skip.add(tid)
                self._report(spec, exc=exceptions.TaskCancelledError(tid.hex()))
                return
            self.cancelled.add(tid)
            task = self.async_calls.get(tid)
            if task is not None and self.loop is not None:  # a running async actor call: asyncio cancels it
                self.loop.call_soon_threadsafe(task.cancel)
                return
            thread_id = self.running.get(tid)
            if thread_id is None or self.actor_id:
                return  # a running call of a sync actor is not interrupted, only flagged (is_canceled), as in Ray
            if thread_id == threading.main_thread().ident:
                # A signal interrupts blocking calls such as time.sleep; the handler raises there.
                self.cancel_target = tid
                os.kill(os.getpid(), signal.SIGUSR1)
                return
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread_id), ctypes.py_object(exceptions.TaskCancelledError))

    def on_signal(self, signum: int, frame: Any) -> None:
        """SIGUSR1 handler: raise TaskCancelledError if the main thread still runs the cancelled task."""
        with self._lock:
            tid, self.cancel_target = self.cancel_target, None
            current = self.running.get(tid) if tid else None
        if tid and current == threading.main_thread().ident:
            raise exceptions.TaskCancelledError(tid.hex())

    def on_disconnect(self) -> None:
        self.inbox.put(None)

    # ---- main loop -----------------------------------------------------------------------------

    def run_forever(self) -> None:
        while True:
            a = self.inbox.get()
            if a is None or self.exit_requested.is_set():
                return
            kind = a.spec.kind
            if kind == ACTOR_TASK and self.pool is not None:
                self.pool.submit(self.execute, a)
            elif kind == ACTOR_TASK and self.loop is not None:
                asyncio.run_coroutine_threadsafe(self.execute_async(a), self.loop)
            else:
                self.execute(a)
            if self.exit_requested.is_set():
                return

    def _context(self, spec: pb.TaskSpec, gpu_ids: list[int]) -> TaskContext:
        placed = self.actor_spec if self.actor_spec is not None else spec
        pg = placed.strategy.placement_group_id if placed.strategy.kind == pb.STRATEGY_PLACEMENT_GROUP else b""
        return TaskContext(task_id=spec.task_id, job_id=spec.job_id, actor_id=self.actor_id or spec.actor_id,
                           namespace=spec.namespace, gpu_ids=gpu_ids, is_normal_task=spec.kind == NORMAL,
                           name=spec.name, placement_group_id=pg, resources=original_resources(dict(placed.resources)),
                           capture_child_tasks=bool(pg) and placed.strategy.capture_child_tasks)

    def _function_name(self, spec: pb.TaskSpec, fn: Any) -> str:
        """``module.qualname`` of what runs, as Ray's ``get_task_function_name()`` (methods: of the class)."""
        if spec.kind == ACTOR_TASK and self.instance is not None:
            cls = type(self.instance)
            return f"{cls.__module__}.{cls.__qualname__}.{spec.method_name}"
        name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', spec.name)}"
        return f"{name}.__init__" if spec.kind == ACTOR_CREATION else name

    def _resolve_args(self, a: pb.Assignment) -> tuple[list[Any], dict[str, Any]]:
        assert self.cw is not None
        resolved = {d.object_id: d for d in a.resolved}
        cache: dict[bytes, Any] = {}
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for arg in a.spec.args:
            if arg.object_id:
                if arg.object_id not in cache:
                    d = resolved.get(arg.object_id)
                    blob = self.cw._blob_from(d) if d is not None else None
                    if blob is None:
                        blob = self.cw.get_blobs([arg.object_id], None)[0]
                    if blob is None:
                        raise exceptions.ObjectLostError(arg.object_id.hex(), "argument of this task")
                    value = serialization.deserialize(blob)
                    if serialization.blob_kind(blob) == serialization.KIND_ERROR:
                        if isinstance(value, exceptions.RayTaskError):  # Ray's "could not be computed"
                            raise exceptions.dependency_failed(
                                a.spec.name or a.spec.method_name, value, os.getpid(), self.cw.node_ip,
                                *self._actor_identity(a.spec)).as_instanceof_cause()
                        raise value
                    cache[arg.object_id] = value
                value = cache[arg.object_id]
            else:
                value = serialization.deserialize(arg.data)
            if arg.keyword:
                kwargs[arg.keyword] = value
            else:
                args.append(value)
        return args, kwargs

    def _target(self, spec: pb.TaskSpec) -> Any:
        assert self.cw is not None
        if spec.kind == ACTOR_TASK:
            if self.instance is None:
                raise exceptions.RayActorError("The actor is not initialized in this worker.")
            builtin = _BUILTINS.get(spec.method_name)
            return builtin if builtin is not None else getattr(self.instance, spec.method_name)
        return self.cw.load_function(spec.function_id)

    def execute(self, a: pb.Assignment) -> None:
        assert self.cw is not None
        spec = a.spec
        with self._lock:
            if not self._start(spec):
                return
            if spec.task_id in self.cancelled:
                self.cancelled.discard(spec.task_id)
                self._report(spec, exc=exceptions.TaskCancelledError(spec.task_id.hex()))
                return
            self.running[spec.task_id] = threading.get_ident()
        ctx = self._context(spec, list(a.gpu_ids))
        self.cw.set_ctx(ctx)
        if a.gpu_ids or spec.resources.get("GPU"):
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in a.gpu_ids)
        result: Any = None
        exc: BaseException | None = None
        exited = ""
        try:
            try:
                args, kwargs = self._resolve_args(a)
                fn = self._target(spec)
                ctx.function_name = self._function_name(spec, fn)
                if spec.kind == ACTOR_CREATION:
                    self._create_actor(spec, fn, args, kwargs)
                else:
                    result = fn(*args, **kwargs)
                    if inspect.iscoroutine(result):
                        result = asyncio.run(result)
                    if spec.generator and inspect.isasyncgen(result):
                        result = asyncio.run(generators.collect_async(result, self.cw.put, self._error_put(spec),
                                                                      self._reporter(spec)))
                    elif spec.generator:
                        result = generators.collect(result, self.cw.put, self._error_put(spec), self._reporter(spec))
                    if spec.kind == ACTOR_TASK and spec.task_id in self.cancelled:
                        raise exceptions.TaskCancelledError(spec.task_id.hex())  # cancelled while it ran
            finally:
                with self._lock:
                    self.running.pop(spec.task_id, None)
                    self.cancelled.discard(spec.task_id)
        except ActorExit as e:
            exited = e.how
        except exceptions.TaskCancelledError:
            exc = exceptions.TaskCancelledError(spec.task_id.hex())
        except BaseException as e:  # noqa: BLE001 - user code may raise anything
            exc = e
        finally:
            self.cw.set_ctx(None)
        self._report(spec, result=result, exc=exc, exited=exited, last_call=self._last_call(spec))

    def _last_call(self, spec: pb.TaskSpec) -> bool:
        """Count a task of its function; True once it reached the function's ``max_calls`` (this
        worker then exits, as Ray's does, freeing whatever the function held)."""
        if spec.kind != NORMAL or not spec.max_calls:
            return False
        n = self.calls[spec.function_id] = self.calls.get(spec.function_id, 0) + 1
        return n >= spec.max_calls

    async def execute_async(self, a: pb.Assignment) -> None:
        assert self.cw is not None and self.async_sem is not None
        spec = a.spec
        result: Any = None
        exc: BaseException | None = None
        exited = ""
        task = asyncio.current_task()
        with self._lock:
            if not self._start(spec):
                return
            if spec.task_id in self.cancelled or task is None:
                self.cancelled.discard(spec.task_id)
                self._report(spec, exc=exceptions.TaskCancelledError(spec.task_id.hex()))
                return
            self.async_calls[spec.task_id] = task
        try:
            async with self.async_sem:
                ctx = self._context(spec, list(a.gpu_ids))
                self.cw.set_ctx(ctx)
                args, kwargs = self._resolve_args(a)
                fn = self._target(spec)
                ctx.function_name = self._function_name(spec, fn)
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
                if spec.generator:
                    result = await generators.collect_async(result, self.cw.put, self._error_put(spec),
                                                            self._reporter(spec))
        except ActorExit as e:
            exited = e.how
        except asyncio.CancelledError:
            exc = exceptions.TaskCancelledError(spec.task_id.hex())
        except BaseException as e:  # noqa: BLE001
            exc = e
        finally:
            with self._lock:
                self.async_calls.pop(spec.task_id, None)
                self.cancelled.discard(spec.task_id)
        self._report(spec, result=result, exc=exc, exited=exited)

    def _create_actor(self, spec: pb.TaskSpec, cls: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
        opts = spec.actor_options
        self.actor_id = spec.actor_id
        self.actor_spec = spec
        assert self.cw is not None
        self.cw.job_id = spec.job_id
        self.cw.namespace = spec.namespace
        if opts.is_async:
            self.loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run_loop() -> None:
                assert self.loop is not None
                asyncio.set_event_loop(self.loop)
                self.async_sem = asyncio.Semaphore(opts.max_concurrency or 1000)
                ready.set()
                self.loop.run_forever()

            threading.Thread(target=run_loop, name="rayredis-actor-loop", daemon=True).start()
            ready.wait()
        elif opts.max_concurrency > 1:
            self.pool = concurrent.futures.ThreadPoolExecutor(opts.max_concurrency,
                                                              thread_name_prefix="rayredis-actor")
        self.instance = cls.__new__(cls)
        init = getattr(self.instance, "__init__", None)
        if init is not None:
            if self.loop is not None and inspect.iscoroutinefunction(init):
                asyncio.run_coroutine_threadsafe(init(*args, **kwargs), self.loop).result()
            else:
                init(*args, **kwargs)

    def _report(self, spec: pb.TaskSpec, result: Any = None, exc: BaseException | None = None,
                exited: str = "", last_call: bool = False) -> None:
        """Send the task's result; ``exited`` names how the actor ended itself (exit_actor(), ...)."""
        assert self.cw is not None
        r = pb.TaskResult(task_id=spec.task_id, attempt=spec.attempt, worker_exiting=last_call)
        n = spec.num_returns
        oids = [ids.object_id_for_return(spec.task_id, i + 1) for i in range(n)]
        if exited:
            r.actor_exited = True
            exc = exceptions.ActorDiedError(f"The actor exited via {exited} while running this method.",
                                            spec.actor_id.hex())
        if exc is None:
            try:
                values = self._split_returns(spec, result)
                for oid, v in zip(oids, values):
                    r.returns.append(self.cw.put_result(oid, v))
            except BaseException as e:  # noqa: BLE001 - e.g. unserializable return value
                del r.returns[:]
                exc = e
        if exc is not None:
            r.failed = True
            if isinstance(exc, (exceptions.TaskCancelledError, exceptions.ActorDiedError)):
                err: BaseException = exc
            else:
                actor_repr, actor_id = self._actor_identity(spec)
                err = serialization.make_task_error(spec.name or spec.method_name, exc, os.getpid(),
                                                    self.cw.node_ip, actor_repr, actor_id)
                r.retryable = self._retryable(spec, exc)
            if spec.kind == ACTOR_CREATION:  # the raylet reads the constructor's error from here
                r.returns.append(self.cw.put_result(b"", err, serialization.KIND_ERROR))
            for oid in oids:
                r.returns.append(self.cw.put_result(oid, err, serialization.KIND_ERROR))
        self.cw.raylet.send("results", r)
        if exited or last_call:
            self.exit_how = self.exit_how or exited
            self.exit_requested.set()
            self.inbox.put(None)

    def _reporter(self, spec: pb.TaskSpec) -> generators.ItemReporter | None:
        """What reports a ``"streaming"`` call's items to its caller as they are yielded."""
        assert self.cw is not None
        return generators.ItemReporter(self.cw, spec.task_id) if spec.streaming else None

    def _error_put(self, spec: pb.TaskSpec) -> Any:
        """How a generator's exception becomes its last item: the task's error, put as an object."""
        assert self.cw is not None
        cw = self.cw

        def put(e: BaseException) -> Any:
            return cw.put_error(serialization.make_task_error(spec.name or spec.method_name, e, os.getpid(),
                                                              cw.node_ip, *self._actor_identity(spec)))

        return put

    def _actor_identity(self, spec: pb.TaskSpec) -> tuple[str, str]:
        """``(repr(instance), actor id)`` for an actor method's error header, as Ray shows them."""
        if spec.kind == NORMAL or not self.actor_id:
            return "", ""
        try:
            text = repr(self.instance) if self.instance is not None else ""
        except Exception:  # noqa: BLE001 - a user __repr__ that fails must not hide the error
            text = f"<{spec.name.split('.')[0]} object>"
        return text, self.actor_id.hex()

    def _split_returns(self, spec: pb.TaskSpec, result: Any) -> list[Any]:
        n = spec.num_returns
        if n == 0:
            return []
        if n == 1:
            return [result]
        try:
            values = list(result)
        except TypeError:
            values = None
        if values is None or len(values) != n:
            raise ValueError(
                f"Task {spec.name or spec.method_name!r} was declared with num_returns={n} but returned "
                f"{type(result).__name__} {'of length ' + str(len(values)) if values is not None else ''}; "
                f"return a tuple or list of exactly {n} values.")
        return values

    def _retryable(self, spec: pb.TaskSpec, exc: BaseException) -> bool:
        if not spec.retry_exceptions or spec.kind != NORMAL:
            return False
        if not spec.retry_exception_allowlist:
            return isinstance(exc, Exception)
        try:
            allow: tuple[type[BaseException], ...] = tuple(serialization.loads_function(spec.retry_exception_allowlist))  # type: ignore[arg-type]
            return isinstance(exc, allow)
        except Exception:  # noqa: BLE001
            return False


executor = Executor()
