"""``UserAgentEndpoint``: a ``UserAgent`` as the core of the one asyncio adapter
(``sipum_protocol.sip.transport.endpoint.SipEndpoint``).

Usage::

    def on_event(event: UserAgentEvent) -> None:
        if isinstance(event, IncomingCall):
            now = endpoint.now()
            event.call.ring(now)
            event.call.answer(answer_sdp, now)

    async with UserAgentEndpoint(EndpointConfig(udp_port=0), on_event=on_event) as endpoint:
        ...

The handler is called on the loop for every event (a coroutine it returns runs as a task).
The call methods it uses (``ring``, ``answer``, ``reject``, ``hangup``) take ``now``: pass
``endpoint.now()`` read when acting — after an ``await`` too, so the retransmissions of what
is sent start from the real time. Called outside an event, they wake the adapter through the
user agent's ``wakeup`` hook, which schedules a ``transmit``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from sipum_protocol.sip.message import SipRequest, SipResponse
from sipum_protocol.sip.transaction import Peer, ServerTransaction, TransactionLayer
from sipum_protocol.sip.transport.config import EndpointConfig
from sipum_protocol.sip.transport.endpoint import (
    ClientRequest,
    SipEndpoint,
    SipTimeoutError,
    SipTransportError,
)
from sipum_protocol.sip.ua.call import Call
from sipum_protocol.sip.ua.core import UserAgent
from sipum_protocol.sip.ua.events import UserAgentEvent
from sipum_protocol.sip.ua.session_timer import SessionTimerConfig

EventHandler = Callable[[UserAgentEvent], Awaitable[None] | None]


class UserAgentEndpoint(SipEndpoint[UserAgent]):
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
        session_timers: SessionTimerConfig | None = None,
        max_call_duration: float | None = None,
    ) -> None:
        super().__init__(config, udp_receive_buffer=udp_receive_buffer)
        self.session_timers = session_timers
        self.max_call_duration = max_call_duration
        self.on_event = on_event
        self.user = user
        self.supported = tuple(supported)
        self.request_methods = tuple(request_methods)
        """Methods the application answers itself (``IncomingRequest``, e.g. SUBSCRIBE)."""

    def create_core(self, local: dict[str, tuple[str, int]]) -> UserAgent:
        cfg = self.config
        layer = TransactionLayer(
            timers=cfg.timers,
            max_transactions=cfg.max_transactions,
            max_message=cfg.max_message,
            max_headers=cfg.max_headers,
        )
        ua = UserAgent(
            local=local,
            user=self.user,
            layer=layer,
            supported=self.supported,
            request_methods=self.request_methods,
            session_timers=self.session_timers,
            max_call_duration=self.max_call_duration,
        )
        ua.wakeup = self.schedule_transmit
        return ua

    @property
    def ua(self) -> UserAgent:
        return self.core

    def event_received(self, event: UserAgentEvent) -> None:
        if self.on_event is not None:
            self.run_handler(self.on_event, event)

    # -------------------------------------------------------------- application API

    def invite(self, target: str, peer: Peer, *, sdp: bytes | None = None) -> Call:
        """Place an outgoing call (events arrive through ``on_event``)."""
        call = self.core.invite(target, peer=peer, sdp=sdp, now=self.now())
        self.transmit()
        return call

    def send_request(self, request: SipRequest, peer: Peer) -> ClientRequest:
        """A request outside any call (e.g. REGISTER: this endpoint is a ``RequestSender``
        for ``sipum_protocol.sip.registration.RegistrationClient``, so registrations and calls
        share one socket). ``await`` the result (or its ``final``) for the final response;
        raises ``SipTimeoutError`` / ``SipTransportError``."""
        future = self._running_loop().create_future()
        pending: ClientRequest | None = None

        def on_response(response: SipResponse) -> None:
            assert pending is not None
            pending.response_received(response)

        def on_failure(reason: str) -> None:
            assert pending is not None
            if reason == "transport-error":
                pending.failed(SipTransportError(reason))
            else:
                pending.failed(SipTimeoutError(reason))

        tx = self.core.send_request(
            request, peer, self.now(), on_response=on_response, on_failure=on_failure
        )
        pending = ClientRequest(tx, future)
        self.transmit()
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
        response = self.core.respond(
            tx,
            request,
            status,
            self.now(),
            to_tag=to_tag,
            headers=headers,
            body=body,
            reason=reason,
        )
        self.transmit()
        return response
