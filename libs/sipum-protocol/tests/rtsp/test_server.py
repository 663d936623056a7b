"""The connection state machine driven through the sequence ffmpeg and GStreamer send."""

from sipum_protocol.rtsp.describe import PCMU
from sipum_protocol.rtsp.message import InterleavedFrame, RtspFramer, RtspRequest, RtspResponse
from sipum_protocol.rtsp.server import (
    Denial,
    MediaInfo,
    Pause,
    Play,
    RtspServerConnection,
    Teardown,
)

BASE = "rtsp://127.0.0.1:8554/alice/inbox/67212.wav"
MEDIA = MediaInfo(title="alice 67212", duration=5.0, fmt=PCMU, sdp_session_id=67212)


def req(method: str, url: str, cseq: int, **headers: str) -> RtspRequest:
    text = f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n"
    text += "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    [request] = RtspFramer().feed((text + "\r\n").encode())
    assert isinstance(request, RtspRequest)
    return request


def parsed(response: RtspResponse | None) -> tuple[int, dict[str, str], bytes]:
    assert response is not None
    head, _, body = bytes(response).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_ffmpeg_udp_sequence() -> None:
    conn = RtspServerConnection(last_activity=0)
    status, headers, _ = parsed(conn.handle(req("OPTIONS", BASE + "?token=t", 1), 0).response)
    assert status == 200 and "GET_PARAMETER" in headers["Public"]

    describe = req("DESCRIBE", BASE + "?token=t", 2, Accept="application/sdp")
    target = conn.target_of(describe)
    assert target is not None and target.token == "t" and target.message_id == 67212
    status, headers, body = parsed(conn.handle(describe, 0, media=MEDIA).response)
    assert status == 200 and headers["Content-Base"] == BASE + "/"
    assert int(headers["Content-Length"]) == len(body) and b"a=range:npt=0-5.000" in body

    setup = req(
        "SETUP", BASE + "/trackID=0", 3, Transport="RTP/AVP/UDP;unicast;client_port=5000-5001"
    )
    assert conn.is_granted(conn.target_of(setup))  # no token on the track URL: granted by DESCRIBE
    outcome = conn.handle(setup, 0.1, media=MEDIA, allocate_ports=lambda: (30000, 30001))
    status, headers, _ = parsed(outcome.response)
    assert status == 200
    session_id = headers["Session"].split(";")[0]
    assert headers["Session"].endswith(";timeout=60")
    assert "client_port=5000-5001;server_port=30000-30001;ssrc=" in headers["Transport"]

    play = req("PLAY", BASE + "/", 4, Session=session_id, Range="npt=0.000-")
    outcome = conn.handle(play, 0.2, media=MEDIA)
    assert outcome.response is None and isinstance(outcome.action, Play)
    assert outcome.action.start == 0.0 and outcome.action.end == 5.0
    status, headers, _ = parsed(conn.play_response(play, outcome.action, seq=1234, rtptime=99))
    assert status == 200 and headers["Range"] == "npt=0.000-5.000"
    assert headers["RTP-Info"] == f"url={BASE}/trackID=0;seq=1234;rtptime=99"

    status, _, _ = parsed(
        conn.handle(req("GET_PARAMETER", BASE + "/", 5, Session=session_id), 30).response
    )
    assert status == 200
    outcome = conn.handle(req("PAUSE", BASE + "/", 6, Session=session_id), 31)
    assert isinstance(outcome.action, Pause) and parsed(outcome.response)[0] == 200
    resume = conn.handle(req("PLAY", BASE + "/", 7, Session=session_id), 32, media=MEDIA)
    assert isinstance(resume.action, Play) and resume.action.start is None
    outcome = conn.handle(req("TEARDOWN", BASE + "/", 8, Session=session_id), 33)
    assert isinstance(outcome.action, Teardown) and not conn.sessions


def test_tcp_interleaved_setup() -> None:
    conn = RtspServerConnection(last_activity=0)
    setup = req("SETUP", BASE + "/trackID=0", 3, Transport="RTP/AVP/TCP;unicast;interleaved=0-1")
    status, headers, _ = parsed(conn.handle(setup, 0, media=MEDIA).response)
    assert status == 200 and headers["Transport"].startswith(
        "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc="
    )


