"""The user agent core (sans-I/O) against a scripted peer and a fake clock.

RFC 3261 §8.2 (checks and 405/415/420/482), §12 (481, CSeq order), §13.3.1.4 (2xx
retransmission at T1..T2 until ACK, BYE after 64*T1), §14 (re-INVITE, 491/500), §15 (BYE),
§9 (CANCEL), RFC 3311 (UPDATE), RFC 6026 (INVITE retransmitted after the 2xx).
"""

from __future__ import annotations

import pytest
from sipum_protocol.sip.message import SipRequest, SipResponse, parse_message
from sipum_protocol.sip.transaction import Peer, TimerConfig
from sipum_protocol.sip.ua import (
    CallAnswered,
    CallCancelled,
    CallConfirmed,
    CallEnded,
    CallProgress,
    CallState,
    IncomingCall,
    SessionModified,
    UserAgent,
)

PHONE = Peer("UDP", "127.0.0.1", 5062)
ME = ("127.0.0.1", 5060)

OFFER = (
    "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)
ANSWER = (
    "v=0\r\no=sipum 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)


class Phone:
    """A scripted SIP phone at 127.0.0.1:5062 talking to the UA under test."""

    def __init__(self, ua: UserAgent, call_id: str = "call-1@127.0.0.1") -> None:
        self.ua = ua
        self.call_id = call_id
        self.from_tag = "alice1"
        self.to_tag: str | None = None
        self.cseq = 1
        self.received: list[tuple[SipRequest | SipResponse, Peer]] = []

    def request(
        self,
        method: str,
        *,
        branch: str,
        cseq: int | None = None,
        body: str = "",
        to_tag: str | None = None,
        extra: str = "",
        cseq_method: str | None = None,
        content_type: str = "application/sdp",
    ) -> bytes:
        to = "<sip:vm@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
        lines = [
            f"{method} sip:vm@127.0.0.1:5060 SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:alice@127.0.0.1>;tag={self.from_tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq if cseq is not None else self.cseq} {cseq_method or method}",
            "Contact: <sip:alice@127.0.0.1:5062>",
        ]
        if extra:
            lines.extend(extra.strip("\n").split("\n"))
        if body:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body.encode())}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def send(self, data: bytes, now: float) -> list[SipRequest | SipResponse]:
        self.ua.receive_data(data, PHONE, now)
        return self.drain()

    def drain(self) -> list[SipRequest | SipResponse]:
        out = []
        for data, peer in self.ua.datagrams_to_send():
            msg = parse_message(data)
            self.received.append((msg, peer))
            out.append(msg)
        return out

    def tick(self, now: float) -> list[SipRequest | SipResponse]:
        self.ua.handle_timer(now)
        return self.drain()


def statuses(messages: list[SipRequest | SipResponse]) -> list[int]:
    return [m.status for m in messages if isinstance(m, SipResponse)]


def run_until(phone: Phone, until: float) -> list[tuple[float, SipRequest | SipResponse]]:
    """Fire every timer up to ``until``; returns (time, message) for what the UA sent."""
    out = []
    for _ in range(1000):
        when = phone.ua.get_timer()
        if when is None or when > until:
            break
        for msg in phone.tick(when):
            out.append((when, msg))
    return out


@pytest.fixture
def ua() -> UserAgent:
    return UserAgent(local={"UDP": ME}, timers=TimerConfig(t1=0.5, t2=4.0, t4=5.0))


def incoming(ua: UserAgent, phone: Phone, *, body: str = OFFER, extra: str = "", now: float = 0.0):
    phone.send(phone.request("INVITE", branch="z9hG4bKinv1", body=body, extra=extra), now)
    events = ua.events()
    calls = [e.call for e in events if isinstance(e, IncomingCall)]
    assert len(calls) == 1, events
    return calls[0]


def answered_call(ua: UserAgent, phone: Phone, now: float = 0.0):
    call = incoming(ua, phone, now=now)
    call.ring(now)
    call.answer(ANSWER.encode(), now)
    out = phone.drain()
    ok = [m for m in out if isinstance(m, SipResponse) and m.status == 200][0]
    phone.to_tag = ok.to.tag
    return call, ok


def ack(phone: Phone, now: float, body: str = "", cseq: int = 1) -> None:
    phone.send(
        phone.request("ACK", branch=f"z9hG4bKack{now}", cseq=cseq, body=body, to_tag=phone.to_tag),
        now,
    )


