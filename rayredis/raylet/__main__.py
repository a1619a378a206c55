"""Entry point: ``python -m rayredis.raylet``."""

from rayredis.raylet.server import main

main()
