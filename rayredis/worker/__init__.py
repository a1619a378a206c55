"""The per-process runtime of drivers and workers, and the worker process itself."""

from __future__ import annotations