# ---------------------------------------------------------------------- INVITE, 2xx, ACK


def test_late_answer_schedules_2xx_retransmissions_from_the_time_passed(ua: UserAgent) -> None:
    """§13.3.1.4: the 2xx is retransmitted T1, 2·T1, … after it was *sent*. An application
    answers after an ``await`` (a database, the media side): the UA last heard of the clock at
    the INVITE (t=0) and a ring at t=1, but the answer comes at t=30. Its timers must start at
    30 — from a remembered clock they would all be overdue, fire at once as a burst, and the
    64·T1 give-up (and the BYE) would come 30 s early."""
    phone = Phone(ua)
    call = incoming(ua, phone, now=0.0)
    call.ring(1.0)
    phone.drain()
    late = 30.0
    call.answer(ANSWER.encode(), late)
    (ok,) = phone.drain()
    assert isinstance(ok, SipResponse) and ok.status == 200
    t1 = ua.timers.t1
    assert ua.get_timer() == pytest.approx(late + t1)
    sent = run_until(phone, late + 4 * t1 + 0.001)
    retransmits = [when for when, msg in sent if isinstance(msg, SipResponse) and msg.status == 200]
    # T1, then 2·T1 later, then 4·T1 later (T2 = 8·T1 here does not cap yet).
    assert retransmits == pytest.approx([late + t1, late + 3 * t1])
    assert not [when for when, _ in sent if when < late + t1]
    # No ACK: the give-up (BYE) is 64·T1 after the answer, not after the INVITE.
    byes = [
        when
        for when, msg in run_until(phone, late + 64 * t1 + 1)
        if isinstance(msg, SipRequest) and msg.method == "BYE"
    ]
    assert byes[0] == pytest.approx(late + 64 * t1)  # then its own retransmissions


def test_ring_then_answer_then_ack(ua: UserAgent) -> None:
    phone = Phone(ua)
    call = incoming(ua, phone)
    assert call.remote_sdp == OFFER.encode()
    assert call.state is CallState.OFFERED
    call.ring(0.01)
    (ringing,) = phone.drain()
    assert isinstance(ringing, SipResponse) and ringing.status == 180
    tag = ringing.to.tag
    assert tag and ringing.headers.get("Contact") == "<sip:sipum@127.0.0.1:5060>"
    call.answer(ANSWER.encode(), 0.02)
    (ok,) = phone.drain()
    assert isinstance(ok, SipResponse) and ok.status == 200
    assert ok.to.tag == tag  # the same dialog as the 180
    assert ok.body == ANSWER.encode() and ok.content_type == "application/sdp"
    assert "UPDATE" in (ok.headers.get("Allow") or "")
    assert call.state is CallState.ANSWERED
    phone.to_tag = tag
    ack(phone, 0.05)
    events = ua.events()
    assert [type(e) for e in events] == [CallConfirmed]
    assert call.state is CallState.CONFIRMED
    # No retransmission after the ACK.
    assert run_until(phone, 40.0) == []
    assert ua.active_calls == 1


def test_2xx_retransmitted_at_t1_doubling_to_t2_then_bye(ua: UserAgent) -> None:
    phone = Phone(ua)
    call, ok = answered_call(ua, phone)
    sent = run_until(phone, 40.0)
    retransmissions = [t for t, m in sent if isinstance(m, SipResponse)]
    # §13.3.1.4: T1, 2T1, 4T1, then every T2 — i.e. at 0.5, 1.5, 3.5, 7.5, 11.5, ... < 32.
    assert retransmissions == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(bytes(m) == bytes(ok) for _, m in sent if isinstance(m, SipResponse))
    byes = [(t, m) for t, m in sent if isinstance(m, SipRequest)]
    # One BYE (its client transaction retransmits it: timer E, the phone never answers).
    assert len({m.top_via.branch for _, m in byes}) == 1
    when, bye = byes[0]
    assert when == pytest.approx(32.0)  # 64*T1
    assert bye.method == "BYE" and bye.uri == "sip:alice@127.0.0.1:5062"
    assert bye.to.tag == "alice1" and bye.from_.tag == ok.to.tag
    ended = [e for e in ua.events() if isinstance(e, CallEnded)]
    assert ended and ended[0].reason == "no-ack" and call.ended
    assert ua.active_calls == 0


