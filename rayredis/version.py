"""The package version, importable by every process without loading the driver API."""

from __future__ import annotations

__version__ = "0.1.0"
