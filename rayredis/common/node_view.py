"""What a scheduler knows of one alive node: its address and its last reported resources and load."""

from __future__ import annotations

from dataclasses import dataclass

from rayredis.common.resources import ResourceSet


@dataclass(frozen=True)
class NodeView:
    """What the GCS knows of an alive node from the node table and its last heartbeat load."""

    node_id: str
    address: str
    total: ResourceSet
    available: ResourceSet
    queued: int = 0
