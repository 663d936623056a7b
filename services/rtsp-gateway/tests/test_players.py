"""The gateway streams a stored message to real players: ffmpeg (UDP and TCP-interleaved,
token and Digest), GStreamer rtspsrc, and aiortsp; decoded audio is compared numerically."""

from __future__ import annotations

import asyncio
import io
import socket
import wave
from pathlib import Path

import numpy as np
import pytest
import uvloop
from sipum.blobstore import FileBlobStore
from sipum.blobstore.keys import message_key
from sipum.db import domains, messages, users
from sipum.security.tokens import sign_play_link
from sipum_protocol.media.codecs import ulaw_decode, ulaw_encode
from sipum_protocol.media.ports import PortPool
from sipum_rtsp_gateway.access import MessageAccess
from sipum_rtsp_gateway.audio import AudioCache
from sipum_rtsp_gateway.server import RtspGateway

SECRET = "test-secret"
RATE = 8000
SECONDS = 3.0


def known_audio() -> np.ndarray:
    """A speech-like test signal: two gliding harmonics with a syllable envelope."""
    t = np.arange(int(SECONDS * RATE)) / RATE
    f0 = 180 + 60 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3.1 * t) ** 2
    signal = envelope * (
        0.5 * np.sin(phase) + 0.3 * np.sin(2.7 * phase) + 0.15 * np.sin(5.3 * phase)
    )
    return (signal * 12000).astype(np.int16)


