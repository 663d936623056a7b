"""The notify command (-k), the sendmail transport (-m) and MP3 attachments, with real peers:
a real program run per message, Debian's msmtp as the sendmail (relaying to a real aiosmtpd
server), and ffmpeg decoding the MP3 the notifier attached."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import wave
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from sipum.config import load_settings
from sipum.db import users
from sipum.events import NotificationFailed, NotificationSent
from sipum_notifier.process import ProgramTimeout, run_program
from sipum_notifier.settings import NotifierSettings, add_arguments, apply_arguments
from sipum_testing.rtp_caller import best_correlation, speech_like

from .test_notifier import start_notifier, wait_for

HOSTILE = "Bob\"; $(touch pwned-1); `touch pwned-2`; rm -rf ./x ' \u0007|| touch pwned-3 #"


def script(tmp_path: Path, name: str, body: str) -> Path:
    """A Python program (the notify command) with this interpreter in its #! line."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\nimport json, os, sys, pathlib\n{body}\n")
    path.chmod(0o755)
    return path


def collector(events: list, model):
    async def on_event(event) -> None:
        events.append(event)

    return on_event


async def test_notify_command_gets_the_event_as_data_never_as_shell(
    world, smtp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box, port = smtp()
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)  # where a shell-injected `touch` would land
    monkeypatch.setenv("SIPUM_SECRET_KEY", "must-not-leak")
    monkeypatch.setenv("SIPUM_DATABASE_URL", "postgresql://must:not@leak/x")
    command = script(
        tmp_path,
        "notify",
        "out = pathlib.Path(sys.argv[0]).parent / 'out'\n"
        "(out / 'stdin.json').write_text(sys.stdin.read())\n"
        "(out / 'env.json').write_text(json.dumps(dict(os.environ)))\n"
        "(out / 'argv.json').write_text(json.dumps(sys.argv))\n"
        "print('notified')",
    )
    sent: list[NotificationSent] = []
    await world["bus"].subscribe(NotificationSent, collector(sent, NotificationSent), durable="t-s")
    service = await start_notifier(world, port, notify_command=str(command))
    event = world["event"].model_copy(update={"caller_display": HOSTILE})
    await world["bus"].publish(event)
    await wait_for(lambda: {s.channel for s in sent} == {"email", "command"})
    env = json.loads((out / "env.json").read_text())
    assert json.loads((out / "argv.json").read_text()) == [str(command)]
    assert json.loads((out / "stdin.json").read_text())["caller_display"] == HOSTILE
    assert env["SIPUM_CALLER_NAME"] == HOSTILE.replace("\u0007", "")
    assert env["SIPUM_MESSAGE_ID"] == str(world["message"].id)
    assert env["SIPUM_MAILBOX"] == "alice@example.com"
    assert "SIPUM_SECRET_KEY" not in env and "SIPUM_DATABASE_URL" not in env
    assert sorted(p.name for p in out.iterdir()) == ["argv.json", "env.json", "stdin.json"]
    assert len(box.mails) == 1
    await service.stop_accepting()


async def test_failing_command_is_retried_without_a_second_mail(world, smtp, tmp_path) -> None:
    box, port = smtp()
    runs = tmp_path / "runs"
    command = script(
        tmp_path,
        "flaky",
        f"p = pathlib.Path({str(runs)!r}); n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "sys.exit(0 if n >= 2 else 3)",
    )
    failed: list[NotificationFailed] = []
    sent: list[NotificationSent] = []
    await world["bus"].subscribe(NotificationFailed, collector(failed, None), durable="t-f")
    await world["bus"].subscribe(NotificationSent, collector(sent, None), durable="t-s")
    service = await start_notifier(world, port, notify_command=str(command))
    await world["bus"].publish(world["event"])
    await wait_for(lambda: any(s.channel == "command" for s in sent), limit=15)  # retry at 1 s
    assert runs.read_text() == "2"
    [failure] = [f for f in failed if f.channel == "command"]
    assert "exited with 3" in failure.error and failure.will_retry
    # A redelivery of the event runs nothing again (claimed as sent) and mails nothing again.
    await service.handle_command(world["event"])
    await world["bus"].publish(world["event"].model_copy(update={"id": uuid.uuid4()}))
    await asyncio.sleep(1.0)
    assert runs.read_text() == "2" and len(box.mails) == 1
    await service.stop_accepting()


async def test_a_command_that_hangs_is_killed_with_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    command = script(
        tmp_path,
        "hang",
        "import subprocess, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"pathlib.Path({str(pids)!r}).write_text(str(child.pid))\n"
        "time.sleep(60)",
    )
    with pytest.raises(ProgramTimeout):
        await run_program([str(command)], stdin=b"", env=None, time_limit=1.0, output_limit=100)
    assert await asyncio.to_thread(_gone_soon, int(pids.read_text()))


def _gone_soon(pid: int) -> bool:
    """The killed group's orphan is reaped by init shortly after: gone or a zombie."""
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists() or "Z" in _state(pid):
            return True
        time.sleep(0.05)
    return False


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return "Z"


async def test_output_is_capped_and_drained(tmp_path: Path) -> None:
    command = script(tmp_path, "chatty", "sys.stdout.write('x' * 1_000_000)")
    finished = await run_program(
        [str(command)], stdin=b"ignored " * 100_000, env=None, time_limit=10, output_limit=1000
    )
    assert finished.returncode == 0 and finished.stdout == b"x" * 1000 and finished.truncated


