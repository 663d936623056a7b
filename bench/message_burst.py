"""What the transcriber benchmarks share (``transcribe.py``, ``transcript_mail.py``): a burst of
messages stored as the media-recorder stores them, and service processes on a scratch database
and event namespace.

* :func:`store_messages` — blob, row (``insert_idempotent``) and the ``message.created`` to
  publish, for ``count`` messages of the given clips, in alice's mailbox;
* :class:`ServiceProcesses` — ``python -m <module>`` processes with the environment of
  :func:`service_env`, each started once it logs ``service started``, its log read (and
  dropped) until it exits;
* :func:`p50_p99` of a list of seconds.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
from dataclasses import dataclass, field
from typing import Any

from sipum.blobstore import FileBlobStore
from sipum.blobstore.keys import message_key
from sipum.db import Pool, domains, messages, users
from sipum.events import MessageCreated
from sipum_testing.nats import EventNamespace

DOMAIN = "example.com"


async def create_alice(pool: Pool, **changes: Any) -> users.User:
    """alice@example.com (e-mail alice@mail.test); ``changes`` go to ``users.update``."""
    await domains.ensure(pool, DOMAIN)
    alice = await users.create(pool, "alice", DOMAIN, "alice-password-1", email="alice@mail.test")
    if changes:
        await users.update(pool, alice.id, **changes)
    return alice


async def store_messages(
    pool: Pool, blobs: FileBlobStore, owner: users.User, clips: list[bytes], count: int
) -> list[MessageCreated]:
    """``count`` messages (the WAV ``clips`` in turn) stored for ``owner`` as the recorder
    stores them; their ``message.created`` events, not yet published."""
    events = []
    for i in range(count):
        audio = clips[i % len(clips)]
        message_id = await messages.allocate_id(pool)
        key = message_key(DOMAIN, owner.username, message_id)
        await blobs.put(key, audio)
        message, _ = await messages.insert_idempotent(
            pool, owner_id=owner.id, idempotency_key=f"bench-{message_id}",
            caller_uri="sip:bob@example.com", called_uri=f"sip:{owner.username}@{DOMAIN}",
            duration_ms=round((len(audio) - 44) / 16), codec="PCMU",
            size_bytes=len(audio), blob_key=key, message_id=message_id,
        )  # fmt: skip
        events.append(
            MessageCreated(
                username=owner.username, domain=DOMAIN, message_id=message.id,
                caller_uri=message.caller_uri, called_uri=message.called_uri,
                received_at=message.received_at, duration_s=message.duration_ms / 1000,
                codec="PCMU", size=len(audio), blob_key=key,
            )
        )  # fmt: skip
    return events


def service_env(dsn: str, ns: EventNamespace, blob_root: str, **extra: str) -> dict[str, str]:
    """The environment of a service on the scratch database, namespace and blob root."""
    return {
        **os.environ,
        "SIPUM_DATABASE_URL": dsn,
        "SIPUM_NATS_URL": ns.url,
        "SIPUM_EVENTS_PREFIX": ns.prefix,
        "SIPUM_EVENTS_STREAM": ns.stream,
        "SIPUM_BLOB_ROOT": blob_root,
        "SIPUM_HTTP_PORT": "0",
        "SIPUM_LOG_JSON": "true",
        **extra,
    }


@dataclass
class ServiceProcesses:
    """Service processes started with one environment; :meth:`stop` ends them (SIGTERM, by
    PID) and waits."""

    env: dict[str, str]
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, module: str) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, env=self.env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self.procs.append(proc)
        assert proc.stderr is not None
        while b'"service started"' not in (line := await proc.stderr.readline()):
            assert line, f"{module} exited at start-up"
        self._readers.append(asyncio.create_task(_drain(proc)))
        return proc

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in self.procs:
            await proc.wait()
        for reader in self._readers:
            reader.cancel()


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stderr is not None
    while await proc.stderr.readline():
        pass


def p50_p99(values: list[float]) -> tuple[float, float]:
    """Median and 99th percentile, rounded to 10 ms (NaN for none)."""
    if len(values) < 2:
        return (round(values[0], 2),) * 2 if values else (float("nan"), float("nan"))
    q = statistics.quantiles(sorted(values), n=100, method="inclusive")
    return round(q[49], 2), round(q[98], 2)
