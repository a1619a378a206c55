"""RemoteFunction: what ``@remote`` makes of a function; ``.remote()`` submits, ``.options()`` overrides."""

from __future__ import annotations

import functools
import weakref
from typing import TYPE_CHECKING, Any

from rayredis import generators, ids, options, serialization
from rayredis._private import signature
from rayredis._private.worker_context import get_worker
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.util.scheduling_strategies import capture_in_parent_group, fill_strategy

if TYPE_CHECKING:
    from rayredis.worker.core_worker import CoreWorker


class RemoteFunction:
    """A function that runs as a task on the cluster."""

    def __init__(self, fn: Any, task_options: dict[str, Any]):
        self._function = fn
        self._name = getattr(fn, "__qualname__", getattr(fn, "__name__", "task"))
        self._default_options = options.validate(dict(task_options), options.TASK_OPTIONS,
                                                  f"remote function {self._name!r}")
        if self._default_options.get("num_gpus") and "max_calls" not in self._default_options:
            self._default_options["max_calls"] = 1  # as Ray: a GPU task's worker does not linger
        self._default_options.setdefault("num_returns", generators.default_num_returns(fn))
        self._pickled: bytes | None = None
        params = signature.describe(fn)
        self._signature = signature.rebuild(params) if params is not None else None
        self._template_cache: tuple[weakref.ref[CoreWorker], int, pb.TaskSpec] | None = None
        functools.update_wrapper(self, fn)

    def __reduce__(self) -> Any:
        # Ship only what defines the function: caches (pickled bytes, spec templates) stay local.
        return (RemoteFunction, (self._function, self._default_options))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running '{self._name}()', "
            f"try '{self._name}.remote()'.")

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._submit(args, kwargs, self._default_options)

    def options(self, **task_options: Any) -> _Options:
        _check_overrides(task_options, self._name)
        return _Options(self, {**self._default_options, **task_options})

    def _remote(self, args: Any = None, kwargs: Any = None, **task_options: Any) -> Any:
        """Ray's ``f._remote(args=[...], kwargs={...}, **options)`` (``max_calls`` here is ignored, as in Ray)."""
        task_options.pop("max_calls", None)
        options.validate(task_options, options.TASK_OPTIONS, f"remote function {self._name!r}")
        return self._submit(tuple(args or ()), dict(kwargs or {}), {**self._default_options, **task_options})

    def _template(self, cw: CoreWorker, opts: dict[str, Any]) -> pb.TaskSpec:
        """The spec fields fixed by the options, built once per (process runtime, job) for the
        default options; the export to the function table happens with each build."""
        job = cw.ctx.job_id or cw.job_id
        cached = self._template_cache
        if opts is self._default_options and cached is not None and cached[0]() is cw and cached[1] == job:
            return cached[2]
        if self._pickled is None:
            self._pickled = serialization.dumps_function(self._function)
        fid = cw.export(self._pickled)
        num_returns = opts.get("num_returns", 1)
        generator = num_returns in generators.GENERATOR_RETURNS
        spec = pb.TaskSpec(kind=pb.NORMAL_TASK, function_id=fid, name=opts.get("name") or self._name,
                           num_returns=1 if generator else num_returns, generator=generator,
                           streaming=num_returns == "streaming",
                           max_retries=opts.get("max_retries", cw.cfg.default_max_retries),
                           max_calls=opts.get("max_calls", 0), job_id=job)
        retry = opts.get("retry_exceptions", False)
        spec.retry_exceptions = bool(retry)
        if isinstance(retry, (list, tuple)):
            spec.retry_exception_allowlist = serialization.dumps_function(tuple(retry))
        for k, v in options.resource_demand(opts, default_cpus=1.0).items():
            spec.resources[k] = v
        fill_strategy(spec, opts)
        if opts is self._default_options:
            self._template_cache = (weakref.ref(cw), job, spec)
        return spec

    def _submit(self, args: tuple[Any, ...], kwargs: dict[str, Any], opts: dict[str, Any]) -> Any:
        signature.check(self._signature, args, kwargs)
        cw = get_worker()
        spec = pb.TaskSpec()
        spec.CopyFrom(self._template(cw, opts))
        ctx = cw.ctx
        capture_in_parent_group(spec, opts, ctx.placement_group_id, ctx.capture_child_tasks)
        spec.task_id = ids.task_id()
        keep: list[Any] = []
        if args or kwargs:
            cw.build_args(spec, args, kwargs, keep)
        refs = cw.submit(spec)
        if spec.generator:
            return generators.caller_result(opts.get("num_returns"), refs[0])
        n = spec.num_returns
        if n == 1:
            return refs[0]
        if n == 0:
            return None
        return refs


def _check_overrides(task_options: dict[str, Any], name: str) -> None:
    """Validate ``.options(...)``: as in Ray, ``max_calls`` belongs to the function's definition."""
    options.validate(task_options, options.TASK_OPTIONS, f"remote function {name!r}")
    if "max_calls" in task_options:
        raise ValueError("Setting 'max_calls' is not supported in '.options()'.")


class _Options:
    """``f.options(...)``: the same function with some options overridden."""

    def __init__(self, rf: RemoteFunction, opts: dict[str, Any]):
        self._rf = rf
        self._opts = opts

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._rf._submit(args, kwargs, self._opts)

    def options(self, **more: Any) -> _Options:
        _check_overrides(more, self._rf._name)
        return _Options(self._rf, {**self._opts, **more})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._rf(*args, **kwargs)