def test_k_and_m_flags() -> None:
    settings = load_settings(
        NotifierSettings,
        ["-k", "/usr/local/bin/notify", "-m", "/usr/sbin/sendmail"],
        prog="sipum-notifier",
        description="t",
        add_arguments=add_arguments,
        apply_arguments=apply_arguments,
    )
    assert settings.notify_command == "/usr/local/bin/notify"
    assert settings.mail_transport == "sendmail" and settings.sendmail_path == "/usr/sbin/sendmail"


MSMTP = shutil.which("msmtp")


def msmtp_home(tmp_path: Path, port: int) -> Path:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    rc = home / ".msmtprc"
    rc.write_text(
        "defaults\nauth off\ntls off\n"
        f"account default\nhost 127.0.0.1\nport {port}\nfrom voicemail@example.com\n"
    )
    rc.chmod(0o600)
    return home


async def test_sendmail_transport_through_msmtp(world, smtp, tmp_path, monkeypatch) -> None:
    assert MSMTP, "msmtp is installed by deploy/local/install"
    box, port = smtp()
    monkeypatch.setenv("HOME", str(msmtp_home(tmp_path, port)))
    service = await start_notifier(world, 9, mail_transport="sendmail", sendmail_path=MSMTP)
    await world["bus"].publish(world["event"])
    await wait_for(lambda: box.mails)
    [mail] = box.mails
    assert mail["To"] == "alice@mail.test" and "Bob" in mail["Subject"]
    assert mail["Message-ID"] == f"<sipum.voicemail.{world['message'].id}@example.com>"
    await service.stop_accepting()


async def test_sendmail_failure_is_retried(world, smtp, tmp_path, monkeypatch) -> None:
    assert MSMTP
    box, port = smtp()
    closed = port + 1 if port < 65535 else port - 1
    home = msmtp_home(tmp_path, closed)  # nothing listens there: msmtp exits non-zero
    monkeypatch.setenv("HOME", str(home))
    failed: list[NotificationFailed] = []
    await world["bus"].subscribe(NotificationFailed, collector(failed, None), durable="t-f")
    service = await start_notifier(world, 9, mail_transport="sendmail", sendmail_path=MSMTP)
    await world["bus"].publish(world["event"])
    await wait_for(lambda: failed)
    assert failed[0].channel == "email" and "exited with" in failed[0].error
    msmtp_home(tmp_path, port)  # the relay is back: the retry goes through
    await wait_for(lambda: box.mails, limit=15)
    assert len(box.mails) == 1
    await service.stop_accepting()


def speech_wav(seconds: float) -> tuple[bytes, np.ndarray]:
    pcm = speech_like(seconds).astype(np.int16)
    buf = BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    return buf.getvalue(), pcm


async def test_mp3_attachment_decodes_to_the_recording(world, smtp) -> None:
    box, port = smtp()
    wav, pcm = speech_wav(3.0)
    await world["blobs"].put(world["event"].blob_key, wav)
    await users.update(world["pool"], world["alice"].id, email_audio_format="mp3")
    service = await start_notifier(world, port)
    await world["bus"].publish(world["event"])
    await wait_for(lambda: box.mails)
    [part] = [p for p in box.mails[0].walk() if p.get_content_maintype() == "audio"]
    mp3 = part.get_payload(decode=True)
    assert part.get_content_type() == "audio/mpeg"
    assert part.get_filename() == f"voicemail-{world['message'].id}.mp3"
    assert len(mp3) < len(wav) / 4
    ffmpeg = await asyncio.to_thread(
        subprocess.run,
        ["ffmpeg", "-v", "error", "-i", "-", "-f", "s16le", "-ac", "1", "-ar", "8000", "-"],
        input=mp3,
        capture_output=True,
        check=True,
        timeout=30,
    )
    audio = np.frombuffer(ffmpeg.stdout, dtype=np.int16)
    assert abs(len(audio) - len(pcm)) < 8000 * 0.2  # the encoder's padding, not lost audio
    score, _ = best_correlation(audio, pcm[4000:12000])  # one second from the middle
    assert score > 0.9
    await service.stop_accepting()


async def test_an_attachment_over_the_cap_becomes_a_link(world, smtp) -> None:
    box, port = smtp()
    service = await start_notifier(world, port, attachment_max_bytes=100)  # the WAV is 204 B
    await world["bus"].publish(world["event"])
    await wait_for(lambda: box.mails)
    [mail] = box.mails
    assert not mail.is_multipart()
    assert "too large to attach" in mail.get_payload(decode=True).decode()
    await service.stop_accepting()


def test_environment_has_no_secrets_even_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from sipum_notifier.command import command_environment

    monkeypatch.setenv("SIPUM_SMTP_PASSWORD", "secret")
    env = command_environment(_event())
    assert set(env) - {"PATH", "LANG"} == {k for k in env if k.startswith("SIPUM_")}
    assert "SIPUM_SMTP_PASSWORD" not in env and os.environ["SIPUM_SMTP_PASSWORD"] == "secret"


def _event():
    from datetime import UTC, datetime

    from sipum.events import MessageCreated

    return MessageCreated(
        username="alice",
        domain="example.com",
        message_id=1,
        caller_uri="sip:bob@example.com",
        caller_display="Bob",
        called_uri="sip:alice@example.com",
        received_at=datetime.now(UTC),
        duration_s=1.0,
        codec="PCMU",
        size=10,
        blob_key="k",
    )
