"""The dashboard's web server (aiohttp): stateless JSON pages over the cluster's Redis, live through its pub/sub.

Nothing is kept between requests: every page is one read of the Redis tables (``state_reader``),
and the live stream (server-sent events) relays the table channels and the cluster-event stream.
Every page and API call needs the login cookie, the secret as a bearer token, or ``?token=``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
from aiohttp import web

from rayredis._private import events
from rayredis._private import state_reader as reader
from rayredis._private.logs import setup_process_logging
from rayredis._private.state_records import StateApiError, tail_lines
from rayredis.config import get_config, secret_from_env
from rayredis.dashboard import views
from rayredis.store import keys, pubsub
from rayredis.store.client import AsyncShardedRedis, ShardedRedis
from rayredis.store.tables import read_nodes

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_PORT = 8265
#: Seconds between keep-alive comments on the live stream (how soon a closed tab is noticed).
KEEPALIVE_S = 5.0
_CHANNELS = {keys.node_channel(): "node", keys.actor_channel(): "actor", keys.job_channel(): "job",
             keys.placement_group_channel(): "placement_group"}
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Dashboard:
    """The web app of one cluster: its clients, its secret, and the routes."""

    def __init__(self, address: str, password: str | None, secret: str):
        if not secret:
            raise ValueError("the dashboard needs a secret: the cluster's Redis password "
                             "(RAYREDIS_REDIS_PASSWORD) or RAYREDIS_DASHBOARD_TOKEN")
        self.address = address
        self.password = password
        self.secret = secret
        self.store: Any = None
        self.aredis: Any = None
        self.stopping = asyncio.Event()

    async def connect(self) -> None:
        self.store = await asyncio.to_thread(lambda: ShardedRedis(self.address, self.password).connect())
        self.aredis = await AsyncShardedRedis(self.address, self.password).connect()

    async def close(self) -> None:
        if self.store is not None:
            self.store.close()
        if self.aredis is not None:
            await self.aredis.close()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.add_routes([
            web.get("/", self.index), web.get("/login", self.login_page), web.post("/login", self.login),
            web.get("/logout", self.logout), web.static("/static", STATIC),
            web.get("/api/overview", self._json(self.overview)), web.get("/api/jobs", self._json(self.jobs)),
            web.get("/api/actors", self._json(self.actors)), web.get("/api/tasks", self._json(self.tasks)),
            web.get("/api/placement_groups", self._json(self.placement_groups)),
            web.get("/api/objects", self._json(self.objects)), web.get("/api/events", self._json(self.events)),
            web.get("/api/logs", self._json(self.logs)), web.get("/api/log", self._json(self.log)),
            web.get("/api/stream", self.stream),
        ])
        return app

    # ---- authentication ----------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        return views.authorized(self.secret, cookie=request.cookies.get(views.COOKIE),
                                bearer=views.bearer_token(request.headers.get("Authorization")),
                                token=request.query.get("token"))

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/static/") or path in ("/login", "/logout"):
            return await handler(request)  # no state there
        if not self._authorized(request):
            if path.startswith("/api/"):
                return web.json_response({"error": "log in first: the cluster's Redis password as a bearer token, "
                                                   "?token=, or the login page"}, status=401)
            raise web.HTTPFound("/login")
        if "token" in request.query and request.method == "GET" and not path.startswith("/api/"):
            # Trade the token in the URL for the cookie, and drop it from the address bar.
            query = {k: v for k, v in request.query.items() if k != "token"}
            resp = web.HTTPFound(request.rel_url.with_query(query))
            self._set_cookie(resp)
            raise resp
        return await handler(request)

    def _set_cookie(self, resp: web.StreamResponse) -> None:
        resp.set_cookie(views.COOKIE, views.session_cookie(self.secret), httponly=True, samesite="Strict", path="/")

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "login.html")

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        token = form.get("token")
        if isinstance(token, str) and views.authorized(self.secret, token=token):
            resp = web.HTTPFound("/")
            self._set_cookie(resp)
            raise resp
        raise web.HTTPFound("/login?failed=1")

    async def logout(self, request: web.Request) -> web.StreamResponse:
        resp = web.HTTPFound("/login")
        resp.del_cookie(views.COOKIE, path="/")
        raise resp

    # ---- JSON pages --------------------------------------------------------------------------

    def _json(self, read: Callable[[web.Request], Any]) -> Handler:
        """A GET handler answering ``read(request)``'s value (run in a thread: the reads are blocking)."""
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                body = await asyncio.to_thread(read, request)
            except StateApiError as e:
                return web.json_response({"error": str(e)}, status=400)
            except _REDIS_DOWN as e:
                return web.json_response({"error": f"the cluster's Redis did not answer: {e}"}, status=503)
            return web.json_response(body, headers={"Cache-Control": "no-store"})
        return handle

    def overview(self, request: web.Request) -> dict[str, Any]:
        out = views.overview(read_nodes(self.store.primary), time.time())
        out["address"] = self.address
        out["jobs_running"] = sum(1 for j in reader.jobs(self.store) if j.status == "RUNNING")
        return out

    def jobs(self, request: web.Request) -> dict[str, Any]:
        return views.filtered(reader.jobs(self.store), request.query, ("status", "job_id"))

    def actors(self, request: web.Request) -> dict[str, Any]:
        return views.filtered(reader.actors(self.store), request.query,
                              ("state", "class_name", "node_id", "job_id", "name"))

    def tasks(self, request: web.Request) -> dict[str, Any]:
        return views.filtered(reader.tasks(self.store), request.query, views.TASK_FILTERS)

    def placement_groups(self, request: web.Request) -> dict[str, Any]:
        return views.filtered(reader.placement_groups(self.store), request.query, ("state", "name"))

    def objects(self, request: web.Request) -> dict[str, Any]:
        return views.filtered(reader.objects(self.store), request.query, ("task_id",))

    def events(self, request: web.Request) -> dict[str, Any]:
        """The last ``limit`` events (after ``after``, if given), newest first."""
        found = events.read(self.store.primary, count=_int(request.query, "limit", 500),
                            after=request.query.get("after") or None)
        return {"events": [views.event_json(e) for e in reversed(found)]}

    def logs(self, request: web.Request) -> dict[str, Any]:
        files = reader.log_files(self.store, request.query.get("node_id") or None)
        return {"files": [{"node_id": f.node_id, "name": f.name, "size": f.size} for f in files]}

    def log(self, request: web.Request) -> dict[str, Any]:
        q = request.query
        pid = q.get("pid")
        f = reader.resolve_log(self.store, q.get("node_id") or None, q.get("filename") or None,
                               q.get("actor_id") or None, int(pid) if pid and pid.isdigit() else None,
                               "err" if q.get("err") else "out", q.get("task_id") or None)
        with open(f.path, errors="replace") as fh:
            lines = tail_lines(fh.read(), _int(q, "tail", 1000))
        return {"node_id": f.node_id, "name": f.name, "size": f.size, "lines": lines}

    # ---- live stream -------------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``change`` (a table's channel announced an id; ``all`` after each
        (re)subscription) and ``cluster_event`` (each new event, oldest first)."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await resp.prepare(request)
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)

        def put(item: bytes) -> None:
            with contextlib.suppress(asyncio.QueueFull):  # a stalled reader misses changes, then rescans
                queue.put_nowait(item)

        async def rescan() -> None:
            put(views.sse("change", {"channel": "all"}))

        async def on_message(channel: str, data: str) -> None:
            put(views.sse("change", {"channel": _CHANNELS.get(channel, channel), "id": data}))

        follower = asyncio.ensure_future(pubsub.follow(self.aredis.primary, list(_CHANNELS), rescan, on_message,
                                                       on_lost=lambda e: None))
        tailer = asyncio.ensure_future(self._tail_events(request.query.get("after") or None, put))
        try:
            while not self.stopping.is_set():
                try:
                    item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    item = b": keepalive\n\n"
                await resp.write(item)
        except (ConnectionResetError, RuntimeError):
            pass  # the tab was closed
        finally:
            for t in (follower, tailer):
                t.cancel()
            await asyncio.wait([follower, tailer])
        return resp

    async def _tail_events(self, after: str | None, put: Callable[[bytes], None]) -> None:
        """Relay each cluster event appended after ``after`` (default: from now on), by blocking XREADs."""
        stream = keys.cluster_events_key()
        last = after or "$"
        while True:
            try:
                got = await self.aredis.primary.xread({stream: last}, count=100, block=1000)
            except _REDIS_DOWN:
                await asyncio.sleep(1.0)
                continue
            for _, rows in got or []:
                for eid, raw in rows:
                    e = events.parse(eid, raw)
                    last = e.event_id
                    put(views.sse("cluster_event", views.event_json(e)))


