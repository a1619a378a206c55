"""Starting the metrics exporter as one of a head node's processes (no prometheus_client import here)."""

from __future__ import annotations

import subprocess

from rayredis._private import process
from rayredis._private.node import NodeHandle


def start_exporter(handle: NodeHandle, port: int, host: str = "127.0.0.1") -> int:
    """Start ``python -m rayredis.metrics`` for ``handle``'s cluster as one of the node's processes
    (its PID in the session, so ``rayredis stop`` and ``shutdown()`` stop it); returns the PID. The
    password goes through the environment, never the command line."""
    args = process.python_module_args("rayredis.metrics", "--address", handle.address, "--port", str(port),
                                      "--host", host)
    env = handle.env()

    def start() -> subprocess.Popen[bytes]:
        return process.spawn(args, handle.session_dir, "metrics", "metrics_exporter", env=env,
                             die_with_parent=handle.bind_to_parent())

    proc = start()
    handle.track("metrics", "metrics", proc, start, "The metrics exporter")
    return proc.pid
