"""Delete after e-mail: how fast the notifier's retention sweeper deletes expired messages.

    uv run python bench/retention_sweep.py [--messages 2000] [--replicas 1] [--batch 100]

Creates a scratch PostgreSQL database (migrated), an isolated JetStream stream and a filesystem
blob store in a temporary directory; stores ``--messages`` messages of one user (a 5 s WAV and
its waveform peaks each, a transcript each), all already expired, then runs ``--replicas``
sweepers at once (each its own connection pool, as separate replicas would have) until none is
left. Reports the wall time, messages per second, and checks that every message was deleted
and announced exactly once and that no blob is left.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sipum.blobstore import FileBlobStore, message_key, peaks_key
from sipum.db import domains, messages, open_database, transcripts, users
from sipum.events import MessageDeleted
from sipum.runtime import HealthRegistry, ServiceContext
from sipum_notifier.retention import RetentionSweeper
from sipum_notifier.settings import NotifierSettings
from sipum_protocol.media.recording import compute_peaks, wav_bytes
from sipum_testing.nats import isolated_event_namespace
from sipum_testing.postgres import DEFAULT_ADMIN_DSN, dsn_for, temporary_database


async def run(count: int, replicas: int, batch: int, dsn: str, root: Path) -> dict[str, object]:
    pool = await open_database(dsn)
    blobs = FileBlobStore(root)
    async with isolated_event_namespace("nats://127.0.0.1:4222") as ns:
        bus = await ns.connect("bench")
        await bus.ensure_stream()
        await domains.ensure(pool, "example.com")
        alice = await users.create(pool, "alice", "example.com", "alice-password-1")
        pcm = (np.random.default_rng(1).normal(0, 3000, 8000 * 5)).astype(np.int16)
        wav, peaks = wav_bytes(pcm, 8000), compute_peaks(pcm, 8000).to_json()
        expired = datetime.now(UTC) - timedelta(minutes=1)
        for i in range(count):
            mid = await messages.allocate_id(pool)
            key = message_key("example.com", "alice", mid)
            await blobs.put(key, wav)
            await blobs.put(peaks_key(key), peaks)
            await messages.insert_idempotent(
                pool, owner_id=alice.id, idempotency_key=f"bench-{mid}", caller_uri="sip:b@x",
                called_uri="sip:alice@example.com", duration_ms=5000, codec="PCMU",
                size_bytes=len(wav), blob_key=key, message_id=mid,
            )  # fmt: skip
            await transcripts.store(
                pool, mid, language="en", text="hello", confidence=None, words=[],
                engine="bench", engine_version="1", elapsed_ms=1,
            )  # fmt: skip
            await messages.set_expiry(pool, mid, expired + timedelta(milliseconds=i))
        announced: list[int] = []

        async def on_deleted(event: MessageDeleted) -> None:
            announced.append(event.message_id)

        await bus.subscribe(MessageDeleted, on_deleted, durable="bench-deleted")
        settings = NotifierSettings(domain="example.com", retention_sweep_batch=batch)
        pools = [await open_database(dsn) for _ in range(replicas)]
        sweepers = [
            RetentionSweeper(
                settings,
                ServiceContext(
                    settings=settings, health=HealthRegistry("n"), pool=p, bus=bus, blobs=blobs
                ),
            )
            for p in pools
        ]
        start = time.monotonic()
        deleted = await asyncio.gather(*(s.sweep(datetime.now(UTC)) for s in sweepers))
        wall = time.monotonic() - start
        for _ in range(200):
            if len(announced) >= count:
                break
            await asyncio.sleep(0.05)
        left_rows = await pool.fetchval("SELECT count(*) FROM messages")
        left_transcripts = await pool.fetchval("SELECT count(*) FROM transcripts")
        left_blobs = len(await blobs.list_keys("messages/"))
        for p in pools:
            await p.close()
        await bus.close()
    await pool.close()
    return {
        "messages": count,
        "replicas": replicas,
        "batch": batch,
        "deleted_per_replica": list(deleted),
        "wall_s": round(wall, 3),
        "messages_per_s": round(count / wall, 1),
        "announced": len(announced),
        "announced_twice": len(announced) - len(set(announced)),
        "left_rows": int(left_rows),
        "left_transcripts": int(left_transcripts),
        "left_blobs": left_blobs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root, temporary_database(DEFAULT_ADMIN_DSN) as name:
        result = asyncio.run(
            run(
                args.messages,
                args.replicas,
                args.batch,
                dsn_for(DEFAULT_ADMIN_DSN, name),
                Path(root),
            )
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
