"""The spool's uploader against a slow and a failing store (a stand-in store object: this is
about the order and the joining of puts; the real stores are exercised by the other tests)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sipum_media_recorder.spool import PartialRecording, RecordingMeta, chunk_key, manifest_key
from sipum_protocol.media.recording import RecordingChunk

pytestmark = pytest.mark.timeout(10)


def meta() -> RecordingMeta:
    return RecordingMeta(
        session_id="sspool",
        recorder_id="r",
        owner_id=1,
        username="alice",
        domain="example.com",
        caller_uri="sip:bob@example.org",
        caller_display=None,
        called_uri="sip:alice@example.com",
        reason="direct",
        diversion_cause=None,
        call_id="c@x",
        codec="pcmu",
        sample_rate=8000,
        received_at="2026-11-26T05:00:00+00:00",
    )


class Store:
    def __init__(self, *, delay: float = 0.0, fail: int = 0) -> None:
        self.delay = delay
        self.fail = fail  # this many chunk puts fail first
        self.blobs: dict[str, bytes] = {}
        self.puts: list[str] = []

    async def put(self, key: str, data: bytes, **_: Any) -> None:
        await asyncio.sleep(self.delay)
        if key.endswith(".pcm") and self.fail:
            self.fail -= 1
            raise OSError("store unavailable")
        self.puts.append(key)
        self.blobs[key] = data


def chunk(i: int) -> RecordingChunk:
    return RecordingChunk(i, i * 4, bytes([i]) * 8)


def joined(store: Store) -> bytes:
    keys = sorted(k for k in store.blobs if k.endswith(".pcm"))
    return b"".join(store.blobs[k] for k in keys)


async def test_a_backlog_behind_a_slow_put_goes_in_one_blob() -> None:
    store = Store(delay=0.05)
    spool = PartialRecording(store, meta())  # type: ignore[arg-type]
    for i in range(10):  # all at once: the first put is slow, the other nine queue up
        spool.add(chunk(i))
    await spool.finish(upload_rest=True)
    assert store.puts[0] == manifest_key("sspool")
    assert len(store.puts) <= 4  # manifest + a few joined blobs, not ten
    assert joined(store) == b"".join(bytes([i]) * 8 for i in range(10))
    assert spool.uploaded == 10


async def test_a_failed_put_is_retried_with_the_next_audio_no_hole() -> None:
    store = Store(fail=2)
    spool = PartialRecording(store, meta())  # type: ignore[arg-type]
    for i in range(5):
        spool.add(chunk(i))
        await asyncio.sleep(0.01)  # one by one, as a call hands them out
    await spool.finish(upload_rest=True)
    assert spool.failures == 2
    assert joined(store) == b"".join(bytes([i]) * 8 for i in range(5))
    assert chunk_key("sspool", 0) in store.blobs  # indices stay dense


async def test_finish_without_upload_rest_drops_the_queue() -> None:
    store = Store(delay=0.05)
    spool = PartialRecording(store, meta())  # type: ignore[arg-type]
    for i in range(5):
        spool.add(chunk(i))
    await spool.finish()
    assert [k for k in store.puts if k.endswith(".pcm")] == []


def test_the_default_settings_bound_what_a_crash_loses_to_0_28_s() -> None:
    """The recording engine as record mode configures it, fed continuous voice on a fake clock:
    the audio received but not yet handed to the spool never exceeds 0.28 s (the issue asks
    ≤ 0.5 s missing in all; a moved call adds the move's gap, ~0.15 s, and the upload's own
    latency)."""
    import numpy as np
    from sipum_media_recorder.settings import MediaRecorderSettings
    from sipum_protocol.media.codecs import create_decoder
    from sipum_protocol.media.codecs.g711 import ulaw_encode
    from sipum_protocol.media.recording import RecordingSettings
    from sipum_protocol.media.recording.rtp_recording import RtpRecording

    defaults = MediaRecorderSettings()
    handed_out = [0]

    def on_chunk(chunk: RecordingChunk) -> None:
        handed_out[0] = chunk.start + len(chunk.pcm) // 2

    rec = RtpRecording(
        create_decoder("PCMU"),
        RecordingSettings(
            sample_rate=8000,
            max_silence=30,
            max_length=60,
            flush_interval=defaults.chunk_seconds,
            hold_back=defaults.hold_back_seconds,
        ),
        now=0.0,
        on_chunk=on_chunk,
    )
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(160 * 500) / 8000)).astype("<i2")
    worst = 0.0
    for i in range(500):  # 10 s
        now = (i + 1) * 0.02
        rec.packet(1, i * 160, ulaw_encode(tone[i * 160 : (i + 1) * 160]), now=now)
        timer = rec.next_timer()
        if timer is not None and timer <= now:
            rec.handle_timer(now)
        worst = max(worst, ((i + 1) * 160 - handed_out[0]) / 8000)
    assert 0.2 < worst <= 0.28 + 1e-9, worst


async def test_load_for_continue_on_s3_answers_from_the_listing_and_fetches_after(
    moto_server: Any, s3_bucket: str
) -> None:
    """A 60 s recording (300 chunks of 0.2 s) on the S3 emulator: the continue's read returns
    the spooled duration and the next part from the manifest and one listing with sizes; the
    chunks' audio comes from the background fetch, whole and in order."""
    import time

    from sipum.blobstore import S3BlobStore
    from sipum_media_recorder.spool import PART_SIZE, load_for_continue
    from sipum_testing.s3 import ACCESS_KEY, REGION, SECRET_KEY

    blobs = S3BlobStore(
        endpoint=moto_server.endpoint,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        bucket=s3_bucket,
        region=REGION,
    )
    m = meta()
    await blobs.put(manifest_key(m.session_id), m.to_json())
    chunks = [bytes([i % 251, i // 251]) * 1600 for i in range(300)]  # 3200 bytes = 0.2 s
    await asyncio.gather(*(blobs.put(chunk_key(m.session_id, i), c) for i, c in enumerate(chunks)))
    started = time.perf_counter()
    spooled = await load_for_continue(blobs, m.session_id)
    answered = time.perf_counter() - started
    assert spooled is not None
    assert spooled.seconds == pytest.approx(60.0)
    assert spooled.next_index == PART_SIZE
    assert spooled.meta.session_id == m.session_id
    assert await spooled.audio() == b"".join(chunks)
    fetched = time.perf_counter() - started
    print(f"\ncontinue answerable after {answered:.3f} s; 300 chunks fetched after {fetched:.3f} s")
    await blobs.close()