def test_2xx_retransmissions_stop_at_ack(ua: UserAgent) -> None:
    phone = Phone(ua)
    answered_call(ua, phone)
    sent = run_until(phone, 2.0)
    assert [t for t, _ in sent] == [0.5, 1.5]
    ack(phone, 2.0)
    assert run_until(phone, 40.0) == []


def test_invite_retransmitted_while_ringing_resends_180(ua: UserAgent) -> None:
    phone = Phone(ua)
    call = incoming(ua, phone)
    call.ring(0.0)
    (ringing,) = phone.drain()
    again = phone.send(phone.request("INVITE", branch="z9hG4bKinv1", body=OFFER), 0.5)
    assert len(again) == 1 and bytes(again[0]) == bytes(ringing)
    assert ua.events() == []  # no second call
    assert ua.calls_created == 1


def test_invite_retransmitted_after_200_is_answered_by_the_same_200(ua: UserAgent) -> None:
    phone = Phone(ua)
    _call, ok = answered_call(ua, phone)
    # RFC 6026: the transaction absorbs it; the TU's next 2xx retransmission answers it.
    assert phone.send(phone.request("INVITE", branch="z9hG4bKinv1", body=OFFER), 0.1) == []
    sent = run_until(phone, 0.6)
    assert [bytes(m) for _, m in sent] == [bytes(ok)]
    assert ua.events() == [] and ua.calls_created == 1


def test_100_trying_when_the_application_is_slow(ua: UserAgent) -> None:
    phone = Phone(ua)
    incoming(ua, phone)
    sent = run_until(phone, 0.3)
    assert [m.status for _, m in sent if isinstance(m, SipResponse)] == [100]


def test_invite_without_sdp_offer_in_200_answer_in_ack(ua: UserAgent) -> None:
    phone = Phone(ua)
    call = incoming(ua, phone, body="")
    assert call.remote_sdp is None and not call.remote_offered
    call.answer(ANSWER.encode(), 0.0)
    (ok,) = phone.drain()
    phone.to_tag = ok.to.tag
    assert ok.body == ANSWER.encode()
    # While our offer waits for its answer, a new offer gets 491 (§14.2).
    upd = phone.send(
        phone.request("UPDATE", branch="z9hG4bKupd", cseq=2, body=OFFER, to_tag=phone.to_tag), 0.1
    )
    assert statuses(upd) == [491]
    ack(phone, 0.2, body=OFFER)
    events = ua.events()
    assert any(isinstance(e, CallConfirmed) for e in events)
    assert call.remote_sdp == OFFER.encode()


def test_reject_and_ack_absorbed(ua: UserAgent) -> None:
    phone = Phone(ua)
    call = incoming(ua, phone)
    call.reject(488, 0.0)
    (resp,) = phone.drain()
    assert resp.status == 488
    ended = [e for e in ua.events() if isinstance(e, CallEnded)]
    assert ended[0].reason == "rejected" and ended[0].status == 488
    phone.to_tag = resp.to.tag
    # ACK for a non-2xx: same branch as the INVITE, absorbed by the transaction.
    assert phone.send(phone.request("ACK", branch="z9hG4bKinv1", to_tag=phone.to_tag), 0.1) == []
    assert run_until(phone, 40.0) == []  # no 488 retransmissions after the ACK


def test_reject_with_extra_headers(ua: UserAgent) -> None:
    """A 503 carries Retry-After (RFC 3261 §20.33): the application adds headers to a reject."""
    phone = Phone(ua)
    call = incoming(ua, phone)
    call.reject(503, 0.0, headers=[("Retry-After", "30")])
    (resp,) = phone.drain()
    assert resp.status == 503
    assert resp.headers.get("Retry-After") == "30"
    assert resp.to.tag == call.local_tag


# ---------------------------------------------------------------------- CANCEL


def test_cancel_reason_is_passed_up(ua: UserAgent) -> None:
    """RFC 3326: a forking proxy says why it cancels (another branch answered)."""
    phone = Phone(ua)
    call = incoming(ua, phone)
    call.ring(0.0)
    phone.drain()
    reason = 'SIP;cause=200;text="Call completed elsewhere"'
    out = phone.send(phone.request("CANCEL", branch="z9hG4bKinv1", extra=f"Reason: {reason}"), 1.0)
    assert statuses(out) == [200, 487]
    (cancelled,) = [e for e in ua.events() if isinstance(e, CallCancelled)]
    assert cancelled.call is call and cancelled.reason == reason


