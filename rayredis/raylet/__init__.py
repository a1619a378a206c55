"""The raylet: per-node scheduler, worker pool and object store."""

from __future__ import annotations
