"""SIP transports over real loopback sockets: UDP, TCP, TLS, rport/received, keep-alive, 400."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sipum_protocol.sip.message import (
    Headers,
    SipRequest,
    SipResponse,
    make_response,
    new_branch,
    parse_message,
)
from sipum_protocol.sip.transaction import (
    AckReceived,
    CancelReceived,
    Event,
    Peer,
    RequestReceived,
    TimerConfig,
    TransactionTerminated,
)
from sipum_protocol.sip.transport import (
    EndpointConfig,
    SipTimeoutError,
    SipTransportError,
    TransactionEndpoint,
)

pytestmark = pytest.mark.timeout(30)

FAST = TimerConfig(t1=0.02, t2=0.08, t4=0.1, trying_delay=0.05)


def new_request(method: str, uri: str, *, call_id: str = "t-1", cseq: int = 1) -> SipRequest:
    headers = Headers()
    headers.add("From", "<sip:alice@127.0.0.1>;tag=a1")
    headers.add("To", f"<{uri}>")
    headers.add("Call-ID", call_id)
    headers.add("CSeq", f"{cseq} {method}")
    return SipRequest(method, uri, headers)


def raw(method: str, via: str, *, body: bytes = b"", call_id: str = "raw-1") -> bytes:
    return (
        f"{method} sip:vm@127.0.0.1 SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\n"
        "To: <sip:vm@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def answer_200(endpoint: TransactionEndpoint, event: Event) -> None:
    if isinstance(event, RequestReceived):
        endpoint.send_response(event.transaction, make_response(event.request, 200, to_tag="s1"))


class UdpQueue(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.queue.put_nowait((data, addr))


async def udp_socket() -> tuple[asyncio.DatagramTransport, UdpQueue]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(UdpQueue, local_addr=("127.0.0.1", 0))
    return transport, protocol


async def next_message(q: UdpQueue, wait: float = 2.0) -> SipRequest | SipResponse:
    data, _ = await asyncio.wait_for(q.queue.get(), wait)
    return parse_message(data)


async def read_message(reader: asyncio.StreamReader, wait: float = 2.0) -> SipResponse:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait)
    msg = parse_message(head)
    length = int(msg.headers.get("Content-Length") or 0)
    if length:
        await asyncio.wait_for(reader.readexactly(length), wait)
    assert isinstance(msg, SipResponse)
    return msg


@pytest.fixture
async def server() -> AsyncIterator[TransactionEndpoint]:
    async with TransactionEndpoint(
        EndpointConfig(udp_port=0, tcp_port=0, timers=FAST), on_event=answer_200
    ) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1, made now with the openssl CLI."""
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
            "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return str(cert), str(key)


# ---------------------------------------------------------------- UDP


async def test_udp_request_and_response_between_two_endpoints(server: TransactionEndpoint) -> None:
    async with TransactionEndpoint(EndpointConfig(udp_port=0, timers=FAST)) as client:
        host, port = server.addresses["UDP"]
        request = new_request("OPTIONS", f"sip:vm@{host}:{port}")
        response = await client.send_request(request, Peer("UDP", host, port))
        assert response.status == 200
        # Our Via was added with rport; the server filled it in (RFC 3581).
        assert response.top_via.rport == client.addresses["UDP"][1]
        assert response.top_via.branch == request.top_via.branch


async def test_udp_rport_response_goes_to_the_source_port(server: TransactionEndpoint) -> None:
    transport, q = await udp_socket()
    try:
        host, port = server.addresses["UDP"]
        # The Via claims port 9 and a host name; rport asks for symmetric routing.
        transport.sendto(
            raw("OPTIONS", f"SIP/2.0/UDP client.invalid:9;branch={new_branch()};rport"),
            (host, port),
        )
        response = await next_message(q)
        source_port = transport.get_extra_info("sockname")[1]
        assert isinstance(response, SipResponse) and response.status == 200
        assert response.top_via.rport == source_port
        assert response.top_via.received == "127.0.0.1"
    finally:
        transport.close()


