"""Torture-test style messages (in the spirit of RFC 4475, written for this project).

Each valid message must parse, give the expected field values, and survive
parse → bytes → parse unchanged. Each invalid one must raise SipParseError, with ``.request``
set exactly when a 400 (or 416/505) can be built from it.
"""

from __future__ import annotations

import pytest
from sipum_protocol.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def with_length(head: bytes, body: bytes = b"") -> bytes:
    return head.replace(b"@LEN@", str(len(body)).encode()) + body


# A tortuous but valid INVITE: odd case, compact forms, folding everywhere, spacing around
# separators, escaped display name, comma-combined Vias, unknown headers with strange values.
TORTUOUS = with_length(
    b"INVITE sip:mailbox@vm.example.com;unknownparam SIP/2.0\r\n"
    b"TO :\r\n sip:mailbox@vm.example.com ;   tag    = 7y3kd93\r\n"
    b'from   : "Ann \\\\ \\"Q\\" Other"       <sip:ann@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n'
    b"MaX-fOrWaRdS: 0068\r\n"
    b"i: tortuous.a1b2@192.0.2.1\r\n"
    b"l   : @LEN@\r\n"
    b"cseq: 0009\r\n  INVITE\r\n"
    b"Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=z9hG4bKtort1\r\n"
    b"s :\r\n"
    b"X-Odd-Header:   odd value\r\n\tcontinued odd value\r\n"
    b"X-Unusual: ;;,,;;,;\r\n"
    b"c: application/sdp\r\n"
    b"Route:\r\n <sip:proxy.example.com;lr;unknownwith=value;unknown-no-value>\r\n"
    b"v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n"
    b" SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n"
    b'm:"Quoted, string \\"\\"" <sip:ann@example.com> ; newparam =\r\n      newvalue ;\r\n'
    b"  secondparam ; q = 0.33\r\n"
    b"\r\n",
    SDP,
)


def test_tortuous_invite() -> None:
    msg = parse_message(TORTUOUS)
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE"
    assert msg.request_uri.params == {"unknownparam": None}
    assert msg.to.uri.user == "mailbox" and msg.to.tag == "7y3kd93"
    assert msg.from_.display == 'Ann \\ "Q" Other'
    assert msg.from_.tag == "98asjd8"
    assert msg.call_id == "tortuous.a1b2@192.0.2.1"
    assert msg.cseq == (9, "INVITE")
    assert msg.headers.get("Max-Forwards") == "0068"
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("x-odd-header") == "odd value continued odd value"
    assert msg.content_type == "application/sdp"
    assert msg.body == SDP
    vias = msg.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "z9hG4bKtort1"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    contacts = [parse_name_addr(c) for c in msg.headers.get_all("Contact")]
    assert len(contacts) == 1
    assert contacts[0].display == 'Quoted, string ""'
    assert contacts[0].params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    route = parse_name_addr(msg.headers.get_all("Route")[0])
    assert route.uri.params["lr"] is None and route.uri.params["unknownwith"] == "value"
    # canonical names after parse
    names = [n for n, _ in msg.headers.items()]
    assert names[:6] == ["To", "From", "Max-Forwards", "Call-ID", "Content-Length", "CSeq"]
    again = parse_message(bytes(msg))
    assert again == msg
    assert bytes(again) == bytes(msg)


