"""RtpEndpoint, the asyncio driver, over loopback on both loops: what only real sockets show —
the reader callbacks, the connected socket of strict RTP, the RTCP socket, the port pool. What
the media does is tested on a fake clock in ``test_session.py``. No sleeps: every wait is on a
future (the endpoint's, a socket read, an event)."""

from __future__ import annotations

import asyncio
import socket
import struct

import numpy as np
import pytest
import uvloop
from sipum_protocol.media.codecs import PCMU
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_protocol.media.endpoint import RtpEndpoint
from sipum_protocol.media.events import MediaEvent, RtpSourceLatched
from sipum_protocol.media.playback import PcmItem
from sipum_protocol.media.ports import PortPool, PortPoolExhausted
from sipum_protocol.media.recording import RecordingChunk, StopReason
from sipum_protocol.media.rtcp import RtcpBye, RtcpSdes, RtcpSenderReport, parse_compound
from sipum_protocol.media.rtp import RtpPacket

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.1"


def free_even_range(size: int) -> tuple[int, int]:
    """A port range the OS just said is free (other test runs use other ranges)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        base = port - port % 2
        if base + size < 65000:
            return base, base + size - 1
    raise RuntimeError("no port range")


def speech(seconds: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = round(seconds * 8000)
    t = np.arange(n) / 8000
    x = (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) * np.sin(2 * np.pi * 300 * t)
    x = 5000 * x + 500 * rng.standard_normal(n)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


class Peer:
    """The caller's side: a UDP socket that sends RTP and reads what it receives."""

    def __init__(self, ssrc: int = 0x5EED) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self.ssrc = ssrc
        self.seq = 65500  # wraps during the test
        self.ts = 0xFFFFFE00

    def send(self, port: int, payload: bytes, *, pt: int = 0, ts: int | None = None) -> None:
        packet = RtpPacket(
            payload_type=pt,
            sequence_number=self.seq & 0xFFFF,
            timestamp=(self.ts if ts is None else ts) & 0xFFFFFFFF,
            ssrc=self.ssrc,
            payload=payload,
        )
        self.seq += 1
        self.sock.sendto(bytes(packet), (HOST, port))

    def audio(self, port: int, encoded: bytes) -> None:
        """Sent at once (loopback and the socket buffer take a few seconds of G.711)."""
        for k in range(0, len(encoded), 160):
            self.send(port, encoded[k : k + 160])
            self.ts += 160

    def digit(self, port: int, event: int) -> None:
        """RFC 4733 §2.5: updates and three end packets, one timestamp."""
        for n in range(1, 6):
            payload = struct.pack("!BBH", event, (0x80 if n >= 4 else 0) | 10, 160 * min(n, 4))
            self.send(port, payload, pt=101, ts=self.ts)
        self.ts += 160 * 4

    async def receive(self, count: int) -> list[bytes]:
        loop = asyncio.get_running_loop()
        return [await asyncio.wait_for(loop.sock_recv(self.sock, 2048), 5) for _ in range(count)]

    def pending(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(2048))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.sock.close()


def latched(endpoint: RtpEndpoint) -> asyncio.Future[RtpSourceLatched]:
    """Resolves when the endpoint has latched (and connected its socket)."""
    future: asyncio.Future[RtpSourceLatched] = asyncio.get_running_loop().create_future()

    def on_event(event: MediaEvent) -> None:
        if isinstance(event, RtpSourceLatched) and not future.done():
            future.set_result(event)

    endpoint.on_event = on_event
    return future


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Every loopback test on both loops: the services run on uvloop, whose reader callbacks
    and connected UDP sockets the receive path relies on as much as on asyncio's."""
    if request.param == "uvloop":
        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()


@pytest.fixture
def pool() -> PortPool:
    first, last = free_even_range(40)
    return PortPool(first, last, host=HOST)


