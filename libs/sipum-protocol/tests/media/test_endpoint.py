"""RtpEndpoint over loopback: recording and playback compared numerically, symmetric latching,
the port pool, RFC 4733 barge-in and stop digit, RTCP reports and BYE."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import uvloop
from sipum_protocol.media.codecs import PCMA, PCMU
from sipum_protocol.media.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from sipum_protocol.media.endpoint import PortPool, PortPoolExhausted, RtpEndpoint
from sipum_protocol.media.playback import Pause, PcmItem
from sipum_protocol.media.recording import RecordingChunk, RecordingSettings, StopReason
from sipum_protocol.media.rtcp import (
    RtcpBye,
    RtcpReceiverReport,
    RtcpSdes,
    RtcpSenderReport,
    parse_compound,
)
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
    """The caller's side: a UDP socket that sends RTP and collects what it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()
        self.ssrc = 0x5EED
        self.seq = 65500  # wraps during the test
        self.ts = 0xFFFFFE00

    def send(
        self, port: int, payload: bytes, *, pt: int = 0, marker: bool = False, ts: int | None = None
    ) -> None:
        packet = RtpPacket(
            payload_type=pt,
            sequence_number=self.seq & 0xFFFF,
            timestamp=(self.ts if ts is None else ts) & 0xFFFFFFFF,
            ssrc=self.ssrc,
            payload=payload,
            marker=marker,
        )
        self.seq += 1
        self.sock.sendto(bytes(packet), (HOST, port))

    async def stream(self, port: int, encoded: bytes, *, interval: float = 0.004) -> None:
        for k in range(0, len(encoded), 160):
            self.send(port, encoded[k : k + 160], marker=k == 0)
            self.ts += 160
            await asyncio.sleep(interval)

    async def digit(self, port: int, event: int, *, interval: float = 0.004) -> None:
        """RFC 4733 §2.5: start packet with marker, updates, three end packets, one timestamp."""
        start_ts = self.ts
        for n in range(1, 6):
            end = n >= 4
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, 160 * min(n, 4))
            self.send(port, payload, pt=101, marker=n == 1, ts=start_ts)
            await asyncio.sleep(interval)
        self.ts += 160 * 4

    def received(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(2048))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.sock.close()


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


async def test_records_a_g711_stream_bit_exact(pool: PortPool) -> None:
    peer = Peer()
    endpoint = await RtpEndpoint.open(pool, codec=PCMU, remote=peer.address)
    chunks: list[RecordingChunk] = []
    audio = speech(2.0)
    encoded = ulaw_encode(audio)
    recording = asyncio.ensure_future(
        endpoint.record(RecordingSettings(flush_interval=0.5), on_chunk=chunks.append)
    )
    await asyncio.sleep(0.01)
    await peer.stream(endpoint.local_port, encoded)
    await asyncio.sleep(0.2)  # let the jitter buffer and the loop catch up
    endpoint.hangup()
    result = await asyncio.wait_for(recording, 2)
    assert result.reason is StopReason.HANGUP and not result.discarded
    pcm = np.frombuffer(b"".join(c.pcm for c in chunks), dtype="<i2")
    assert np.array_equal(pcm, ulaw_decode(encoded))  # bit-exact, nothing lost or added
    assert endpoint.receiver.source is not None and endpoint.receiver.source.lost == 0
    await endpoint.close()
    peer.close()


async def test_lost_packets_become_silence_of_the_right_length(pool: PortPool) -> None:
    peer = Peer()
    endpoint = await RtpEndpoint.open(pool, codec=PCMA, remote=peer.address)
    chunks: list[RecordingChunk] = []
    audio = speech(1.6)
    encoded = alaw_encode(audio)
    recording = asyncio.ensure_future(endpoint.record(on_chunk=chunks.append))
    await asyncio.sleep(0.01)
    for k in range(0, len(encoded), 160):
        if k // 160 not in (20, 21):
            peer.send(endpoint.local_port, encoded[k : k + 160], pt=8)
        else:
            peer.seq += 1
        peer.ts += 160
        await asyncio.sleep(0.004)
    await asyncio.sleep(0.3)
    endpoint.hangup()
    await asyncio.wait_for(recording, 2)
    pcm = np.frombuffer(b"".join(c.pcm for c in chunks), dtype="<i2")
    expected = alaw_decode(encoded).copy()
    expected[20 * 160 : 22 * 160] = 0
    assert np.array_equal(pcm, expected)
    await endpoint.close()
    peer.close()


