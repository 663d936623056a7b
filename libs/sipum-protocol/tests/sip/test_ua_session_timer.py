"""RFC 4028 session timers (UAS) and the maximum call duration, on a fake clock.

Negotiation (§9): 422 + Min-SE for a too-small interval from a UAC that supports timers, the
interval raised for one that does not, lowered to our maximum, our default when only
``Supported: timer``, the refresher table, ``Require: timer`` with refresher=uac; expiry (§10)
at ``expires - min(32, expires/3)`` after the 2xx → BYE; refreshes by re-INVITE and UPDATE
restart the interval; a refresh without Session-Expires turns it off; the maximum duration
ends a call that keeps refreshing.
"""

from __future__ import annotations

import pytest
from sipum_protocol.sip.message import SipRequest, SipResponse, parse_message
from sipum_protocol.sip.transaction import TimerConfig
from sipum_protocol.sip.ua import CallEnded, SessionTimerConfig, UserAgent
from sipum_protocol.sip.ua.session_timer import SessionTimer, TooSmall, negotiate

from .test_ua import ANSWER, ME, OFFER, Phone, ack, incoming, statuses

TIMERS = TimerConfig(t1=0.5, t2=4.0, t4=5.0)
CONFIG = SessionTimerConfig(min_se=90, default_expires=1800, max_expires=1800)


def ua(**kw) -> UserAgent:  # type: ignore[no-untyped-def]
    return UserAgent(local={"UDP": ME}, timers=TIMERS, session_timers=CONFIG, **kw)


def request(extra: str) -> SipRequest:
    phone = Phone(UserAgent(local={"UDP": ME}))
    msg = parse_message(phone.request("INVITE", branch="z9hG4bKn", body=OFFER, extra=extra))
    assert isinstance(msg, SipRequest)
    return msg


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", None),  # no timer at all
        ("Supported: timer", SessionTimer(1800, "uac")),  # our default, they refresh
        ("Supported: timer\nSession-Expires: 600", SessionTimer(600, "uac")),
        ("Supported: timer\nSession-Expires: 600;refresher=uas", SessionTimer(600, "uas")),
        ("Supported: timer\nSession-Expires: 600;refresher=uac", SessionTimer(600, "uac")),
        ("Session-Expires: 600", SessionTimer(600, "uas")),  # a proxy's; the UAC cannot refresh
        ("Session-Expires: 60", SessionTimer(90, "uas")),  # raised, not refused (§9)
        ("Supported: timer\nSession-Expires: 60", TooSmall(90)),
        ("Require: timer\nSession-Expires: 89", TooSmall(90)),
        ("Supported: timer\nSession-Expires: 7200", SessionTimer(1800, "uac")),  # lowered
        ("Supported: timer\nSession-Expires: 200\nMin-SE: 300", SessionTimer(300, "uac")),
        ("Supported: 100rel, TIMER\nx: 120", SessionTimer(120, "uac")),  # compact form, case
    ],
)
def test_negotiation(extra: str, expected: object) -> None:
    assert negotiate(request(extra), CONFIG) == expected


def test_config_rejects_min_se_below_90() -> None:
    with pytest.raises(ValueError):
        SessionTimerConfig(min_se=30)


def answered(agent: UserAgent, extra: str, now: float = 0.0):  # type: ignore[no-untyped-def]
    phone = Phone(agent)
    call = incoming(agent, phone, extra=extra, now=now)
    call.answer(ANSWER.encode(), now)
    ok = next(m for m in phone.drain() if isinstance(m, SipResponse) and m.status == 200)
    phone.to_tag = ok.to.tag
    ack(phone, now + 0.05)
    agent.events()
    return phone, call, ok


def byes(messages: list[SipRequest | SipResponse]) -> list[SipRequest]:
    return [m for m in messages if isinstance(m, SipRequest) and m.method == "BYE"]


def test_too_small_interval_gets_422_with_min_se_and_no_call() -> None:
    agent = ua()
    phone = Phone(agent)
    out = phone.send(
        phone.request(
            "INVITE", branch="z9hG4bK1", body=OFFER, extra="Supported: timer\nSession-Expires: 30"
        ),
        0.0,
    )
    assert statuses(out) == [422]
    assert out[0].headers.get("Min-SE") == "90"
    assert agent.events() == []


def test_2xx_carries_session_expires_and_require_and_expiry_sends_bye() -> None:
    agent = ua()
    phone, call, ok = answered(agent, "Supported: timer\nSession-Expires: 120")
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"
    assert "timer" in ok.headers.get_all("Require")
    assert "timer" in [t.strip() for t in ok.headers.get_all("Supported")]
    # §10: expiry at 120 - min(32, 40) = 88 s after the 2xx
    assert call.deadline == pytest.approx(88.0)
    assert agent.get_timer() is not None
    assert byes(phone.tick(87.9)) == []
    (bye,) = byes(phone.tick(88.0))
    assert bye.headers.get("Call-ID") == call.call_id
    (ended,) = [e for e in agent.events() if isinstance(e, CallEnded)]
    assert ended.reason == "session-expired"


