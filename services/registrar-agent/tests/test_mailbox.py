"""MailboxResolver: which mailbox an INVITE is for and how the call reached us (pure)."""

from __future__ import annotations

import pytest
from sipum_protocol.sip.message import parse_message
from sipum_registrar_agent.mailbox import InviteAddressing, MailboxResolver

DOMAIN = "example.com"
AGENT = "10.0.0.5:5070"
KNOWN = {("alice", DOMAIN), ("bob", DOMAIN), ("carol", "other.org")}


def resolver() -> MailboxResolver:
    return MailboxResolver(
        default_domain=DOMAIN, domains=[DOMAIN, "other.org"], local_hosts=["10.0.0.5"]
    )


def known(user: str, domain: str) -> bool:
    return (user, domain) in KNOWN


# (name, request-uri, To, Diversion entries, History-Info entries,
#  expected (user, domain, mode, message id, reason, cause, source) or None for 404)
CASES = [
    (
        "plain user, forked by the proxy (To is the AOR)",
        f"sip:alice@{AGENT}",
        "<sip:alice@example.com>",
        (),
        (),
        ("alice", DOMAIN, "record", None, "forked", None, "request-uri"),
    ),
    (
        "plain user dialled at our address: direct",
        f"sip:alice@{AGENT}",
        f"<sip:alice@{AGENT}>",
        (),
        (),
        ("alice", DOMAIN, "record", None, "direct", None, "request-uri"),
    ),
    (
        "upper-case user part",
        f"sip:Alice@{AGENT}",
        "<sip:Alice@example.com>",
        (),
        (),
        ("alice", DOMAIN, "record", None, "forked", None, "request-uri"),
    ),
    (
        "retrieve URI",
        f"sip:alice-67212-retrieve@{AGENT}",
        f"<sip:alice-67212-retrieve@{AGENT}>",
        (),
        (),
        ("alice", DOMAIN, "retrieve", 67212, "direct", None, "retrieve-uri"),
    ),
    (
        "main menu URI",
        f"sip:alice-retrieve@{AGENT}",
        f"<sip:alice-retrieve@{AGENT}>",
        (),
        (),
        ("alice", DOMAIN, "menu", None, "direct", None, "menu-uri"),
    ),
    (
        "main menu URI of someone unknown",
        f"sip:mallory-retrieve@{AGENT}",
        f"<sip:mallory-retrieve@{AGENT}>",
        (),
        (),
        None,
    ),
    (
        "retrieve URI of a user with a dash in the name",
        f"sip:mary-ann-5-retrieve@{AGENT}",
        "<sip:x@example.com>",
        (),
        (),
        None,  # mary-ann is not a mailbox here
    ),
    (
        "RFC 4458 target and cause",
        f"sip:voicemail@{AGENT};target=sip:bob%40example.com;cause=486",
        "<sip:bob@example.com>",
        (),
        (),
        ("bob", DOMAIN, "record", None, "diverted", "486", "target-param"),
    ),
    (
        "RFC 4458 target wins over the Request-URI user",
        f"sip:alice@{AGENT};target=sip:bob%40example.com;cause=408",
        "<sip:alice@example.com>",
        (),
        (),
        ("bob", DOMAIN, "record", None, "diverted", "408", "target-param"),
    ),
    (
        "RFC 4458 target in another served domain",
        f"sip:vm@{AGENT};target=sip:carol%40other.org;cause=302",
        "<sip:carol@other.org>",
        (),
        (),
        ("carol", "other.org", "record", None, "diverted", "302", "target-param"),
    ),
    (
        "Diversion (RFC 5806): generic R-URI, top entry wins",
        f"sip:voicemail@{AGENT}",
        "<sip:alice@example.com>",
        (
            "<sip:bob@example.com>;reason=no-answer;counter=1",
            "<sip:alice@example.com>;reason=unconditional;counter=1",
        ),
        (),
        ("bob", DOMAIN, "record", None, "diverted", "408", "diversion"),
    ),
    (
        "Diversion naming the Request-URI user: the user's phone sent it here",
        f"sip:alice@{AGENT}",
        "<sip:alice@example.com>",
        ('<sip:alice@example.com>;reason="user-busy";counter=1',),
        (),
        ("alice", DOMAIN, "record", None, "diverted", "486", "request-uri"),
    ),
    (
        "Diversion from bob, then forked to alice's AOR: alice's call, with ring delay",
        f"sip:alice@{AGENT}",
        "<sip:alice@example.com>",
        ("<sip:bob@example.com>;reason=unconditional",),
        (),
        ("alice", DOMAIN, "record", None, "forked", None, "request-uri"),
    ),
    (
        "History-Info (RFC 7044 §9) with cause on the diverted-to entry",
        f"sip:voicemail@{AGENT}",
        "<sip:alice@example.com>",
        (),
        (
            "<sip:alice@example.com>;index=1",
            "<sip:bob@example.com?Reason=SIP%3Bcause%3D408>;index=1.1",
            f"<sip:voicemail@{AGENT};target=x;cause=408>;index=1.1.1;rc=1.1",
        ),
        ("bob", DOMAIN, "record", None, "diverted", "408", "history-info"),
    ),
    (
        "History-Info with only an escaped Reason",
        f"sip:voicemail@{AGENT}",
        "<sip:voicemail@example.com>",
        (),
        (
            "<sip:alice@example.com?Reason=SIP%3Bcause%3D302>;index=1",
            f"<sip:voicemail@{AGENT}>;index=1.1;rc=1",
        ),
        ("alice", DOMAIN, "record", None, "diverted", "302", "history-info"),
    ),
    (
        "History-Info wins over Diversion",
        f"sip:voicemail@{AGENT}",
        "<sip:voicemail@example.com>",
        ("<sip:bob@example.com>;reason=user-busy",),
        (
            "<sip:alice@example.com>;index=1",
            f"<sip:voicemail@{AGENT};cause=486>;index=1.1",
        ),
        ("alice", DOMAIN, "record", None, "diverted", "486", "history-info"),
    ),
    (
        "To fallback: no user in the Request-URI",
        "sip:10.0.0.5:5070",
        "<sip:bob@example.com>",
        (),
        (),
        ("bob", DOMAIN, "record", None, "forked", None, "to"),
    ),
    (
        "To fallback after an unknown Request-URI user",
        f"sip:voicemail@{AGENT}",
        '"Bob" <sip:bob@example.com>;tag=x',
        (),
        (),
        ("bob", DOMAIN, "record", None, "forked", None, "to"),
    ),
    (
        "To in a domain we do not serve is not a mailbox",
        "sip:10.0.0.5:5070",
        "<sip:bob@elsewhere.net>",
        (),
        (),
        None,
    ),
    (
        "unknown everywhere: 404",
        f"sip:mallory@{AGENT}",
        "<sip:mallory@example.com>",
        ("<sip:trudy@example.com>;reason=no-answer",),
        (),
        None,
    ),
    (
        "garbage in Diversion and History-Info is skipped",
        f"sip:alice@{AGENT}",
        "<sip:alice@example.com>",
        ("not a uri at all <<",),
        ("<garbage",),
        ("alice", DOMAIN, "record", None, "forked", None, "request-uri"),
    ),
]


