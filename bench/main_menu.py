"""Benchmark: the main menu (mode ``menu``) — key → audio latency, memory per session.

    uv run python bench/main_menu.py [--presses 200] [--sessions 20] [--message-seconds 30]

One media-recorder runs in this process with its scripted callers (one event loop), against the
local PostgreSQL (a scratch database, dropped at the end), NATS (a scratch prefix and stream)
and a temporary filesystem blob store; prompts are one short word each (espeak-ng's fastest).

* **Latency**: a trusted owner calls the main menu of a mailbox with three messages and waits in
  the message menu of the first one; then ``--presses`` times: press ``4`` (RFC 4733, a 100 ms
  key) — on the first message that answers "This is the first message." + the menu — and
  measure from the key going down (first event packet sent) and from the key coming up (first
  end packet sent) to the first audio packet of the answer; wait until the recorder is quiet
  again. sipum acts when the key comes up (the digit's end), so "from key down" includes the
  key's 100 ms.
* **Memory**: ``--sessions`` callers open the main menu at once on a mailbox whose messages are
  ``--message-seconds`` long and wait in the message menu (each session has decoded its current
  message); Python heap growth (tracemalloc, numpy included) and RSS growth divided by the
  number of sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

from sipum.blobstore import FileBlobStore, message_key
from sipum.db import domains, messages, open_database, users
from sipum.db.pool import connect
from sipum.events import EventBus
from sipum.runtime import HealthRegistry, ServiceContext
from sipum_media_recorder.audio import Prompts
from sipum_media_recorder.service import MediaRecorderService
from sipum_media_recorder.settings import MediaRecorderSettings
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_protocol.media.dtmf import TelephoneEventSender
from sipum_protocol.media.prompts import PROMPT_TEXTS, PromptLibrary, Voice
from sipum_protocol.media.recording import wav_bytes
from sipum_testing.ports import free_port_range
from sipum_testing.rtp_caller import RtpCaller, speech_like

PG = "postgresql://postgres@127.0.0.1:5432"
NATS = "nats://127.0.0.1:4222"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def store(pool: Any, blobs: FileBlobStore, owner: users.User, seconds: float, n: int) -> None:
    audio = ulaw_decode(ulaw_encode(speech_like(seconds, seed=n)))
    message_id = await messages.allocate_id(pool)
    key = message_key(owner.domain, owner.username, message_id)
    wav = wav_bytes(audio, 8000)
    await blobs.put(key, wav, content_type="audio/wav")
    await messages.insert_idempotent(
        pool, owner_id=owner.id, idempotency_key=f"bench-{message_id}",
        caller_uri=f"sip:+4930555{n:04d}@example.org", called_uri="sip:x@example.com",
        duration_ms=round(seconds * 1000), codec="pcmu", size_bytes=len(wav), blob_key=key,
        message_id=message_id,
    )  # fmt: skip


async def press(caller: RtpCaller, digit: str, duration: float = 0.1) -> tuple[float, float]:
    """One RFC 4733 key, paced like RtpCaller.send_digit; returns when the first event packet
    (key down) and the first end packet (key up) were sent."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    packets = TelephoneEventSender(payload_type=101).packets(
        digit, duration=duration, timestamp=caller.ts, first_sequence=caller.seq,
        ssrc=caller.ssrc, start=start,
    )  # fmt: skip
    down = up = -1.0
    for scheduled in packets:
        delay = scheduled.at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        assert caller.transport is not None and caller.remote is not None
        caller.transport.sendto(bytes(scheduled.packet), caller.remote)
        now = loop.time()
        if down < 0:
            down = now
        if up < 0 and scheduled.packet.payload[1] & 0x80:
            up = now
    caller.seq += len(packets)
    caller.ts += round(duration * 8000) + 160
    return down, up


def menu_request(caller: RtpCaller, owner: users.User) -> Any:
    return caller.request(
        mode="menu",
        username=owner.username,
        caller_uri=f"sip:{owner.username}@{owner.domain}",
        called_uri=f"sip:{owner.username}-retrieve@{owner.domain}",
        reason="direct",
        trusted=True,
    )


