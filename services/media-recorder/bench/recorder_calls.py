"""Benchmark: N recorded calls through one media-recorder, C at a time.

    uv run python services/media-recorder/bench/recorder_calls.py [--calls 50] [--concurrency 10]
        [--seconds 2.0]

Each call: allocate over NATS, hear the greeting + beep, send ``--seconds`` of speech-like PCMU
paced at 20 ms, hang up. Measured: allocation round trip; from the hang-up command to the
session's ``ended`` message and to the ``message.created`` event; whether every stored WAV
equals what was sent (correlation). The recorder runs in this process with its callers (one
event loop), against the local PostgreSQL (a scratch database, dropped at the end), NATS (a
scratch subject prefix and stream) and a temporary filesystem blob store.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import tempfile
import time
import uuid
import wave
from pathlib import Path

import numpy as np
from sipum.blobstore import FileBlobStore, greeting_key
from sipum.db import domains, greetings, messages, open_database, users
from sipum.db.pool import connect
from sipum.events import EventBus, MessageCreated, SessionEnded
from sipum.runtime import HealthRegistry, ServiceContext
from sipum_media_recorder.audio import Prompts
from sipum_media_recorder.service import MediaRecorderService
from sipum_media_recorder.settings import MediaRecorderSettings
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_protocol.media.prompts import PROMPT_TEXTS, Beep, PromptLibrary, Voice, tone_pcm
from sipum_testing.ports import free_port_range
from sipum_testing.rtp_caller import RtpCaller, correlation, speech_like

PG = "postgresql://postgres@127.0.0.1:5432"
NATS = "nats://127.0.0.1:4222"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(calls: int, concurrency: int, seconds: float) -> None:
    db_name = f"sipum_bench_{uuid.uuid4().hex[:10]}"
    admin = await connect(f"{PG}/postgres")
    await admin.execute(f'CREATE DATABASE "{db_name}"')
    token = uuid.uuid4().hex[:12]
    prefix, stream = f"bench{token}", f"BENCH_{token}"
    tmp = Path(tempfile.mkdtemp(prefix="sipum-bench-"))
    pool = await open_database(f"{PG}/{db_name}")
    bus = await EventBus.connect(NATS, "bench", prefix=prefix, stream=stream)
    recorder_bus = await EventBus.connect(NATS, "bench-recorder", prefix=prefix, stream=stream)
    try:
        await bus.ensure_stream()
        await domains.ensure(pool, "example.com")
        alice = await users.create(pool, "alice", "example.com", "alice-password-1", pin="2468")
        blobs = FileBlobStore(tmp / "blobs")
        await blobs.check()
        pcm = tone_pcm(Beep(frequency=600.0, duration=0.2), 8000)
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(pcm.astype("<i2").tobytes())
        key = greeting_key("example.com", "alice", "unavailable")
        await blobs.put(key, buf.getvalue())
        await greetings.put(pool, alice.id, "unavailable", key)
        library = PromptLibrary(
            tmp / "prompts",
            rates=(8000,),
            texts=dict.fromkeys(PROMPT_TEXTS, "ok"),
            voice=Voice(speed=450),
        )
        library.ensure_all()
        ports = free_port_range(4 * concurrency + 40)
        settings = MediaRecorderSettings(
            rtp_host="127.0.0.1",
            rtp_port_min=ports[0],
            rtp_port_max=ports[1],
            nats_url=NATS,
            events_prefix=prefix,
            events_stream=stream,
            recorder_id="bench",
            drain_seconds=1.0,
        )
        service = MediaRecorderService(settings, prompts=Prompts(library))
        ctx = ServiceContext(
            settings=settings,
            health=HealthRegistry("media-recorder"),
            pool=pool,
            bus=recorder_bus,
            blobs=blobs,
        )
        await service.start(ctx)

        ended_at: dict[str, float] = {}
        event_at: dict[str, float] = {}

        async def on_ended(msg: object) -> None:
            ended = SessionEnded.model_validate_json(msg.data)  # type: ignore[attr-defined]
            ended_at[ended.session_id] = time.perf_counter()

        async def on_created(msg: object) -> None:
            event = MessageCreated.model_validate_json(msg.data)  # type: ignore[attr-defined]
            if event.session_id is not None:
                event_at.setdefault(event.session_id, time.perf_counter())

        await bus.nc.subscribe(f"{prefix}.media.session.*.ended", cb=on_ended)
        await bus.nc.subscribe(bus.subjects.event("message.created"), cb=on_created)
        await bus.nc.flush()

        allocate_s: list[float] = []
        to_ended: list[float] = []
        to_event: list[float] = []
        sent_audio: dict[str, np.ndarray] = {}
        gate = asyncio.Semaphore(concurrency)

        async def one_call(n: int) -> None:
            async with gate:
                caller = await RtpCaller(bus).open()
                t = time.perf_counter()
                reply = await caller.allocate(within=10)
                allocate_s.append(time.perf_counter() - t)
                await caller.wait_quiet(after=25)
                sent = speech_like(seconds, seed=n)
                sent_audio[reply.session_id] = sent
                await caller.send_audio(sent)
                hung_up = time.perf_counter()
                await caller.hangup()
                for _ in range(500):
                    if reply.session_id in ended_at and reply.session_id in event_at:
                        break
                    await asyncio.sleep(0.005)
                to_ended.append(ended_at[reply.session_id] - hung_up)
                to_event.append(event_at[reply.session_id] - hung_up)
                caller.close()

        started = time.perf_counter()
        await asyncio.gather(*(one_call(n) for n in range(calls)))
        wall = time.perf_counter() - started
        stored = await messages.list_for_user(pool, alice.id, "inbox", limit=calls + 10)
        matched = 0
        for message in stored:
            with wave.open(io.BytesIO(await blobs.get(message.blob_key))) as w:
                got = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            expected = ulaw_decode(ulaw_encode(sent_audio[message.idempotency_key]))
            matched += correlation(got, expected) > 0.99
        await service.stop_accepting()
        await service.drain()

        def line(name: str, values: list[float]) -> str:
            ms = [v * 1000 for v in values]
            return (
                f"{name:<28} p50 {statistics.median(ms):7.1f} ms   p99 {pct(ms, 0.99):7.1f} ms"
                f"   max {max(ms):7.1f} ms"
            )

        print(
            f"{calls} calls, {concurrency} at a time, {seconds:.1f} s of audio each, "
            f"wall {wall:.1f} s"
        )
        print(line("allocate round trip", allocate_s))
        print(line("hang-up -> session ended", to_ended))
        print(line("hang-up -> message.created", to_event))
        print(f"messages stored {len(stored)} / {calls}; audio matching (corr > 0.99) {matched}")
    finally:
        await bus.delete_stream()
        await bus.close()
        await recorder_bus.close()
        await pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.concurrency, args.seconds))
