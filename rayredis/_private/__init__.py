"""Private helpers: processes, sessions, Redis servers, auth, retries, logging."""

from __future__ import annotations
