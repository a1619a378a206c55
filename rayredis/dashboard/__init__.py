"""The dashboard: a stateless web app over the cluster's Redis (``python -m rayredis.dashboard``)."""
