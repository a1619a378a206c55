"""The node supervisor: restarts a node's dead Redis shards, GCS and raylet with bounded backoff, or gives up."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rayredis._private import events, process
from rayredis._private.node import Component, NodeHandle
from rayredis._private.sentinel import RestartDeferredError
from rayredis.config import Config, get_config
from rayredis.exceptions import RaySystemError
from rayredis.gcs.outage import EXIT_CLUSTER_GONE

logger = logging.getLogger(__name__)

#: Restart order when several processes are dead: Redis first (the others need it), the raylet last.
_ORDER = {"redis": 0, "sentinel": 0, "gcs": 1, "raylet": 2}


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a dead process, and when to stop trying.

    A process's restart waits ``initial_backoff_s`` after its first death within ``window_s``,
    doubling with each further one up to ``max_backoff_s``. When it dies (or fails to start) for
    the ``max_restarts + 1``-th time within ``window_s``, the supervisor gives up.
    """

    initial_backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    max_restarts: int = 5
    window_s: float = 60.0

    @classmethod
    def from_config(cls, cfg: Config | None = None) -> RestartPolicy:
        cfg = cfg or get_config()
        return cls(max_restarts=cfg.supervisor_max_restarts, window_s=cfg.supervisor_restart_window_s)

    def backoff(self, recent: int) -> float:
        """The wait before a restart that follows ``recent`` restarts within the window."""
        return float(min(self.max_backoff_s, self.initial_backoff_s * 2 ** min(recent, 32)))


@dataclass
class _Dead:
    """A slot whose process died: which process, its exit code, when to start it again."""

    pid: int
    exit_code: int
    due: float
    waited: float
    deferred: bool = False  # its restart was put off (``RestartDeferredError``) at least once
    died: float = 0.0  # when it was found dead (monotonic)


