"""With the Redis primary down (and its restart held off), a driver call that needs Redis fails
after ``connect_timeout_s`` with rayredis's own error naming what to check, not redis-py's raw
ConnectionError; once the shard is back, the same calls work again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

import rayredis as ray
from rayredis import api, config, exceptions
from tests.conftest import _shutdown_checked


@pytest.fixture
def short_timeout_cluster() -> Iterator[None]:
    saved = config._config
    config._config = config.get_config().replace(connect_timeout_s=3.0)
    try:
        ray.init(num_cpus=1)
        try:
            yield
        finally:
            _shutdown_checked()
    finally:
        config._config = saved


def test_a_primary_outage_raises_control_store_unavailable_then_recovers(short_timeout_cluster: None) -> None:
    handle, sup = api._started, api._supervisor
    assert handle is not None and sup is not None
    assert ray.get(ray.remote(lambda: 1).remote(), timeout=60) == 1
    with sup.pause("redis-0"):
        old = handle.components["redis-0"].proc.pid
        os.kill(old, signal.SIGKILL)

        @ray.remote
        def fresh() -> int:  # a new function: its first .remote() exports it to the primary
            return 2

        with pytest.raises(exceptions.ControlStoreUnavailable, match=r"did not answer for 3 s .*rayredis status"):
            fresh.remote()
        with pytest.raises(exceptions.RaySystemError, match="connect_timeout_s"):
            ray.nodes()
        assert isinstance(exceptions.ControlStoreUnavailable("x"), ConnectionError)
    deadline = time.monotonic() + 30
    while handle.components["redis-0"].proc.pid == old:  # the supervisor restarts it once resumed
        assert time.monotonic() < deadline, "the primary was not restarted"
        time.sleep(0.05)
    assert ray.get(fresh.remote(), timeout=60) == 2
    assert len(ray.nodes()) == 1
