"""Call transfer by REFER (RFC 3515) from the UAS side of an answered call, on a fake clock.

REFER in the dialog with Refer-To / Referred-By; 202 then NOTIFY sipfrag 100 → 200: each NOTIFY
answered 200, BYE after the final 2xx, ``TransferEnded(ok)`` then ``CallEnded(transferred)``;
a NOTIFY before the 202 (§2.4.4); the REFER refused (603); a sipfrag 486; no REFER answer
(timer F) and no final NOTIFY (our timeout); NOTIFY without a transfer (481), another event
package (489), a body that is not sipfrag (415), another REFER's id (481); out of dialog (481);
only one transfer at a time, a second one after a failure; the call ending first.
"""

from __future__ import annotations

import pytest
from sipum_protocol.sip.message import SipRequest, SipResponse
from sipum_protocol.sip.transaction import TimerConfig
from sipum_protocol.sip.ua import CallEnded, TransferEnded, TransferState, UserAgent
from sipum_protocol.sip.ua.refer import sipfrag_status

from .test_ua import ME, Phone, ack, answered_call, statuses

TARGET = "sip:operator@example.com"


@pytest.fixture
def ua() -> UserAgent:
    return UserAgent(local={"UDP": ME}, timers=TimerConfig(t1=0.5, t2=4.0, t4=5.0))


def requests(messages: list[SipRequest | SipResponse], method: str) -> list[SipRequest]:
    return [m for m in messages if isinstance(m, SipRequest) and m.method == method]


def answer(phone: Phone, request: SipRequest, status: int, now: float) -> list:  # type: ignore[type-arg]
    """The phone answers our request (To tag of the dialog)."""
    lines = [
        f"SIP/2.0 {status} Whatever",
        f"Via: {request.headers.get('Via')}",
        f"From: {request.headers.get('From')}",
        f"To: {request.headers.get('To')}",
        f"Call-ID: {request.call_id}",
        f"CSeq: {request.headers.get('CSeq')}",
        "Content-Length: 0",
    ]
    return phone.send(("\r\n".join(lines) + "\r\n\r\n").encode(), now)


def notify(
    phone: Phone,
    frag: str,
    now: float,
    *,
    state: str = "active;expires=60",
    event: str = "refer",
    content_type: str = "message/sipfrag;version=2.0",
) -> list[SipRequest | SipResponse]:
    phone.cseq += 1
    return phone.send(
        phone.request(
            "NOTIFY",
            branch=f"z9hG4bKn{phone.cseq}",
            to_tag=phone.to_tag,
            body=frag,
            content_type=content_type,
            extra=f"Event: {event}\nSubscription-State: {state}",
        ),
        now,
    )


def confirmed(ua: UserAgent):  # type: ignore[no-untyped-def]
    phone = Phone(ua)
    call, _ = answered_call(ua, phone)
    ack(phone, 0.05)
    ua.events()
    return phone, call


def test_refer_202_then_sipfrag_200_ends_the_call_with_bye(ua: UserAgent) -> None:
    phone, call = confirmed(ua)
    transfer = ua.refer(call, TARGET, 10.0)
    (refer,) = requests(phone.drain(), "REFER")
    assert refer.headers.get("Refer-To") == f"<{TARGET}>"  # RFC 3515 §2.1
    assert refer.headers.get("Referred-By") == "<sip:vm@127.0.0.1>"  # RFC 3892
    assert refer.call_id == call.call_id and refer.to.tag == phone.from_tag
    assert refer.headers.get("Contact")
    assert transfer.state is TransferState.PENDING
    answer(phone, refer, 202, 10.1)
    assert transfer.state is TransferState.ACCEPTED and transfer.refer_status == 202
    assert statuses(notify(phone, "SIP/2.0 100 Trying\r\n", 10.2)) == [200]
    assert ua.events() == [] and not call.ended
    out = notify(phone, "SIP/2.0 200 OK\r\n", 12.0, state="terminated;reason=noresource")
    assert statuses(out) == [200]
    (bye,) = requests(out, "BYE")
    assert bye.call_id == call.call_id
    events = ua.events()
    assert [type(e) for e in events] == [TransferEnded, CallEnded]
    ended = events[0]
    assert isinstance(ended, TransferEnded)
    assert (ended.ok, ended.reason, ended.status, ended.target) == (
        True,
        "transferred",
        200,
        TARGET,
    )
    assert isinstance(events[1], CallEnded) and events[1].reason == "transferred"
    assert transfer.progress == [100, 200] and transfer.state is TransferState.DONE
    # the final NOTIFY retransmitted after our BYE: the transaction answers it again
    # (same 200), nothing more happens
    phone.cseq -= 1
    out = notify(phone, "SIP/2.0 200 OK\r\n", 12.5, state="terminated")
    assert statuses(out) == [200] and requests(out, "BYE") == [] and ua.events() == []
    # a new NOTIFY in the ended dialog: 481 (RFC 3261 §12.2.2)
    assert statuses(notify(phone, "SIP/2.0 200 OK\r\n", 13.0, state="terminated")) == [481]


