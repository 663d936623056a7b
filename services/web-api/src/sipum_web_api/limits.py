"""Request bodies are bounded in size and time before any route reads them.

FastAPI reads a JSON body whole, however large, and waits for it as long as the client
trickles it. This ASGI middleware answers ``413`` for a body over ``max_bytes`` (by its
``Content-Length`` at once, else while reading a chunked one) and ``408`` when the body has
not arrived within ``read_timeout`` seconds. A route that takes larger bodies (greeting audio,
10 MiB) gets its own size from ``limit_for``, and the same time bound.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_JSON_BYTES = 64 * 1024
READ_TIMEOUT = 30.0


class _TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = MAX_JSON_BYTES,
        read_timeout: float = READ_TIMEOUT,
        limit_for: Callable[[str, str], int | None] = lambda method, path: None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.limit_for = limit_for
        """(method, path) → that route's own size limit (None: ``max_bytes``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope["method"], scope["path"]) or self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await self._refuse(send, 400, "malformed Content-Length")
            return
        if declared is not None and int(declared) > max_bytes:
            await self._refuse(send, 413, self._too_large_text(max_bytes))
            return
        try:
            async with asyncio.timeout(self.read_timeout):
                body, disconnected = await self._read(receive, max_bytes)
        except _TooLarge:
            await self._refuse(send, 413, self._too_large_text(max_bytes))
            return
        except TimeoutError:
            await self._refuse(send, 408, "the request body did not arrive in time")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if disconnected:
                    return {"type": "http.disconnect"}
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _read(receive: Receive, max_bytes: int) -> tuple[bytes, bool]:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return bytes(body), True
            body += message.get("body", b"")
            if len(body) > max_bytes:
                raise _TooLarge
            if not message.get("more_body", False):
                return bytes(body), False

    @staticmethod
    def _too_large_text(max_bytes: int) -> str:
        return f"request body larger than {max_bytes // 1024} KiB"

    @staticmethod
    async def _refuse(send: Send, status: int, detail: str) -> None:
        payload = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