def test_refresh_by_reinvite_and_update_restarts_the_interval() -> None:
    agent = ua()
    phone, call, _ = answered(agent, "Supported: timer\nSession-Expires: 120")
    # a re-INVITE refresh at 60 s (half the interval, as the refresher does, §7.4)
    phone.cseq = 2
    out = phone.send(
        phone.request(
            "INVITE",
            branch="z9hG4bKr1",
            to_tag=phone.to_tag,
            extra="Supported: timer\nSession-Expires: 120;refresher=uac",
        ),
        60.0,
    )
    (ok,) = [m for m in out if isinstance(m, SipResponse) and m.status == 200]
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"
    ack(phone, 60.05, cseq=2)
    assert call.deadline == pytest.approx(60.0 + 88.0)
    assert byes(phone.tick(100.0)) == []  # the old expiry (88 s) is gone
    # an UPDATE refresh at 120 s
    phone.cseq = 3
    out = phone.send(
        phone.request(
            "UPDATE",
            branch="z9hG4bKu1",
            to_tag=phone.to_tag,
            extra="Supported: timer\nSession-Expires: 100",
        ),
        120.0,
    )
    assert statuses(out) == [200]
    assert out[0].headers.get("Session-Expires") == "100;refresher=uac"
    assert call.deadline == pytest.approx(120.0 + 100 - 32)
    assert byes(phone.tick(187.9)) == []
    assert len(byes(phone.tick(188.0))) == 1


def test_refresh_with_too_small_interval_gets_422_and_keeps_the_old_timer() -> None:
    agent = ua()
    phone, call, _ = answered(agent, "Supported: timer\nSession-Expires: 120")
    phone.cseq = 2
    out = phone.send(
        phone.request(
            "UPDATE",
            branch="z9hG4bKu2",
            to_tag=phone.to_tag,
            extra="Supported: timer\nSession-Expires: 10",
        ),
        30.0,
    )
    assert statuses(out) == [422]
    assert call.deadline == pytest.approx(88.0)


def test_refresh_without_session_expires_turns_the_timer_off() -> None:
    agent = ua()
    phone, call, _ = answered(agent, "Supported: timer\nSession-Expires: 120")
    phone.cseq = 2
    out = phone.send(phone.request("UPDATE", branch="z9hG4bKu3", to_tag=phone.to_tag), 30.0)
    assert statuses(out) == [200] and out[0].headers.get("Session-Expires") is None
    assert call.deadline is None and call.session_timer is None
    assert byes(phone.tick(5000.0)) == []


def test_no_timer_without_support_or_header() -> None:
    agent = ua()
    phone, call, ok = answered(agent, "")
    assert ok.headers.get("Session-Expires") is None and call.deadline is None


def test_max_call_duration_ends_even_a_refreshed_call() -> None:
    agent = ua(max_call_duration=300.0)
    phone, call, _ = answered(agent, "Supported: timer\nSession-Expires: 200", now=10.0)
    assert call.deadline == pytest.approx(10.0 + 200 - 32)
    for i, at in enumerate((100.0, 190.0, 280.0)):  # refreshed every 90 s
        phone.cseq = 2 + i
        phone.send(
            phone.request(
                "UPDATE",
                branch=f"z9hG4bKm{i}",
                to_tag=phone.to_tag,
                extra="Supported: timer\nSession-Expires: 200",
            ),
            at,
        )
    assert call.deadline == pytest.approx(310.0)  # the maximum now comes first
    assert byes(phone.tick(309.9)) == []
    assert len(byes(phone.tick(310.0))) == 1
    (ended,) = [e for e in agent.events() if isinstance(e, CallEnded)]
    assert ended.reason == "max-duration"


def test_max_duration_without_session_timers() -> None:
    agent = UserAgent(local={"UDP": ME}, timers=TIMERS, max_call_duration=60.0)
    phone, call, ok = answered(agent, "Supported: timer\nSession-Expires: 120")
    assert ok.headers.get("Session-Expires") is None  # timers not enabled: header ignored
    assert byes(phone.tick(59.9)) == []
    assert len(byes(phone.tick(60.0))) == 1


def test_deadline_before_the_ack_waits_for_it() -> None:
    """§15: no BYE before the ACK; it goes out when the ACK comes."""
    agent = UserAgent(local={"UDP": ME}, timers=TIMERS, max_call_duration=1.0)
    phone = Phone(agent)
    call = incoming(agent, phone)
    call.answer(ANSWER.encode(), 0.0)
    ok = next(m for m in phone.drain() if isinstance(m, SipResponse) and m.status == 200)
    phone.to_tag = ok.to.tag
    assert byes(phone.tick(1.0)) == []
    out = phone.send(phone.request("ACK", branch="z9hG4bKack", cseq=1, to_tag=phone.to_tag), 1.2)
    assert len(byes(out)) == 1
    (ended,) = [e for e in agent.events() if isinstance(e, CallEnded)]
    assert ended.reason == "max-duration"
