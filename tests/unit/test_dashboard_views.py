"""The dashboard's pure parts: who is logged in, the overview built from node records, filters from a query."""

from __future__ import annotations

import json

import pytest

from rayredis._private.state_records import StateApiError, TaskState
from rayredis.dashboard import views
from rayredis.store.tables import NodeInfo, NodeLoad, NodeRecord


def test_authorized_by_cookie_bearer_or_token_never_without_a_secret() -> None:
    cookie = views.session_cookie("pw")
    assert cookie != "pw" and len(cookie) == 64 and cookie == views.session_cookie("pw")
    assert views.session_cookie("other") != cookie
    assert views.authorized("pw", cookie=cookie)
    assert views.authorized("pw", bearer="pw") and views.authorized("pw", token="pw")
    assert not views.authorized("pw", cookie="pw")  # the cookie is the HMAC, not the password
    assert not views.authorized("pw", bearer="nope", token="", cookie=None)
    assert not views.authorized("pw")
    assert not views.authorized("", token="", bearer="", cookie=views.session_cookie(""))
    assert views.bearer_token("Bearer abc ") == "abc" and views.bearer_token("bearer x") == "x"
    assert views.bearer_token("Basic abc") is None and views.bearer_token(None) is None


def _node(nid: str, state: str, head: bool, load: NodeLoad | None) -> NodeRecord:
    info = NodeInfo(nid, f"{nid}:1", "10.0.0.1", {"CPU": 2.0, "memory": 1000.0, "node:10.0.0.1": 1.0, "gpu_box": 1.0},
                    object_store_memory=500, is_head=head, pid=7)
    return NodeRecord(nid, state, info, load, heartbeats=3)


def test_overview_use_heartbeat_age_and_totals_of_alive_nodes() -> None:
    load = NodeLoad(available={"CPU": 0.5, "memory": 400.0, "gpu_box": 0.0},
                    total={"CPU": 2.0, "memory": 1000.0, "node:10.0.0.1": 1.0, "gpu_box": 1.0,
                           "CPU_group_0_" + "a" * 32: 1.0},
                    object_store_used=100, object_store_capacity=500, running=2, time=90.0)
    o = views.overview([_node("b", "DEAD", False, None), _node("a", "ALIVE", True, load)], now=100.0)
    head, dead = o["nodes"]
    assert (head["node_id"], dead["node_id"]) == ("a", "b")  # the head first
    assert head["cpu"] == {"used": 1.5, "total": 2.0} and head["memory"] == {"used": 600.0, "total": 1000.0}
    assert head["object_store"] == {"used": 100.0, "total": 500.0} and head["heartbeat_age_s"] == 10.0
    assert set(head["custom"]) == {"gpu_box"}  # node: and bundle resources hidden
    assert dead["heartbeat_age_s"] is None and dead["cpu"] == {"used": 0.0, "total": 2.0}
    assert dead["object_store"]["total"] == 500.0
    assert (o["alive"], o["dead"]) == (1, 1) and o["totals"]["cpu"] == {"used": 1.5, "total": 2.0}
    json.dumps(o)  # JSON-ready


def _task(name: str, state: str) -> TaskState:
    return TaskState(task_id=name + state, attempt_number=0, name=name, state=state, job_id="1", actor_id=None,
                     type="NORMAL_TASK", func_or_class_name=name, parent_task_id="", node_id="n")


def test_filters_from_the_query() -> None:
    tasks = [_task("f", "FINISHED"), _task("f", "FAILED"), _task("g", "FINISHED")]
    assert views.query_filters({"state": "FAILED", "name": " ", "other": "x"}, views.TASK_FILTERS) == [
        ("state", "=", "FAILED")]
    assert views.query_filters({"name": "!f"}, views.TASK_FILTERS) == [("name", "!=", "f")]
    got = views.filtered(tasks, {"name": "f"}, views.TASK_FILTERS)
    assert (got["total"], got["matched"]) == (3, 2) and {t["state"] for t in got["shown"]} == {"FINISHED", "FAILED"}
    assert views.filtered(tasks, {"state": "finished", "limit": "1"}, views.TASK_FILTERS)["shown"] == [
        views.records([tasks[0]])[0]]
    assert views.filtered(tasks, {"name": "!f"}, views.TASK_FILTERS)["matched"] == 1
    with pytest.raises(StateApiError, match="limit"):
        views.filtered(tasks, {"limit": "many"}, views.TASK_FILTERS)


def test_sse_frames() -> None:
    assert views.sse("change", {"channel": "node"}) == b'event: change\ndata: {"channel":"node"}\n\n'