async def test_records_over_loopback_bit_exact_and_strict(pool: PortPool) -> None:
    peer = Peer()
    endpoint = await RtpEndpoint.open(pool, codec=PCMU, remote=peer.address)
    digit: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    endpoint.on_digit = digit.set_result  # once: the three end packets give one digit
    chunks: list[RecordingChunk] = []
    recording = endpoint.record(on_chunk=chunks.append)  # from now on
    audio = speech(1.6)
    encoded = ulaw_encode(audio)
    is_latched = latched(endpoint)
    peer.audio(endpoint.local_port, encoded[:160])
    assert (await asyncio.wait_for(is_latched, 5)).address == peer.address
    # strict RTP: once latched, the connected socket keeps other sources out of the call
    intruder = Peer(ssrc=0xBAD)
    for _ in range(3):
        intruder.send(endpoint.local_port, bytes(160))
    peer.audio(endpoint.local_port, encoded[160:])
    peer.digit(endpoint.local_port, 11)  # '#' ends it
    result = await asyncio.wait_for(recording, 5)
    assert result.reason is StopReason.DTMF and result.digit == "#"
    pcm = np.frombuffer(b"".join(c.pcm for c in chunks), dtype="<i2")
    assert np.array_equal(pcm, ulaw_decode(encoded))  # nothing lost or added
    source = endpoint.receiver.source
    assert source is not None and source.ssrc == peer.ssrc and source.lost == 0
    assert endpoint.receiver.counters.ssrc_changes == 0
    assert await asyncio.wait_for(digit, 5) == "#"
    await endpoint.close()
    for p in (peer, intruder):
        p.close()


async def test_plays_to_the_sdp_address_then_to_the_latched_source(pool: PortPool) -> None:
    sdp_address = Peer()  # what the SDP said (behind NAT: nobody there)
    real = Peer()  # where the caller's packets really come from
    endpoint = await RtpEndpoint.open(pool, codec=PCMU, remote=sdp_address.address)
    loop = asyncio.get_running_loop()
    audio = speech(0.1, seed=3)
    played = await asyncio.wait_for(endpoint.play([PcmItem(audio, 8000)]), 5)
    assert played.finished and played.packets_sent == 5
    assert len(await sdp_address.receive(5)) == 5  # before latching: the SDP address
    is_latched = latched(endpoint)
    real.send(endpoint.local_port, bytes(160))
    await asyncio.wait_for(is_latched, 5)
    assert endpoint.latched and endpoint.remote == real.address
    audio = speech(0.6, seed=4)
    started = loop.time()
    played = await asyncio.wait_for(endpoint.play([PcmItem(audio, 8000)]), 5)
    assert loop.time() - started >= 0.55  # paced by the loop's timer, not sent in a burst
    packets = [RtpPacket.parse(d) for d in await real.receive(30)]
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    assert np.array_equal(
        ulaw_decode(b"".join(p.payload for p in packets)), ulaw_decode(ulaw_encode(audio))
    )
    assert sdp_address.pending() == []
    await endpoint.close()
    sdp_address.close()
    real.close()


async def test_close_sends_rtcp_bye_to_the_peer(pool: PortPool) -> None:
    peer = Peer()
    rtcp_peer = Peer()
    endpoint = await RtpEndpoint.open(
        pool, codec=PCMU, remote=peer.address, remote_rtcp=rtcp_peer.address, cname="rec@test"
    )
    await asyncio.wait_for(endpoint.play([PcmItem(speech(0.1), 8000)]), 5)
    await endpoint.close()
    assert not endpoint.receiving
    compound = parse_compound((await rtcp_peer.receive(1))[0])
    assert isinstance(compound[0], RtcpSenderReport) and compound[0].packet_count == 5
    assert isinstance(compound[1], RtcpSdes) and compound[1].chunks[0].cname == "rec@test"
    assert isinstance(compound[-1], RtcpBye) and endpoint.stream.ssrc in compound[-1].sources
    await endpoint.close()  # a second close changes nothing
    peer.close()
    rtcp_peer.close()


async def test_port_pool_pairs_exhaustion_and_release() -> None:
    first, last = free_even_range(6)  # three pairs
    pool = PortPool(first, last, host=HOST)
    # another process holds the second pair's RTCP port: that pair is skipped
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind((HOST, first + 3))
    endpoints = [await RtpEndpoint.open(pool, codec=PCMU) for _ in range(2)]
    ports = [e.local_port for e in endpoints]
    assert ports == [first, first + 4]
    assert all(p % 2 == 0 for p in ports)
    for e in endpoints:
        assert e._rtcp_transport is not None
        assert e._rtcp_transport.get_extra_info("sockname")[1] == e.local_port + 1
    with pytest.raises(PortPoolExhausted, match="no free RTP port pair"):
        await RtpEndpoint.open(pool, codec=PCMU)
    assert pool.in_use == 2
    await endpoints[0].close()
    assert pool.in_use == 1
    again = await RtpEndpoint.open(pool, codec=PCMU)
    assert again.local_port == first  # returned to the pool, bound again
    await again.close()
    await endpoints[1].close()
    squatter.close()
    assert pool.in_use == 0
    with pytest.raises(ValueError):
        PortPool(100, 200)
