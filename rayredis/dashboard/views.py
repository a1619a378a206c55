"""The dashboard's decisions without I/O: who is logged in, and the JSON each page shows, from state records."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rayredis._private.events import ClusterEventState
from rayredis._private.state_records import Filter, StateApiError, apply_filters
from rayredis.store.tables import NodeRecord, NodeState

COOKIE = "rayredis_dashboard"
#: Resources the overview leaves out of a node's table (Ray hides them too).
_HIDDEN = re.compile(r"^node:|_group_(\d+_)?[0-9a-f]{32}$")
_STORE = "object_store_memory"
#: Query parameters of ``/api/tasks`` that filter (exact match, as the state API's filters).
TASK_FILTERS = ("state", "name", "node_id", "job_id", "type", "actor_id", "error_type")


# ---- authentication ------------------------------------------------------------------------------


def session_cookie(secret: str) -> str:
    """The cookie value that proves a login: an HMAC of a fixed label under the secret, so the secret
    itself never travels again after the login, and a restarted dashboard accepts the same cookie."""
    return hmac.new(secret.encode(), b"rayredis-dashboard-session-v1", hashlib.sha256).hexdigest()


def authorized(secret: str, *, cookie: str | None = None, bearer: str | None = None, token: str | None = None) -> bool:
    """Whether a request carries the session cookie, or the secret as a bearer token or ``?token=``."""
    if not secret:
        return False
    if cookie and hmac.compare_digest(cookie.encode(), session_cookie(secret).encode()):
        return True
    return any(t and hmac.compare_digest(t.encode(), secret.encode()) for t in (bearer, token))


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


# ---- pages ---------------------------------------------------------------------------------------


def records(items: Iterable[Any]) -> list[dict[str, Any]]:
    """Dataclass records as JSON-ready dicts."""
    return [dataclasses.asdict(r) for r in items]


def _use(total: Mapping[str, float], avail: Mapping[str, float], name: str) -> dict[str, float]:
    t = float(total.get(name, 0.0))
    return {"used": max(0.0, t - float(avail.get(name, t))), "total": t}


def overview(nodes: Sequence[NodeRecord], now: float) -> dict[str, Any]:
    """The cluster overview: every node with its state, heartbeat age and resource use, and totals.

    CPU and memory are the logical resources in use (what tasks and actors hold, as ``rayredis
    status`` counts them); the object store is the bytes its objects take. The heartbeat age is the
    time since the node's last load report (written with each heartbeat), by the raylet's clock.
    """
    out: list[dict[str, Any]] = []
    for n in nodes:
        info, load = n.info, n.load
        total = dict((load.total if load else None) or (info.resources if info else {}))
        avail = dict(load.available) if load else dict(total)
        custom = {k: _use(total, avail, k) for k in sorted(total)
                  if k not in ("CPU", "GPU", "memory", _STORE) and not _HIDDEN.search(k)}
        out.append({
            "node_id": n.node_id, "state": n.state, "alive": n.state == NodeState.ALIVE.value,
            "node_ip": info.node_ip if info else "", "address": info.address if info else "",
            "is_head": bool(info and info.is_head), "pid": info.pid if info else 0,
            "start_time": info.start_time if info else 0.0,
            "heartbeats": n.heartbeats,
            "heartbeat_age_s": round(max(0.0, now - load.time), 1) if load and load.time else None,
            "cpu": _use(total, avail, "CPU"), "gpu": _use(total, avail, "GPU"), "memory": _use(total, avail, "memory"),
            "object_store": {"used": float(load.object_store_used if load else 0),
                             "total": float((load.object_store_capacity if load else 0)
                                            or (info.object_store_memory if info else 0))},
            "custom": custom, "running": load.running if load else 0, "queued": load.queued if load else 0,
            "workers": load.workers if load else 0, "num_objects": load.num_objects if load else 0,
            "session_dir": info.session_dir if info else "",
        })
    out.sort(key=lambda n: (not n["is_head"], not n["alive"], n["node_id"]))
    alive = [n for n in out if n["alive"]]

    def total_of(key: str) -> dict[str, float]:
        return {"used": sum(n[key]["used"] for n in alive), "total": sum(n[key]["total"] for n in alive)}

    return {"nodes": out, "alive": len(alive), "dead": len(out) - len(alive),
            "totals": {k: total_of(k) for k in ("cpu", "gpu", "memory", "object_store")}}


def query_filters(query: Mapping[str, str], allowed: Sequence[str]) -> list[Filter]:
    """State-API filters from query parameters: ``?state=FAILED`` is ``state = FAILED``, ``?state=!FAILED``
    ``state != FAILED``; only ``allowed`` keys, empty values ignored."""
    out: list[Filter] = []
    for key in allowed:
        value = query.get(key, "").strip()
        if value:
            out.append((key, "!=", value[1:]) if value.startswith("!") else (key, "=", value))
    return out


def filtered(items: Sequence[Any], query: Mapping[str, str], allowed: Sequence[str],
             default_limit: int = 1000) -> dict[str, Any]:
    """``{"total": N, "shown": [...]}`` of the records passing the query's filters (``limit`` too)."""
    try:
        limit = int(query.get("limit", default_limit))
    except ValueError:
        raise StateApiError(f"limit must be an integer (got {query.get('limit')!r})") from None
    matched = apply_filters(items, query_filters(query, allowed), None)
    return {"total": len(items), "matched": len(matched), "shown": records(matched[:max(0, limit)])}


def event_json(e: ClusterEventState) -> dict[str, Any]:
    return dataclasses.asdict(e)


def sse(event: str, data: Any) -> bytes:
    """One server-sent event (``event:`` and one ``data:`` line of JSON)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
