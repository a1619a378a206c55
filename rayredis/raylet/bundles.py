"""Placement-group bundles reserved on this node, exposed as ``<res>_group_<i>_<pg>`` resources."""

from __future__ import annotations

from rayredis.common.resources import ResourceSet, bundle_resource_names
from rayredis.raylet.scheduler import LocalScheduler


class Bundles:
    """Reservations are idempotent per placement group, so a GCS retry cannot reserve twice."""

    def __init__(self, scheduler: LocalScheduler):
        self.scheduler = scheduler
        self.reserved: dict[bytes, tuple[ResourceSet, ResourceSet]] = {}

    def reserve(self, pg_id: bytes, indexes: list[int], bundles: list[dict[str, float]]) -> tuple[bool, str]:
        if pg_id in self.reserved:
            return True, ""
        base: dict[str, float] = {}
        exposed: dict[str, float] = {}
        pg_hex = pg_id.hex()
        for i, b in zip(indexes, bundles):
            for name, amount in b.items():
                base[name] = base.get(name, 0.0) + amount
                indexed, wildcard = bundle_resource_names(name, pg_hex, i)
                exposed[indexed] = exposed.get(indexed, 0.0) + amount
                exposed[wildcard] = exposed.get(wildcard, 0.0) + amount
            indexed, wildcard = bundle_resource_names("bundle", pg_hex, i)
            exposed[indexed] = exposed.get(indexed, 0.0) + 1000.0
            exposed[wildcard] = exposed.get(wildcard, 0.0) + 1000.0
        demand = ResourceSet.from_floats(base)
        if not demand.fits_in(self.scheduler.total):
            return False, f"bundles need {base}, more than this node has in total"
        if not self.scheduler.acquire(demand):
            return False, f"bundles need {base}, not available now"
        extra = ResourceSet.from_floats(exposed)
        self.scheduler.add_resources(extra)
        self.reserved[pg_id] = (demand, extra)
        return True, ""

    def release(self, pg_id: bytes) -> None:
        got = self.reserved.pop(pg_id, None)
        if got is None:
            return
        demand, extra = got
        self.scheduler.remove_resources(extra)
        self.scheduler.release(demand)
