"""Utilities mirroring ``ray.util``: placement groups and scheduling strategies."""

from __future__ import annotations

from rayredis.util import scheduling_strategies
from rayredis.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

__all__ = ["PlacementGroup", "get_current_placement_group", "get_placement_group", "placement_group",
           "placement_group_table", "remove_placement_group", "scheduling_strategies"]
