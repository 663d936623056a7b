"""``database_pool_size`` bounds the connections a service keeps to PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError
from sipum.config import ServiceSettings
from sipum.runtime.health import HealthRegistry
from sipum.runtime.service import POSTGRES, ServiceContext, connect_dependencies


def test_the_pool_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPUM_DATABASE_POOL_SIZE", "3")
    assert ServiceSettings().database_pool_size == 3
    monkeypatch.setenv("SIPUM_DATABASE_POOL_SIZE", "0")
    with pytest.raises(ValidationError):
        ServiceSettings()


async def test_concurrent_work_never_opens_more_connections_than_the_pool_size(
    pg_dsn: str,
) -> None:
    ctx = ServiceContext(
        settings=ServiceSettings(database_url=pg_dsn, database_pool_size=2),
        health=HealthRegistry("test"),
    )
    await connect_dependencies(ctx, [POSTGRES], migrate=False)
    try:

        async def query() -> int:
            async with ctx.pool.acquire() as conn:
                await conn.execute("SELECT pg_sleep(0.05)")
                return int(
                    await conn.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    )
                )

        seen = await asyncio.gather(*(query() for _ in range(8)))
        assert max(seen) == 2  # eight at once, two connections
    finally:
        await ctx.pool.close()
