"""A small UAS on the SIP core, for the conformance suite and the benchmark.

It answers every INVITE: optionally ``180 Ringing``, then after ``ring_delay`` seconds ``200 OK``
with an SDP answer (``sipum_protocol.sip.sdp.negotiate``; 488 when no codec is in common; our offer from
``make_offer`` when the INVITE has none). ACK, BYE, CANCEL, re-INVITE, UPDATE and OPTIONS are
handled by the user agent core. No media is sent.

Run as a script::

    python -m sipum_testing.sip_uas --udp-port 5060 --tcp-port 5060 --ring-delay 0

It prints one ``listening <TRANSPORT> <host>:<port>`` line per transport, then serves until
SIGINT/SIGTERM (or ``--duration``) and prints its counters as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import signal
import sys
from dataclasses import dataclass, field

from sipum_protocol.sip.sdp import NoCommonCodec, SdpParseError, make_offer, negotiate, parse_sdp
from sipum_protocol.sip.transaction import TimerConfig
from sipum_protocol.sip.transport.config import EndpointConfig
from sipum_protocol.sip.ua import (
    Call,
    CallCancelled,
    CallConfirmed,
    CallEnded,
    IncomingCall,
    SessionModified,
    UserAgentEvent,
)
from sipum_protocol.sip.ua.aio import UserAgentEndpoint


@dataclass
class TestUasStats:
    incoming: int = 0
    answered: int = 0
    confirmed: int = 0
    cancelled: int = 0
    rejected_488: int = 0
    session_modified: int = 0
    ended: collections.Counter[str] = field(default_factory=collections.Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "incoming": self.incoming,
            "answered": self.answered,
            "confirmed": self.confirmed,
            "cancelled": self.cancelled,
            "rejected_488": self.rejected_488,
            "session_modified": self.session_modified,
            "ended": dict(self.ended),
        }


class TestUas:
    """The answering application; ``endpoint`` is its ``UserAgentEndpoint``."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        config: EndpointConfig,
        *,
        ring_delay: float = 0.0,
        send_ringing: bool = True,
        codecs: tuple[str, ...] = ("PCMU", "PCMA", "telephone-event"),
        media_port: int = 40000,
        static_answer: bytes | None = None,
    ) -> None:
        self.ring_delay = ring_delay
        self.static_answer = static_answer
        """Answer every offer with these bytes instead of negotiating (benchmark: the same
        application work as the reference UAS, which answers with a constant SDP)."""
        self.send_ringing = send_ringing
        self.codecs = codecs
        self.media_port = media_port
        self.stats = TestUasStats()
        self.endpoint = UserAgentEndpoint(config, on_event=self.on_event, user="uas")
        self._timers: dict[int, asyncio.TimerHandle] = {}

    async def start(self) -> None:
        await self.endpoint.start()

    async def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        await self.endpoint.close()

    async def __aenter__(self) -> TestUas:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def on_event(self, event: UserAgentEvent) -> None:
        stats = self.stats
        if isinstance(event, IncomingCall):
            stats.incoming += 1
            call = event.call
            if self.send_ringing:
                call.ring(self.endpoint.now())
            if self.ring_delay > 0:
                loop = asyncio.get_running_loop()
                self._timers[id(call)] = loop.call_later(self.ring_delay, self._answer, call)
            else:
                self._answer(call)
        elif isinstance(event, CallConfirmed):
            stats.confirmed += 1
        elif isinstance(event, CallCancelled):
            stats.cancelled += 1
        elif isinstance(event, SessionModified):
            stats.session_modified += 1
        elif isinstance(event, CallEnded):
            stats.ended[event.reason] += 1
            handle = self._timers.pop(id(event.call), None)
            if handle is not None:
                handle.cancel()

    def _answer(self, call: Call) -> None:
        self._timers.pop(id(call), None)
        if call.ended:
            return
        if self.static_answer is not None and call.remote_sdp is not None:
            self.stats.answered += 1
            call.answer(self.static_answer, self.endpoint.now())
            return
        address = self.endpoint.addresses.get(call.peer.transport, ("127.0.0.1", 0))[0]
        try:
            if call.remote_sdp is None:
                sdp = make_offer(self.codecs, address=address, port=self.media_port)
            else:
                sdp = negotiate(
                    parse_sdp(call.remote_sdp), self.codecs, address=address, port=self.media_port
                )
        except (NoCommonCodec, SdpParseError):
            self.stats.rejected_488 += 1
            call.reject(488, self.endpoint.now())
            return
        self.stats.answered += 1
        call.answer(bytes(sdp), self.endpoint.now())


async def _serve(args: argparse.Namespace) -> TestUas:
    config = EndpointConfig(
        host=args.host,
        udp_port=args.udp_port,
        tcp_port=args.tcp_port,
        timers=TimerConfig(t1=args.t1, t2=max(args.t1, 4.0)),
    )
    static = None
    if args.static_answer:
        static = (
            f"v=0\r\no=uas 1 1 IN IP4 {args.host}\r\ns=-\r\nc=IN IP4 {args.host}\r\nt=0 0\r\n"
            "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        ).encode()
    uas = TestUas(
        config,
        ring_delay=args.ring_delay,
        send_ringing=not args.no_ringing,
        static_answer=static,
    )
    await uas.start()
    for name, (host, port) in uas.endpoint.addresses.items():
        print(f"listening {name} {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.duration)
    except TimeoutError:
        pass
    await uas.close()
    return uas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="sipum test UAS")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--udp-port", type=int, default=0)
    parser.add_argument("--tcp-port", type=int, default=None)
    parser.add_argument("--ring-delay", type=float, default=0.0)
    parser.add_argument("--no-ringing", action="store_true", help="answer without 180")
    parser.add_argument("--t1", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=None, help="stop after seconds")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument(
        "--static-answer",
        action="store_true",
        help="answer every offer with one constant PCMU SDP (no negotiation)",
    )
    parser.add_argument(
        "--gc",
        choices=["default", "no-full"],
        default="default",
        help="no-full: never run automatic full (generation 2) collections",
    )
    args = parser.parse_args(argv)
    if args.gc == "no-full":
        # Every transaction lives 64*T1 (32 s) after its final response (timers J and L), so
        # at a few hundred calls/s several 100,000 objects are alive and each automatic full
        # collection stops the loop for 100+ ms — the whole p99. The stack makes no reference
        # cycles on the call path (the tests check), so reference counting frees it all.
        gc.freeze()
        gc.set_threshold(700, 10, 10**9)
    if args.uvloop:
        import uvloop

        uas = uvloop.run(_serve(args))
    else:
        uas = asyncio.run(_serve(args))
    print(json.dumps(uas.stats.as_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
