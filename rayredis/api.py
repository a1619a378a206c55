"""The public functions: init/shutdown and get/put/wait/cancel/kill, plus cluster introspection."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

import grpc

from rayredis import exceptions
from rayredis._private import auth, process, retry, worker_context
from rayredis._private.node import DASHBOARD_PORT, NodeHandle, start_dashboard, start_head
from rayredis._private.session import read_current_cluster, remove_session_shm, sweep_dead_sessions_shm
from rayredis._private.supervisor import NodeSupervisor
from rayredis._private.worker_context import get_worker
from rayredis.actor import ActorClass, ActorHandle
from rayredis.actor import get_actor as _get_actor
from rayredis.config import get_config
from rayredis.generators import ObjectRefGenerator, wait_mixed
from rayredis.metrics.launch import start_exporter
from rayredis.object_ref import ActorTaskRef, ObjectRef
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol._generated import rayredis_pb2_grpc as pb_grpc
from rayredis.remote_function import RemoteFunction
from rayredis.store import keys, tables
from rayredis.store.client import ShardedRedis
from rayredis.worker import core_worker, log_forward

logger = logging.getLogger(__name__)

_lock = threading.RLock()
_started: NodeHandle | None = None
_supervisor: NodeSupervisor | None = None

#: Ray's ``init`` keywords that have no effect here (accepted so Ray programs run unchanged).
#: (``include_dashboard``, ``dashboard_host``, ``dashboard_port`` are used when init() starts the cluster.)
_IGNORED_INIT_KWARGS = {"include_dashboard", "dashboard_host", "dashboard_port", "logging_level",
                        "log_to_driver", "configure_logging", "logging_format", "_system_config",
                        "_temp_dir", "_node_ip_address", "local_mode", "runtime_env", "job_config",
                        "_metrics_export_port", "object_spilling_directory", "_enable_object_reconstruction"}


class RayContext(dict):  # type: ignore[type-arg]
    """What ``init`` returns: address info, usable as a dict (Ray returns a context like this)."""

    @property
    def address_info(self) -> dict[str, Any]:
        return dict(self)

    @property
    def dashboard_url(self) -> str:
        """The cluster's dashboard (``http://host:port``), or "" when none runs."""
        return str(self.get("webui_url", ""))

    def __enter__(self) -> RayContext:
        return self

    def __exit__(self, *a: Any) -> None:
        shutdown()

    def disconnect(self) -> None:
        shutdown()


def is_initialized() -> bool:
    return worker_context.global_worker is not None


