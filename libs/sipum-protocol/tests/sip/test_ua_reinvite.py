"""Re-INVITEs the user agent sends in an established dialog (RFC 3261 §14.1) and the RFC 4028
refresher role, on a fake clock against a scripted phone.

The new offer goes out with the next CSeq and the same dialog (tags, Call-ID), its ``o=`` line our
previous one with the version one higher (RFC 3264 §8); 2xx → ACK (again for a retransmitted
2xx) and ``ReofferAccepted``; a non-2xx leaves the session as it was (``ReofferFailed``); 491 →
sent again after the §14.1 random delay; no answer by the deadline → ``ReofferFailed(timeout)``
(CANCEL after a provisional response); 408/481 → BYE (§12.2.1.2). The peer's re-INVITE while ours
is out gets 491. As refresher (RFC 4028 §10) the UA refreshes at half the interval.
"""

from __future__ import annotations

import random

import pytest
from sipum_protocol.sip.message import SipRequest, SipResponse, make_response
from sipum_protocol.sip.transaction import TimerConfig
from sipum_protocol.sip.ua import (
    CallEnded,
    ReofferAccepted,
    ReofferFailed,
    SessionTimerConfig,
    UserAgent,
)
from sipum_protocol.sip.ua.reinvite import glare_delay, next_version, origin_version

from .test_ua import ANSWER, ME, OFFER, PHONE, Phone, ack, answered_call, incoming, statuses

TIMERS = TimerConfig(t1=0.5, t2=4.0, t4=5.0)

