"""The GCS lease state machine (gcs/lease.py) and the Redis outage tracker (gcs/outage.py), without I/O."""

from __future__ import annotations

import itertools

import pytest

from rayredis.gcs.lease import TRUST, Event, Lease, LeaseLostError, Op
from rayredis.gcs.outage import Outage

LEASE_S = 3.0
TRUSTED = TRUST * LEASE_S  # 2.4 s


def _lease() -> Lease:
    ids = (f"h{i}" for i in itertools.count(1))
    return Lease(LEASE_S, new_holder=lambda: next(ids))


def _active(now: float = 0.0) -> Lease:
    lease = _lease()
    a = lease.attempt(now)
    assert lease.settle(a, True, now + 0.01) is Event.ACQUIRED
    return lease


def test_a_new_lease_is_standby_and_acquires() -> None:
    lease = _lease()
    assert not lease.active and not lease.held(0.0)
    with pytest.raises(LeaseLostError):
        lease.check(0.0)
    a = lease.attempt(10.0)
    assert (a.op, a.holder, a.sent_at) == (Op.ACQUIRE, "h1", 10.0)
    assert lease.settle(a, False, 10.01) is None  # another GCS holds it: stay standby
    assert not lease.active
    assert lease.delay(10.01) == pytest.approx(lease.poll_every_s - 0.01)
    a = lease.attempt(10.5)
    assert lease.settle(a, True, 10.51) is Event.ACQUIRED
    assert lease.active and lease.term == 1
    assert lease.valid_until == pytest.approx(10.5 + TRUSTED)  # trusted from the *sending*
    lease.check(10.6, "h1")


def test_trust_ends_before_redis_expires_the_key() -> None:
    lease = _active(0.0)
    assert lease.held(TRUSTED - 0.001)
    assert not lease.held(TRUSTED)
    assert TRUSTED < LEASE_S  # a standby can only take over after the holder stopped acting


def test_renewals_extend_from_their_sending_and_are_due_every_third() -> None:
    lease = _active(0.0)
    assert lease.delay(0.01) == pytest.approx(LEASE_S / 3 - 0.01)  # renew a third of the lease after the last try
    a = lease.attempt(1.0)
    assert a.op is Op.RENEW and a.holder == "h1"
    assert lease.timeout(1.0) == pytest.approx(TRUSTED - 1.0)  # wait no longer than the lease is trusted
    assert lease.settle(a, True, 1.2) is None
    assert lease.valid_until == pytest.approx(1.0 + TRUSTED)
    assert lease.held(3.3) and lease.term == 1


def test_a_refused_renewal_loses_the_term_and_releases_its_id() -> None:
    lease = _active(0.0)
    a = lease.attempt(1.0)
    assert lease.settle(a, False, 1.01) is Event.LOST  # another holder (or the key lapsed)
    assert not lease.active and not lease.held(1.02)
    assert lease.holder == "h2"  # the next term gets a new id
    with pytest.raises(LeaseLostError):
        lease.check(1.02, "h1")
    assert lease.take_released() == ["h1"]
    assert lease.take_released() == []
    assert lease.attempt(1.1).op is Op.ACQUIRE


def test_unanswered_renewals_lose_the_term_once_the_trust_ends() -> None:
    lease = _active(0.0)
    for t in (0.8, 1.6):
        assert lease.settle(lease.attempt(t), None, t + 0.5) is None  # Redis did not answer
    assert lease.held(2.3)
    assert lease.delay(2.3) == pytest.approx(TRUSTED - 2.3)  # wake up when the trust ends
    assert lease.expire(2.39) is None
    assert lease.expire(TRUSTED) is Event.LOST
    assert lease.expire(2.5) is None  # reported once


def test_a_paused_holder_stops_acting_on_wake_up() -> None:
    # SIGSTOPped for 10 s: on wake-up the lease is not held, before any reply or renewal.
    lease = _active(0.0)
    assert not lease.held(10.0)
    with pytest.raises(LeaseLostError):
        lease.check(10.0, "h1")
    # A renewal sent before the pause and answered after it does not bring the term back.
    a = lease.attempt(0.5)
    assert lease.settle(a, True, 10.0) is Event.LOST
    assert not lease.held(10.0)


def test_a_reply_of_an_ended_term_is_ignored() -> None:
    lease = _active(0.0)
    old = lease.attempt(1.0)
    assert lease.settle(lease.attempt(1.1), False, 1.2) is Event.LOST
    assert lease.settle(old, True, 1.3) is None
    assert not lease.active


def test_an_acquisition_answered_too_late_is_given_back() -> None:
    lease = _lease()
    a = lease.attempt(0.0)
    assert lease.settle(a, True, TRUSTED + 1.0) is None  # paused between sending and the reply
    assert not lease.active
    assert lease.take_released() == ["h1"] and lease.holder == "h2"


def test_give_up_returns_the_active_id_to_release() -> None:
    lease = _active(0.0)
    assert lease.give_up() == "h1"
    assert not lease.active and lease.take_released() == []
    assert lease.give_up() is None


def test_lease_must_be_positive() -> None:
    with pytest.raises(ValueError, match="gcs_lease_s"):
        Lease(0.0)


def test_random_holder_ids_differ() -> None:
    assert Lease(LEASE_S).holder != Lease(LEASE_S).holder


# ---- outage --------------------------------------------------------------------------------------


def test_outage_warnings_are_rate_limited() -> None:
    o = Outage(gone_after_s=30.0, warn_every_s=5.0)
    first = o.failed("node monitor", "Connection refused", 100.0)
    assert first is not None and "Connection refused" in first and "exits after 30 s" in first
    # Several a second for the next 5 s: none logged.
    assert all(o.failed("node monitor", "Connection refused", 100.0 + i / 4) is None for i in range(1, 20))
    later = o.failed("pub/sub", "Connection refused", 105.0)
    assert later is not None and "19 similar warnings held back" in later and "5.0 s" in later


def test_outage_is_gone_after_the_bound_without_success() -> None:
    o = Outage(gone_after_s=30.0)
    assert not o.gone(0.0)
    o.failed("lease", "refused", 0.0)
    assert not o.gone(29.9)
    assert o.gone(30.0)
    assert o.recovered(31.0) == "Redis answers again after 31.0 s"
    assert not o.gone(100.0)
    assert o.recovered(101.0) is None
    o.failed("lease", "refused", 200.0)  # a new outage counts from its own start
    assert not o.gone(229.0) and o.gone(230.0)
    assert o.last_error == "lease: refused"


def test_an_outage_counts_from_when_the_failed_call_was_made() -> None:
    o = Outage(gone_after_s=30.0)
    o.failed("lease renew", "no answer", now=12.0, since=10.0)  # the call hung for 2 s
    assert o.down_since == 10.0 and o.gone(40.0)
    assert o.left(25.0) == 15.0
    o.recovered(26.0)
    assert o.left(26.0) == float("inf")
