"""Parse/serialise of SIP messages (RFC 3261 §7, §8.2.6, §18.3, §20)."""

from __future__ import annotations

import pytest
from sipum_protocol.sip.message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
)


def invite(body: bytes = SDP, extra: str = "") -> bytes:
    head = (
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
        "Max-Forwards: 70\r\n"
        "To: Bob <sip:bob@biloxi.example.com>\r\n"
        'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
        "Content-Type: application/sdp\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def test_parse_invite_fields() -> None:
    msg = parse_message(invite())
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE"
    assert msg.uri == "sip:bob@biloxi.example.com"
    assert msg.request_uri.user == "bob"
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.cseq == (314159, "INVITE")
    via = msg.top_via
    assert (via.transport, via.host, via.port) == ("UDP", "pc33.atlanta.example.com", 5060)
    assert via.branch == "z9hG4bK776asdhds"
    assert via.rport_requested and via.rport is None
    assert msg.from_.display == "Alice"
    assert msg.from_.tag == "1928301774"
    assert msg.to.tag is None
    assert msg.to.uri.host == "biloxi.example.com"
    assert msg.body == SDP
    assert msg.content_type == "application/sdp"


def test_round_trip_is_stable() -> None:
    msg = parse_message(invite())
    data = bytes(msg)
    assert data == invite()
    assert parse_message(data) == msg


def test_parse_response() -> None:
    raw = (
        b"SIP/2.0 180 Ringing\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(raw)
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (180, "Ringing")
    assert msg.to.tag == "2"
    assert bytes(msg) == raw


def test_serialise_writes_correct_content_length() -> None:
    msg = parse_message(invite())
    msg.body = b"hello"
    out = bytes(msg)
    assert b"Content-Length: 5\r\n\r\nhello" in out
    req = SipRequest("OPTIONS", "sip:x@y", Headers([("Via", "SIP/2.0/UDP h;branch=z9hG4bK1")]))
    assert bytes(req).endswith(b"Content-Length: 0\r\n\r\n")


def test_headers_multimap() -> None:
    h = Headers()
    h.add("via", "SIP/2.0/UDP a;branch=z9hG4bK1")
    h.add("V", "SIP/2.0/UDP b;branch=z9hG4bK2, SIP/2.0/UDP c;branch=z9hG4bK3")
    h.prepend("Via", "SIP/2.0/UDP top;branch=z9hG4bK0")
    h.add("Contact", '"A, B" <sip:a@b;x=1,2>, <sip:c@d>')
    assert h.get("VIA") == "SIP/2.0/UDP top;branch=z9hG4bK0"
    assert [v.split()[1].split(";")[0] for v in h.get_all("via")] == ["top", "a", "b", "c"]
    assert h.get_all("m") == ['"A, B" <sip:a@b;x=1,2>', "<sip:c@d>"]
    h.set("Via", "SIP/2.0/TCP only")
    assert h.get_all("Via") == ["SIP/2.0/TCP only"]
    assert h.items()[0] == ("Via", "SIP/2.0/TCP only")
    h.remove("contact")
    assert "Contact" not in h and "via" in h
    c = h.copy()
    c.add("X-Foo", "1")
    assert "X-Foo" not in h and c.get("x-foo") == "1"


def test_auth_headers_not_split_on_commas() -> None:
    h = Headers([("WWW-Authenticate", 'Digest realm="a,b", nonce="n", qop="auth,auth-int"')])
    assert h.get_all("www-authenticate") == ['Digest realm="a,b", nonce="n", qop="auth,auth-int"']


def test_make_response_copies_per_8_2_6() -> None:
    req = parse_message(invite(extra="Timestamp: 54\r\nRecord-Route: <sip:p1;lr>\r\n"))
    assert isinstance(req, SipRequest)
    req.headers.add("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp")
    trying = make_response(req, 100)
    assert trying.reason == "Trying"
    assert trying.headers.get("Timestamp") == "54"
    ok = make_response(req, 200, to_tag="t1", headers=[("Contact", "<sip:me@h>")])
    assert ok.reason == "OK"
    assert ok.headers.get_all("Via") == req.headers.get_all("Via")
    assert ok.headers.get("From") == req.headers.get("From")
    assert ok.to.tag == "t1"
    assert ok.call_id == req.call_id and ok.cseq == req.cseq
    assert ok.headers.get("Contact") == "<sip:me@h>"
    assert ok.headers.get("Timestamp") is None and ok.headers.get("Record-Route") is None
    assert make_response(req, 486, to_tag="t2").to.tag == "t2"
    # an existing To tag is kept
    req.headers.set("To", "<sip:bob@b>;tag=keep")
    assert make_response(req, 200, to_tag="new").to.tag == "keep"
    assert make_response(req, 499).reason == "Bad Request"  # class default
    assert make_response(req, 400, "Missing Foo").reason == "Missing Foo"


def test_ids() -> None:
    assert new_branch().startswith("z9hG4bK") and new_branch() != new_branch()
    assert len(new_tag()) >= 8 and new_tag() != new_tag()
    assert new_call_id("h.example").endswith("@h.example")


def test_malformed_answerable_request_carries_request() -> None:
    raw = invite().replace(b"Content-Length: ", b"Content-Length: 9")
    with pytest.raises(SipParseError) as err:
        parse_message(raw)
    assert err.value.request is not None
    assert err.value.reason == "Content-Length larger than body"
    resp = make_response(err.value.request, 400, err.value.reason)
    assert bytes(resp).startswith(b"SIP/2.0 400 Content-Length larger than body\r\n")


def test_malformed_unanswerable_has_no_request() -> None:
    raw = invite().replace(b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", b"")
    with pytest.raises(SipParseError) as err:
        parse_message(raw)
    assert err.value.request is None
    assert err.value.reason == "Missing Call-ID"


def test_stream_framer_segments_and_ping() -> None:
    one = invite()
    stream = one + b"\r\n\r\n" + one + one
    framer = StreamFramer()
    got: list[bytes] = []
    for i in range(0, len(stream), 7):
        got.extend(framer.feed(stream[i : i + 7]))
    assert got == [one, b"\r\n\r\n", one, one]
    assert framer.buffered == 0


def request_with_method(method: str, cseq_method: str | None = None, version: str = "SIP/2.0"):
    return (
        f"{method} sip:bob@biloxi.example.com {version}\r\n"
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKm1\r\n"
        "To: <sip:bob@biloxi.example.com>\r\n"
        "From: <sip:alice@atlanta.example.com>;tag=1\r\n"
        "Call-ID: m1@pc33\r\n"
        f"CSeq: 7 {cseq_method or method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    "method",
    [
        "!interesting-Method0123456789_*+`.%indeed'~",
        "`'~%!*_+.-",
        "a",
        "X" * 64,
    ],
)
def test_every_token_character_is_legal_in_a_method(method: str) -> None:
    """RFC 3261 §25.1: Method = extension-method = token, with all of ``-.!%*_+`'~``."""
    msg = parse_message(request_with_method(method))
    assert isinstance(msg, SipRequest)
    assert msg.method == method
    assert msg.cseq == (7, method)
    assert bytes(msg) == request_with_method(method)  # round trip, method untouched


@pytest.mark.parametrize("method", ["FO@O", "FO(O)", "FO/O", 'F"O', "FO?O", "FÖO"])
def test_a_method_outside_token_is_dropped(method: str) -> None:
    with pytest.raises(SipParseError) as err:
        parse_message(request_with_method(method))
    assert err.value.request is None  # the start line is unreadable: nothing to answer


def test_unsupported_version_is_answerable_505() -> None:
    with pytest.raises(SipParseError) as err:
        parse_message(request_with_method("OPTIONS", version="SIP/7.0"))
    assert err.value.status == 505
    assert err.value.request is not None and err.value.request.method == "OPTIONS"
    response = make_response(err.value.request, err.value.status, err.value.reason)
    assert bytes(response).startswith(b"SIP/2.0 505 Version Not Supported\r\n")


def test_version_is_case_insensitive() -> None:
    """§7.1: the SIP-Version string is case-insensitive (implementations send upper case)."""
    msg = parse_message(request_with_method("OPTIONS", version="sip/2.0"))
    assert isinstance(msg, SipRequest)
