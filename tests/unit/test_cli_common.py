"""``rayredis start``'s default bind host: the node IP when it is one of this machine's addresses."""

from __future__ import annotations

import pytest

from rayredis.cli.common import default_bind_host


@pytest.fixture(autouse=True)
def _no_bind_host_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAYREDIS_BIND_HOST", raising=False)


def test_node_ip_of_this_machine_is_listened_on() -> None:
    # Every 127/8 address is local on Linux, so this stands for "--node-ip-address <my LAN IP>".
    assert default_bind_host("127.0.0.2", "127.0.0.1") == "127.0.0.2"


@pytest.mark.parametrize("node_ip", [None, "", "head", "203.0.113.77", "not an address"])
def test_otherwise_the_configured_bind_host(node_ip: str | None) -> None:
    # No node IP, a hostname (containers), or an address this machine does not have (NAT; a
    # TEST-NET-3 address: binding it fails without sending anything).
    assert default_bind_host(node_ip, "127.0.0.1") == "127.0.0.1"


def test_an_explicit_bind_host_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYREDIS_BIND_HOST", "127.0.0.1")
    assert default_bind_host("127.0.0.2", "127.0.0.1") == "127.0.0.1"
