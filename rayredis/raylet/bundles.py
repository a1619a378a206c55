"""Placement-group bundles reserved on this node, exposed as ``<res>_group_<i>_<pg>`` resources."""

from __future__ import annotations

from rayredis.common.resources import ResourceSet, bundle_resource_names
from rayredis.raylet.scheduler import LocalScheduler


class Bundles:
    """Reservations are idempotent per bundle (group and index), so a GCS retry cannot reserve twice,
    and a group's bundles that moved here from a dead node add to those it already had here."""

    def __init__(self, scheduler: LocalScheduler):
        self.scheduler = scheduler
        #: (group, bundle index) -> (base resources taken, bundle resources exposed)
        self.reserved: dict[tuple[bytes, int], tuple[ResourceSet, ResourceSet]] = {}

    def reserve(self, pg_id: bytes, indexes: list[int], bundles: list[dict[str, float]]) -> tuple[bool, str]:
        todo = [(i, b) for i, b in zip(indexes, bundles) if (pg_id, i) not in self.reserved]
        if not todo:
            return True, ""
        pg_hex = pg_id.hex()
        parts: list[tuple[int, ResourceSet, ResourceSet]] = []
        need = ResourceSet()
        for i, b in todo:
            exposed: dict[str, float] = {}
            for name, amount in b.items():
                indexed, wildcard = bundle_resource_names(name, pg_hex, i)
                exposed[indexed] = exposed.get(indexed, 0.0) + amount
                exposed[wildcard] = exposed.get(wildcard, 0.0) + amount
            indexed, wildcard = bundle_resource_names("bundle", pg_hex, i)
            exposed[indexed] = exposed.get(indexed, 0.0) + 1000.0
            exposed[wildcard] = exposed.get(wildcard, 0.0) + 1000.0
            base = ResourceSet.from_floats(b)
            need = need + base
            parts.append((i, base, ResourceSet.from_floats(exposed)))
        if not need.fits_in(self.scheduler.total):
            return False, f"bundles need {need.to_floats()}, more than this node has in total"
        if not self.scheduler.acquire(need):
            return False, f"bundles need {need.to_floats()}, not available now"
        for i, base, extra in parts:
            self.scheduler.add_resources(extra)
            self.reserved[(pg_id, i)] = (base, extra)
        return True, ""

    def release(self, pg_id: bytes) -> None:
        for key in [k for k in self.reserved if k[0] == pg_id]:
            base, extra = self.reserved.pop(key)
            self.scheduler.remove_resources(extra)
            self.scheduler.release(base)
