"""The redis-py reconnect policy's time budget, and the throttle of repeated warnings."""

from __future__ import annotations

import pytest

from rayredis._private import retry
from rayredis._private.logs import Throttle


@pytest.mark.parametrize("budget", [0.1, 1.0, 5.0, 30.0, 120.0])
def test_reconnect_schedule_waits_about_its_budget(budget: float) -> None:
    policy = retry.redis_connection(budget)
    backoff = policy._backoff
    waits = [backoff.compute(n) for n in range(1, policy.get_retries() + 1)]
    assert waits[:3] == [0.1, 0.2, 0.4][:len(waits)] and max(waits) <= 0.5
    assert budget <= sum(waits) < budget + 0.5  # at least the budget, at most one wait more
    assert retry.async_redis_connection(budget).get_retries() == policy.get_retries()


def test_throttle_lets_one_through_per_interval_and_counts_the_rest() -> None:
    t = Throttle(interval_s=3600)
    assert t.allow("a") == 0
    assert [t.allow("a") for _ in range(3)] == [None, None, None]
    assert t.allow("b") == 0  # keys are independent
    t._last["a"] = (t._last["a"][0] - 7200, t._last["a"][1])  # the interval has passed
    assert t.allow("a") == 3
