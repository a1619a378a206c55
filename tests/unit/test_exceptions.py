"""Remote errors keep their type: RayTaskError.as_instanceof_cause and friends."""

from __future__ import annotations

import pickle

import pytest

from rayredis import exceptions
from rayredis.exceptions import RayTaskError
from rayredis.serialization import deserialize, serialize_error

TB = 'Traceback (most recent call last):\n  File "job.py", line 3, in f\nValueError: boom\n'


class NeedsArgs(Exception):
    """A user exception whose constructor takes required arguments."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


def make(cause: BaseException | None) -> RayTaskError:
    return RayTaskError("f", TB, cause, "", 4242, "10.1.2.3")


def test_message_includes_remote_traceback_and_origin() -> None:
    err = make(ValueError("boom"))
    msg = str(err)
    assert msg.startswith("ValueError: task 'f' failed")
    assert "pid=4242" in msg and "ip=10.1.2.3" in msg
    assert "Remote traceback:" in msg
    assert TB in msg
    assert str(make(None)).startswith("Error: task 'f'")


def test_as_instanceof_cause_is_both_classes() -> None:
    cause = ValueError("boom")
    dual = make(cause).as_instanceof_cause()
    assert isinstance(dual, RayTaskError)
    assert isinstance(dual, ValueError)
    assert isinstance(dual, exceptions.RayError)
    assert type(dual).__name__ == "RayTaskError(ValueError)"
    assert dual.cause is cause
    assert dual.function_name == "f" and dual.pid == 4242 and dual.ip == "10.1.2.3"
    assert dual.traceback_str == TB
    assert TB in str(dual)
    assert "Remote traceback:" in str(dual)


def test_dual_is_caught_by_except_cause_class() -> None:
    with pytest.raises(KeyError) as ei:
        raise make(KeyError("k")).as_instanceof_cause()
    assert isinstance(ei.value, RayTaskError)

    caught = None
    try:
        raise make(ZeroDivisionError("x")).as_instanceof_cause()
    except ArithmeticError as e:  # a base class of the cause also catches it
        caught = e
    assert isinstance(caught, RayTaskError)


def test_dual_class_is_cached_per_cause_class() -> None:
    a = make(ValueError("1")).as_instanceof_cause()
    b = make(ValueError("2")).as_instanceof_cause()
    c = make(TypeError("3")).as_instanceof_cause()
    assert type(a) is type(b)
    assert type(a) is not type(c)


def test_dual_for_exception_with_required_constructor_args() -> None:
    dual = make(NeedsArgs(7, "detail")).as_instanceof_cause()
    assert isinstance(dual, NeedsArgs)
    assert isinstance(dual, RayTaskError)
    assert isinstance(dual.cause, NeedsArgs) and dual.cause.code == 7
    assert "NeedsArgs" in str(dual)


def test_no_dual_when_not_applicable() -> None:
    plain = make(None)
    assert plain.as_instanceof_cause() is plain
    nested = make(make(ValueError("inner")))
    assert nested.as_instanceof_cause() is nested
    base_exc = make(KeyboardInterrupt())
    assert base_exc.as_instanceof_cause() is base_exc  # not an Exception subclass


@pytest.mark.parametrize("cause", [ValueError("boom"), NeedsArgs(1, "x"), KeyError("k")])
def test_pickle_roundtrip(cause: Exception) -> None:
    for err in (make(cause), make(cause).as_instanceof_cause()):
        out = pickle.loads(pickle.dumps(err))
        assert isinstance(out, RayTaskError)
        assert out.function_name == "f"
        assert out.traceback_str == TB
        assert out.pid == 4242 and out.ip == "10.1.2.3"
        assert type(out.cause) is type(cause)
        assert str(out.cause) == str(cause)
        again = out.as_instanceof_cause()
        assert isinstance(again, type(cause)) and isinstance(again, RayTaskError)


def test_through_error_blob() -> None:
    blob = serialize_error(make(ValueError("boom")).as_instanceof_cause()).to_bytes()
    got = deserialize(blob)
    assert isinstance(got, RayTaskError)
    assert isinstance(got.as_instanceof_cause(), ValueError)
    assert TB in str(got)


def test_other_errors_pickle_with_their_fields() -> None:
    ad = pickle.loads(pickle.dumps(exceptions.ActorDiedError("gone", actor_id="ab12")))
    assert type(ad) is exceptions.ActorDiedError
    assert ad.error_msg == "gone" and ad.actor_id == "ab12"
    assert isinstance(ad, exceptions.RayActorError)

    tc = pickle.loads(pickle.dumps(exceptions.TaskCancelledError("t1")))
    assert tc.task_id == "t1" and "t1" in str(tc)
    assert str(exceptions.TaskCancelledError()) == "Task was cancelled."

    lost = pickle.loads(pickle.dumps(exceptions.ObjectLostError("ff00", "node died")))
    assert lost.object_ref_hex == "ff00" and "node died" in str(lost)  # the reason survives pickling
    assert "ff00" in str(exceptions.ObjectLostError("ff00", "node died"))


def test_hierarchy_matches_ray() -> None:
    assert exceptions.RayredisError is exceptions.RayError
    assert issubclass(exceptions.GetTimeoutError, TimeoutError)
    assert issubclass(exceptions.RaySerializationError, TypeError)
    assert issubclass(exceptions.ControlStoreUnavailable, ConnectionError)
    for cls in (exceptions.ActorDiedError, exceptions.ActorUnavailableError):
        assert issubclass(cls, exceptions.RayActorError)
    assert issubclass(exceptions.ObjectStoreFullError, exceptions.RayError)
