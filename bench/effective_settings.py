"""What reading a user's effective settings costs — the query every call, recording and
notification makes (``sipum.db.users.effective_settings`` through ``sipum.db.settings.resolve``),
against the older read of the ``user_effective_settings`` view it replaced.

    uv run python bench/effective_settings.py [--users 1000] [--reads 5000]

A scratch PostgreSQL database on the local server with ``--users`` mailboxes in two domains,
half of them with overrides; ``--reads`` sequential reads of random users each way, on one
connection pool. Prints p50/p99 and reads per second.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from sipum.db import domains, open_database, users
from sipum_testing.postgres import DEFAULT_ADMIN_DSN, dsn_for, temporary_database

VIEW = """SELECT user_id, quota_bytes, max_messages, max_message_seconds, ring_timeout_seconds,
                 email_attaches_audio, email_audio_format, transcription_enabled,
                 transcription_language
          FROM user_effective_settings WHERE user_id = $1"""


async def bench(dsn: str, n_users: int, reads: int) -> None:
    pool = await open_database(dsn, max_size=4)
    try:
        a = await domains.create(pool, "a.example", ring_timeout_seconds=5)
        await domains.create(pool, "b.example", time_zone="Europe/Berlin")
        ids = []
        for i in range(n_users):
            domain = "a.example" if i % 2 else "b.example"
            # the same password for all: hashing is not what is measured
            row = await pool.fetchrow(
                """INSERT INTO users (domain_id, username, password_hash, ha1, ha1b, ha1_sha256)
                   SELECT id, $2, 'x', repeat('0', 32), repeat('0', 32), repeat('0', 64)
                   FROM domains WHERE name = $1 RETURNING id""",
                domain,
                f"u{i}",
            )
            ids.append(row["id"])
            if i % 4 == 0:
                await users.update(pool, row["id"], ring_timeout_seconds=20, greeting_mode="system")
        assert a.id
        rng = random.Random(7)

        async def timed(read: object) -> list[float]:
            out = []
            for _ in range(reads):
                uid = rng.choice(ids)
                t0 = time.perf_counter()
                await read(uid)  # type: ignore[operator]
                out.append(time.perf_counter() - t0)
            return out

        for name, read in (
            ("view (before)", lambda uid: pool.fetchrow(VIEW, uid)),
            ("effective_settings (resolve)", lambda uid: users.effective_settings(pool, uid)),
            ("settings_report (API)", lambda uid: users.settings_report(pool, uid)),
        ):
            await timed(read)  # warm-up
            samples = sorted(await timed(read))
            p50 = statistics.median(samples) * 1000
            p99 = samples[int(len(samples) * 0.99)] * 1000
            print(
                f"{name:30s} p50 {p50:.3f} ms  p99 {p99:.3f} ms  {len(samples) / sum(samples):,.0f}/s"
            )
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=5000)
    args = parser.parse_args()
    with temporary_database(DEFAULT_ADMIN_DSN) as name:
        asyncio.run(bench(dsn_for(DEFAULT_ADMIN_DSN, name), args.users, args.reads))


if __name__ == "__main__":
    main()
