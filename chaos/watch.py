"""Notice every death of a cluster process (Redis, GCS, raylet), whoever caused it.

The runner compares these deaths with the faults it fired: a death no fault explains (a crash, the
OOM killer, or another program killing our processes) is reported separately, with the exit
status when the process was our child (the driver started Redis, the GCS and the raylet, so their
status can be collected with ``waitpid``).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from rayredis._private import process

WATCHED_ROLES = ("redis", "gcs", "raylet")


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)}"
    return f"status {status}"


class ProcessWatch(threading.Thread):
    """Polls ``<session_dir>/pids`` every ``interval_s`` and records each watched process's death.

    ``session_dir`` is one session directory, or a callable returning the current list of them (a
    multi-node cluster: each node has its own session, and nodes come and go).
    """

    def __init__(self, session_dir: str | Callable[[], list[str]], clock: Any, interval_s: float = 0.1):
        super().__init__(name="chaos-watch", daemon=True)
        self.sessions: Callable[[], list[str]] = (
            (lambda: [session_dir]) if isinstance(session_dir, str) else session_dir)
        self.clock = clock
        self.interval_s = interval_s
        self.stop = threading.Event()
        self.deaths: list[dict[str, Any]] = []
        self._known: dict[int, process.Recorded] = {}
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            self.poll()

    def poll(self) -> None:
        with self._lock:
            for sd in self.sessions():
                for r in process.recorded(sd):
                    if r.role in WATCHED_ROLES and r.pid not in self._known and process.is_alive(r):
                        self._known[r.pid] = r
            for pid, r in list(self._known.items()):
                if process.is_alive(r):
                    continue
                del self._known[pid]
                how = "gone (not our child; exit status unknown)"
                try:
                    got, status = os.waitpid(pid, os.WNOHANG)
                    if got == pid:
                        how = describe_status(status)
                except ChildProcessError:
                    pass
                self.deaths.append({"pid": pid, "role": r.role, "t": round(self.clock(), 4), "how": how})

    def halt(self) -> list[dict[str, Any]]:
        """Stop watching (before the cluster is shut down on purpose); returns the deaths seen."""
        self.stop.set()
        if self.is_alive():
            self.join()
        self.poll()
        return list(self.deaths)
