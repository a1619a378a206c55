from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StrategyKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRATEGY_DEFAULT: _ClassVar[StrategyKind]
    STRATEGY_SPREAD: _ClassVar[StrategyKind]
    STRATEGY_NODE_AFFINITY: _ClassVar[StrategyKind]
    STRATEGY_PLACEMENT_GROUP: _ClassVar[StrategyKind]

class TaskKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMAL_TASK: _ClassVar[TaskKind]
    ACTOR_CREATION: _ClassVar[TaskKind]
    ACTOR_TASK: _ClassVar[TaskKind]
STRATEGY_DEFAULT: StrategyKind
STRATEGY_SPREAD: StrategyKind
STRATEGY_NODE_AFFINITY: StrategyKind
STRATEGY_PLACEMENT_GROUP: StrategyKind
NORMAL_TASK: TaskKind
ACTOR_CREATION: TaskKind
ACTOR_TASK: TaskKind

class Arg(_message.Message):
    __slots__ = ("object_id", "data", "keyword")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    data: bytes
    keyword: str
    def __init__(self, object_id: _Optional[bytes] = ..., data: _Optional[bytes] = ..., keyword: _Optional[str] = ...) -> None: ...

class SchedulingStrategy(_message.Message):
    __slots__ = ("kind", "node_id", "soft", "placement_group_id", "bundle_index", "capture_child_tasks")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SOFT_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_CHILD_TASKS_FIELD_NUMBER: _ClassVar[int]
    kind: StrategyKind
    node_id: bytes
    soft: bool
    placement_group_id: bytes
    bundle_index: int
    capture_child_tasks: bool
    def __init__(self, kind: _Optional[_Union[StrategyKind, str]] = ..., node_id: _Optional[bytes] = ..., soft: _Optional[bool] = ..., placement_group_id: _Optional[bytes] = ..., bundle_index: _Optional[int] = ..., capture_child_tasks: _Optional[bool] = ...) -> None: ...