def test_cancel_while_ringing(ua: UserAgent) -> None:
    phone = Phone(ua)
    call = incoming(ua, phone)
    call.ring(0.0)
    (ringing,) = phone.drain()
    out = phone.send(phone.request("CANCEL", branch="z9hG4bKinv1"), 1.0)
    assert statuses(out) == [200, 487]
    assert out[1].to.tag == ringing.to.tag  # §9.2: same tag as the provisional response
    events = ua.events()
    assert [type(e) for e in events] == [CallCancelled, CallEnded]
    assert events[1].reason == "cancelled"
    # The application's late answer is a no-op.
    call.answer(ANSWER.encode(), 1.1)
    assert phone.drain() == []
    assert ua.active_calls == 0


# ---------------------------------------------------------------------- BYE


def test_bye_ends_call_and_retransmitted_bye_gets_same_200(ua: UserAgent) -> None:
    phone = Phone(ua)
    call, _ = answered_call(ua, phone)
    ack(phone, 0.01)
    ua.events()
    bye = phone.request("BYE", branch="z9hG4bKbye1", cseq=2, to_tag=phone.to_tag)
    first = phone.send(bye, 1.0)
    assert statuses(first) == [200]
    ended = ua.events()
    assert [type(e) for e in ended] == [CallEnded] and ended[0].reason == "remote-bye"
    second = phone.send(bye, 1.5)
    assert [bytes(m) for m in second] == [bytes(first[0])]  # not 481: timer J holds it
    assert call.ended and ua.active_calls == 0


def test_bye_before_ack_stops_2xx_retransmissions(ua: UserAgent) -> None:
    phone = Phone(ua)
    answered_call(ua, phone)
    out = phone.send(phone.request("BYE", branch="z9hG4bKbye1", cseq=2, to_tag=phone.to_tag), 0.2)
    assert statuses(out) == [200]
    assert [
        m for _, m in run_until(phone, 40.0) if isinstance(m, SipResponse) and m.status == 200
    ] == []


def test_uas_hangup_waits_for_ack_then_sends_bye(ua: UserAgent) -> None:
    phone = Phone(ua)
    call, ok = answered_call(ua, phone)
    call.hangup(0.1)
    assert phone.drain() == []  # §15: no BYE before the ACK
    ack(phone, 0.2)
    byes = [m for m, _ in phone.received if isinstance(m, SipRequest) and m.method == "BYE"]
    assert len(byes) == 1
    events = ua.events()
    assert isinstance(events[-1], CallEnded) and events[-1].reason == "local-bye"


def test_bye_in_unknown_dialog_gets_481(ua: UserAgent) -> None:
    phone = Phone(ua)
    out = phone.send(phone.request("BYE", branch="z9hG4bKx", cseq=5, to_tag="nosuch"), 0.0)
    assert statuses(out) == [481]


def test_lower_cseq_gets_500(ua: UserAgent) -> None:
    phone = Phone(ua)
    answered_call(ua, phone)
    ack(phone, 0.01)
    out = phone.send(phone.request("OPTIONS", branch="z9hG4bKo1", cseq=5, to_tag=phone.to_tag), 0.1)
    assert statuses(out) == [200]
    out = phone.send(phone.request("OPTIONS", branch="z9hG4bKo2", cseq=3, to_tag=phone.to_tag), 0.2)
    assert statuses(out) == [500]


# ---------------------------------------------------------------------- out-of-dialog checks


def test_options_lists_capabilities(ua: UserAgent) -> None:
    phone = Phone(ua)
    (resp,) = phone.send(phone.request("OPTIONS", branch="z9hG4bKo"), 0.0)
    assert resp.status == 200
    assert set((resp.headers.get("Allow") or "").replace(" ", "").split(",")) == {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "UPDATE",
        "NOTIFY",
        "INFO",
    }
    assert resp.headers.get("Accept") == "application/sdp"
    assert "Supported" in resp.headers
    assert resp.to.tag


def allow_of(resp: SipRequest | SipResponse) -> set[str]:
    return set((resp.headers.get("Allow") or "").replace(" ", "").split(","))


def test_registered_method_we_do_not_serve_gets_405_with_allow(ua: UserAgent) -> None:
    phone = Phone(ua)
    (resp,) = phone.send(
        phone.request("MESSAGE", branch="z9hG4bKm", body="hi", content_type="text/plain"), 0.0
    )
    assert resp.status == 405
    assert "INVITE" in allow_of(resp)


# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
UNKNOWN_METHODS = [
    "FOO",
    "NEWMETHOD",
    "invite",  # methods are case-sensitive (§7.1): this is not INVITE
    "Bye",
    "X-" + "A" * 40,
    "1234",
    "!interesting-Method0123456789_*+`.%indeed'~",  # RFC 4475 §3.1.1.2 (wsinv) style
    "`'~%!*_+.-",
]


@pytest.mark.parametrize("method", UNKNOWN_METHODS)
def test_unknown_well_formed_method_gets_501_with_allow(ua: UserAgent, method: str) -> None:
    phone = Phone(ua)
    (resp,) = phone.send(phone.request(method, branch="z9hG4bKu"), 0.0)
    assert isinstance(resp, SipResponse)
    assert (resp.status, resp.reason) == (501, "Not Implemented")
    assert allow_of(resp) == {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "UPDATE",
        "INFO",
        "NOTIFY",
    }
    assert resp.cseq == (1, method)  # §8.2.6.2: CSeq copied, method and all
    assert resp.to.tag  # a final response outside a dialog gets a To tag
    assert ua.events() == []
    # A retransmission is answered by the transaction with the same 501.
    (again,) = phone.send(phone.request(method, branch="z9hG4bKu"), 0.5)
    assert bytes(again) == bytes(resp)


def test_unknown_method_inside_a_call_gets_501_and_the_call_goes_on(ua: UserAgent) -> None:
    phone = Phone(ua)
    call, _ = answered_call(ua, phone)
    ack(phone, 0.1)
    ua.events()
    phone.cseq = 2
    (resp,) = phone.send(phone.request("FROB", branch="z9hG4bKf", to_tag=phone.to_tag), 0.2)
    assert isinstance(resp, SipResponse) and resp.status == 501
    assert "BYE" in allow_of(resp)
    assert call.state is CallState.CONFIRMED
    # The dialog still works (the 501 did not consume the CSeq space wrongly): BYE → 200.
    phone.cseq = 3
    (bye_ok,) = phone.send(phone.request("BYE", branch="z9hG4bKb", to_tag=phone.to_tag), 0.3)
    assert isinstance(bye_ok, SipResponse) and bye_ok.status == 200


def test_unknown_method_with_a_to_tag_of_no_dialog_gets_501_not_481(ua: UserAgent) -> None:
    """§8.2.1 (method) is checked before §8.2.2 / §12.2.2 (the dialog)."""
    phone = Phone(ua)
    (resp,) = phone.send(phone.request("FROB", branch="z9hG4bKf", to_tag="nosuch"), 0.0)
    assert isinstance(resp, SipResponse) and resp.status == 501


def test_registered_method_with_a_to_tag_of_no_dialog_gets_405(ua: UserAgent) -> None:
    phone = Phone(ua)
    (resp,) = phone.send(phone.request("REFER", branch="z9hG4bKr", to_tag="nosuch"), 0.0)
    assert isinstance(resp, SipResponse) and resp.status == 405


def test_unsupported_sip_version_gets_505(ua: UserAgent) -> None:
    phone = Phone(ua)
    for i, version in enumerate(("SIP/7.0", "SIP/2.1", "SIP/3.0")):
        data = phone.request("INVITE", branch=f"z9hG4bKv{i}", body=OFFER)
        data = data.replace(b" SIP/2.0\r\n", f" {version}\r\n".encode(), 1)
        (resp,) = phone.send(data, float(i))
        assert isinstance(resp, SipResponse)
        assert (resp.status, resp.reason) == (505, "Version Not Supported")
        assert resp.top_via.branch == f"z9hG4bKv{i}"
    assert ua.events() == []  # no call was offered


def test_unknown_require_gets_420_with_unsupported(ua: UserAgent) -> None:
    phone = Phone(ua)
    (resp,) = phone.send(
        phone.request("INVITE", branch="z9hG4bKr", body=OFFER, extra="Require: 100rel, foo"), 0.0
    )
    assert resp.status == 420
    assert resp.headers.get_all("Unsupported") == ["100rel", "foo"]
    assert ua.events() == []


def test_supported_require_passes() -> None:
    ua = UserAgent(local={"UDP": ME}, supported=["timer"])
    phone = Phone(ua)
    phone.send(phone.request("INVITE", branch="z9hG4bKr", body=OFFER, extra="Require: timer"), 0.0)
    assert any(isinstance(e, IncomingCall) for e in ua.events())


