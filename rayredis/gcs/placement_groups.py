"""GCS placement-group management: all-or-nothing bundle reservation on raylets, recorded by CAS."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from rayredis.common.resources import ResourceSet
from rayredis.gcs.scheduling import place_bundles
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store import keys

if TYPE_CHECKING:
    from rayredis.gcs.server import Gcs

logger = logging.getLogger(__name__)


class PlacementGroupManager:
    def __init__(self, gcs: Gcs):
        self.gcs = gcs
        self.locks: dict[str, asyncio.Lock] = {}

    async def rescan(self) -> None:
        for raw in await self.gcs.redis.primary.smembers(keys.placement_groups_index_key()):
            await self.handle(raw.decode())

    async def on_job_finished(self, job: str) -> None:
        """Non-detached placement groups end with their job, as in Ray."""
        p = self.gcs.redis.primary
        for raw in await p.smembers(keys.placement_groups_index_key()):
            pg = raw.decode()
            job_of, detached = await p.hmget(keys.placement_group_key(pg), "job", "detached")
            if job_of is not None and job_of.decode() == job and detached != b"1":
                for state in ("PENDING", "CREATED"):
                    if await self.gcs.scripts.hfield_cas(
                            keys=[keys.placement_group_key(pg)],
                            args=["state", state, "REMOVED", keys.placement_group_channel(), pg]):
                        break
                await self.handle(pg)

    async def handle(self, pg: str) -> None:
        async with self.locks.setdefault(pg, asyncio.Lock()):
            try:
                await self._handle(pg)
            except Exception:
                logger.exception("placement group %s", pg)

    async def _handle(self, pg: str) -> None:
        p = self.gcs.redis.primary
        e = await p.hgetall(keys.placement_group_key(pg))
        if not e:
            return
        state = e[b"state"].decode()
        if state == "PENDING":
            await self._create(pg, e)
        elif state == "REMOVED" and e.get(b"returned") != b"1":
            for node in set(json.loads(e.get(b"nodes", b"[]"))):
                stub = await self.gcs.raylet_stub(node)
                if stub is not None:
                    try:
                        await stub.ReturnBundles(pb.ReturnBundlesRequest(pg_id=bytes.fromhex(pg)), timeout=10)
                    except Exception as ex:  # noqa: BLE001
                        logger.warning("ReturnBundles on %s failed: %s", node[:12], ex)
                        return
            await p.hset(keys.placement_group_key(pg), "returned", "1")
            self.locks.pop(pg, None)

    async def _create(self, pg: str, e: dict[bytes, bytes]) -> None:
        bundles = json.loads(e[b"bundles"])
        nodes = await self.gcs.alive_nodes()
        placement = place_bundles(nodes, [ResourceSet.from_floats(b) for b in bundles], e[b"strategy"].decode())
        if placement is None:
            return
        by_node: dict[str, list[int]] = {}
        for i, n in enumerate(placement):
            by_node.setdefault(n, []).append(i)
        done: list[str] = []
        for node, idxs in by_node.items():
            stub = await self.gcs.raylet_stub(node)
            ok = False
            if stub is not None:
                try:
                    r = await stub.ReserveBundles(pb.ReserveBundlesRequest(
                        pg_id=bytes.fromhex(pg), bundle_indexes=idxs,
                        bundles_json=[json.dumps(bundles[i]) for i in idxs]), timeout=10)
                    ok = r.ok
                except Exception as ex:  # noqa: BLE001
                    logger.warning("ReserveBundles on %s failed: %s", node[:12], ex)
            if not ok:
                for n in done:  # all or nothing
                    s = await self.gcs.raylet_stub(n)
                    if s is not None:
                        await s.ReturnBundles(pb.ReturnBundlesRequest(pg_id=bytes.fromhex(pg)), timeout=10)
                return
            done.append(node)
        applied = await self.gcs.scripts.hfield_cas(
            keys=[keys.placement_group_key(pg)],
            args=["state", "PENDING", "CREATED", keys.placement_group_channel(), pg])
        if applied:
            await self.gcs.redis.primary.hset(keys.placement_group_key(pg), "nodes", json.dumps(placement))
        else:  # removed meanwhile: give the reservation back
            await self.gcs.redis.primary.hset(keys.placement_group_key(pg), "nodes", json.dumps(placement))
            await self._handle(pg)
