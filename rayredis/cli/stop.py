"""``rayredis stop``: stop the processes the CLI started on this machine (``--address``: one cluster's), no others.

Processes are found through the CLI's session registry (:mod:`rayredis.cli.sessions`) and each
session's recorded PIDs, checked against their kernel start time; never by process name.
"""

from __future__ import annotations

import argparse
from typing import Any

from rayredis._private import process
from rayredis._private.session import (
    read_current_cluster,
    remove_current_cluster,
    remove_session_shm,
    sweep_dead_sessions_shm,
)
from rayredis.cli import sessions
from rayredis.cli.common import normalize_address
from rayredis.config import get_config

#: Stop order inside a session: workers and raylets first (they mark themselves DEAD in Redis on a
#: clean exit), then the GCS, then the Redis shards.
_STAGES: tuple[tuple[str, ...] | None, ...] = (("worker", "raylet"), ("gcs",), None)


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "stop", help="Stop the rayredis processes started on this machine by `rayredis start`.")
    p.add_argument("-f", "--force", action="store_true", help="send SIGKILL instead of SIGTERM")
    p.add_argument("-g", "--grace-period", type=float, default=None,
                   help="seconds to wait after SIGTERM before SIGKILL "
                        f"(default {get_config().stop_grace_period_s})")
    p.add_argument("-v", "--verbose", action="store_true", help="list every process stopped")
    p.add_argument("--address", default=None,
                   help="stop only the sessions (head and joined nodes) of the cluster at this host:port")
    p.set_defaults(func=run)


def stop_session(entry: sessions.CliSession, grace_s: float, force: bool = False,
                 verbose: bool = False) -> tuple[int, int]:
    """Stop the recorded processes of one session, remove its shm segments and registry entry.

    Returns (stopped, found) like :func:`process.stop_recorded`.
    """
    sessions.mark_stopping(entry.session_dir)
    stopped = found = 0
    for roles in _STAGES:
        if verbose:
            for r in process.recorded(entry.session_dir):
                if process.is_alive(r) and (roles is None or r.role in roles):
                    print(f"Stopping {r.role} (pid {r.pid}) of {entry.session_dir}")
        s, f = process.stop_recorded(entry.session_dir, grace_s=grace_s, force=force, roles=roles)
        stopped += s
        found += f
    remove_session_shm(entry.session_dir)
    remaining = [r for r in process.recorded(entry.session_dir) if process.is_alive(r)]
    if not remaining:
        sessions.unregister(entry.session_dir)
    if entry.kind == sessions.HEAD:
        remove_current_cluster(entry.session_dir)
    return stopped, found


def run(args: argparse.Namespace) -> int:
    grace = get_config().stop_grace_period_s if args.grace_period is None else max(0.0, args.grace_period)
    entries = sessions.registered()
    info = read_current_cluster()
    if args.address:
        address = normalize_address(args.address)
        entries = [e for e in entries if e.address == address]
        if info is not None and info.address != address:
            info = None  # another cluster's head: not ours to stop or forget
    if info is not None and all(e.session_dir != info.session_dir for e in entries):
        # A head whose registry entry is missing (e.g. the CLI was killed mid-start): stop it too.
        entries.append(sessions.CliSession(info.session_dir, sessions.HEAD, info.address))
    stopped = found = 0
    for entry in entries:
        s, f = stop_session(entry, grace, force=args.force, verbose=args.verbose)
        stopped += s
        found += f
    if info is not None:
        remove_current_cluster(info.session_dir)
    sweep_dead_sessions_shm()  # also the segments of init() clusters whose driver was killed hard
    if found == 0:
        print("Did not find any active rayredis processes.")
    elif stopped == found:
        print(f"Stopped all {stopped} rayredis processes.")
    else:
        print(f"Stopped only {stopped} out of {found} rayredis processes within the grace period {grace} "
              "seconds. Set -v to see more details. The remaining processes could not be killed.")
        return 1
    return 0
