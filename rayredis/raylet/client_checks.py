"""What the raylet refuses from an authenticated client before it acts on it (sans-I/O checks)."""

from __future__ import annotations

from rayredis import ids
from rayredis.protocol._generated import rayredis_pb2 as pb

#: Most return values one task may declare (each gets an object ID and an entry up front): past
#: this a client's spec could make the raylet allocate without bound.
MAX_RETURNS = 100_000

#: Kinds a client submits itself (an actor's constructor comes from the GCS, never from a client).
CLIENT_KINDS = (pb.NORMAL_TASK, pb.ACTOR_TASK)


def spec_problem(spec: pb.TaskSpec) -> str | None:
    """Why the raylet must not take ``spec`` from a client, or None if it may."""
    if len(spec.task_id) != ids.TASK_ID_LEN:
        return f"its task ID has {len(spec.task_id)} bytes, not {ids.TASK_ID_LEN}"
    if spec.kind not in CLIENT_KINDS:
        name = pb.TaskKind.Name(spec.kind) if spec.kind in pb.TaskKind.values() else str(spec.kind)
        return f"a client cannot submit a task of kind {name}"
    if spec.kind == pb.ACTOR_TASK and not spec.actor_id:
        return "an actor task names no actor"
    if not 0 <= spec.num_returns <= MAX_RETURNS:
        return f"num_returns={spec.num_returns} is outside 0..{MAX_RETURNS}"
    for a in spec.args:
        if a.object_id and len(a.object_id) != ids.OBJECT_ID_LEN:
            return f"an argument's object ID has {len(a.object_id)} bytes, not {ids.OBJECT_ID_LEN}"
    return None