def test_non_sdp_body_gets_415(ua: UserAgent) -> None:
    phone = Phone(ua)
    (resp,) = phone.send(
        phone.request("INVITE", branch="z9hG4bKb", body="<xml/>", content_type="application/xml"),
        0.0,
    )
    assert resp.status == 415 and resp.headers.get("Accept") == "application/sdp"


def test_merged_request_gets_482(ua: UserAgent) -> None:
    phone = Phone(ua)
    incoming(ua, phone)
    (resp,) = phone.send(phone.request("INVITE", branch="z9hG4bKother", body=OFFER), 0.1)
    assert resp.status == 482
    assert ua.calls_created == 1


# ---------------------------------------------------------------------- re-INVITE / UPDATE


def _confirmed(ua: UserAgent) -> tuple[Phone, object]:
    phone = Phone(ua)
    call, _ = answered_call(ua, phone)
    ack(phone, 0.01)
    ua.events()
    return phone, call


def test_reinvite_hold_answered_recvonly(ua: UserAgent) -> None:
    phone, call = _confirmed(ua)
    hold = OFFER.replace("a=sendrecv", "a=sendonly").replace("o=alice 1 1", "o=alice 1 2")
    out = phone.send(
        phone.request("INVITE", branch="z9hG4bKre1", cseq=2, body=hold, to_tag=phone.to_tag), 1.0
    )
    (ok,) = [m for m in out if isinstance(m, SipResponse)]
    assert ok.status == 200
    text = ok.body.decode()
    assert "a=recvonly" in text and "a=sendrecv" not in text
    assert "o=sipum 7 8 IN IP4" in text  # version incremented
    assert "m=audio 40000 RTP/AVP 0" in text  # our media unchanged
    events = ua.events()
    (mod,) = [e for e in events if isinstance(e, SessionModified)]
    assert mod.on_hold and mod.method == "INVITE" and mod.offer == hold.encode()
    # The re-INVITE's 2xx is also retransmitted until its ACK (CSeq 2).
    assert [t for t, _ in run_until(phone, 1.6)] == [1.5]
    ack(phone, 1.7, cseq=2)
    assert run_until(phone, 40.0) == []
    # Resume.
    out = phone.send(
        phone.request("INVITE", branch="z9hG4bKre2", cseq=3, body=OFFER, to_tag=phone.to_tag), 50.0
    )
    assert "a=sendrecv" in out[-1].body.decode()
    assert not [e for e in ua.events() if isinstance(e, SessionModified)][0].on_hold


def test_reinvite_while_2xx_unacked_gets_491(ua: UserAgent) -> None:
    phone = Phone(ua)
    answered_call(ua, phone)
    out = phone.send(
        phone.request("INVITE", branch="z9hG4bKre1", cseq=2, body=OFFER, to_tag=phone.to_tag), 0.1
    )
    assert statuses(out) == [491]


def test_reinvite_no_common_codec_gets_488_and_keeps_session(ua: UserAgent) -> None:
    phone, call = _confirmed(ua)
    g729 = OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 18").replace(
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", "a=rtpmap:18 G729/8000\r\n"
    )
    out = phone.send(
        phone.request("INVITE", branch="z9hG4bKre1", cseq=2, body=g729, to_tag=phone.to_tag), 1.0
    )
    assert statuses(out) == [488]
    assert call.state is CallState.CONFIRMED and call.local_sdp == ANSWER.encode()


def test_reinvite_without_sdp_is_a_refresh_with_our_offer(ua: UserAgent) -> None:
    phone, call = _confirmed(ua)
    out = phone.send(phone.request("INVITE", branch="z9hG4bKre1", cseq=2, to_tag=phone.to_tag), 1.0)
    (ok,) = out
    assert ok.status == 200 and ok.body == ANSWER.encode()
    ack(phone, 1.1, cseq=2, body=OFFER)
    assert call.remote_sdp == OFFER.encode()


def test_update_without_body_refreshes_and_with_offer_answers(ua: UserAgent) -> None:
    phone, call = _confirmed(ua)
    out = phone.send(phone.request("UPDATE", branch="z9hG4bKu1", cseq=2, to_tag=phone.to_tag), 1.0)
    assert statuses(out) == [200] and out[0].body == b""
    inactive = OFFER.replace("a=sendrecv", "a=inactive")
    out = phone.send(
        phone.request("UPDATE", branch="z9hG4bKu2", cseq=3, body=inactive, to_tag=phone.to_tag), 2.0
    )
    assert statuses(out) == [200] and "a=inactive" in out[0].body.decode()
    assert call.on_hold


