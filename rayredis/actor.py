"""Actors: ``@remote`` classes, their handles and methods, named lookup and ``exit_actor``."""

from __future__ import annotations

import inspect
import itertools
import json
import threading
from typing import Any

from rayredis import exceptions, generators, ids, options, serialization
from rayredis._private import signature, worker_context
from rayredis._private.worker_context import get_worker
from rayredis.actor_state import ActorState
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store import tables
from rayredis.store.scripts import Scripts
from rayredis.util.scheduling_strategies import capture_in_parent_group, fill_strategy
from rayredis.worker.executor import ActorExit

_seq = itertools.count(1)

#: Ray's built-in methods of every actor: ``__ray_ready__`` returns True once the constructor has
#: run; ``__ray_terminate__`` ends the actor after the calls queued before it, as ``exit_actor()``.
BUILTIN_METHODS = ("__ray_ready__", "__ray_terminate__")


def method(*args: Any, **kwargs: Any) -> Any:
    """Decorate an actor method with options, e.g. ``@rayredis.method(num_returns=2)``."""
    if args and callable(args[0]) and not kwargs:
        return args[0]
    options.validate(kwargs, options.METHOD_OPTIONS, "actor methods")

    def deco(fn: Any) -> Any:
        fn.__rayredis_method_options__ = kwargs
        return fn

    return deco


def exit_actor() -> None:
    """End the current actor from inside one of its methods; it will not be restarted."""
    cw = worker_context.global_worker
    if cw is None or not cw.ctx.actor_id:
        raise TypeError("exit_actor API is called on a non-actor worker. Call this API inside an actor "
                        "method if you'd like to exit the actor gracefully.")
    raise ActorExit()


def _method_table(cls: type) -> dict[str, int | str]:
    out = {}
    for name, fn in inspect.getmembers(cls, predicate=lambda m: inspect.isfunction(m) or inspect.ismethod(m)):
        if name.startswith("__") and name != "__call__":
            continue
        opts = getattr(fn, "__rayredis_method_options__", {})
        n = opts.get("num_returns", generators.default_num_returns(fn))
        out[name] = n if n in generators.GENERATOR_RETURNS else int(n)
    return out


def _signatures(cls: type, methods: dict[str, int | str]) -> dict[str, signature.ParamSpec]:
    """The parameters of the constructor (key ``__init__``) and of each method, without ``self``."""
    out: dict[str, signature.ParamSpec] = {}
    for name in [*methods, "__init__"]:
        fn = getattr(cls, name, None)
        if fn is None or (name == "__init__" and fn is object.__init__):
            out[name] = [] if name == "__init__" else out.get(name, [])
            continue
        bound = isinstance(inspect.getattr_static(cls, name, None), (staticmethod, classmethod))
        params = signature.describe(fn, skip_first=not bound)
        if params is not None:
            out[name] = params
    return out


def _is_async(cls: type) -> bool:
    return any(inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
               for _, fn in inspect.getmembers(cls, predicate=inspect.isfunction))


class ActorClassInheritanceException(TypeError):  # noqa: N818 - Ray's public name
    """A class statement named an actor class as a base (Ray's class, raised where Ray raises it)."""


