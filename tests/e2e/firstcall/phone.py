"""Telephony around the system under test.

* :class:`RtpPeer` — the caller's media: sends audio as PCMU paced at 20 ms on an absolute
  schedule, RFC 4733 digits from the same RTP source, and keeps every packet that comes back.
* :class:`Caller` — a SIP user agent (``sipum_protocol.sip.ua``, an independent UAC instance of the
  shared SIP core) that places calls through Kamailio and reports their progress.
* :func:`run_sipp` / :func:`start_sipp` — sipp phones from ``tests/e2e/scenarios``: register
  with digest authentication, ring without answering, or answer.
"""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sipum_protocol.media.codecs.g711 import ulaw_decode, ulaw_encode
from sipum_protocol.media.dtmf import TelephoneEventSender
from sipum_protocol.media.rtp import RtpPacket, is_rtcp
from sipum_protocol.sip.sdp import SessionDescription
from sipum_protocol.sip.transaction import Peer
from sipum_protocol.sip.transport import EndpointConfig
from sipum_protocol.sip.ua import Call, CallAnswered, CallEnded, CallProgress, UserAgentEvent
from sipum_protocol.sip.ua.aio import UserAgentEndpoint

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
PTIME = 0.02
SAMPLES = 160  # 20 ms of 8 kHz PCMU
PCMU = 0
TELEPHONE_EVENT = 101


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------- media


@dataclass
class Arrival:
    at: float
    packet: RtpPacket


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, peer: RtpPeer) -> None:
        self.peer = peer

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_rtcp(data):
            return
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            return
        self.peer.received.append(Arrival(asyncio.get_running_loop().time(), packet))


@dataclass
class RtpPeer:
    """One call's RTP on the caller's side (PCMU + telephone-event, 20 ms)."""

    host: str = "127.0.0.1"
    received: list[Arrival] = field(default_factory=list)
    remote: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def open(self) -> RtpPeer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _RtpProtocol(self), local_addr=(self.host, 0)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def offer(self) -> bytes:
        """Our SDP offer (RFC 4566): PCMU and RFC 4733 telephone-event."""
        lines = [
            "v=0",
            f"o=bob {self.ssrc} 1 IN IP4 {self.host}",
            "s=e2e caller",
            f"c=IN IP4 {self.host}",
            "t=0 0",
            f"m=audio {self.port} RTP/AVP {PCMU} {TELEPHONE_EVENT}",
            "a=rtpmap:0 PCMU/8000",
            f"a=rtpmap:{TELEPHONE_EVENT} telephone-event/8000",
            f"a=fmtp:{TELEPHONE_EVENT} 0-15",
            "a=ptime:20",
            "a=sendrecv",
        ]
        return ("\r\n".join(lines) + "\r\n").encode()

    def use_answer(self, sdp: bytes) -> None:
        answer = SessionDescription.parse(sdp)
        media = answer.media[0]
        connection = answer.connection_for(media)
        assert connection is not None, sdp
        assert media.port != 0, f"audio stream rejected: {sdp!r}"
        assert str(PCMU) in media.formats, f"answer without PCMU: {sdp!r}"
        self.remote = (connection.host, media.port)

    def _send(self, packet: RtpPacket) -> None:
        assert self._transport is not None and self.remote is not None
        self._transport.sendto(bytes(packet), self.remote)

    async def send_audio(self, pcm: np.ndarray) -> tuple[float, float]:
        """Send *pcm* (8 kHz int16) as 20 ms PCMU packets, packet n at start + n·20 ms.
        Returns (start, end) on the loop clock."""
        loop = asyncio.get_running_loop()
        encoded = ulaw_encode(pcm)
        start = loop.time()
        for n, k in enumerate(range(0, len(encoded), SAMPLES)):
            delay = start + n * PTIME - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._send(
                RtpPacket(
                    payload_type=PCMU,
                    sequence_number=self.seq & 0xFFFF,
                    timestamp=self.ts & 0xFFFFFFFF,
                    ssrc=self.ssrc,
                    payload=encoded[k : k + SAMPLES],
                    marker=n == 0,
                )
            )
            self.seq += 1
            self.ts += SAMPLES
        return start, loop.time()

    async def send_digits(self, digits: str, *, duration: float = 0.12, gap: float = 0.1) -> None:
        """RFC 4733 §2.5.1 events: marker, updates every 20 ms, the end packet three times."""
        loop = asyncio.get_running_loop()
        sender = TelephoneEventSender(payload_type=TELEPHONE_EVENT)
        for digit in digits:
            packets = sender.packets(
                digit,
                duration=duration,
                timestamp=self.ts,
                first_sequence=self.seq,
                ssrc=self.ssrc,
                start=loop.time(),
            )
            for scheduled in packets:
                delay = scheduled.at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._send(scheduled.packet)
            self.seq += len(packets)
            self.ts += round((duration + gap) * 8000)
            await asyncio.sleep(gap)

    async def wait_quiet(self, *, quiet: float, after: int = 0, limit: float) -> int:
        """Wait until more than *after* packets came and then none for *quiet* seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            if len(self.received) > after and loop.time() - self.received[-1].at >= quiet:
                return len(self.received)
            await asyncio.sleep(0.01)
        raise AssertionError(
            f"the far end did not go quiet within {limit} s ({len(self.received)} packets)"
        )

    async def wait_beep_then_quiet(
        self, *, frequency: float = 1000.0, quiet: float = 0.3, after: int = 0, limit: float
    ) -> int:
        """Wait until the far end went quiet for *quiet* seconds right after a tone of
        *frequency* (the beep before the recording). A quiet spell without the tone before it —
        a loaded sender's stall in the middle of the greeting — is waited out, not taken for
        the end of the greeting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no beep then quiet within {limit} s")
            heard = await self.wait_quiet(quiet=quiet, after=after, limit=left)
            if contains_tone(self.audio(max(0, heard - 15)), frequency):  # its last 300 ms
                return heard
            after = heard

    async def wait_packets(self, count: int, *, limit: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while len(self.received) < count:
            if loop.time() > deadline:
                raise AssertionError(f"only {len(self.received)} RTP packets within {limit} s")
            await asyncio.sleep(0.01)

    def audio(self, start: int = 0) -> np.ndarray:
        """The PCMU audio received from packet index *start* on, decoded, in arrival order."""
        payloads = [
            a.packet.payload for a in self.received[start:] if a.packet.payload_type == PCMU
        ]
        if not payloads:
            return np.zeros(0, dtype=np.int16)
        return ulaw_decode(b"".join(payloads))


def contains_tone(pcm: np.ndarray, frequency: float, *, rate: int = 8000) -> bool:
    """True when *frequency* dominates the spectrum of *pcm* (e.g. the 1 kHz beep)."""
    if len(pcm) < rate // 10:
        return False
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    peak = float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(np.argmax(spectrum))])
    return abs(peak - frequency) < 30


