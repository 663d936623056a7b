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
import tempfile
import time
from pathlib import Path

from message_burst import ServiceProcesses, create_alice, p50_p99, service_env, store_messages
from sipum.blobstore import FileBlobStore
from sipum.db import open_database
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
        alice = await create_alice(pool)
        services = ServiceProcesses(service_env(dsn, ns, blob_root))
        try:
            for _ in range(replicas):
                await services.start("sipum_transcriber")
            events = await store_messages(pool, FileBlobStore(blob_root), alice, clips, count)
            published = time.time()
            await asyncio.gather(*(bus.publish(event) for event in events))
            for _ in range(3000):  # at most 5 minutes
                done = await pool.fetchval("SELECT count(*) FROM transcripts")
                if done >= count:
                    break
                await asyncio.sleep(0.1)
            rows = await pool.fetch("SELECT extract(epoch FROM created_at) AS t FROM transcripts")
            memory = [
                rss_kib(proc.pid) + sum(rss_kib(c) for c in children(proc.pid))  # + its engine
                for proc in services.procs
            ]
        finally:
            await services.stop()
            await bus.close()
    await pool.close()
    latencies = sorted(float(row["t"]) - published for row in rows)
    p50, p99 = p50_p99(latencies)
    return {
        "messages": count,
        "replicas": replicas,
        "stored": len(latencies),
        "p50_s": p50,
        "p99_s": p99,
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
