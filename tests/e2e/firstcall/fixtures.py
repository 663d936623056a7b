"""pytest fixtures: one running system per test module (starting it takes seconds)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import pytest
from sipum.events import EventBus
from sipum_testing.postgres import dsn_for, temporary_database
from sipum_testing.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoServer, unique_bucket

from .system import Backends, FirstCallSystem, start_system


def _delete_stream(url: str, prefix: str, stream: str) -> None:
    async def delete() -> None:
        bus = await EventBus.connect(url, "sipum-e2e-cleanup", prefix=prefix, stream=stream)
        try:
            await bus.delete_stream()
        finally:
            await bus.close()

    # Our own thread: a test's event loop may be running in this one.
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(delete())
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def first_call_system(
    pg_admin_dsn: str, pg_template: str, nats_url: str, moto_server: MotoServer
) -> Iterator[FirstCallSystem]:
    """Kamailio, SMTP and the five services on a fresh database, NATS namespace and bucket."""
    yield from _system(pg_admin_dsn, pg_template, nats_url, moto_server, transcriber=False)


@pytest.fixture(scope="module")
def transcribing_system(
    pg_admin_dsn: str, pg_template: str, nats_url: str, moto_server: MotoServer
) -> Iterator[FirstCallSystem]:
    """The same with the sixth service, the transcriber (and e-mails that wait for it)."""
    yield from _system(pg_admin_dsn, pg_template, nats_url, moto_server, transcriber=True)


@pytest.fixture(scope="module")
def two_recorder_system(
    pg_admin_dsn: str, pg_template: str, nats_url: str, moto_server: MotoServer
) -> Iterator[FirstCallSystem]:
    """The five services with two media-recorder replicas (NATS hands each call to one)."""
    yield from _system(
        pg_admin_dsn, pg_template, nats_url, moto_server, transcriber=False, recorders=2
    )


def _system(
    pg_admin_dsn: str,
    pg_template: str,
    nats_url: str,
    moto_server: MotoServer,
    *,
    transcriber: bool,
    recorders: int = 1,
) -> Iterator[FirstCallSystem]:
    token = uuid.uuid4().hex[:16]
    prefix, stream = f"t{token}", f"TEST_{token}"
    with (
        temporary_database(pg_admin_dsn, template=pg_template) as database,
        unique_bucket(moto_server) as bucket,
    ):
        backends = Backends(
            database_url=dsn_for(pg_admin_dsn, database),
            nats_url=nats_url,
            events_prefix=prefix,
            events_stream=stream,
            s3_endpoint=moto_server.endpoint,
            s3_bucket=bucket,
            s3_access_key=ACCESS_KEY,
            s3_secret_key=SECRET_KEY,
            s3_region=REGION,
        )
        system = start_system(backends, transcriber=transcriber, recorders=recorders)
        try:
            yield system
        finally:
            codes = system.stop()
            _delete_stream(nats_url, prefix, stream)
        # Every service stops cleanly on SIGTERM after the calls (no SIGKILL needed).
        assert codes == dict.fromkeys(codes, 0), codes
