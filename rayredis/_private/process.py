"""Starting child processes with their PIDs recorded in the session, and stopping exactly those."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Recorded:
    pid: int
    role: str
    start_time: str


def _start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (field 22 of /proc/pid/stat), to detect PID reuse."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return "" if fields[0] in ("Z", "X") else fields[19]
    except (OSError, IndexError):
        return ""


def record_pid(session_dir: str, pid: int, role: str) -> None:
    path = os.path.join(session_dir, "pids", str(pid))
    with open(path, "w") as f:
        json.dump({"pid": pid, "role": role, "start_time": _start_time(pid)}, f)


def forget_pid(session_dir: str, pid: int) -> None:
    try:
        os.unlink(os.path.join(session_dir, "pids", str(pid)))
    except OSError:
        pass


def forget_dead(session_dir: str) -> int:
    """Drop the records of recorded processes that have exited (such as a killed raylet's workers,
    which died with it); returns how many were dropped. Live processes keep theirs."""
    dropped = 0
    for r in recorded(session_dir):
        if not is_alive(r):
            forget_pid(session_dir, r.pid)
            dropped += 1
    return dropped


def recorded(session_dir: str) -> list[Recorded]:
    out = []
    d = os.path.join(session_dir, "pids")
    try:
        names = os.listdir(d)
    except OSError:
        return []
    for name in names:
        try:
            with open(os.path.join(d, name)) as f:
                out.append(Recorded(**json.load(f)))
        except (OSError, ValueError, TypeError):
            continue
    return out


def is_alive(r: Recorded) -> bool:
    return bool(r.start_time) and _start_time(r.pid) == r.start_time


def spawn(
    args: Sequence[str],
    session_dir: str,
    role: str,
    log_name: str,
    env: dict[str, str] | None = None,
    new_session: bool = True,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``args`` with stdout/stderr to ``logs/<log_name>.out/.err`` and record its PID.

    ``die_with_parent``: the child is SIGKILLed by the kernel if this process dies (used for
    clusters that ``init()`` starts, so a killed driver does not orphan them).
    """
    logs = os.path.join(session_dir, "logs")
    out = open(os.path.join(logs, log_name + ".out"), "ab")
    err = open(os.path.join(logs, log_name + ".err"), "ab")
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        list(args), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=full_env,
        start_new_session=new_session, close_fds=True,
        preexec_fn=set_parent_death_signal if die_with_parent else None,
    )
    out.close()
    err.close()
    record_pid(session_dir, proc.pid, role)
    return proc


def python_module_args(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def stop_recorded(session_dir: str, grace_s: float = 5.0, force: bool = False,
                  roles: Sequence[str] | None = None) -> tuple[int, int]:
    """SIGTERM (or SIGKILL with ``force``) every live recorded process, escalate after ``grace_s``.

    Returns (number stopped, number found). Processes whose start time differs from the recorded
    one (the PID was reused by someone else) are never touched.
    """
    targets = [r for r in recorded(session_dir) if is_alive(r) and (roles is None or r.role in roles)]
    # Stop in phases, workers and raylets before the GCS and Redis, so each can exit cleanly.
    phases: dict[int, list[Recorded]] = {}
    # Sentinels before the shards they watch: none starts a failover while the shards stop.
    order = {"worker": 0, "raylet": 1, "gcs": 2, "sentinel": 3, "redis": 4}
    for r in targets:
        phases.setdefault(order.get(r.role, 1), []).append(r)
    sig = signal.SIGKILL if force else signal.SIGTERM
    for _, group in sorted(phases.items()):
        for r in group:
            try:
                os.kill(r.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(is_alive(r) for r in group):
            _reap(group)
            time.sleep(0.02)
        for r in group:
            if is_alive(r):
                try:
                    os.kill(r.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(is_alive(r) for r in targets):
        _reap(targets)
        time.sleep(0.02)
    for r in targets:
        if not is_alive(r):
            forget_pid(session_dir, r.pid)
    return sum(1 for r in targets if not is_alive(r)), len(targets)


def _reap(procs: Sequence[Recorded]) -> None:
    """Collect those of ``procs`` that are exited children of this process (else they stay zombies
    and count as alive). Only these: the program's own children keep their exit status."""
    for r in procs:
        try:
            os.waitpid(r.pid, os.WNOHANG)
        except ChildProcessError:
            pass  # not our child (another process started it), or already collected


def set_parent_death_signal() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphans after a raylet crash)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
