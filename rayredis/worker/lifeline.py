"""A worker's tie to its cluster: it exits once its raylet connection is gone or Redis stops answering for good."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from rayredis._private.logs import Throttle
from rayredis.config import get_config
from rayredis.exceptions import ControlStoreUnavailable
from rayredis.store import replication
from rayredis.store.client import ShardedRedis, credentials, parse_address

_Sentinel: Any = redis.sentinel.Sentinel  # untyped in redis-py

logger = logging.getLogger(__name__)

#: Exit status of a worker that left because its cluster is gone.
EXIT_CLUSTER_GONE = 1
#: After the raylet connection is lost, an idle worker ends at once on its own (``run_forever``
#: returns); a busy one is ended after this long, since its results could not be reported anyway.
RAYLET_LOST_GRACE_S = 1.0


def _exit(reason: str) -> None:
    logger.error("exiting: %s", reason)
    print(f"rayredis worker {os.getpid()} exiting: {reason}", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(EXIT_CLUSTER_GONE)


class Lifeline:
    """Ends the worker process when its cluster is gone, instead of letting it run on without one.

    - **Redis.** A thread PINGs the primary (its own connection, no retries) every
      ``interval_s``. When none has been answered for ``timeout_s``
      (``Config.cluster_gone_timeout_s``) since the first that was not, the worker exits. Until
      then it warns at most once per ``warn_every_s``. At startup, :meth:`connect` waits up to
      ``timeout_s`` for Redis, so a worker started during a shard restart does not die and count
      as a startup failure of its raylet.
    - **The raylet.** :meth:`raylet_lost` (the stream's ``on_disconnect``) stops the executor and,
      if a task still runs after ``RAYLET_LOST_GRACE_S``, exits: nothing reconnects the stream.

    ``on_gone(reason)`` does the exiting.
    """

    def __init__(self, address: str, password: str | None, timeout_s: float, *,
                 on_raylet_lost: Callable[[], None] | None = None, on_gone: Callable[[str], None] = _exit,
                 interval_s: float | None = None, warn_every_s: float = 10.0):
        self.address = address
        self.timeout_s = timeout_s
        self.interval_s = interval_s if interval_s is not None else max(0.1, min(2.0, timeout_s / 10))
        self.on_raylet_lost = on_raylet_lost
        self.on_gone = on_gone
        self._throttle = Throttle(warn_every_s)
        self._stopping = threading.Event()
        host, port = parse_address(address)
        probe_timeout = max(0.1, min(2.0, self.interval_s))
        options: dict[str, Any] = dict(password=password, socket_timeout=probe_timeout,
                                       socket_connect_timeout=probe_timeout, retry=Retry(NoBackoff(), 0),
                                       **credentials())
        sentinels = replication.parse_sentinels(get_config().redis_sentinels)
        self._sentinel: Any = None
        if sentinels:
            # Replicated shards: the primary is whichever member the Sentinels name the master now.
            self._sentinel = _Sentinel(replication.sentinel_addresses(sentinels),
                                       sentinel_kwargs=replication.sentinel_kwargs(password))
            self._client: Any = self._sentinel.master_for(replication.master_name(0), **options)
        else:
            self._client = redis.Redis(host=host, port=port, **options)
        self._thread = threading.Thread(target=self._watch, name="rayredis-lifeline", daemon=True)
        #: The raylet stream was lost (the worker then exits with the lifeline's status, idle or busy).
        self.raylet_gone = False

    def answers(self) -> bool:
        """Whether the primary answers now (any reply counts: it is there)."""
        try:
            self._client.ping()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
            return False
        except redis.exceptions.RedisError:
            return True
        return True

    def connect(self, password: str | None) -> ShardedRedis:
        """Connect to the shards, waiting up to ``timeout_s`` for the primary to answer (a shard
        may be restarting); give up (``on_gone``) after that. Other errors (a wrong password) raise."""
        start = time.monotonic()
        while True:
            if self.answers():
                try:
                    return ShardedRedis(self.address, password).connect()
                except ControlStoreUnavailable:
                    if self.answers():
                        raise  # it answers, so the problem is not that it is away
            down = time.monotonic() - start
            if down > self.timeout_s:
                self.on_gone(f"Redis at {self.address} did not answer for {down:.0f} s since this worker "
                             f"started (cluster_gone_timeout_s={self.timeout_s:g})")
                raise ControlStoreUnavailable(f"Redis at {self.address} did not answer")  # if on_gone returns
            self._warn(down)
            time.sleep(self.interval_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _watch(self) -> None:
        down_since: float | None = None  # the first PING that went unanswered, since the last answer
        while not self._stopping.wait(self.interval_s):
            if self.answers():
                down_since = None
                continue
            now = time.monotonic()
            down_since = now if down_since is None else down_since
            down = now - down_since
            if down > self.timeout_s:
                self.on_gone(f"Redis at {self.address} has not answered for {down:.0f} s "
                             f"(cluster_gone_timeout_s={self.timeout_s:g}); its cluster is gone")
                return
            self._warn(down)

    def _warn(self, down: float) -> None:
        if down < 1.0:
            return  # a blip (a supervised shard restart takes well under a second)
        suppressed = self._throttle.allow("redis")
        if suppressed is not None:
            logger.warning("Redis at %s has not answered for %.1f s; this worker exits if it stays away for "
                           "%g s (cluster_gone_timeout_s)%s", self.address, down, self.timeout_s,
                           f" ({suppressed} more failed checks not logged)" if suppressed else "")

    def raylet_lost(self) -> None:
        """The stream to the raylet ended: stop taking work, and exit if a task keeps us busy."""
        logger.warning("lost the connection to the raylet; this worker exits")
        self.raylet_gone = True
        if self.on_raylet_lost is not None:
            self.on_raylet_lost()
        timer = threading.Timer(RAYLET_LOST_GRACE_S, self.on_gone, args=("the connection to the raylet is gone",))
        timer.daemon = True
        timer.start()
