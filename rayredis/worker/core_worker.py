"""The per-process runtime shared by drivers and workers: submit, put, get, wait, cancel over the raylet stream."""

from __future__ import annotations

import hashlib
import mmap
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rayredis import exceptions, ids, serialization
from rayredis._private import retry
from rayredis.config import Config
from rayredis.object_ref import ActorTaskRef, ObjectRef
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol.limits import MAX_OBJECT_OVER_CONNECTION, too_large_message
from rayredis.store import keys
from rayredis.store.client import ShardedRedis
from rayredis.worker import shm_probe
from rayredis.worker.object_io import map_segment, write_segment
from rayredis.worker.owner_state import OwnerState
from rayredis.worker.raylet_client import RayletClient, ReconnectedError, Reply
from rayredis.worker.reconnect import NodeReconnector
from rayredis.worker.reference_counter import ReferenceCounter
from rayredis.worker.unhandled import UnhandledErrors

#: Times a get asks again for objects whose segment was spilled between the raylet's reply and the mapping.
_SPILLED_RETRIES = 5

@dataclass
class TaskContext:
    """What the current thread is executing (for runtime context, nesting and blocking)."""

    task_id: bytes = b""
    job_id: int = 0
    actor_id: bytes = b""
    namespace: str = ""
    gpu_ids: list[int] = field(default_factory=list)
    is_normal_task: bool = False
    name: str = ""
    placement_group_id: bytes = b""
    #: The resources the task (or its actor) holds, under the names the user gave them.
    resources: dict[str, float] = field(default_factory=dict)
    #: ``module.qualname`` of the function or method, as Ray's ``get_task_function_name()``.
    function_name: str = ""
    #: Whether the placement group captures the task's children (``placement_group_capture_child_tasks``).
    capture_child_tasks: bool = False


