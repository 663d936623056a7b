"""Property tests: whatever bytes arrive, only SipParseError escapes the parser.

Hypothesis drives random bytes and mutations of valid messages (byte flips, truncations,
header duplication, huge values); the standalone fuzzer (bench/fuzz_sip_parser.py) runs
100,000 deterministic random and mutated inputs as part of this suite.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sipum_protocol.sip.message import (
    SipParseError,
    SipRequest,
    StreamFramer,
    make_response,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_list,
)

VALID = [
    b"INVITE sip:1001@vm.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK-1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:1001@vm.example.com>\r\n"
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.10:5062>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 13\r\n\r\n"
    b"v=0\r\ns=-\r\nt=0 0",
    b"SIP/2.0 180 Ringing\r\n"
    b"v: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK-1, SIP/2.0/TCP h;branch=z9hG4bK2\r\n"
    b"f: <sip:a@b>;tag=1\r\nt: <sip:c@d>;tag=2\r\ni: x@y\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n",
    b"REGISTER sip:r.example.com SIP/2.0\r\n"
    b"Via : SIP / 2.0 / UDP h\r\n ;branch=z9hG4bKz\r\n"
    b"To: sip:%61@r.example.com\r\nFrom: sip:a@r.example.com;tag=1\r\n"
    b"Call-ID: 1\r\nCSeq: 2 REGISTER\r\nContact: *\r\nContent-Length: 0\r\n\r\n",
]


def check(data: bytes) -> None:
    """The parser's contract for any input."""
    try:
        msg = parse_message(data)
    except SipParseError as err:
        assert isinstance(err.reason, str) and err.reason
        if err.request is not None:
            bytes(make_response(err.request, err.status, err.reason))
        return
    msg.call_id  # noqa: B018
    msg.cseq  # noqa: B018
    msg.top_via  # noqa: B018
    msg.from_  # noqa: B018
    msg.to  # noqa: B018
    try:
        msg.vias  # noqa: B018 - a lower Via may be garbage: only SipParseError allowed
    except SipParseError:
        pass
    out = bytes(msg)
    assert bytes(parse_message(out)) == out
    if isinstance(msg, SipRequest):
        bytes(make_response(msg, 200, to_tag="t"))


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    check(data)


