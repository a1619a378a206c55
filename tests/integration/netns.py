"""The network-namespace hosts of the multi-host tests: re-exported from :mod:`chaos.netns`, where
the chaos runner's ``--netns`` mode shares them."""

from __future__ import annotations

from chaos.netns import Host, NetnsError, Network, hosts, remaining, teardown, unavailable_reason

__all__ = ["Host", "NetnsError", "Network", "hosts", "remaining", "teardown", "unavailable_reason"]
