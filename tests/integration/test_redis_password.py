"""A Redis password with quotes, newlines and spaces still protects the shard, and a shard that would
answer without one is refused at start (it used to start with no password at all)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rayredis._private import process, redis_server
from rayredis.exceptions import RaySystemError


def _session(tmp_path: Path) -> str:
    d = tmp_path / "session_pw"
    for sub in ("logs", "pids"):
        (d / sub).mkdir(parents=True, mode=0o700)
    return str(d)


@pytest.mark.parametrize("password", ['a" b\nrequirepass ""\nc', "p w\\x22 é\t'\\", '"'])
def test_password_with_special_characters_is_required(tmp_path: Path, password: str) -> None:
    d = _session(tmp_path)
    port = redis_server.free_port()
    proc = redis_server.start_redis(d, port, password, "127.0.0.1", 0)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port, retry=Retry(NoBackoff(), 0)).ping()
        assert redis.Redis(port=port, password=password).ping()
    finally:
        process.stop_recorded(d, grace_s=5.0)
        proc.wait()
    assert not [r for r in process.recorded(d) if process.is_alive(r)]


def test_empty_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        redis_server.start_redis(_session(tmp_path), redis_server.free_port(), "", "127.0.0.1", 0)


def test_a_shard_that_answers_without_password_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _session(tmp_path)
    port = redis_server.free_port()
    # As if the config lost the password: the shard only has the password the start-up ping uses
    # as a client, so it answers anyone (redis ignores AUTH without requirepass only with a warning).
    monkeypatch.setattr(redis_server, "conf_quote", lambda v: '""')
    with pytest.raises(RaySystemError, match="answers clients without a password"):
        redis_server.start_redis(d, port, "secret", "127.0.0.1", 0)
    assert not [r for r in process.recorded(d) if process.is_alive(r)]
    assert os.listdir(os.path.join(d, "pids")) == []