class NodeSupervisor(threading.Thread):
    """Watches the processes of one node (``handle.components``) and restarts any that dies.

    Each restart reuses the process's first arguments (``Component.restart``): a Redis shard comes
    back on its port with its data dir and password, the raylet with its node ID, the GCS rereads
    Redis. A member of a replicated shard comes back as Sentinel allows: as the replica of the master
    the Sentinels name, never as a competing master (its restart raises ``RestartDeferredError`` until
    the failover is done; ``sentinel.restart_plan``); a Sentinel resumes from its rewritten config.
    The new PID is recorded in the session (so ``shutdown()`` and ``rayredis stop`` stop it) and the
    dead one's record is dropped. After too many deaths (``RestartPolicy``) it gives
    up: it calls ``on_give_up(reason)`` (default: log the reason and stop every process of the
    node) and sets ``gave_up``.

    Run as a thread (``start()``, for clusters that ``init()`` starts; processes it restarts are
    bound to it with PR_SET_PDEATHSIG, as the first ones were to the main thread) or call
    ``tick()`` from a loop of your own (``rayredis start --block``). ``report`` receives one line
    per event (default: the log); ``should_stop`` returning True means the node is being stopped on
    purpose, so deaths are expected and nothing is restarted.
    """

    cluster_lifetime = True

    def __init__(self, handle: NodeHandle, *, policy: RestartPolicy | None = None, interval_s: float = 0.1,
                 report: Callable[[str], None] | None = None, should_stop: Callable[[], bool] | None = None,
                 on_give_up: Callable[[str], None] | None = None):
        super().__init__(name="rayredis-node-supervisor", daemon=True)
        self.handle = handle
        self.policy = policy or RestartPolicy.from_config()
        self.interval_s = interval_s
        self.report = report or (lambda msg: logger.warning("%s", msg))
        self.should_stop = should_stop or (lambda: False)
        self.on_give_up = on_give_up or self._stop_node
        self.stopping = threading.Event()
        self.paused = threading.Event()
        self.gave_up = threading.Event()
        self.give_up_reason = ""
        #: Successful restarts so far (all slots).
        self.restarts = 0
        self._history: dict[str, deque[float]] = {}
        self._dead: dict[str, _Dead] = {}
        #: Slots not restarted any more (a GCS that exited because the cluster is gone).
        self._abandoned: set[str] = set()
        self._spawned: list[Component] = []
        #: Slots whose restarts are held off (``pause(slot)``).
        self._paused_slots: set[str] = set()

    @contextlib.contextmanager
    def pause(self, *slots: str) -> Iterator[None]:
        """Hold off restarts, of the given slots only (e.g. ``"gcs"``) or of all (fault-injection
        tests that control a process's downtime themselves)."""
        if not slots:
            self.paused.set()
        self._paused_slots.update(slots)
        try:
            yield
        finally:
            if slots:
                self._paused_slots.difference_update(slots)
            else:
                self.paused.clear()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            if not self.paused.is_set():
                self.tick()
            if self.gave_up.is_set():
                return
        # PR_SET_PDEATHSIG fires when this thread ends: stay until what it started has been stopped.
        while any(c.proc.poll() is None for c in self._spawned):
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop restarting; the thread ends once the processes it started have exited."""
        self.stopping.set()
        if self.is_alive() and not any(c.proc.poll() is None for c in self._spawned):
            self.join(timeout=2.0)

    # ---- one pass ----------------------------------------------------------------------------------

    def tick(self) -> None:
        """Notice dead processes and restart those whose backoff is over."""
        comps = sorted(self.handle.components.values(), key=lambda c: (_ORDER.get(c.role, 9), c.slot))
        for comp in comps:
            if self.stopping.is_set() or self.gave_up.is_set() or self.should_stop():
                return
            code = comp.proc.poll()
            dead = self._dead.get(comp.slot)
            if dead is not None and dead.pid != comp.proc.pid:
                del self._dead[comp.slot]  # someone else started a replacement (``node.start_gcs``)
                dead = None
            if code is None or comp.slot in self._abandoned or comp.slot in self._paused_slots:
                continue
            if comp.role == "gcs" and code == EXIT_CLUSTER_GONE:
                # The GCS found the cluster's Redis gone for good: a replacement would too.
                self._abandoned.add(comp.slot)
                self.handle.forget(comp.proc)
                logger.error("the GCS of %s exited because the cluster's Redis is gone; not restarting it",
                             self.handle.address)
                continue
            now = time.monotonic()
            if dead is None:
                self.handle.forget(comp.proc)
                dead = self._schedule(comp, comp.proc.pid, code, now)
                if dead is None:
                    return
            if now >= dead.due:
                self._restart(comp, dead)

    def _schedule(self, comp: Component, pid: int, code: int, now: float) -> _Dead | None:
        """Plan the restart of ``comp``'s slot, or give up if it died too often lately."""
        history = self._history.setdefault(comp.slot, deque())
        while history and history[0] < now - self.policy.window_s:
            history.popleft()
        if len(history) >= self.policy.max_restarts:
            self._give_up(f"{comp.description} [pid={pid}, exit_code={code}] exited, and it was restarted "
                          f"{len(history)} times within {self.policy.window_s:g} s already; giving up "
                          f"(supervisor_max_restarts={self.policy.max_restarts}). See the logs in "
                          f"{self.handle.session_dir}/logs.")
            return None
        wait = self.policy.backoff(len(history))
        dead = _Dead(pid, code, now + wait, wait, died=now)
        self._dead[comp.slot] = dead
        return dead

    def _restart(self, comp: Component, dead: _Dead) -> None:
        self._history[comp.slot].append(time.monotonic())
        try:
            proc = comp.restart()
        except RestartDeferredError as e:
            # Not a failed start: the process must not come back yet (a replicated shard's master
            # whose failover is pending). Try again shortly; this counts as no restart.
            self._history[comp.slot].pop()
            if not dead.deferred:
                self.report(f"{comp.description} [pid={dead.pid}, exit_code={dead.exit_code}] exited; its restart "
                            f"waits: {e}.")
                self._event(events.Kind.REDIS_FAILOVER, f"{comp.description} exited; its restart waits: {e}",
                            role=comp.role, pid=dead.pid)
            dead.deferred = True
            dead.due = time.monotonic() + max(self.interval_s, 0.1)
            dead.waited = dead.due - dead.died
            return
        except (RaySystemError, OSError) as e:
            self.report(f"{comp.description} could not be restarted: {e}")
            self._schedule(comp, dead.pid, dead.exit_code, time.monotonic())  # counts as one more death
            return
        del self._dead[comp.slot]
        process.forget_dead(self.handle.session_dir)  # the dead process's own, and e.g. a raylet's workers'
        self.handle.track(comp.slot, comp.role, proc, comp.restart, comp.description)
        self._spawned.append(self.handle.components[comp.slot])
        self.restarts += 1
        self.report(f"{comp.description} [pid={dead.pid}, exit_code={dead.exit_code}] exited; started a "
                    f"replacement [pid={proc.pid}] after {dead.waited:.1f} s{_resumes(comp.role)}.")
        self._event(events.Kind.PROCESS_RESTARTED, f"{comp.description} [pid={dead.pid}, exit_code={dead.exit_code}] "
                    f"exited; restarted [pid={proc.pid}] after {dead.waited:.1f} s", role=comp.role, pid=proc.pid,
                    downtime_s=round(time.monotonic() - dead.died, 3))
        if self.should_stop():  # `rayredis stop` began while it was starting: it may have missed it
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    def _event(self, kind: events.Kind, message: str, **custom: object) -> None:
        """Record a cluster event of this node, from a thread (Redis may be coming back just now)."""
        events.record_in_thread(self.handle.store, kind, message, "SUPERVISOR", "WARNING",
                                node_id=self.handle.node_id or None, **custom)

    def _give_up(self, reason: str) -> None:
        self.give_up_reason = reason
        self._event(events.Kind.SUPERVISOR_GAVE_UP, reason)
        self.on_give_up(reason)
        self.gave_up.set()

    def _stop_node(self, reason: str) -> None:
        logger.error("%s Stopping the node's processes.", reason)
        process.stop_recorded(self.handle.session_dir, grace_s=get_config().stop_grace_period_s)
        for c in self.handle.components.values():
            c.proc.poll()


def _resumes(role: str) -> str:
    return {"gcs": " that resumes from Redis", "redis": " with its data (AOF)",
            "raylet": " with the same node ID", "sentinel": " that resumes from its config"}.get(role, "")