def test_error_statuses() -> None:
    conn = RtspServerConnection(last_activity=0)
    # 454: no such session; 455: PLAY before SETUP is impossible without a session, PAUSE in INIT
    assert (
        parsed(conn.handle(req("PLAY", BASE, 1, Session="NOPE"), 0, media=MEDIA).response)[0] == 454
    )
    assert parsed(conn.handle(req("PAUSE", BASE, 2), 0).response)[0] == 454
    # 459: SETUP on the aggregate URL
    aggregate = req("SETUP", BASE, 3, Transport="RTP/AVP/TCP;interleaved=0-1")
    assert parsed(conn.handle(aggregate, 0, media=MEDIA).response)[0] == 459
    # 461: multicast only
    multicast = req("SETUP", BASE + "/trackID=0", 4, Transport="RTP/AVP;multicast")
    status, headers, _ = parsed(conn.handle(multicast, 0, media=MEDIA).response)
    assert status == 461
    # 401 with a challenge, 403, 404 from the access check / URL
    conn = RtspServerConnection(last_activity=0)
    challenge = 'Digest realm="example.com", nonce="n"'
    status, headers, _ = parsed(
        conn.handle(req("DESCRIBE", BASE, 5), 0, denial=Denial(401, challenge)).response
    )
    assert status == 401 and headers["WWW-Authenticate"] == challenge
    assert parsed(conn.handle(req("DESCRIBE", BASE, 6), 0, denial=Denial(403)).response)[0] == 403
    assert parsed(conn.handle(req("DESCRIBE", "rtsp://h/etc/passwd", 7), 0).response)[0] == 404
    assert parsed(conn.handle(req("DESCRIBE", BASE, 8), 0, media=None).response)[0] == 404
    assert not conn.granted  # nothing was allowed
    # 501: not implemented
    assert parsed(conn.handle(req("RECORD", BASE, 9), 0).response)[0] == 501


def test_state_and_range_errors() -> None:
    conn = RtspServerConnection(last_activity=0)
    setup = req("SETUP", BASE + "/trackID=0", 1, Transport="RTP/AVP/TCP;interleaved=0-1")
    session_id = parsed(conn.handle(setup, 0, media=MEDIA).response)[1]["Session"].split(";")[0]
    bad_range = req("PLAY", BASE, 2, Session=session_id, Range="npt=9-")
    assert parsed(conn.handle(bad_range, 0, media=MEDIA).response)[0] == 457
    play = conn.handle(req("PLAY", BASE, 3, Session=session_id), 0, media=MEDIA)
    assert isinstance(play.action, Play)
    # re-SETUP while playing: 455 with the methods allowed now
    again = req(
        "SETUP", BASE + "/trackID=0", 4, Session=session_id, Transport="RTP/AVP/TCP;interleaved=0-1"
    )
    status, headers, _ = parsed(conn.handle(again, 0, media=MEDIA).response)
    assert status == 455 and "PAUSE" in headers["Allow"]


def test_sessions_expire_without_keepalive() -> None:
    conn = RtspServerConnection(last_activity=0, session_timeout=60)
    setup = req("SETUP", BASE + "/trackID=0", 1, Transport="RTP/AVP/TCP;interleaved=0-1")
    conn.handle(setup, 0, media=MEDIA)
    assert conn.expire_sessions(59) == []
    [gone] = conn.expire_sessions(61)
    assert not conn.sessions and gone.transport.tcp


class FakeClock:
    """Monotonic seconds that only move when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def test_keepalives_by_request_and_interleaved_rtcp_on_a_fake_clock() -> None:
    clock = FakeClock()
    conn = RtspServerConnection(last_activity=clock.now, session_timeout=60)
    setup = req("SETUP", BASE + "/trackID=0", 1, Transport="RTP/AVP/TCP;interleaved=0-1")
    session_id = parsed(conn.handle(setup, clock.now, media=MEDIA).response)[1]["Session"]
    session_id = session_id.split(";")[0]
    # GET_PARAMETER (ffmpeg's keep-alive, §10.8) at 50 s moves the deadline to 110 s.
    keepalive = req("GET_PARAMETER", BASE, 2, Session=session_id)
    assert parsed(conn.handle(keepalive, clock.advance(50)).response)[0] == 200
    assert conn.expire_sessions(clock.advance(59)) == []
    # A receiver report as a $ frame at 109 s moves it to 169 s.
    frames = conn.receive_data(bytes(InterleavedFrame(1, b"\x81\xc9\x00\x01rtcp")), clock.now)
    assert [type(f) for f in frames] == [InterleavedFrame]
    assert conn.expire_sessions(clock.advance(59.5)) == []
    [gone] = conn.expire_sessions(clock.advance(1))
    assert gone.id == session_id and not conn.sessions


def test_idle_connection_is_reported_unless_playing_on_a_fake_clock() -> None:
    clock = FakeClock()
    conn = RtspServerConnection(last_activity=clock.now, idle_timeout=120)
    assert not conn.idle(clock.advance(120))
    assert conn.idle(clock.advance(0.5))  # nothing received since it was accepted
    options = b"OPTIONS " + BASE.encode() + b" RTSP/1.0\r\nCSeq: 1\r\n\r\n"
    [request] = conn.receive_data(options, clock.now)
    assert isinstance(request, RtspRequest) and not conn.idle(clock.advance(120))
    # A playing session keeps the connection open however long nothing arrives (UDP RTP).
    setup = req("SETUP", BASE + "/trackID=0", 2, Transport="RTP/AVP/TCP;interleaved=0-1")
    session_id = parsed(conn.handle(setup, clock.now, media=MEDIA).response)[1]["Session"]
    play = req("PLAY", BASE, 3, Session=session_id.split(";")[0])
    assert isinstance(conn.handle(play, clock.now, media=MEDIA).action, Play)
    assert not conn.idle(clock.advance(3600))
