"""``python -m rayredis.dashboard``: serve the dashboard of the cluster at ``--redis-address``."""

from rayredis.dashboard.server import main

main()
