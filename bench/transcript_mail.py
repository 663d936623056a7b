"""Message → e-mail with its transcript: how many e-mails of a burst carry the transcript.

    uv run python bench/transcript_mail.py [--messages 20] [--replicas 1] [--wait 10]

A scratch PostgreSQL database (migrated) and an isolated JetStream stream on the local
servers; ``--replicas`` transcriber processes and one notifier process (``python -m``, default
settings except ``transcript_wait = --wait``) sending to an SMTP server (aiosmtpd) in this
process. ``--messages`` messages of the known clips (``sipum_testing.speech``, about 3 s each)
are stored as the media-recorder stores them and their ``message.created`` published together.
Reported: publish → mail accepted (p50/p99/max), publish → transcript stored (p50/p99), and how
many mails carry the transcript — the rest waited ``--wait`` seconds in vain and went without.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import json
import socket
import tempfile
import time
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from message_burst import ServiceProcesses, create_alice, p50_p99, service_env, store_messages
from sipum.blobstore import FileBlobStore
from sipum.db import open_database
from sipum_testing.nats import isolated_event_namespace
from sipum_testing.postgres import DEFAULT_ADMIN_DSN, dsn_for, temporary_database
from sipum_testing.speech import SENTENCES, render


class Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[float, Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.mails.append((time.time(), email.message_from_bytes(envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(count: int, replicas: int, wait: float, dsn: str, blob_root: str) -> dict[str, Any]:
    clips = [render(sentence) for sentence in SENTENCES]
    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    pool = await open_database(dsn)
    try:
        async with isolated_event_namespace("nats://127.0.0.1:4222") as ns:
            bus = await ns.connect("bench")
            await bus.ensure_stream()
            alice = await create_alice(pool, email_attaches_audio=False)
            env = service_env(
                dsn, ns, blob_root,
                SIPUM_SECRET_KEY="bench-secret", SIPUM_SMTP_HOST="127.0.0.1",
                SIPUM_SMTP_PORT=str(port), SIPUM_TRANSCRIPT_WAIT=str(wait),
            )  # fmt: skip
            services = ServiceProcesses(env)
            try:
                for _ in range(replicas):
                    await services.start("sipum_transcriber")
                await services.start("sipum_notifier")
                events = await store_messages(pool, FileBlobStore(blob_root), alice, clips, count)
                published = time.time()
                await asyncio.gather(*(bus.publish(event) for event in events))
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    stored = await pool.fetchval("SELECT count(*) FROM transcripts")
                    if len(inbox.mails) >= count and stored >= count:
                        break
                    await asyncio.sleep(0.1)
                rows = await pool.fetch(
                    "SELECT extract(epoch FROM created_at) AS t FROM transcripts"
                )
            finally:
                await services.stop()
                await bus.close()
    finally:
        await pool.close()
        smtp.stop()
    mailed = [at - published for at, _ in inbox.mails]
    with_text = sum(
        "machine transcript" in str(m.get_payload(decode=True), "utf-8") for _, m in inbox.mails
    )
    stored_after = [float(row["t"]) - published for row in rows]
    mail_p50, mail_p99 = p50_p99(mailed)
    stored_p50, stored_p99 = p50_p99(stored_after)
    return {
        "messages": count,
        "replicas": replicas,
        "transcript_wait_s": wait,
        "mails": len(mailed),
        "mails_with_transcript": with_text,
        "mail_p50_s": mail_p50,
        "mail_p99_s": mail_p99,
        "mail_max_s": round(max(mailed), 2) if mailed else float("nan"),
        "stored_p50_s": stored_p50,
        "stored_p99_s": stored_p99,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--wait", type=float, default=10.0)
    args = parser.parse_args()
    with temporary_database(DEFAULT_ADMIN_DSN) as name, tempfile.TemporaryDirectory() as blobs:
        result = asyncio.run(
            run(args.messages, args.replicas, args.wait, dsn_for(DEFAULT_ADMIN_DSN, name), blobs)
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
