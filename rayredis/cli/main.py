"""The ``rayredis`` command: ``start``, ``stop``, ``status``, ``health-check``, ``state dump``, ``list``, ``get``,
``summary``, ``logs``, ``timeline`` (Ray's CLI style)."""

from __future__ import annotations

import argparse
import logging
import sys

import redis

from rayredis._private.trusted import UntrustedPathError
from rayredis.cli import health, observe, redis_shard, start, state, status, stop, timeline
from rayredis.cli.common import CliError
from rayredis.version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rayredis", description="Start, stop and inspect rayredis clusters (Ray's API on sharded Redis).")
    parser.add_argument("--version", action="version", version=f"rayredis, version {__version__}")
    sub = parser.add_subparsers(
        dest="command",
        metavar="{start,stop,status,health-check,state,list,get,summary,logs,timeline,redis-shard}")
    sub.required = True
    start.add_parser(sub)
    stop.add_parser(sub)
    status.add_parser(sub)
    health.add_parser(sub)
    state.add_parser(sub)
    observe.add_parsers(sub)
    redis_shard.add_parser(sub)
    timeline.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one CLI command; returns the process exit status (0 on success)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except UntrustedPathError as e:  # another user's file in our temp dir: say which and how to fix it
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except redis.exceptions.RedisError as e:
        print(f"Error: lost the connection to the cluster's Redis: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