def test_update_before_we_answered_the_offer_gets_500(ua: UserAgent) -> None:
    phone = Phone(ua)
    call = incoming(ua, phone)
    call.ring(0.0)
    (ringing,) = phone.drain()
    out = phone.send(
        phone.request("UPDATE", branch="z9hG4bKu1", cseq=2, body=OFFER, to_tag=ringing.to.tag), 0.5
    )
    assert statuses(out) == [500] and out[0].headers.get("Retry-After")


def test_reinvite_before_final_response_gets_500(ua: UserAgent) -> None:
    phone = Phone(ua)
    call = incoming(ua, phone)
    call.ring(0.0)
    (ringing,) = phone.drain()
    out = phone.send(
        phone.request("INVITE", branch="z9hG4bKre", cseq=2, body=OFFER, to_tag=ringing.to.tag), 0.5
    )
    assert statuses(out) == [500] and out[0].headers.get("Retry-After")


# ---------------------------------------------------------------------- Record-Route


def test_record_route_copied_and_bye_routed(ua: UserAgent) -> None:
    phone = Phone(ua)
    rr = "Record-Route: <sip:127.0.0.1:5070;lr>\nRecord-Route: <sip:127.0.0.1:5080;lr>"
    call = incoming(ua, phone, extra=rr)
    call.ring(0.0)
    call.answer(ANSWER.encode(), 0.0)
    out = phone.drain()
    for resp in out:
        assert resp.headers.get_all("Record-Route") == [
            "<sip:127.0.0.1:5070;lr>",
            "<sip:127.0.0.1:5080;lr>",
        ]
    phone.to_tag = out[0].to.tag
    ack(phone, 0.1)
    call.hangup(1.0)
    phone.drain()
    bye, peer = phone.received[-1]
    assert isinstance(bye, SipRequest) and bye.method == "BYE"
    # §12.2.1.1: sent to the first route; R-URI is the remote target; Route = route set.
    assert peer == Peer("UDP", "127.0.0.1", 5070)
    assert bye.uri == "sip:alice@127.0.0.1:5062"
    assert bye.headers.get_all("Route") == ["<sip:127.0.0.1:5070;lr>", "<sip:127.0.0.1:5080;lr>"]


# ---------------------------------------------------------------------- UAC


def _uac_invite(ua: UserAgent):
    callee = Peer("UDP", "127.0.0.1", 5070)
    call = ua.invite("sip:bob@127.0.0.1:5070", peer=callee, sdp=OFFER.encode(), now=0.0)
    ((invite, peer),) = [(parse_message(d), p) for d, p in ua.datagrams_to_send()]
    assert isinstance(invite, SipRequest) and invite.method == "INVITE" and peer == callee
    return call, invite, callee


