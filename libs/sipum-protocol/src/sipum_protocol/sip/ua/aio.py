"""``UserAgentEndpoint``: a ``UserAgent`` on asyncio sockets (the transports of
``sipum_protocol.sip.transport``), clocked by ``loop.time()``.

Usage::

    def on_event(event: UserAgentEvent) -> None:
        if isinstance(event, IncomingCall):
            event.call.ring()
            event.call.answer(answer_sdp)

    async with UserAgentEndpoint(EndpointConfig(udp_port=0), on_event=on_event) as endpoint:
        ...

The handler is a plain function called on the loop for every event; the call methods it uses
(``ring``, ``answer``, ``reject``, ``hangup``) may also be called later from any coroutine on
the same loop: the user agent's ``wakeup`` hook schedules a flush. After each input the
adapter sends what the user agent produced, hands out its events and re-arms one
``loop.call_at`` timer at ``UserAgent.get_timer()`` — the aioquic pattern.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Generator, Iterable
from typing import Any

from sipum_protocol.sip.message import SipRequest, SipResponse
from sipum_protocol.sip.transaction import Peer, ServerTransaction, TransactionLayer
from sipum_protocol.sip.transport.config import EndpointConfig, TransportCounters
from sipum_protocol.sip.transport.endpoint import SipTimeoutError, SipTransportError
from sipum_protocol.sip.transport.stream import StreamTransport
from sipum_protocol.sip.transport.udp import UdpTransport
from sipum_protocol.sip.ua.call import Call
from sipum_protocol.sip.ua.core import UserAgent
from sipum_protocol.sip.ua.events import UserAgentEvent

log = logging.getLogger("sipum.net.sip")

EventHandler = Callable[[UserAgentEvent], None]


class OutgoingRequest:
    """A request in flight from ``UserAgentEndpoint.send_request``."""

    def __init__(self, future: asyncio.Future[SipResponse]) -> None:
        self.final = future
        self.responses: list[SipResponse] = []

    def __await__(self) -> Generator[Any, None, SipResponse]:
        return self.final.__await__()


class UserAgentEndpoint:
    """Transports + transaction layer + user agent on one loop; see the module docstring."""

    def __init__(
        self,
        config: EndpointConfig | None = None,
        *,
        on_event: EventHandler | None = None,
        user: str = "sipum",
        supported: Iterable[str] = (),
        udp_receive_buffer: int | None = 4 << 20,
        request_methods: Iterable[str] = (),
    ) -> None:
        self.config = config or EndpointConfig()
        self.udp_receive_buffer = udp_receive_buffer
        """SO_RCVBUF for the UDP socket (the kernel caps it at net.core.rmem_max): a burst that
        arrives while the loop is busy waits in the kernel instead of being dropped."""
        self.on_event = on_event
        self.user = user
        self.supported = tuple(supported)
        self.request_methods = tuple(request_methods)
        """Methods the application answers itself (``IncomingRequest``, e.g. SUBSCRIBE)."""
        self.counters = TransportCounters()
        self.addresses: dict[str, tuple[str, int]] = {}
        self._ua: UserAgent | None = None
        self._udp: UdpTransport | None = None
        self._streams: dict[str, StreamTransport] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._flush_scheduled = False
        self._flushing = False

    @property
    def ua(self) -> UserAgent:
        if self._ua is None:
            raise RuntimeError("UserAgentEndpoint not started")
        return self._ua

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
        layer = TransactionLayer(
            timers=cfg.timers,
            max_transactions=cfg.max_transactions,
            max_message=cfg.max_message,
            max_headers=cfg.max_headers,
        )
        self._ua = UserAgent(
            local=local,
            user=self.user,
            layer=layer,
            supported=self.supported,
            request_methods=self.request_methods,
        )
        self._ua.wakeup = self._schedule_flush

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for stream in self._streams.values():
            await stream.close()
        if self._udp is not None:
            self._udp.close()

    async def __aenter__(self) -> UserAgentEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -------------------------------------------------------------- application API

    def invite(self, target: str, peer: Peer, *, sdp: bytes | None = None) -> Call:
        """Place an outgoing call (events arrive through ``on_event``)."""
        call = self.ua.invite(target, peer=peer, sdp=sdp, now=self._now())
        self._flush()
        return call

    def send_request(self, request: SipRequest, peer: Peer) -> OutgoingRequest:
        """A request outside any call (e.g. REGISTER: this endpoint is a ``RequestSender``
        for ``sipum_protocol.sip.registration.RegistrationClient``, so registrations and calls share
        one socket). ``await`` the result (or its ``final``) for the final response; raises
        ``SipTimeoutError`` / ``SipTransportError``."""
        assert self._loop is not None
        pending = OutgoingRequest(self._loop.create_future())

        def on_response(response: SipResponse) -> None:
            pending.responses.append(response)
            if response.status >= 200 and not pending.final.done():
                pending.final.set_result(response)

        def on_failure(reason: str) -> None:
            if pending.final.done():
                return
            error: Exception = (
                SipTransportError(reason)
                if reason == "transport-error"
                else SipTimeoutError(reason)
            )
            pending.final.set_exception(error)

        self.ua.send_request(
            request, peer, self._now(), on_response=on_response, on_failure=on_failure
        )
        self._flush()
        return pending

    def respond(
        self,
        tx: ServerTransaction,
        request: SipRequest,
        status: int,
        *,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        reason: str | None = None,
    ) -> SipResponse:
        """Answer an ``IncomingRequest`` (sent at once)."""
        response = self.ua.respond(
            tx,
            request,
            status,
            self._now(),
            to_tag=to_tag,
            headers=headers,
            body=body,
            reason=reason,
        )
        self._flush()
        return response

    # -------------------------------------------------------------- plumbing

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _receive(self, data: bytes, peer: Peer) -> None:
        ua = self._ua
        if ua is None:
            return
        ua.receive_data(data, peer, self._now())
        self._flush()

    def _transport_error(self, peer: Peer) -> None:
        ua = self._ua
        if ua is None:
            return
        ua.layer.transport_error(peer, self._now())
        ua.handle_timer(self._now())  # drains the layer's events into the user agent
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
            assert self._loop is not None
            self._loop.call_soon(self._transport_error, peer)
            return
        stream.send(data, peer)

    def _schedule_flush(self) -> None:
        if self._flushing or self._flush_scheduled or self._loop is None:
            return
        self._flush_scheduled = True
        self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        ua = self._ua
        if ua is None or self._flushing:
            return
        self._flushing = True
        try:
            # Handlers may act on calls (answer, hangup...), which queues more output and
            # events: loop until both are empty.
            while True:
                out = ua.datagrams_to_send()
                for data, peer in out:
                    self._transmit(data, peer)
                events = ua.events()
                if not events and not out:
                    break
                handler = self.on_event
                if handler is None:
                    continue
                for event in events:
                    try:
                        handler(event)
                    except Exception:
                        log.exception("user agent event handler failed on %s", event)
        finally:
            self._flushing = False
        self._arm_timer()

    def _arm_timer(self) -> None:
        when = self.ua.get_timer()
        if when == self._timer_when and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_when = when
        if when is not None:
            assert self._loop is not None
            self._timer = self._loop.call_at(when, self._on_timer, when)

    def _on_timer(self, when: float) -> None:
        self._timer = None
        self._timer_when = None
        # call_at may run a hair early: never fire "before" the deadline.
        self.ua.handle_timer(max(self._now(), when))
        self._flush()
