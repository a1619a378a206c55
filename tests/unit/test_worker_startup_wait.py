"""A worker started while the Redis primary is down waits for it (bounded by cluster_gone_timeout_s,
one log line per outage) instead of crashing at startup."""

from __future__ import annotations

import logging

import pytest

from rayredis._private.redis_server import free_port
from rayredis.exceptions import ControlStoreUnavailable
from rayredis.worker.lifeline import Lifeline


def test_worker_waits_for_redis_then_gives_up_once(caplog: pytest.LogCaptureFixture) -> None:
    gone: list[str] = []
    address = f"127.0.0.1:{free_port()}"  # nothing listens there: the primary is down
    lifeline = Lifeline(address, None, 2.5, on_gone=gone.append, interval_s=0.1, warn_every_s=60.0)
    with caplog.at_level(logging.WARNING, logger="rayredis.worker.lifeline"), \
            pytest.raises(ControlStoreUnavailable):
        lifeline.connect(None)
    assert len(gone) == 1 and "did not answer" in gone[0] and "cluster_gone_timeout_s=2.5" in gone[0]
    waits = [r for r in caplog.records if "has not answered" in r.getMessage()]
    assert len(waits) == 1  # one line for the outage, not one per failed check