class ActorClass:
    """What ``@remote`` makes of a class; ``.remote()`` creates an actor.

    Other attributes are the wrapped class's, as in Ray (whose actor class derives from it): class
    attributes, static and class methods are reachable through it, in the driver and in methods."""

    def __new__(cls, *args: Any, **kwargs: Any) -> ActorClass:
        # ``class Sub(SomeActorClass)`` calls ``ActorClass(name, bases, namespace)``.
        if len(args) == 3 and isinstance(args[1], tuple) and isinstance(args[0], str):
            for base in args[1]:
                if isinstance(base, ActorClass):
                    raise ActorClassInheritanceException(
                        f"Attempted to define subclass '{args[0]}' of actor class '{base._name}'. Inheriting "
                        f"from actor classes is not currently supported. You can instead inherit from a "
                        f"non-actor base class and make the derived class an actor class (with @ray.remote).")
        return super().__new__(cls)

    def __init__(self, cls: type, actor_options: dict[str, Any]):
        self._cls = cls
        self._name = cls.__name__
        self._default_options = options.validate(dict(actor_options), options.ACTOR_OPTIONS,
                                                  f"actor class {self._name!r}")
        self._pickled: bytes | None = None
        self._methods = _method_table(cls)
        self._sigs = _signatures(cls, self._methods)
        self._init_sig = signature.rebuild(self._sigs["__init__"]) if "__init__" in self._sigs else None
        self._is_async = _is_async(cls)
        self.__doc__ = cls.__doc__

    def __reduce__(self) -> Any:
        return (ActorClass, (self._cls, self._default_options))

    def __getattr__(self, name: str) -> Any:
        # Only called for names ActorClass itself lacks; ``_cls`` is missing while unpickling.
        cls = self.__dict__.get("_cls")
        if cls is None or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)
        try:
            return getattr(cls, name)
        except AttributeError:
            raise AttributeError(f"'ActorClass({self._name})' object has no attribute {name!r}") from None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"Actors cannot be instantiated directly. Instead of '{self._name}()', use "
                        f"'{self._name}.remote()'.")

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        return self._submit(args, kwargs, self._default_options)

    def _remote(self, args: Any = None, kwargs: Any = None, **actor_options: Any) -> ActorHandle:
        """Ray's ``Actor._remote(args=[...], kwargs={...}, **options)``."""
        options.validate(actor_options, options.ACTOR_OPTIONS, f"actor class {self._name!r}")
        return self._submit(tuple(args or ()), dict(kwargs or {}), {**self._default_options, **actor_options})

    def options(self, **actor_options: Any) -> _ActorOptions:
        options.validate(actor_options, options.ACTOR_OPTIONS, f"actor class {self._name!r}")
        return _ActorOptions(self, {**self._default_options, **actor_options})

    def _submit(self, args: tuple[Any, ...], kwargs: dict[str, Any], opts: dict[str, Any]) -> ActorHandle:
        if opts.get("get_if_exists") and not opts.get("name"):
            raise ValueError("The actor name must be specified to use `get_if_exists`.")
        signature.check(self._init_sig, args, kwargs)
        cw = get_worker()
        if self._pickled is None:
            self._pickled = serialization.dumps_function(self._cls)
        fid = cw.export(self._pickled)
        aid = ids.new_id(16)
        name = opts.get("name") or ""
        namespace = opts.get("namespace") or cw.ctx.namespace or cw.namespace
        detached = opts.get("lifetime") == "detached"
        if detached and not name:
            raise ValueError("Detached actors must be named: pass name=... with lifetime='detached'.")
        max_conc = opts.get("max_concurrency") or (1000 if self._is_async else 1)
        spec = pb.TaskSpec(task_id=ids.task_id(), kind=pb.ACTOR_CREATION, function_id=fid,
                           name=f"{self._name}.__init__", actor_id=aid, num_returns=0,
                           job_id=cw.ctx.job_id or cw.job_id, namespace=namespace,
                           submitter_node=cw.node_id)  # whom the hosting node asks about ref args
        ao = spec.actor_options
        ao.max_restarts = opts.get("max_restarts", 0)
        ao.max_task_retries = opts.get("max_task_retries", 0)
        ao.max_concurrency = max_conc
        ao.is_async = self._is_async
        ao.detached = detached
        ao.name = name
        ao.namespace = namespace
        ao.class_name = self._name
        for k, v in options.resource_demand(opts, default_cpus=0.0).items():
            spec.resources[k] = v
        fill_strategy(spec, opts)
        capture_in_parent_group(spec, opts, cw.ctx.placement_group_id, cw.ctx.capture_child_tasks)
        keep: list[Any] = []
        cw.build_args(spec, args, kwargs, keep, keep_refs=True)
        fields = creation_fields(spec, self._methods, cw.node_id.hex())
        create_keys, create_args = tables.actor_create_call(aid.hex(), fields)
        res = Scripts(cw.store.primary).actor_create(keys=create_keys, args=create_args)
        if isinstance(res, bytes) and res.startswith(b"NAME_TAKEN"):
            if opts.get("get_if_exists"):
                return get_actor(name, namespace)
            raise ValueError(f"The name {name!r} (namespace={namespace!r}) is already taken by a live actor. "
                             f"Pick another name, look it up with get_actor({name!r}), or pass "
                             f"get_if_exists=True.")
        return ActorHandle(aid, self._name, self._methods, ao.max_task_retries, owner=not detached and not name,
                           keep=keep, sigs=self._sigs, max_pending_calls=opts.get("max_pending_calls", -1))


