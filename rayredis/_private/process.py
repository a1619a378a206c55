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

from rayredis._private import trusted


@dataclass(frozen=True)
class Recorded:
    """A PID record: the process, its kernel start time, its user and its command line when spawned."""

    pid: int
    role: str
    start_time: str
    #: The argv the process was started with (``/proc/<pid>/cmdline``); a record without one (an
    #: older version's) never matches a process, so nothing acts on it.
    cmdline: tuple[str, ...] = ()
    uid: int = -1


def _start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (field 22 of /proc/pid/stat), to detect PID reuse."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return "" if fields[0] in ("Z", "X") else fields[19]
    except (OSError, IndexError):
        return ""


def _cmdline(pid: int) -> tuple[str, ...] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return tuple(a.decode(errors="surrogateescape") for a in raw.split(b"\0")[:-1])


def _uids(pid: int) -> tuple[int, int] | None:
    """The real and effective uid of ``pid`` (``/proc/<pid>/status``), None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    real, effective = line.split()[1:3]
                    return int(real), int(effective)
    except (OSError, ValueError):
        pass
    return None


def record_pid(session_dir: str, pid: int, role: str, cmdline: Sequence[str] | None = None) -> None:
    """Record ``pid`` (started with ``cmdline``, else its current command line) in the session, mode 0600."""
    path = os.path.join(session_dir, "pids", str(pid))
    argv = list(cmdline) if cmdline is not None else list(_cmdline(pid) or ())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": pid, "role": role, "start_time": _start_time(pid), "cmdline": argv,
                   "uid": os.geteuid()}, f)


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
    """The session's PID records. Raises :class:`~rayredis._private.trusted.UntrustedPathError` if
    the session dir, its ``pids/`` or a record belongs to another user or is writable by others."""
    out = []
    d = os.path.join(session_dir, "pids")
    if not trusted.check(session_dir, "session directory") or not trusted.check(d, "PID record directory"):
        return []
    try:
        names = os.listdir(d)
    except OSError:
        return []
    for name in names:
        path = os.path.join(d, name)
        try:
            if not trusted.check(path, "PID record"):
                continue
            with open(path) as f:
                raw = json.load(f)
            raw["cmdline"] = tuple(raw.get("cmdline", ()))
            out.append(Recorded(**raw))
        except (OSError, ValueError, TypeError):
            continue
    return out


def is_alive(r: Recorded) -> bool:
    """Whether the recorded process still runs: same PID and kernel start time (no PID reuse), owned
    by this user (real and effective uid), with the recorded command line. Anything else is not the
    process the record was made for, and nothing stops or signals it."""
    if not r.start_time or not r.cmdline or _start_time(r.pid) != r.start_time:
        return False
    me = os.geteuid()
    return r.uid == me and _uids(r.pid) == (me, me) and _cmdline(r.pid) == r.cmdline


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
    record_pid(session_dir, proc.pid, role, cmdline=[str(a) for a in args])
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