MOVED = (
    "v=0\r\no=other 99 3 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
    "m=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)
PHONE_ANSWER = (
    "v=0\r\no=alice 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)


def make_ua(**kw) -> UserAgent:  # type: ignore[no-untyped-def]
    return UserAgent(local={"UDP": ME}, timers=TIMERS, rng=random.Random(7), **kw)


def established(agent: UserAgent, now: float = 0.0):  # type: ignore[no-untyped-def]
    phone = Phone(agent)
    call, _ok = answered_call(agent, phone, now)
    ack(phone, now + 0.05)
    agent.events()
    return phone, call


def invites(messages: list[SipRequest | SipResponse], method: str = "INVITE") -> list[SipRequest]:
    return [m for m in messages if isinstance(m, SipRequest) and m.method == method]


def reply(
    phone: Phone,
    request: SipRequest,
    status: int,
    now: float,
    *,
    body: str = "",
    headers: list[tuple[str, str]] | None = None,
) -> list[SipRequest | SipResponse]:
    """The phone answers a request of the UA (its To tag is the phone's From tag)."""
    extra = list(headers or [])
    if body:
        extra.append(("Content-Type", "application/sdp"))
    if status == 200:
        extra.append(("Contact", "<sip:alice@127.0.0.1:5062>"))
    response = make_response(request, status, headers=extra, body=body.encode())
    phone.ua.receive_data(bytes(response), PHONE, now)
    return phone.drain()


def test_reinvite_new_offer_2xx_ack_and_accepted() -> None:
    agent = make_ua()
    phone, call = established(agent)
    call.reinvite(MOVED.encode(), 10.0)
    (invite,) = invites(phone.drain())
    # same dialog: Call-ID, our tag in From, theirs in To; a fresh CSeq of ours
    assert invite.call_id == call.call_id
    assert invite.from_.tag == call.local_tag
    assert invite.to.tag == phone.from_tag
    assert invite.uri == "sip:alice@127.0.0.1:5062"  # the remote target (their Contact)
    first_cseq = invite.cseq[0]
    # RFC 3264 §8: our o= (sipum 7 7) with version 8, the rest the new description's
    assert b"o=sipum 7 8 IN IP4 127.0.0.1" in invite.body
    assert b"m=audio 41000" in invite.body and b"c=IN IP4 127.0.0.2" in invite.body
    assert call.reoffer_in_progress
    out = reply(phone, invite, 200, 10.1, body=PHONE_ANSWER)
    (ack_sent,) = invites(out, "ACK")
    assert ack_sent.cseq == (first_cseq, "ACK")
    assert ack_sent.to.tag == phone.from_tag
    (accepted,) = [e for e in agent.events() if isinstance(e, ReofferAccepted)]
    assert accepted.answer == PHONE_ANSWER.encode()
    assert accepted.offer == call.local_sdp and origin_version(call.local_sdp or b"") == 8
    assert call.remote_sdp == PHONE_ANSWER.encode()
    assert not call.reoffer_in_progress
    # a retransmitted 2xx gets the same ACK again (§13.2.2.4)
    again = invites(reply(phone, invite, 200, 10.6, body=PHONE_ANSWER), "ACK")
    assert [a.cseq for a in again] == [(first_cseq, "ACK")]
    assert agent.events() == []
    # the next re-INVITE: CSeq one higher, version one higher again
    call.reinvite(ANSWER.encode(), 20.0)
    (second,) = invites(phone.drain())
    assert second.cseq[0] == first_cseq + 1
    assert b"o=sipum 7 9 " in second.body


def test_non_2xx_leaves_the_session_as_it_was() -> None:
    agent = make_ua()
    phone, call = established(agent)
    call.reinvite(MOVED.encode(), 5.0)
    (invite,) = invites(phone.drain())
    out = reply(phone, invite, 488, 5.1)
    # the INVITE client transaction acknowledges a non-2xx itself (§17.1.1.3)
    assert [a.cseq[1] for a in invites(out, "ACK")] == ["ACK"]
    (failed,) = [e for e in agent.events() if isinstance(e, ReofferFailed)]
    assert (failed.reason, failed.status) == ("rejected", 488)
    assert call.local_sdp == ANSWER.encode() and call.remote_sdp == OFFER.encode()
    assert not call.ended and not call.reoffer_in_progress


def test_glare_491_is_retried_after_the_random_delay_of_the_non_owner() -> None:
    agent = make_ua()
    phone, call = established(agent)
    call.reinvite(MOVED.encode(), 5.0)
    (invite,) = invites(phone.drain())
    reply(phone, invite, 491, 5.1)
    assert [e for e in agent.events() if isinstance(e, ReofferFailed)] == []
    # §14.1: we are not the owner of the Call-ID (the phone sent the first INVITE): 0-2 s
    expected = glare_delay(call_id_owner=False, rng=random.Random(7))
    when = agent.get_timer()
    assert when is not None
    retries = []
    t = 5.1
    while not retries and t < 8.0:
        t = round(t + 0.01, 2)
        retries = invites(phone.tick(t))
    (retry,) = retries
    assert t == pytest.approx(5.1 + expected, abs=0.011)
    assert retry.cseq[0] == invite.cseq[0] + 1
    assert retry.body == invite.body  # the same offer (same version: it was never accepted)
    reply(phone, retry, 200, t + 0.1, body=PHONE_ANSWER)
    assert [type(e) for e in agent.events()] == [ReofferAccepted]


def test_glare_delay_ranges_in_10_ms_units() -> None:
    rng = random.Random(1)
    owner = [glare_delay(call_id_owner=True, rng=rng) for _ in range(500)]
    other = [glare_delay(call_id_owner=False, rng=rng) for _ in range(500)]
    assert 2.1 <= min(owner) and max(owner) <= 4.0
    assert 0.0 <= min(other) and max(other) <= 2.0
    assert all(abs(d * 100 - round(d * 100)) < 1e-9 for d in owner + other)


def test_glare_gives_up_after_the_retries() -> None:
    agent = make_ua()
    phone, call = established(agent)
    call.reinvite(MOVED.encode(), 5.0, timeout=60.0)
    t = 5.0
    sent = invites(phone.drain())
    for _ in range(10):
        if not sent:
            break
        reply(phone, sent[-1], 491, t)
        sent = []
        while not sent and t < 60.0:
            t = round(t + 0.05, 2)
            sent = invites(phone.tick(t))
    failed = [e for e in agent.events() if isinstance(e, ReofferFailed)]
    assert [(f.reason, f.status) for f in failed] == [("rejected", 491)]
    assert not call.ended


def test_no_answer_by_the_deadline_fails_and_cancels_after_a_provisional() -> None:
    agent = make_ua()
    phone, call = established(agent)
    call.reinvite(MOVED.encode(), 5.0, timeout=4.0)
    (invite,) = invites(phone.drain())
    reply(phone, invite, 180, 5.2)
    assert [e for e in agent.events() if isinstance(e, ReofferFailed)] == []
    out = phone.tick(9.0)
    (cancel,) = invites(out, "CANCEL")
    assert cancel.cseq == (invite.cseq[0], "CANCEL")
    (failed,) = [e for e in agent.events() if isinstance(e, ReofferFailed)]
    assert failed.reason == "timeout"
    assert call.local_sdp == ANSWER.encode() and not call.ended
    # the 487 ends the re-INVITE; then a new one may start
    reply(phone, invite, 487, 9.1)
    call.reinvite(MOVED.encode(), 10.0)
    assert len(invites(phone.drain())) == 1


def test_no_response_at_all_ends_the_dialog_with_bye() -> None:
    agent = make_ua()
    phone, call = established(agent)
    call.reinvite(MOVED.encode(), 5.0, timeout=100.0)
    for t in range(6, 60):
        phone.tick(float(t))
    events = agent.events()
    failed = [e for e in events if isinstance(e, ReofferFailed)]
    assert [f.reason for f in failed] == ["timeout"]  # timer B (64*T1 = 32 s)
    (ended,) = [e for e in events if isinstance(e, CallEnded)]
    assert ended.reason == "reinvite-failed"
    assert any(m.method == "BYE" for m, _ in phone.received if isinstance(m, SipRequest))


def test_481_ends_the_call_with_bye() -> None:
    agent = make_ua()
    phone, call = established(agent)
    call.reinvite(MOVED.encode(), 5.0)
    (invite,) = invites(phone.drain())
    out = reply(phone, invite, 481, 5.1)
    assert invites(out, "BYE")
    kinds = [type(e) for e in agent.events()]
    assert kinds == [ReofferFailed, CallEnded]


def test_peer_reinvite_while_ours_is_out_gets_491() -> None:
    agent = make_ua()
    phone, call = established(agent)
    call.reinvite(MOVED.encode(), 5.0)
    invites(phone.drain())
    phone.cseq = 2
    out = phone.send(
        phone.request("INVITE", branch="z9hG4bKglare", body=OFFER, to_tag=phone.to_tag), 5.05
    )
    assert statuses(out) == [491]


def test_reinvite_before_the_ack_waits_for_it() -> None:
    agent = make_ua()
    phone = Phone(agent)
    call, _ok = answered_call(agent, phone, 0.0)
    call.reinvite(MOVED.encode(), 0.1)
    assert invites(phone.drain()) == []  # our 2xx still waits for its ACK
    ack(phone, 0.3)
    out = phone.tick(0.6)
    assert len(invites(out)) == 1


def test_hangup_while_the_reinvite_is_out_tells_the_application_and_acks_a_late_2xx() -> None:
    agent = make_ua()
    phone, call = established(agent)
    call.reinvite(MOVED.encode(), 5.0)
    (invite,) = invites(phone.drain())
    call.hangup(5.5)
    assert invites(phone.drain(), "BYE")
    kinds = [type(e) for e in agent.events()]
    assert kinds == [ReofferFailed, CallEnded]
    out = reply(phone, invite, 200, 5.6, body=PHONE_ANSWER)
    assert len(invites(out, "ACK")) == 1  # §15: every 2xx is acknowledged
    assert agent.events() == []


def test_reinvite_refused_when_not_established() -> None:
    agent = make_ua()
    phone = Phone(agent)
    call = incoming(agent, phone)
    with pytest.raises(RuntimeError):
        call.reinvite(MOVED.encode(), 0.1)
    _, call2 = established(make_ua())
    call2.reinvite(MOVED.encode(), 1.0)
    with pytest.raises(RuntimeError):
        call2.reinvite(MOVED.encode(), 1.1)


def test_next_version_keeps_the_previous_origin() -> None:
    moved = next_version(ANSWER.encode(), MOVED.encode())
    assert moved.startswith(b"v=0\r\no=sipum 7 8 IN IP4 127.0.0.1\r\n")
    assert b"o=other" not in moved
    assert next_version(None, MOVED.encode()) == MOVED.encode()


# ---------------------------------------------------------------------- RFC 4028 refresher

TIMER_CONFIG = SessionTimerConfig(min_se=90, default_expires=1800, max_expires=1800)


def refresher_call(extra: str):  # type: ignore[no-untyped-def]
    agent = make_ua(session_timers=TIMER_CONFIG)
    phone = Phone(agent)
    call = incoming(agent, phone, extra=extra)
    call.answer(ANSWER.encode(), 0.0)
    ok = next(m for m in phone.drain() if isinstance(m, SipResponse) and m.status == 200)
    phone.to_tag = ok.to.tag
    ack(phone, 0.05)
    agent.events()
    return agent, phone, call, ok


def test_refresher_uas_sends_a_reinvite_at_half_the_interval() -> None:
    # A UAC without timer support behind a proxy that asked for 200 s: we refresh (§9).
    agent, phone, call, ok = refresher_call("Session-Expires: 200")
    assert ok.headers.get("Session-Expires") == "200;refresher=uas"
    assert invites(phone.tick(99.9)) == []
    (refresh,) = invites(phone.tick(100.0))
    # our unchanged description, same version (RFC 3264 §8), Session-Expires with us (the
    # UAC of this transaction) as refresher
    assert refresh.body == ANSWER.encode()
    assert refresh.headers.get("Session-Expires") == "200;refresher=uac"
    out = reply(
        phone, refresh, 200, 100.1, body=PHONE_ANSWER,
        headers=[("Session-Expires", "200;refresher=uac")],
    )  # fmt: skip
    assert len(invites(out, "ACK")) == 1
    (accepted,) = [e for e in agent.events() if isinstance(e, ReofferAccepted)]
    assert accepted.purpose == "refresh"
    # the interval restarts at the 2xx: no BYE at the old expiry (168 s), the next refresh at
    # 100.1 + 100
    assert call.deadline == pytest.approx(100.1 + 168)
    assert [m for m in phone.tick(180.0) if isinstance(m, SipRequest)] == []
    assert len(invites(phone.tick(200.1))) == 1


def test_refresher_uses_update_when_the_peer_allows_it() -> None:
    _agent, phone, _call, _ok = refresher_call(
        "Session-Expires: 200\nAllow: INVITE, ACK, BYE, UPDATE"
    )
    (update,) = invites(phone.tick(100.0), "UPDATE")
    assert update.body == b""
    assert update.headers.get("Session-Expires") == "200;refresher=uac"
    out = reply(phone, update, 200, 100.1, headers=[("Session-Expires", "200;refresher=uac")])
    assert invites(out, "ACK") == []  # no ACK for UPDATE


def test_refresh_answered_481_ends_the_session() -> None:
    agent, phone, call, _ok = refresher_call("Session-Expires: 200")
    (refresh,) = invites(phone.tick(100.0))
    out = reply(phone, refresh, 481, 100.1)
    assert invites(out, "BYE")
    (ended,) = [e for e in agent.events() if isinstance(e, CallEnded)]
    assert ended.reason == "session-expired"


def test_uac_refresher_is_not_refreshed_by_us() -> None:
    _agent, phone, _call, ok = refresher_call("Supported: timer\nSession-Expires: 200")
    assert ok.headers.get("Session-Expires") == "200;refresher=uac"
    assert invites(phone.tick(150.0)) == []


def test_glare_on_an_outgoing_call_waits_like_the_call_id_owner() -> None:
    """We sent the dialog's first INVITE (we own the Call-ID): 2.1-4 s after a 491 (§14.1)."""
    agent = make_ua()
    phone = Phone(agent)
    call = agent.invite("sip:alice@127.0.0.1:5062", peer=PHONE, sdp=ANSWER.encode(), now=0.0)
    (invite,) = invites(phone.drain())
    ok = make_response(
        invite,
        200,
        to_tag="callee1",
        headers=[("Contact", "<sip:alice@127.0.0.1:5062>"), ("Content-Type", "application/sdp")],
        body=PHONE_ANSWER.encode(),
    )
    agent.receive_data(bytes(ok), PHONE, 0.1)
    assert len(invites(phone.drain(), "ACK")) == 1
    agent.events()
    call.reinvite(MOVED.encode(), 1.0)
    (reinvite,) = invites(phone.drain())
    assert reinvite.to.tag == "callee1" and reinvite.cseq[0] == invite.cseq[0] + 1
    agent.receive_data(bytes(make_response(reinvite, 491)), PHONE, 1.1)
    phone.drain()
    expected = glare_delay(call_id_owner=True, rng=random.Random(7))
    assert 2.1 <= expected <= 4.0
    assert invites(phone.tick(1.1 + expected - 0.02)) == []
    (retry,) = invites(phone.tick(1.1 + expected + 0.001))
    assert retry.cseq[0] == reinvite.cseq[0] + 1
