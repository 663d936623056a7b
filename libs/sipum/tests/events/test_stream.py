"""The stream's settings: replicas for a NATS cluster, and bringing an existing stream up to
date (on the local single server, where only one replica is possible)."""

from __future__ import annotations

import nats.js.errors
import pytest
from sipum.config import ServiceSettings
from sipum.events.stream import stream_config


def test_replicas_reach_the_stream_config() -> None:
    assert stream_config("S", replicas=3).num_replicas == 3
    assert stream_config("S").num_replicas == 1
    assert ServiceSettings(stream_replicas=3).stream_replicas == 3
    with pytest.raises(ValueError):
        ServiceSettings(stream_replicas=0)


async def test_more_replicas_than_servers_is_refused_by_nats(event_bus) -> None:
    # The single local server cannot hold three copies: NATS says so rather than pretending.
    await event_bus.delete_stream()
    with pytest.raises(nats.js.errors.Error, match="replicas"):
        await event_bus.ensure_stream(replicas=3)
    info = await event_bus.ensure_stream(replicas=1)
    assert info.config.num_replicas in (None, 1)
