"""``SipEndpoint``: the one asyncio adapter between SIP sockets and a sans-I/O SIP core.

The core is either the ``TransactionLayer`` (``TransactionEndpoint``, below) or a
``UserAgent`` on top of one (``sipum_protocol.sip.ua.aio.UserAgentEndpoint``); both speak the
same interface (:class:`SipCore`) and this class is all the I/O they get:

* every datagram / framed stream message goes to ``core.receive_data(data, peer, now)``, a
  connection failure to ``core.transport_error(peer, now)``, always with ``now = loop.time()``
  read at that moment — the core keeps no clock of its own;
* :meth:`SipEndpoint.transmit` then sends what ``core.datagrams_to_send()`` returns, hands each
  ``core.next_event()`` to the event handler (which may act on the core again: the loop runs
  until both are empty) and re-arms one ``loop.call_at`` at ``core.get_timer()``;
* when that timer fires, ``core.handle_timer(max(loop.time(), when))`` and ``transmit`` again;
* an application that acts on the core outside of an event (``call.answer(sdp, ep.now())``
  after an ``await``) calls ``transmit()`` itself, or the core's ``wakeup`` hook schedules it.

A face adds the calls of its core with the clock filled in: ``TransactionEndpoint`` here
(``send_request`` → an awaitable :class:`ClientRequest`, ``send_response``, ``send_stateless``,
``cancel``), ``UserAgentEndpoint`` in ``sipum_protocol.sip.ua.aio`` (``invite``,
``send_request``, ``respond``).

Usage (a UAS answering OPTIONS at the transaction level, a UAC sending one)::

    def on_event(endpoint: TransactionEndpoint, event: Event) -> None:  # or a coroutine
        if isinstance(event, RequestReceived):
            endpoint.send_response(event.transaction, make_response(event.request, 200))

    async with TransactionEndpoint(EndpointConfig(udp_port=0), on_event=on_event) as ep:
        request = SipRequest("OPTIONS", "sip:bob@127.0.0.1:5070", headers)  # no Via needed
        response = await ep.send_request(request, Peer("UDP", "127.0.0.1", 5070))

Via: a request without one gets ours from :meth:`SipEndpoint.via`, which like the user agent
writes it with ``sipum_protocol.sip.message.via_for_request`` — the only place a Via is made.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, Protocol, Self, TypeVar

from sipum_protocol.sip.message import SipRequest, SipResponse, via_for_request
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


class SipCore(Protocol):
    """What a sans-I/O SIP core offers its adapter: bytes and ``now`` in, bytes and one timer
    out, events to drain."""

    def receive_data(self, data: bytes, peer: Peer, now: float) -> None: ...

    def transport_error(self, peer: Peer, now: float) -> None: ...

    def handle_timer(self, now: float) -> None: ...

    def get_timer(self) -> float | None: ...

    def datagrams_to_send(self) -> list[tuple[bytes, Peer]]: ...

    def next_event(self) -> object | None: ...


CoreT = TypeVar("CoreT", bound=SipCore)


class SipTimeoutError(TimeoutError):
    """No final response before timer B (INVITE) or F (non-INVITE)."""


class SipTransportError(ConnectionError):
    """The request could not be delivered (connection refused, TLS failure, ...)."""


class ClientRequest:
    """A request in flight: ``await`` it for the final response (raises
    :class:`SipTimeoutError` / :class:`SipTransportError`). ``responses`` holds everything
    received so far; ``on_response`` also sees provisional responses and, for an INVITE, every
    2xx retransmission of the RFC 6026 Accepted state."""

    def __init__(
        self,
        transaction: ClientTransaction,
        future: asyncio.Future[SipResponse],
        on_response: Callable[[SipResponse], None] | None = None,
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

    def response_received(self, response: SipResponse) -> None:
        self.responses.append(response)
        if self.on_response is not None:
            try:
                self.on_response(response)
            except Exception:
                log.exception("on_response callback failed")
        if response.status >= 200 and not self._future.done():
            self._future.set_result(response)

    def failed(self, error: Exception) -> None:
        if not self._future.done():
            self._future.set_exception(error)

    def __await__(self) -> Generator[Any, None, SipResponse]:
        return self._future.__await__()


def _consume_exception(future: asyncio.Future[SipResponse]) -> None:
    if not future.cancelled():
        future.exception()


class SipEndpoint(Generic[CoreT]):
    """Transports + one sans-I/O core + one timer on a loop; see the module docstring.

    A face sets :attr:`core` in :meth:`create_core` (called by :meth:`start` once the sockets
    are bound, so a user agent can learn its addresses) and delivers events in
    :meth:`event_received`.
    """

    def __init__(
        self, config: EndpointConfig | None = None, *, udp_receive_buffer: int | None = 4 << 20
    ) -> None:
        self.config = config or EndpointConfig()
        self.udp_receive_buffer = udp_receive_buffer
        """SO_RCVBUF for the UDP socket (the kernel caps it at net.core.rmem_max): a burst that
        arrives while the loop is busy waits in the kernel instead of being dropped."""
        self.counters = TransportCounters()
        self.addresses: dict[str, tuple[str, int]] = {}
        """Bound (host, port) per transport name, after ``start``."""
        self._core: CoreT | None = None
        self._udp: UdpTransport | None = None
        self._streams: dict[str, StreamTransport] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._transmitting = False
        self._transmit_scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # -------------------------------------------------------------- for a face

    def create_core(self, local: dict[str, tuple[str, int]]) -> CoreT:
        """The sans-I/O core, given our advertised (host, port) per transport."""
        raise NotImplementedError

    def event_received(self, event: Any) -> None:
        """One event drained from the core."""

    @property
    def core(self) -> CoreT:
        if self._core is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        return self._core

    def now(self) -> float:
        """The clock the core runs on (``loop.time()``): pass it to every core call."""
        return self._running_loop().time()

    def run_handler(self, handler: Callable[..., Awaitable[None] | None], *args: Any) -> None:
        """Call an application handler; a coroutine it returns runs as a task."""
        try:
            result = handler(*args)
        except Exception:
            log.exception("SIP event handler failed on %s", type(args[-1]).__name__)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

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
            sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
            if sock is not None and self.udp_receive_buffer:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.udp_receive_buffer)
                except OSError as error:
                    log.warning("cannot set the UDP receive buffer: %s", error)
        for name, port in (("TCP", cfg.tcp_port), ("TLS", cfg.tls_port)):
            if port is None:
                continue
            stream = StreamTransport(name, cfg, self.counters, self._receive, self._transport_error)
            self.addresses[name] = await stream.listen(cfg.host, port)
            self._streams[name] = stream
        if not self.addresses:
            raise ValueError("no transport enabled")
        advertised = cfg.advertised_host
        local = {name: (advertised or host, port) for name, (host, port) in self.addresses.items()}
        self._core = self.create_core(local)

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

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -------------------------------------------------------------- addresses

    def sent_by(self, transport: str = "UDP") -> str:
        host, port = self.addresses[transport]
        return f"{format_host(self.config.advertised_host or host)}:{port}"

    def via(self, transport: str = "UDP", branch: str | None = None) -> str:
        """Our Via value for a request over ``transport`` (new branch unless given)."""
        host, port = self.addresses[transport]
        return via_for_request(transport, self.config.advertised_host or host, port, branch)

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

    # -------------------------------------------------------------- the adapter loop

    def transmit(self) -> None:
        """Send what the core produced, deliver its events, re-arm the timer."""
        self._transmit_scheduled = False
        core = self._core
        if core is None or self._transmitting:
            return  # a handler acting inside the loop below: the loop picks its output up
        self._transmitting = True
        try:
            while True:
                out = core.datagrams_to_send()
                for data, peer in out:
                    self._send(data, peer)
                event = core.next_event()
                if event is None and not out:
                    break
                while event is not None:
                    self.event_received(event)
                    event = core.next_event()
        finally:
            self._transmitting = False
        self._arm_timer()

    def schedule_transmit(self) -> None:
        """``transmit`` soon (the core's ``wakeup`` hook: an action outside of an event)."""
        if self._transmitting or self._transmit_scheduled or self._loop is None:
            return
        self._transmit_scheduled = True
        self._loop.call_soon(self.transmit)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        return self._loop

    def _receive(self, data: bytes, peer: Peer) -> None:
        core = self._core
        if core is None:
            return
        try:
            core.receive_data(data, peer, self._running_loop().time())
        except Exception:
            # The cores raise nothing for bad input; this is a bug. Count it, keep serving.
            self.counters.internal_errors += 1
            log.exception("SIP input from %s failed", peer)
        self.transmit()

    def _transport_error(self, peer: Peer) -> None:
        core = self._core
        if core is None:
            return
        core.transport_error(peer, self._running_loop().time())
        self.transmit()

    def _send(self, data: bytes, peer: Peer) -> None:
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

    def _arm_timer(self) -> None:
        when = self.core.get_timer()
        if when == self._timer_when and self._timer is not None:
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
        self.core.handle_timer(max(self._running_loop().time(), when))
        self.transmit()

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP event handler task failed", exc_info=task.exception())


EventHandler = Callable[["TransactionEndpoint", Event], Awaitable[None] | None]


class TransactionEndpoint(SipEndpoint[TransactionLayer]):
    """The transaction layer as the core: for a transaction user of its own (tests, a
    registration client, a phone that answers at the transaction level).

    Events of client transactions started here resolve their :class:`ClientRequest`; every
    other event (``RequestReceived``, ``AckReceived``, ``CancelReceived``, ``StrayResponse``,
    server-side ``TransactionTimeout``/``TransportError``/``TransactionTerminated``) goes to
    ``on_event(endpoint, event)``.
    """

    def __init__(
        self,
        config: EndpointConfig | None = None,
        *,
        on_event: EventHandler | None = None,
        udp_receive_buffer: int | None = 4 << 20,
    ) -> None:
        super().__init__(config, udp_receive_buffer=udp_receive_buffer)
        self.on_event = on_event
        self._pending: dict[ClientTransaction, ClientRequest] = {}

    def create_core(self, local: dict[str, tuple[str, int]]) -> TransactionLayer:
        cfg = self.config
        return TransactionLayer(
            timers=cfg.timers,
            max_transactions=cfg.max_transactions,
            max_message=cfg.max_message,
            max_headers=cfg.max_headers,
        )

    @property
    def layer(self) -> TransactionLayer:
        return self.core

    async def close(self) -> None:
        await super().close()
        for pending in self._pending.values():
            if not pending.final.done():
                pending.final.cancel()
        self._pending.clear()

    # -------------------------------------------------------------- TU API

    def send_request(
        self,
        request: SipRequest,
        peer: Peer,
        *,
        on_response: Callable[[SipResponse], None] | None = None,
    ) -> ClientRequest:
        """Start a client transaction (our Via and Max-Forwards added when missing)."""
        if not request.headers.get("Via"):
            request.headers.prepend("Via", self.via(peer.transport))
        if not request.headers.get("Max-Forwards"):
            request.headers.add("Max-Forwards", "70")
        tx = self.core.send_request(request, peer, self.now())
        pending = ClientRequest(tx, self._running_loop().create_future(), on_response)
        self._pending[tx] = pending
        self.transmit()
        return pending

    def send_response(self, transaction: ServerTransaction, response: SipResponse) -> None:
        """Answer a request through its server transaction (raises
        ``TransactionStateError`` if the transaction cannot take it)."""
        self.core.send_response(transaction, response, self.now())
        self.transmit()

    def send_stateless(self, message: SipRequest | SipResponse, peer: Peer) -> None:
        """Outside transactions: the ACK for a 2xx, 2xx retransmissions after the
        transaction ended."""
        self.core.send_stateless(message, peer)
        self.transmit()

    def cancel(self, request: ClientRequest) -> ClientRequest | None:
        """CANCEL an INVITE in flight (§9.1); the INVITE then normally ends with 487."""
        tx = self.core.cancel(request.transaction, self.now())
        result = None
        if tx is not None:
            result = ClientRequest(tx, self._running_loop().create_future())
            self._pending[tx] = result
        self.transmit()
        return result

    def event_received(self, event: Event) -> None:
        if isinstance(
            event, ResponseReceived | TransactionTimeout | TransportError | TransactionTerminated
        ):
            tx = event.transaction
            pending = self._pending.get(tx) if isinstance(tx, ClientTransaction) else None
            if pending is not None:
                self._resolve(pending, event)
                return
        if self.on_event is not None:
            self.run_handler(self.on_event, self, event)

    def _resolve(self, pending: ClientRequest, event: Event) -> None:
        if isinstance(event, ResponseReceived):
            pending.response_received(event.response)
        elif isinstance(event, TransactionTimeout):
            pending.failed(SipTimeoutError(f"timer {event.timer}"))
        elif isinstance(event, TransportError):
            pending.failed(SipTransportError(f"cannot reach {event.peer}"))
        elif isinstance(event, TransactionTerminated):
            del self._pending[pending.transaction]
            pending.failed(SipTimeoutError("transaction ended without response"))