def wav_bytes(pcm: np.ndarray, rate: int = RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return out.getvalue()


def best_correlation(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Correlation at the best alignment (players may drop or pad a few ms at the edges)."""
    ref = reference.astype(np.float64)
    got = decoded.astype(np.float64)
    n = min(len(ref), len(got))
    assert n > len(ref) * 0.9, f"decoded {len(got)} samples, expected about {len(ref)}"
    best = 0.0
    for lag in range(-400, 401, 1):
        a = ref[max(0, lag) : n + min(0, lag)] if lag >= 0 else ref[: n + lag]
        b = got[: len(a)] if lag >= 0 else got[-lag : -lag + len(a)]
        m = min(len(a), len(b))
        if m < n * 0.8:
            continue
        c = float(np.corrcoef(a[:m], b[:m])[0, 1])
        best = max(best, c)
    return best


@pytest.fixture(scope="module")
def event_loop_policy() -> uvloop.EventLoopPolicy:
    """The services run on uvloop (``run_service_main``); so do these tests."""
    return uvloop.EventLoopPolicy()


@pytest.fixture
async def gateway(pg_pool, tmp_path: Path):
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    await domains.create(pg_pool, "example.com")
    alice = await users.create(pg_pool, "alice", "example.com", "alice-password-1", pin="5820")
    bob = await users.create(pg_pool, "bob", "example.com", "bob-password-12")
    blobs = FileBlobStore(tmp_path / "blobs")
    pcm = known_audio()
    message_id = await messages.allocate_id(pg_pool)
    key = message_key("example.com", "alice", message_id)
    data = wav_bytes(pcm)
    await blobs.put(key, data)
    message, _ = await messages.insert_idempotent(
        pg_pool,
        owner_id=alice.id,
        idempotency_key=f"test-{message_id}",
        caller_uri="sip:bob@example.com",
        called_uri="sip:alice@example.com",
        duration_ms=int(SECONDS * 1000),
        codec="PCMU",
        size_bytes=len(data),
        blob_key=key,
        message_id=message_id,
    )
    rtp_base = 40000 + (message_id % 500) * 20
    gw = RtspGateway(
        access=MessageAccess(pg_pool, secret_key=SECRET, default_domain="example.com"),
        audio=AudioCache(blobs),
        ports=PortPool(rtp_base, rtp_base + 19, host="127.0.0.1"),
        host="127.0.0.1",
        port=0,
    )
    port = await gw.start()
    base = f"rtsp://127.0.0.1:{port}/alice/inbox/{message.id}.wav"
    token = sign_play_link(SECRET, alice.id, message.id, ttl=600)
    yield {
        "gw": gw,
        "port": port,
        "base": base,
        "token": token,
        "pcm": pcm,
        "message": message,
        "bob": bob,
    }
    await gw.stop_listening()
    for conn in list(gw.connections):
        conn.close()


# What the player should get back: the original through the µ-law quantizer.
def through_ulaw(pcm: np.ndarray) -> np.ndarray:
    return ulaw_decode(ulaw_encode(pcm))


async def run(*cmd: str, limit: float = 30.0) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{cmd[0]} did not finish in {limit}s") from None
    return proc.returncode or 0, out


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_ffmpeg_plays_message_with_token(gateway, tmp_path: Path, transport: str) -> None:
    out = tmp_path / f"ffmpeg-{transport}.raw"
    url = f"{gateway['base']}?token={gateway['token']}"
    code, log = await run(
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-rtsp_transport",
        transport,
        "-i",
        url,
        "-f",
        "s16le",
        "-ar",
        "8000",
        "-ac",
        "1",
        "-y",
        str(out),
    )
    assert code == 0, log.decode(errors="replace")
    decoded = np.frombuffer(out.read_bytes(), dtype="<i2")
    assert abs(len(decoded) / RATE - SECONDS) < 0.25
    assert best_correlation(through_ulaw(gateway["pcm"]), decoded) > 0.98


async def test_ffmpeg_with_digest_credentials(gateway, tmp_path: Path) -> None:
    out = tmp_path / "digest.raw"
    url = gateway["base"].replace("rtsp://", "rtsp://alice:alice-password-1@")
    code, log = await run(
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-rtsp_transport",
        "tcp",
        "-i",
        url,
        "-f",
        "s16le",
        "-ar",
        "8000",
        "-ac",
        "1",
        "-y",
        str(out),
    )
    assert code == 0, log.decode(errors="replace")
    decoded = np.frombuffer(out.read_bytes(), dtype="<i2")
    assert best_correlation(through_ulaw(gateway["pcm"]), decoded) > 0.98


async def test_ffmpeg_with_wrong_password_gets_nothing(gateway, tmp_path: Path) -> None:
    out = tmp_path / "denied.raw"
    url = gateway["base"].replace("rtsp://", "rtsp://alice:wrong-password@")
    code, log = await run(
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-rtsp_transport",
        "tcp",
        "-i",
        url,
        "-f",
        "s16le",
        "-y",
        str(out),
    )
    assert code != 0 and not out.exists()
    assert b"401" in log or b"Unauthorized" in log


# Its default negotiation ("udp-mcast+udp+tcp") ends on UDP unicast; "tcp" is interleaved.
@pytest.mark.parametrize("protocols", ["tcp", "udp-mcast+udp+tcp"])
async def test_gstreamer_rtspsrc_plays_to_the_end(gateway, tmp_path: Path, protocols: str) -> None:
    out = tmp_path / "gst.raw"
    url = f"{gateway['base']}?token={gateway['token']}"
    code, log = await run(
        "gst-launch-1.0",
        "-q",
        "rtspsrc",
        f"location={url}",
        f"protocols={protocols}",
        "latency=100",
        "!",
        "rtppcmudepay",
        "!",
        "mulawdec",
        "!",
        "audioconvert",
        "!",
        "audioresample",
        "!",
        "audio/x-raw,format=S16LE,rate=8000,channels=1",
        "!",
        "filesink",
        f"location={out}",
        limit=40,
    )
    assert code == 0, log.decode(errors="replace")
    decoded = np.frombuffer(out.read_bytes(), dtype="<i2")
    assert abs(len(decoded) / RATE - SECONDS) < 0.3
    assert best_correlation(through_ulaw(gateway["pcm"]), decoded) > 0.98


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.settimeout(5)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


async def test_access_rules_and_protocol_errors(gateway) -> None:
    port, base = gateway["port"], gateway["base"]
    loop = asyncio.get_running_loop()

    async def ask(data: bytes) -> bytes:
        return await loop.run_in_executor(None, raw_exchange, port, data)

    # No credentials: 401 with a Digest challenge, whoever's message it is.
    reply = await ask(f"DESCRIBE {base} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
    assert (
        reply.startswith(b"RTSP/1.0 401")
        and b'WWW-Authenticate: Digest realm="example.com"' in reply
    )
    # A valid token for alice's message does not open another message id.
    other = base.replace(f"/{gateway['message'].id}.wav", f"/{gateway['message'].id + 1}.wav")
    reply = await ask(
        f"DESCRIBE {other}?token={gateway['token']} RTSP/1.0\r\nCSeq: 2\r\n\r\n".encode()
    )
    assert reply.startswith(b"RTSP/1.0 403")
    # The same message in another folder: the owner is authenticated, the message is not there.
    saved = base.replace("/inbox/", "/saved/")
    reply = await ask(
        f"DESCRIBE {saved}?token={gateway['token']} RTSP/1.0\r\nCSeq: 3\r\n\r\n".encode()
    )
    assert reply.startswith(b"RTSP/1.0 404")
    # Bob's mailbox path with alice's token: 403; a forged token: 401.
    reply = await ask(
        f"DESCRIBE {base.replace('/alice/', '/bob/')}?token={gateway['token']} RTSP/1.0\r\nCSeq: 4\r\n\r\n".encode()
    )
    assert reply.startswith(b"RTSP/1.0 403")
    reply = await ask(f"DESCRIBE {base}?token=abc.def RTSP/1.0\r\nCSeq: 5\r\n\r\n".encode())
    assert reply.startswith(b"RTSP/1.0 401")
    # Not a message URL: 404 (after no authentication is needed to know the shape is wrong).
    reply = await ask(b"DESCRIBE rtsp://127.0.0.1/etc/passwd RTSP/1.0\r\nCSeq: 6\r\n\r\n")
    assert reply.startswith(b"RTSP/1.0 404")
    # RTSP/2.0 → 505 (GStreamer falls back to 1.0); garbage → 400 and the connection closes.
    reply = await ask(b"OPTIONS rtsp://127.0.0.1/ RTSP/2.0\r\nCSeq: 1\r\n\r\n")
    assert reply.startswith(b"RTSP/1.0 505") and b"CSeq: 1" in reply
    reply = await ask(b"HELLO\r\n\r\n")
    assert reply.startswith(b"RTSP/1.0 400")
    # PLAY on an unknown session: 454; methods we do not implement: 501.
    reply = await ask(
        f"PLAY {base}?token={gateway['token']} RTSP/1.0\r\nCSeq: 7\r\nSession: 1234\r\n\r\n".encode()
    )
    assert reply.startswith(b"RTSP/1.0 454")
    reply = await ask(f"RECORD {base} RTSP/1.0\r\nCSeq: 8\r\n\r\n".encode())
    assert reply.startswith(b"RTSP/1.0 501")
