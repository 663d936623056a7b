"""Fuzz the SIP message parser with random and mutated messages.

    uv run python bench/fuzz_sip_parser.py [-n 100000] [--seed 1]

Every input goes through ``parse_message`` and, in random chunks, a ``StreamFramer``. An
accepted message is then exercised the way the stack uses it: every shortcut property, every
header through ``get_all``, Contact/Route values through ``parse_name_addr``, ``make_response``
for requests, and ``bytes()`` followed by a second parse that must serialise to the same bytes.

The contract checked: nothing but ``SipParseError`` ever escapes, an answerable error carries a
request that a response can be built from, and accepted messages round-trip. The run is
deterministic for a seed; it prints counts and exits non-zero on the first kind of failure
(after printing up to five examples with tracebacks).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable

from sipum_protocol.sip.message import (
    SipParseError,
    SipRequest,
    StreamFramer,
    make_response,
    parse_message,
    parse_name_addr,
    parse_uri,
)

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
)


def _msg(head: str, body: bytes = b"") -> bytes:
    return head.replace("@LEN@", str(len(body))).encode() + body


SEEDS: list[bytes] = [
    _msg(
        "INVITE sip:1001@vm.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK-1;rport\r\n"
        "Via: SIP/2.0/TCP [2001:db8::1]:5070;received=2001:db8::1;branch=z9hG4bK2\r\n"
        "Record-Route: <sip:192.0.2.20;lr>\r\n"
        "Max-Forwards: 69\r\n"
        "Contact: <sip:alice@192.0.2.10:5062;transport=udp>\r\n"
        "To: <sip:1001@vm.example.com>\r\n"
        'From: "Alice \\"A\\" Example" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
        "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
        "CSeq: 1 INVITE\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
        "Content-Type: application/sdp\r\n"
        "Content-Length: @LEN@\r\n\r\n",
        SDP,
    ),
    _msg(
        "SIP/2.0 200 OK\r\n"
        "v: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK-1;rport=5060, SIP/2.0/UDP h2;branch=z9hG4bKx\r\n"
        "f: <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
        "t: <sip:1001@vm.example.com>;tag=8321234356\r\n"
        "i: 3848276298220188511@atlanta.example.com\r\n"
        "CSeq: 1 INVITE\r\n"
        "m: <sip:vm@192.0.2.30:5060>\r\n"
        "c: application/sdp\r\n"
        "l: @LEN@\r\n\r\n",
        SDP,
    ),
    _msg(
        "REGISTER sip:registrar.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.30:5060;branch=z9hG4bKnashds7;rport\r\n"
        "Max-Forwards: 70\r\n"
        "To: sip:vm1001@registrar.example.com\r\n"
        "From: <sip:vm1001@registrar.example.com>;tag=a73kszlfl\r\n"
        "Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.30\r\n"
        "CSeq: 2 REGISTER\r\n"
        "Contact: <sip:vm1001@192.0.2.30:5060>;expires=3600, *\r\n"
        'Authorization: Digest username="vm1001", realm="r", nonce="ea9c", uri="sip:r",'
        ' response="dfe5", algorithm=MD5, cnonce="0a4f113b", qop=auth, nc=00000001\r\n'
        "Content-Length: 0\r\n\r\n"
    ),
    _msg(
        "OPTIONS sip:%75ser;x=%41@[2001:db8::10]:5070;transport=tcp?subject=a%20b SIP/2.0\r\n"
        "TO :\r\n sip:user@example.com ;   tag    = 7y3kd93\r\n"
        'from   : "J \\\\ R"  <sip:jr@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n'
        "MaX-fOrWaRdS: 0068\r\n"
        "i: torture.1@192.0.2.1\r\n"
        "cseq: 0009\r\n  OPTIONS\r\n"
        "Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=z9hG4bKt\r\n"
        "s :\r\n"
        "X-Unusual: ;;,,;;,;\r\n"
        "Route: <sip:p.example.com;lr>, <sip:q.example.com;lr>\r\n"
        "Content-Length: 0\r\n\r\n"
    ),
    _msg(
        "ACK sip:1001@vm.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.20;branch=z9hG4bK-3\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:1001@vm.example.com>;tag=x\r\n"
        "From: <sip:a@b>;tag=y\r\n"
        "Call-ID: c\r\n"
        "CSeq: 1 ACK\r\n"
        "Content-Length: 0\r\n\r\n"
    ),
    _msg(
        "SIP/2.0 401 Unauthorized\r\n"
        "Via: SIP/2.0/UDP 192.0.2.30:5060;branch=z9hG4bKnashds7;received=192.0.2.30;rport=5060\r\n"
        "From: <sip:vm1001@registrar.example.com>;tag=a73kszlfl\r\n"
        "To: <sip:vm1001@registrar.example.com>;tag=1410948204\r\n"
        "Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.30\r\n"
        "CSeq: 1 REGISTER\r\n"
        'WWW-Authenticate: Digest realm="r", nonce="ea9c", qop="auth,auth-int", algorithm=SHA-256\r\n'
        "Content-Length: 0\r\n\r\n"
    ),
]

INTERESTING = [
    b"\x00",
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b'"',
    b"\\",
    b"%",
    b"%0",
    b"%zz",
    b"[",
    b"]",
    b"@",
    b"=",
    b"/",
    b"?",
    b"&",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xa8",
    b"SIP/2.0",
    b"sip:",
    b"sips:",
    b"tel:",
    b"z9hG4bK",
    b"Content-Length: 99999999999",
    b"Content-Length: -1",
    b"l: 5",
    b"\r\n ",
    b"99999",
]

HEADER_NAMES = [
    "Via",
    "v",
    "From",
    "f",
    "To",
    "t",
    "Call-ID",
    "i",
    "CSeq",
    "Contact",
    "m",
    "Route",
    "Record-Route",
    "Content-Length",
    "l",
    "Max-Forwards",
    "X-Junk",
    "Content-Type",
    "Expires",
]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")


def mutate(rng: random.Random, data: bytes) -> bytes:
    """Apply 1-4 random mutations."""
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(11)
        n = len(data)
        if kind == 0 and n:  # byte flip
            i = rng.randrange(n)
            data = data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]
        elif kind == 1 and n:  # bit flip
            i = rng.randrange(n)
            data = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
        elif kind == 2:  # insert an interesting token
            i = rng.randint(0, n)
            data = data[:i] + rng.choice(INTERESTING) + data[i:]
        elif kind == 3 and n:  # delete a range
            i = rng.randrange(n)
            data = data[:i] + data[i + rng.randint(1, 40) :]
        elif kind == 4 and n:  # truncate
            data = data[: rng.randrange(n)]
        elif kind == 5:  # duplicate a header line
            lines = _lines(data)
            if len(lines) > 2:
                i = rng.randrange(1, len(lines))
                lines.insert(rng.randrange(1, len(lines)), lines[i])
                data = b"\r\n".join(lines)
        elif kind == 6:  # swap two lines
            lines = _lines(data)
            if len(lines) > 2:
                i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
                data = b"\r\n".join(lines)
        elif kind == 7:  # a huge value
            i = rng.randint(0, n)
            blob = rng.choice([b"a", b",", b";x", b"<", b'"', b" ", b"%41", b"\r\n "])
            data = data[:i] + blob * rng.choice([100, 1000, 10000, 70000]) + data[i:]
        elif kind == 8:  # a random header with a random value
            lines = _lines(data)
            name = rng.choice(HEADER_NAMES).encode()
            value = bytes(rng.choices(b'abc:;,<>"@ =%[]/\\\t.0123456789', k=rng.randint(0, 30)))
            lines.insert(rng.randint(1, max(1, len(lines) - 2)), name + b":" + value)
            data = b"\r\n".join(lines)
        elif kind == 9:  # splice with another seed
            other = rng.choice(SEEDS)
            data = data[: rng.randint(0, n)] + other[rng.randint(0, len(other)) :]
        else:  # change case of a stretch
            if n:
                i = rng.randrange(n)
                j = min(n, i + rng.randint(1, 20))
                chunk = data[i:j]
                data = (
                    data[:i] + (chunk.upper() if rng.random() < 0.5 else chunk.lower()) + data[j:]
                )
    return data


def random_message(rng: random.Random) -> bytes:
    """Structured random input: a start line and header lines from a small vocabulary."""
    parts = []
    if rng.random() < 0.5:
        parts.append(
            rng.choice([b"INVITE", b"BYE", b"REGISTER", b"X", b""])
            + b" "
            + rng.choice([b"sip:a@b", b"sips:[::1]:5", b"tel:+1", b"x"])
            + b" SIP/2.0"
        )
    else:
        parts.append(
            b"SIP/2.0 "
            + str(rng.randint(0, 999)).encode()
            + b" "
            + rng.choice([b"OK", b"", b"\xff"])
        )
    for _ in range(rng.randint(0, 12)):
        name = rng.choice(HEADER_NAMES).encode()
        value = bytes(
            rng.choices(
                b'abcSIP/2.0UDP:;,<>"@ =%[]sip:tag=branch=z9hG4bK0123456789', k=rng.randint(0, 40)
            )
        )
        parts.append(name + b": " + value)
    data = b"\r\n".join(parts) + b"\r\n\r\n"
    if rng.random() < 0.3:
        data += rng.randbytes(rng.randint(0, 50))
    if rng.random() < 0.2:
        data = rng.randbytes(rng.randint(0, 300))
    return data


def exercise(data: bytes, rng: random.Random) -> str:
    """Run one input through everything; returns the outcome name. Raises on contract breaks."""
    try:
        msg = parse_message(data)
    except SipParseError as err:
        if err.request is not None:
            resp = make_response(err.request, err.status, err.reason)
            bytes(resp)
            return "rejected-answerable"
        return "rejected-dropped"
    # accepted: use it the way the stack does
    msg.call_id  # noqa: B018
    msg.cseq  # noqa: B018
    msg.top_via  # noqa: B018
    msg.from_  # noqa: B018
    msg.to  # noqa: B018
    for name, _ in msg.headers.items():
        msg.headers.get_all(name)
    for optional in (
        lambda: msg.vias,
        lambda: [parse_name_addr(v) for v in msg.headers.get_all("Contact") if v != "*"],
        lambda: [parse_name_addr(v) for v in msg.headers.get_all("Route")],
    ):
        try:
            optional()
        except SipParseError:
            pass
    if isinstance(msg, SipRequest):
        parse_uri(msg.uri)  # the parser checked the Request-URI
        resp = make_response(msg, 200, to_tag="fuzz")
        resp_bytes = bytes(resp)
        if bytes(parse_message(resp_bytes)) != resp_bytes:
            raise AssertionError("make_response output does not round-trip")
    # serialising is idempotent: parse(bytes(m)) serialises to the same bytes
    out = bytes(msg)
    if bytes(parse_message(out)) != out:
        raise AssertionError("accepted message does not round-trip")
    return "accepted"


def exercise_stream(data: bytes, rng: random.Random) -> None:
    framer = StreamFramer()
    pos = 0
    try:
        while pos < len(data):
            step = rng.randint(1, 600)
            for framed in framer.feed(data[pos : pos + step]):
                if framed != StreamFramer.PING:
                    try:
                        parse_message(framed)
                    except SipParseError:
                        pass
            pos += step
    except SipParseError:
        pass


def run(
    n: int, seed: int, progress: Callable[[str], None] | None = None
) -> tuple[Counter[str], list[str]]:
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for i in range(n):
        r = rng.random()
        if r < 0.05:
            data = rng.choice(SEEDS)
        elif r < 0.75:
            data = mutate(rng, rng.choice(SEEDS))
        else:
            data = random_message(rng)
        try:
            counts[exercise(data, rng)] += 1
            if i % 4 == 0:
                exercise_stream(data, rng)
        except Exception:
            counts["FAILED"] += 1
            if len(failures) < 5:
                failures.append(f"input #{i}: {data[:300]!r}\n{traceback.format_exc()}")
        if progress is not None and i and i % 20000 == 0:
            progress(f"{i} inputs, {dict(counts)}")
    return counts, failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000, help="number of inputs")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    progress = None if args.quiet else (lambda s: print(s, file=sys.stderr))
    counts, failures = run(args.n, args.seed, progress)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    total = sum(counts.values())
    print(
        f"fuzzed {total} inputs (seed {args.seed}) in {elapsed:.1f} s ({cpu:.1f} s CPU): "
        + ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    )
    for f in failures:
        print(f, file=sys.stderr)
    return 1 if counts["FAILED"] or total != args.n else 0


if __name__ == "__main__":
    sys.exit(main())