@FAST
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
)
def test_byte_flips(base: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(base)
    for pos, value in flips:
        data[pos % len(data)] = value
    check(bytes(data))


@FAST
@given(st.sampled_from(VALID), st.integers(0, 10**6))
def test_truncations(base: bytes, cut: int) -> None:
    check(base[: cut % (len(base) + 1)])


@FAST
@given(st.sampled_from(VALID), st.lists(st.integers(0, 100), min_size=1, max_size=5))
def test_header_duplication(base: bytes, picks: list[int]) -> None:
    lines = base.split(b"\r\n")
    for p in picks:
        i = 1 + p % (len(lines) - 2)
        lines.insert(i, lines[i])
    check(b"\r\n".join(lines))


@FAST
@given(
    st.sampled_from(VALID),
    st.integers(0, 10**6),
    st.sampled_from([b"a", b",", b";p", b"<", b'"', b"%", b"\r\n ", b"[", b"\x00"]),
    st.sampled_from([10, 1000, 30000, 70000]),
)
def test_huge_values(base: bytes, pos: int, blob: bytes, count: int) -> None:
    i = pos % (len(base) + 1)
    check(base[:i] + blob * count + base[i:])


@FAST
@given(
    st.sampled_from(VALID),
    st.integers(0, 10**6),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
)
def test_inserted_text(base: bytes, pos: int, text: str) -> None:
    i = pos % (len(base) + 1)
    check(base[:i] + text.encode("utf-8", "surrogatepass") + base[i:])


@FAST
@given(st.lists(st.binary(max_size=300), max_size=10), st.sampled_from(VALID))
def test_stream_framer_only_raises_sip_parse_error(chunks: list[bytes], base: bytes) -> None:
    framer = StreamFramer(max_message=4000)
    try:
        for chunk in [base[:17], *chunks, base[17:]]:
            for framed in framer.feed(chunk):
                if framed != StreamFramer.PING:
                    check(framed)
    except SipParseError:
        pass


@pytest.mark.timeout(240)
def test_standalone_fuzzer_100k_inputs() -> None:
    # ~15 s of CPU on one core; the generous timeouts are for a machine shared with other jobs
    script = Path(__file__).resolve().parents[4] / "bench" / "fuzz_sip_parser.py"
    result = subprocess.run(
        [sys.executable, str(script), "-n", "100000", "--seed", "1", "--quiet"],
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "fuzzed 100000 inputs" in result.stdout
    assert "FAILED" not in result.stdout


_NAME_ADDR_ALPHABET = 'sip:<>"\\ ;=@.,%[]abAB019tag-_?&'


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=_NAME_ADDR_ALPHABET, max_size=60),
        st.builds(
            lambda d, u, h, p, up, hp: f"{d}<sip:{u}{h}{p}{up}>{hp}",
            st.sampled_from(["", '"Al Ice" ', "Al  Ice ", '"" ', '"a\\"b" ', " "]),
            st.sampled_from(["", "alice@", "%61lice@", "a;b@", "a:pw@", "@"]),
            st.sampled_from(["h.example.com", "H.EXAMPLE.com", "[2001:db8::1]", "h_x", ""]),
            st.sampled_from(["", ":5060", ":99999", ":x"]),
            st.sampled_from(["", ";lr", ";transport=TCP;lr", ";%6Cr", ";x=[::1]", ';a="q"']),
            st.sampled_from(["", ";tag=1", " ; tag = 2 ;q=0.5", ';+sip.instance="<urn:x>"', ";x"]),
        ),
    )
)
def test_name_addr_fast_path_agrees_with_general_parser(text: str) -> None:
    from sipum_protocol.sip.uri import _parse_name_addr_general, parse_name_addr

    try:
        expected = _parse_name_addr_general(text)
    except SipParseError:
        expected = None
    try:
        got = parse_name_addr(text)
    except SipParseError:
        got = None
    assert got == expected


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet='sipte:<>" ;=@.,%[]?&/+$!~*()abAB0129\x00\xe9-_', max_size=50).map(
        lambda t: "sip:" + t
    )
)
def test_uri_serialisation_round_trips(text: str) -> None:
    from sipum_protocol.sip.uri import SipUri

    try:
        uri = parse_uri(text)
    except SipParseError:
        return
    assert isinstance(uri, SipUri)
    assert parse_uri(str(uri)) == uri


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='SIP/2.0UDPTCP :;=[]"abc019.-_,%', max_size=60))
def test_via_serialisation_round_trips(text: str) -> None:
    from sipum_protocol.sip.uri import parse_via

    try:
        via = parse_via(text)
    except SipParseError:
        return
    assert parse_via(str(via)) == via


# Inputs that would make a backtracking regex or a rescanning loop take quadratic time. Each must
# finish in linear time; at this size a quadratic path takes seconds to minutes, so the bound
# below has a wide margin even on a busy machine.
_N = 30000
_HOSTILE = {
    "list of <": lambda: split_list("," + "<" * _N),
    "list of quote-backslash": lambda: split_list("," + '"\\' * _N),
    "name-addr spaces": lambda: parse_name_addr("a" + " " * _N + "x"),
    "name-addr leading spaces": lambda: parse_name_addr(" " * _N + "<sip:a@b>x"),
    "name-addr params": lambda: parse_name_addr("<sip:a@b>" + " ;a" * _N + "\x01"),
    "name-addr words": lambda: parse_name_addr("a " * _N + "x"),
    "via spaces": lambda: parse_via("SIP/2.0/UDP h" + " " * _N + ":" + " " * _N + "x"),
    "message folds": lambda: parse_message(
        b"INVITE sip:a@b SIP/2.0\r\nVia: " + b"\r\n " * _N + b"x\r\n\r\n"
    ),
    "framer trickle": lambda: _trickle(StreamFramer(max_message=10**6)),
}


def _trickle(framer: StreamFramer) -> None:
    """A header block that arrives 57 bytes at a time and never ends (~170 kB in all)."""
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n")
    for _ in range(3000):
        assert framer.feed(b"X-A: " + b"a" * 50 + b"\r\n") == []


@pytest.mark.parametrize("name", list(_HOSTILE))
def test_hostile_inputs_take_linear_time(name: str) -> None:
    start = time.process_time()
    try:
        _HOSTILE[name]()
    except SipParseError:
        pass
    assert time.process_time() - start < 2.0