async def test_udp_received_without_rport_uses_sent_by_port(server: TransactionEndpoint) -> None:
    transport, q = await udp_socket()
    try:
        my_port = transport.get_extra_info("sockname")[1]
        host, port = server.addresses["UDP"]
        # Different host name, no rport: received=127.0.0.1 and the sent-by port (ours).
        transport.sendto(
            raw("OPTIONS", f"SIP/2.0/UDP client.invalid:{my_port};branch={new_branch()}"),
            (host, port),
        )
        response = await next_message(q)
        assert response.top_via.received == "127.0.0.1" and response.top_via.rport is None
    finally:
        transport.close()


async def test_udp_malformed_request_gets_400_and_garbage_is_counted(
    server: TransactionEndpoint,
) -> None:
    transport, q = await udp_socket()
    try:
        host, port = server.addresses["UDP"]
        bad = raw("OPTIONS", f"SIP/2.0/UDP 127.0.0.1;branch={new_branch()};rport").replace(
            b"Max-Forwards: 70", b"Max-Forwards: x"
        )
        transport.sendto(bad, (host, port))
        response = await next_message(q)
        assert isinstance(response, SipResponse) and response.status == 400
        assert response.reason == "Bad Max-Forwards"
        transport.sendto(b"\x16\x03\x01 definitely not SIP\r\n\r\n", (host, port))
        # Loopback UDP from one socket is read in order: once the OPTIONS sent after the
        # garbage is answered, the garbage has been seen (and got no answer).
        transport.sendto(
            raw("OPTIONS", f"SIP/2.0/UDP 127.0.0.1;branch={new_branch()};rport"), (host, port)
        )
        after = await next_message(q)
        assert isinstance(after, SipResponse) and after.status == 200
        assert server.layer.counters.malformed_dropped == 1
        assert q.queue.empty()
    finally:
        transport.close()


async def test_udp_invite_100_trying_and_487_retransmitted_until_ack() -> None:
    """INVITE: 100 within trying_delay, the TU's 486 re-sent by timer G until the ACK."""
    seen: list[Event] = []
    trying_arrived = asyncio.Event()
    terminated = asyncio.Event()

    async def slow_reject(endpoint: TransactionEndpoint, event: Event) -> None:
        seen.append(event)
        if isinstance(event, TransactionTerminated):
            terminated.set()
        if isinstance(event, RequestReceived):
            # A TU slower than trying_delay: it answers only once the 100 has reached the UAC.
            await trying_arrived.wait()
            endpoint.send_response(
                event.transaction, make_response(event.request, 486, to_tag="s1")
            )

    async with TransactionEndpoint(
        EndpointConfig(udp_port=0, timers=FAST), on_event=slow_reject
    ) as ep:
        transport, q = await udp_socket()
        try:
            host, port = ep.addresses["UDP"]
            loop = asyncio.get_running_loop()
            branch = new_branch()
            start = loop.time()
            transport.sendto(
                raw("INVITE", f"SIP/2.0/UDP 127.0.0.1;branch={branch};rport"), (host, port)
            )
            trying = await next_message(q)
            assert isinstance(trying, SipResponse) and trying.status == 100
            assert loop.time() - start < 0.2
            trying_arrived.set()
            arrivals = []
            for _ in range(4):
                msg = await next_message(q)
                assert isinstance(msg, SipResponse) and msg.status == 486
                arrivals.append(loop.time())
            gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
            # G: T1=0.02 doubling to T2=0.08 (loose bounds: a loaded machine is slow, never fast).
            assert gaps[0] >= 0.015 and gaps[1] >= 0.035 and gaps[2] >= 0.07
            ack = raw("ACK", f"SIP/2.0/UDP 127.0.0.1;branch={branch};rport").replace(
                b"To: <sip:vm@127.0.0.1>", b"To: <sip:vm@127.0.0.1>;tag=s1"
            )
            transport.sendto(ack, (host, port))
            # Timer I (T4 after the ACK) ends the transaction; had the ACK not stopped timer
            # G, the 486 would go on until timer H, which would show as a TransactionTimeout.
            await asyncio.wait_for(terminated.wait(), 5)
            late = 0
            while not q.queue.empty():
                q.queue.get_nowait()
                late += 1
            assert late <= 1  # at most one crossed the ACK in flight
            # The ACK was absorbed by the transaction (not passed up), no timer H fired, and
            # timer I ended the transaction.
            assert [type(e).__name__ for e in seen] == ["RequestReceived", "TransactionTerminated"]
        finally:
            transport.close()