# ---------------------------------------------------------------------------------- signalling


@dataclass
class CallRecord:
    """What happened to one outgoing call."""

    call: Call
    progress: list[int] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    end_reason: str | None = None
    end_status: int | None = None


class Caller:
    """A SIP user agent placing calls (the UAC side of ``sipum_protocol.sip.ua``) on loopback UDP."""

    def __init__(self, *, user: str = "bob", domain: str) -> None:
        self.user = user
        self.domain = domain
        self.endpoint = UserAgentEndpoint(
            EndpointConfig(host="127.0.0.1", udp_port=0), on_event=self._on_event, user=user
        )
        self.calls: dict[str, CallRecord] = {}
        self.trace: list[str] = []
        """First line of every SIP message sent and received (for failure reports)."""
        self._tap(self.endpoint)

    def _tap(self, endpoint: UserAgentEndpoint) -> None:
        # The adapter binds these at start(); wrapping them first records the wire traffic.
        receive, send = endpoint._receive, endpoint._send
        clock = time.monotonic

        def on_receive(data: bytes, peer: Peer) -> None:
            self.trace.append(f"{clock():.3f} <- {peer.host}:{peer.port} {_first_line(data)}")
            try:
                receive(data, peer)
            except Exception as exc:  # the transport would drop it silently
                self.trace.append(
                    f"   ! {exc!r}\n{traceback.format_exc()}\n{data.decode(errors='replace')}"
                )
                raise

        def on_send(data: bytes, peer: Peer) -> None:
            self.trace.append(f"{clock():.3f} -> {peer.host}:{peer.port} {_first_line(data)}")
            send(data, peer)

        endpoint._receive = on_receive  # type: ignore[method-assign]
        endpoint._send = on_send  # type: ignore[method-assign]

    def describe(self) -> str:
        return "\n".join(self.trace[-40:])

    async def __aenter__(self) -> Caller:
        await self.endpoint.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.endpoint.close()

    def invite(self, target: str, proxy: tuple[str, int], sdp: bytes) -> CallRecord:
        """INVITE *target* (a SIP URI) through *proxy* with our SDP offer."""
        call = self.endpoint.ua.invite(
            target,
            peer=Peer("UDP", proxy[0], proxy[1]),
            sdp=sdp,
            from_uri=f"sip:{self.user}@{self.domain}",
            now=self.endpoint.now(),
        )
        self.endpoint.transmit()
        record = CallRecord(call)
        self.calls[call.call_id] = record
        return record

    def _on_event(self, event: UserAgentEvent) -> None:
        record = self.calls.get(event.call.call_id)
        if record is None:
            return
        if isinstance(event, CallProgress):
            record.progress.append(event.status)
        elif isinstance(event, CallAnswered):
            record.answered.set()
        elif isinstance(event, CallEnded):
            record.end_reason, record.end_status = event.reason, event.status
            record.ended.set()


