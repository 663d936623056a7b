"""SIP message parse + serialise throughput on one core.

    uv run python bench/sip_parse.py [--seconds 3] [--rounds 10]
    uv run --with sipmessage==0.7.1 python bench/sip_parse.py   # adds the sipmessage reference

For each message (an INVITE with SDP, a 200 OK to it, a REGISTER with Authorization) it times,
in the same process and run:

* ``parse``           — ``parse_message(bytes)`` (checks Via, From, To, Call-ID, CSeq,
                        Content-Length, Max-Forwards and the Request-URI)
* ``parse+fields``    — parse, then read Call-ID, CSeq, top Via, From and To: what the
                        transaction and dialog layers touch for every message
* ``parse+serialise`` — parse, then ``bytes(message)``
* ``sipmessage ...``  — the same three with ``sipmessage.Message`` when it is importable

Rates are calls per second of this process's CPU time (best of interleaved rounds), so other
jobs on a shared machine disturb them less; compare ratios from one run.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from sipum_protocol.sip.message import parse_message

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 9 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:1001@voicemail.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK-524287-1---5f4a2c1b;rport\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5062;received=192.0.2.10;branch=z9hG4bK776asdhds\r\n"
    b"Record-Route: <sip:192.0.2.20;lr>\r\n"
    b"Max-Forwards: 69\r\n"
    b"Contact: <sip:alice@192.0.2.10:5062;transport=udp>\r\n"
    b"To: <sip:1001@voicemail.example.com>\r\n"
    b'From: "Alice Example" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\n"
    b"Supported: replaces, timer\r\n"
    b"User-Agent: ExamplePhone/1.0\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)

OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK-524287-1---5f4a2c1b;rport=5060\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5062;received=192.0.2.10;branch=z9hG4bK776asdhds\r\n"
    b"Record-Route: <sip:192.0.2.20;lr>\r\n"
    b'From: "Alice Example" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
    b"To: <sip:1001@voicemail.example.com>;tag=8321234356\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:vm@192.0.2.30:5060>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)

REGISTER = (
    b"REGISTER sip:registrar.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.30:5060;branch=z9hG4bKnashds7;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:vm1001@registrar.example.com>\r\n"
    b"From: <sip:vm1001@registrar.example.com>;tag=a73kszlfl\r\n"
    b"Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.30\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Contact: <sip:vm1001@192.0.2.30:5060>;expires=3600\r\n"
    b'Authorization: Digest username="vm1001", realm="registrar.example.com", '
    b'nonce="ea9c8e88df84f1cec4341ae6cbe5a359", uri="sip:registrar.example.com", '
    b'response="dfe56131d1958046689d83306477ecc", algorithm=MD5, cnonce="0a4f113b", '
    b"qop=auth, nc=00000001\r\n"
    b"Content-Length: 0\r\n\r\n"
)

MESSAGES = {"INVITE+SDP": INVITE, "200 OK+SDP": OK, "REGISTER": REGISTER}


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of CPU time of fn, over about `seconds` of CPU time.

    CPU time of this process (not wall time) so that other jobs on a shared machine, which take
    the CPU away from us, do not count against either contender.
    """
    n = 0
    batch = 100
    clock = time.process_time
    start = clock()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn()
        n += batch
        now = clock()
        if now >= deadline:
            return n / (now - start)


def best_rates(
    fns: dict[str, Callable[[], object]], seconds: float, rounds: int
) -> dict[str, float]:
    """Best of `rounds` short runs of each fn, interleaved so load from other processes on a
    shared machine hits every contender alike."""
    best = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = max(best[name], rate(fn, seconds / rounds))
    return best


def touch_fields(data: bytes) -> None:
    msg = parse_message(data)
    msg.call_id  # noqa: B018 - the access is what is measured
    msg.cseq  # noqa: B018
    msg.top_via.branch  # noqa: B018
    msg.from_.tag  # noqa: B018
    msg.to.tag  # noqa: B018


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds (best is kept)")
    args = ap.parse_args()

    try:
        import sipmessage  # type: ignore[import-not-found]

        parse_ref = sipmessage.Message.parse
    except ImportError:
        sipmessage = None

    print(
        f"python {platform.python_version()} on {platform.machine()}, one thread, CPU time, "
        f"best of {args.rounds} interleaved rounds, {args.seconds:.1f} s per column"
    )
    cols = ["parse", "parse+fields", "parse+serialise"]
    if sipmessage is not None:
        cols += ["sipmessage parse", "sipmessage +fields", "sipmessage +serialise"]
    print(f"{'message':<12}" + "".join(f"{c:>22}" for c in cols))
    for name, data in MESSAGES.items():
        bytes(parse_message(data))  # warm up, and prove it parses
        fns: dict[str, Callable[[], object]] = {
            "parse": lambda d=data: parse_message(d),
            "parse+fields": lambda d=data: touch_fields(d),
            "parse+serialise": lambda d=data: bytes(parse_message(d)),
        }
        if sipmessage is not None:

            def ref_fields(d: bytes = data, parse_ref: Callable[[bytes], Any] = parse_ref) -> None:
                m = parse_ref(d)
                m.call_id  # noqa: B018
                m.cseq  # noqa: B018
                m.via[0].parameters  # noqa: B018
                m.from_address.parameters  # noqa: B018
                m.to_address.parameters  # noqa: B018

            fns["sipmessage parse"] = lambda d=data: parse_ref(d)  # noqa: B023 - same every loop
            fns["sipmessage +fields"] = ref_fields
            fns["sipmessage +serialise"] = lambda d=data: bytes(parse_ref(d))  # noqa: B023
            for fn in list(fns.values())[3:]:
                fn()  # fail early if the reference API differs
        r = best_rates(fns, args.seconds * len(fns), args.rounds)
        print(f"{name:<12}" + "".join(f"{r[c]:>22,.0f}" for c in cols))
        if sipmessage is not None:
            print(
                f"{'  ratio':<12}"
                + f"{r['parse'] / r['sipmessage parse']:>22.2f}"
                + f"{r['parse+fields'] / r['sipmessage +fields']:>22.2f}"
                + f"{r['parse+serialise'] / r['sipmessage +serialise']:>22.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
