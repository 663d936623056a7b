"""SIP over TCP and TLS (RFC 3261 §18, §18.3 framing; RFC 5626 §3.5.1 CRLF keep-alive).

One :class:`StreamTransport` per transport name (``TCP`` or ``TLS``) owns a listening server and
every connection, incoming or outgoing, in one table keyed by :class:`Peer` — (transport,
remote address, remote port) — so a message to a peer reuses the connection it arrived on or
the one we opened before (§18.1.1, §18.2.2). Each connection cuts its byte stream into messages
with ``StreamFramer`` (several messages per segment, messages across segments), answers a
``CRLF CRLF`` ping with a ``CRLF`` pong, and is closed when the framing is lost, when it has
been idle for ``idle_timeout``, when a partial message takes longer than ``read_timeout``, or
when the peer stops reading (write buffer above ``max_write_buffer``).

A response whose connection is gone is sent over a new connection to the Via's ``received``
address and sent-by port (§18.2.2); a failed connect is reported with ``on_error(peer)`` so the
transaction layer can end the transactions (§17.1.4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable

from sipum_protocol.sip.headers import SipParseError
from sipum_protocol.sip.message import StreamFramer, parse_message
from sipum_protocol.sip.transaction import Peer, stream_fallback
from sipum_protocol.sip.transport.config import EndpointConfig, TransportCounters

log = logging.getLogger("sipum.net.sip")

PONG = b"\r\n"


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection."""

    def __init__(self, owner: StreamTransport, key: Peer | None = None) -> None:
        self._owner = owner
        self.peer = key
        self._framer = StreamFramer(max_message=owner.config.max_message)
        self.transport: asyncio.Transport | None = None
        self.last_activity = time.monotonic()
        self.partial_since: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.peer is None:
            peername = transport.get_extra_info("peername")
            self.peer = Peer(self._owner.name, str(peername[0]), int(peername[1]))
        self._owner._register(self)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.last_activity = now
        try:
            messages = self._framer.feed(data)
        except SipParseError as error:
            self._owner.counters.framing_errors += 1
            log.debug("closing %s: %s", self.peer, error.reason)
            self.abort()
            return
        # The read timeout bounds how long one message may take to arrive; a busy stream that
        # always ends a segment mid-message is still making progress, so completing any
        # message restarts the clock.
        if not self._framer.buffered:
            self.partial_since = None
        elif messages or self.partial_since is None:
            self.partial_since = now
        assert self.peer is not None
        for message in messages:
            if message == StreamFramer.PING:
                self._owner.counters.keepalive_pongs += 1
                self.write(PONG)
                continue
            self._owner.counters.stream_messages_received += 1
            self._owner.on_message(message, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._unregister(self)

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        self.last_activity = time.monotonic()
        if transport.get_write_buffer_size() > self._owner.config.max_write_buffer:
            self._owner.counters.connections_closed_slow_reader += 1
            self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class StreamTransport:
    """Listener plus connection pool for ``TCP`` or ``TLS``."""

    def __init__(
        self,
        name: str,
        config: EndpointConfig,
        counters: TransportCounters,
        on_message: Callable[[bytes, Peer], None],
        on_error: Callable[[Peer], None],
    ) -> None:
        self.name = name
        self.config = config
        self.counters = counters
        self.on_message = on_message
        self._on_error = on_error
        self.connections: dict[Peer, StreamConnection] = {}
        self._pending: dict[Peer, list[bytes]] = {}
        self._aliases: dict[Peer, Peer] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._server_ssl: ssl.SSLContext | None = None
        self._client_ssl: ssl.SSLContext | None = None
        if name == "TLS":
            self._client_ssl = ssl.create_default_context(cafile=config.tls_cafile)
            if not config.tls_verify:
                self._client_ssl.check_hostname = False
                self._client_ssl.verify_mode = ssl.CERT_NONE

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        if self.name == "TLS":
            if not self.config.tls_certfile:
                raise ValueError("TLS needs tls_certfile (and tls_keyfile)")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.config.tls_certfile, self.config.tls_keyfile)
            self._server_ssl = context
        self._server = await loop.create_server(
            lambda: StreamConnection(self),
            host,
            port,
            ssl=self._server_ssl,
            ssl_handshake_timeout=self.config.read_timeout if self._server_ssl else None,
        )
        self._sweeper = asyncio.create_task(self._sweep())
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    # -------------------------------------------------------------- connection table

    def _register(self, conn: StreamConnection) -> None:
        assert conn.peer is not None
        if conn.peer in self.connections and self.connections[conn.peer] is not conn:
            self.connections[conn.peer].close()
        incoming = conn.peer not in self._pending
        if incoming:
            if len(self.connections) >= self.config.max_connections:
                self.counters.connections_rejected += 1
                conn.abort()
                return
            self.counters.connections_accepted += 1
        self.connections[conn.peer] = conn

    def _unregister(self, conn: StreamConnection) -> None:
        if conn.peer is not None and self.connections.get(conn.peer) is conn:
            del self.connections[conn.peer]

    # -------------------------------------------------------------- sending

    def send(self, data: bytes, peer: Peer) -> None:
        peer = self._aliases.get(peer, peer)
        conn = self.connections.get(peer)
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            self.counters.stream_messages_sent += 1
            conn.write(data)
            return
        if peer in self._pending:
            self._pending[peer].append(data)
            return
        target = peer
        if data.startswith(b"SIP/2.0 "):
            # §18.2.2: the connection the request came on is gone; a new one goes to the
            # Via's received address at the sent-by port (the old peer port was ephemeral).
            try:
                message = parse_message(data, max_size=self.config.max_message)
                target = stream_fallback(message.top_via, self.name)
            except SipParseError:
                self.counters.send_errors += 1
                return
            self._aliases[peer] = target
            conn = self.connections.get(target)
            if conn is not None:
                self.counters.stream_messages_sent += 1
                conn.write(data)
                return
            if target in self._pending:
                self._pending[target].append(data)
                return
        if len(self.connections) + len(self._pending) >= self.config.max_connections:
            self.counters.send_errors += 1
            self._on_error(peer)
            return
        self._pending[target] = [data]
        task = asyncio.create_task(self._connect(target, peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, target: Peer, reported: Peer) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: StreamConnection(self, key=target),
                    target.host,
                    target.port,
                    ssl=self._client_ssl,
                    server_hostname=target.host if self._client_ssl else None,
                    ssl_handshake_timeout=self.config.connect_timeout if self._client_ssl else None,
                ),
                self.config.connect_timeout,
            )
        except (TimeoutError, OSError, ssl.SSLError) as error:
            self.counters.connect_failures += 1
            self._pending.pop(target, None)
            log.debug("connect to %s failed: %s", target, error)
            self._on_error(reported)
            return
        self.counters.connections_opened += 1
        for data in self._pending.pop(target, []):
            self.counters.stream_messages_sent += 1
            conn.write(data)

    # -------------------------------------------------------------- housekeeping

    async def _sweep(self) -> None:
        interval = max(0.05, min(1.0, self.config.idle_timeout / 4, self.config.read_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        """Close idle connections and those stuck on a partial message."""
        for conn in list(self.connections.values()):
            if now - conn.last_activity >= self.config.idle_timeout:
                self.counters.connections_closed_idle += 1
                conn.close()
            elif (
                conn.partial_since is not None
                and now - conn.partial_since >= self.config.read_timeout
            ):
                self.counters.connections_closed_read_timeout += 1
                conn.abort()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self.connections.values()):
            conn.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
