"""The control store: Redis keys, shard routing, Lua scripts and pub/sub."""

from __future__ import annotations
