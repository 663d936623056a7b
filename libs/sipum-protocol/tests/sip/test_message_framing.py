"""Content-Length framing on stream transports (RFC 3261 §18.3) and keep-alives (RFC 5626)."""

from __future__ import annotations

import random

import pytest
from sipum_protocol.sip.message import SipParseError, SipRequest, StreamFramer, parse_message


def request(n: int, body: bytes = b"", length_header: str = "Content-Length") -> bytes:
    head = (
        f"MESSAGE sip:user@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 192.0.2.9:5060;branch=z9hG4bK{n}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:a@example.net>;tag={n}\r\n"
        f"To: <sip:user@example.com>\r\n"
        f"Call-ID: frame{n}@192.0.2.9\r\n"
        f"CSeq: {n} MESSAGE\r\n"
        f"Content-Type: text/plain\r\n"
        f"{length_header}: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


MESSAGES = [
    request(1, b"hello"),
    request(2),
    request(3, b"\r\n\r\nbody with blank lines\r\n\r\n"),
    request(4, b"x" * 3000, "l"),
    request(5, b"compact", "content-LENGTH"),
]
STREAM = b"".join(MESSAGES)


@pytest.mark.parametrize("seed", range(20))
def test_random_segmentation_yields_the_same_messages(seed: int) -> None:
    rng = random.Random(seed)
    framer = StreamFramer()
    out: list[bytes] = []
    pos = 0
    while pos < len(STREAM):
        step = rng.randint(1, 700)
        out.extend(framer.feed(STREAM[pos : pos + step]))
        pos += step
    assert out == MESSAGES
    assert framer.buffered == 0
    for raw in out:
        assert isinstance(parse_message(raw), SipRequest)


def test_several_messages_in_one_segment_and_byte_by_byte() -> None:
    assert StreamFramer().feed(STREAM) == MESSAGES
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(len(STREAM)):
        out.extend(framer.feed(STREAM[i : i + 1]))
    assert out == MESSAGES


def test_keepalive_ping_and_pong() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [StreamFramer.PING]
    # a ping split over segments
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n") == [b"\r\n\r\n"]
    # a lone CRLF pong (or §7.5 padding) before a message is skipped
    assert framer.feed(b"\r\n" + MESSAGES[1]) == [MESSAGES[1]]
    assert framer.feed(MESSAGES[0] + b"\r\n\r\n" + MESSAGES[1]) == [
        MESSAGES[0],
        b"\r\n\r\n",
        MESSAGES[1],
    ]


def test_missing_content_length_breaks_the_stream() -> None:
    framer = StreamFramer()
    no_cl = request(9).replace(b"Content-Length: 0\r\n", b"")
    with pytest.raises(SipParseError, match="Missing Content-Length"):
        framer.feed(no_cl)
    with pytest.raises(SipParseError):
        framer.feed(MESSAGES[0])  # the stream position is lost for good


@pytest.mark.parametrize(
    "bad_length", [b"Content-Length: abc", b"Content-Length: -5", b"X-Content-Length: 0"]
)
def test_bad_or_disguised_content_length(bad_length: bytes) -> None:
    raw = request(9).replace(b"Content-Length: 0", bad_length)
    with pytest.raises(SipParseError):
        StreamFramer().feed(raw)


def test_oversize_messages() -> None:
    with pytest.raises(SipParseError, match="Too Large"):
        StreamFramer(max_message=2000).feed(MESSAGES[3])  # declared body too big
    with pytest.raises(SipParseError, match="Too Large"):
        StreamFramer().feed(
            request(9).replace(b"Content-Length: 0", b"Content-Length: 99999999999")
        )
    framer = StreamFramer(max_message=1000)
    with pytest.raises(SipParseError, match="Too Large"):
        for _ in range(100):  # headers that never end
            framer.feed(b"X-Flood: " + b"y" * 100 + b"\r\n")
    assert StreamFramer(max_message=4000).feed(MESSAGES[3]) == [MESSAGES[3]]


def test_folded_content_length_is_found() -> None:
    raw = request(7, b"abc").replace(b"Content-Length: 3", b"Content-Length:\r\n 3")
    assert StreamFramer().feed(raw + MESSAGES[1]) == [raw, MESSAGES[1]]
    assert parse_message(raw).body == b"abc"
