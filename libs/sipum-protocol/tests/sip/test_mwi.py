"""RFC 3842 §5.2 message summary bodies: building, parsing, bounds and clear errors."""

from __future__ import annotations

import pytest
from sipum_protocol.sip.mwi import (
    MAX_BODY,
    MessageCounts,
    MessageSummary,
    MessageSummaryError,
    build_summary,
    parse_summary,
)


def test_build_voice_summary() -> None:
    body = build_summary(MessageSummary.for_voice("sip:alice@example.com", 2, 8, 0, 2))
    assert body == (
        b"Messages-Waiting: yes\r\n"
        b"Message-Account: sip:alice@example.com\r\n"
        b"Voice-Message: 2/8 (0/2)\r\n"
    )


def test_nothing_new_is_no() -> None:
    summary = MessageSummary.for_voice("sip:bob@example.com", 0, 3)
    assert summary.waiting is False
    assert build_summary(summary).startswith(b"Messages-Waiting: no\r\n")


def test_round_trip() -> None:
    summary = MessageSummary.for_voice("sip:alice@example.com", 1, 0)
    assert parse_summary(build_summary(summary)) == summary


def test_parse_rfc3842_example_with_other_classes_and_message_headers() -> None:
    # RFC 3842 §5.2 example (with optional message headers after the empty line).
    body = (
        b"Messages-Waiting: yes\r\n"
        b"Message-Account: sip:alice@vmail.example.com\r\n"
        b"Voice-Message: 4/8 (1/2)\r\n"
        b"Fax-Message: 1/0\r\n"
        b"\r\n"
        b"To: <alice@atlanta.example.com>\r\n"
        b"From: <bob@biloxi.example.com>\r\n"
    )
    summary = parse_summary(body)
    assert summary.waiting is True
    assert summary.account == "sip:alice@vmail.example.com"
    assert summary.voice == MessageCounts(4, 8, 1, 2)
    assert summary.others == {"fax-message": MessageCounts(1, 0)}


def test_parse_is_lenient_on_case_and_spacing() -> None:
    summary = parse_summary(b"messages-waiting:NO\nvoice-message: 0 / 5 ( 0 / 1 )\n")
    assert summary.waiting is False
    assert summary.voice == MessageCounts(0, 5, 0, 1)
    assert summary.account is None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "no Messages-Waiting"),
        (b"Voice-Message: 1/0\r\n", "must start with Messages-Waiting"),
        (b"Messages-Waiting: maybe\r\n", "yes or no"),
        (b"Messages-Waiting: yes\r\nVoice-Message: 1\r\n", "counts must read"),
        (b"Messages-Waiting: yes\r\nVoice-Message: -1/0\r\n", "counts must read"),
        (b"Messages-Waiting: yes\r\ngarbage\r\n", "line 2: no ':'"),
        (b"Messages-Waiting: yes\r\n\xff\xfe\r\n", "not UTF-8"),
        (b"Messages-Waiting: yes\r\nVoice-Message: 99999999999/0\r\n", "counts must read"),
        (b"Messages-Waiting: yes\r\nVoice-Message: 4294967295/0\r\n", "integer 0.."),
    ],
)
def test_parse_errors_say_what_is_wrong(body: bytes, error: str) -> None:
    with pytest.raises(MessageSummaryError, match=error):
        parse_summary(body)


def test_parse_is_bounded() -> None:
    with pytest.raises(MessageSummaryError, match="longer than"):
        parse_summary(b"Messages-Waiting: no\r\n" + b"X-Pad: " + b"a" * MAX_BODY + b"\r\n")
    with pytest.raises(MessageSummaryError, match="more than"):
        parse_summary(b"Messages-Waiting: no\r\n" + b"X: y\r\n" * 100)


def test_build_refuses_bad_values() -> None:
    with pytest.raises(MessageSummaryError):
        MessageCounts(new=-1)
    with pytest.raises(MessageSummaryError, match="one short line"):
        build_summary(MessageSummary.for_voice("sip:a@b\r\nX: y", 1, 0))
    with pytest.raises(MessageSummaryError, match="unknown message class"):
        build_summary(MessageSummary(True, others={"bogus": MessageCounts(1)}))
