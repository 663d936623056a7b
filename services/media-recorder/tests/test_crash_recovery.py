"""A recorder process killed with SIGKILL in the middle of a message: what it had written to the
blob store is stored as the message by the next recorder, once, with the audio that was said."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sipum.db import messages
from sipum.events import NoResponders
from sipum.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_media_recorder.caller import speech_like

pytestmark = pytest.mark.timeout(60)


def recorder_process(
    world: Any, pg_dsn: str, prompt_dir: Path, log: Path
) -> subprocess.Popen[bytes]:
    settings = world.settings(recorder_id="crashy", chunk_seconds=0.5, max_silence_seconds=3.0)
    env = dict(os.environ)
    env.update(
        {
            "SIPUM_DATABASE_URL": pg_dsn,
            "SIPUM_NATS_URL": settings.nats_url,
            "SIPUM_EVENTS_PREFIX": settings.events_prefix,
            "SIPUM_EVENTS_STREAM": settings.events_stream,
            "SIPUM_BLOB_ROOT": str(world.blobs.root),
            "SIPUM_HTTP_HOST": "127.0.0.1",
            "SIPUM_HTTP_PORT": "0",
            "SIPUM_RTP_HOST": "127.0.0.1",
            "SIPUM_RTP_PORT_MIN": str(settings.rtp_port_min),
            "SIPUM_RTP_PORT_MAX": str(settings.rtp_port_max),
            "SIPUM_RECORDER_ID": "crashy",
            "SIPUM_PROMPT_DIR": str(prompt_dir),
            "SIPUM_CHUNK_SECONDS": "0.5",
            "SIPUM_MAX_SILENCE_SECONDS": "3",
        }
    )
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sipum_media_recorder"], env=env, stdout=out, stderr=out
        )


async def test_sigkill_mid_message_is_recovered_once(
    world: Any, pg_dsn: str, tmp_path: Path
) -> None:
    await world.upload_greeting(0.1)
    proc = recorder_process(world, pg_dsn, tmp_path / "prompts", tmp_path / "recorder.log")
    caller = await world.caller()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 40
        while True:  # the process renders its prompts, then joins the queue group
            try:
                reply = await caller.allocate()
                break
            except NoResponders:
                assert proc.poll() is None, (tmp_path / "recorder.log").read_text()
                assert loop.time() < deadline, "the recorder never started"
                await asyncio.sleep(0.2)
        assert reply.recorder_id == "crashy"
        await caller.wait_quiet(after=20)
        sent = speech_like(3.0, seed=31)
        await caller.send_audio(sent)
        await asyncio.sleep(1.0)  # the chunks written so far are uploaded
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    session_id = reply.session_id
    keys = await world.blobs.list_keys("partial/")
    assert f"partial/{session_id}.json" in keys
    assert sum(k.endswith(".pcm") for k in keys) >= 3
    assert await messages.list_for_user(world.pool, world.alice.id, "inbox") == []

    # another replica leaves a recent recording of someone else alone (it may still be live)…
    other = await world.start_recorder(recorder_id="other", recovery_grace_seconds=3600)
    assert other.recovered == []
    assert f"partial/{session_id}.json" in await world.blobs.list_keys("partial/")
    # …the replica that owned it stores it as soon as it is back
    again = await world.start_recorder(recorder_id="crashy")
    (message_id,) = again.recovered
    (message,) = await messages.list_for_user(world.pool, world.alice.id, "inbox")
    assert message.id == message_id and message.idempotency_key == session_id
    assert 2000 <= message.duration_ms <= 3000
    with wave.open(io.BytesIO(await world.blobs.get(message.blob_key))) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    expected = ulaw_decode(ulaw_encode(sent))
    assert np.array_equal(pcm, expected[: len(pcm)])  # exactly what was said, from the start
    assert await world.blobs.list_keys("partial/") == []
    assert await again.recover(own_only=False) == []  # nothing left to do
    assert len(await world.events("message.created")) == 1
    caller.close()
