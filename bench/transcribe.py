"""Transcription: real-time factor, word error rate, memory per replica, publish → stored.

    uv run python bench/transcribe.py [--messages 20] [--replicas 1] [--rounds 3]

1. **Real-time factor** of the default engine (PocketSphinx) on one core: this process is
   pinned to one CPU and transcribes the known clips (``sipum_testing.speech``: five
   espeak-ng sentences at 8 kHz) ``--rounds`` times; engine time / audio time, by wall clock
   and by CPU time (the machine may be shared).
2. **Word error rate** of those transcripts against the known sentences.
3. **Publish → transcript stored** with ``--messages`` messages arriving at once: a scratch
   database and JetStream stream on the local servers, ``--replicas`` transcriber processes
   (``python -m sipum_transcriber``, default settings: one engine process each), the messages
   stored as the media-recorder stores them and their ``message.created`` published together;
   latency = the row's ``created_at`` minus the publish time (same host clock).
4. **Memory per replica**: resident set of each replica's service process plus its engine
   process, read from ``/proc`` after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sipum.blobstore import FileBlobStore
from sipum.blobstore.keys import message_key
from sipum.db import domains, messages, open_database, users
from sipum.events import MessageCreated
from sipum_testing.nats import isolated_event_namespace
from sipum_testing.postgres import DEFAULT_ADMIN_DSN, dsn_for, temporary_database
from sipum_testing.speech import SENTENCES, render, word_error_rate
from sipum_transcriber.audio import decode_wav
from sipum_transcriber.engines.pocketsphinx import PocketSphinxEngine


def real_time_factor(clips: list[bytes], rounds: int) -> dict[str, float]:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    engine = PocketSphinxEngine()
    decoded = [decode_wav(clip) for clip in clips]
    audio = sum(len(pcm) / 2 / rate for pcm, rate in decoded)
    wall = cpu = 0.0
    texts: list[str] = []
    for _ in range(rounds):
        texts = []
        for pcm, rate in decoded:
            w0, c0 = time.perf_counter(), time.process_time()
            texts.append(engine.transcribe(pcm, rate, "en-US").text)
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
    return {
        "audio_s": round(audio, 2),
        "rtf_wall": round(wall / (audio * rounds), 3),
        "rtf_cpu": round(cpu / (audio * rounds), 3),
        "wer": round(word_error_rate(list(SENTENCES), texts), 3),
    }


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


async def publish_to_stored(
    clips: list[bytes], count: int, replicas: int, dsn: str, blob_root: str
) -> dict[str, float]:
    pool = await open_database(dsn)
    async with isolated_event_namespace("nats://127.0.0.1:4222") as ns:
        bus = await ns.connect("bench")
        await bus.ensure_stream()
        await domains.ensure(pool, "example.com")
        alice = await users.create(pool, "alice", "example.com", "alice-password-1")
        blobs = FileBlobStore(blob_root)
        env = {
            **os.environ,
            "SIPUM_DATABASE_URL": dsn,
            "SIPUM_NATS_URL": ns.url,
            "SIPUM_EVENTS_PREFIX": ns.prefix,
            "SIPUM_EVENTS_STREAM": ns.stream,
            "SIPUM_BLOB_ROOT": blob_root,
            "SIPUM_HTTP_PORT": "0",
            "SIPUM_LOG_JSON": "true",
        }
        procs = []
        for _ in range(replicas):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sipum_transcriber",
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            assert proc.stderr is not None
            while b'"service started"' not in (line := await proc.stderr.readline()):
                assert line, "a replica exited at start-up"
            procs.append(proc)

        async def drain_logs(proc: asyncio.subprocess.Process) -> None:
            assert proc.stderr is not None
            while await proc.stderr.readline():
                pass

        readers = [asyncio.create_task(drain_logs(p)) for p in procs]
        events = []
        for i in range(count):
            audio = clips[i % len(clips)]
            message_id = await messages.allocate_id(pool)
            key = message_key("example.com", "alice", message_id)
            await blobs.put(key, audio)
            message, _ = await messages.insert_idempotent(
                pool,
                owner_id=alice.id,
                idempotency_key=f"bench-{message_id}",
                caller_uri="sip:bob@example.com",
                called_uri="sip:alice@example.com",
                duration_ms=round((len(audio) - 44) / 16),
                codec="PCMU",
                size_bytes=len(audio),
                blob_key=key,
                message_id=message_id,
            )
            events.append(
                MessageCreated(
                    username="alice",
                    domain="example.com",
                    message_id=message.id,
                    caller_uri=message.caller_uri,
                    called_uri=message.called_uri,
                    received_at=message.received_at,
                    duration_s=message.duration_ms / 1000,
                    codec="PCMU",
                    size=len(audio),
                    blob_key=key,
                )
            )
        published = time.time()
        await asyncio.gather(*(bus.publish(event) for event in events))
        for _ in range(3000):  # at most 5 minutes
            done = await pool.fetchval("SELECT count(*) FROM transcripts")
            if done >= count:
                break
            await asyncio.sleep(0.1)
        rows = await pool.fetch("SELECT extract(epoch FROM created_at) AS t FROM transcripts")
        memory = []
        for proc in procs:
            engine = children(proc.pid)
            memory.append(rss_kib(proc.pid) + sum(rss_kib(c) for c in engine))
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await proc.wait()
        for reader in readers:
            reader.cancel()
        await bus.close()
    await pool.close()
    latencies = sorted(float(row["t"]) - published for row in rows)
    q = (
        statistics.quantiles(latencies, n=100, method="inclusive")
        if len(latencies) > 1
        else latencies * 99
    )
    return {
        "messages": count,
        "replicas": replicas,
        "stored": len(latencies),
        "p50_s": round(q[49], 2),
        "p99_s": round(q[98], 2),
        "max_s": round(latencies[-1], 2) if latencies else float("nan"),
        "rss_per_replica_mib": round(statistics.mean(memory) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    clips = [render(sentence) for sentence in SENTENCES]
    result = real_time_factor(clips, args.rounds)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    with temporary_database(DEFAULT_ADMIN_DSN) as name, tempfile.TemporaryDirectory() as blobs:
        result |= asyncio.run(
            publish_to_stored(
                clips, args.messages, args.replicas, dsn_for(DEFAULT_ADMIN_DSN, name), blobs
            )
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
