"""The transcriber as a process: a bad engine configuration is one line and exit 2; a replica
SIGKILLed in the middle of a transcription leaves no decoder behind and another replica
redoes the job."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from sipum.db import transcripts
from sipum_testing.speech import SENTENCES, wav
from sipum_transcriber.audio import decode_wav

from .conftest import Mailbox, Start, wait_for

ACK_WAIT = 2.0


def _service_env(mailbox: Mailbox, pg_dsn: str, event_namespace: Any) -> dict[str, str]:
    return {
        **os.environ,
        "SIPUM_DATABASE_URL": pg_dsn,
        "SIPUM_NATS_URL": event_namespace.url,
        "SIPUM_EVENTS_PREFIX": event_namespace.prefix,
        "SIPUM_EVENTS_STREAM": event_namespace.stream,
        "SIPUM_BLOB_ROOT": str(mailbox.blobs.root),
        "SIPUM_HTTP_PORT": "0",
        "SIPUM_LOG_JSON": "true",
    }


async def test_faster_whisper_without_a_model_directory_is_a_config_error(
    mailbox: Mailbox, pg_dsn: str, event_namespace: Any, tmp_path: Path
) -> None:
    env = {
        **_service_env(mailbox, pg_dsn, event_namespace),
        "SIPUM_TRANSCRIBER_ENGINE": "faster-whisper",
        "SIPUM_TRANSCRIBER_MODEL_DIR": str(tmp_path / "no-such-model"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sipum_transcriber",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    errors = [line for line in err.decode().splitlines() if "error:" in line]
    assert errors == [
        f"sipum-transcriber: error: transcriber_model_dir: {tmp_path / 'no-such-model'} "
        "is not a directory"
    ]
    assert "Traceback" not in err.decode()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"  # a zombie has exited
    return True


async def test_killed_mid_job_is_redone_by_another_replica(
    mailbox: Mailbox,
    spoken: Any,
    start_transcriber: Start,
    pg_dsn: str,
    event_namespace: Any,
    tmp_path: Path,
) -> None:
    # ~12 s of speech: a few seconds of decoding, so the kill lands mid-job.
    pcm = b"".join(decode_wav(spoken(sentence))[0] for sentence in SENTENCES)
    event = await mailbox.leave(wav(pcm, 8000))
    env = {
        **_service_env(mailbox, pg_dsn, event_namespace),
        "SIPUM_TRANSCRIBER_ACK_WAIT": str(ACK_WAIT),
    }
    replica = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sipum_transcriber", env=env, stderr=asyncio.subprocess.PIPE
    )
    engine_pid = None
    try:
        await mailbox.bus.publish(event)
        assert replica.stderr is not None
        async with asyncio.timeout(60):
            while engine_pid is None:
                line = await replica.stderr.readline()
                assert line, "the replica exited before it took the job"
                entry = json.loads(line)
                if entry.get("msg") == "transcribing":
                    assert entry["message_id"] == event.message_id
                    engine_pid = entry["engine_pid"]
        replica.send_signal(signal.SIGKILL)
        await replica.wait()
    finally:
        if replica.returncode is None:
            replica.kill()
            await replica.wait()
    assert await transcripts.get(mailbox.pool, event.message_id) is None
    # The engine process notices its parent is gone and exits by itself.
    await wait_for(lambda: not _alive(engine_pid), limit=10)

    # Another replica (same durable consumer) gets the unacknowledged job after ack_wait.
    await start_transcriber(transcriber_ack_wait=ACK_WAIT)
    await wait_for(lambda: transcripts.get(mailbox.pool, event.message_id), limit=60)
    stored = await transcripts.get(mailbox.pool, event.message_id)
    assert stored is not None and len(stored.words) > 10
