"""``rayredis timeline``: Ray's ``ray timeline``, the Chrome trace of the cluster's ended tasks."""

from __future__ import annotations

import argparse
import datetime
import os
from typing import Any

from rayredis._private import timeline
from rayredis.cli.common import connect, resolve_cluster
from rayredis.config import get_config


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "timeline", help="Write a Chrome tracing timeline of the cluster's tasks (Ray's `ray timeline`).")
    p.add_argument("--address", help="host:port of the primary Redis shard (default: the local cluster)")
    p.add_argument("--redis-password", help="the cluster's Redis password (default: RAYREDIS_REDIS_PASSWORD "
                                            "or the local current-cluster file)")
    p.add_argument("--output", "-o", help="the JSON file to write (default: "
                                          "<temp_dir>/rayredis-timeline-<date>_<time>.json)")
    p.set_defaults(func=run)


def default_filename(now: datetime.datetime | None = None) -> str:
    """Ray's default name, in this user's temp dir: ``rayredis-timeline-<date>_<time>.json``."""
    stamp = (now or datetime.datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    return os.path.join(get_config().temp_dir, f"rayredis-timeline-{stamp}.json")


def run(args: argparse.Namespace) -> int:
    store = connect(*resolve_cluster(args.address, args.redis_password))
    try:
        events = timeline.read_timeline(store)
    finally:
        store.close()
    filename = args.output or default_filename()
    if not args.output:
        os.makedirs(os.path.dirname(filename), mode=0o700, exist_ok=True)
    timeline.dump(events, filename)
    n = sum(1 for e in events if e.get("ph") == "X")
    print(f"Trace file written to {filename} ({n} task executions).")
    print("Open it with chrome://tracing in Chrome, or https://ui.perfetto.dev.")
    return 0
