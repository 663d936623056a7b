"""SIP INFO digits in a call (RFC 6086, legacy usage): ``application/dtmf-relay`` and
``application/dtmf`` bodies → 200 + ``DtmfReceived`` in order; other bodies 415 with
``Accept``; an Info Package 469; INFO outside a dialog 481; the call goes on."""

from __future__ import annotations

import pytest
from sipum_protocol.sip.dtmf_info import DtmfInfo, parse_dtmf_info
from sipum_protocol.sip.message import SipResponse
from sipum_protocol.sip.ua import CallState, DtmfReceived, UserAgent

from .test_ua import Phone, ack, answered_call, ua  # noqa: F401 - the fixture


def info(phone: Phone, n: int, body: str, content_type: str, extra: str = "") -> SipResponse:
    phone.cseq = n
    (resp,) = phone.send(
        phone.request(
            "INFO", branch=f"z9hG4bKi{n}", to_tag=phone.to_tag, body=body,
            content_type=content_type, extra=extra,
        ),
        float(n),
    )  # fmt: skip
    assert isinstance(resp, SipResponse)
    return resp


def test_dtmf_relay_and_dtmf_bodies_become_digits_in_order(ua: UserAgent) -> None:  # noqa: F811
    phone = Phone(ua)
    call, _ = answered_call(ua, phone)
    ack(phone, 0.1)
    ua.events()
    assert info(phone, 2, "Signal=5\r\nDuration=160\r\n", "application/dtmf-relay").status == 200
    assert info(phone, 3, "Signal= #\r\n", "application/dtmf-relay").status == 200
    assert info(phone, 4, "7", "application/dtmf").status == 200
    assert info(phone, 5, "Signal=10\r\nDuration=80\r\n", "application/dtmf-relay").status == 200
    got = [(e.digit, e.duration_ms) for e in ua.events() if isinstance(e, DtmfReceived)]
    assert got == [("5", 160), ("#", 100), ("7", 100), ("*", 80)]
    assert call.state is CallState.CONFIRMED


def test_other_info_bodies_are_refused_and_the_call_goes_on(ua: UserAgent) -> None:  # noqa: F811
    phone = Phone(ua)
    call, _ = answered_call(ua, phone)
    ack(phone, 0.1)
    ua.events()
    refused = info(phone, 2, "hello", "text/plain")
    assert refused.status == 415
    assert "application/dtmf-relay" in (refused.headers.get("Accept") or "")
    assert info(phone, 3, "Signal=X\r\n", "application/dtmf-relay").status == 415
    package = info(phone, 4, "Signal=1\r\n", "application/dtmf-relay", extra="Info-Package: foo")
    assert package.status == 469
    assert info(phone, 5, "", "application/dtmf-relay").status == 200  # no body: nothing
    assert [e for e in ua.events() if isinstance(e, DtmfReceived)] == []
    assert call.state is CallState.CONFIRMED


def test_info_outside_a_dialog_is_481(ua: UserAgent) -> None:  # noqa: F811
    phone = Phone(ua)
    (resp,) = phone.send(
        phone.request("INFO", branch="z9hG4bKo", body="5", content_type="application/dtmf"), 0.0
    )
    assert isinstance(resp, SipResponse) and resp.status == 481


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/dtmf-relay", b"Signal=9\nDuration=250", DtmfInfo("9", 250)),
        ("Application/DTMF-Relay; charset=utf-8", b"signal=a\r\n", DtmfInfo("A")),
        ("application/dtmf-relay", b"Signal=11\r\nDuration=oops\r\n", DtmfInfo("#")),
        ("application/dtmf", b" 0 \r\n", DtmfInfo("0")),
    ],
)
def test_parse(content_type: str, body: bytes, expected: DtmfInfo) -> None:
    assert parse_dtmf_info(content_type, body) == expected


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/dtmf-relay", b"Duration=100"),
        ("application/dtmf-relay", b"Signal=55"),
        ("application/dtmf", b""),
        ("text/plain", b"Signal=1"),
        (None, b"Signal=1"),
    ],
)
def test_parse_refuses(content_type: str | None, body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_dtmf_info(content_type, body)