def test_escaped_uris_and_names() -> None:
    raw = with_length(
        b"INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\r\n"
        b"To: sip:%75ser@example.com\r\n"
        b"From: <sip:I%20have%20spaces@example.net>;tag=938\r\n"
        b"Max-Forwards: 87\r\n"
        b"i: esc01.239409asdfakjkn23onasd0-3234\r\n"
        b"CSeq: 234234 INVITE\r\n"
        b"Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\r\n"
        b"Contact: <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\r\n"
        b"Content-Length: @LEN@\r\n\r\n"
    )
    msg = parse_message(raw)
    assert isinstance(msg, SipRequest)
    assert msg.request_uri.user == "sips:user@example.com"
    assert msg.request_uri.host == "example.net"
    assert msg.to.uri.user == "user"
    assert msg.from_.uri.user == "I have spaces"
    contact = parse_name_addr(msg.headers.get("Contact") or "")
    assert contact.uri.user == "caller"
    assert contact.uri.params == {"lr": None, "name": "value%41"}
    # re-escaped on the way out, equivalent on the way back in (RFC 3261 §19.1.4)
    assert str(msg.request_uri) == "sip:sips%3Auser%40example.com@example.net"
    assert parse_uri(str(contact.uri)) == contact.uri
    assert str(msg.from_.uri) == "sip:I%20have%20spaces@example.net"


def test_escaped_null_in_user_part() -> None:
    uri = parse_uri("sip:null-%00-null@example.com")
    assert uri.user == "null-\x00-null"
    assert str(uri) == "sip:null-%00-null@example.com"


