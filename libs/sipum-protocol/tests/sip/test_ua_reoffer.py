"""Answers to new offers in an established session (RFC 3264 §8): hold, resume, refusal."""

from __future__ import annotations

import pytest
from sipum_protocol.sip.sdp import parse_sdp
from sipum_protocol.sip.ua.reoffer import NotAcceptableOffer, answer_reoffer, offer_direction

OURS = (
    b"v=0\r\no=sipum 10 20 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)


def offer(
    direction: str = "sendrecv", *, address: str = "198.51.100.1", formats: str = "0 8"
) -> bytes:
    lines = [
        "v=0",
        "o=phone 1 2 IN IP4 198.51.100.1",
        "s=-",
        f"c=IN IP4 {address}",
        "t=0 0",
        f"m=audio 5004 RTP/AVP {formats}",
    ]
    names = {"0": "PCMU", "8": "PCMA", "18": "G729", "9": "G722"}
    lines += [f"a=rtpmap:{pt} {names[pt]}/8000" for pt in formats.split()]
    lines.append(f"a={direction}")
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("sendonly", "recvonly"),
        ("inactive", "inactive"),
        ("recvonly", "sendonly"),
        ("sendrecv", "sendrecv"),
    ],
)
def test_direction_is_mirrored(offered: str, answered: str) -> None:
    answer = answer_reoffer(OURS, offer(offered))
    sdp = parse_sdp(answer)
    assert sdp.direction(sdp.media[0]) == answered
    assert sdp.origin.session_version == "21"  # §8: a changed description has a higher version
    assert sdp.media[0].port == 40000 and sdp.media[0].formats == ["8", "101"]
    assert offer_direction(offer(offered)) == offered


def test_rfc2543_hold_by_zero_address() -> None:
    held = offer("sendrecv", address="0.0.0.0")
    assert offer_direction(held) == "sendonly"
    sdp = parse_sdp(answer_reoffer(OURS, held))
    assert sdp.direction(sdp.media[0]) == "recvonly"


def test_no_common_codec_is_refused() -> None:
    with pytest.raises(NotAcceptableOffer):
        answer_reoffer(OURS, offer(formats="18"))


def test_extra_stream_is_rejected_with_port_zero() -> None:
    video = offer() + b"m=video 5006 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    sdp = parse_sdp(answer_reoffer(OURS, video))
    assert len(sdp.media) == 2 and sdp.media[1].port == 0


def test_offer_dropping_a_stream_is_refused() -> None:
    with pytest.raises(NotAcceptableOffer):
        answer_reoffer(OURS + b"m=video 40002 RTP/AVP 96\r\n", offer())