def _response_to(
    invite: SipRequest, status: int, *, tag: str | None = "bobt", body: str = ""
) -> bytes:
    to = invite.headers.get("To") or ""
    if tag:
        to += f";tag={tag}"
    lines = [
        f"SIP/2.0 {status} X",
        f"Via: {invite.headers.get('Via')}",
        f"From: {invite.headers.get('From')}",
        f"To: {to}",
        f"Call-ID: {invite.call_id}",
        f"CSeq: {invite.headers.get('CSeq')}",
        "Contact: <sip:bob@127.0.0.1:5070>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def test_uac_call_ack_retransmitted_2xx_and_bye(ua: UserAgent) -> None:
    call, invite, callee = _uac_invite(ua)
    ua.receive_data(_response_to(invite, 180), callee, 0.1)
    assert [type(e) for e in ua.events()] == [CallProgress]
    assert call.state is CallState.EARLY
    ua.receive_data(_response_to(invite, 200, body=ANSWER), callee, 0.2)
    out = [(parse_message(d), p) for d, p in ua.datagrams_to_send()]
    ((ack_msg, ack_peer),) = out
    assert ack_msg.method == "ACK" and ack_msg.cseq == (1, "ACK")
    assert ack_msg.uri == "sip:bob@127.0.0.1:5070" and ack_msg.to.tag == "bobt"
    assert ack_msg.top_via.branch != invite.top_via.branch  # the 2xx ACK is its own transaction
    assert ack_peer == callee
    assert [type(e) for e in ua.events()] == [CallAnswered]
    assert call.remote_sdp == ANSWER.encode()
    # A retransmitted 2xx gets the same ACK again (§13.2.2.4).
    ua.receive_data(_response_to(invite, 200, body=ANSWER), callee, 0.7)
    again = ua.datagrams_to_send()
    assert [parse_message(d) for d, _ in again] == [ack_msg]
    call.hangup(1.0)
    ((bye_data, _),) = ua.datagrams_to_send()
    bye = parse_message(bye_data)
    assert bye.method == "BYE" and bye.cseq == (2, "BYE") and bye.to.tag == "bobt"
    events = ua.events()
    assert isinstance(events[-1], CallEnded) and events[-1].reason == "local-bye"


def test_uac_rejected(ua: UserAgent) -> None:
    call, invite, callee = _uac_invite(ua)
    ua.receive_data(_response_to(invite, 486), callee, 0.1)
    ((data, _),) = ua.datagrams_to_send()
    assert parse_message(data).method == "ACK"  # built by the transaction, same branch
    (ended,) = ua.events()
    assert isinstance(ended, CallEnded) and ended.reason == "failed" and ended.status == 486


def test_uac_cancel(ua: UserAgent) -> None:
    call, invite, callee = _uac_invite(ua)
    ua.receive_data(_response_to(invite, 180), callee, 0.1)
    ua.events()
    call.hangup(0.5)
    ((data, _),) = ua.datagrams_to_send()
    cancel = parse_message(data)
    assert cancel.method == "CANCEL" and cancel.top_via.branch == invite.top_via.branch
    ua.receive_data(_response_to(invite, 487), callee, 0.6)
    (ended,) = [e for e in ua.events() if isinstance(e, CallEnded)]
    assert ended.reason == "cancelled" and ended.status == 487


def test_uac_timeout_without_response(ua: UserAgent) -> None:
    call, _invite, _callee = _uac_invite(ua)
    for _ in range(100):
        when = ua.get_timer()
        if when is None:
            break
        ua.handle_timer(when)
    ended = [e for e in ua.events() if isinstance(e, CallEnded)]
    assert ended and ended[0].reason == "timeout"


def test_calls_leave_no_reference_cycles(ua: UserAgent) -> None:
    """Reference counting alone frees everything a call used (the benchmark's ``--gc no-full``
    relies on it): complete calls, let every timer run out, and no garbage cycle is left."""
    import gc

    def one_call(i: int, start: float) -> None:
        phone = Phone(ua, call_id=f"cycle-{i}@127.0.0.1")
        phone.send(phone.request("INVITE", branch=f"z9hG4bKc{i}", body=OFFER), start)
        (event,) = ua.events()
        assert isinstance(event, IncomingCall)
        event.call.ring(start)
        event.call.answer(ANSWER.encode(), start)
        phone.to_tag = [m for m in phone.drain() if isinstance(m, SipResponse)][-1].to.tag
        ack(phone, start + 0.01)
        phone.send(
            phone.request("BYE", branch=f"z9hG4bKb{i}", cseq=2, to_tag=phone.to_tag), start + 0.02
        )
        ua.events()

    one_call(0, 0.0)  # warm-up: first-use caches
    run_until(Phone(ua), 100.0)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for i in range(1, 21):
            one_call(i, 100.0 + i)
        run_until(Phone(ua), 300.0)  # timers J, L, I... end every transaction
        assert ua.layer.server_transactions == 0 and ua.active_calls == 0
        assert gc.collect() == 0, [type(o).__name__ for o in gc.garbage[:20]]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_every_final_response_outside_a_dialog_carries_a_to_tag(ua: UserAgent) -> None:
    """§8.2.6.2, also for the §8.2 refusals (420 here) and the same tag on a retransmission."""
    phone = Phone(ua)
    data = phone.request("OPTIONS", branch="z9hG4bKtt", extra="Require: foo")
    (resp,) = phone.send(data, 0.0)
    assert isinstance(resp, SipResponse) and resp.status == 420 and resp.to.tag
    (again,) = phone.send(data, 0.5)  # absorbed by the transaction: the same response
    assert isinstance(again, SipResponse) and again.to.tag == resp.to.tag
    out = phone.send(phone.request("INVITE", branch="z9hG4bKt2", body=OFFER, extra="Require: x"), 1)
    assert statuses(out) == [420] and out[0].to.tag
