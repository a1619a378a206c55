"""client_checks: the task specs a raylet refuses from a client (found by the raylet-core fuzzer)."""

from __future__ import annotations

from rayredis import ids
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.client_checks import MAX_RETURNS, spec_problem
from rayredis.serialization import blob_kind


def _spec(**kw: object) -> pb.TaskSpec:
    s = pb.TaskSpec(task_id=ids.task_id(), kind=pb.NORMAL_TASK, num_returns=1)
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def test_a_well_formed_spec_passes() -> None:
    assert spec_problem(_spec()) is None
    assert spec_problem(_spec(kind=pb.ACTOR_TASK, actor_id=b"a" * 16)) is None


def test_malformed_specs_are_refused_with_the_reason() -> None:
    assert "task ID has 3 bytes" in (spec_problem(_spec(task_id=b"abc")) or "")
    assert "ACTOR_CREATION" in (spec_problem(_spec(kind=pb.ACTOR_CREATION)) or "")
    assert "kind -1" in (spec_problem(_spec(kind=-1)) or "")
    assert "names no actor" in (spec_problem(_spec(kind=pb.ACTOR_TASK)) or "")
    assert "num_returns" in (spec_problem(_spec(num_returns=MAX_RETURNS + 1)) or "")
    assert "num_returns" in (spec_problem(_spec(num_returns=-1)) or "")
    bad = _spec()
    bad.args.add(object_id=b"short")
    assert "argument's object ID" in (spec_problem(bad) or "")


def test_an_empty_blob_has_no_kind() -> None:
    assert blob_kind(b"") == -1
