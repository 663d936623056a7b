"""pytest fixtures: NATS with JetStream, isolated per test.

* ``nats_url`` (session): ``SIPUM_TEST_NATS_URL`` or ``nats://127.0.0.1:4222``.
* ``event_namespace``: a unique subject prefix (instead of ``sipum``) and stream name (instead
  of ``SIPUM``), so test suites running at the same time on one server never see each other's
  events; the stream (and its consumers) is deleted after the test.
* ``event_bus``: an ``EventBus`` connected in that namespace with its stream created.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sipum.events import EventBus


@dataclass(frozen=True)
class EventNamespace:
    url: str
    prefix: str
    stream: str

    async def connect(self, name: str = "sipum-test") -> EventBus:
        return await EventBus.connect(self.url, name, prefix=self.prefix, stream=self.stream)


@pytest.fixture(scope="session")
def nats_url() -> str:
    return os.environ.get("SIPUM_TEST_NATS_URL", "nats://127.0.0.1:4222")


@contextlib.asynccontextmanager
async def isolated_event_namespace(url: str) -> AsyncIterator[EventNamespace]:
    """A unique prefix + stream name; the stream (with its consumers) is deleted at the end."""
    token = uuid.uuid4().hex[:16]
    ns = EventNamespace(url=url, prefix=f"t{token}", stream=f"TEST_{token}")
    try:
        yield ns
    finally:
        bus = await ns.connect("sipum-test-cleanup")
        try:
            await bus.delete_stream()
        finally:
            await bus.close()


@pytest.fixture
async def event_namespace(nats_url: str) -> AsyncIterator[EventNamespace]:
    async with isolated_event_namespace(nats_url) as ns:
        yield ns


@pytest.fixture
async def event_bus(event_namespace: EventNamespace) -> AsyncIterator[EventBus]:
    bus = await event_namespace.connect()
    try:
        await bus.ensure_stream()
        yield bus
    finally:
        await bus.close()
