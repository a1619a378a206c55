"""Loads the Lua scripts in ``store/scripts/`` (each with a KEYS/ARGV header) for sync or async clients."""

from __future__ import annotations

import pathlib
from functools import cache
from typing import Any

_DIR = pathlib.Path(__file__).parent / "scripts"

#: Script names, one ``.lua`` file each.
NAMES = ("hfield_cas", "actor_create", "actor_transition", "task_transition", "object_location_remove")


@cache
def source(name: str) -> str:
    return (_DIR / f"{name}.lua").read_text()


class Scripts:
    """Registered scripts for one client: ``scripts.actor_transition(keys=[...], args=[...])``.

    redis-py's Script objects use EVALSHA and fall back to loading on NOSCRIPT, so a restarted
    Redis shard is handled transparently. They also work inside pipelines (``client=pipe``).
    """

    def __init__(self, client: Any):
        for name in NAMES:
            setattr(self, name, client.register_script(source(name)))

    hfield_cas: Any
    actor_create: Any
    actor_transition: Any
    task_transition: Any
    object_location_remove: Any
