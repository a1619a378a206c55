"""Entry point: ``python -m rayredis.gcs``."""

from __future__ import annotations

from rayredis.gcs.server import main

main()
