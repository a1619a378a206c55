"""Hypothesis settings of the fuzz suite: a few thousand inputs by default, more with ``RAYREDIS_FUZZ_EXAMPLES``.

The default run keeps the suite fast; the long run (README) raises every test's ``max_examples``::

    RAYREDIS_FUZZ_EXAMPLES=20000 python -m pytest tests/fuzz -q
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

#: Inputs per fuzz test in the default run (each test may scale it by its cost).
EXAMPLES = int(os.environ.get("RAYREDIS_FUZZ_EXAMPLES", "300"))

settings.register_profile(
    "rayredis-fuzz", max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
    # (no explain phase: its line tracing hangs on the raylet core's loops)
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture])
settings.load_profile("rayredis-fuzz")
