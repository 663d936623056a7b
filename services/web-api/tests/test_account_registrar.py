"""Account changes as the registrar-agent and Kamailio see them: the real agent (in-process)
REGISTERs users with a real Kamailio that checks digest credentials in the test database.

* a password changed through the API: the agent re-registers with the new HA1 at once and
  Kamailio accepts it;
* an account deleted through the API: the agent's de-REGISTER reaches Kamailio while the row
  still exists (so Kamailio authenticates it and removes the binding), and only then the row goes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sipum.blobstore import FileBlobStore
from sipum.config import ServiceSettings
from sipum.db import domains, users
from sipum.events import EventBus, RegistrationChanged
from sipum.runtime import HealthRegistry, ServiceContext
from sipum_registrar_agent.service import RegistrarAgentService
from sipum_registrar_agent.settings import RegistrarAgentSettings
from sipum_testing.kamailio import KamailioServer
from sipum_web_api.app import create_app

pytestmark = pytest.mark.timeout(90)
DOMAIN = "sipum.test"


async def wait_for(predicate: Callable[[], Any], limit: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"not reached in {limit}s: {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def stack(
    pg_pool, pg_dsn: str, event_bus: EventBus, kamailio_factory, tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    await domains.ensure(pg_pool, DOMAIN)
    ctx = ServiceContext(
        settings=ServiceSettings(domain=DOMAIN, secret_key=SecretStr("agent-test-secret")),
        health=HealthRegistry("web-api"),
        pool=pg_pool,
        bus=event_bus,
        blobs=FileBlobStore(tmp_path / "blobs"),
    )
    app = create_app(ctx)
    app.state.web.deregister_wait = 10.0
    transport = httpx.ASGITransport(app=app, client=("192.0.2.30", 42000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        r = await client.post(
            "/api/v1/signup", json={"username": "alice", "password": "alice-password-1"}
        )
        assert r.status_code == 201, r.text
        r = await client.post(
            "/api/v1/login", json={"username": "alice", "password": "alice-password-1"}
        )
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        client.cookies.clear()
        kamailio: KamailioServer = kamailio_factory(
            domain=DOMAIN, postgres_url=pg_dsn.replace("postgresql://", "postgres://", 1)
        )
        settings = RegistrarAgentSettings(
            registrar=f"127.0.0.1:{kamailio.port}", sip_host="127.0.0.1", sip_port=0, domain=DOMAIN
        )
        agent = RegistrarAgentService(settings)
        await agent.start(
            ServiceContext(
                settings=settings,
                health=HealthRegistry("registrar-agent"),
                pool=pg_pool,
                bus=event_bus,
            )
        )
        changes: list[RegistrationChanged] = []

        async def on_change(event: RegistrationChanged) -> None:
            changes.append(event)

        await event_bus.subscribe(RegistrationChanged, on_change, durable="reg-watch")
        try:
            yield {
                "client": client,
                "auth": auth,
                "kamailio": kamailio,
                "pool": pg_pool,
                "changes": changes,
            }
        finally:
            await agent.stop_accepting()
            await agent.drain()


async def test_password_change_through_the_api_re_registers_with_the_new_ha1(stack) -> None:
    kamailio: KamailioServer = stack["kamailio"]
    await wait_for(lambda: kamailio.lookup("alice"), what="alice registered")
    (before,) = kamailio.lookup("alice")
    r = await stack["client"].patch(
        "/api/v1/account",
        headers=stack["auth"],
        json={"current_password": "alice-password-1", "new_password": "looking-glass-2"},
    )
    assert r.status_code == 200, r.text
    # Same binding refreshed at once with a higher CSeq: Kamailio accepted the digest made
    # from the new HA1 (the old one no longer matches the database).
    await wait_for(lambda: kamailio.lookup("alice")[0].cseq > before.cseq, what="re-register")
    (after,) = kamailio.lookup("alice")
    assert after.call_id == before.call_id
    assert not [c for c in stack["changes"] if c.state == "failed"]


async def test_account_deletion_through_the_api_deregisters_before_the_row_goes(stack) -> None:
    kamailio: KamailioServer = stack["kamailio"]
    await wait_for(lambda: kamailio.lookup("alice"), what="alice registered")
    started = time.monotonic()
    r = await stack["client"].request(
        "DELETE", "/api/v1/account", headers=stack["auth"], json={"password": "alice-password-1"}
    )
    elapsed = time.monotonic() - started
    assert r.status_code == 204, r.text
    # When the DELETE answers, Kamailio has already accepted the de-REGISTER (it authenticated
    # it against alice's row) — the binding is gone, not left to expire.
    assert kamailio.lookup("alice") == []
    assert await users.get_by_address(stack["pool"], "alice", DOMAIN) is None
    await wait_for(
        lambda: [c for c in stack["changes"] if c.state == "unregistered"], what="unregistered"
    )
    (gone,) = [c for c in stack["changes"] if c.state == "unregistered"]
    assert gone.username == "alice" and gone.status_code == 200
    assert elapsed < 5.0  # the wait ended on the agent's report, not on its 10 s bound
