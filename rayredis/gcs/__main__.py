"""Entry point: ``python -m rayredis.gcs``."""

from rayredis.gcs.server import main

main()
