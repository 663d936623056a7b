"""What it costs to upload a recording in progress every ``chunk_seconds``.

``--sessions`` concurrent recordings each put one chunk of PCM (``chunk_seconds`` of 16-bit
audio at ``--rate``) every ``chunk_seconds`` for ``--seconds``, through ``spool.PartialRecording``
(the recorder's own uploader) into the filesystem blob store (fsync on, as in production) and
into S3 (a local ``moto_server``). Prints, per store and interval: chunks and puts per second
(chunks that queued behind a slow put share one), how long the oldest chunk of each put waited
from hand-out to stored (p50/p99/max: how much later than the engine's hand-out a crash stops
losing it) and CPU per put of this process.

    uv run python services/media-recorder/bench/chunk_upload.py --sessions 50 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, cast

from sipum.blobstore import BlobStore, open_blob_store
from sipum.blobstore.fs import FileBlobStore
from sipum_media_recorder.spool import PartialRecording, RecordingMeta
from sipum_protocol.media.recording import RecordingChunk
from sipum_testing.s3 import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    MotoServer,
    _start_moto,
    _stop,
    unique_bucket,
)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def meta(i: int, rate: int) -> RecordingMeta:
    return RecordingMeta(
        session_id=f"sbench{i:06d}",
        recorder_id="bench",
        owner_id=1,
        username="alice",
        domain="example.com",
        caller_uri="sip:bob@example.com",
        caller_display=None,
        called_uri="sip:alice@example.com",
        reason="direct",
        diversion_cause=None,
        call_id=f"bench-{i}",
        codec="pcmu",
        sample_rate=rate,
        received_at="2026-01-01T00:00:00+00:00",
    )


class TimedStore:
    """The blob store as ``PartialRecording`` sees it (``put``). For each blob: how long its
    oldest chunk waited from the moment the recording handed it out until it was stored (the
    spool joins chunks that queued up behind a slow put into one blob)."""

    def __init__(self, blobs: BlobStore, chunk_bytes: int) -> None:
        self.blobs = blobs
        self.chunk_bytes = chunk_bytes
        self.queued_at: dict[str, deque[float]] = {}
        self.latencies: list[float] = []
        self.chunks = 0

    def handed_out(self, session_id: str) -> None:
        self.queued_at.setdefault(session_id, deque()).append(time.perf_counter())

    async def put(self, key: str, data: Any, **kw: Any) -> Any:
        info = await self.blobs.put(key, data, **kw)
        if key.endswith(".pcm"):
            session_id = key.removeprefix("partial/").rsplit("-", 1)[0]
            waiting = self.queued_at[session_id]
            count = len(data) // self.chunk_bytes
            oldest = waiting[0]
            for _ in range(count):
                waiting.popleft()
            self.chunks += count
            self.latencies.append(time.perf_counter() - oldest)
        return info


async def run(blobs: BlobStore, sessions: int, interval: float, seconds: float, rate: int) -> str:
    pcm = bytes(2 * round(interval * rate))
    timed = TimedStore(blobs, len(pcm))
    recordings = [PartialRecording(cast(BlobStore, timed), meta(i, rate)) for i in range(sessions)]
    ticks = round(seconds / interval)
    start_cpu, start = cpu(), time.perf_counter()
    for tick in range(ticks):
        # sessions spread over the interval, as real calls are
        for i, rec in enumerate(recordings):
            timed.handed_out(rec.meta.session_id)
            rec.add(RecordingChunk(tick, tick * len(pcm) // 2, pcm))
            if i % 10 == 9:
                await asyncio.sleep(interval / max(1, sessions / 10))
        await asyncio.sleep(max(0.0, start + (tick + 1) * interval - time.perf_counter()))
    for rec in recordings:
        await rec.finish(upload_rest=True)
    wall, used = time.perf_counter() - start, cpu() - start_cpu
    lat = sorted(timed.latencies)
    puts = len(lat)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    return (
        f"{timed.chunks / wall:5.0f} chunks/s in {puts / wall:5.0f} puts/s  oldest-chunk wait p50 {1000 * statistics.median(lat):6.1f} ms"
        f"  p99 {1000 * p99:6.1f} ms  max {1000 * lat[-1]:6.1f} ms"
        f"  CPU {1e6 * used / puts:6.0f} µs/put ({100 * used / wall:3.0f} % of a core)"
    )


@contextlib.contextmanager
def moto_store() -> Iterator[BlobStore]:
    proc, port, log = _start_moto()
    try:
        server = MotoServer("127.0.0.1", port, proc.pid)
        with unique_bucket(server) as bucket:
            settings = type(
                "S",
                (),
                {
                    "s3_endpoint": server.url,
                    "s3_access_key": ACCESS_KEY,
                    "s3_secret_key": SECRET_KEY,
                    "s3_bucket": bucket,
                    "s3_secure": False,
                    "s3_region": REGION,
                },
            )()
            yield open_blob_store(settings)
    finally:
        _stop(proc)
        log.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=8000)
    parser.add_argument("--intervals", default="2,0.5,0.3,0.2")
    parser.add_argument("--stores", default="fs,s3")
    args = parser.parse_args()
    intervals = [float(x) for x in args.intervals.split(",")]
    for store in args.stores.split(","):
        for interval in intervals:
            if store == "fs":
                with tempfile.TemporaryDirectory() as root:
                    line = await run(
                        FileBlobStore(root), args.sessions, interval, args.seconds, args.rate
                    )
            else:
                with moto_store() as blobs:
                    line = await run(blobs, args.sessions, interval, args.seconds, args.rate)
            print(
                f"{store:3} chunk {interval:4.2f} s  {args.sessions} sessions: {line}", flush=True
            )


if __name__ == "__main__":
    asyncio.run(main())
