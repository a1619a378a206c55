"""Entry point: ``python -m rayredis.worker``."""

from __future__ import annotations

from rayredis.worker.main import main

main()
