"""Worker process entry point: connect to the raylet and run assigned work until told to stop."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import signal
import sys
from typing import Any

from rayredis._private import worker_context
from rayredis._private.logs import setup_process_logging
from rayredis._private.process import set_parent_death_signal
from rayredis.config import get_config, secret_from_env
from rayredis.store import tables
from rayredis.worker import core_worker, log_forward
from rayredis.worker.executor import executor
from rayredis.worker.lifeline import Lifeline

logger = logging.getLogger(__name__)


def _raylet_pid(store: Any, node_hex: str) -> int:
    """The PID of this node's raylet as its node entry records it (the listener of the raylet's
    socket must be that process before the token is sent); the parent if the entry is unreadable
    (the raylet started this worker)."""
    try:
        for rec in tables.read_nodes(store.primary):
            if rec.node_id == node_hex and rec.info is not None and rec.info.pid:
                return rec.info.pid
    except Exception:
        logger.debug("could not read the node entry", exc_info=True)
    return os.getppid()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rayredis.worker")
    ap.add_argument("--raylet-address", required=True)
    ap.add_argument("--worker-id", required=True)
    ap.add_argument("--node-id", required=True)
    ap.add_argument("--session-dir", required=True)
    ap.add_argument("--raylet-socket", default="")
    args = ap.parse_args(argv)
    set_parent_death_signal()
    setup_process_logging(args.session_dir, f"worker-{args.worker_id[:12]}")
    cfg = get_config()
    address, password = secret_from_env("REDIS_ADDRESS") or "", secret_from_env("REDIS_PASSWORD")
    # Without its cluster (no raylet stream, or Redis gone for cluster_gone_timeout_s) it exits.
    lifeline = Lifeline(address, password, cfg.cluster_gone_timeout_s, on_raylet_lost=executor.on_disconnect)
    lifeline.start()  # from here on it watches Redis, also while connecting below
    store = lifeline.connect(password)
    cw = core_worker.CoreWorker(
        cfg, store, args.raylet_address, secret_from_env("CLUSTER_TOKEN") or "",
        is_driver=False, job_id=0, namespace="", worker_id=bytes.fromhex(args.worker_id),
        on_assign=executor.on_assign, on_cancel=executor.on_cancel, on_disconnect=lifeline.raylet_lost,
        raylet_socket=args.raylet_socket, raylet_pid=_raylet_pid(store, args.node_id),
    )
    executor.cw = cw
    signal.signal(signal.SIGUSR1, executor.on_signal)
    log_forward.install(cw)
    worker_context.global_worker = cw
    logger.info("worker %s (pid %d) connected", args.worker_id[:12], os.getpid())
    try:
        executor.run_forever()
        if executor.exit_how:
            # An actor that ended itself exits as a Python program does: its atexit handlers run
            # (as in Ray); they may still use the API, so this comes before the connection closes.
            atexit._run_exitfuncs()
    finally:
        lifeline.stop()
        sys.stdout.flush()
        sys.stderr.flush()
        cw.raylet.close()
        if lifeline.raylet_gone:  # the same exit whether a task was running or not
            lifeline.on_gone("the connection to the raylet is gone")
        # Skip interpreter teardown: user threads or actor loops must not keep a dead worker alive.
        os._exit(0)


if __name__ == "__main__":
    main()
