"""Starting, tracking and killing the node's worker processes (reused across tasks, capped in number)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from rayredis import ids
from rayredis._private import process

logger = logging.getLogger(__name__)


class WorkerPool:
    """Worker processes of this raylet; they connect back over ``Raylet.Connect``."""

    def __init__(self, session_dir: str, raylet_address: str, node_id: bytes, env: dict[str, str],
                 socket_name: str = ""):
        self.session_dir = session_dir
        self.raylet_address = raylet_address
        self.node_id = node_id
        self.env = env
        self.procs: dict[bytes, subprocess.Popen[bytes]] = {}
        self.starting: set[bytes] = set()
        self.dedicated: dict[bytes, bytes] = {}
        #: Workers that died before connecting since the last one that connected (a streak: a
        #: worker that starts fine resets it, so occasional failures never add up to the cap).
        self.startup_failures = 0
        #: Workers that disconnected but have not exited yet, with the time to SIGKILL them by.
        #: Never waited for on the event loop: a worker that closes its connection may wait for the
        #: raylet's end of it to close before it exits.
        self.leaving: dict[bytes, tuple[subprocess.Popen[bytes], float]] = {}
        #: Abstract Unix socket of the raylet (local workers use it instead of gRPC).
        self.socket_name = socket_name

    def start(self, n: int) -> None:
        for _ in range(n):
            wid = ids.new_id(16)
            args = [sys.executable, "-m", "rayredis.worker", "--raylet-address", self.raylet_address,
                    "--worker-id", wid.hex(), "--node-id", self.node_id.hex(),
                    "--session-dir", self.session_dir, "--raylet-socket", self.socket_name]
            proc = process.spawn(args, self.session_dir, "worker", f"worker-{wid.hex()[:12]}",
                                 env=self.env, new_session=False)
            self.procs[wid] = proc
            self.starting.add(wid)

    def registered(self, wid: bytes) -> None:
        self.starting.discard(wid)
        self.startup_failures = 0

    def dedicate(self, wid: bytes, actor_id: bytes) -> None:
        self.dedicated[wid] = actor_id

    #: Seconds a disconnected worker gets to exit by itself before it is SIGKILLed.
    EXIT_GRACE_S = 2.0

    def exited(self, wid: bytes) -> None:
        """The worker's connection closed: collect it now if it is gone, else from ``reap``
        (without blocking), SIGKILLing it once it had ``EXIT_GRACE_S`` to exit."""
        proc = self.procs.pop(wid, None)
        self.dedicated.pop(wid, None)
        self.starting.discard(wid)
        if proc is None:
            return
        if proc.poll() is None:
            self.leaving[wid] = (proc, time.monotonic() + self.EXIT_GRACE_S)
        else:
            process.forget_pid(self.session_dir, proc.pid)

    def _reap_leaving(self) -> None:
        now = time.monotonic()
        for wid, (proc, kill_at) in list(self.leaving.items()):
            if proc.poll() is not None:
                del self.leaving[wid]
                process.forget_pid(self.session_dir, proc.pid)
            elif now >= kill_at:
                logger.warning("worker %s (pid %d) did not exit %.0f s after it disconnected: killing it",
                               wid.hex()[:12], proc.pid, self.EXIT_GRACE_S)
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.leaving[wid] = (proc, float("inf"))  # collected by a later poll

    def kill(self, wid: bytes) -> None:
        proc = self.procs.get(wid)
        if proc is not None and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def reap(self) -> list[bytes]:
        """Collect disconnected workers that exited, and notice workers that died before they
        connected (startup failures); returns the latter's ids."""
        self._reap_leaving()
        dead: list[bytes] = []
        for wid in list(self.starting):
            proc = self.procs.get(wid)
            if proc is not None and proc.poll() is not None:
                self.starting.discard(wid)
                self.procs.pop(wid, None)
                process.forget_pid(self.session_dir, proc.pid)
                self.startup_failures += 1
                logger.error("worker %s exited with %s before connecting; see its .err log",
                             wid.hex()[:12], proc.returncode)
                dead.append(wid)
        return dead

    def stop_all(self) -> None:
        for wid, (proc, _) in self.leaving.items():
            self.procs.setdefault(wid, proc)
        self.leaving.clear()
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            process.forget_pid(self.session_dir, proc.pid)
        self.procs.clear()