class _ActorOptions:
    def __init__(self, ac: ActorClass, opts: dict[str, Any]):
        self._ac = ac
        self._opts = opts

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        return self._ac._submit(args, kwargs, self._opts)


class ActorMethod:
    """``handle.method``: call it with ``.remote()``; ``.options(num_returns=...)`` overrides."""

    __slots__ = ("_handle", "_name", "_num_returns")

    def __init__(self, handle: ActorHandle, name: str, num_returns: int | str):
        self._handle = handle
        self._name = name
        self._num_returns = num_returns

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._handle._call(self._name, args, kwargs, self._num_returns)

    def options(self, **opts: Any) -> ActorMethod:
        options.validate(opts, options.METHOD_OPTIONS, "actor methods")
        n = opts.get("num_returns", self._num_returns)
        return ActorMethod(self._handle, self._name, n if n in generators.GENERATOR_RETURNS else int(n))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"Actor methods cannot be called directly. Instead of running "
                        f"'handle.{self._name}()', try 'handle.{self._name}.remote()'.")


class ActorHandle:
    """A reference to an actor; pass it to tasks and other actors freely."""

    def __init__(self, actor_id: bytes, class_name: str, methods: dict[str, int | str], max_task_retries: int = 0,
                 owner: bool = False, keep: list[Any] | None = None,
                 sigs: dict[str, signature.ParamSpec] | None = None, max_pending_calls: int = -1):
        self._actor_id = actor_id
        #: Ray's per-handle limit on calls not finished yet (-1 or 0: none), and those calls.
        self._max_pending_calls = max_pending_calls
        self._pending: set[bytes] = set()
        self._pending_lock = threading.Lock()
        #: Parameters per method, for call-site checks (None: unknown, e.g. a handle from get_actor).
        self._sigs = sigs
        self._bound: dict[str, Any] = {}
        self._class_name = class_name
        self._methods = methods
        self._max_task_retries = max_task_retries
        self._owner = owner
        self._shared = False
        self._keep = keep or []

    def __getattr__(self, name: str) -> ActorMethod:
        if name in BUILTIN_METHODS:
            return ActorMethod(self, name, 1)
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._methods:
            raise AttributeError(f"Actor class {self._class_name!r} has no method {name!r}.")
        return ActorMethod(self, name, self._methods[name])

    def _call(self, method_name: str, args: tuple[Any, ...], kwargs: dict[str, Any], num_returns: int | str) -> Any:
        if self._sigs is not None and method_name in self._sigs:
            sig = self._bound.get(method_name)
            if sig is None:
                sig = self._bound[method_name] = signature.rebuild(self._sigs[method_name])
            signature.check(sig, args, kwargs)
        cw = get_worker()
        generator = num_returns in generators.GENERATOR_RETURNS
        spec = pb.TaskSpec(task_id=ids.task_id(), kind=pb.ACTOR_TASK, actor_id=self._actor_id, method_name=method_name,
                           name=f"{self._class_name}.{method_name}", num_returns=1 if generator else int(num_returns),
                           caller_id=cw.worker_id, seq_no=next(_seq), generator=generator,
                           streaming=num_returns == "streaming")
        if self._max_pending_calls > 0:
            self._admit(cw, spec)
        keep: list[Any] = []
        if args or kwargs:
            cw.build_args(spec, args, kwargs, keep)
        refs = cw.submit(spec)
        if generator:
            return generators.caller_result(num_returns, refs[0])
        if num_returns == 1:
            return refs[0]
        return None if num_returns == 0 else refs

    def _admit(self, cw: Any, spec: pb.TaskSpec) -> None:
        """Count the call against ``max_pending_calls`` (raising, as Ray, when the handle is at the
        limit); the raylet reports when it ends (``notify_done``)."""
        with self._pending_lock:
            if len(self._pending) >= self._max_pending_calls:
                raise exceptions.PendingCallsLimitExceeded(
                    f"The task {spec.method_name} could not be submitted to {self!r} because more than "
                    f"{self._max_pending_calls} tasks are queued on the actor. This limit can be adjusted "
                    f"with the `max_pending_calls` actor option.")
            self._pending.add(spec.task_id)
        spec.notify_done = True
        cw.when_done(spec.task_id, self._pending.discard)

    @property
    def _ray_actor_id(self) -> Any:
        return _ActorID(self._actor_id)

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._actor_id.hex()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __reduce__(self) -> Any:
        self._shared = True
        return (ActorHandle, (self._actor_id, self._class_name, self._methods, self._max_task_retries, False, None,
                              self._sigs, self._max_pending_calls))

    def __del__(self) -> None:
        # Like Ray: an unnamed, non-detached actor dies when its creator drops the last handle,
        # unless the handle was passed elsewhere (then it lives until the job ends).
        if not self._owner or self._shared:
            return
        try:
            cw = worker_context.global_worker
            if cw is not None and not cw.raylet.closed:
                cw.kill_actor(self._actor_id, no_restart=True, when_idle=True)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class _ActorID:
    def __init__(self, b: bytes):
        self._b = b

    def hex(self) -> str:
        return self._b.hex()

    def binary(self) -> bytes:
        return self._b


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The handle of the live actor called ``name`` in ``namespace`` (default: the job's namespace)."""
    if not isinstance(name, str) or not name:
        raise ValueError("get_actor() needs the actor's name as a non-empty string.")
    cw = get_worker()
    ns = namespace or cw.ctx.namespace or cw.namespace
    entry = tables.read_named_actor(cw.store.primary, ns, name)
    if entry is None or entry.state is ActorState.DEAD:
        raise ValueError(f"Failed to look up actor with name {name!r} in namespace {ns!r}. It was never "
                         f"created, is dead, or lives in another namespace (pass namespace=...).")
    return handle_of(entry)


def handle_of(entry: tables.ActorEntry) -> ActorHandle:
    """A (non-owning) handle to the actor of ``entry``."""
    return ActorHandle(bytes.fromhex(entry.actor_id), entry.class_name, entry.methods, entry.max_task_retries)


def creation_fields(spec: pb.TaskSpec, methods: dict[str, int | str], owner_node: str) -> dict[str, Any]:
    """The ``rr:actor:<id>`` fields a new actor starts with (PENDING_CREATION), from its creation spec."""
    ao = spec.actor_options
    name_key = f"{ao.namespace}/{ao.name}" if ao.name else ""
    return {
        "state": ActorState.PENDING_CREATION.value, "spec": spec.SerializeToString(), "attempt": -1,
        "num_restarts": 0, "max_restarts": ao.max_restarts, "max_task_retries": ao.max_task_retries,
        "name": ao.name, "namespace": ao.namespace, "name_key": name_key, "job": spec.job_id,
        "detached": int(ao.detached), "class_name": ao.class_name, "methods": json.dumps(methods),
        "is_async": int(ao.is_async), "owner_node": owner_node,
    }


__all__ = ["ActorClass", "ActorClassInheritanceException", "ActorHandle", "ActorMethod", "exceptions", "exit_actor",
           "get_actor", "method"]
