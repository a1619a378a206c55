"""The raylet: per-node scheduler, worker pool and object store.

Sans-I/O core (events in, decisions out; unit-tested with fakes): ``node_manager`` (tasks and
objects), ``actors`` (hosted and called actors), ``object_waits`` (clients' gets and waits),
``scheduler``, ``object_store``, ``bundles``, their ``records`` and ``invariants``. What the core
needs from the world is typed in ``ports``. I/O shell: ``server`` (gRPC, Redis reads, heartbeats,
pub/sub; ``build_node`` wires the graph), ``local_transport`` (client streams), ``worker_pool``
(processes) and ``redis_writer`` (batched table writes).
"""

from __future__ import annotations
