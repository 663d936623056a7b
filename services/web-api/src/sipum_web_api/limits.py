"""Request bodies are bounded in size and time before any route reads them.

FastAPI reads a JSON body whole, however large, and waits for it as long as the client
trickles it. This ASGI middleware answers ``413`` for a body over ``max_bytes`` (by its
``Content-Length`` at once, else while reading a chunked one) and ``408`` when the body has
not arrived within ``read_timeout`` seconds. Routes that stream and bound an upload themselves
(greeting audio, 10 MiB) are left to do so.
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
        streamed: Callable[[str, str], bool] = lambda method, path: False,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.streamed = streamed
        """(method, path) → the route bounds its own body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.streamed(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await self._refuse(send, 400, "malformed Content-Length")
            return
        if declared is not None and int(declared) > self.max_bytes:
            await self._refuse(send, 413, self._too_large_text())
            return
        try:
            async with asyncio.timeout(self.read_timeout):
                body, disconnected = await self._read(receive)
        except _TooLarge:
            await self._refuse(send, 413, self._too_large_text())
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

    async def _read(self, receive: Receive) -> tuple[bytes, bool]:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return bytes(body), True
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                raise _TooLarge
            if not message.get("more_body", False):
                return bytes(body), False

    def _too_large_text(self) -> str:
        return f"request body larger than {self.max_bytes // 1024} KiB"

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