def _first_line(data: bytes) -> str:
    """Start line, Call-ID, CSeq and top Via branch: enough to follow a transaction."""
    lines = data.split(b"\r\n")

    def header(*names: bytes) -> str:
        for h in lines[1:]:
            name, _, value = h.partition(b":")
            if name.strip().lower() in names:
                return value.decode(errors="replace").strip()
        return ""

    branch = header(b"via", b"v").partition("branch=")[2].split(";")[0]
    return (
        f"{lines[0].decode(errors='replace')} [{header(b'call-id', b'i')[:10]}"
        f" {header(b'cseq')} {branch}]"
    )


async def wait_event(
    event: asyncio.Event, limit: float, what: str, caller: Caller | None = None
) -> None:
    try:
        async with asyncio.timeout(limit):
            await event.wait()
    except TimeoutError:
        trace = f"\nSIP seen by the caller:\n{caller.describe()}" if caller else ""
        raise AssertionError(f"{what} did not happen within {limit} s{trace}") from None


# ---------------------------------------------------------------------------------- sipp


def sipp_argv(
    scenario: str,
    target: tuple[str, int] | None,
    *,
    port: int,
    keys: dict[str, str] | None = None,
    timeout: float = 30.0,
    extra: list[str] | None = None,
) -> list[str]:
    argv = ["sipp"]
    if target is not None:
        argv.append(f"{target[0]}:{target[1]}")
    argv += [
        "-sf", str(SCENARIOS / f"{scenario}.xml"),
        "-m", "1", "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_udp_port()),
        "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error", "-max_recv_loops", "100",
    ]  # fmt: skip
    for name, value in (keys or {}).items():
        argv += ["-key", name, value]
    return argv + (extra or [])


def run_sipp(argv: list[str], *, cwd: Path, limit: float = 30.0) -> tuple[int, str]:
    """Run a sipp to its end; (exit status, output tail)."""
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=limit, stdin=subprocess.DEVNULL
    )
    return result.returncode, (result.stdout + result.stderr)[-3000:]


@dataclass
class SippProcess:
    """A sipp phone running in the background (stopped by PID by :meth:`stop`)."""

    proc: subprocess.Popen[str]
    port: int

    def wait(self, limit: float) -> tuple[int, str]:
        try:
            out, err = self.proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            self.stop()
            out, err = self.proc.communicate(timeout=5)
            return -1, (out + err)[-3000:]
        return self.proc.returncode, (out + err)[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def start_sipp(argv: list[str], *, cwd: Path, port: int) -> SippProcess:
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    return SippProcess(proc, port)


def register_phone(
    kamailio: tuple[str, int],
    *,
    user: str,
    password: str,
    domain: str,
    contact_port: int,
    cwd: Path,
    expires: int = 300,
) -> None:
    """sipp REGISTERs ``sip:<user>@<domain>`` → ``sip:<user>@127.0.0.1:<contact_port>``,
    answering Kamailio's digest challenge (RFC 3261 §22, qop=auth)."""
    argv = sipp_argv(
        "register",
        kamailio,
        port=free_udp_port(),
        keys={"domain": domain, "contact_port": str(contact_port), "expires": str(expires)},
        extra=["-s", user, "-au", user, "-ap", password],
        timeout=15,
    )
    code, out = run_sipp(argv, cwd=cwd, limit=20)
    assert code == 0, f"sipp REGISTER failed ({code}): {out}"
