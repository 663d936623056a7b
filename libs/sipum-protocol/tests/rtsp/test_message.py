import pytest
from sipum_protocol.rtsp.message import (
    Headers,
    InterleavedFrame,
    RtspFramer,
    RtspParseError,
    RtspRequest,
    RtspResponse,
)

OPTIONS = b"OPTIONS rtsp://127.0.0.1:8554/alice/inbox/67212.wav RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf59.27.100\r\n\r\n"


def test_request_parsed_with_headers_case_insensitive() -> None:
    [request] = RtspFramer().feed(OPTIONS)
    assert isinstance(request, RtspRequest)
    assert request.method == "OPTIONS"
    assert request.url.endswith("/67212.wav")
    assert request.cseq == "1"
    assert request.headers.get("user-agent") == "Lavf59.27.100"


def test_requests_split_across_segments_and_joined_in_one() -> None:
    framer = RtspFramer()
    assert framer.feed(OPTIONS[:10]) == []
    assert framer.feed(OPTIONS[10:-1]) == []
    items = framer.feed(OPTIONS[-1:] + OPTIONS + OPTIONS[:5])
    assert [i.method for i in items] == ["OPTIONS", "OPTIONS"]
    [third] = framer.feed(OPTIONS[5:])
    assert third.method == "OPTIONS" and third.cseq == "1"


def test_body_framed_by_content_length() -> None:
    body = b"position\r\n"
    data = (
        b"GET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 7\r\nSession: ABC;timeout=60\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body
    framer = RtspFramer()
    assert framer.feed(data[:-3]) == []
    [request] = framer.feed(data[-3:])
    assert request.body == body and request.session_id == "ABC"


def test_interleaved_frames_between_requests() -> None:
    rtcp = bytes(range(40))
    frame = bytes(InterleavedFrame(1, rtcp))
    assert frame[:4] == b"$\x01\x00\x28"
    framer = RtspFramer()
    items = framer.feed(frame[:3])
    assert items == []
    items = framer.feed(frame[3:] + OPTIONS)
    assert items[0] == InterleavedFrame(1, rtcp)
    assert items[1].method == "OPTIONS"


def test_rtsp_2_gets_505_with_cseq() -> None:
    with pytest.raises(RtspParseError) as err:
        RtspFramer().feed(b"OPTIONS rtsp://h/ RTSP/2.0\r\nCSeq: 1\r\n\r\n")
    assert err.value.status == 505 and err.value.cseq == "1"


@pytest.mark.parametrize(
    "data",
    [
        b"OPTIONS rtsp://h/ RTSP/1.0\r\n\r\n",  # no CSeq
        b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: x\r\n\r\n",
        b"OPTIONS rtsp://h/\r\nCSeq: 1\r\n\r\n",
        b"OPTIONS rtsp://h/ HTTP/1.1\r\nCSeq: 1\r\n\r\n",
        b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\nno colon here\r\n\r\n",
        b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -3\r\n\r\n",
        b"\xff\xfe rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\n\r\n",
    ],
)
def test_malformed_requests_are_400(data: bytes) -> None:
    with pytest.raises(RtspParseError) as err:
        RtspFramer().feed(data)
    assert err.value.status == 400


def test_limits_on_head_headers_and_body() -> None:
    with pytest.raises(RtspParseError) as err:
        RtspFramer(max_head=100).feed(b"OPTIONS rtsp://h/" + b"a" * 200)
    assert err.value.status == 413
    many = b"".join(b"X-%d: y\r\n" % i for i in range(100))
    with pytest.raises(RtspParseError):
        RtspFramer(max_headers=64).feed(
            b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\n" + many + b"\r\n"
        )
    with pytest.raises(RtspParseError) as err:
        RtspFramer(max_body=10).feed(
            b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 11\r\n\r\n"
        )
    assert err.value.status == 413


def test_response_serialisation() -> None:
    headers = Headers([("CSeq", "3"), ("Content-Type", "application/sdp")])
    data = bytes(RtspResponse(200, headers, b"v=0\r\n"))
    assert data.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 3\r\n")
    assert b"Content-Length: 5\r\n\r\nv=0\r\n" in data
    assert bytes(RtspResponse(454, Headers([("CSeq", "4")]))).startswith(
        b"RTSP/1.0 454 Session Not Found"
    )


def test_request_round_trip() -> None:
    request = RtspRequest(
        "SETUP",
        "rtsp://h/a/trackID=0",
        Headers([("CSeq", "2"), ("Transport", "RTP/AVP;unicast;client_port=5000-5001")]),
    )
    [again] = RtspFramer().feed(bytes(request))
    assert again.method == "SETUP" and again.headers.get("transport") == request.headers.get(
        "Transport"
    )