async def main(presses: int, sessions: int, message_seconds: float) -> None:
    db_name = f"sipum_bench_{uuid.uuid4().hex[:10]}"
    admin = await connect(f"{PG}/postgres")
    await admin.execute(f'CREATE DATABASE "{db_name}"')
    token = uuid.uuid4().hex[:12]
    prefix, stream = f"bench{token}", f"BENCH_{token}"
    tmp = Path(tempfile.mkdtemp(prefix="sipum-bench-"))
    pool = await open_database(f"{PG}/{db_name}", max_size=20)
    bus = await EventBus.connect(NATS, "bench", prefix=prefix, stream=stream)
    recorder_bus = await EventBus.connect(NATS, "bench-recorder", prefix=prefix, stream=stream)
    service: MediaRecorderService | None = None
    try:
        await bus.ensure_stream()
        await domains.ensure(pool, "example.com")
        alice = await users.create(pool, "alice", "example.com", "alice-password-1", pin="2468")
        bob = await users.create(pool, "bob", "example.com", "bob-password-1", pin="2468")
        blobs = FileBlobStore(tmp / "blobs")
        await blobs.check()
        for n in range(3):
            await store(pool, blobs, alice, 0.3, n)
            await store(pool, blobs, bob, message_seconds, 10 + n)
        library = PromptLibrary(
            tmp / "prompts", rates=(8000,), texts=dict.fromkeys(PROMPT_TEXTS, "ok"),
            voice=Voice(speed=450),
        )  # fmt: skip
        library.ensure_all()
        ports = free_port_range(4 * sessions + 40)
        settings = MediaRecorderSettings(
            rtp_host="127.0.0.1", rtp_port_min=ports[0], rtp_port_max=ports[1], nats_url=NATS,
            events_prefix=prefix, events_stream=stream, recorder_id="bench", drain_seconds=1.0,
            digit_timeout_seconds=600.0,
        )  # fmt: skip
        service = MediaRecorderService(settings, prompts=Prompts(library))
        ctx = ServiceContext(
            settings=settings, health=HealthRegistry("media-recorder"), pool=pool,
            bus=recorder_bus, blobs=blobs,
        )  # fmt: skip
        await service.start(ctx)
        loop = asyncio.get_running_loop()

        # -- latency -----------------------------------------------------------------------
        caller = await RtpCaller(bus).open()
        await caller.allocate(menu_request(caller, alice), within=10)
        await caller.wait_quiet(0.3, after=20)  # count, envelope, audio, menu: now it waits
        from_down: list[float] = []
        from_up: list[float] = []
        for _ in range(presses):
            before = len(caller.received)
            down, up = await press(caller, "4")
            while len(caller.received) <= before:
                if loop.time() - down > 5:
                    raise RuntimeError("no answer to a key within 5 s")
                await asyncio.sleep(0.001)
            first = caller.received[before].at
            from_down.append(first - down)
            from_up.append(first - up)
            await caller.wait_quiet(0.25, after=before + 1)
        await caller.send_digit("#")
        caller.close()

        # -- memory per session ------------------------------------------------------------
        gc.collect()
        tracemalloc.start()
        heap_before, _ = tracemalloc.get_traced_memory()
        rss_before = rss_bytes()
        callers = [await RtpCaller(bus).open() for _ in range(sessions)]
        await asyncio.gather(*(c.allocate(menu_request(c, bob), within=20) for c in callers))
        # each session has played its count and envelope and is playing / has played its message
        await asyncio.gather(
            *(c.wait_quiet(0.5, after=round(message_seconds * 50), limit=message_seconds + 60)
              for c in callers)
        )  # fmt: skip
        gc.collect()
        heap_after, heap_peak = tracemalloc.get_traced_memory()
        rss_after = rss_bytes()
        live = len(service.sessions)
        tracemalloc.stop()
        for c in callers:
            await c.send_digit("#")
            c.close()

        def line(name: str, values: list[float]) -> str:
            ms = [v * 1000 for v in values]
            return (
                f"{name:<34} p50 {statistics.median(ms):6.1f} ms   p99 {pct(ms, 0.99):6.1f} ms"
                f"   max {max(ms):6.1f} ms"
            )

        print(f"{presses} key presses ('4': 'This is the first message.' + the message menu)")
        print(line("key down -> first answer packet", from_down))
        print(line("key up   -> first answer packet", from_up))
        print(
            f"{live} main-menu sessions waiting in the message menu, messages of "
            f"{message_seconds:.0f} s (8 kHz): Python heap +{(heap_after - heap_before) / live / 1024:.0f}"
            f" KiB/session (peak +{(heap_peak - heap_before) / live / 1024:.0f} KiB), "
            f"RSS +{(rss_after - rss_before) / live / 1024:.0f} KiB/session"
        )
    finally:
        if service is not None:
            await service.stop_accepting()
            await service.drain()
        await bus.delete_stream()
        await bus.close()
        await recorder_bus.close()
        await pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--message-seconds", type=float, default=30.0)
    args = parser.parse_args()
    started = time.perf_counter()
    asyncio.run(main(args.presses, args.sessions, args.message_seconds))
    print(f"(bench took {time.perf_counter() - started:.0f} s)")
