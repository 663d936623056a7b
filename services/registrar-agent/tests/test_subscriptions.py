"""The MWI subscription state machine (RFC 6665 / RFC 3842) and the SUBSCRIBE digest guard,
sans-I/O with a fake clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sipum.db.users import User
from sipum_protocol.sip.digest import authorization_from_ha1, compute_ha1, parse_challenge
from sipum_protocol.sip.message import SipRequest, parse_message
from sipum_protocol.sip.mwi import MessageSummary, parse_summary
from sipum_protocol.sip.transaction import Peer
from sipum_registrar_agent.mwi import DigestGuard
from sipum_registrar_agent.subscriptions import (
    MailboxKey,
    MwiLimits,
    Reply,
    SubscriptionTable,
)

PROXY = Peer("UDP", "127.0.0.1", 5060)
ALICE = MailboxKey.of("Alice", "Example.com")
VIA = "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKnotify;rport"
CONTACT = "<sip:sipum@127.0.0.1:5070>"


def subscribe(
    *,
    expires: int | None = 600,
    event: str | None = "message-summary",
    to_tag: str | None = None,
    cseq: int = 1,
    extra: str = "",
) -> SipRequest:
    lines = [
        "SUBSCRIBE sip:alice@127.0.0.1:5070 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKk1",
        "Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKp1;rport",
        "Record-Route: <sip:127.0.0.1:5060;lr>",
        "Max-Forwards: 69",
        "From: <sip:alice@example.com>;tag=phone1",
        "To: <sip:alice@example.com>" + (f";tag={to_tag}" if to_tag else ""),
        "Call-ID: mwi-1@127.0.0.1",
        f"CSeq: {cseq} SUBSCRIBE",
        "Contact: <sip:alice@127.0.0.1:5090>",
    ]
    if event is not None:
        lines.append(f"Event: {event}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if extra:
        lines.append(extra)
    text = "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"
    message = parse_message(text.encode())
    assert isinstance(message, SipRequest)
    return message


def make(table: SubscriptionTable, request: SipRequest, now: float):
    granted = table.check_new(request)
    assert isinstance(granted, int)
    return table.create(
        request,
        PROXY,
        local_tag="vm1",
        local_contact=CONTACT,
        mailbox=ALICE,
        user_id=7,
        expires=granted,
        now=now,
    )


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (subscribe(event="presence"), Reply(489, (("Allow-Events", "message-summary"),))),
        (subscribe(event=None), Reply(489, (("Allow-Events", "message-summary"),))),
        (subscribe(expires=30), Reply(423, (("Min-Expires", "60"),))),
        (subscribe(expires=None, extra="Expires: soon"), Reply(400, reason="Bad Expires")),
        (
            subscribe(extra="Accept: application/pidf+xml"),
            Reply(406, (("Accept", "application/simple-message-summary"),)),
        ),
        (subscribe(expires=600), 600),
        (subscribe(expires=99999), 3600),  # lowered to the maximum (RFC 6665 §4.2.1.1)
        (subscribe(expires=None), 3600),  # the default
        (subscribe(expires=0), 0),  # a fetch
        (subscribe(event="Message-Summary;id=7"), 600),
        (subscribe(extra="Accept: application/simple-message-summary, text/plain"), 600),
    ],
)
def test_checks_of_a_new_subscribe(request_: SipRequest, expected: Reply | int) -> None:
    assert SubscriptionTable().check_new(request_) == expected


def test_create_refresh_expire_with_a_fake_clock() -> None:
    table = SubscriptionTable()
    sub = make(table, subscribe(expires=600), now=100.0)
    assert len(table) == 1
    assert table.for_mailbox(ALICE) == [sub]
    assert table.next_expiry() == 700.0
    # The dialog is the UAS side of the SUBSCRIBE (RFC 6665 §4.1.2.1): route set from
    # Record-Route, the phone's Contact as target.
    assert sub.dialog.route_set == ["<sip:127.0.0.1:5060;lr>"]
    assert sub.dialog.remote_target == "sip:alice@127.0.0.1:5090"
    # In-dialog requests find it; others do not.
    assert table.find(subscribe(to_tag="vm1", cseq=2)) is sub
    assert table.find(subscribe(to_tag="other", cseq=2)) is None
    assert table.find(subscribe()) is None
    # Refresh at 650 for 300 s: the old deadline (700) no longer ends it.
    refresh = subscribe(to_tag="vm1", cseq=2, expires=300)
    assert table.check_refresh(sub, refresh) == 300
    table.refresh(sub, 300, now=650.0)
    assert table.expired(700.0) == []
    assert sub.remaining(700.0) == 250
    assert table.next_expiry() == 950.0
    assert table.expired(950.0) == [sub]
    assert sub.terminated and len(table) == 0 and not table.has_mailbox(ALICE)
    assert table.find(refresh) is None  # → 481


def test_refresh_must_name_the_same_event_package_and_id() -> None:
    table = SubscriptionTable()
    sub = make(table, subscribe(event="message-summary;id=a"), now=0.0)
    assert table.check_refresh(sub, subscribe(to_tag="vm1", event="message-summary;id=a")) == 600
    bad = table.check_refresh(sub, subscribe(to_tag="vm1", event="message-summary;id=b"))
    assert isinstance(bad, Reply) and bad.status == 489
    bad = table.check_refresh(sub, subscribe(to_tag="vm1", event="presence"))
    assert isinstance(bad, Reply) and bad.status == 489


def test_unsubscribe_removes_at_once() -> None:
    table = SubscriptionTable()
    sub = make(table, subscribe(), now=0.0)
    table.refresh(sub, 0, now=10.0)
    assert sub.terminated and len(table) == 0
    assert table.next_expiry() is None
    assert table.expired(10_000.0) == []


def test_fetch_is_not_kept() -> None:
    table = SubscriptionTable()
    sub = make(table, subscribe(expires=0), now=0.0)
    assert sub.terminated and len(table) == 0


def test_limits() -> None:
    table = SubscriptionTable(MwiLimits(max_subscriptions=3, max_per_mailbox=2))
    for i in range(2):
        request = subscribe()
        request.headers.set("Call-ID", f"c{i}")
        make(table, request, now=0.0)
    refused = table.check_room(ALICE)
    assert refused is not None and refused.status == 503
    assert table.check_room(MailboxKey.of("bob", "example.com")) is None


def test_notify_requests() -> None:
    table = SubscriptionTable()
    sub = make(table, subscribe(event="message-summary;id=x"), now=0.0)
    summary = MessageSummary.for_voice(ALICE.account, 1, 0)
    notify = table.notify_request(sub, summary, 100.0, via=VIA)
    assert notify.method == "NOTIFY"
    assert notify.uri == "sip:alice@127.0.0.1:5090"
    assert notify.headers.get_all("Route") == ["<sip:127.0.0.1:5060;lr>"]
    assert notify.headers.get("Event") == "message-summary;id=x"
    assert notify.headers.get("Subscription-State") == "active;expires=500"
    assert notify.headers.get("Content-Type") == "application/simple-message-summary"
    assert notify.from_.tag == "vm1" and notify.to.tag == "phone1"
    assert parse_summary(notify.body) == summary
    second = table.notify_request(sub, summary, 101.0, via=VIA)
    assert second.cseq[0] == notify.cseq[0] + 1  # CSeq grows in the dialog
    final = table.notify_request(sub, None, 600.0, via=VIA, terminated="timeout")
    assert final.headers.get("Subscription-State") == "terminated;reason=timeout"
    assert final.body == b""
    bye = table.notify_request(sub, summary, 300.0, via=VIA, terminated="")
    assert bye.headers.get("Subscription-State") == "terminated"


# ---------------------------------------------------------------------- digest guard

REALM = "example.com"


def user(**changes) -> User:
    base = User(
        id=7,
        domain_id=1,
        domain=REALM,
        username="alice",
        display_name="",
        email=None,
        realm=REALM,
        ha1=compute_ha1("alice", REALM, "secret"),
        ha1b="",
        ha1_sha256=compute_ha1("alice", REALM, "secret", "SHA-256"),
        has_pin=False,
        quota_bytes=None,
        max_messages=None,
        max_message_seconds=None,
        ring_timeout_seconds=None,
        email_attaches_audio=None,
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
    )
    return replace(base, **changes)


def answer(
    guard_headers: list[tuple[str, str]],
    password: str = "secret",
    nc: int = 1,
    username: str = "alice",
) -> str:
    challenge = parse_challenge(guard_headers[0][1])
    return authorization_from_ha1(
        challenge,
        username=username,
        ha1=compute_ha1(username, REALM, password),
        method="SUBSCRIBE",
        uri="sip:alice@example.com",
        nc=nc,
    )


def with_auth(value: str) -> SipRequest:
    return subscribe(extra=f"Authorization: {value}")


def test_guard_challenges_then_accepts_the_owner() -> None:
    guard = DigestGuard(secret=b"k" * 32)
    alice = user()
    assert guard.check(subscribe(), alice, 1000.0) == "missing"
    headers = guard.challenges(alice, 1000.0)
    assert [parse_challenge(v).algorithm for _, v in headers] == ["MD5", "SHA-256"]
    assert all(name == "WWW-Authenticate" for name, _ in headers)
    good = answer(headers)
    assert guard.check(with_auth(good), alice, 1001.0) == "ok"
    # The same credentials again (a replay: same nonce, same nc) are refused.
    assert guard.check(with_auth(good), alice, 1002.0) == "bad"
    assert guard.check(with_auth(answer(headers, nc=2)), alice, 1002.0) == "ok"


def test_guard_refuses_others() -> None:
    guard = DigestGuard(secret=b"k" * 32)
    alice = user()
    headers = guard.challenges(alice, 1000.0)
    assert guard.check(with_auth(answer(headers, password="wrong")), alice, 1001.0) == "bad"
    # Bob's own valid credentials do not open Alice's mailbox.
    assert guard.check(with_auth(answer(headers, username="bob")), alice, 1001.0) == "bad"
    # A nonce we did not issue.
    forged = answer(headers).replace(parse_challenge(headers[0][1]).nonce, "1.2.3")
    assert guard.check(with_auth(forged), alice, 1001.0) == "bad"
    assert guard.check(with_auth("Basic YWxpY2U6c2VjcmV0"), alice, 1001.0) == "bad"


def test_guard_old_nonce_is_stale() -> None:
    guard = DigestGuard(secret=b"k" * 32, lifetime=300)
    alice = user()
    headers = guard.challenges(alice, 1000.0)
    assert guard.check(with_auth(answer(headers)), alice, 1400.0) == "stale"
    again = guard.challenges(alice, 1400.0, stale=True)
    assert parse_challenge(again[0][1]).stale


def test_guard_accepts_sha256_credentials() -> None:
    guard = DigestGuard(secret=b"k" * 32)
    alice = user()
    headers = guard.challenges(alice, 1000.0)
    challenge = parse_challenge(headers[1][1])
    assert challenge.algorithm == "SHA-256"
    value = authorization_from_ha1(
        challenge,
        username="alice",
        ha1=compute_ha1("alice", REALM, "secret", "SHA-256"),
        method="SUBSCRIBE",
        uri="sip:alice@example.com",
    )
    # Without a stored SHA-256 HA1 only MD5 is offered, and SHA-256 credentials fail.
    md5_only = user(ha1_sha256="")
    assert len(guard.challenges(md5_only, 1000.0)) == 1
    assert guard.check(with_auth(value), md5_only, 1001.0) == "bad"
    assert guard.check(with_auth(value), alice, 1001.0) == "ok"
