"""Placement-group bundles on this node in two phases: prepared (set aside), then committed (usable by tasks)."""

from __future__ import annotations

from dataclasses import dataclass

from rayredis.common.resources import ResourceSet, bundle_resource_names
from rayredis.raylet.scheduler import LocalScheduler


@dataclass
class Bundle:
    """One bundle on this node: the base resources it took and the bundle resources it exposes once
    committed; ``txn`` is the GCS reservation that prepared (or last re-prepared) it."""

    base: ResourceSet
    exposed: ResourceSet
    txn: int
    committed: bool = False
    #: When it was prepared (the raylet's clock), for :meth:`Bundles.prepared_before`.
    since: float = 0.0


def _bundle(pg_hex: str, index: int, spec: dict[str, float], txn: int, now: float) -> Bundle:
    exposed: dict[str, float] = {}
    for name, amount in [*spec.items(), ("bundle", 1000.0)]:
        for rname in bundle_resource_names(name, pg_hex, index):
            exposed[rname] = exposed.get(rname, 0.0) + amount
    return Bundle(ResourceSet.from_floats(spec), ResourceSet.from_floats(exposed), txn, since=now)


class Bundles:
    """Every operation is idempotent per bundle (group and index), so a GCS retry, or a new GCS
    finishing what a dead one began, never applies one twice.

    :meth:`prepare` takes the base resources but exposes nothing: no task can use a prepared bundle.
    :meth:`commit` exposes them (the GCS commits only once every bundle of the reservation is
    prepared); :meth:`cancel` gives prepared ones back when the reservation is abandoned, and
    :meth:`release` gives back all of a group's bundles (it was removed).
    """

    def __init__(self, scheduler: LocalScheduler):
        self.scheduler = scheduler
        self.reserved: dict[tuple[bytes, int], Bundle] = {}

    def _take(self, pg_id: bytes, indexes: list[int], bundles: list[dict[str, float]], txn: int,
              now: float) -> tuple[list[tuple[int, Bundle]], str]:
        """Take the base resources of the bundles not here yet (all or none); the new bundles, or an error."""
        for i in indexes:
            b = self.reserved.get((pg_id, i))
            if b is not None and not b.committed:
                b.txn = txn  # re-prepared by a later reservation: that one owns it now
        todo = [(i, _bundle(pg_id.hex(), i, spec, txn, now))
                for i, spec in zip(indexes, bundles) if (pg_id, i) not in self.reserved]
        need = ResourceSet()
        for _, b in todo:
            need = need + b.base
        if not need.fits_in(self.scheduler.total):
            return [], f"bundles need {need.to_floats()}, more than this node has in total"
        if todo and not self.scheduler.acquire(need):
            return [], f"bundles need {need.to_floats()}, not available now"
        for i, b in todo:
            self.reserved[(pg_id, i)] = b
        return todo, ""

    def prepare(self, pg_id: bytes, indexes: list[int], bundles: list[dict[str, float]], txn: int = 0,
                now: float = 0.0) -> tuple[bool, str]:
        """Phase 1: set the bundles' resources aside for reservation ``txn``, all or none."""
        _, err = self._take(pg_id, indexes, bundles, txn, now)
        return err == "", err

    def commit(self, pg_id: bytes, indexes: list[int], bundles: list[dict[str, float]], txn: int = 0,
               now: float = 0.0) -> tuple[bool, str]:
        """Phase 2: expose the bundles to tasks. A bundle not prepared here (this raylet restarted
        since) is taken now if it fits, so the commit of a decided reservation still completes."""
        _, err = self._take(pg_id, indexes, bundles, txn, now)
        if err:
            return False, err
        for i in indexes:
            b = self.reserved[(pg_id, i)]
            if not b.committed:
                b.committed = True
                self.scheduler.add_resources(b.exposed)
        return True, ""

    def reserve(self, pg_id: bytes, indexes: list[int], bundles: list[dict[str, float]]) -> tuple[bool, str]:
        """Prepare and commit at once (for callers that need no second phase, e.g. tests)."""
        return self.commit(pg_id, indexes, bundles)

    def cancel(self, pg_id: bytes, indexes: list[int], txn: int) -> None:
        """Give back the bundles of ``indexes`` that ``txn`` prepared and nobody committed."""
        for i in indexes:
            b = self.reserved.get((pg_id, i))
            if b is not None and not b.committed and b.txn == txn:
                del self.reserved[(pg_id, i)]
                self.scheduler.release(b.base)

    def release(self, pg_id: bytes) -> None:
        """Give back every bundle of the group, prepared or committed."""
        for key in [k for k in self.reserved if k[0] == pg_id]:
            b = self.reserved.pop(key)
            if b.committed:
                self.scheduler.remove_resources(b.exposed)
            self.scheduler.release(b.base)

    def prepared_before(self, cutoff: float) -> dict[bytes, list[tuple[int, int]]]:
        """Bundles prepared before ``cutoff`` and still not committed: group -> [(index, txn)]."""
        out: dict[bytes, list[tuple[int, int]]] = {}
        for (pg, i), b in self.reserved.items():
            if not b.committed and b.since < cutoff:
                out.setdefault(pg, []).append((i, b.txn))
        return out

    def drop_prepared(self, pg_id: bytes, keep_txn: int | None) -> bool:
        """Give back the group's prepared (uncommitted) bundles of reservations other than ``keep_txn``
        (the one its entry records, None: none); True if there were any."""
        drop = [k for k, b in self.reserved.items() if k[0] == pg_id and not b.committed and b.txn != keep_txn]
        for k in drop:
            self.scheduler.release(self.reserved.pop(k).base)
        return bool(drop)
