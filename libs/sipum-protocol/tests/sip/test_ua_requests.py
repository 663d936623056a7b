"""Requests the application answers itself (``request_methods``, e.g. SUBSCRIBE for an
RFC 6665 notifier): handed up as ``IncomingRequest`` after the RFC 3261 §8.2 checks."""

from __future__ import annotations

from sipum_protocol.sip.message import SipResponse
from sipum_protocol.sip.transaction import TimerConfig
from sipum_protocol.sip.ua import IncomingRequest, UserAgent

from .test_ua import ME, PHONE, Phone, statuses

TIMERS = TimerConfig(t1=0.5, t2=4.0, t4=5.0)


def subscribe(
    phone: Phone, *, branch: str = "z9hG4bKsub1", to_tag: str | None = None, extra: str = ""
) -> bytes:
    return phone.request(
        "SUBSCRIBE", branch=branch, to_tag=to_tag, extra="Event: message-summary\n" + extra
    )


def test_without_request_methods_subscribe_is_405_as_before() -> None:
    ua = UserAgent(local={"UDP": ME}, timers=TIMERS)
    phone = Phone(ua)
    out = phone.send(subscribe(phone), 0.0)
    assert statuses(out) == [405]
    assert "SUBSCRIBE" not in (out[0].headers.get("Allow") or "")
    assert ua.events() == []


def test_subscribe_is_handed_up_and_answered_by_the_application() -> None:
    ua = UserAgent(local={"UDP": ME}, timers=TIMERS, request_methods=["subscribe"])
    phone = Phone(ua)
    assert phone.send(subscribe(phone), 0.0) == []
    (event,) = ua.events()
    assert isinstance(event, IncomingRequest)
    assert event.request.method == "SUBSCRIBE"
    assert event.peer == PHONE
    response = ua.respond(
        event.transaction, event.request, 200, 0.1, to_tag="us1", headers=[("Expires", "60")]
    )
    assert response.to.tag == "us1"
    (sent,) = phone.drain()
    assert isinstance(sent, SipResponse)
    assert sent.status == 200
    assert sent.headers.get("Expires") == "60"
    # A retransmission is answered by the transaction, not handed up again.
    assert statuses(phone.send(subscribe(phone), 0.5)) == [200]
    assert ua.events() == []


def test_allow_lists_the_application_methods() -> None:
    ua = UserAgent(local={"UDP": ME}, timers=TIMERS, request_methods=["SUBSCRIBE"])
    phone = Phone(ua)
    (resp,) = phone.send(phone.request("OPTIONS", branch="z9hG4bKopt"), 0.0)
    assert "SUBSCRIBE" in (resp.headers.get("Allow") or "")
    (resp,) = phone.send(phone.request("MESSAGE", branch="z9hG4bKmsg"), 0.0)
    assert resp.status == 405
    assert "SUBSCRIBE" in (resp.headers.get("Allow") or "")


def test_in_dialog_subscribe_of_no_call_goes_to_the_application() -> None:
    ua = UserAgent(local={"UDP": ME}, timers=TIMERS, request_methods=["SUBSCRIBE"])
    phone = Phone(ua)
    assert phone.send(subscribe(phone, to_tag="unknown"), 0.0) == []
    (event,) = ua.events()
    assert isinstance(event, IncomingRequest)
    assert event.request.to.tag == "unknown"
    # A BYE for an unknown dialog still gets 481 from the core.
    assert statuses(phone.send(phone.request("BYE", branch="z9hG4bKbye", to_tag="x"), 0.0)) == [481]


def test_checks_run_before_the_application_sees_it() -> None:
    ua = UserAgent(local={"UDP": ME}, timers=TIMERS, request_methods=["SUBSCRIBE"])
    phone = Phone(ua)
    out = phone.send(subscribe(phone, extra="Require: foo\n"), 0.0)
    assert statuses(out) == [420]
    assert ua.events() == []
    out = phone.send(
        subscribe(phone, branch="z9hG4bKsub2", to_tag="t", extra="Require: bar\n"), 0.0
    )
    assert statuses(out) == [420]
    assert ua.events() == []


def test_via_and_contact_for_application_requests() -> None:
    ua = UserAgent(local={"UDP": ME}, timers=TIMERS)
    assert ua.via_for("udp").startswith("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK")
    assert ua.contact_for("UDP") == "<sip:sipum@127.0.0.1:5060>"