def _resolve_address(address: str | None) -> str | None:
    """Argument, then RAYREDIS_ADDRESS, then the current-cluster file; None means start locally."""
    if address == "local":
        return None
    if address and address != "auto":
        scheme = address.split("://", 1)[0] if "://" in address else ""
        if scheme in ("ray", "http", "https"):
            raise ValueError(
                f"init(address={address!r}): rayredis has no Ray Client ({scheme}://) or job-server "
                "endpoint. Connect to the cluster's primary Redis shard instead: "
                "init(address='HOST:PORT', _redis_password=...) with the address `rayredis start --head` printed.")
        if scheme and scheme != "redis":
            raise ValueError(f"init(address={address!r}): unknown scheme {scheme!r}; pass 'HOST:PORT', "
                             "'auto' or 'local'.")
        return address.removeprefix("redis://")
    env = os.environ.get("RAYREDIS_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if env and env != "auto":
        logger.info("Using address %s set in the environment variable RAYREDIS_ADDRESS", env)
        return env
    info = read_current_cluster()
    if info is not None:
        return info.address
    if address == "auto":
        raise ConnectionError("Could not find any running rayredis instance. Start one with "
                              "`rayredis start --head`, or call rayredis.init() without an address to start "
                              "a local cluster.")
    return None


def _password_for(address: str, explicit: str | None) -> str | None:
    if explicit:
        return explicit
    env = os.environ.get("RAYREDIS_REDIS_PASSWORD")
    if env:
        return env
    info = read_current_cluster()
    if info is not None and info.address == address:
        return info.password
    return None


def _sentinels_for(address: str) -> list[str] | None:
    """The Sentinels the current-cluster file names for ``address`` (a replicated cluster started on
    this machine, found even while that first address is down), else None (``Config.redis_sentinels``,
    then the cluster hash at ``address``)."""
    info = read_current_cluster()
    if info is not None and info.address == address and info.sentinels:
        return list(info.sentinels)
    return None


def init(address: str | None = None, *, num_cpus: float | None = None, num_gpus: float | None = None,
         resources: dict[str, float] | None = None, object_store_memory: int | None = None,
         num_redis_shards: int | None = None, namespace: str | None = None, ignore_reinit_error: bool = False,
         _redis_password: str | None = None, _redis_replicas: int | None = None, **kwargs: Any) -> RayContext:
    """Connect this process to a cluster as a driver, starting a local one when there is none.

    ``address``: ``None`` (RAYREDIS_ADDRESS, the cluster started by ``rayredis start``, else a new
    local cluster), ``"auto"`` (an existing cluster or an error), ``"local"`` (always a new one), or
    the ``host:port`` of the primary Redis shard that ``rayredis start --head`` printed.
    ``_redis_replicas`` (a new local cluster only; default ``Config.redis_replicas``): replicas per
    Redis shard, with Sentinels failing a dead master over (docs/fault-tolerance.md).
    """
    global _started
    unknown = set(kwargs) - _IGNORED_INIT_KWARGS
    if unknown:
        raise TypeError(f"init() got unexpected keyword arguments {sorted(unknown)}.")
    if kwargs.get("local_mode"):
        raise ValueError("local_mode is not supported; rayredis always runs tasks in worker processes.")
    if kwargs.get("runtime_env"):
        raise ValueError("runtime_env is not supported by rayredis yet.")
    with _lock:
        if worker_context.global_worker is not None:
            if ignore_reinit_error:
                return _context()
            raise RuntimeError("Maybe you called rayredis.init twice by accident? This error can be suppressed "
                               "by passing in 'ignore_reinit_error=True' or by calling 'rayredis.shutdown()' "
                               "prior to 'rayredis.init()'.")
        if resources is not None and ("CPU" in resources or "GPU" in resources):
            raise ValueError("Use num_cpus/num_gpus instead of resources={'CPU'/'GPU': ...}.")
        target = _resolve_address(address)
        cfg = get_config()
        password: str | None
        if target is None:
            sweep_dead_sessions_shm()  # what drivers killed hard left behind (this user's only)
            _started = start_head(num_redis_shards=num_redis_shards, num_cpus=num_cpus, num_gpus=num_gpus or 0,
                                  resources=resources, object_store_memory=object_store_memory or 0,
                                  die_with_parent=True, redis_replicas=_redis_replicas)
            if kwargs.get("_metrics_export_port"):
                start_exporter(_started, int(kwargs["_metrics_export_port"]), cfg.bind_host)
            target, password = _started.address, _started.password
        else:
            if num_cpus is not None or num_gpus is not None or resources or object_store_memory or _redis_replicas:
                raise ValueError("When connecting to an existing cluster, num_cpus, num_gpus, resources, "
                                 "object_store_memory and _redis_replicas must not be provided.")
            password = _password_for(target, _redis_password)
        try:
            _connect(cfg, target, password, namespace, log_to_driver=kwargs.get("log_to_driver", True))
        except BaseException:
            if _started is not None:
                process.stop_recorded(_started.session_dir, grace_s=1.0, force=True)
                _started.collect()
                _started = None
            raise
        if _started is not None and kwargs.get("include_dashboard"):
            port = kwargs.get("dashboard_port")
            try:
                start_dashboard(_started, kwargs.get("dashboard_host"), DASHBOARD_PORT if port is None else int(port))
            except exceptions.RaySystemError as e:  # the cluster works without it, as in Ray
                logger.warning("%s", e)
        if _started is not None:
            global _supervisor
            _supervisor = NodeSupervisor(_started)
            _supervisor.start()
        atexit.register(shutdown)
        return _context()


def _connect(cfg: Any, address: str, password: str | None, namespace: str | None,
             log_to_driver: bool = True) -> None:
    started = _started.sentinels if _started is not None and _started.address == address else None
    store = ShardedRedis(address, password, sentinels=started or _sentinels_for(address)).connect()
    info = store.cluster_info()
    token = info.get("token", "")
    node = _local_node(store)

    tried: list[str] = []

    def register() -> pb.RegisterJobReply:
        # Re-read the address each attempt: a restarted GCS, or a standby that took over the lease,
        # listens on another port (only the lease holder writes gcs_address).
        gcs_address = (store.primary.hget(keys.cluster_key(), "gcs_address") or b"").decode()
        if gcs_address not in tried:
            tried.append(gcs_address)
        channel = grpc.insecure_channel(gcs_address or "unix:no-gcs-address", options=auth.GRPC_OPTIONS)
        stub_class: Any = pb_grpc.GcsStub  # the generated stubs are untyped
        try:
            registered: pb.RegisterJobReply = stub_class(channel).RegisterJob(
                pb.RegisterJobRequest(driver_pid=os.getpid(), node_id=bytes.fromhex(node.node_id),
                                      namespace=namespace or "", entrypoint=" ".join(sys.argv)),
                metadata=auth.metadata(token), timeout=5.0)
        finally:
            channel.close()
        return registered

    try:
        reply = retry.call(retry.gcs_rpc(cfg.connect_timeout_s), register)
    except grpc.RpcError as e:
        if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise
        session = info.get("session_dir", "")
        where = session or "<the head's session dir>"
        raise ConnectionError(
            f"No GCS of the cluster at {address} answered within connect_timeout_s={cfg.connect_timeout_s:g} s "
            f"(gcs_address tried: {', '.join(a or '<none published>' for a in tried)}; last error "
            f"{e.code().name}: {e.details()}). The cluster's GCS is not running, or no GCS holds its lease. To fix "
            f"it, start a GCS on the head: `RAYREDIS_REDIS_PASSWORD=... python -m rayredis.gcs --redis-address "
            f"{address} --session-dir {where}` (a head started by init() or `rayredis start --head --block` "
            "restarts its GCS by itself), or restart the cluster (`rayredis stop`, then `rayredis start --head`). "
            f"See {where}/logs/gcs_server.log for why the GCS stopped."
        ) from None
    worker_context.global_worker = core_worker.CoreWorker(
        cfg, store, node.address, token, is_driver=True, job_id=reply.job_id, namespace=reply.namespace,
        on_logs=log_forward.print_lines if log_to_driver else None, raylet_socket=node.socket,
        raylet_pid=node.pid)


def _local_node(store: ShardedRedis) -> tables.NodeInfo:
    """The node a driver connects to: a live node of this host (the head first, if it is here), else
    the head (a remote driver, whose objects then travel over the connection), else any live node."""
    live = [n.info for n in tables.alive(tables.read_nodes(store.primary)) if n.info is not None]
    if not live:
        raise ConnectionError(f"The cluster at {store.primary_address} has no live node to connect to.")
    for info in live:
        if _is_local_address(info.node_ip):
            return info
    return live[0]


def _is_local_address(ip: str) -> bool:
    """Whether ``ip`` is an address of this host (binding to it succeeds only then)."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        infos = socket.getaddrinfo(ip, None, family)
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((infos[0][4][0], 0))
        return True
    except OSError:
        return False


def _context() -> RayContext:
    cw = worker_context.global_worker
    assert cw is not None
    url = cw.store.primary.hget(keys.dashboard_key(), "url")
    return RayContext(address=cw.store.primary_address, node_id=cw.node_id.hex(), session_dir=cw.session_dir,
                      redis_address=cw.store.primary_address, node_ip_address=cw.node_ip,
                      webui_url=url.decode() if url else "")


def shutdown(_exiting_interpreter: bool = False) -> None:
    """Disconnect; if ``init`` started the cluster, stop every process it started (and nothing else)."""
    global _started, _supervisor
    with _lock:
        if _supervisor is not None:
            _supervisor.stop()
            _supervisor = None
        cw = worker_context.global_worker
        worker_context.global_worker = None
        if cw is not None:
            cw.shutdown()
            cw.store.close()
        if _started is not None:
            handle, _started = _started, None
            # The handle (and its Popen objects) lives until its processes are stopped and reaped.
            process.stop_recorded(handle.session_dir, grace_s=get_config().stop_grace_period_s)
            handle.collect()
            remove_session_shm(handle.session_dir)


def remote(*args: Any, **kwargs: Any) -> Any:
    """``@remote`` or ``@remote(num_cpus=..., ...)`` on a function (task) or class (actor)."""
    def make(target: Any) -> Any:
        if isinstance(target, type):
            return ActorClass(target, kwargs)
        if callable(target):
            return RemoteFunction(target, kwargs)
        raise TypeError("@remote must decorate a function or a class.")

    if len(args) == 1 and not kwargs and callable(args[0]):
        return make(args[0])
    if args:
        raise TypeError("Use @remote or @remote(option=value, ...), e.g. @remote(num_cpus=2).")
    return make


def get(object_refs: Any, *, timeout: float | None = None) -> Any:
    """The value(s) of ``object_refs`` (a ref or a list of refs), waiting up to ``timeout`` seconds."""
    cw = get_worker()
    if isinstance(object_refs, ObjectRef):
        return cw.get([object_refs], timeout)[0]
    if isinstance(object_refs, (list, tuple)):
        for r in object_refs:
            if not isinstance(r, ObjectRef):
                raise TypeError(f"get() expects ObjectRefs, got an element of type {type(r).__name__}.")
        return cw.get(list(object_refs), timeout)
    raise TypeError(f"get() expects an ObjectRef or a list of ObjectRefs, got {type(object_refs).__name__}.")


def put(value: Any, **_: Any) -> ObjectRef:
    """Store ``value`` in the object store; returns its ObjectRef."""
    return get_worker().put(value)


def wait(object_refs: Sequence[ObjectRef], *, num_returns: int = 1, timeout: float | None = None,
         fetch_local: bool = True) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Split ``object_refs`` into (ready, not ready) once ``num_returns`` are ready or ``timeout`` passes."""
    if isinstance(object_refs, ObjectRef) or not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"wait() expected a list of ray.ObjectRef, got {type(object_refs)}")
    given = list(object_refs)
    refs = [r._generator_ref if isinstance(r, ObjectRefGenerator) else r for r in given]
    for r in refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"wait() expected a list of ray.ObjectRef, got list containing {type(r)}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"The 'timeout' argument must be nonnegative. Received {timeout}")
    if not refs:
        return [], []  # as Ray: nothing to wait for
    oids = [r._id for r in refs]
    if len(set(oids)) != len(oids):
        raise ValueError("Wait requires a list of unique object refs.")
    if num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return {num_returns}.")
    if num_returns > len(refs):
        raise ValueError("num_returns cannot be greater than the number of ray_waitables provided to ray.wait.")
    if any(isinstance(g, ObjectRefGenerator) for g in given):  # ready once its next item is
        return wait_mixed(given, num_returns, timeout, fetch_local)
    return get_worker().wait(refs, oids, num_returns, timeout, fetch_local=fetch_local)


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that produces ``object_ref``; ``get`` then raises TaskCancelledError."""
    if isinstance(object_ref, ObjectRefGenerator):
        object_ref = object_ref._generator_ref  # cancels the generator task
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"cancel() expects an ObjectRef, got {type(object_ref).__name__}.")
    if force and isinstance(object_ref, ActorTaskRef):
        raise ValueError("force=True is not supported for actor tasks.")
    get_worker().cancel(object_ref, force, recursive)


def kill(actor: Any, *, no_restart: bool = True) -> None:
    """Kill an actor's process; with ``no_restart=False`` it restarts if it has restarts left."""
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"kill() only works on actor handles, got {type(actor).__name__}. To stop a task, "
                         "use cancel().")
    get_worker().kill_actor(actor._actor_id, no_restart)


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The handle of the live actor called ``name`` in ``namespace`` (default: the job's namespace)."""
    return _get_actor(name, namespace)


def get_gpu_ids() -> list[int]:
    """GPU indexes assigned to the current task or actor (empty on the driver)."""
    return list(get_worker().ctx.gpu_ids)


def _read_nodes() -> list[tables.NodeRecord]:
    """The node table, retried through a Redis outage for ``connect_timeout_s``, then
    ``ControlStoreUnavailable`` (rayredis's own error, naming what to check)."""
    cw = get_worker()
    return retry.read(cw.cfg.connect_timeout_s, tables.read_nodes, cw.store.primary)


def nodes() -> list[dict[str, Any]]:
    """Every node that ever joined, with liveness and resources, in Ray's format (registration order)."""
    registered = [(n, n.info) for n in _read_nodes() if n.info is not None]
    out = []
    for n, i in sorted(registered, key=lambda ni: ni[1].start_time):
        out.append({"NodeID": i.node_id, "Alive": n.alive, "alive": n.alive, "NodeManagerAddress": i.node_ip,
                    "NodeManagerHostname": i.node_ip, "NodeManagerPort": i.port,
                    "NodeName": i.node_ip, "Resources": dict(i.resources) if n.alive else {},
                    "IsHead": i.is_head, "SessionDir": i.session_dir, "Labels": {}})
    return out


def _sum(dicts: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0.0) + v
    return {k: v for k, v in out.items() if v > 0}


def cluster_resources() -> dict[str, float]:
    """Total resources of the live nodes (as they registered)."""
    live = tables.alive(_read_nodes())
    return _sum([n.info.resources for n in live if n.info is not None])


def available_resources() -> dict[str, float]:
    """Resources not held by running tasks and actors, from the nodes' latest heartbeats."""
    live = tables.alive(_read_nodes())
    return _sum([n.load.available for n in live if n.load is not None])


__all__ = ["available_resources", "cancel", "cluster_resources", "exceptions", "get", "get_actor",
           "get_gpu_ids", "init", "is_initialized", "kill", "nodes", "put", "remote", "shutdown", "wait"]