class ActorOptions(_message.Message):
    __slots__ = ("max_restarts", "max_task_retries", "max_concurrency", "is_async", "detached", "name", "namespace", "class_name")
    MAX_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_RETRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    IS_ASYNC_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    max_restarts: int
    max_task_retries: int
    max_concurrency: int
    is_async: bool
    detached: bool
    name: str
    namespace: str
    class_name: str
    def __init__(self, max_restarts: _Optional[int] = ..., max_task_retries: _Optional[int] = ..., max_concurrency: _Optional[int] = ..., is_async: _Optional[bool] = ..., detached: _Optional[bool] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., class_name: _Optional[str] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("task_id", "job_id", "kind", "function_id", "name", "args", "num_returns", "resources", "max_retries", "retry_exceptions", "retry_exception_allowlist", "actor_id", "method_name", "caller_id", "seq_no", "attempt", "actor_options", "nested_refs", "strategy", "parent_task_id", "namespace", "submitter_node", "max_calls", "notify_done", "generator", "streaming")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    NUM_RETURNS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_EXCEPTIONS_FIELD_NUMBER: _ClassVar[int]
    RETRY_EXCEPTION_ALLOWLIST_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_NAME_FIELD_NUMBER: _ClassVar[int]
    CALLER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_NO_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    NESTED_REFS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SUBMITTER_NODE_FIELD_NUMBER: _ClassVar[int]
    MAX_CALLS_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_DONE_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    job_id: int
    kind: TaskKind
    function_id: bytes
    name: str
    args: _containers.RepeatedCompositeFieldContainer[Arg]
    num_returns: int
    resources: _containers.ScalarMap[str, float]
    max_retries: int
    retry_exceptions: bool
    retry_exception_allowlist: bytes
    actor_id: bytes
    method_name: str
    caller_id: bytes
    seq_no: int
    attempt: int
    actor_options: ActorOptions
    nested_refs: _containers.RepeatedScalarFieldContainer[bytes]
    strategy: SchedulingStrategy
    parent_task_id: bytes
    namespace: str
    submitter_node: bytes
    max_calls: int
    notify_done: bool
    generator: bool
    streaming: bool
    def __init__(self, task_id: _Optional[bytes] = ..., job_id: _Optional[int] = ..., kind: _Optional[_Union[TaskKind, str]] = ..., function_id: _Optional[bytes] = ..., name: _Optional[str] = ..., args: _Optional[_Iterable[_Union[Arg, _Mapping]]] = ..., num_returns: _Optional[int] = ..., resources: _Optional[_Mapping[str, float]] = ..., max_retries: _Optional[int] = ..., retry_exceptions: _Optional[bool] = ..., retry_exception_allowlist: _Optional[bytes] = ..., actor_id: _Optional[bytes] = ..., method_name: _Optional[str] = ..., caller_id: _Optional[bytes] = ..., seq_no: _Optional[int] = ..., attempt: _Optional[int] = ..., actor_options: _Optional[_Union[ActorOptions, _Mapping]] = ..., nested_refs: _Optional[_Iterable[bytes]] = ..., strategy: _Optional[_Union[SchedulingStrategy, _Mapping]] = ..., parent_task_id: _Optional[bytes] = ..., namespace: _Optional[str] = ..., submitter_node: _Optional[bytes] = ..., max_calls: _Optional[int] = ..., notify_done: _Optional[bool] = ..., generator: _Optional[bool] = ..., streaming: _Optional[bool] = ...) -> None: ...

class ObjectData(_message.Message):
    __slots__ = ("object_id", "inline_data", "shm_name", "size", "missing", "data")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    INLINE_DATA_FIELD_NUMBER: _ClassVar[int]
    SHM_NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    inline_data: bytes
    shm_name: str
    size: int
    missing: bool
    data: bytes
    def __init__(self, object_id: _Optional[bytes] = ..., inline_data: _Optional[bytes] = ..., shm_name: _Optional[str] = ..., size: _Optional[int] = ..., missing: _Optional[bool] = ..., data: _Optional[bytes] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("worker_id", "pid", "is_driver", "job_id", "namespace", "actor_id", "shm_probe_name", "shm_probe_data")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    IS_DRIVER_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    SHM_PROBE_NAME_FIELD_NUMBER: _ClassVar[int]
    SHM_PROBE_DATA_FIELD_NUMBER: _ClassVar[int]
    worker_id: bytes
    pid: int
    is_driver: bool
    job_id: int
    namespace: str
    actor_id: bytes
    shm_probe_name: str
    shm_probe_data: bytes
    def __init__(self, worker_id: _Optional[bytes] = ..., pid: _Optional[int] = ..., is_driver: _Optional[bool] = ..., job_id: _Optional[int] = ..., namespace: _Optional[str] = ..., actor_id: _Optional[bytes] = ..., shm_probe_name: _Optional[str] = ..., shm_probe_data: _Optional[bytes] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("req_id", "object_ids")
    REQ_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    req_id: int
    object_ids: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, req_id: _Optional[int] = ..., object_ids: _Optional[_Iterable[bytes]] = ...) -> None: ...

class WaitRequest(_message.Message):
    __slots__ = ("req_id", "object_ids", "num_returns", "timeout_s", "no_fetch")
    REQ_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    NUM_RETURNS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    NO_FETCH_FIELD_NUMBER: _ClassVar[int]
    req_id: int
    object_ids: _containers.RepeatedScalarFieldContainer[bytes]
    num_returns: int
    timeout_s: float
    no_fetch: bool
    def __init__(self, req_id: _Optional[int] = ..., object_ids: _Optional[_Iterable[bytes]] = ..., num_returns: _Optional[int] = ..., timeout_s: _Optional[float] = ..., no_fetch: _Optional[bool] = ...) -> None: ...

class PutObject(_message.Message):
    __slots__ = ("object_id", "inline_data", "shm_name", "size", "contained", "data", "reclaim")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    INLINE_DATA_FIELD_NUMBER: _ClassVar[int]
    SHM_NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTAINED_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    RECLAIM_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    inline_data: bytes
    shm_name: str
    size: int
    contained: _containers.RepeatedScalarFieldContainer[bytes]
    data: bytes
    reclaim: bool
    def __init__(self, object_id: _Optional[bytes] = ..., inline_data: _Optional[bytes] = ..., shm_name: _Optional[str] = ..., size: _Optional[int] = ..., contained: _Optional[_Iterable[bytes]] = ..., data: _Optional[bytes] = ..., reclaim: _Optional[bool] = ...) -> None: ...

class CreateRequest(_message.Message):
    __slots__ = ("req_id", "object_id", "size")
    REQ_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    req_id: int
    object_id: bytes
    size: int
    def __init__(self, req_id: _Optional[int] = ..., object_id: _Optional[bytes] = ..., size: _Optional[int] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task_id", "returns", "failed", "retryable", "attempt", "actor_exited", "worker_exiting")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_EXITED_FIELD_NUMBER: _ClassVar[int]
    WORKER_EXITING_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    returns: _containers.RepeatedCompositeFieldContainer[PutObject]
    failed: bool
    retryable: bool
    attempt: int
    actor_exited: bool
    worker_exiting: bool
    def __init__(self, task_id: _Optional[bytes] = ..., returns: _Optional[_Iterable[_Union[PutObject, _Mapping]]] = ..., failed: _Optional[bool] = ..., retryable: _Optional[bool] = ..., attempt: _Optional[int] = ..., actor_exited: _Optional[bool] = ..., worker_exiting: _Optional[bool] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("object_id", "force", "recursive")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    force: bool
    recursive: bool
    def __init__(self, object_id: _Optional[bytes] = ..., force: _Optional[bool] = ..., recursive: _Optional[bool] = ...) -> None: ...

class KillActorRequest(_message.Message):
    __slots__ = ("actor_id", "no_restart", "when_idle")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    NO_RESTART_FIELD_NUMBER: _ClassVar[int]
    WHEN_IDLE_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    no_restart: bool
    when_idle: bool
    def __init__(self, actor_id: _Optional[bytes] = ..., no_restart: _Optional[bool] = ..., when_idle: _Optional[bool] = ...) -> None: ...

class LogLines(_message.Message):
    __slots__ = ("job_id", "prefix", "lines", "is_err")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    IS_ERR_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    prefix: str
    lines: _containers.RepeatedScalarFieldContainer[str]
    is_err: bool
    def __init__(self, job_id: _Optional[int] = ..., prefix: _Optional[str] = ..., lines: _Optional[_Iterable[str]] = ..., is_err: _Optional[bool] = ...) -> None: ...

class ClientBatch(_message.Message):
    __slots__ = ("register", "creates", "puts", "add_refs", "submit", "results", "gets", "waits", "cancels", "kills", "cancel_gets", "remove_refs", "blocked", "unblocked", "logs", "resolves")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    CREATES_FIELD_NUMBER: _ClassVar[int]
    PUTS_FIELD_NUMBER: _ClassVar[int]
    ADD_REFS_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    GETS_FIELD_NUMBER: _ClassVar[int]
    WAITS_FIELD_NUMBER: _ClassVar[int]
    CANCELS_FIELD_NUMBER: _ClassVar[int]
    KILLS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_GETS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_REFS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    UNBLOCKED_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    RESOLVES_FIELD_NUMBER: _ClassVar[int]
    register: Register
    creates: _containers.RepeatedCompositeFieldContainer[CreateRequest]
    puts: _containers.RepeatedCompositeFieldContainer[PutObject]
    add_refs: _containers.RepeatedScalarFieldContainer[bytes]
    submit: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    results: _containers.RepeatedCompositeFieldContainer[TaskResult]
    gets: _containers.RepeatedCompositeFieldContainer[GetRequest]
    waits: _containers.RepeatedCompositeFieldContainer[WaitRequest]
    cancels: _containers.RepeatedCompositeFieldContainer[CancelRequest]
    kills: _containers.RepeatedCompositeFieldContainer[KillActorRequest]
    cancel_gets: _containers.RepeatedScalarFieldContainer[int]
    remove_refs: _containers.RepeatedScalarFieldContainer[bytes]
    blocked: _containers.RepeatedScalarFieldContainer[bytes]
    unblocked: _containers.RepeatedScalarFieldContainer[bytes]
    logs: _containers.RepeatedCompositeFieldContainer[LogLines]
    resolves: _containers.RepeatedCompositeFieldContainer[ObjectLocation]
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., creates: _Optional[_Iterable[_Union[CreateRequest, _Mapping]]] = ..., puts: _Optional[_Iterable[_Union[PutObject, _Mapping]]] = ..., add_refs: _Optional[_Iterable[bytes]] = ..., submit: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ..., results: _Optional[_Iterable[_Union[TaskResult, _Mapping]]] = ..., gets: _Optional[_Iterable[_Union[GetRequest, _Mapping]]] = ..., waits: _Optional[_Iterable[_Union[WaitRequest, _Mapping]]] = ..., cancels: _Optional[_Iterable[_Union[CancelRequest, _Mapping]]] = ..., kills: _Optional[_Iterable[_Union[KillActorRequest, _Mapping]]] = ..., cancel_gets: _Optional[_Iterable[int]] = ..., remove_refs: _Optional[_Iterable[bytes]] = ..., blocked: _Optional[_Iterable[bytes]] = ..., unblocked: _Optional[_Iterable[bytes]] = ..., logs: _Optional[_Iterable[_Union[LogLines, _Mapping]]] = ..., resolves: _Optional[_Iterable[_Union[ObjectLocation, _Mapping]]] = ...) -> None: ...

class ObjectLocation(_message.Message):
    __slots__ = ("object_id", "node_id")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    node_id: bytes
    def __init__(self, object_id: _Optional[bytes] = ..., node_id: _Optional[bytes] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("spec", "resolved", "gpu_ids", "assigned")
    class AssignedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SPEC_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_FIELD_NUMBER: _ClassVar[int]
    spec: TaskSpec
    resolved: _containers.RepeatedCompositeFieldContainer[ObjectData]
    gpu_ids: _containers.RepeatedScalarFieldContainer[int]
    assigned: _containers.ScalarMap[str, float]
    def __init__(self, spec: _Optional[_Union[TaskSpec, _Mapping]] = ..., resolved: _Optional[_Iterable[_Union[ObjectData, _Mapping]]] = ..., gpu_ids: _Optional[_Iterable[int]] = ..., assigned: _Optional[_Mapping[str, float]] = ...) -> None: ...

class GetReply(_message.Message):
    __slots__ = ("req_id", "objects")
    REQ_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    req_id: int
    objects: _containers.RepeatedCompositeFieldContainer[ObjectData]
    def __init__(self, req_id: _Optional[int] = ..., objects: _Optional[_Iterable[_Union[ObjectData, _Mapping]]] = ...) -> None: ...

class WaitReply(_message.Message):
    __slots__ = ("req_id", "ready")
    REQ_ID_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    req_id: int
    ready: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, req_id: _Optional[int] = ..., ready: _Optional[_Iterable[bytes]] = ...) -> None: ...

class CreateReply(_message.Message):
    __slots__ = ("req_id", "shm_name", "error")
    REQ_ID_FIELD_NUMBER: _ClassVar[int]
    SHM_NAME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    req_id: int
    shm_name: str
    error: str
    def __init__(self, req_id: _Optional[int] = ..., shm_name: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class RegisterReply(_message.Message):
    __slots__ = ("node_id", "session_dir", "node_ip", "job_id", "shm_prefix", "objects_over_connection")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_DIR_FIELD_NUMBER: _ClassVar[int]
    NODE_IP_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SHM_PREFIX_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_OVER_CONNECTION_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    session_dir: str
    node_ip: str
    job_id: int
    shm_prefix: str
    objects_over_connection: bool
    def __init__(self, node_id: _Optional[bytes] = ..., session_dir: _Optional[str] = ..., node_ip: _Optional[str] = ..., job_id: _Optional[int] = ..., shm_prefix: _Optional[str] = ..., objects_over_connection: _Optional[bool] = ...) -> None: ...

class RayletBatch(_message.Message):
    __slots__ = ("register_reply", "assign", "get_replies", "wait_replies", "create_replies", "cancel_tasks", "logs", "tasks_done", "failed_returns")
    REGISTER_REPLY_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_FIELD_NUMBER: _ClassVar[int]
    GET_REPLIES_FIELD_NUMBER: _ClassVar[int]
    WAIT_REPLIES_FIELD_NUMBER: _ClassVar[int]
    CREATE_REPLIES_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TASKS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    TASKS_DONE_FIELD_NUMBER: _ClassVar[int]
    FAILED_RETURNS_FIELD_NUMBER: _ClassVar[int]
    register_reply: RegisterReply
    assign: _containers.RepeatedCompositeFieldContainer[Assignment]
    get_replies: _containers.RepeatedCompositeFieldContainer[GetReply]
    wait_replies: _containers.RepeatedCompositeFieldContainer[WaitReply]
    create_replies: _containers.RepeatedCompositeFieldContainer[CreateReply]
    cancel_tasks: _containers.RepeatedScalarFieldContainer[bytes]
    logs: _containers.RepeatedCompositeFieldContainer[LogLines]
    tasks_done: _containers.RepeatedScalarFieldContainer[bytes]
    failed_returns: _containers.RepeatedCompositeFieldContainer[ObjectData]
    def __init__(self, register_reply: _Optional[_Union[RegisterReply, _Mapping]] = ..., assign: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ..., get_replies: _Optional[_Iterable[_Union[GetReply, _Mapping]]] = ..., wait_replies: _Optional[_Iterable[_Union[WaitReply, _Mapping]]] = ..., create_replies: _Optional[_Iterable[_Union[CreateReply, _Mapping]]] = ..., cancel_tasks: _Optional[_Iterable[bytes]] = ..., logs: _Optional[_Iterable[_Union[LogLines, _Mapping]]] = ..., tasks_done: _Optional[_Iterable[bytes]] = ..., failed_returns: _Optional[_Iterable[_Union[ObjectData, _Mapping]]] = ...) -> None: ...

class CreateActorRequest(_message.Message):
    __slots__ = ("actor_id", "attempt", "creation_spec")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREATION_SPEC_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    attempt: int
    creation_spec: TaskSpec
    def __init__(self, actor_id: _Optional[bytes] = ..., attempt: _Optional[int] = ..., creation_spec: _Optional[_Union[TaskSpec, _Mapping]] = ...) -> None: ...

class CreateActorReply(_message.Message):
    __slots__ = ("accepted", "error")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    error: str
    def __init__(self, accepted: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class KillActorReply(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: _Optional[bool] = ...) -> None: ...

class NodeStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeStatsReply(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...

class PrepareBundlesRequest(_message.Message):
    __slots__ = ("pg_id", "bundle_indexes", "bundles_json", "txn")
    PG_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_INDEXES_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_JSON_FIELD_NUMBER: _ClassVar[int]
    TXN_FIELD_NUMBER: _ClassVar[int]
    pg_id: bytes
    bundle_indexes: _containers.RepeatedScalarFieldContainer[int]
    bundles_json: _containers.RepeatedScalarFieldContainer[str]
    txn: int
    def __init__(self, pg_id: _Optional[bytes] = ..., bundle_indexes: _Optional[_Iterable[int]] = ..., bundles_json: _Optional[_Iterable[str]] = ..., txn: _Optional[int] = ...) -> None: ...

class PrepareBundlesReply(_message.Message):
    __slots__ = ("ok", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class CommitBundlesRequest(_message.Message):
    __slots__ = ("pg_id", "bundle_indexes", "bundles_json", "txn")
    PG_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_INDEXES_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_JSON_FIELD_NUMBER: _ClassVar[int]
    TXN_FIELD_NUMBER: _ClassVar[int]
    pg_id: bytes
    bundle_indexes: _containers.RepeatedScalarFieldContainer[int]
    bundles_json: _containers.RepeatedScalarFieldContainer[str]
    txn: int
    def __init__(self, pg_id: _Optional[bytes] = ..., bundle_indexes: _Optional[_Iterable[int]] = ..., bundles_json: _Optional[_Iterable[str]] = ..., txn: _Optional[int] = ...) -> None: ...

class CommitBundlesReply(_message.Message):
    __slots__ = ("ok", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class CancelBundlesRequest(_message.Message):
    __slots__ = ("pg_id", "bundle_indexes", "txn")
    PG_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_INDEXES_FIELD_NUMBER: _ClassVar[int]
    TXN_FIELD_NUMBER: _ClassVar[int]
    pg_id: bytes
    bundle_indexes: _containers.RepeatedScalarFieldContainer[int]
    txn: int
    def __init__(self, pg_id: _Optional[bytes] = ..., bundle_indexes: _Optional[_Iterable[int]] = ..., txn: _Optional[int] = ...) -> None: ...

class CancelBundlesReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReturnBundlesRequest(_message.Message):
    __slots__ = ("pg_id",)
    PG_ID_FIELD_NUMBER: _ClassVar[int]
    pg_id: bytes
    def __init__(self, pg_id: _Optional[bytes] = ...) -> None: ...

class ReturnBundlesReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ValidateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ValidateReply(_message.Message):
    __slots__ = ("violations",)
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    violations: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, violations: _Optional[_Iterable[str]] = ...) -> None: ...

class ObjectInfo(_message.Message):
    __slots__ = ("object_id", "has_inline", "inline_data", "locations", "size", "contained", "lost")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    HAS_INLINE_FIELD_NUMBER: _ClassVar[int]
    INLINE_DATA_FIELD_NUMBER: _ClassVar[int]
    LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTAINED_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    has_inline: bool
    inline_data: bytes
    locations: _containers.RepeatedScalarFieldContainer[bytes]
    size: int
    contained: _containers.RepeatedScalarFieldContainer[bytes]
    lost: bool
    def __init__(self, object_id: _Optional[bytes] = ..., has_inline: _Optional[bool] = ..., inline_data: _Optional[bytes] = ..., locations: _Optional[_Iterable[bytes]] = ..., size: _Optional[int] = ..., contained: _Optional[_Iterable[bytes]] = ..., lost: _Optional[bool] = ...) -> None: ...

class ForwardTask(_message.Message):
    __slots__ = ("spec", "attempt")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    spec: TaskSpec
    attempt: int
    def __init__(self, spec: _Optional[_Union[TaskSpec, _Mapping]] = ..., attempt: _Optional[int] = ...) -> None: ...

class TaskDone(_message.Message):
    __slots__ = ("task_id", "attempt", "failed", "actor_exited")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    ACTOR_EXITED_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    attempt: int
    failed: bool
    actor_exited: bool
    def __init__(self, task_id: _Optional[bytes] = ..., attempt: _Optional[int] = ..., failed: _Optional[bool] = ..., actor_exited: _Optional[bool] = ...) -> None: ...

class PeerBatch(_message.Message):
    __slots__ = ("from_node", "epoch", "seq", "objects", "tasks", "done", "free", "resolve", "cancels", "kills")
    FROM_NODE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_FIELD_NUMBER: _ClassVar[int]
    CANCELS_FIELD_NUMBER: _ClassVar[int]
    KILLS_FIELD_NUMBER: _ClassVar[int]
    from_node: bytes
    epoch: int
    seq: int
    objects: _containers.RepeatedCompositeFieldContainer[ObjectInfo]
    tasks: _containers.RepeatedCompositeFieldContainer[ForwardTask]
    done: _containers.RepeatedCompositeFieldContainer[TaskDone]
    free: _containers.RepeatedScalarFieldContainer[bytes]
    resolve: _containers.RepeatedScalarFieldContainer[bytes]
    cancels: _containers.RepeatedCompositeFieldContainer[CancelRequest]
    kills: _containers.RepeatedCompositeFieldContainer[KillActorRequest]
    def __init__(self, from_node: _Optional[bytes] = ..., epoch: _Optional[int] = ..., seq: _Optional[int] = ..., objects: _Optional[_Iterable[_Union[ObjectInfo, _Mapping]]] = ..., tasks: _Optional[_Iterable[_Union[ForwardTask, _Mapping]]] = ..., done: _Optional[_Iterable[_Union[TaskDone, _Mapping]]] = ..., free: _Optional[_Iterable[bytes]] = ..., resolve: _Optional[_Iterable[bytes]] = ..., cancels: _Optional[_Iterable[_Union[CancelRequest, _Mapping]]] = ..., kills: _Optional[_Iterable[_Union[KillActorRequest, _Mapping]]] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("object_id", "from_node", "same_host")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_NODE_FIELD_NUMBER: _ClassVar[int]
    SAME_HOST_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    from_node: bytes
    same_host: bool
    def __init__(self, object_id: _Optional[bytes] = ..., from_node: _Optional[bytes] = ..., same_host: _Optional[bool] = ...) -> None: ...

class ObjectChunk(_message.Message):
    __slots__ = ("total_size", "data", "inline", "missing", "last", "contained", "shm_name")
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    INLINE_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    CONTAINED_FIELD_NUMBER: _ClassVar[int]
    SHM_NAME_FIELD_NUMBER: _ClassVar[int]
    total_size: int
    data: bytes
    inline: bool
    missing: bool
    last: bool
    contained: _containers.RepeatedCompositeFieldContainer[ObjectInfo]
    shm_name: str
    def __init__(self, total_size: _Optional[int] = ..., data: _Optional[bytes] = ..., inline: _Optional[bool] = ..., missing: _Optional[bool] = ..., last: _Optional[bool] = ..., contained: _Optional[_Iterable[_Union[ObjectInfo, _Mapping]]] = ..., shm_name: _Optional[str] = ...) -> None: ...

class RegisterJobRequest(_message.Message):
    __slots__ = ("driver_pid", "node_id", "namespace", "entrypoint")
    DRIVER_PID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    driver_pid: int
    node_id: bytes
    namespace: str
    entrypoint: str
    def __init__(self, driver_pid: _Optional[int] = ..., node_id: _Optional[bytes] = ..., namespace: _Optional[str] = ..., entrypoint: _Optional[str] = ...) -> None: ...

class RegisterJobReply(_message.Message):
    __slots__ = ("job_id", "namespace")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    namespace: str
    def __init__(self, job_id: _Optional[int] = ..., namespace: _Optional[str] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PingReply(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...
