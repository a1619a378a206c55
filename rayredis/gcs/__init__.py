"""The GCS service: stateless control logic over the Redis tables."""

from __future__ import annotations