def _int(query: Any, key: str, default: int) -> int:
    try:
        return int(query.get(key, default))
    except ValueError:
        raise StateApiError(f"{key} must be an integer (got {query.get(key)!r})") from None


# ---- the process --------------------------------------------------------------------------------


async def _register(client: Any, url: str) -> None:
    await client.hset(keys.dashboard_key(), mapping={"url": url, "pid": str(os.getpid()), "started": str(time.time())})


async def _unregister(client: Any) -> None:
    """Delete the dashboard entry if it still names this process (a newer dashboard may have replaced it)."""
    with contextlib.suppress(*_REDIS_DOWN):
        if (await client.hget(keys.dashboard_key(), "pid") or b"").decode() == str(os.getpid()):
            await client.delete(keys.dashboard_key())


async def serve(args: argparse.Namespace) -> int:
    password = secret_from_env("REDIS_PASSWORD")
    dash = Dashboard(args.redis_address, password, os.environ.get("RAYREDIS_DASHBOARD_TOKEN") or password or "")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, dash.stopping.set)
    await dash.connect()
    runner = web.AppRunner(dash.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port)
        try:
            await site.start()
        except OSError as e:
            logger.error("the dashboard cannot listen on %s:%d (%s); choose another port with --dashboard-port",
                         args.host, args.port, e)
            return 1
        server: Any = site._server  # aiohttp keeps the asyncio server there; it knows the port 0 became
        port = server.sockets[0].getsockname()[1] if server is not None and server.sockets else args.port
        host = args.host if args.host not in ("0.0.0.0", "::") else (args.node_ip or "127.0.0.1")
        url = f"http://{host}:{port}"
        await _register(dash.aredis.primary, url)
        logger.info("dashboard (pid %d) serving %s for the cluster at %s", os.getpid(), url, args.redis_address)
        await dash.stopping.wait()
        await _unregister(dash.aredis.primary)
    finally:
        await runner.cleanup()
        await dash.close()
    return 0


def main(argv: list[str] | None = None) -> None:
    cfg = get_config()
    ap = argparse.ArgumentParser(prog="python -m rayredis.dashboard",
                                 description="Serve the cluster's dashboard (the Redis password comes from "
                                             "RAYREDIS_REDIS_PASSWORD, never from the command line).")
    ap.add_argument("--redis-address", default=os.environ.get("RAYREDIS_ADDRESS", ""),
                    help="host:port of the cluster's primary Redis shard (default RAYREDIS_ADDRESS)")
    ap.add_argument("--host", default=cfg.bind_host, help=f"interface to listen on (default {cfg.bind_host})")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free one)")
    ap.add_argument("--node-ip", default="", help="the address put in the URL when listening on 0.0.0.0")
    ap.add_argument("--session-dir", default="", help="write logs/dashboard.log there")
    args = ap.parse_args(argv)
    if not args.redis_address:
        ap.error("--redis-address (or RAYREDIS_ADDRESS) is required")
    if args.session_dir:
        setup_process_logging(args.session_dir, "dashboard")
    else:
        logging.basicConfig(level=logging.INFO)
    try:
        sys.exit(asyncio.run(serve(args)))
    except ValueError as e:
        sys.exit(f"rayredis dashboard: {e}")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])

