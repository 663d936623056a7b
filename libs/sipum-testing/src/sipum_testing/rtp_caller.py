"""A scripted caller for tests and benchmarks: real RTP over UDP, allocation over real NATS.

It plays the registrar-agent's part towards a recorder (``sipum.media.allocate`` with an SDP
offer, hang-up and DTMF commands) and the phone's part on the media path: sends G.711 audio
paced at 20 ms (absolute schedule, no drift) and RFC 4733 digits from one RTP source, and
collects every packet the recorder sends back.
"""

from __future__ import annotations

import asyncio
import random
import socket
import uuid
from dataclasses import dataclass, field

import numpy as np
from sipum.events import (
    EventBus,
    MediaAllocateReply,
    MediaAllocateRequest,
    SessionDtmf,
    SessionHangup,
)
from sipum_protocol.media.codecs import codec_info, create_decoder, create_encoder
from sipum_protocol.media.dtmf import TelephoneEventSender
from sipum_protocol.media.rtp import RtpPacket
from sipum_protocol.sip.sdp import SessionDescription

PTIME = 0.02
SAMPLES = 160
#: What the caller offers for the codec it sends (static payload types, RFC 3551).
OFFER_FORMATS = {"PCMU": "0 8 101", "PCMA": "8 101", "G722": "9 101"}


def offer_sdp(host: str, port: int, *, formats: str = "0 8 101", extra: str = "") -> str:
    lines = [
        "v=0",
        f"o=caller 1 1 IN IP4 {host}",
        "s=-",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {formats}",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
    ]
    if extra:
        lines.append(extra)
    return "\r\n".join(lines) + "\r\n"


@dataclass
class Received:
    at: float
    packet: RtpPacket


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, caller: RtpCaller) -> None:
        self.caller = caller

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            return
        self.caller.received.append(Received(asyncio.get_running_loop().time(), packet))