def test_notify_may_come_before_the_202(ua: UserAgent) -> None:
    phone, call = confirmed(ua)
    ua.refer(call, TARGET, 0.0)
    (refer,) = requests(phone.drain(), "REFER")
    assert statuses(notify(phone, "SIP/2.0 100 Trying\r\n", 0.1)) == [200]
    answer(phone, refer, 202, 0.2)
    out = notify(phone, "SIP/2.0 200 OK\r\n", 0.3, state="terminated")
    assert requests(out, "BYE")
    assert [e.reason for e in ua.events() if isinstance(e, TransferEnded)] == ["transferred"]


def test_refused_refer_fails_and_the_call_goes_on(ua: UserAgent) -> None:
    phone, call = confirmed(ua)
    transfer = ua.refer(call, TARGET, 0.0)
    (refer,) = requests(phone.drain(), "REFER")
    out = answer(phone, refer, 603, 0.1)
    assert requests(out, "BYE") == []
    (ended,) = ua.events()
    assert isinstance(ended, TransferEnded)
    assert (ended.ok, ended.reason, ended.status) == (False, "refused", 603)
    assert not call.ended and transfer.state is TransferState.FAILED
    # a NOTIFY for the refused REFER: no such subscription
    assert statuses(notify(phone, "SIP/2.0 200 OK\r\n", 0.2)) == [481]
    # a second attempt is allowed once the first is over
    second = ua.refer(call, TARGET, 1.0)
    (refer2,) = requests(phone.drain(), "REFER")
    assert refer2.cseq[0] == refer.cseq[0] + 1 and second is not transfer


def test_sipfrag_failure_fails_the_transfer(ua: UserAgent) -> None:
    phone, call = confirmed(ua)
    ua.refer(call, TARGET, 0.0)
    (refer,) = requests(phone.drain(), "REFER")
    answer(phone, refer, 202, 0.1)
    out = notify(phone, "SIP/2.0 486 Busy Here\r\n", 5.0, state="terminated;reason=noresource")
    assert statuses(out) == [200] and requests(out, "BYE") == []
    (ended,) = ua.events()
    assert isinstance(ended, TransferEnded)
    assert (ended.ok, ended.reason, ended.status) == (False, "failed", 486)
    assert not call.ended


def test_terminated_without_final_status_fails(ua: UserAgent) -> None:
    phone, call = confirmed(ua)
    ua.refer(call, TARGET, 0.0)
    (refer,) = requests(phone.drain(), "REFER")
    answer(phone, refer, 202, 0.1)
    notify(phone, "SIP/2.0 180 Ringing\r\n", 1.0, state="terminated;reason=timeout")
    (ended,) = ua.events()
    assert isinstance(ended, TransferEnded) and (ended.reason, ended.status) == ("terminated", 180)


def test_no_final_notify_times_out_on_our_clock(ua: UserAgent) -> None:
    phone, call = confirmed(ua)
    ua.refer(call, TARGET, 100.0, timeout=20.0)
    (refer,) = requests(phone.drain(), "REFER")
    answer(phone, refer, 202, 100.1)
    notify(phone, "SIP/2.0 180 Ringing\r\n", 101.0)
    assert ua.get_timer() is not None and ua.get_timer() <= 120.0  # type: ignore[operator]
    phone.tick(119.9)
    assert ua.events() == []
    phone.tick(120.0)
    (ended,) = ua.events()
    assert isinstance(ended, TransferEnded) and (ended.ok, ended.reason) == (False, "timeout")
    assert not call.ended
    # a late final NOTIFY after we gave up: no subscription any more, no BYE
    out = notify(phone, "SIP/2.0 200 OK\r\n", 121.0, state="terminated")
    assert statuses(out) == [481] and requests(out, "BYE") == []


