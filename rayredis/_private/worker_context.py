"""The process's CoreWorker and ``get_worker()``: the leaf every driver-side module reaches the runtime through.

A driver's CoreWorker is set by ``init``, a worker's by the worker main loop. ``get_worker`` keeps
Ray's behaviour that the first API call of a driver that never called ``init`` (``f.remote()``,
``put``, ``placement_group(...)``) starts or joins a cluster. It calls the public
``rayredis.init``, resolved through the package's lazy names when first needed, so importing this
module imports neither the driver API nor the worker runtime (they import it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import rayredis

if TYPE_CHECKING:
    from rayredis.worker.core_worker import CoreWorker

#: The process's CoreWorker once ``init`` (driver) or the worker main loop has connected.
global_worker: CoreWorker | None = None


def get_worker() -> CoreWorker:
    """The process's CoreWorker, auto-initialising a driver that has not called ``init`` yet."""
    cw = global_worker
    if cw is None:
        rayredis.init()
        cw = global_worker
        assert cw is not None
    return cw
