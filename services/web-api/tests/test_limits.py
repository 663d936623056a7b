"""The body limit middleware driven as an ASGI app: size, time, chunked bodies, disconnects."""

from __future__ import annotations

import asyncio
from typing import Any

from sipum_web_api.limits import BodyLimit


class Echo:
    """An ASGI app that reads the whole body and answers with its length."""

    def __init__(self) -> None:
        self.calls = 0
        self.disconnected = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})


async def run(
    limit: BodyLimit, chunks: list[bytes | float | None], headers: list[Any] | None = None
) -> tuple[int, bytes]:
    """Feed ``chunks`` (bytes: a body part; float: a pause; None: the client goes away)."""
    queue = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not queue:
            await asyncio.sleep(3600)  # nothing more: the client waits for the answer
        item = queue.pop(0)
        if isinstance(item, float):
            await asyncio.sleep(item)
            return await receive()
        if item is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": item, "more_body": bool(queue)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers or []}
    await asyncio.wait_for(limit(scope, receive, send), 5)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def test_small_bodies_pass_whole_in_one_or_many_parts() -> None:
    app = Echo()
    limit = BodyLimit(app, max_bytes=100)
    assert await run(limit, [b"x" * 100]) == (200, b"100")
    assert await run(limit, [b"x" * 40, b"y" * 40, b""]) == (200, b"80")
    assert app.calls == 2


async def test_too_large_by_header_or_while_reading() -> None:
    app = Echo()
    limit = BodyLimit(app, max_bytes=100)
    status, body = await run(limit, [b"x"], headers=[(b"content-length", b"101")])
    assert status == 413 and b"larger than" in body
    assert (await run(limit, [b"x" * 60, b"x" * 60]))[0] == 413
    status, body = await run(limit, [b"x"], headers=[(b"content-length", b"12a")])
    assert status == 400 and b"malformed Content-Length" in body
    assert app.calls == 0  # the route never saw any of them


async def test_slow_body_times_out_and_a_route_can_take_larger_bodies() -> None:
    app = Echo()
    limit = BodyLimit(app, max_bytes=100, read_timeout=0.2)
    status, body = await run(limit, [b"x", 0.5, b"y"])
    assert status == 408 and b"did not arrive in time" in body
    larger = BodyLimit(
        app, max_bytes=100, limit_for=lambda method, path: 600 if path == "/x" else None
    )
    assert await run(larger, [b"x" * 500]) == (200, b"500")
    assert (await run(larger, [b"x" * 601]))[0] == 413
    assert app.calls == 1


async def test_a_client_gone_while_sending_is_passed_on() -> None:
    app = Echo()
    limit = BodyLimit(app, max_bytes=100)
    sent: list[Any] = []
    queue: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"x", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    await asyncio.wait_for(limit(scope, receive, send), 5)
    assert app.disconnected and sent == []
