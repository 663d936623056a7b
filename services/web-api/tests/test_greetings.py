"""Greeting upload: any audio FFmpeg reads becomes 16 kHz mono WAV; bounds and errors."""

from __future__ import annotations

import asyncio
import io
import subprocess
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydantic import SecretStr
from sipum.blobstore import FileBlobStore
from sipum.config import ServiceSettings
from sipum.db import domains, greetings, users
from sipum.runtime import HealthRegistry, ServiceContext
from sipum_web_api.app import create_app


def wav(pcm: np.ndarray, rate: int, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return out.getvalue()


def tone(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


@pytest.fixture
async def client(pg_pool, event_bus, tmp_path: Path):
    await domains.ensure(pg_pool, "example.com")
    for name in ("alice", "bob"):
        await users.create(pg_pool, name, "example.com", f"{name}-password-1")
    ctx = ServiceContext(
        settings=ServiceSettings(domain="example.com", secret_key=SecretStr("g-secret")),
        health=HealthRegistry("web-api"),
        pool=pg_pool,
        bus=event_bus,
        blobs=FileBlobStore(tmp_path / "blobs"),
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:

        async def login(name: str) -> dict[str, str]:
            r = await c.post(
                "/api/v1/login", json={"username": name, "password": f"{name}-password-1"}
            )
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        c.cookies.clear()
        yield c, ctx, login


async def test_wav_upload_is_stored_as_16k_mono_and_replaced_and_deleted(client) -> None:
    c, ctx, login = client
    alice = await login("alice")
    c.cookies.clear()
    stereo = np.repeat(tone(44100, 1.5), 2)  # interleaved L/R, same signal
    r = await c.put(
        "/api/v1/greetings/unavailable", content=wav(stereo, 44100, channels=2), headers=alice
    )
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "unavailable" and abs(r.json()["duration_s"] - 1.5) < 0.03
    audio = await c.get("/api/v1/greetings/unavailable/audio", headers=alice)
    with wave.open(io.BytesIO(audio.content)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        stored = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float)
    expected = tone(16000, 1.5).astype(float)
    n = min(len(stored), len(expected)) - 400
    assert np.corrcoef(stored[200:n], expected[200:n])[0, 1] > 0.99
    # the recorder finds it where it looks
    alice_user = await users.get_by_address(ctx.pool, "alice", "example.com")
    stored_row = await greetings.get(ctx.pool, alice_user.id, "unavailable")
    assert stored_row is not None and await ctx.blobs.exists(stored_row.blob_key)
    # replacing keeps one greeting of that kind
    r = await c.put(
        "/api/v1/greetings/unavailable", content=wav(tone(8000, 0.5), 8000), headers=alice
    )
    assert r.status_code == 200 and abs(r.json()["duration_s"] - 0.5) < 0.03
    assert [g["kind"] for g in (await c.get("/api/v1/greetings", headers=alice)).json()] == [
        "unavailable"
    ]
    # bob sees none of it
    bob = await login("bob")
    c.cookies.clear()
    assert (await c.get("/api/v1/greetings", headers=bob)).json() == []
    assert (await c.get("/api/v1/greetings/unavailable/audio", headers=bob)).status_code == 404
    assert (await c.delete("/api/v1/greetings/unavailable", headers=alice)).status_code == 204
    assert not await ctx.blobs.exists(stored_row.blob_key)
    assert (await c.delete("/api/v1/greetings/unavailable", headers=alice)).status_code == 404


async def test_other_formats_through_ffmpeg(client, tmp_path: Path) -> None:
    c, _, login = client
    alice = await login("alice")
    c.cookies.clear()
    source = tmp_path / "in.wav"
    source.write_bytes(wav(tone(48000, 1.0), 48000))
    ogg = tmp_path / "greeting.ogg"
    await asyncio.to_thread(
        subprocess.run,
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(source),
            "-c:a",
            "libopus",
            "-y",
            str(ogg),
        ],
        check=True,
        timeout=60,
    )
    r = await c.put(
        "/api/v1/greetings/temporary?expires_at=2030-01-01T00:00:00Z",
        content=ogg.read_bytes(),
        headers={**alice, "Content-Type": "audio/ogg"},
    )
    assert r.status_code == 200, r.text
    assert abs(r.json()["duration_s"] - 1.0) < 0.05 and r.json()["expires_at"].startswith(
        "2030-01-01"
    )


async def test_bad_uploads(client) -> None:
    c, _, login = client
    alice = await login("alice")
    c.cookies.clear()
    garbage = await c.put(
        "/api/v1/greetings/busy", content=b"this is not audio" * 100, headers=alice
    )
    assert garbage.status_code == 422 and "cannot read" in garbage.json()["detail"]
    assert (await c.put("/api/v1/greetings/busy", content=b"", headers=alice)).status_code == 422
    short = await c.put("/api/v1/greetings/busy", content=wav(tone(8000, 0.1), 8000), headers=alice)
    assert short.status_code == 422 and "at least" in short.json()["detail"]
    big = await c.put(
        "/api/v1/greetings/busy", content=b"\0" * (10 * 1024 * 1024 + 1), headers=alice
    )
    assert big.status_code == 413
    assert (
        await c.put("/api/v1/greetings/holiday", content=wav(tone(8000, 1), 8000), headers=alice)
    ).status_code == 422
    assert (
        await c.put("/api/v1/greetings/busy", content=wav(tone(8000, 1), 8000))
    ).status_code == 401
    assert (await c.get("/api/v1/greetings", headers=alice)).json() == []
