"""``SipEndpoint``: the transports plus the transaction layer, on one asyncio loop.

Usage (a UAS answering OPTIONS, a UAC sending one)::

    async def on_event(endpoint: SipEndpoint, event: Event) -> None:   # or a plain function
        if isinstance(event, RequestReceived):
            endpoint.send_response(event.transaction, make_response(event.request, 200))

    async with SipEndpoint(EndpointConfig(udp_port=0, tcp_port=0), on_event=on_event) as ep:
        request = SipRequest("OPTIONS", "sip:bob@127.0.0.1:5070", headers)  # no Via needed
        response = await ep.send_request(request, Peer("UDP", "127.0.0.1", 5070))

What the endpoint does:

* every datagram / framed stream message goes to ``TransactionLayer.receive_data`` with
  ``now = loop.time()``; what the layer wants sent goes out on the right transport; one
  ``loop.call_at`` timer is re-armed from ``layer.get_timer()`` after every step;
* ``send_request(request, peer)`` adds our Via (sent-by, new branch, ``rport``) if the request
  has none, starts a client transaction and returns a :class:`ClientRequest`: awaitable for the
  final response (raises :class:`SipTimeoutError` on timer B/F, :class:`SipTransportError` when
  the peer cannot be reached), with ``responses`` (everything received so far) and an optional
  ``on_response`` callback that also sees provisional responses and, for INVITE, every 2xx
  retransmission during the RFC 6026 Accepted state (the UA re-sends its ACK for those);
* every other event (``RequestReceived``, ``AckReceived``, ``CancelReceived``,
  ``StrayResponse``, server-side ``TransactionTimeout``/``TransportError``/
  ``TransactionTerminated``) goes to ``on_event(endpoint, event)``; a coroutine it returns runs
  as a task. The handler answers through ``send_response(transaction, response)``;
* ``send_stateless(message, peer)`` sends outside transactions (the ACK for a 2xx, 2xx
  retransmissions after the transaction ended);
* ``via(transport)`` and ``contact_uri(user, transport)`` give the addresses to put in messages.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from sipum_protocol.sip.message import SipRequest, SipResponse, new_branch
from sipum_protocol.sip.transaction import (
    ClientTransaction,
    Event,
    Peer,
    ResponseReceived,
    ServerTransaction,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from sipum_protocol.sip.transport.config import EndpointConfig, TransportCounters
from sipum_protocol.sip.transport.stream import StreamTransport
from sipum_protocol.sip.transport.udp import UdpTransport
from sipum_protocol.sip.uri import SipUri, format_host, parse_uri

log = logging.getLogger("sipum.net.sip")

EventHandler = Callable[["SipEndpoint", Event], Awaitable[None] | None]


class SipTimeoutError(TimeoutError):
    """No final response before timer B (INVITE) or F (non-INVITE)."""


class SipTransportError(ConnectionError):
    """The request could not be delivered (connection refused, TLS failure, ...)."""


class ClientRequest:
    """A request in flight: ``await`` it for the final response."""

    def __init__(
        self,
        transaction: ClientTransaction,
        future: asyncio.Future[SipResponse],
        on_response: Callable[[SipResponse], None] | None,
    ) -> None:
        self.transaction = transaction
        self.responses: list[SipResponse] = []
        self.on_response = on_response
        self._future = future
        # A request nobody awaits (a CANCEL, a fire-and-forget NOTIFY) must not log "exception
        # never retrieved" when it times out.
        future.add_done_callback(_consume_exception)

    @property
    def request(self) -> SipRequest:
        return self.transaction.request

    @property
    def final(self) -> asyncio.Future[SipResponse]:
        return self._future

    def __await__(self) -> Generator[Any, None, SipResponse]:
        return self._future.__await__()


def _consume_exception(future: asyncio.Future[SipResponse]) -> None:
    if not future.cancelled():
        future.exception()


class SipEndpoint:
    """See the module docstring."""

    def __init__(
        self, config: EndpointConfig | None = None, *, on_event: EventHandler | None = None
    ):
        self.config = config or EndpointConfig()
        self.on_event = on_event
        self.layer = TransactionLayer(
            timers=self.config.timers,
            max_transactions=self.config.max_transactions,
            max_message=self.config.max_message,
            max_headers=self.config.max_headers,
        )
        self.counters = TransportCounters()
        self.addresses: dict[str, tuple[str, int]] = {}
        """Bound (host, port) per transport name, after ``start``."""
        self._udp: UdpTransport | None = None
        self._streams: dict[str, StreamTransport] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._pending: dict[ClientTransaction, ClientRequest] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        cfg = self.config
        if cfg.udp_port is not None:
            family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
            _, protocol = await loop.create_datagram_endpoint(
                lambda: UdpTransport(self._receive, self.counters, max_message=cfg.max_message),
                local_addr=(cfg.host, cfg.udp_port),
                family=family,
            )
            self._udp = protocol
            self.addresses["UDP"] = protocol.address
        for name, port in (("TCP", cfg.tcp_port), ("TLS", cfg.tls_port)):
            if port is None:
                continue
            stream = StreamTransport(name, cfg, self.counters, self._receive, self._transport_error)
            self.addresses[name] = await stream.listen(cfg.host, port)
            self._streams[name] = stream
        if not self.addresses:
            raise ValueError("no transport enabled")

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        for stream in self._streams.values():
            await stream.close()
        if self._udp is not None:
            self._udp.close()
        for pending in self._pending.values():
            if not pending.final.done():
                pending.final.cancel()
        self._pending.clear()

    async def __aenter__(self) -> SipEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -------------------------------------------------------------- addresses

    def sent_by(self, transport: str = "UDP") -> str:
        host, port = self.addresses[transport]
        return f"{format_host(self.config.advertised_host or host)}:{port}"

    def via(self, transport: str = "UDP", branch: str | None = None) -> str:
        """A Via value for a request we send (RFC 3581 ``rport`` asked for)."""
        return (
            f"SIP/2.0/{transport} {self.sent_by(transport)};branch={branch or new_branch()};rport"
        )

    def contact_uri(self, user: str | None = None, transport: str = "UDP") -> str:
        userpart = f"{user}@" if user else ""
        scheme = "sips" if transport == "TLS" else "sip"
        suffix = ";transport=tcp" if transport == "TCP" else ""
        return f"{scheme}:{userpart}{self.sent_by(transport)}{suffix}"

    def connections(self, transport: str) -> dict[Peer, Any]:
        """Open stream connections of a transport (for tests and metrics)."""
        return dict(self._streams[transport].connections)

    async def resolve(self, uri: str | SipUri) -> Peer:
        """Where to send a request for ``uri``: ``maddr``/host, port and transport from the URI
        (``sips`` → TLS), the host looked up with getaddrinfo. RFC 3263 NAPTR/SRV lookups are
        not done."""
        if isinstance(uri, str):
            uri = parse_uri(uri)
        transport_param = (uri.params.get("transport") or "").upper()
        if uri.scheme == "sips":
            transport = "TLS"
        elif transport_param in ("TCP", "TLS", "UDP"):
            transport = transport_param
        else:
            transport = "UDP"
        host = uri.params.get("maddr") or uri.host
        port = uri.port or (5061 if transport == "TLS" else 5060)
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        return Peer(transport, str(infos[0][4][0]), port)

    # -------------------------------------------------------------- TU API

    def send_request(
        self,
        request: SipRequest,
        peer: Peer,
        *,
        on_response: Callable[[SipResponse], None] | None = None,
    ) -> ClientRequest:
        """Start a client transaction; see the module docstring."""
        loop = self._running_loop()
        if not request.headers.get("Via"):
            request.headers.prepend("Via", self.via(peer.transport))
        if not request.headers.get("Max-Forwards"):
            request.headers.add("Max-Forwards", "70")
        tx = self.layer.send_request(request, peer, loop.time())
        pending = ClientRequest(tx, loop.create_future(), on_response)
        self._pending[tx] = pending
        self._flush()
        return pending

    def send_response(self, transaction: ServerTransaction, response: SipResponse) -> None:
        """Answer a request through its server transaction (raises
        ``TransactionStateError`` if the transaction cannot take it)."""
        self.layer.send_response(transaction, response, self._running_loop().time())
        self._flush()

    def send_stateless(self, message: SipRequest | SipResponse, peer: Peer) -> None:
        self.layer.send_stateless(message, peer)
        self._flush()

    def cancel(self, request: ClientRequest) -> ClientRequest | None:
        """CANCEL an INVITE in flight (§9.1); the INVITE then normally ends with 487."""
        tx = self.layer.cancel(request.transaction, self._running_loop().time())
        result = None
        if tx is not None:
            result = ClientRequest(tx, self._running_loop().create_future(), None)
            self._pending[tx] = result
        self._flush()
        return result

    # -------------------------------------------------------------- plumbing

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("SipEndpoint not started")
        return self._loop

    def _receive(self, data: bytes, peer: Peer) -> None:
        try:
            self.layer.receive_data(data, peer, self._running_loop().time())
        except Exception:
            # The layer raises nothing for bad input; this is a bug. Count it, keep serving.
            self.counters.internal_errors += 1
            log.exception("SIP input from %s failed", peer)
        self._flush()

    def _transport_error(self, peer: Peer) -> None:
        self.layer.transport_error(peer, self._running_loop().time())
        self._flush()

    def _transmit(self, data: bytes, peer: Peer) -> None:
        if peer.transport == "UDP":
            if self._udp is None:
                self.counters.send_errors += 1
                return
            self._udp.send(data, peer)
            return
        stream = self._streams.get(peer.transport)
        if stream is None:
            self.counters.send_errors += 1
            self._running_loop().call_soon(self._transport_error, peer)
            return
        stream.send(data, peer)

    def _flush(self) -> None:
        layer = self.layer
        for data, peer in layer.datagrams_to_send():
            self._transmit(data, peer)
        while (event := layer.next_event()) is not None:
            self._dispatch(event)
        self._arm_timer()

    def _dispatch(self, event: Event) -> None:
        if isinstance(
            event, ResponseReceived | TransactionTimeout | TransportError | TransactionTerminated
        ):
            tx = event.transaction
            pending = self._pending.get(tx) if isinstance(tx, ClientTransaction) else None
            if pending is not None:
                self._resolve(pending, event)
                return
        handler = self.on_event
        if handler is None:
            return
        try:
            result = handler(self, event)
        except Exception:
            log.exception("SIP event handler failed on %s", type(event).__name__)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP event handler task failed", exc_info=task.exception())

    def _resolve(self, pending: ClientRequest, event: Event) -> None:
        future = pending.final
        if isinstance(event, ResponseReceived):
            pending.responses.append(event.response)
            if pending.on_response is not None:
                try:
                    pending.on_response(event.response)
                except Exception:
                    log.exception("on_response callback failed")
            if event.response.status >= 200 and not future.done():
                future.set_result(event.response)
        elif isinstance(event, TransactionTimeout):
            if not future.done():
                future.set_exception(SipTimeoutError(f"timer {event.timer}"))
        elif isinstance(event, TransportError):
            if not future.done():
                future.set_exception(SipTransportError(f"cannot reach {event.peer}"))
        elif isinstance(event, TransactionTerminated):
            del self._pending[pending.transaction]
            if not future.done():
                future.set_exception(SipTimeoutError("transaction ended without response"))

    def _arm_timer(self) -> None:
        when = self.layer.get_timer()
        if when == self._timer_when:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_when = when
        if when is not None:
            self._timer = self._running_loop().call_at(when, self._on_timer, when)

    def _on_timer(self, when: float) -> None:
        self._timer = None
        self._timer_when = None
        # call_at may run a hair early (clock resolution): never fire "before" the deadline.
        self.layer.handle_timer(max(self._running_loop().time(), when))
        self._flush()
