"""Fixtures: a mailbox in a fresh database, an isolated NATS namespace, a filesystem blob
store, short system prompts (rendered once per test session) and recorders started in-process
on loopback port ranges the OS just said are free."""

from __future__ import annotations

import asyncio
import contextlib
import io
import warnings
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from sipum.blobstore import FileBlobStore, greeting_key
from sipum.db import domains, greetings, users
from sipum.events import EventBus, SessionEnded
from sipum.runtime import HealthRegistry, ServiceContext
from sipum_media_recorder.audio import Prompts
from sipum_media_recorder.service import MediaRecorderService
from sipum_media_recorder.settings import MediaRecorderSettings
from sipum_protocol.media.prompts import PROMPT_TEXTS, Beep, PromptLibrary, Voice, tone_pcm
from sipum_testing.nats import EventNamespace
from sipum_testing.ports import free_port_range
from sipum_testing.rtp_caller import RtpCaller

PIN = "2468"

#: One short word per prompt, so a test call spends little time listening.
SHORT_TEXTS = {name: "ok" for name in PROMPT_TEXTS}
SHORT_TEXTS.update(
    {
        "enter-pin": "pin",
        "wrong-pin": "no",
        "goodbye": "bye",
        "mailbox-full": "full",
        "mailbox-locked": "locked",
        # the main menu's landmarks, each a distinct word a test can find in what it heard
        "you-have": "you have",
        "received": "received",
        "message-menu": "menu",
        "message-deleted": "deleted",
        # the caller's review after "#"
        "review-message": "review",
        "review-message-no-urgent": "send or listen",
        # the envelope's marks
        "envelope-urgent": "important",
        "forwarded-from": "passed on by",
        "marked-urgent": "urgent",
        "message-sent": "sent",
        "message-forwarded": "forwarded",
        "message-paused": "paused",
        # 0 to the operator
        "transferring": "hold",
        "cannot-transfer": "cannot",
        "enter-mailbox": "mailbox",
    }
)


@pytest.fixture(scope="session")
def short_prompts(tmp_path_factory: pytest.TempPathFactory) -> Prompts:
    library = PromptLibrary(
        tmp_path_factory.mktemp("prompts"),
        rates=(8000,),
        texts=SHORT_TEXTS,
        voice=Voice(speed=450),  # espeak-ng's fastest: each prompt ~0.2 s
    )
    library.ensure_all()
    return Prompts(library)


@dataclass
class World:
    pool: Any
    namespace: EventNamespace
    bus: EventBus
    blobs: FileBlobStore
    alice: users.User
    prompts: Prompts
    services: list[MediaRecorderService] = field(default_factory=list)
    buses: list[EventBus] = field(default_factory=list)
    ended: dict[str, SessionEnded] = field(default_factory=dict)
    ended_event: asyncio.Event = field(default_factory=asyncio.Event)

    def settings(self, port_pairs: int = 20, **overrides: Any) -> MediaRecorderSettings:
        first, last = free_port_range(2 * port_pairs)
        values: dict[str, Any] = {
            "rtp_host": "127.0.0.1",
            "rtp_port_min": first,
            "rtp_port_max": last,
            "nats_url": self.namespace.url,
            "events_prefix": self.namespace.prefix,
            "events_stream": self.namespace.stream,
            "max_silence_seconds": 1.5,
            "chunk_seconds": 0.5,
            "digit_timeout_seconds": 3.0,
            "recovery_grace_seconds": 3600,
            "recovery_interval_seconds": 3600,
            "drain_seconds": 0.5,
        }
        values.update(overrides)
        return MediaRecorderSettings(**values)

    async def start_recorder(self, **overrides: Any) -> MediaRecorderService:
        settings = self.settings(**overrides)
        service = MediaRecorderService(settings, prompts=self.prompts)
        bus = await self.namespace.connect(f"recorder-{len(self.services)}")
        self.buses.append(bus)
        ctx = ServiceContext(
            settings=settings,
            health=HealthRegistry("media-recorder"),
            pool=self.pool,
            bus=bus,
            blobs=self.blobs,
        )
        await service.start(ctx)
        self.services.append(service)
        await self.wait_for_responder()
        return service

    async def wait_for_responder(self) -> None:
        """Until a request from the test's connection reaches a recorder: an empty request
        is answered with ``bad_request`` and changes nothing. (Once in a full run a request
        right after start() met "no responders" although the recorder had flushed its
        subscription; this keeps that from failing an unrelated assertion.)"""
        subject = self.bus.subjects.media_allocate
        for attempt in range(100):
            try:
                await self.bus.nc.request(subject, b"{}", timeout=1.0)
                if attempt:
                    warnings.warn(
                        f"recorder reachable after {attempt} 'no responders'", stacklevel=1
                    )
                return
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.02)
        raise AssertionError("the recorder never answered")

    async def upload_greeting(self, seconds: float = 0.2, kind: str = "unavailable") -> None:
        """A tiny uploaded greeting (a 600 Hz tone), so a test call hears it quickly."""
        pcm = tone_pcm(Beep(frequency=600.0, duration=seconds), 8000)
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(pcm.astype("<i2").tobytes())
        key = greeting_key("example.com", "alice", kind)
        await self.blobs.put(key, buffer.getvalue(), content_type="audio/wav")
        await greetings.put(self.pool, self.alice.id, kind, key, duration_ms=round(seconds * 1000))

    async def caller(self) -> RtpCaller:
        return await RtpCaller(self.bus).open()

    async def wait_ended(self, session_id: str, limit: float = 15.0) -> SessionEnded:
        async with asyncio.timeout(limit):
            while session_id not in self.ended:
                self.ended_event.clear()
                await self.ended_event.wait()
        return self.ended[session_id]

    async def events(self, kind: str) -> list[bytes]:
        """Every event of *kind* the stream holds (what JetStream stored, duplicates dropped)."""
        subject = self.bus.subjects.event(kind)
        sub = await self.bus.js.pull_subscribe(subject, stream=self.namespace.stream)
        out: list[bytes] = []
        try:
            while True:
                try:
                    msgs = await sub.fetch(50, timeout=0.5)
                except (TimeoutError, nats.errors.TimeoutError, nats.js.errors.FetchTimeoutError):
                    break
                for msg in msgs:
                    out.append(msg.data)
                    await msg.ack()
        finally:
            await sub.unsubscribe()
        return out


@pytest.fixture
async def world(
    pg_pool: Any,
    event_namespace: EventNamespace,
    event_bus: EventBus,
    tmp_path: Path,
    short_prompts: Prompts,
) -> AsyncIterator[World]:
    await domains.ensure(pg_pool, "example.com")
    alice = await users.create(
        pg_pool, "alice", "example.com", "alice-password-1", email="alice@mail.test", pin=PIN
    )
    blobs = FileBlobStore(tmp_path / "blobs")
    await blobs.check()
    w = World(pg_pool, event_namespace, event_bus, blobs, alice, short_prompts)

    async def on_ended(msg: Any) -> None:
        ended = SessionEnded.model_validate_json(msg.data)
        w.ended[ended.session_id] = ended
        w.ended_event.set()

    sub = await event_bus.nc.subscribe(
        f"{event_namespace.prefix}.media.session.*.ended", cb=on_ended
    )
    try:
        yield w
    finally:
        for service in w.services:
            with contextlib.suppress(Exception):
                await service.stop_accepting()
                await asyncio.wait_for(service.drain(), 10)
        for bus in w.buses:
            with contextlib.suppress(Exception):
                await bus.close()
        await sub.unsubscribe()
