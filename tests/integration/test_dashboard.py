"""The dashboard over HTTP (no browser) on a real 2-node cluster: login, every JSON page, the live stream, and
the cluster events written where things happen (node registration, an actor restart)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import rayredis as ray
from rayredis._private import events, node
from rayredis._private.redis_server import free_port
from rayredis.cli.status import render
from rayredis.cluster_utils import Cluster
from rayredis.exceptions import RaySystemError
from rayredis.util.state import list_cluster_events

API_PAGES = ["overview", "jobs", "actors", "tasks", "placement_groups", "objects", "events", "logs", "log"]


@dataclass
class Dash:
    cluster: Cluster
    url: str
    password: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def fetch(url: str, *, token: str | None = None, cookie: str | None = None,
          data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookie:
        headers["Cookie"] = cookie
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with _opener.open(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def api(d: Dash, path: str) -> Any:
    status, _, body = fetch(d.url + path, token=d.password)
    assert status == 200, (status, body)
    return json.loads(body)


def until(what: str, read: Any, timeout_s: float = 30.0) -> Any:
    """Poll ``read()`` until it returns something true (the tables are written asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = read()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def dash() -> Iterator[Dash]:
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_redis_shards": 2})
    try:
        c.add_node(num_cpus=1)
        c.wait_for_nodes()
        assert c.head_node is not None and c.redis_password
        url = node.start_dashboard(c.head_node.handle, port=0)
        c.connect()
        yield Dash(c, url, c.redis_password)
    finally:
        ray.shutdown()
        c.shutdown()


def test_nothing_is_served_without_the_password(dash: Dash) -> None:
    for page in API_PAGES + ["stream"]:
        status, _, body = fetch(f"{dash.url}/api/{page}")
        assert status == 401 and b"log in" in body, page
        assert fetch(f"{dash.url}/api/{page}", token="wrong")[0] == 401
        assert fetch(f"{dash.url}/api/{page}?token=wrong")[0] == 401
        assert fetch(f"{dash.url}/api/{page}", cookie="rayredis_dashboard=forged")[0] == 401
    status, headers, _ = fetch(dash.url + "/")
    assert status == 302 and headers["Location"] == "/login"
    status, _, body = fetch(dash.url + "/login")
    assert status == 200 and b'name="token"' in body and dash.password.encode() not in body
    assert fetch(dash.url + "/static/app.js")[0] == 200  # the front end holds no state


def test_login_sets_a_cookie_that_is_not_the_password(dash: Dash) -> None:
    status, headers, _ = fetch(dash.url + "/login", data=urllib.parse.urlencode({"token": "nope"}).encode())
    assert status == 302 and headers["Location"] == "/login?failed=1" and "Set-Cookie" not in headers
    status, headers, _ = fetch(dash.url + "/login", data=urllib.parse.urlencode({"token": dash.password}).encode())
    assert status == 302 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"].split(";")[0]
    assert dash.password not in cookie and "HttpOnly" in headers["Set-Cookie"]
    assert "samesite=strict" in headers["Set-Cookie"].lower()
    assert fetch(dash.url + "/api/overview", cookie=cookie)[0] == 200
    status, _, body = fetch(dash.url + "/", cookie=cookie)
    assert status == 200 and b"app.js" in body
    # ?token= once: traded for the cookie, and dropped from the address.
    status, headers, _ = fetch(f"{dash.url}/?token={dash.password}")
    assert status == 302 and headers["Location"] == "/" and headers["Set-Cookie"].split(";")[0] == cookie


def test_overview_has_every_node_with_its_use(dash: Dash) -> None:
    o = api(dash, "/api/overview")
    ids = {n.node_id for n in dash.cluster.list_all_nodes()}
    assert {n["node_id"] for n in o["nodes"]} == ids and o["alive"] == 2 and o["dead"] == 0
    head = o["nodes"][0]
    assert head["is_head"] and head["state"] == "ALIVE" and head["cpu"]["total"] == 1.0
    assert head["object_store"]["total"] > 0 and head["memory"]["total"] > 0
    assert head["heartbeat_age_s"] is not None and head["heartbeat_age_s"] < 30
    assert o["totals"]["cpu"]["total"] == 2.0


@ray.remote
def alpha(i: int) -> int:
    print(f"alpha-says-{i}")
    return i


@ray.remote
def beta() -> int:
    return 0


def test_tasks_filter_and_logs_show_a_print(dash: Dash) -> None:
    assert ray.get([alpha.remote(i) for i in range(3)] + [beta.remote()]) == [0, 1, 2, 0]
    only = until("the tasks", lambda: (d := api(dash, "/api/tasks?name=alpha"))["matched"] == 3
                 and api(dash, "/api/tasks?name=beta")["matched"] == 1 and d)
    assert only["matched"] == 3 and {t["name"] for t in only["shown"]} == {"alpha"}
    assert only["total"] >= 4
    assert {t["name"] for t in api(dash, "/api/tasks?name=!alpha")["shown"]} >= {"beta"}
    assert api(dash, "/api/tasks?state=FAILED&name=alpha")["matched"] == 0
    status, _, body = fetch(dash.url + "/api/tasks?limit=x", token=dash.password)
    assert status == 400 and b"limit" in body
    task = until("a finished task", lambda: api(dash, "/api/tasks?name=alpha&state=FINISHED&limit=1")["shown"])[0]
    log = until("the print in the worker's log", lambda: (d := api(dash, f"/api/log?task_id={task['task_id']}"))
                and any("alpha-says" in line for line in d["lines"]) and d)
    names = {f["name"] for f in api(dash, "/api/logs")["files"]}
    assert log["name"] in names and "dashboard.log" in names
    status, _, body = fetch(dash.url + "/api/log?filename=../../etc/passwd", token=dash.password)
    assert status == 400


def test_jobs_actors_objects_placement_groups(dash: Dash) -> None:
    import numpy as np

    from rayredis.util import placement_group, remove_placement_group

    @ray.remote(num_cpus=0)
    class Keeper:
        def ping(self) -> str:
            return "pong"

    k = Keeper.options(name="keeper").remote()
    assert ray.get(k.ping.remote()) == "pong"
    ref = ray.put(np.zeros(2 * 1024 * 1024, dtype=np.uint8))
    pg = placement_group([{"CPU": 0.1}])
    ray.get(pg.ready(), timeout=30)
    assert any(j["status"] == "RUNNING" for j in api(dash, "/api/jobs")["shown"])
    actors = api(dash, "/api/actors?class_name=Keeper")["shown"]
    assert [(a["name"], a["state"]) for a in actors] == [("keeper", "ALIVE")]
    mine = until("the object's entry", lambda: [o for o in api(dash, "/api/objects")["shown"]
                                                if o["object_id"] == ref.hex()])
    assert mine[0]["object_size"] >= 2 * 1024 * 1024 and mine[0]["node_ids"]
    assert any(g["state"] == "CREATED" for g in api(dash, "/api/placement_groups")["shown"])
    remove_placement_group(pg)
    ray.kill(k)


def _sse(url: str, token: str, until: Any, timeout_s: float = 30.0) -> list[tuple[str, Any]]:
    """Read the live stream until ``until(events so far)`` holds (or the timeout)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=timeout_s)
    got: list[tuple[str, Any]] = []
    try:
        conn.request("GET", "/api/stream", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type", "").startswith("text/event-stream")
        deadline = time.monotonic() + timeout_s
        kind = ""
        while time.monotonic() < deadline and not until(got):
            line = resp.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                got.append((kind, json.loads(line[6:])))
    finally:
        conn.close()
    return got


def test_the_live_stream_relays_table_changes_and_new_events(dash: Dash) -> None:
    assert dash.cluster.head_node is not None
    handle = dash.cluster.head_node.handle
    marker = f"marker-{time.time()}"

    def until(got: list[tuple[str, Any]]) -> bool:
        if got and not any(k == "cluster_event" for k, _ in got) and len(got) == 1:
            # subscribed: append an event, which the stream must relay
            events.record_in_thread(handle.store, events.Kind.PROCESS_RESTARTED, marker, "SUPERVISOR").join(10)
        return any(k == "cluster_event" and e["message"] == marker for k, e in got)

    got = _sse(dash.url, dash.password, until)
    assert got[0] == ("change", {"channel": "all"})
    assert any(k == "cluster_event" and e["message"] == marker and e["label"] == "PROCESS_RESTARTED" for k, e in got)


def test_cluster_events_of_node_registration_and_an_actor_restart(dash: Dash) -> None:
    ids = {n.node_id for n in dash.cluster.list_all_nodes()}
    registered = {e.custom_fields.get("node_id") for e in list_cluster_events(filters=[("label", "=",
                                                                                          "NODE_REGISTERED")])}
    assert ids <= registered

    @ray.remote(max_restarts=1, num_cpus=0)
    class Phoenix:
        def pid(self) -> int:
            return os.getpid()

    p = Phoenix.remote()
    os.kill(ray.get(p.pid.remote()), signal.SIGKILL)
    aid = p._actor_id.hex()
    restarted = until("the restart event", lambda: [e for e in list_cluster_events(filters=[(
        "label", "=", "ACTOR_RESTARTED")]) if e.custom_fields.get("actor_id") == aid])
    assert restarted[0].source_type == "RAYLET" and restarted[0].severity == "WARNING"
    newest = api(dash, "/api/events?limit=1000")["events"]
    assert newest[0]["time"] >= newest[-1]["time"]
    assert any(e["label"] == "ACTOR_RESTARTED" and e["custom_fields"].get("actor_id") == aid for e in newest)
    ray.kill(p)
    # The CLI lists the same (the cluster is found through RAYREDIS_ADDRESS/RAYREDIS_REDIS_PASSWORD, set by Cluster).
    out = subprocess.run([sys.executable, "-m", "rayredis.cli.main", "list", "cluster-events", "--filter",
                          "label=ACTOR_RESTARTED", "--format", "json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert aid in {e["custom_fields"].get("actor_id") for e in json.loads(out.stdout)}


def test_status_prints_the_url(dash: Dash) -> None:
    store = ray.api.worker_context.global_worker.store  # type: ignore[attr-defined, union-attr]
    assert f"Dashboard: {dash.url}" in render(store)
    assert ray.api._context().dashboard_url == dash.url  # type: ignore[attr-defined]


def test_a_taken_port_is_a_clear_error(dash: Dash) -> None:
    assert dash.cluster.head_node is not None
    handle = dash.cluster.head_node.handle
    port = int(dash.url.rpartition(":")[2])
    with pytest.raises(RaySystemError, match="did not start"):
        node.start_dashboard(handle, port=port)
    assert api(dash, "/api/overview")["alive"] == 2  # the running one is untouched
    assert free_port("127.0.0.1") != port
