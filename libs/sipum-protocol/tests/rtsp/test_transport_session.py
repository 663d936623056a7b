import pytest
from sipum_protocol.rtsp.describe import PCMU, describe_message
from sipum_protocol.rtsp.session import (
    InvalidRange,
    InvalidState,
    RtspSession,
    State,
    parse_npt_range,
)
from sipum_protocol.rtsp.transport import UnsupportedTransport, choose_transport


def test_udp_transport_as_ffmpeg_sends_it() -> None:
    spec = choose_transport("RTP/AVP/UDP;unicast;client_port=21234-21235")
    assert not spec.tcp and spec.client_ports == (21234, 21235)
    reply = spec.reply(server_ports=(30000, 30001), ssrc=0xDEADBEEF)
    assert reply == (
        "RTP/AVP/UDP;unicast;client_port=21234-21235;server_port=30000-30001;ssrc=DEADBEEF"
    )


def test_tcp_interleaved_and_preference_order() -> None:
    spec = choose_transport("RTP/AVP/TCP;unicast;interleaved=0-1")
    assert spec.tcp and spec.interleaved == (0, 1)
    assert (
        spec.reply(server_ports=None, ssrc=1) == "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=00000001"
    )
    # First supported one wins; multicast is skipped.
    spec = choose_transport(
        "RTP/AVP;multicast;port=4000-4001,RTP/AVP;unicast;client_port=5000-5001"
    )
    assert spec.client_ports == (5000, 5001)
    assert not choose_transport(
        "RTP/AVP/TCP;interleaved=2-3,RTP/AVP;unicast;client_port=6000-6001", allow_tcp=False
    ).tcp


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "RTP/AVP;multicast",
        "RAW/RAW/UDP;unicast;client_port=1-2",
        "RTP/AVP;unicast",
        "RTP/AVP;unicast;client_port=abc",
        "RTP/AVP;unicast;client_port=70000-70001",
        "RTP/AVP/TCP;interleaved=300-301",
    ],
)
def test_unsupported_transports(header: str | None) -> None:
    with pytest.raises(UnsupportedTransport):
        choose_transport(header)


def test_state_machine_follows_rfc2326_table() -> None:
    session = RtspSession(
        url="rtsp://h/a", transport=choose_transport("RTP/AVP/TCP;interleaved=0-1"), last_seen=0
    )
    with pytest.raises(InvalidState):
        session.apply("PLAY")
    assert session.apply("SETUP") is State.READY
    assert session.apply("PLAY") is State.PLAYING
    assert session.apply("PAUSE") is State.READY
    assert session.apply("PLAY") is State.PLAYING
    assert session.apply("TEARDOWN") is State.INIT
    assert session.header.endswith(";timeout=60") and len(session.id) == 16


def test_session_expiry() -> None:
    session = RtspSession(
        url="u", transport=choose_transport("RTP/AVP/TCP"), timeout=60, last_seen=40.0
    )
    assert not session.expired(100.0) and session.expired(100.5)
    session.touch(100.0)
    assert not session.expired(159.0)
    assert session.expired(160.5)


def test_npt_ranges() -> None:
    assert parse_npt_range(None, 5.0) == (None, 5.0)
    assert parse_npt_range("npt=0.000-", 5.0) == (0.0, 5.0)
    assert parse_npt_range("npt=2.5-4", 5.0) == (2.5, 4.0)
    assert parse_npt_range("npt=0:00:01.5-", 5.0) == (1.5, 5.0)
    assert parse_npt_range("npt=now-", 5.0) == (None, 5.0)
    assert parse_npt_range("npt=1-99", 5.0) == (1.0, 5.0)
    for bad in ("npt=6-", "smpte=0:00:00-", "npt=abc-", "npt=3-2", "npt=5", "npt=-1-"):
        with pytest.raises(InvalidRange):
            parse_npt_range(bad, 5.0)


def test_describe_has_what_ffmpeg_and_gstreamer_need() -> None:
    sdp = describe_message(
        title="alice 67212", duration_s=5.02, fmt=PCMU, session_id=67212
    ).decode()
    lines = sdp.split("\r\n")
    assert "a=control:*" in lines and "a=range:npt=0-5.020" in lines
    assert lines.index("a=control:*") < lines.index("m=audio 0 RTP/AVP 0")
    assert lines[-2] == "a=control:trackID=0"
    assert "a=rtpmap:0 PCMU/8000" in lines and "a=ptime:20" in lines
