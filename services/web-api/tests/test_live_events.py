"""GET /api/v1/events over a real HTTP server (uvicorn on loopback) and real JetStream: each
mailbox sees its own events only, in order, resumable with Last-Event-ID; bounded streams."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sipum.blobstore import FileBlobStore
from sipum.config import ServiceSettings
from sipum.db import domains, users
from sipum.events import MessageCreated, MessageDeleted
from sipum.runtime import HealthRegistry, ServiceContext
from sipum.runtime.http import start_http, stop_http
from sipum_web_api import live
from sipum_web_api.app import create_app


@pytest.fixture
async def served(pg_pool, event_bus, tmp_path: Path):
    await domains.ensure(pg_pool, "example.com")
    await domains.ensure(pg_pool, "other.test")
    for name, domain in (("alice", "example.com"), ("bob", "example.com"), ("alice", "other.test")):
        await users.create(pg_pool, name, domain, f"{name}-password-1")
    ctx = ServiceContext(
        settings=ServiceSettings(domain="example.com", secret_key=SecretStr("live-secret")),
        health=HealthRegistry("web-api"),
        pool=pg_pool,
        bus=event_bus,
        blobs=FileBlobStore(tmp_path / "blobs"),
    )
    app = create_app(ctx)
    server, task, port = await start_http(app, "127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield client, event_bus, app
    await app.state.web.live.close()
    await stop_http(server, task)


async def token(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    r = await client.post(
        "/api/v1/login",
        json={"username": username, "password": username.split("@")[0] + "-password-1"},
    )
    assert r.status_code == 200, r.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def created(username: str, domain: str, message_id: int) -> MessageCreated:
    return MessageCreated(
        username=username, domain=domain, message_id=message_id, caller_uri="sip:c@x",
        caller_display="C", called_uri=f"sip:{username}@{domain}", received_at=datetime.now(UTC),
        duration_s=3.0, codec="PCMU", size=100, blob_key=f"k{message_id}",
    )  # fmt: skip


class Reader:
    """Reads SSE frames from one streaming response in the background."""

    def __init__(self, response: httpx.Response) -> None:
        self.frames: list[dict[str, str]] = []
        self.task = asyncio.create_task(self._read(response))

    async def _read(self, response: httpx.Response) -> None:
        frame: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "":
                if frame:
                    self.frames.append(frame)
                frame = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                frame[key] = value

    def events(self) -> list[dict[str, str]]:
        return [f for f in self.frames if "event" in f]

    async def wait(self, count: int, limit: float = 5.0) -> list[dict[str, str]]:
        for _ in range(int(limit / 0.02)):
            if len(self.events()) >= count:
                return self.events()
            await asyncio.sleep(0.02)
        raise AssertionError(f"got {self.events()}")


async def test_own_events_only_live_and_in_order(served) -> None:
    client, bus, _ = served
    auth = await token(client, "alice")
    async with client.stream("GET", "/api/v1/events", headers=auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = Reader(response)
        await asyncio.sleep(0.3)  # the hub's consumer is up
        await bus.publish(created("bob", "example.com", 1))  # another user
        await bus.publish(created("alice", "other.test", 2))  # same name, another domain
        await bus.publish(created("alice", "example.com", 3))
        await bus.publish(MessageDeleted(username="alice", domain="example.com", message_id=3))
        events = await reader.wait(2)
        await asyncio.sleep(0.3)
        reader.task.cancel()
    assert [e["event"] for e in reader.events()] == ["message.created", "message.deleted"]
    assert [json.loads(e["data"])["message_id"] for e in events] == [3, 3]
    assert int(events[0]["id"]) < int(events[1]["id"])


async def test_reconnect_with_last_event_id_gets_what_was_missed(served) -> None:
    client, bus, _ = served
    auth = await token(client, "alice")
    async with client.stream("GET", "/api/v1/events", headers=auth) as response:
        reader = Reader(response)
        await asyncio.sleep(0.3)
        await bus.publish(created("alice", "example.com", 10))
        [first] = await reader.wait(1)
        reader.task.cancel()
    # Away: two of hers and one of bob's.
    for mid, user in ((11, "alice"), (12, "bob"), (13, "alice")):
        await bus.publish(created(user, "example.com", mid))
    async with client.stream(
        "GET", "/api/v1/events", headers={**auth, "Last-Event-ID": first["id"]}
    ) as response:
        reader = Reader(response)
        events = await reader.wait(2)
        await bus.publish(created("alice", "example.com", 14))
        events = await reader.wait(3)
        reader.task.cancel()
    assert [json.loads(e["data"])["message_id"] for e in events] == [11, 13, 14]


async def test_too_much_missed_is_a_reset(served, monkeypatch) -> None:
    client, bus, _ = served
    monkeypatch.setattr(live, "REPLAY_LIMIT", 3)
    auth = await token(client, "alice")
    for mid in range(20, 26):
        await bus.publish(created("alice", "example.com", mid))
    async with client.stream("GET", "/api/v1/events?after=0", headers=auth) as response:
        reader = Reader(response)
        [reset] = await reader.wait(1)
        reader.task.cancel()
    assert reset["event"] == "reset"


async def test_unauthenticated_and_too_many_streams(served, monkeypatch) -> None:
    client, _, _ = served
    assert (await client.get("/api/v1/events")).status_code == 401
    monkeypatch.setattr(live, "MAX_STREAMS_PER_MAILBOX", 2)
    auth = await token(client, "alice")
    async with client.stream("GET", "/api/v1/events", headers=auth) as one:
        async with client.stream("GET", "/api/v1/events", headers=auth) as two:
            assert one.status_code == two.status_code == 200
            r = await client.get("/api/v1/events", headers=auth)
            assert r.status_code == 429
    # Closed streams are forgotten: a new one is accepted again.
    await asyncio.sleep(0.2)
    async with client.stream("GET", "/api/v1/events", headers=auth) as three:
        assert three.status_code == 200


async def test_a_client_too_slow_is_cut_off_not_waited_for(served, monkeypatch) -> None:
    client, bus, app = served
    hub = app.state.web.live
    stream = await hub.open("alice@example.com")
    for mid in range(live.QUEUE_SIZE + 5):  # nobody reads this stream
        await hub._on_message(_Msg(bus, created("alice", "example.com", mid), mid + 1))
    assert stream.overflowed and stream.queue.qsize() == live.QUEUE_SIZE
    frames = [f async for f in hub.frames(stream, None)]
    assert frames == [b"retry: 3000\n\n"]  # the response ends; the client resumes by id
    assert "alice@example.com" not in hub.streams


class _Msg:
    """What the hub reads of a JetStream message (a stand-in in a unit test)."""

    def __init__(self, bus, event, sequence: int) -> None:
        self.subject = bus.subjects.event(event.kind)
        self.data = event.to_json()
        self.metadata = type("M", (), {"sequence": type("S", (), {"stream": sequence})()})()
