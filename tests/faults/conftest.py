"""The system under faults: Kamailio, SMTP and the services as processes (two media-recorder
replicas) on a fresh database, NATS namespace and bucket; the blob store behind a TCP proxy the
test can take down. A test that kills a service records
its key in ``killed``; every other process must stop cleanly (exit 0)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sipum_testing.postgres import dsn_for, temporary_database
from sipum_testing.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoServer, unique_bucket
from sipum_testing.tcp_proxy import TcpProxy

from ..e2e.firstcall.fixtures import _delete_stream
from ..e2e.firstcall.system import Backends, FirstCallSystem, start_system


@pytest.fixture
def killed() -> set[str]:
    return set()


@pytest.fixture
def agent_env() -> dict[str, str]:
    """More registrar-agent settings for the system (a test module overrides this fixture)."""
    return {}


@pytest.fixture
def s3_proxy(moto_server: MotoServer) -> Iterator[TcpProxy]:
    """The services reach the blob store through this (``down()``: the store is away)."""
    proxy = TcpProxy(moto_server.host, moto_server.port)
    yield proxy
    proxy.close()


@pytest.fixture
def system_nats_url(nats_url: str) -> str:
    """The NATS server the system uses (the shared one; a test that restarts NATS overrides
    this with its own server)."""
    return nats_url


@pytest.fixture
def system_agents() -> int:
    """How many registrar-agents (shards) the system runs; a test module overrides this."""
    return 1


@pytest.fixture
def system(
    system_agents: int,
    pg_admin_dsn: str,
    pg_template: str,
    system_nats_url: str,
    moto_server: MotoServer,
    s3_proxy: TcpProxy,
    killed: set[str],
    agent_env: dict[str, str],
) -> Iterator[FirstCallSystem]:
    token = uuid.uuid4().hex[:16]
    prefix, stream = f"t{token}", f"TEST_{token}"
    with (
        temporary_database(pg_admin_dsn, template=pg_template) as database,
        unique_bucket(moto_server) as bucket,
    ):
        backends = Backends(
            database_url=dsn_for(pg_admin_dsn, database),
            nats_url=system_nats_url,
            events_prefix=prefix,
            events_stream=stream,
            s3_endpoint=s3_proxy.endpoint,
            s3_bucket=bucket,
            s3_access_key=ACCESS_KEY,
            s3_secret_key=SECRET_KEY,
            s3_region=REGION,
        )
        running = start_system(backends, recorders=2, agents=system_agents, agent_env=agent_env)
        try:
            yield running
        finally:
            codes = running.stop()
            _delete_stream(system_nats_url, prefix, stream)
        unclean = {k: c for k, c in codes.items() if c != 0 and k not in killed}
        assert not unclean, codes
