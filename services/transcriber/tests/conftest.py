"""The transcriber's fixtures: a mailbox with messages whose speech is known."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sipum.blobstore import FileBlobStore
from sipum.blobstore.keys import message_key
from sipum.db import domains, messages, users
from sipum.events import MessageCreated, MessageTranscribed
from sipum.runtime import HealthRegistry, ServiceContext
from sipum_testing.speech import render
from sipum_transcriber.service import TranscriberService
from sipum_transcriber.settings import TranscriberSettings

_keys = itertools.count()


@pytest.fixture(scope="session")
def spoken() -> Callable[[str], bytes]:
    """``spoken(text)``: the WAV of ``text`` (rendered once per text and session)."""
    cache: dict[str, bytes] = {}

    def get(text: str) -> bytes:
        if text not in cache:
            cache[text] = render(text)
        return cache[text]

    return get


class Mailbox:
    def __init__(self, pool: Any, bus: Any, blobs: FileBlobStore, user: users.User) -> None:
        self.pool, self.bus, self.blobs, self.user = pool, bus, blobs, user

    async def leave(self, audio: bytes) -> MessageCreated:
        """Store a message as the media-recorder does and return its event (not published)."""
        message_id = await messages.allocate_id(self.pool)
        key = message_key(self.user.domain, self.user.username, message_id)
        await self.blobs.put(key, audio)
        message, _ = await messages.insert_idempotent(
            self.pool,
            owner_id=self.user.id,
            idempotency_key=f"t-{message_id}-{next(_keys)}",
            caller_uri="sip:bob@example.com",
            caller_display_name="Bob",
            called_uri=f"sip:{self.user.username}@{self.user.domain}",
            duration_ms=round((len(audio) - 44) / 16),
            codec="PCMU",
            size_bytes=len(audio),
            blob_key=key,
            message_id=message_id,
        )
        return MessageCreated(
            username=self.user.username,
            domain=self.user.domain,
            message_id=message.id,
            caller_uri=message.caller_uri,
            called_uri=message.called_uri,
            received_at=message.received_at,
            duration_s=message.duration_ms / 1000,
            codec="PCMU",
            size=len(audio),
            blob_key=key,
        )


@pytest.fixture
async def mailbox(pg_pool: Any, event_bus: Any, tmp_path: Path) -> Mailbox:
    await domains.ensure(pg_pool, "example.com")
    alice = await users.create(pg_pool, "alice", "example.com", "alice-password-1")
    return Mailbox(pg_pool, event_bus, FileBlobStore(tmp_path / "blobs"), alice)


Start = Callable[..., Awaitable[TranscriberService]]


@pytest.fixture
async def start_transcriber(mailbox: Mailbox) -> AsyncIterator[Start]:
    started: list[TranscriberService] = []

    async def start(**overrides: Any) -> TranscriberService:
        settings = TranscriberSettings(**overrides)
        service = TranscriberService(settings)
        ctx = ServiceContext(
            settings=settings,
            health=HealthRegistry("transcriber"),
            pool=mailbox.pool,
            bus=mailbox.bus,
            blobs=mailbox.blobs,
        )
        await service.start(ctx)
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop_accepting()
        await service.drain()


@pytest.fixture
async def transcribed(mailbox: Mailbox) -> list[MessageTranscribed]:
    events: list[MessageTranscribed] = []

    async def on_event(event: MessageTranscribed) -> None:
        events.append(event)

    await mailbox.bus.subscribe(MessageTranscribed, on_event, durable="t-transcribed")
    return events


async def wait_for(predicate: Callable[[], Any], limit: float = 30.0) -> None:
    """Poll ``predicate`` (sync or async) until it is truthy; bounded."""
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
