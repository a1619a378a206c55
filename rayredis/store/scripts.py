"""Loads the Lua scripts in ``store/scripts/`` (each with a KEYS/ARGV header) for sync or async clients."""

from __future__ import annotations

import pathlib
from functools import cache
from typing import Any

_DIR = pathlib.Path(__file__).parent / "scripts"

#: Script names, one ``.lua`` file each.
NAMES = ("hfield_cas", "hash_cas", "actor_create", "actor_transition", "task_transition",
         "object_location_remove", "gcs_lease", "task_claim", "actor_prune")

#: Put in front of a script to fence it on the GCS lease: the caller appends the lease key to KEYS
#: and its holder id to ARGV; both are removed before the script proper runs, which then sees the
#: KEYS and ARGV it always did. Returns -1, writing nothing, when the lease has another holder.
FENCE_PRELUDE = """-- fenced on the GCS lease (store/scripts.py FENCE_PRELUDE)
local fence_holder = table.remove(ARGV)
local fence_key = table.remove(KEYS)
if redis.call('GET', fence_key) ~= fence_holder then return -1 end
"""

#: The body of the fenced ``hset``: KEYS[1] = a hash, ARGV = field, value pairs.
_HSET = "redis.call('HSET', KEYS[1], unpack(ARGV))\nreturn 1\n"

#: What a fenced script returns when the caller no longer holds the GCS lease.
FENCED_OUT = -1


@cache
def source(name: str) -> str:
    return (_DIR / f"{name}.lua").read_text()


def fenced_source(name: str) -> str:
    """``name``'s script (or ``"hset"``), run only while the caller holds the GCS lease."""
    return FENCE_PRELUDE + (_HSET if name == "hset" else source(name))


class Scripts:
    """Registered scripts for one client: ``scripts.actor_transition(keys=[...], args=[...])``.

    redis-py's Script objects use EVALSHA and fall back to loading on NOSCRIPT, so a restarted
    Redis shard is handled transparently. They also work inside pipelines (``client=pipe``).
    """

    def __init__(self, client: Any):
        for name in NAMES:
            setattr(self, name, client.register_script(source(name)))

    hfield_cas: Any
    hash_cas: Any
    actor_create: Any
    actor_transition: Any
    task_transition: Any
    object_location_remove: Any
    gcs_lease: Any
    task_claim: Any
    actor_prune: Any


class FencedScripts:
    """The GCS's decision writes, each applied only while the lease holds the caller's id
    (:data:`FENCE_PRELUDE`): ``hfield_cas``, ``hash_cas``, ``actor_transition`` and a plain ``hset``."""

    def __init__(self, client: Any):
        for name in ("hfield_cas", "hash_cas", "actor_transition", "hset"):
            setattr(self, name, client.register_script(fenced_source(name)))

    hfield_cas: Any
    hash_cas: Any
    actor_transition: Any
    hset: Any