def test_ipv6_references() -> None:
    raw = (
        b"REGISTER sip:[2001:db8::10]:5070 SIP/2.0\r\n"
        b"To: <sip:user@[2001:db8::10]>\r\n"
        b"From: <sip:user@[2001:db8::10]>;tag=81x2\r\n"
        b"Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111;received=2001:db8::9:255;rport=6050\r\n"
        b"Via: SIP/2.0/UDP [2001:db8::9:ffff];branch=z9hG4bKas3-000\r\n"
        b"Call-ID: SSG9559905523997077@hlau_4100\r\n"
        b"Max-Forwards: 70\r\n"
        b'Contact: "Caller" <sip:caller@[2001:db8::9:1]:6050;transport=udp>\r\n'
        b"CSeq: 98176 REGISTER\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(raw)
    assert isinstance(msg, SipRequest)
    ruri = msg.request_uri
    assert (ruri.host, ruri.port) == ("2001:db8::10", 5070)
    assert str(ruri) == "sip:[2001:db8::10]:5070"
    top, second = msg.vias
    assert (top.host, top.port, top.received, top.rport) == (
        "2001:db8::9:1",
        6050,
        "2001:db8::9:255",
        6050,
    )
    assert (second.host, second.port) == ("2001:db8::9:ffff", None)
    assert str(top).startswith("SIP/2.0/UDP [2001:db8::9:1]:6050;")
    contact = parse_name_addr(msg.headers.get("Contact") or "")
    assert contact.uri.host == "2001:db8::9:1" and contact.uri.transport == "udp"
    assert msg.to.uri.hostport == "[2001:db8::10]"
    assert parse_message(bytes(msg)) == msg


@pytest.mark.parametrize(
    "bad",
    [
        "sip:[2001:db8::10",
        "sip:user@[2001:db8::10]x",
        "sip:[zz::1]",
        "sip:[]:5060",
        "sip:h:99999",
        "sip:h:port",
        "sip:",
        "sip:@host",
        "sip:a b@host",
        "http:x",
        "sipx",
    ],
)
def test_bad_uris(bad: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(bad)


def test_tel_and_sips_uris() -> None:
    tel = parse_uri("tel:+358-555-1234567;postd=pp22")
    assert (tel.scheme, tel.user, tel.host, tel.params) == (
        "tel",
        None,
        "+358-555-1234567",
        {"postd": "pp22"},
    )
    assert str(tel) == "tel:+358-555-1234567;postd=pp22"
    sips = parse_uri(
        "SIPS:Alice:secret@Atlanta.Example.com:5061;transport=tcp?subject=hi%20there&priority=urgent"
    )
    assert sips.scheme == "sips" and sips.user == "Alice" and sips.password == "secret"
    assert sips.host == "atlanta.example.com" and sips.port == 5061
    assert sips.headers == {"subject": "hi there", "priority": "urgent"}
    assert parse_uri(str(sips)) == sips
    # a ';' in the user part (user-unreserved) is not a parameter
    odd = parse_uri("sip:alice;day=tuesday@atlanta.com")
    assert odd.user == "alice;day=tuesday" and odd.params == {}


def test_name_addr_forms() -> None:
    a = parse_name_addr("Bob  Smith <sip:bob@biloxi.com>;tag=a6c85cf")
    assert (a.display, a.tag) == ("Bob Smith", "a6c85cf")
    b = parse_name_addr("sip:bob@biloxi.com;tag=a6c85cf")  # addr-spec: params are the header's
    assert b.tag == "a6c85cf" and b.uri.params == {}
    c = parse_name_addr(
        '<sip:bob@biloxi.com;transport=tcp>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"'
    )
    assert c.uri.transport == "tcp"
    assert c.params["+sip.instance"] == '"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"'
    assert parse_name_addr(str(c)) == c
    c.tag = "new"
    assert str(c).endswith(";tag=new")
    for bad in [
        '"unterminated <sip:a@b>',
        "<sip:a@b",
        '"x" sip:a@b',
        "<sip:a@b> junk",
        "<mailto:a@b>",
    ]:
        with pytest.raises(SipParseError):
            parse_name_addr(bad)


def test_via_forms() -> None:
    v = parse_via("SIP / 2.0 / tls  host.example.com : 5061 ; branch = z9hG4bK1 ; rport ; ttl=16")
    assert (v.transport, v.host, v.port) == ("TLS", "host.example.com", 5061)
    assert v.params == {"branch": "z9hG4bK1", "rport": None, "ttl": "16"}
    assert v.rport_requested and v.rport is None
    assert str(v) == "SIP/2.0/TLS host.example.com:5061;branch=z9hG4bK1;rport;ttl=16"
    for bad in [
        "SIP/2.0 host",
        "SIP/3.0/UDP host",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP [::1",
    ]:
        with pytest.raises(SipParseError):
            parse_via(bad)


BASE = (
    b"OPTIONS sip:user@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKbase\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:caller@example.net>;tag=3ks\r\n"
    b"To: <sip:user@example.com>\r\n"
    b"Call-ID: base.1@192.0.2.9\r\n"
    b"CSeq: 8 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def mutate(old: bytes, new: bytes, msg: bytes = BASE) -> bytes:
    assert old in msg
    return msg.replace(old, new, 1)


ANSWERABLE = [
    (mutate(b"Content-Length: 0", b"Content-Length: 15"), 400, "Content-Length larger than body"),
    (mutate(b"Content-Length: 0", b"Content-Length: -999"), 400, "Bad Content-Length"),
    (
        mutate(b"Content-Length: 0", b"Content-Length: 99999999999999999999"),
        400,
        "Bad Content-Length",
    ),
    (
        mutate(b"Content-Length: 0\r\n", b"Content-Length: 0\r\nl: 3\r\n"),
        400,
        "Conflicting Content-Length",
    ),
    (
        mutate(b"CSeq: 8 OPTIONS", b"CSeq: 8 INVITE"),
        400,
        "CSeq method does not match request method",
    ),
    (mutate(b"Max-Forwards: 70", b"Max-Forwards: seventy"), 400, "Bad Max-Forwards"),
    (
        mutate(b"OPTIONS sip:user@example.com SIP/2.0", b"OPTIONS  sip:user@example.com   SIP/2.0"),
        400,
        "Bad request line: extra whitespace",
    ),
    (mutate(b"SIP/2.0\r\n", b"SIP/7.0\r\n"), 505, "Version Not Supported"),
    (
        mutate(b"sip:user@example.com SIP", b"mailto:user@example.com SIP"),
        416,
        "Unsupported URI scheme mailto",
    ),
    (mutate(b"sip:user@example.com SIP", b"sip:user@[::1 SIP"), 400, None),
    (mutate(b"To: <sip:user@example.com>", b'To: "unterminated <sip:user@example.com>'), 400, None),
    (
        mutate(
            b"From: <sip:caller@example.net>;tag=3ks\r\n",
            b"From: <sip:caller@example.net>;tag=3ks\r\nFrom: <sip:x@y>;tag=2\r\n",
        ),
        400,
        "More than one From",
    ),
    (
        mutate(b"Call-ID: base.1@192.0.2.9\r\n", b"Call-ID: base.1@192.0.2.9\r\ni: other\r\n"),
        400,
        "More than one Call-ID",
    ),
    (
        mutate(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nX-Bad\x00Char: 1\r\n"),
        400,
        "Illegal character in header",
    ),
    (
        mutate(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nNo colon here\r\n"),
        400,
        "Malformed header line",
    ),
    (
        mutate(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nBad Name: 1\r\n"),
        400,
        "Malformed header name",
    ),
    (
        mutate(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nX-Smuggle: a\rInjected: b\r\n"),
        400,
        "Illegal character in header",
    ),
]


@pytest.mark.parametrize(("raw", "status", "reason"), ANSWERABLE)
def test_answerable_errors_carry_the_request(raw: bytes, status: int, reason: str | None) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(raw)
    err = info.value
    assert err.request is not None
    assert err.status == status
    if reason is not None:
        assert err.reason == reason
    resp = make_response(err.request, err.status, err.reason)
    out = bytes(resp)
    assert out.startswith(f"SIP/2.0 {status} {err.reason}\r\n".encode())
    # the error response routes back by the request's top Via and names the same call
    assert resp.top_via.branch == "z9hG4bKbase"
    assert resp.headers.get("Call-ID") == err.request.headers.get("Call-ID")
    assert resp.headers.get("From") == err.request.headers.get("From")


RESPONSE = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKbase\r\n"
    b"From: <sip:caller@example.net>;tag=3ks\r\n"
    b"To: <sip:user@example.com>;tag=99\r\n"
    b"Call-ID: base.1@192.0.2.9\r\n"
    b"CSeq: 8 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)

UNANSWERABLE = [
    b"",
    b"\r\n\r\n",
    b"garbage",
    b"NOT A SIP MESSAGE AT ALL\r\n\r\n",
    mutate(b"Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKbase\r\n", b""),
    mutate(b"Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKbase", b"Via: SIP/2.0/UDP"),
    mutate(b"From: <sip:caller@example.net>;tag=3ks\r\n", b""),
    mutate(b"To: <sip:user@example.com>\r\n", b""),
    mutate(b"Call-ID: base.1@192.0.2.9\r\n", b""),
    mutate(b"CSeq: 8 OPTIONS\r\n", b""),
    mutate(b"CSeq: 8 OPTIONS", b"CSeq: eight OPTIONS"),
    mutate(b"CSeq: 8 OPTIONS", b"CSeq: 4294967296 OPTIONS"),
    mutate(b"OPTIONS sip:user@example.com SIP/2.0", b"OPTIONS sip:user@example.com"),
    mutate(b"OPTIONS sip:user", b"OPT IONS sip:user"),
    mutate(b"OPTIONS", b"OPT\x00IONS"),
    BASE[:-4],  # truncated: no end of headers
    mutate(b"Content-Length: 0", b"Content-Length: 5", RESPONSE),  # responses are dropped
    mutate(b"SIP/2.0 200 OK", b"SIP/2.0 2000 OK", RESPONSE),
    mutate(b"SIP/2.0 200 OK", b"SIP/3.0 200 OK", RESPONSE),
    mutate(b"To: <sip:user@example.com>;tag=99", b"To: <sip:user@example.com;tag=99", RESPONSE),
]


@pytest.mark.parametrize("raw", UNANSWERABLE)
def test_unanswerable_input_has_no_request(raw: bytes) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(raw)
    assert info.value.request is None
    assert info.value.reason


def test_size_and_header_count_limits() -> None:
    big = mutate(b"Content-Length: 0\r\n", b"X-Pad: " + b"a" * 70000 + b"\r\nContent-Length: 0\r\n")
    with pytest.raises(SipParseError) as info:
        parse_message(big)
    assert info.value.request is None and info.value.reason == "Message Too Large"
    assert parse_message(big, max_size=80000).headers.get("X-Pad") == "a" * 70000
    many = mutate(b"Content-Length: 0\r\n", b"Content-Length: 0\r\n" + b"X-Many: 1\r\n" * 200)
    with pytest.raises(SipParseError) as info:
        parse_message(many)
    assert info.value.reason == "Too many header fields"
    assert info.value.request is not None  # the essentials came first: answerable
    assert len(parse_message(many, max_headers=300).headers.get_all("X-Many")) == 200
    with pytest.raises(SipParseError):
        parse_message(BASE, max_headers=3)


def test_datagram_body_rules() -> None:
    # §18.3: bytes beyond Content-Length are discarded
    extra = mutate(b"Content-Length: 0\r\n\r\n", b"Content-Length: 3\r\n\r\nabcdef")
    assert parse_message(extra).body == b"abc"
    # no Content-Length over UDP: the body is the rest of the datagram
    no_cl = mutate(b"Content-Length: 0\r\n\r\n", b"\r\nhello")
    assert parse_message(no_cl).body == b"hello"
    # leading CRLFs before the start line are ignored (§7.5)
    assert parse_message(b"\r\n\r\n" + BASE) == parse_message(BASE)
    # no empty line at all but ends with CRLF: headers only
    assert parse_message(BASE[:-2]).body == b""
    # bare LF line ends are accepted and normalised
    lf = parse_message(BASE.replace(b"\r\n", b"\n"))
    assert lf == parse_message(BASE)
    assert bytes(lf) == BASE


def test_non_utf8_bytes_survive_a_round_trip() -> None:
    raw = mutate(b"From: <sip:caller", b'From: "\xff\xfe" <sip:caller')
    msg = parse_message(raw)
    assert bytes(msg) == raw


def test_utf8_display_name() -> None:
    raw = mutate(b"From: <sip:caller", 'From: "Zoë Ångström" <sip:caller'.encode())
    msg = parse_message(raw)
    assert msg.from_.display == "Zoë Ångström"
    assert bytes(msg) == raw


def test_response_without_reason_phrase_and_unknown_method() -> None:
    resp = parse_message(RESPONSE.replace(b"200 OK", b"200 ", 1))
    assert isinstance(resp, SipResponse) and resp.reason == ""
    req = parse_message(BASE.replace(b"OPTIONS", b"NEWMETHOD"))
    assert (
        isinstance(req, SipRequest) and req.method == "NEWMETHOD" and req.cseq == (8, "NEWMETHOD")
    )


def test_make_response_keeps_comma_combined_vias_in_order() -> None:
    msg = parse_message(TORTUOUS)
    assert isinstance(msg, SipRequest)
    resp = make_response(msg, 486, to_tag="ignored-because-present")
    assert resp.headers.get_lines("Via") == msg.headers.get_lines("Via")
    assert [v.branch for v in resp.vias] == ["z9hG4bKtort1", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert resp.to.tag == "7y3kd93"
    assert resp.reason == "Busy Here"
    assert resp.headers.get("Max-Forwards") is None and resp.headers.get("Route") is None


def test_parsed_values_are_copies() -> None:
    msg = parse_message(BASE)
    to = msg.to
    to.tag = "changed"
    to.uri.params["x"] = "1"
    assert msg.to.tag is None and msg.to.uri.params == {}
    via = msg.top_via
    via.params["received"] = "198.51.100.1"
    assert msg.top_via.received is None
    # after a header is changed, the new value is parsed
    msg.headers.set("To", "<sip:other@example.com>;tag=5")
    assert msg.to.tag == "5" and msg.to.uri.user == "other"
