"""Entry point: ``python -m rayredis.raylet``."""

from __future__ import annotations

from rayredis.raylet.server import main

main()