class CoreWorker:
    """One per process. Thread-safe: user threads and actor threads share it."""

    def __init__(self, cfg: Config, store: ShardedRedis, raylet_address: str, token: str, *,
                 is_driver: bool, job_id: int, namespace: str, worker_id: bytes | None = None,
                 actor_id: bytes = b"", on_assign: Any = None, on_cancel: Any = None,
                 on_disconnect: Any = None, on_logs: Any = None, raylet_socket: str = "", raylet_pid: int = 0):
        self.cfg = cfg
        self.store = store
        self.is_driver = is_driver
        self.worker_id = worker_id or ids.new_id(16)
        self.job_id = job_id
        self.namespace = namespace
        self._tls = threading.local()
        self.driver_task_id = ids.task_id()
        self._exported: set[bytes] = set()
        self._fn_cache: dict[bytes, Any] = {}
        #: Segments this process maps, while a value it got still uses them (see ``get_blobs``).
        self._mapped: weakref.WeakValueDictionary[bytes, mmap.mmap] = weakref.WeakValueDictionary()
        # Workers run next to their raylet; a driver checks that it shares the raylet's /dev/shm.
        #: What the raylet holds for this process, to give a restarted raylet (drivers only).
        self.owner = OwnerState()
        #: Refs that ``build_args`` created for a spec's arguments, until ``submit`` records them.
        self._arg_keep: dict[bytes, list[ObjectRef]] = {}
        probe = shm_probe.create(cfg.objects_over_connection) if is_driver else shm_probe.Probe()
        # Workers die with their raylet (PR_SET_PDEATHSIG); drivers find it again when it restarts.
        self._reconnector: NodeReconnector | None = None
        try:
            self.raylet = RayletClient(
                raylet_address, token,
                pb.Register(worker_id=self.worker_id, pid=os.getpid(), is_driver=is_driver, job_id=job_id,
                            namespace=namespace, actor_id=actor_id, shm_probe_name=probe.name,
                            shm_probe_data=probe.data),
                on_assign=on_assign, on_cancel=on_cancel, on_disconnect=on_disconnect, on_logs=on_logs,
                unix_socket=raylet_socket if cfg.local_socket else "", raylet_pid=raylet_pid)
        finally:
            probe.remove()
        #: A driver reports the failed results it never reads, as Ray does.
        self.unhandled = UnhandledErrors(lambda oid: self.refs.holds(oid)) if is_driver else None
        self.refs = ReferenceCounter(self._send_ref, self.unhandled.released if self.unhandled else None)
        if self.unhandled is not None:
            self.raylet.on_failed_returns = self.unhandled.failed
        #: Callbacks for tasks submitted with ``notify_done``, called (reader thread) when they end.
        self._on_done: dict[bytes, Any] = {}
        self.raylet.on_tasks_done = self._tasks_done
        info = self.raylet.info
        if is_driver and cfg.raylet_reconnect_timeout_s > 0:
            self.raylet.reconnector = NodeReconnector(self, info.node_id, cfg.raylet_reconnect_timeout_s)
        #: Large objects travel inside this process's messages: it cannot map the raylet's /dev/shm.
        self.objects_over_connection: bool = info.objects_over_connection
        self.node_id: bytes = info.node_id
        self.node_ip: str = info.node_ip
        self.session_dir: str = info.session_dir

    def _send_ref(self, field: str, oid: bytes) -> None:
        if self.raylet.reconnector is None:  # (a worker: nothing to restore, nothing to record)
            self.raylet.send(field, oid)
            return
        owner = self.owner
        record = owner.ref_added if field == "add_refs" else owner.ref_removed
        self.raylet.send(field, oid, record=lambda: record(oid))

    # ---- context -------------------------------------------------------------------------------

    @property
    def ctx(self) -> TaskContext:
        c = getattr(self._tls, "ctx", None)
        if c is None:
            c = self._tls.ctx = TaskContext(job_id=self.job_id, namespace=self.namespace)
        return c

    def set_ctx(self, ctx: TaskContext | None) -> None:
        self._tls.ctx = ctx

    # ---- function table ------------------------------------------------------------------------

    def export(self, pickled: bytes) -> bytes:
        """Store a pickled function/class in the function table; returns its content ID."""
        fid = hashlib.sha1(pickled).digest()[:16]
        if fid not in self._exported:
            retry.call(retry.redis_op(self.cfg.connect_timeout_s), self.store.primary.set,
                       keys.function_key(fid.hex()), pickled, nx=True)
            self._exported.add(fid)
            self._fn_cache.setdefault(fid, None)
        return fid

    def load_function(self, fid: bytes) -> Any:
        fn = self._fn_cache.get(fid)
        if fn is None:
            deadline = time.monotonic() + 10.0
            while True:
                data = retry.call(retry.redis_op(self.cfg.connect_timeout_s), self.store.primary.get,
                                  keys.function_key(fid.hex()))
                if data is not None:
                    break
                if time.monotonic() > deadline:
                    raise exceptions.RaySystemError(f"function {fid.hex()} is not in the function table")
                time.sleep(0.01)
            fn = serialization.loads_function(data)
            self._fn_cache[fid] = fn
        return fn

    # ---- objects -------------------------------------------------------------------------------

    def _store_blob(self, oid: bytes, ser: serialization.SerializedObject) -> tuple[pb.PutObject, int | None]:
        """Place a serialized value: inline when small, else in a shared-memory segment (or, over
        the connection, sent whole for the raylet to write into the segment it reserved). Also
        returns the raylet generation that reserved the segment (None inline): the put is void if
        the raylet restarted since (see :meth:`_send_put`)."""
        contained = [r.binary() for r in ser.contained_refs]
        if ser.total_size <= self.cfg.inline_object_max_bytes:
            data = ser.to_bytes()
            return pb.PutObject(object_id=oid, inline_data=data, size=len(data), contained=contained), None
        over = self.objects_over_connection
        if over and ser.total_size + 64 * len(contained) > MAX_OBJECT_OVER_CONNECTION:
            raise ValueError(too_large_message(f"Object {oid.hex()}", ser.total_size))
        req = self.raylet.next_id()
        reply = self.raylet.request("creates", pb.CreateRequest(req_id=req, object_id=oid,
                                                                size=ser.total_size), req)
        reply.wait()
        if reply.error is not None:
            raise reply.error
        if reply.value.error:
            raise exceptions.ObjectStoreFullError(reply.value.error)
        if over:
            return pb.PutObject(object_id=oid, shm_name=reply.value.shm_name, size=ser.total_size,
                                contained=contained, data=ser.to_bytes()), reply.generation
        try:
            view = write_segment(reply.value.shm_name, ser)
        except exceptions.ObjectStoreFullError as e:  # /dev/shm is full: the raylet gets the error instead
            blob = serialization.serialize_error(e).to_bytes()
            try:
                self.raylet.send("puts", pb.PutObject(object_id=oid, inline_data=blob, size=len(blob)),
                                 generation=reply.generation)
            except ReconnectedError:
                pass
            raise
        if self.refs.holds(oid) and not self.cfg.object_spilling:
            # (With spilling the mapping is not kept, so that the raylet can free the memory; a get
            # maps it anew. Without, it is put again from here after a raylet restart.)
            self.refs.values[oid] = view
        return pb.PutObject(object_id=oid, shm_name=reply.value.shm_name, size=ser.total_size,
                            contained=contained), reply.generation

    def _send_put(self, oid: bytes, ser: serialization.SerializedObject, cache: bool) -> None:
        """Store ``ser`` as ``oid`` and send the put; again from the start if the raylet restarted
        after reserving its segment (the segment belonged to the lost process)."""
        while True:
            p, gen = self._store_blob(oid, ser)

            def record(p: pb.PutObject = p) -> None:
                if cache and p.inline_data:
                    self.refs.values[oid] = p.inline_data
                if self.raylet.reconnector is not None:
                    self.owner.put_sent(oid, p.contained)

            try:
                self.raylet.send("puts", p, record=record, generation=gen)
                return
            except ReconnectedError:
                if p.shm_name and not p.data:
                    try:
                        os.unlink(os.path.join("/dev/shm", p.shm_name))
                    except OSError:
                        pass

    def put(self, value: Any) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError("Calling put() on an ObjectRef is not allowed; pass the ref itself instead.")
        ser = serialization.serialize(value)
        oid = ids.object_id_for_put(0)
        ref = ObjectRef(oid)
        self._send_put(oid, ser, cache=True)
        return ref

    def put_error(self, error: BaseException) -> ObjectRef:
        """Put an error object: ``get`` of the ref raises ``error`` (a generator's failing item)."""
        oid = ids.object_id_for_put(0)
        ref = ObjectRef(oid)
        self._send_put(oid, serialization.serialize_error(error), cache=True)
        return ref

    def barrier(self) -> None:
        """Return once the raylet has handled everything this process sent before (a round trip)."""
        req = self.raylet.next_id()
        reply = self.raylet.request("waits", pb.WaitRequest(req_id=req, num_returns=0, timeout_s=0.0), req)
        reply.wait()
        if reply.error is not None:
            raise reply.error

    def put_result(self, oid: bytes, value: Any, kind: int = serialization.KIND_VALUE) -> pb.PutObject:
        ser = serialization.serialize(value, kind) if kind == serialization.KIND_VALUE else \
            serialization.serialize_error(value)
        return self._store_blob(oid, ser)[0]

    def _blob_from(self, d: pb.ObjectData) -> Any:
        if d.missing:
            return None
        if d.data:
            return d.data
        if d.shm_name:
            return map_segment(d.shm_name, d.size)
        return d.inline_data

    def _send_gets(self, need: list[bytes]) -> list[tuple[int, Reply]]:
        """Ask the raylet for ``need``: in one request, or over the connection one request per object,
        so that each reply fits in one message."""
        groups = [[o] for o in dict.fromkeys(need)] if self.objects_over_connection else [need]
        out = []
        for group in groups:
            req = self.raylet.next_id()
            out.append((req, self.raylet.request("gets", pb.GetRequest(req_id=req, object_ids=group), req)))
        return out

    def _await_gets(self, replies: list[tuple[int, Reply]], timeout: float | None) -> bool:
        """Wait up to ``timeout`` for every reply; False after cancelling the unanswered ones if time ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for _, reply in replies:
            if not reply.wait(None if deadline is None else max(0.0, deadline - time.monotonic())):
                for req, r in replies:
                    if not r.wait(0):
                        self.raylet.forget(req)
                        self.raylet.send("cancel_gets", req)
                return False
        return True

    def get_blobs(self, oids: Sequence[bytes], timeout: float | None) -> list[Any]:
        """Blobs for ``oids``, waiting for the ones not yet available locally. A segment that the
        raylet spilled between its reply and the mapping is asked for again (it restores it)."""
        values = self.refs.values
        out: list[Any] = [values.get(o) for o in oids]
        out = [v if v is not None else self._mapped_view(o) for o, v in zip(oids, out)]
        need = [o for o, v in zip(oids, out) if v is None]
        for _ in range(_SPILLED_RETRIES):
            if not need:
                break
            got, need = self._fetch(need, len(oids), timeout)
            out = [v if v is not None else got.get(o) for o, v in zip(oids, out)]
        return out

    def mapped_values(self, skip: Mapping[bytes, Any]) -> dict[bytes, memoryview]:
        """Views of the segments this process still maps (for a restarted raylet), except ``skip``'s."""
        return {o: memoryview(mm) for o, mm in list(self._mapped.items()) if o not in skip}

    def _mapped_view(self, oid: bytes) -> memoryview | None:
        mm = self._mapped.get(oid)
        return memoryview(mm) if mm is not None else None

    def _fetch(self, need: list[bytes], of: int, timeout: float | None) -> tuple[dict[bytes, Any], list[bytes]]:
        """Ask the raylet for ``need``; returns the blobs and the objects whose segment was gone."""
        values = self.refs.values
        replies = self._send_gets(need)
        ctx = self.ctx
        blocked = ctx.is_normal_task and not (replies[-1][1].wait(0.001) and all(r.wait(0) for _, r in replies))
        if blocked:
            self.raylet.send("blocked", ctx.task_id)
        try:
            if not self._await_gets(replies, timeout):
                raise exceptions.GetTimeoutError(
                    f"Get timed out: {len(need)} of {of} objects were not ready after {timeout} s.")
        finally:
            if blocked:
                self.raylet.send("unblocked", ctx.task_id)
        got: dict[bytes, Any] = {}
        gone: list[bytes] = []
        for _, reply in replies:
            if reply.error is not None:
                raise reply.error
            for d in reply.value.objects:
                try:
                    blob = self._blob_from(d)
                except FileNotFoundError:  # spilled since the reply: ask again
                    gone.append(d.object_id)
                    continue
                got[d.object_id] = blob
                if blob is not None:
                    self.owner.sealed(d.object_id)
                if blob is not None and self.refs.holds(d.object_id):
                    if d.shm_name and not d.data:
                        # Kept only while a value uses the mapping: the raylet may then spill it.
                        self._mapped[d.object_id] = blob.obj
                    else:
                        values[d.object_id] = blob
        return got, gone

    def get(self, refs: Sequence[ObjectRef], timeout: float | None) -> list[Any]:
        oids = [r.binary() for r in refs]
        try:
            return self._get(oids, timeout)
        finally:
            if self.unhandled is not None:  # (after the reply: the raylet sent the errors before it)
                self.unhandled.handled(oids)

    def _get(self, oids: list[bytes], timeout: float | None) -> list[Any]:
        if len(oids) > 1:  # an element known to have failed raises without waiting for the rest
            cached = [self.refs.values.get(o) for o in oids]
            blobs = cached if any(b is not None and serialization.blob_kind(b) == serialization.KIND_ERROR
                                  for b in cached) else self.get_blobs(oids, timeout)
        else:
            blobs = self.get_blobs(oids, timeout)
        if len(blobs) > 1 and any(b is None for b in blobs):
            # The raylet answers as soon as one element failed (the rest may never be ready): that
            # error is raised first, as in Ray.
            for blob in blobs:
                if blob is not None and serialization.blob_kind(blob) == serialization.KIND_ERROR:
                    value = serialization.deserialize(blob)
                    raise value.as_instanceof_cause() if isinstance(value, exceptions.RayTaskError) else value
        result = []
        for oid, blob in zip(oids, blobs):
            if blob is None:
                raise exceptions.ObjectLostError(
                    oid.hex(), "It was freed or never existed on this node (was the ref created by "
                    "another cluster or kept past its owner's shutdown?).")
            value = serialization.deserialize(blob)
            if serialization.blob_kind(blob) == serialization.KIND_ERROR:
                if isinstance(value, exceptions.RayTaskError):
                    raise value.as_instanceof_cause()
                raise value
            result.append(value)
        return result

    def wait(self, refs: Sequence[ObjectRef], oids: Sequence[bytes], num_returns: int, timeout: float | None,
             fetch_local: bool = True) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """Split ``refs`` (whose IDs are ``oids``) into ready and not ready, in their original order."""
        known = self.refs.ready
        values = self.refs.values
        ready_set = {o for o in oids if o in known or o in values}
        if len(ready_set) < num_returns:
            req = self.raylet.next_id()
            reply = self.raylet.request("waits", pb.WaitRequest(
                req_id=req, object_ids=[o for o in oids if o not in ready_set],
                num_returns=num_returns - len(ready_set),
                timeout_s=-1.0 if timeout is None else float(timeout), no_fetch=not fetch_local), req)
            ctx = self.ctx
            blocked = timeout != 0 and ctx.is_normal_task and not reply.wait(0.001)
            if blocked:
                self.raylet.send("blocked", ctx.task_id)
            try:
                reply.wait()
            finally:
                if blocked:
                    self.raylet.send("unblocked", ctx.task_id)
            if reply.error is not None:
                raise reply.error
            newly = reply.value.ready
            ready_set.update(newly)
            for o in newly:
                self.owner.sealed(o)
            known.update(o for o in newly if self.refs.holds(o))
        ready: list[ObjectRef] = []
        rest: list[ObjectRef] = []
        for r, o in zip(refs, oids):
            if o in ready_set and len(ready) < num_returns:
                ready.append(r)
            else:
                rest.append(r)
        return ready, rest

    # ---- tasks -----------------------------------------------------------------------------------

    def build_args(self, spec: pb.TaskSpec, args: Sequence[Any], kwargs: dict[str, Any],
                   keep: list[ObjectRef], keep_refs: bool = False) -> None:
        """Fill ``spec.args``: refs by ID, small values inline, large values through the store.
        ``keep`` receives the refs this call creates (and, with ``keep_refs``, every ref argument:
        an actor's constructor reaches its node through the GCS, not through a pinning raylet)."""
        items: list[tuple[str, Any]] = [("", a) for a in args] + list(kwargs.items())
        for kw, value in items:
            if isinstance(value, ObjectRef):
                spec.args.add(object_id=value.binary(), keyword=kw)
                if self.unhandled is not None:  # its error goes on into this task's result
                    self.unhandled.handled((value.binary(),))
                if keep_refs:
                    keep.append(value)
                continue
            data = serialization.serialize(value)
            if data.total_size > self.cfg.inline_object_max_bytes:
                oid = ids.object_id_for_put(0)
                ref = ObjectRef(oid)
                keep.append(ref)
                if not keep_refs and self.raylet.reconnector is not None:  # (a constructor's: its handle)
                    self._arg_keep.setdefault(spec.task_id, []).append(ref)
                self._send_put(oid, data, cache=False)
                spec.args.add(object_id=oid, keyword=kw)
            else:
                spec.args.add(data=data.to_bytes(), keyword=kw)
                for r in data.contained_refs:
                    spec.nested_refs.append(r.binary())
                    if keep_refs:
                        keep.append(r)

    def submit(self, spec: pb.TaskSpec) -> list[ObjectRef]:
        """Send a filled TaskSpec; returns refs to its return values (held by this process)."""
        ctx = self.ctx
        spec.job_id = ctx.job_id or self.job_id
        if not spec.namespace:
            spec.namespace = ctx.namespace or self.namespace
        spec.parent_task_id = ctx.task_id or self.driver_task_id
        tid = spec.task_id
        ref_type = ActorTaskRef if spec.kind == pb.ACTOR_TASK else ObjectRef
        refs = [ref_type(ids.object_id_for_return(tid, i + 1)) for i in range(spec.num_returns)]
        keep = self._arg_keep.pop(tid, None)
        if self.raylet.reconnector is None:
            self.raylet.send("submit", spec)
        else:
            self.raylet.send("submit", spec, record=lambda: self.owner.submitted(spec, keep))
        return refs

    def when_done(self, tid: bytes, callback: Any) -> None:
        """Call ``callback(tid)`` once the task ``tid`` (submitted with ``notify_done``) ends."""
        self._on_done[tid] = callback

    def _tasks_done(self, tids: Sequence[bytes]) -> None:
        for tid in tids:
            cb = self._on_done.pop(tid, None)
            if cb is not None:
                cb(tid)

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        self.raylet.send("cancels", pb.CancelRequest(object_id=ref.binary(), force=force,
                                                     recursive=recursive))

    def kill_actor(self, actor_id: bytes, no_restart: bool, when_idle: bool = False) -> None:
        self.raylet.send("kills", pb.KillActorRequest(actor_id=actor_id, no_restart=no_restart,
                                                      when_idle=when_idle))

    def shutdown(self) -> None:
        self.raylet.close()
