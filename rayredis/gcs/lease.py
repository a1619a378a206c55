"""The GCS lease as a sans-I/O state machine: when to acquire or renew it, and whether this process may act."""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

#: The share of ``lease_s`` after a renewal's *sending* that the holder trusts its lease. Redis
#: keeps the key for the whole ``lease_s`` from when it *runs* the command, so the holder stops
#: acting at least ``(1 - TRUST) * lease_s`` before any standby can take over (room for clock-rate
#: differences and for a write already on its way).
TRUST = 0.8


class LeaseLostError(Exception):
    """A decision write or raylet call of a GCS that does not (or no longer) hold the lease."""


class Op(Enum):
    ACQUIRE = "acquire"
    RENEW = "renew"


class Event(Enum):
    ACQUIRED = "acquired"
    LOST = "lost"


@dataclass(frozen=True)
class Attempt:
    """One call to the ``gcs_lease`` script: what, for which holder id, sent when (monotonic)."""

    op: Op
    holder: str
    sent_at: float


class Lease:
    """One GCS process's view of the lease: standby until an acquire succeeds, then active while
    renewals succeed and the last one is recent enough to trust.

    Each active term has its own random holder id: a term that is lost (a renewal found another
    holder, or none succeeded for ``TRUST * lease_s``) never comes back; the process acquires
    again with a fresh id, after releasing the old one (:meth:`take_released`).
    """

    def __init__(self, lease_s: float, new_holder: Callable[[], str] = lambda: secrets.token_hex(16)):
        if lease_s <= 0:
            raise ValueError(f"gcs_lease_s must be positive (got {lease_s}).")
        self.lease_s = lease_s
        #: The holder renews three times per lease: two renewals can fail before it stops acting.
        self.renew_every_s = lease_s / 3
        #: A standby tries to acquire this often, so it takes over soon after the lease lapses.
        self.poll_every_s = min(0.5, lease_s / 6)
        self.trust_s = TRUST * lease_s
        self._new_holder = new_holder
        self.holder = new_holder()
        self.active = False
        #: Monotonic time until which the active holder may act (-inf while standby).
        self.valid_until = -math.inf
        #: Active terms so far (1 during the first).
        self.term = 0
        self._last_sent = -math.inf
        self._released: list[str] = []

    def held(self, now: float, holder: str | None = None) -> bool:
        """Whether this process may act now (as ``holder``, when given: a term checks its own id)."""
        return self.active and now < self.valid_until and (holder is None or holder == self.holder)

    def check(self, now: float, holder: str | None = None) -> None:
        """Raise :class:`LeaseLostError` unless :meth:`held`."""
        if not self.held(now, holder):
            raise LeaseLostError(f"this GCS does not hold the lease (term {self.term})")

    def attempt(self, now: float) -> Attempt:
        """The next call to make: renew while active, else acquire."""
        self._last_sent = now
        return Attempt(Op.RENEW if self.active else Op.ACQUIRE, self.holder, now)

    def timeout(self, now: float) -> float:
        """How long to wait for the reply to an attempt sent at ``now``: a renewal no longer than
        the lease is trusted (no reply by then means it is lost)."""
        return max(0.01, self.valid_until - now) if self.active else self.lease_s

    def settle(self, attempt: Attempt, ok: bool | None, now: float) -> Event | None:
        """Apply an attempt's outcome (``ok``: True done, False refused, None no answer).

        Returns ACQUIRED when a term begins, LOST when the current one ends, else None.
        """
        if attempt.holder != self.holder:
            return self.expire(now)  # the reply of a term that is already over
        if attempt.op is Op.ACQUIRE:
            if ok and not self.active:
                if now >= attempt.sent_at + self.trust_s:
                    # Acquired, but the reply came too late to act on (this process was paused):
                    # give it back and try again with a new id.
                    self._drop()
                    return None
                self.active = True
                self.valid_until = attempt.sent_at + self.trust_s
                self.term += 1
                return Event.ACQUIRED
            return None
        if ok:
            self.valid_until = max(self.valid_until, attempt.sent_at + self.trust_s)
        elif ok is False and self.active:
            return self._lose()
        return self.expire(now)

    def expire(self, now: float) -> Event | None:
        """LOST if the active term's last trusted renewal is too old at ``now``."""
        if self.active and now >= self.valid_until:
            return self._lose()
        return None

    def delay(self, now: float) -> float:
        """Seconds until the next attempt (or the expiry of the current trust, if sooner)."""
        if not self.active:
            return max(0.0, self._last_sent + self.poll_every_s - now)
        return max(0.0, min(self._last_sent + self.renew_every_s, self.valid_until) - now)

    def take_released(self) -> list[str]:
        """Holder ids of ended terms that may still be in Redis, to release (compare-and-delete)."""
        out, self._released = self._released, []
        return out

    def give_up(self) -> str | None:
        """End the current term on shutdown; returns the holder id to release, if a term was active."""
        if not self.active:
            return None
        holder = self.holder
        self._lose()
        self._released.remove(holder)
        return holder

    def _lose(self) -> Event:
        self._drop()
        return Event.LOST

    def _drop(self) -> None:
        self._released.append(self.holder)
        self.holder = self._new_holder()
        self.active = False
        self.valid_until = -math.inf
