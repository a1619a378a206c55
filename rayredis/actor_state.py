"""The actor lifecycle as pure functions: states, allowed transitions and the restart decision."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ActorState(str, Enum):
    #: Entry written by the creator; waiting for the GCS to pick a node.
    PENDING_CREATION = "PENDING_CREATION"
    #: The GCS chose a node (``node``, ``attempt``) and asked its raylet to create the actor.
    SCHEDULED = "SCHEDULED"
    #: The constructor finished; calls are served by ``worker`` on ``node``.
    ALIVE = "ALIVE"
    #: The actor's process died and it has restarts left; the GCS schedules it again.
    RESTARTING = "RESTARTING"
    #: Terminal: killed, out of restarts, exited, or its constructor raised.
    DEAD = "DEAD"


#: States from which the GCS (re)schedules the actor.
NEEDS_SCHEDULING = (ActorState.PENDING_CREATION, ActorState.RESTARTING)
#: States in which the actor occupies (or is about to occupy) a worker on ``node``.
PLACED = (ActorState.SCHEDULED, ActorState.ALIVE)


@dataclass(frozen=True)
class DeathDecision:
    state: ActorState
    num_restarts: int
    cause: str


def on_actor_process_died(
    num_restarts: int, max_restarts: int, *, intentional: bool, reason: str
) -> DeathDecision:
    """What happens when the actor's process is gone.

    ``intentional`` covers ``kill(no_restart=True)``, ``exit_actor()``, a failed constructor and the
    owner job finishing; those never restart. Otherwise the actor restarts while
    ``num_restarts < max_restarts`` (``max_restarts=-1`` means without limit).
    """
    if intentional:
        return DeathDecision(ActorState.DEAD, num_restarts, reason)
    if max_restarts == -1 or num_restarts < max_restarts:
        return DeathDecision(ActorState.RESTARTING, num_restarts + 1, reason)
    return DeathDecision(
        ActorState.DEAD,
        num_restarts,
        f"{reason} The actor has no restarts left (max_restarts={max_restarts}).",
    )


def call_can_retry(retries_used: int, max_task_retries: int) -> bool:
    """Whether an in-flight method call is re-sent after the actor restarts."""
    return max_task_retries == -1 or retries_used < max_task_retries
