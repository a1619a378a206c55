"""The ``task_claim`` CAS script (one re-run per attempt of a task whose owner died), run by a real
redis-server, and how it composes with ``task_transition``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from rayredis.raylet.task_table import parse_claim
from rayredis.store import keys
from rayredis.store.scripts import Scripts
from tests.unit.conftest import REDIS_PASSWORD

TID = "ab" * 16
KEY = keys.task_key(TID)
N1, N2, RUNNER = "11" * 16, "22" * 16, "99" * 16


@pytest.fixture
def r(redis_port: int) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_port, password=REDIS_PASSWORD)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def scripts(r: redis.Redis) -> Scripts:
    return Scripts(r)


def finished(r: redis.Redis, attempt: int = 0, ttl: int = 3600) -> None:
    """The entry as a runner leaves it: terminal, with its expiry."""
    r.hset(KEY, mapping={"spec": b"spec", "state": "FINISHED", "node": RUNNER, "attempt": attempt, "job": 1})
    r.expire(KEY, ttl)


def claim(scripts: Scripts, attempt: int, node: str) -> tuple[bool, int]:
    return parse_claim(scripts.task_claim(keys=[KEY], args=[attempt, node]))


def test_a_claim_takes_the_next_attempt_makes_it_pending_there_and_keeps_it(r: redis.Redis, scripts: Scripts) -> None:
    finished(r)
    assert claim(scripts, 0, N1) == (True, 1)
    entry = r.hgetall(KEY)
    assert entry[b"attempt"] == b"1" and entry[b"state"] == b"PENDING" and entry[b"node"] == N1.encode()
    assert entry[b"rebuilt_by"] == N1.encode() and entry[b"spec"] == b"spec"
    assert r.ttl(KEY) == -1  # no expiry while it is being re-run


def test_of_two_claims_on_one_attempt_exactly_one_applies(r: redis.Redis, scripts: Scripts) -> None:
    finished(r)
    assert claim(scripts, 0, N1) == (True, 1)
    raw = scripts.task_claim(keys=[KEY], args=[0, N2])
    assert [int(raw[0]), int(raw[1]), raw[2]] == [0, 1, N1.encode()]  # lost: the current attempt and its node
    assert r.hget(KEY, "rebuilt_by") == N1.encode()


def test_a_resent_claim_that_applied_is_still_won(r: redis.Redis, scripts: Scripts) -> None:
    finished(r)
    assert claim(scripts, 0, N1) == (True, 1)
    assert claim(scripts, 0, N1) == (True, 1)  # (a retry after a lost reply)
    assert r.hget(KEY, "attempt") == b"1"


def test_a_claim_on_a_stale_attempt_is_refused(r: redis.Redis, scripts: Scripts) -> None:
    finished(r, attempt=3)
    assert claim(scripts, 1, N1) == (False, 3)
    assert r.hget(KEY, "state") == b"FINISHED" and r.hget(KEY, "rebuilt_by") is None


def test_a_claim_on_a_missing_entry_reports_it_gone(r: redis.Redis, scripts: Scripts) -> None:
    assert claim(scripts, 0, N1) == (False, -1)
    assert not r.exists(KEY)


def test_the_old_runner_cannot_overwrite_a_claimed_attempt(r: redis.Redis, scripts: Scripts) -> None:
    """A runner of the old attempt that reports late is stale for task_transition; the claimer's
    own writes (its submission at the claimed attempt, then its terminal state) apply."""
    r.hset(KEY, mapping={"spec": b"spec", "state": "PENDING", "node": RUNNER, "attempt": 0})
    assert claim(scripts, 0, N1) == (True, 1)
    late = scripts.task_transition(keys=[KEY], args=["PENDING,RUNNING", 0, 3600, "state", "FINISHED", "attempt", 0,
                                                     "node", RUNNER])
    assert late == 0 and r.hget(KEY, "node") == N1.encode()
    resubmit = scripts.task_transition(keys=[KEY], args=["*", 1, 0, "spec", b"spec2", "state", "PENDING", "node", N1,
                                                         "attempt", 1, "job", 1])
    done = scripts.task_transition(keys=[KEY], args=["PENDING,RUNNING", 1, 3600, "state", "FINISHED", "attempt", 1,
                                                     "node", N1])
    assert resubmit == 1 and done == 1
    assert r.hget(KEY, "state") == b"FINISHED" and 0 < r.ttl(KEY) <= 3600
    assert claim(scripts, 1, N2) == (True, 2)  # and it can be claimed again if it is lost again
