"""Prometheus metrics of a rayredis cluster: a stateless exporter that reads Redis at each scrape.

``python -m rayredis.metrics --port 8080`` serves ``/metrics``; ``rayredis start --head
--metrics-export-port N`` and ``init(_metrics_export_port=N)`` start it with the cluster. The
families and their names are in :mod:`rayredis.metrics.families` and docs/observability.md.
"""