async def test_udp_timeout_raises_sip_timeout_error() -> None:
    transport, _ = await udp_socket()  # a peer that never answers
    try:
        async with TransactionEndpoint(EndpointConfig(udp_port=0, timers=FAST)) as client:
            port = transport.get_extra_info("sockname")[1]
            request = new_request("OPTIONS", f"sip:x@127.0.0.1:{port}")
            with pytest.raises(SipTimeoutError):
                await asyncio.wait_for(
                    client.send_request(request, Peer("UDP", "127.0.0.1", port)), 5
                )
    finally:
        transport.close()


async def test_cancel_between_two_endpoints_gives_200_and_487() -> None:
    events: list[Event] = []

    def ring(endpoint: TransactionEndpoint, event: Event) -> None:
        events.append(event)
        if isinstance(event, RequestReceived):
            endpoint.send_response(
                event.transaction, make_response(event.request, 180, to_tag="r1")
            )

    async with (
        TransactionEndpoint(EndpointConfig(udp_port=0, timers=FAST), on_event=ring) as uas,
        TransactionEndpoint(EndpointConfig(udp_port=0, timers=FAST)) as uac,
    ):
        host, port = uas.addresses["UDP"]
        ringing = asyncio.Event()
        invite = uac.send_request(
            new_request("INVITE", f"sip:vm@{host}:{port}"),
            Peer("UDP", host, port),
            on_response=lambda r: ringing.set() if r.status == 180 else None,
        )
        await asyncio.wait_for(ringing.wait(), 2)
        cancel = uac.cancel(invite)
        assert cancel is not None
        assert (await cancel).status == 200
        final = await asyncio.wait_for(invite, 2)
        assert final.status == 487 and final.to.tag == "r1"
        assert [type(e) for e in events if not type(e).__name__.startswith("Transaction")] == [
            RequestReceived,
            CancelReceived,
        ]


async def test_ack_for_2xx_reaches_the_handler() -> None:
    events: list[Event] = []
    acked = asyncio.Event()

    def accept(endpoint: TransactionEndpoint, event: Event) -> None:
        events.append(event)
        if isinstance(event, AckReceived):
            acked.set()
        answer_200(endpoint, event)

    async with (
        TransactionEndpoint(EndpointConfig(udp_port=0, timers=FAST), on_event=accept) as uas,
        TransactionEndpoint(EndpointConfig(udp_port=0, timers=FAST)) as uac,
    ):
        host, port = uas.addresses["UDP"]
        peer = Peer("UDP", host, port)
        invite = new_request("INVITE", f"sip:vm@{host}:{port}")
        ok = await uac.send_request(invite, peer)
        assert ok.status == 200
        ack = new_request("ACK", invite.uri)
        ack.headers.set("To", ok.headers.get("To") or "")
        ack.headers.prepend("Via", uac.via("UDP"))
        uac.send_stateless(ack, peer)
        await asyncio.wait_for(acked.wait(), 5)
        assert any(isinstance(e, AckReceived) for e in events)


# ---------------------------------------------------------------- TCP


