"""How long the GCS has been cut off from Redis: rate-limited warnings and the "cluster is gone" bound (sans-I/O)."""

from __future__ import annotations

import math

#: Exit status of a GCS that gave up because its cluster's Redis primary is gone; supervisors
#: (``supervisor.NodeSupervisor``) do not restart a GCS that exited with it.
EXIT_CLUSTER_GONE = 3


class Outage:
    """Counts an outage from its first failure until the next success.

    ``failed`` returns a warning to log at most once per ``warn_every_s`` (with the number of
    warnings held back), ``recovered`` one line when Redis answers again, and ``gone`` tells when
    the outage has lasted ``gone_after_s``.
    """

    def __init__(self, gone_after_s: float, warn_every_s: float = 5.0):
        self.gone_after_s = gone_after_s
        self.warn_every_s = warn_every_s
        self.down_since: float | None = None
        self.last_error = ""
        self._last_warn = -math.inf
        self._held_back = 0

    def failed(self, what: str, error: object, now: float, since: float | None = None) -> str | None:
        """Record a failed Redis call (made at ``since``, by default ``now``); returns the warning to
        log, or None while rate-limited."""
        if self.down_since is None:
            self.down_since = now if since is None else min(since, now)
        self.last_error = f"{what}: {error}"
        if now - self._last_warn < self.warn_every_s:
            self._held_back += 1
            return None
        line = (f"{self.last_error} (Redis unreachable for {now - self.down_since:.1f} s; the GCS exits after "
                f"{self.gone_after_s:g} s")
        if self._held_back:
            line += f"; {self._held_back} similar warnings held back"
        self._last_warn = now
        self._held_back = 0
        return line + ")"

    def recovered(self, now: float) -> str | None:
        """Record a successful Redis call; returns a line to log when it ends an outage."""
        if self.down_since is None:
            return None
        line = f"Redis answers again after {now - self.down_since:.1f} s"
        self.down_since = None
        self._last_warn = -math.inf
        self._held_back = 0
        return line

    def left(self, now: float) -> float:
        """Seconds until :meth:`gone` (infinite while Redis answers)."""
        return math.inf if self.down_since is None else self.down_since + self.gone_after_s - now

    def gone(self, now: float) -> bool:
        return self.down_since is not None and now - self.down_since >= self.gone_after_s
