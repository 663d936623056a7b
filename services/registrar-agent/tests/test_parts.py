"""Small pure parts: user sharding, trusted proxies, settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sipum_registrar_agent.calls import TrustedProxies
from sipum_registrar_agent.registrations import shard_of
from sipum_registrar_agent.service import split_hostport
from sipum_registrar_agent.settings import RegistrarAgentSettings


def test_shards_split_users_stably_and_evenly() -> None:
    names = [f"user{i}" for i in range(3000)]
    owners = [shard_of(n, "example.com", 3) for n in names]
    assert owners == [shard_of(n.upper(), "EXAMPLE.com", 3) for n in names]  # case-blind
    counts = [owners.count(i) for i in range(3)]
    assert min(counts) > 900  # every agent gets about a third
    assert all(shard_of(n, "example.com", 1) == 0 for n in names[:50])


def test_trusted_proxies_addresses_and_networks() -> None:
    trusted = TrustedProxies(["192.0.2.10", "10.1.0.0/16", "2001:db8::/32"])
    assert "192.0.2.10" in trusted
    assert "10.1.200.3" in trusted
    assert "2001:db8::5" in trusted and "[2001:db8::5]" in trusted
    assert "192.0.2.11" not in trusted
    assert "proxy.example.com" not in trusted  # names are never trusted
    assert "127.0.0.1" not in TrustedProxies([])


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPUM_TRUSTED_PROXIES", "192.0.2.1, 10.0.0.0/8")
    monkeypatch.setenv("SIPUM_SHARD_INDEX", "1")
    monkeypatch.setenv("SIPUM_SHARD_COUNT", "2")
    settings = RegistrarAgentSettings()
    assert settings.trusted_proxies == ["192.0.2.1", "10.0.0.0/8"]
    assert (settings.shard_index, settings.shard_count) == (1, 2)


@pytest.mark.parametrize(
    "overrides",
    [
        {"trusted_proxies": ["not-an-address"]},
        {"shard_index": 2, "shard_count": 2},
        {"agent_heartbeat_seconds": 1.5, "agent_dead_after_seconds": 2.0},
    ],
    ids=["bad-proxy", "shard-out-of-range", "dead-after-below-two-heartbeats"],
)
def test_bad_settings_are_refused(overrides: dict) -> None:
    with pytest.raises(ValidationError):
        RegistrarAgentSettings(**overrides)


def test_split_hostport() -> None:
    assert split_hostport("kamailio:5060") == ("kamailio", 5060)
    assert split_hostport("10.0.0.1") == ("10.0.0.1", 5060)
    assert split_hostport("[2001:db8::1]:5080") == ("2001:db8::1", 5080)
    assert split_hostport("2001:db8::1") == ("2001:db8::1", 5060)
