"""Who is at the other end of a Unix socket (``SO_PEERCRED``), and the checks both ends of the raylet's socket make.

The raylet's socket is abstract: it has no file permissions, and once its raylet is gone any local
user can bind the same name. So a client checks the listener before it sends the cluster token, and
the raylet checks each client's uid before it reads anything (docs/security.md).
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

from rayredis.exceptions import RaySystemError

_UCRED = struct.Struct("3i")


@dataclass(frozen=True)
class Peer:
    """The credentials the kernel recorded for the peer when it connected (or listened)."""

    pid: int  # 0 if that process is not visible in this PID namespace
    uid: int
    gid: int


def peer_of(sock: socket.socket) -> Peer:
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return Peer(pid, uid, gid)


def check_listener(sock: socket.socket, name: str, expected_pid: int) -> bool:
    """Check the process listening on the connected Unix socket ``sock`` (``name``) is the raylet:
    this user's, and ``expected_pid`` when that is known (not 0).

    Returns False when the listener cannot be identified (it runs in another PID namespace): the
    caller then uses gRPC instead. Raises :class:`RaySystemError` when it is someone else.
    """
    peer = peer_of(sock)
    me = os.geteuid()
    if peer.uid != me:
        raise RaySystemError(
            f"The raylet's socket @{name} is held by a process of uid {peer.uid} (pid {peer.pid}), not by "
            f"you (uid {me}): another local user may have taken the name of a raylet that died. rayredis "
            f"did not send it the cluster token. Check that the cluster's raylet runs, then reconnect.")
    if expected_pid and peer.pid == 0:
        return False
    if expected_pid and peer.pid != expected_pid:
        raise RaySystemError(
            f"The raylet's socket @{name} is held by pid {peer.pid}, but the node table records the raylet "
            f"as pid {expected_pid}: rayredis did not send it the cluster token. If the raylet was just "
            f"restarted, retry; otherwise find out what pid {peer.pid} is.")
    return True
