"""Entry point: ``python -m rayredis.worker``."""

from rayredis.worker.main import main

main()