@pytest.mark.parametrize(
    ("ruri", "to", "diversion", "history", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_resolution_table(ruri, to, diversion, history, expected) -> None:
    got = resolver().resolve(InviteAddressing(ruri, to, tuple(diversion), tuple(history)), known)
    if expected is None:
        assert got is None
        return
    assert got is not None
    assert (
        got.username,
        got.domain,
        got.mode,
        got.message_id,
        got.reason,
        got.diversion_cause,
        got.source,
    ) == expected


def test_from_request_reads_headers_of_a_real_invite() -> None:
    data = (
        f"INVITE sip:voicemail@{AGENT};target=sip:alice%40example.com;cause=486 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:carol@other.org>;tag=1\r\n"
        "To: <sip:alice@example.com>\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Diversion: <sip:bob@example.com>;reason=no-answer,\r\n"
        " <sip:alice@example.com>;reason=unconditional\r\n"
        "History-Info: <sip:alice@example.com>;index=1\r\n"
        "History-Info: <sip:voicemail@example.com;cause=486>;index=1.1\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    request = parse_message(data)
    addressing = InviteAddressing.from_request(request)  # type: ignore[arg-type]
    assert len(addressing.diversion) == 2
    assert len(addressing.history_info) == 2
    sources = [c.source for c in resolver().candidates(addressing)]
    assert sources == ["target-param", "request-uri", "history-info", "diversion", "to"]
    best = resolver().resolve(addressing, known)
    assert best is not None and best.username == "alice" and best.diversion_cause == "486"


@pytest.mark.parametrize(
    ("ruri", "history", "diversion", "expected"),
    [
        ("sip:voicemail@example.com", (), (), ("voicemail", DOMAIN)),
        ("sip:VoiceMail@other.org", (), (), ("voicemail", "other.org")),
        (f"sip:voicemail@{AGENT}", (), (), ("voicemail", DOMAIN)),  # our address: the default
        ("sip:voicemail@example.com;target=sip:nobody%40example.com;cause=486", (), (), None),
        ("sip:voicemail@example.com", ("<sip:nobody@example.com>;index=1",), (), None),
        ("sip:voicemail@example.com", (), ("<sip:nobody@example.com>;reason=user-busy",), None),
        ("sip:nobody@example.com", (), (), None),
    ],
)
def test_voicemail_access_uri(
    ruri: str,
    history: tuple[str, ...],
    diversion: tuple[str, ...],
    expected: tuple[str, str] | None,
) -> None:
    """``sip:voicemail@<domain>`` with nothing else naming a mailbox: mode ``access``; a call
    diverted for a mailbox that does not exist is not one (it stays a 404)."""
    r = MailboxResolver(
        default_domain=DOMAIN,
        domains=[DOMAIN, "other.org"],
        local_hosts=["10.0.0.5"],
        access_user="voicemail",
    )
    invite = InviteAddressing(ruri, "<sip:voicemail@example.com>", diversion, history)
    assert r.resolve(invite, known) is None  # no candidate is a mailbox
    found = r.access(invite)
    if expected is None:
        assert found is None
    else:
        assert found is not None and (found.username, found.domain) == expected
        assert (found.mode, found.reason, found.source) == ("access", "direct", "access-uri")
    assert resolver().access(invite) is None  # no access_user: no access URI