async def test_playback_reaches_the_caller_intact_and_paced(pool: PortPool) -> None:
    peer = Peer()
    endpoint = await RtpEndpoint.open(pool, codec=PCMU, remote=peer.address)
    audio = speech(0.6, seed=3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    session = await asyncio.wait_for(endpoint.play([PcmItem(audio, 8000)]), 3)
    elapsed = loop.time() - started
    assert session.finished and session.interrupted_by is None
    assert 0.55 <= elapsed < 2.0  # paced at 20 ms, not sent in a burst
    await asyncio.sleep(0.05)
    packets = [RtpPacket.parse(d) for d in peer.received()]
    packets = [p for p in packets]
    assert len(packets) == 30
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    pcm = ulaw_decode(b"".join(p.payload for p in packets))
    assert np.array_equal(pcm, ulaw_decode(ulaw_encode(audio)))
    assert np.corrcoef(pcm.astype(float), audio.astype(float))[0, 1] > 0.99
    await endpoint.close()
    peer.close()


async def test_symmetric_rtp_latches_onto_the_real_source(pool: PortPool) -> None:
    sdp_address = Peer()  # what the SDP said (behind NAT: nobody there)
    real = Peer()  # where the caller's packets really come from
    endpoint = await RtpEndpoint.open(pool, codec=PCMU, remote=sdp_address.address)
    await endpoint.play([Pause(0.06)])
    await asyncio.sleep(0.05)
    assert len(sdp_address.received()) == 3  # before latching: the SDP address
    # a stray datagram that is not RTP of a negotiated type does not divert the stream
    real.sock.sendto(b"hello, not rtp", (HOST, endpoint.local_port))
    real.send(endpoint.local_port, bytes(160), pt=96)
    await asyncio.sleep(0.05)
    assert not endpoint.latched
    real.send(endpoint.local_port, bytes(160))
    await asyncio.sleep(0.05)
    assert endpoint.latched and endpoint.remote == real.address
    await endpoint.play([Pause(0.06)])
    await asyncio.sleep(0.05)
    assert len(real.received()) == 3
    assert sdp_address.received() == []
    # strict RTP: once latched, another source cannot inject packets into the call
    intruder = Peer()
    intruder.ssrc = 0xBAD
    for _ in range(3):
        intruder.send(endpoint.local_port, bytes(160))
    real.send(endpoint.local_port, bytes(160))
    await asyncio.sleep(0.05)
    endpoint._drain_inbox()
    source = endpoint.receiver.source
    assert source is not None and source.ssrc == real.ssrc and source.received == 2
    assert endpoint.receiver.counters.ssrc_changes == 0
    intruder.close()
    await endpoint.close()
    sdp_address.close()
    real.close()


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


async def test_barge_in_with_an_rfc4733_digit(pool: PortPool) -> None:
    peer = Peer()
    endpoint = await RtpEndpoint.open(pool, codec=PCMU, remote=peer.address)
    digits: list[str] = []
    endpoint.on_digit = digits.append
    loop = asyncio.get_running_loop()
    started = loop.time()
    playing = asyncio.ensure_future(
        endpoint.play([PcmItem(speech(5.0), 8000)], barge_in="0123456789#")
    )
    await asyncio.sleep(0.3)
    await peer.digit(endpoint.local_port, 5)
    session = await asyncio.wait_for(playing, 2)
    assert session.interrupted_by == "5"
    assert loop.time() - started < 2.5  # long before the 5 s prompt ends
    assert 0.25 <= session.position < 2.5
    assert digits == ["5"]  # the redundant end packets gave one digit
    await endpoint.close()
    peer.close()


async def test_hash_stops_the_recording_and_is_cut_off(pool: PortPool) -> None:
    peer = Peer()
    endpoint = await RtpEndpoint.open(pool, codec=PCMU, remote=peer.address)
    chunks: list[RecordingChunk] = []
    recording = asyncio.ensure_future(endpoint.record(on_chunk=chunks.append))
    await asyncio.sleep(0.01)
    audio = speech(1.5)
    await peer.stream(endpoint.local_port, ulaw_encode(audio))
    await peer.digit(endpoint.local_port, 11)  # '#'
    result = await asyncio.wait_for(recording, 2)
    assert result.reason is StopReason.DTMF and result.digit == "#"
    pcm = np.frombuffer(b"".join(c.pcm for c in chunks), dtype="<i2")
    assert len(pcm) == len(audio)  # cut where the digit began: nothing after it
    assert np.array_equal(pcm, ulaw_decode(ulaw_encode(audio)))
    await endpoint.close()
    peer.close()


async def test_rtcp_reports_and_bye_on_close(pool: PortPool) -> None:
    peer = Peer()
    rtcp_peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtcp_peer.bind((HOST, 0))
    rtcp_peer.setblocking(False)
    endpoint = await RtpEndpoint.open(
        pool,
        codec=PCMU,
        remote=peer.address,
        remote_rtcp=rtcp_peer.getsockname(),
        rtcp_interval=0.1,
        cname="rec@test",
    )
    recording = asyncio.ensure_future(endpoint.record())
    await peer.stream(endpoint.local_port, ulaw_encode(speech(0.4)))
    await asyncio.sleep(0.3)
    await endpoint.play([Pause(0.1)])
    await asyncio.sleep(0.2)
    await endpoint.close()
    await asyncio.wait_for(recording, 1)
    await asyncio.sleep(0.02)
    compounds = []
    while True:
        try:
            compounds.append(parse_compound(rtcp_peer.recv(2048)))
        except BlockingIOError:
            break
    assert len(compounds) >= 3
    kinds = [type(c[0]) for c in compounds]
    assert RtcpReceiverReport in kinds and RtcpSenderReport in kinds
    assert all(isinstance(c[1], RtcpSdes) and c[1].chunks[0].cname == "rec@test" for c in compounds)
    rr = next(c[0] for c in compounds if isinstance(c[0], RtcpReceiverReport) and c[0].reports)
    assert rr.reports[0].ssrc == peer.ssrc and rr.reports[0].packets_lost == 0
    last = compounds[-1]
    assert isinstance(last[-1], RtcpBye) and endpoint.stream.ssrc in last[-1].sources
    assert isinstance(last[0], RtcpSenderReport) and last[0].packet_count == 5
    peer.close()
    rtcp_peer.close()


def test_fast_receive_path_matches_the_full_receiver() -> None:
    """The endpoint's receive path (accept_run, else receive) must release the same packets and
    keep the same RFC 3550 figures as receive alone, on a stream with loss, reordering, duplicates, a wrap and an SSRC change."""
    import random

    from sipum_protocol.media.receiver import RtpReceiver

    rng = random.Random(7)
    stream = []
    for k in range(3000):
        ssrc = 1 if k < 2000 else 2
        stream.append(
            RtpPacket(
                payload_type=0,
                sequence_number=(65000 + k) & 0xFFFF,
                timestamp=(k * 160) & 0xFFFFFFFF,
                ssrc=ssrc,
                payload=bytes([k & 0xFF]) * 160,
            )
        )
    arrivals: list[RtpPacket] = []
    i = 0
    while i < len(stream):
        r = rng.random()
        if r < 0.03:
            i += 1  # lost
        elif r < 0.06 and i + 1 < len(stream):
            arrivals += [stream[i + 1], stream[i]]  # swapped
            i += 2
        elif r < 0.08:
            arrivals += [stream[i], stream[i]]  # duplicated
            i += 1
        else:
            arrivals.append(stream[i])
            i += 1
    full = RtpReceiver(clock_rate=8000)
    fast = RtpReceiver(clock_rate=8000)
    out_full: list[tuple[int, int]] = []
    out_fast: list[tuple[int, int]] = []
    shortcuts = 0
    for n, packet in enumerate(arrivals):
        now = n * 0.02 + rng.uniform(0, 0.03)
        out_full += [(p.ssrc, p.sequence_number) for p in full.receive(bytes(packet), now)]
        out_full += [(p.ssrc, p.sequence_number) for p in full.poll(now)]
        data = bytes(packet)
        if fast.accept_run(data, len(data), [now]) == 1:
            shortcuts += 1
            out_fast.append((packet.ssrc, packet.sequence_number))
        else:
            out_fast += [(p.ssrc, p.sequence_number) for p in fast.receive(bytes(packet), now)]
        out_fast += [(p.ssrc, p.sequence_number) for p in fast.poll(now)]
    assert shortcuts > len(arrivals) * 0.7
    assert out_fast == out_full
    assert full.source is not None and fast.source is not None
    for name in ("max_seq", "cycles", "received", "jitter", "base_seq"):
        assert getattr(fast.source, name) == getattr(full.source, name), name
    for name in ("released", "late", "duplicates", "skipped"):
        assert getattr(fast.buffer, name) == getattr(full.buffer, name), name
    assert fast.report_blocks(100.0) == full.report_blocks(100.0)


async def test_silent_caller_times_out_as_silence(pool: PortPool) -> None:
    peer = Peer()
    endpoint = await RtpEndpoint.open(pool, codec=PCMU, remote=peer.address)
    loop = asyncio.get_running_loop()
    started = loop.time()
    recording = asyncio.ensure_future(endpoint.record(RecordingSettings(max_silence=0.6)))
    await peer.stream(endpoint.local_port, ulaw_encode(speech(0.3)))  # then the phone goes quiet
    result = await asyncio.wait_for(recording, 3)
    assert result.reason is StopReason.SILENCE and result.discarded
    assert 0.6 <= loop.time() - started < 3.0
    await endpoint.close()
    peer.close()


async def test_a_waiting_recording_does_not_spin_the_loop(pool: PortPool) -> None:
    # Regression: with no audio yet the recording's flush deadline stayed in the past and the
    # endpoint's timer fired on every loop turn (found by the receive-cost benchmark).
    endpoint = await RtpEndpoint.open(pool, codec=PCMU, remote=(HOST, 9))
    fired = 0
    on_timer = endpoint._on_timer

    def counting() -> None:
        nonlocal fired
        fired += 1
        on_timer()

    endpoint._on_timer = counting  # type: ignore[method-assign]
    settings = RecordingSettings(flush_interval=0.1, max_silence=5.0)
    recording = asyncio.ensure_future(endpoint.record(settings))
    await asyncio.sleep(0.6)
    assert not recording.done()
    assert fired <= 12  # one per flush interval (0.1 s), not one per loop turn
    endpoint.hangup()
    assert (await recording).reason is StopReason.HANGUP
    await endpoint.close()


async def test_records_g722_at_16khz(pool: PortPool) -> None:
    from sipum_protocol.media.codecs import G722_INFO, create_decoder, create_encoder

    peer = Peer()
    endpoint = await RtpEndpoint.open(pool, codec=G722_INFO, remote=peer.address)
    chunks: list[RecordingChunk] = []
    recording = asyncio.ensure_future(
        endpoint.record(
            RecordingSettings(max_silence=3.0), on_chunk=chunks.append
        )  # rate from codec
    )
    await asyncio.sleep(0)  # recording (audio before that is not part of the message)
    t = np.arange(32000) / 16000
    audio = np.round(6000 * np.sin(2 * np.pi * 440 * t) * (0.7 + 0.3 * np.sin(2 * np.pi * 3 * t)))
    audio = audio.astype(np.int16)
    encoder = create_encoder("G722")
    payloads = [encoder.encode(audio[k : k + 320]) for k in range(0, len(audio), 320)]
    for payload in payloads:
        assert len(payload) == 160
        peer.send(endpoint.local_port, payload, pt=9)
        peer.ts += 160  # RTP clock 8000 for G.722 (RFC 3551 §4.5.2)
        await asyncio.sleep(0.004)
    await asyncio.sleep(0.2)
    endpoint.hangup()
    result = await asyncio.wait_for(recording, 2)
    assert result.sample_rate == 16000 and result.samples == len(audio)
    pcm = np.frombuffer(b"".join(c.pcm for c in chunks), dtype="<i2")
    decoder = create_decoder("G722")
    reference = np.concatenate([decoder.decode(p) for p in payloads])
    assert np.array_equal(pcm, reference)  # batched decoding equals packet-by-packet decoding
    # and it is the audio that was sent (G.722 delays it by a few samples)
    best = max(
        np.corrcoef(pcm[lag : lag + 30000].astype(float), audio[:30000].astype(float))[0, 1]
        for lag in range(40)
    )
    assert best > 0.98
    await endpoint.close()
    peer.close()


async def test_inband_hash_stops_a_call_without_telephone_event(pool: PortPool) -> None:
    from sipum_protocol.media.dtmf import dtmf_tone

    peer = Peer()
    endpoint = await RtpEndpoint.open(
        pool, codec=PCMU, remote=peer.address, telephone_event_pt=None
    )
    digits: list[str] = []
    endpoint.on_digit = digits.append
    chunks: list[RecordingChunk] = []
    recording = asyncio.ensure_future(endpoint.record(on_chunk=chunks.append))
    await asyncio.sleep(0.01)
    audio = np.concatenate(
        [speech(1.5), dtmf_tone("#", 0.15, level_dbm0=-10.0), speech(0.6, seed=9)]
    )
    await peer.stream(endpoint.local_port, ulaw_encode(audio))
    result = await asyncio.wait_for(recording, 2)
    assert result.reason is StopReason.DTMF and result.digit == "#"
    assert digits == ["#"]
    pcm = np.frombuffer(b"".join(c.pcm for c in chunks), dtype="<i2")
    assert abs(len(pcm) - 1.5 * 8000) <= 0.03 * 8000  # cut where the tone began
    assert np.array_equal(pcm, ulaw_decode(ulaw_encode(audio))[: len(pcm)])
    await endpoint.close()
    peer.close()


async def test_comfort_noise_packets_fill_the_pause(pool: PortPool) -> None:
    peer = Peer()
    endpoint = await RtpEndpoint.open(pool, codec=PCMU, remote=peer.address)
    chunks: list[RecordingChunk] = []
    recording = asyncio.ensure_future(endpoint.record(on_chunk=chunks.append))
    await asyncio.sleep(0.01)
    first, second = ulaw_encode(speech(1.0)), ulaw_encode(speech(1.0, seed=5))
    await peer.stream(endpoint.local_port, first)
    peer.send(endpoint.local_port, bytes([60]), pt=13)  # RFC 3389: level 60 -dBov
    peer.ts += 8 * 160 * 5  # 0.8 s without audio
    await peer.stream(endpoint.local_port, second)
    await asyncio.sleep(0.2)
    endpoint.hangup()
    result = await asyncio.wait_for(recording, 2)
    assert result.samples == 8000 + 6400 + 8000
    pcm = np.frombuffer(b"".join(c.pcm for c in chunks), dtype="<i2")
    pause = pcm[8000:14400].astype(float)
    assert 20 < np.sqrt(np.mean(pause**2)) < 45  # 60 -dBov is RMS ~33
    assert np.array_equal(pcm[14400:], ulaw_decode(second))
    await endpoint.close()
    peer.close()


async def test_plays_rendered_prompts_as_the_files_hold_them(
    pool: PortPool, tmp_path: Path
) -> None:
    from sipum_protocol.media.playback import read_wav
    from sipum_protocol.media.prompts import PromptLibrary

    library = PromptLibrary(tmp_path, rates=(8000,))
    paths = library.paths(["digit-1", "beep"], 8000)
    peer = Peer()
    endpoint = await RtpEndpoint.open(pool, codec=PCMU, remote=peer.address)
    session = await asyncio.wait_for(endpoint.play(paths), 5)
    await asyncio.sleep(0.05)
    packets = [RtpPacket.parse(d) for d in peer.received()]
    assert len(packets) == session.packets_sent
    received = ulaw_decode(b"".join(p.payload for p in packets))
    expected = []
    for path in paths:
        pcm, rate = read_wav(path)
        assert rate == 8000
        padded = np.zeros(-(-len(pcm) // 160) * 160, dtype=np.int16)  # last frame padded
        padded[: len(pcm)] = pcm
        expected.append(padded)
    reference = np.concatenate(expected)
    assert np.array_equal(received, ulaw_decode(ulaw_encode(reference)))
    assert np.corrcoef(received.astype(float), reference.astype(float))[0, 1] > 0.99
    await endpoint.close()
    peer.close()


async def test_a_failing_drain_does_not_stall_other_calls(
    pool: PortPool, caplog: pytest.LogCaptureFixture
) -> None:
    # Full queues of many endpoints are drained together after the loop's I/O round: an
    # exception in one call's receive path must not leave the others' audio queued.
    from sipum_protocol.media.endpoint import INBOX_BATCH

    broken = await RtpEndpoint.open(pool, codec=PCMU, remote=(HOST, 9))
    healthy = await RtpEndpoint.open(pool, codec=PCMU, remote=(HOST, 9))

    def explode() -> None:
        raise RuntimeError("bug in one call")

    peers = [Peer(), Peer()]
    for _ in range(INBOX_BATCH + 5):
        for peer, endpoint in zip(peers, (broken, healthy), strict=True):
            peer.send(endpoint.local_port, bytes(160))
            peer.ts += 160
        await asyncio.sleep(0.001)
        broken._drain_inbox = explode  # type: ignore[method-assign]  # after latching
    await asyncio.sleep(0.05)
    source = healthy.receiver.source
    assert source is not None and source.received >= INBOX_BATCH
    assert "RTP receive failed" in caplog.text
    del broken._drain_inbox  # type: ignore[method-assign]
    for endpoint in (broken, healthy):
        await endpoint.close()
    for peer in peers:
        peer.close()


async def test_an_inband_digit_acts_while_the_key_is_down(pool: PortPool) -> None:
    # Without telephone-event the digit is in the audio, which the endpoint queues in
    # batches: the queue is short for such calls, so a digit typed while nothing plays (a PIN
    # after the prompt) acts while its tone still sounds, not up to a second later.
    from sipum_protocol.media.dtmf import dtmf_tone

    peer = Peer()
    endpoint = await RtpEndpoint.open(
        pool, codec=PCMU, remote=peer.address, telephone_event_pt=None
    )
    loop = asyncio.get_running_loop()
    heard: list[tuple[str, float]] = []
    endpoint.on_digit = lambda digit: heard.append((digit, loop.time()))
    tone = dtmf_tone("5", 0.2, level_dbm0=-10.0)
    audio = ulaw_encode(np.concatenate([speech(0.4, seed=3), tone, speech(0.6, seed=4)]))
    tone_at = 0.0
    for k in range(0, len(audio), 160):  # real time: a packet every 20 ms
        if k == 400 * 8:
            tone_at = loop.time()
        peer.send(endpoint.local_port, audio[k : k + 160], marker=k == 0)
        peer.ts += 160
        await asyncio.sleep(0.02)
    assert [digit for digit, _ in heard] == ["5"]
    # detection needs about 40 ms of the tone, the queue holds at most 100 ms of audio
    assert heard[0][1] - tone_at < 0.25, heard[0][1] - tone_at
    await endpoint.close()
    peer.close()
