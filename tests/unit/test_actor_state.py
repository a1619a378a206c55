"""The actor restart decision and method-call retry rule."""

from __future__ import annotations

import pytest

from rayredis.actor_state import (
    NEEDS_SCHEDULING,
    PLACED,
    ActorState,
    call_can_retry,
    on_actor_process_died,
)


def test_no_restarts_by_default_means_dead() -> None:
    d = on_actor_process_died(0, 0, intentional=False, reason="The worker died.")
    assert d.state is ActorState.DEAD
    assert d.num_restarts == 0
    assert d.cause.startswith("The worker died.")
    assert "max_restarts=0" in d.cause


def test_restarts_counted_until_exhausted() -> None:
    n = 0
    states = []
    for _ in range(4):
        d = on_actor_process_died(n, 2, intentional=False, reason="crash")
        states.append(d.state)
        n = d.num_restarts
    assert states == [ActorState.RESTARTING, ActorState.RESTARTING, ActorState.DEAD, ActorState.DEAD]
    assert n == 2
    assert "no restarts left" in on_actor_process_died(2, 2, intentional=False, reason="crash").cause


def test_restarting_cause_is_the_reason() -> None:
    d = on_actor_process_died(0, 1, intentional=False, reason="node died")
    assert d.state is ActorState.RESTARTING
    assert d.num_restarts == 1
    assert d.cause == "node died"


@pytest.mark.parametrize("n", [0, 1, 100, 10**6])
def test_unlimited_restarts(n: int) -> None:
    d = on_actor_process_died(n, -1, intentional=False, reason="crash")
    assert d.state is ActorState.RESTARTING
    assert d.num_restarts == n + 1


@pytest.mark.parametrize("max_restarts", [-1, 0, 5])
def test_intentional_death_never_restarts(max_restarts: int) -> None:
    d = on_actor_process_died(1, max_restarts, intentional=True, reason="killed by ray.kill")
    assert d.state is ActorState.DEAD
    assert d.num_restarts == 1
    assert d.cause == "killed by ray.kill"


def test_decision_is_frozen() -> None:
    d = on_actor_process_died(0, 0, intentional=True, reason="x")
    with pytest.raises(AttributeError):
        d.state = ActorState.ALIVE  # type: ignore[misc]
    assert d.state is ActorState.DEAD


def test_state_values_are_strings_for_redis() -> None:
    assert ActorState.DEAD.value == "DEAD"
    assert ActorState("ALIVE") is ActorState.ALIVE
    assert ActorState.PENDING_CREATION == "PENDING_CREATION"
    assert set(NEEDS_SCHEDULING) == {ActorState.PENDING_CREATION, ActorState.RESTARTING}
    assert set(PLACED) == {ActorState.SCHEDULED, ActorState.ALIVE}
    assert not set(NEEDS_SCHEDULING) & set(PLACED)


@pytest.mark.parametrize(
    ("used", "max_retries", "expected"),
    [(0, 0, False), (0, 1, True), (1, 1, False), (2, 3, True), (3, 3, False), (0, -1, True), (10**6, -1, True)],
)
def test_call_can_retry(used: int, max_retries: int, expected: bool) -> None:
    assert call_can_retry(used, max_retries) is expected
