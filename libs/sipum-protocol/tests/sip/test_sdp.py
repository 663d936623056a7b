"""SDP (RFC 4566) parse/generate and offer/answer (RFC 3264)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sipum_protocol.sip.sdp import (
    CODECS,
    Codec,
    NoCommonCodec,
    SdpParseError,
    SessionDescription,
    make_offer,
    negotiate,
    stream_choices,
)

ALL = ["PCMU", "PCMA", "G722", "opus", "telephone-event"]

OFFER = (
    "v=0\r\n"
    "o=alice 2890844526 2890844527 IN IP4 192.0.2.10\r\n"
    "s=Talk\r\n"
    "i=A call\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "b=AS:128\r\n"
    "t=0 0\r\n"
    "a=tool:softphone\r\n"
    "m=audio 49170 RTP/AVP 8 0 9 96 101\r\n"
    "b=TIAS:64000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:96 opus/48000/2\r\n"
    "a=fmtp:96 useinbandfec=1; maxplaybackrate=16000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:30\r\n"
    "a=maxptime:60\r\n"
    "a=sendrecv\r\n"
    "m=video 51372 RTP/AVP 31\r\n"
    "c=IN IP4 192.0.2.11\r\n"
    "a=rtpmap:31 H261/90000\r\n"
)


def test_parse_fields() -> None:
    sdp = SessionDescription.parse(OFFER.encode())
    assert sdp.origin.username == "alice" and sdp.origin.session_version == "2890844527"
    assert sdp.session_name == "Talk"
    assert sdp.connection is not None and sdp.connection.host == "192.0.2.10"
    assert sdp.attribute("tool") == "softphone"
    audio, video = sdp.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 49170, "RTP/AVP")
    assert audio.payload_types == [8, 0, 9, 96, 101]
    assert audio.rtpmap[9] == ("G722", 8000, 1)  # static, no rtpmap line
    assert audio.rtpmap[96] == ("opus", 48000, 2)
    assert audio.fmtp[101] == "0-15"
    assert (audio.ptime, audio.maxptime) == (30, 60)
    assert sdp.direction(audio) == "sendrecv"
    video_conn, audio_conn = sdp.connection_for(video), sdp.connection_for(audio)
    assert video_conn is not None and video_conn.host == "192.0.2.11"
    assert audio_conn is not None and audio_conn.host == "192.0.2.10"


def test_round_trip_keeps_every_line_in_rfc_order() -> None:
    sdp = SessionDescription.parse(OFFER)
    assert str(sdp) == OFFER
    assert bytes(SessionDescription.parse(bytes(sdp))) == OFFER.encode()


def test_bare_lf_and_ipv6() -> None:
    text = (
        "v=0\no=- 1 1 IN IP6 2001:db8::1\ns=-\nc=IN IP6 2001:db8::1\nt=0 0\n"
        "m=audio 4000 RTP/AVP 0\na=recvonly\n"
    )
    sdp = SessionDescription.parse(text)
    assert sdp.connection is not None and sdp.connection.addrtype == "IP6"
    assert sdp.direction(sdp.media[0]) == "recvonly"
    ans = negotiate(sdp, ALL, address="2001:db8::2", port=5000)
    assert ans.connection is not None and str(ans.connection) == "IN IP6 2001:db8::2"
    assert ans.origin.addrtype == "IP6"
    assert ans.media[0].direction_attribute == "sendonly"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "o=- 1 1 IN IP4 h\r\n",
        "v=1\r\n",
        "v=0\r\nm=audio x RTP/AVP 0\r\n",
        "v=0\r\nbogus\r\n",
        "v=0\r\nc=IN IPX h\r\n",
        "v=0\r\nt=now\r\n",
    ],
)
def test_parse_errors(bad: str) -> None:
    with pytest.raises(SdpParseError):
        SessionDescription.parse(bad)


def test_negotiate_follows_offerer_order_and_keeps_payload_types() -> None:
    offer = SessionDescription.parse(OFFER)
    ans = negotiate(offer, ALL, address="198.51.100.5", port=30000, session_id="77")
    assert len(ans.media) == 2  # same number of m= lines (RFC 3264 §6)
    audio, video = ans.media
    assert audio.formats == ["8", "101"]  # offerer's first supported + telephone-event
    assert audio.port == 30000
    assert ("rtpmap", "8 PCMA/8000") in audio.attributes
    assert ("fmtp", "101 0-15") in audio.attributes
    assert audio.ptime == 20
    assert audio.direction_attribute == "sendrecv"
    assert video.port == 0 and video.formats == ["31"]  # rejected
    assert ans.origin.session_id == "77" and ans.origin.address == "198.51.100.5"
    # and the whole answer survives a round trip
    assert str(SessionDescription.parse(bytes(ans))) == str(ans)


def test_negotiate_our_preference_and_opus_payload_type() -> None:
    offer = SessionDescription.parse(OFFER)
    ans = negotiate(offer, ["opus", "PCMU", "telephone-event"], prefer="ours", port=4000)
    assert ans.media[0].formats == ["96", "101"]
    assert ans.media[0].fmtp[96] == "useinbandfec=1; maxplaybackrate=16000"
    # offerer's order: PCMA is not supported here, so PCMU (offered second) wins over opus
    ans2 = negotiate(offer, ["opus", "PCMU"], port=4000)
    assert ans2.media[0].formats == ["0"]


@pytest.mark.parametrize(
    ("offered", "ours", "expected"),
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "recvonly", "recvonly"),
        ("recvonly", "recvonly", "inactive"),
    ],
)
def test_direction_is_mirrored(offered: str, ours: str, expected: str) -> None:
    offer = SessionDescription.parse(OFFER.replace("a=sendrecv", f"a={offered}"))
    ans = negotiate(offer, ALL, port=4000, direction=ours)
    assert ans.direction(ans.media[0]) == expected
    choice = stream_choices(ans, offer)[0]
    assert choice.direction == expected


def test_session_level_direction_and_old_style_hold() -> None:
    text = OFFER.replace("a=sendrecv\r\n", "").replace("a=tool:softphone", "a=sendonly")
    ans = negotiate(SessionDescription.parse(text), ALL, port=4000)
    assert ans.media[0].direction_attribute == "recvonly"
    held = OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0")
    ans = negotiate(SessionDescription.parse(held), ALL, port=4000)
    assert ans.media[0].direction_attribute == "recvonly"


def test_no_common_codec_raises() -> None:
    offer = SessionDescription.parse(OFFER)
    with pytest.raises(NoCommonCodec):
        negotiate(offer, ["telephone-event"], port=4000)
    only_video = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 31\r\n"
    )
    with pytest.raises(NoCommonCodec):
        negotiate(only_video, ALL, port=4000)
    srtp = SessionDescription.parse(OFFER.replace("RTP/AVP 8", "RTP/SAVP 8"))
    with pytest.raises(NoCommonCodec):
        negotiate(srtp, ALL, port=4000)


def test_second_audio_stream_rejected() -> None:
    text = OFFER.replace("m=video 51372 RTP/AVP 31", "m=audio 51372 RTP/AVP 0")
    ans = negotiate(SessionDescription.parse(text), ALL, port=4000)
    assert [m.port for m in ans.media] == [4000, 0]


def test_g722_static_without_rtpmap() -> None:
    text = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 9\r\n"
    ans = negotiate(SessionDescription.parse(text), ALL, port=4000, ptime=None)
    assert ans.media[0].formats == ["9"] and ans.media[0].ptime is None
    assert ("rtpmap", "9 G722/8000") in ans.media[0].attributes


def test_make_offer_and_answer_in_ack() -> None:
    offer = make_offer(ALL, address="192.0.2.50", port=40000, session_id="5")
    m = offer.media[0]
    assert m.formats == ["0", "8", "9", "111", "101"]
    assert m.rtpmap[111] == ("opus", 48000, 2)
    assert m.fmtp[101] == "0-16"
    assert m.direction_attribute == "sendrecv" and m.ptime == 20
    parsed = SessionDescription.parse(bytes(offer))
    assert parsed.media[0].payload_types == [0, 8, 9, 111, 101]
    # the peer answers (we play its role with negotiate), then we learn what to send
    answer = negotiate(parsed, ["PCMA", "telephone-event"], address="192.0.2.99", port=6000)
    choices = stream_choices(offer, answer)
    assert len(choices) == 1
    c = choices[0]
    assert (c.codec.name, c.codec.payload_type, c.telephone_event) == ("PCMA", 8, 101)
    assert (c.remote_address, c.remote_port, c.ptime, c.direction) == (
        "192.0.2.99",
        6000,
        20,
        "sendrecv",
    )


def test_make_offer_moves_colliding_dynamic_payload_types() -> None:
    custom = Codec("telephone-event", 48000, 1, 101, "0-16")
    offer = make_offer(["opus", "telephone-event", custom], address="192.0.2.1", port=4000)
    assert offer.media[0].payload_types == [111, 101, 96]


def test_stream_choices_uses_peer_ptime_capped_by_maxptime() -> None:
    offer = SessionDescription.parse(OFFER.replace("a=ptime:30", "a=ptime:80"))
    ans = negotiate(offer, ALL, port=4000)
    c = stream_choices(ans, offer)[0]
    assert c.ptime == 60  # maxptime
    assert (c.codec.name, c.remote_address, c.remote_port) == ("PCMA", "192.0.2.10", 49170)


def test_codec_table() -> None:
    assert CODECS["G722"].clock_rate == 8000 and CODECS["G722"].payload_type == 9
    assert CODECS["opus"].rtpmap == "opus/48000/2"
    assert CODECS["PCMU"].is_static and not CODECS["opus"].is_static


# --- robustness: SDP arrives from the network -------------------------------------------

_FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_SDP_ALPHABET = "vosctmab=:/ \r\n0123456789.-INP46RTAVGUrtpmapfmtpsendrecvonlyptime;"


def _exercise(data: bytes | str) -> None:
    try:
        sdp = SessionDescription.parse(data)
    except SdpParseError:
        return
    assert SessionDescription.parse(bytes(sdp)) == SessionDescription.parse(bytes(sdp))
    try:
        answer = negotiate(sdp, ALL, address="192.0.2.1", port=4000)
    except NoCommonCodec:
        return
    for choice in stream_choices(answer, sdp):
        assert 10 <= choice.ptime <= 120
        assert choice.codec.payload_type is not None


@_FAST
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_sdp_parse_error(data: bytes) -> None:
    _exercise(data)


@_FAST
@given(st.text(alphabet=_SDP_ALPHABET, max_size=400))
def test_sdp_like_text(text: str) -> None:
    _exercise("v=0\r\n" + text)


@_FAST
@given(st.integers(0, len(OFFER)), st.text(max_size=30), st.integers(0, len(OFFER)))
def test_mutated_offer(pos: int, insert: str, cut: int) -> None:
    mutated = OFFER[:pos] + insert + OFFER[pos:]
    _exercise(mutated[: max(cut, 5)])


def test_odd_ptime_values() -> None:
    for value in ("nan", "inf", "-5", "1e9", "20.5"):
        offer = SessionDescription.parse(OFFER.replace("a=ptime:30", f"a=ptime:{value}"))
        ans = negotiate(offer, ALL, port=4000)
        assert 10 <= stream_choices(ans, offer)[0].ptime <= 120