def test_unanswered_refer_times_out_with_timer_f(ua: UserAgent) -> None:
    phone, call = confirmed(ua)
    ua.refer(call, TARGET, 0.0, timeout=60.0)
    sent = requests(phone.drain(), "REFER")
    now = 0.0
    while now < 40.0:  # retransmissions, then timer F at 64·T1 = 32 s (RFC 3261 §17.1.2.2)
        when = ua.get_timer()
        assert when is not None
        now = when
        sent += requests(phone.tick(now), "REFER")
        if any(isinstance(e, TransferEnded) for e in ua.events()):
            break
    assert len(sent) > 1  # retransmitted over UDP
    assert now == pytest.approx(32.0)
    assert not call.ended


def test_notify_checks(ua: UserAgent) -> None:
    phone, call = confirmed(ua)
    # no transfer running
    assert statuses(notify(phone, "SIP/2.0 200 OK\r\n", 0.0)) == [481]
    ua.refer(call, TARGET, 0.0)
    (refer,) = requests(phone.drain(), "REFER")
    answer(phone, refer, 202, 0.1)
    (bad,) = notify(phone, "SIP/2.0 200 OK\r\n", 0.2, event="presence")
    assert isinstance(bad, SipResponse) and bad.status == 489
    assert bad.headers.get("Allow-Events") == "refer"
    (bad,) = notify(phone, "hello", 0.3, content_type="text/plain")
    assert isinstance(bad, SipResponse) and bad.status == 415
    assert bad.headers.get("Accept") == "message/sipfrag"
    other_id = f"refer;id={refer.cseq[0] + 5}"
    assert statuses(notify(phone, "SIP/2.0 200 OK\r\n", 0.4, event=other_id)) == [481]
    # none of these decided anything
    assert ua.events() == [] and not call.ended
    own_id = f"refer;id={refer.cseq[0]}"
    out = notify(phone, "SIP/2.0 200 OK\r\n", 0.5, event=own_id, state="terminated")
    assert statuses(out) == [200] and requests(out, "BYE")


def test_notify_outside_a_dialog_gets_481(ua: UserAgent) -> None:
    phone = Phone(ua)
    out = phone.send(
        phone.request(
            "NOTIFY",
            branch="z9hG4bKo1",
            body="SIP/2.0 200 OK\r\n",
            content_type="message/sipfrag",
            extra="Event: refer",
        ),
        0.0,
    )
    assert statuses(out) == [481]


def test_one_transfer_at_a_time_and_only_for_a_confirmed_call(ua: UserAgent) -> None:
    phone, call = confirmed(ua)
    ua.refer(call, TARGET, 0.0)
    with pytest.raises(RuntimeError):
        ua.refer(call, TARGET, 0.1)
    other = Phone(ua, call_id="call-2@127.0.0.1")
    other.send(other.request("INVITE", branch="z9hG4bKx2", body=""), 0.0)
    (incoming_event,) = ua.events()
    with pytest.raises(RuntimeError):
        ua.refer(incoming_event.call, TARGET, 0.2)  # type: ignore[union-attr]


def test_the_call_ending_first_drops_the_transfer(ua: UserAgent) -> None:
    phone, call = confirmed(ua)
    ua.refer(call, TARGET, 0.0, timeout=10.0)
    (refer,) = requests(phone.drain(), "REFER")
    answer(phone, refer, 202, 0.1)
    phone.cseq += 1
    out = phone.send(phone.request("BYE", branch="z9hG4bKbye", to_tag=phone.to_tag), 1.0)
    assert statuses(out) == [200]
    assert [type(e) for e in ua.events()] == [CallEnded]
    phone.tick(11.0)
    assert ua.events() == []  # no TransferEnded for a call that is over
    assert ua.transfers.next_timer() is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"SIP/2.0 200 OK\r\n", 200),
        (b"SIP/2.0 100 Trying", 100),
        (b"SIP/2.0 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n", 503),
        (b"INVITE sip:x SIP/2.0\r\n", None),
        (b"", None),
    ],
)
def test_sipfrag_status(body: bytes, status: int | None) -> None:
    assert sipfrag_status(body) == status
