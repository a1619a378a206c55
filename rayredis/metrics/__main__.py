"""``python -m rayredis.metrics``: the cluster's Prometheus exporter (``/metrics`` on 127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from rayredis.cli.common import CliError, connect, resolve_cluster
from rayredis.metrics.server import serve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rayredis.metrics", description=__doc__)
    p.add_argument("--address", help="host:port of the primary Redis shard (default: the local cluster)")
    p.add_argument("--port", type=int, default=8080, help="the HTTP port of /metrics (default 8080; 0: any free)")
    p.add_argument("--host", default="127.0.0.1", help="the address to bind (default 127.0.0.1)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:  # the password: RAYREDIS_REDIS_PASSWORD or the current-cluster file, never argv
        store = connect(*resolve_cluster(args.address, None))
    except CliError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    server, thread = serve(store, args.port, args.host)
    host, port = server.server_address[:2]
    print(f"Serving the cluster's metrics on http://{host}:{port}/metrics", flush=True)
    done = threading.Event()

    def stop(_signum: int, _frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    done.wait()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5.0)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
