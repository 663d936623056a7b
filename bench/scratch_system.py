"""The whole system on scratch backends, for the benchmarks that call through Kamailio
(``first_call.py``, ``system_calls.py``).

:func:`scratch_system` makes a fresh migrated database, a moto_server with a bucket and a NATS
namespace with its own JetStream stream on the local servers, starts the system as processes
(``tests/e2e/firstcall/system.py``) on them, and removes all of it at the end.
:func:`sign_up_mailboxes` signs mailboxes up through the REST API (ring timeout 0: the forked
call is answered at once) and waits until the registrar-agent registered them.

Needs PostgreSQL (127.0.0.1:5432, trust) and NATS with JetStream (127.0.0.1:4222), like the
tests (``SIPUM_TEST_POSTGRES_URL`` / ``SIPUM_TEST_NATS_URL`` override them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from firstcall.system import Backends, FirstCallSystem, start_system  # noqa: E402
from firstcall.watch import set_ring_timeout  # noqa: E402
from sipum.db.migrate import apply_migrations  # noqa: E402
from sipum.events import EventBus  # noqa: E402
from sipum_testing.postgres import dsn_for, temporary_database  # noqa: E402
from sipum_testing.s3 import ACCESS_KEY, REGION, SECRET_KEY, running_moto_server  # noqa: E402

ADMIN_DSN = os.environ.get(
    "SIPUM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS_URL = os.environ.get("SIPUM_TEST_NATS_URL", "nats://127.0.0.1:4222")


@contextlib.contextmanager
def scratch_system(*, recorders: int = 1) -> Iterator[FirstCallSystem]:
    """The system with ``recorders`` media-recorders (0: the bench starts its own) on scratch
    backends; everything stopped and removed at the end."""
    token = uuid.uuid4().hex[:12]
    prefix, stream = f"bench{token}", f"BENCH_{token}"
    with temporary_database(ADMIN_DSN) as database, running_moto_server() as s3:
        dsn = dsn_for(ADMIN_DSN, database)

        async def migrate() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()

        asyncio.run(migrate())
        backends = Backends(
            database_url=dsn,
            nats_url=NATS_URL,
            events_prefix=prefix,
            events_stream=stream,
            s3_endpoint=s3.endpoint,
            s3_bucket=f"bench-{token}",
            s3_access_key=ACCESS_KEY,
            s3_secret_key=SECRET_KEY,
            s3_region=REGION,
        )
        system = start_system(backends, recorders=recorders)
        try:
            yield system
        finally:
            system.stop()

            async def delete_stream() -> None:
                bus = await EventBus.connect(
                    NATS_URL, "bench-cleanup", prefix=prefix, stream=stream
                )
                try:
                    await bus.delete_stream()
                finally:
                    await bus.close()

            asyncio.run(delete_stream())


async def sign_up_mailboxes(
    system: FirstCallSystem, users: list[str], *, limit: float = 30.0
) -> None:
    """Sign ``users`` up (REST API, ring timeout 0); return once Kamailio knows their contacts."""
    async with httpx.AsyncClient(base_url=system.web_url, timeout=15) as http:
        for user in users:
            response = await http.post(
                "/api/v1/signup",
                json={"username": user, "password": f"{user}-password", "email": f"{user}@m.test"},
            )
            response.raise_for_status()
            await set_ring_timeout(system.backends.database_url, user, 0)
    deadline = time.monotonic() + limit
    while any(not system.kamailio.lookup(u) for u in users):  # the agent registered them
        if time.monotonic() > deadline:
            raise RuntimeError("the registrar-agent did not register the bench mailboxes")
        await asyncio.sleep(0.2)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0–1) of ``values``, interpolated between the two nearest."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
