"""The rayredis command line (start, stop, status, state dump)."""

from __future__ import annotations