@dataclass
class RtpCaller:
    """One call's media and control towards a recorder."""

    bus: EventBus
    host: str = "127.0.0.1"
    codec: str = "PCMU"
    received: list[Received] = field(default_factory=list)
    reply: MediaAllocateReply | None = None
    remote: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.call_id = f"{uuid.uuid4().hex}@test"

    async def open(self) -> RtpCaller:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self.transport = transport
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- signalling (the agent's side) ----------------------------------------------------

    def request(self, **fields: object) -> MediaAllocateRequest:
        values: dict[str, object] = {
            "call_id": self.call_id,
            "mode": "record",
            "username": "alice",
            "domain": "example.com",
            "offer_sdp": offer_sdp(self.host, self.port, formats=OFFER_FORMATS[self.codec]),
            "caller_uri": "sip:bob@example.org",
            "caller_display": "Bob",
            "called_uri": "sip:alice@example.com",
            "reason": "forked",
        }
        values.update(fields)
        return MediaAllocateRequest.model_validate(values)

    async def allocate(
        self, request: MediaAllocateRequest | None = None, *, within: float = 5.0
    ) -> MediaAllocateReply:
        reply = await self.bus.allocate_media(request or self.request(), timeout=within)
        self.use_reply(reply)
        return reply

    def use_reply(self, reply: MediaAllocateReply) -> None:
        self.reply = reply
        answer = SessionDescription.parse(reply.answer_sdp)
        media = answer.media[0]
        connection = answer.connection_for(media)
        assert connection is not None
        self.remote = (connection.host, media.port)

    async def hangup(self) -> None:
        assert self.reply is not None
        await self.bus.send_command(SessionHangup(session_id=self.reply.session_id))
        await self.bus.nc.flush()

    async def info_digit(self, digit: str) -> None:
        assert self.reply is not None
        await self.bus.send_command(SessionDtmf(session_id=self.reply.session_id, digit=digit))
        await self.bus.nc.flush()

    # -- media (the phone's side) ---------------------------------------------------------

    def _send(
        self, payload: bytes, *, pt: int, marker: bool = False, ts: int | None = None
    ) -> None:
        assert self.transport is not None and self.remote is not None
        packet = RtpPacket(
            payload_type=pt,
            sequence_number=self.seq & 0xFFFF,
            timestamp=(self.ts if ts is None else ts) & 0xFFFFFFFF,
            ssrc=self.ssrc,
            payload=payload,
            marker=marker,
        )
        self.seq += 1
        self.transport.sendto(bytes(packet), self.remote)

    def encode(self, pcm: np.ndarray) -> bytes:
        """*pcm* at the codec's audio rate as one payload stream (a fresh encoder per call:
        G.722 keeps state)."""
        return create_encoder(self.codec).encode(pcm)

    def decode(self, payload: bytes) -> np.ndarray:
        return create_decoder(self.codec).decode(payload)

    @property
    def payload_type(self) -> int:
        return codec_info(self.codec).payload_type

    async def send_audio(self, pcm: np.ndarray) -> None:
        """Send *pcm* (int16 at the codec's audio rate: 8 kHz G.711, 16 kHz G.722) as 20 ms
        packets, packet n at start + n·20 ms. G.711 and G.722 both carry 160 octets and step
        the timestamp by 160 per 20 ms (RFC 3551 §4.5.2)."""
        loop = asyncio.get_running_loop()
        encoded = self.encode(pcm)
        start = loop.time()
        for n, k in enumerate(range(0, len(encoded), SAMPLES)):
            delay = start + n * PTIME - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._send(encoded[k : k + SAMPLES], pt=self.payload_type, marker=n == 0)
            self.ts += SAMPLES

    async def send_digit(self, digit: str, *, duration: float = 0.1) -> None:
        """One RFC 4733 digit (marker, updates, three end packets), paced like audio."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        packets = TelephoneEventSender(payload_type=101).packets(
            digit,
            duration=duration,
            timestamp=self.ts,
            first_sequence=self.seq,
            ssrc=self.ssrc,
            start=start,
        )
        for scheduled in packets:
            delay = scheduled.at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            assert self.transport is not None and self.remote is not None
            self.transport.sendto(bytes(scheduled.packet), self.remote)
        self.seq += len(packets)
        self.ts += round(duration * 8000) + SAMPLES

    async def send_digits(self, digits: str, *, gap: float = 0.06) -> None:
        for digit in digits:
            await self.send_digit(digit)
            await asyncio.sleep(gap)

    # -- what came back -------------------------------------------------------------------

    async def wait_quiet(self, quiet: float = 0.25, *, limit: float = 15.0, after: int = 0) -> int:
        """Wait until more than *after* packets arrived and then none for *quiet* seconds;
        returns how many packets have arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            if len(self.received) > after and loop.time() - self.received[-1].at >= quiet:
                return len(self.received)
            await asyncio.sleep(0.02)
        raise TimeoutError(f"the recorder did not go quiet ({len(self.received)} packets)")

    def audio(self, start: int = 0) -> np.ndarray:
        """The audio received (from packet index *start*), in sequence order."""
        packets = [
            r.packet for r in self.received[start:] if r.packet.payload_type == self.payload_type
        ]
        if not packets:
            return np.zeros(0, dtype=np.int16)
        return self.decode(b"".join(p.payload for p in packets))


def best_correlation(haystack: np.ndarray, needle: np.ndarray) -> tuple[float, int]:
    """Highest normalised correlation of *needle* against every position of *haystack*
    (in whole samples) and where it was found."""
    h = haystack.astype(np.float64)
    n = needle.astype(np.float64)
    if len(h) < len(n) or not len(n):
        return 0.0, -1
    size = 1 << int(np.ceil(np.log2(len(h) + len(n))))
    corr = np.fft.irfft(np.fft.rfft(h, size) * np.conj(np.fft.rfft(n, size)), size)[
        : len(h) - len(n) + 1
    ]
    squares = np.concatenate([[0.0], np.cumsum(h * h)])
    energy = squares[len(n) :] - squares[: len(h) - len(n) + 1]
    norm = np.sqrt(np.maximum(energy, 1e-9) * float(n @ n))
    scores = corr / norm
    best = int(np.argmax(scores))
    return float(scores[best]), best


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the common length of *a* and *b*."""
    n = min(len(a), len(b))
    if n < 2:
        return 0.0
    return float(np.corrcoef(a[:n].astype(np.float64), b[:n].astype(np.float64))[0, 1])


def speech_like(seconds: float, *, seed: int = 1, rate: int = 8000) -> np.ndarray:
    """A loud, speech-like test signal (modulated harmonics + noise), never silent."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    x = (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) * x
    x = 6000 * x + 300 * rng.standard_normal(len(t))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def distinct_voice(seconds: float, *, seed: int, rate: int = 8000) -> np.ndarray:
    """A loud, never silent test signal whose content depends on ``seed`` (unlike
    ``speech_like``, where only the noise does): gliding tones at random pitches and rates, so
    two seeds do not correlate and a correlation peak tells which one was heard."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    x = np.zeros(len(t))
    for _ in range(4):
        f0 = rng.uniform(200, 1500)
        glide = rng.uniform(20, 200) * np.sin(
            2 * np.pi * rng.uniform(0.3, 2.0) * t + rng.uniform(0, 6.3)
        )
        x += np.sin(2 * np.pi * np.cumsum(f0 + glide) / rate) * rng.uniform(0.4, 1.0)
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1.5, 4.0) * t) ** 2
    x = 5000 * x / max(1.0, float(np.abs(x).max()) / 1.5) + 300 * rng.standard_normal(len(t))
    out: np.ndarray = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    return out