async def test_tcp_segmented_message_and_two_messages_in_one_write(
    server: TransactionEndpoint,
) -> None:
    host, port = server.addresses["TCP"]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        via = f"SIP/2.0/TCP 127.0.0.1:1;branch={new_branch()}"
        message = raw("OPTIONS", via, body=b"v=0\r\n", call_id="seg")
        for piece in (message[:7], message[7:60], message[60:-2], message[-2:]):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)
        response = await read_message(reader)
        assert response.status == 200 and response.call_id == "seg"
        # Two messages in one segment: two responses, in order, on the same connection.
        a = raw("OPTIONS", f"SIP/2.0/TCP 127.0.0.1:1;branch={new_branch()}", call_id="a")
        b = raw("OPTIONS", f"SIP/2.0/TCP 127.0.0.1:1;branch={new_branch()}", call_id="b")
        writer.write(a + b)
        assert [(await read_message(reader)).call_id for _ in range(2)] == ["a", "b"]
        assert server.counters.connections_accepted == 1
    finally:
        writer.close()


async def test_tcp_crlf_keepalive_ping_gets_a_pong(server: TransactionEndpoint) -> None:
    reader, writer = await asyncio.open_connection(*server.addresses["TCP"])
    try:
        writer.write(b"\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(2), 2) == b"\r\n"
        assert server.counters.keepalive_pongs == 1
    finally:
        writer.close()


async def test_tcp_idle_connection_is_closed() -> None:
    config = EndpointConfig(udp_port=None, tcp_port=0, idle_timeout=0.2, timers=FAST)
    async with TransactionEndpoint(config, on_event=answer_200) as ep:
        reader, writer = await asyncio.open_connection(*ep.addresses["TCP"])
        try:
            assert await asyncio.wait_for(reader.read(100), 3) == b""  # EOF from the server
            assert ep.counters.connections_closed_idle == 1
            assert ep.connections("TCP") == {}
        finally:
            writer.close()


async def test_tcp_partial_message_hits_the_read_timeout() -> None:
    config = EndpointConfig(udp_port=None, tcp_port=0, read_timeout=0.2, timers=FAST)
    async with TransactionEndpoint(config, on_event=answer_200) as ep:
        reader, writer = await asyncio.open_connection(*ep.addresses["TCP"])
        try:
            writer.write(b"OPTIONS sip:vm@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP")
            assert await asyncio.wait_for(reader.read(100), 3) == b""
            assert ep.counters.connections_closed_read_timeout == 1
        finally:
            writer.close()


async def test_tcp_unframeable_input_closes_the_connection(server: TransactionEndpoint) -> None:
    reader, writer = await asyncio.open_connection(*server.addresses["TCP"])
    try:
        writer.write(
            raw("OPTIONS", "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKx").replace(
                b"Content-Length: 0\r\n", b""
            )
        )
        assert await asyncio.wait_for(reader.read(100), 3) == b""
        assert server.counters.framing_errors == 1
    finally:
        writer.close()


async def test_tcp_connection_reuse_between_endpoints(server: TransactionEndpoint) -> None:
    async with TransactionEndpoint(
        EndpointConfig(udp_port=None, tcp_port=0, timers=FAST)
    ) as client:
        host, port = server.addresses["TCP"]
        peer = Peer("TCP", host, port)
        for i in range(3):
            request = new_request("OPTIONS", f"sip:vm@{host}:{port};transport=tcp", cseq=i + 1)
            assert (await client.send_request(request, peer)).status == 200
        # Concurrent requests before the connection exists share the one being opened.
        async with TransactionEndpoint(
            EndpointConfig(udp_port=None, tcp_port=0, timers=FAST)
        ) as other:
            burst = [
                other.send_request(new_request("OPTIONS", f"sip:vm@{host}:{port}", cseq=i), peer)
                for i in range(5)
            ]
            assert [r.status for r in await asyncio.gather(*burst)] == [200] * 5
            assert other.counters.connections_opened == 1
        assert client.counters.connections_opened == 1
        assert list(client.connections("TCP")) == [peer]
        assert server.counters.connections_accepted == 2


async def test_tcp_max_connections_rejects_the_extra_one() -> None:
    config = EndpointConfig(udp_port=None, tcp_port=0, max_connections=1, timers=FAST)
    async with TransactionEndpoint(config, on_event=answer_200) as ep:
        _, w1 = await asyncio.open_connection(*ep.addresses["TCP"])
        r2, w2 = await asyncio.open_connection(*ep.addresses["TCP"])
        try:
            assert await asyncio.wait_for(r2.read(100), 3) == b""
            assert ep.counters.connections_rejected == 1
            assert len(ep.connections("TCP")) == 1
        finally:
            w1.close()
            w2.close()


async def test_tcp_connect_refused_is_a_transport_error() -> None:
    # A port that was just free: nothing listens there.
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with TransactionEndpoint(
        EndpointConfig(udp_port=None, tcp_port=0, timers=FAST)
    ) as client:
        request = new_request("OPTIONS", f"sip:x@127.0.0.1:{port};transport=tcp")
        with pytest.raises(SipTransportError):
            await asyncio.wait_for(client.send_request(request, Peer("TCP", "127.0.0.1", port)), 5)
        assert client.counters.connect_failures == 1


# ---------------------------------------------------------------- TLS


async def test_tls_request_with_a_self_signed_certificate(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    server_config = EndpointConfig(
        udp_port=None, tls_port=0, tls_certfile=cert, tls_keyfile=key, timers=FAST
    )
    client_config = EndpointConfig(udp_port=None, tls_port=0, tls_certfile=cert, tls_keyfile=key,
                                   tls_cafile=cert, timers=FAST)  # fmt: skip
    async with (
        TransactionEndpoint(server_config, on_event=answer_200) as tls_server,
        TransactionEndpoint(client_config) as client,
    ):
        host, port = tls_server.addresses["TLS"]
        request = new_request("OPTIONS", f"sips:vm@{host}:{port}")
        response = await client.send_request(request, Peer("TLS", host, port))
        assert response.status == 200
        assert response.top_via.transport == "TLS"
        assert client.contact_uri("vm", "TLS").startswith("sips:vm@")
        # A plain ssl client on the same listener: keep-alive pong over TLS too.
        context = ssl.create_default_context(cafile=cert)
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        try:
            writer.write(b"\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(2), 2) == b"\r\n"
        finally:
            writer.close()


async def test_tls_untrusted_server_is_a_transport_error(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    server_config = EndpointConfig(
        udp_port=None, tls_port=0, tls_certfile=cert, tls_keyfile=key, timers=FAST
    )
    client_config = EndpointConfig(
        udp_port=None, tls_port=0, tls_certfile=cert, tls_keyfile=key, timers=FAST
    )  # fmt: skip  (system CAs: ours is not trusted)
    async with (
        TransactionEndpoint(server_config, on_event=answer_200) as tls_server,
        TransactionEndpoint(client_config) as client,
    ):
        host, port = tls_server.addresses["TLS"]
        with pytest.raises(SipTransportError):
            await asyncio.wait_for(
                client.send_request(new_request("OPTIONS", f"sips:vm@{host}:{port}"),
                                    Peer("TLS", host, port)),
                5,
            )  # fmt: skip


async def test_resolve_picks_transport_and_port_from_the_uri(server: TransactionEndpoint) -> None:
    assert await server.resolve("sips:bob@127.0.0.1") == Peer("TLS", "127.0.0.1", 5061)
    assert await server.resolve("sip:bob@localhost:5070;transport=tcp") == Peer(
        "TCP", "127.0.0.1", 5070
    )
    assert await server.resolve("sip:bob@10.0.0.1;maddr=127.0.0.1") == Peer(
        "UDP", "127.0.0.1", 5060
    )


async def test_tcp_response_after_the_connection_closed_goes_to_received_and_sent_by_port() -> None:
    """§18.2.2: the request's connection is gone, so the response opens a new connection to
    the Via's received address at the sent-by port."""
    got: asyncio.Queue[SipResponse] = asyncio.Queue()

    async def listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.put_nowait(await read_message(reader))
        writer.close()

    async def late_answer(endpoint: TransactionEndpoint, event: Event) -> None:
        if isinstance(event, RequestReceived):
            await asyncio.sleep(0.2)
            endpoint.send_response(event.transaction, make_response(event.request, 200))

    callback_server = await asyncio.start_server(listener, "127.0.0.1", 0)
    listen_port = callback_server.sockets[0].getsockname()[1]
    config = EndpointConfig(udp_port=None, tcp_port=0, timers=FAST)
    try:
        async with TransactionEndpoint(config, on_event=late_answer) as ep:
            reader, writer = await asyncio.open_connection(*ep.addresses["TCP"])
            via = f"SIP/2.0/TCP client.invalid:{listen_port};branch={new_branch()}"
            writer.write(raw("OPTIONS", via, call_id="fallback"))
            await writer.drain()
            writer.close()
            response = await asyncio.wait_for(got.get(), 3)
            assert response.status == 200 and response.call_id == "fallback"
            assert response.top_via.received == "127.0.0.1"
            assert ep.counters.connections_opened == 1
    finally:
        callback_server.close()
        await callback_server.wait_closed()


async def test_tcp_malformed_framed_request_gets_400_on_the_same_connection(
    server: TransactionEndpoint,
) -> None:
    reader, writer = await asyncio.open_connection(*server.addresses["TCP"])
    try:
        bad = raw("OPTIONS", f"SIP/2.0/TCP 127.0.0.1:1;branch={new_branch()}").replace(
            b"Max-Forwards: 70", b"Max-Forwards: -1"
        )
        good = raw("OPTIONS", f"SIP/2.0/TCP 127.0.0.1:1;branch={new_branch()}", call_id="ok")
        writer.write(bad + good)
        first = await read_message(reader)
        assert first.status == 400 and first.reason == "Bad Max-Forwards"
        # The framing survived: the next message on the stream is answered normally.
        second = await read_message(reader)
        assert second.status == 200 and second.call_id == "ok"
    finally:
        writer.close()


async def test_tcp_busy_stream_ending_segments_mid_message_is_not_a_read_timeout() -> None:
    config = EndpointConfig(udp_port=None, tcp_port=0, read_timeout=0.3, timers=FAST)
    async with TransactionEndpoint(config, on_event=answer_200) as ep:
        reader, writer = await asyncio.open_connection(*ep.addresses["TCP"])
        try:
            messages = [
                raw("OPTIONS", f"SIP/2.0/TCP 127.0.0.1:1;branch={new_branch()}", call_id=f"m{i}")
                for i in range(8)
            ]
            stream = b"".join(messages)
            size = len(messages[0])
            # Every write ends in the middle of a message; the whole run lasts ~1.2 s, four
            # times the read timeout, but each message completes within it.
            cut = size // 2
            pieces = [stream[:cut]] + [
                stream[cut + i * size : cut + (i + 1) * size] for i in range(8)
            ]
            for piece in pieces:
                writer.write(piece)
                await asyncio.sleep(0.15)
            ids = [(await read_message(reader)).call_id for _ in range(8)]
            assert ids == [f"m{i}" for i in range(8)]
            assert ep.counters.connections_closed_read_timeout == 0
        finally:
            writer.close()


async def test_udp_oversized_datagram_is_dropped_and_counted() -> None:
    config = EndpointConfig(udp_port=0, max_message=1000, timers=FAST)
    async with TransactionEndpoint(config, on_event=answer_200) as ep:
        transport, q = await udp_socket()
        try:
            via = f"SIP/2.0/UDP 127.0.0.1;branch={new_branch()};rport"
            transport.sendto(raw("OPTIONS", via, body=b"x" * 1200), ep.addresses["UDP"])
            transport.sendto(raw("OPTIONS", f"SIP/2.0/UDP 127.0.0.1;branch={new_branch()};rport"),
                             ep.addresses["UDP"])  # fmt: skip
            response = await next_message(q)  # only the small one is answered
            assert isinstance(response, SipResponse) and response.status == 200
            assert ep.counters.oversize_dropped == 1
            # Read in order: an answer to the oversized one would have come before this one.
            assert q.queue.empty()
        finally:
            transport.close()
