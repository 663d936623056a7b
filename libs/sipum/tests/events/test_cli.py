"""``sipum-events`` as a real subprocess against the real NATS server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sipum.events import EventBus, MessageCreated, UserCreated
from sipum.events.examples import EVENT_EXAMPLES
from sipum.events_cli import parse_since
from sipum_testing.s3 import free_port

CREATED = EVENT_EXAMPLES[0]
assert isinstance(CREATED, MessageCreated)
CONSOLE_SCRIPT = Path(sys.executable).parent / "sipum-events"
LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ message\.created alice@example\.com id=(\d+) dur=5\.0s "
    r"from=sip:bob@example\.org"
)


def created(message_id: int) -> MessageCreated:
    data = CREATED.model_dump(exclude={"id", "ts"})
    data["message_id"] = message_id
    return MessageCreated(**data)


class Cli:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def ready(self) -> str:
        """Wait for the status line the command prints once it is subscribed."""
        assert self.proc.stderr is not None
        line = await asyncio.wait_for(self.proc.stderr.readline(), 20)
        text = line.decode()
        assert "sipum-events: following" in text, text
        return text

    async def line(self) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), 10)
        return raw.decode().rstrip("\n")

    async def finish(self) -> tuple[int, str, str]:
        out, err = await asyncio.wait_for(self.proc.communicate(), 15)
        assert self.proc.returncode is not None
        return self.proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def run_cli(event_bus: EventBus, nats_url: str) -> AsyncIterator:  # type: ignore[type-arg]
    procs: list[asyncio.subprocess.Process] = []

    async def start(
        *args: str, script: bool = False, namespace: bool = True, env: dict[str, str] | None = None
    ) -> Cli:
        cmd = [str(CONSOLE_SCRIPT)] if script else [sys.executable, "-m", "sipum.events_cli"]
        if namespace:
            cmd += [
                "--server",
                nats_url,
                "--prefix",
                event_bus.subjects.prefix,
                "--stream",
                event_bus.stream,
            ]
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        procs.append(proc)
        return Cli(proc)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_live_shows_a_published_event(event_bus: EventBus, run_cli) -> None:  # type: ignore[no-untyped-def]
    assert CONSOLE_SCRIPT.exists()
    await event_bus.publish(created(1))  # before the command starts: not shown live
    cli = await run_cli("--count", "1", script=True)
    status = await cli.ready()
    assert "(live)" in status
    await event_bus.publish(created(67212))
    line = await cli.line()
    m = LINE.match(line)
    assert m, line
    assert m.group(1) == "67212"
    code, rest, _ = await cli.finish()
    assert code == 0 and rest == ""


async def test_replay_since_relative_time(event_bus: EventBus, run_cli) -> None:  # type: ignore[no-untyped-def]
    for i in (11, 12, 13):
        await event_bus.publish(created(i))
    await event_bus.publish(UserCreated(username="carol", domain="example.com"))
    cli = await run_cli("--since", "5m", "--no-follow")
    code, out, err = await cli.finish()
    assert code == 0, err
    lines = out.splitlines()
    assert [LINE.match(x).group(1) for x in lines[:3]] == ["11", "12", "13"]  # type: ignore[union-attr]
    assert lines[3].endswith("user.created carol@example.com email=-")
    assert len(lines) == 4


async def test_replay_since_iso_time_as_json(event_bus: EventBus, run_cli) -> None:  # type: ignore[no-untyped-def]
    await event_bus.publish(created(21))
    await asyncio.sleep(1.1)
    boundary = datetime.now(UTC) - timedelta(milliseconds=100)
    later = created(22)
    await event_bus.publish(later)
    cli = await run_cli("--since", boundary.isoformat(), "--no-follow", "--json")
    code, out, err = await cli.finish()
    assert code == 0, err
    records = [json.loads(x) for x in out.splitlines()]
    assert len(records) == 1
    rec = records[0]
    assert rec["kind"] == "message.created"
    assert rec["subject"] == f"{event_bus.subjects.prefix}.evt.message.created"
    assert rec["seq"] == 2
    assert MessageCreated.model_validate(rec["event"]) == later


async def test_replay_then_follow(event_bus: EventBus, run_cli) -> None:  # type: ignore[no-untyped-def]
    await event_bus.publish(created(31))
    cli = await run_cli("--since", "1h", "--count", "2")
    await cli.ready()
    first = await cli.line()
    await event_bus.publish(created(32))
    second = await cli.line()
    assert [LINE.match(x).group(1) for x in (first, second)] == ["31", "32"]  # type: ignore[union-attr]
    code, _, _ = await cli.finish()
    assert code == 0


async def test_kind_filter_and_bad_payloads(event_bus: EventBus, run_cli) -> None:  # type: ignore[no-untyped-def]
    subject = event_bus.subjects.event("message.created")
    await event_bus.js.publish(subject, b"not json at all", stream=event_bus.stream)
    await event_bus.publish(UserCreated(username="dave", domain="example.com"))
    await event_bus.publish(created(41))
    cli = await run_cli("--all", "--no-follow", "--kind", "message.*")
    code, out, err = await cli.finish()
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    assert "message.created (invalid payload" in lines[0] and "not json at all" in lines[0]
    assert LINE.match(lines[1])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_stops_cleanly_on_signal(run_cli, sig: signal.Signals) -> None:  # type: ignore[no-untyped-def]
    cli = await run_cli()
    await cli.ready()
    cli.proc.send_signal(sig)
    code, out, err = await cli.finish()
    assert code == 0
    assert out == ""
    assert "Traceback" not in err


async def test_no_follow_on_an_empty_range_exits(run_cli) -> None:  # type: ignore[no-untyped-def]
    cli = await run_cli("--since", "1m", "--no-follow")
    code, out, _ = await cli.finish()
    assert (code, out) == (0, "")


async def test_unreachable_server(run_cli) -> None:  # type: ignore[no-untyped-def]
    cli = await run_cli("--server", f"nats://127.0.0.1:{free_port()}", namespace=False)
    code, out, err = await cli.finish()
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "nats_url" in err and "Traceback" not in err


async def test_missing_stream(run_cli, nats_url: str) -> None:  # type: ignore[no-untyped-def]
    cli = await run_cli(
        "--server", nats_url, "--stream", "NO_SUCH_STREAM_X1", "--prefix", "nosuch", namespace=False
    )
    code, _, err = await cli.finish()
    assert code == 1
    assert "NO_SUCH_STREAM_X1 does not exist" in err


async def test_bad_since(run_cli) -> None:  # type: ignore[no-untyped-def]
    cli = await run_cli("--since", "yesterday-ish")
    code, _, err = await cli.finish()
    assert code == 2
    assert "--since" in err


def test_parse_since() -> None:
    now = datetime(2026, 11, 26, 5, 10, tzinfo=UTC)
    assert parse_since("10m", now) == now - timedelta(minutes=10)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("1d", now) == now - timedelta(days=1)
    assert parse_since("1h30m", now) == now - timedelta(minutes=90)
    assert parse_since("45s", now) == now - timedelta(seconds=45)
    assert parse_since("2026-11-26T05:00:00Z") == datetime(2026, 11, 26, 5, tzinfo=UTC)
    assert parse_since("2026-11-26T06:00:00+01:00") == datetime(2026, 11, 26, 5, tzinfo=UTC)
    assert parse_since("2026-11-26T05:00:00") == datetime(2026, 11, 26, 5, tzinfo=UTC)
    for bad in ("", "m", "10x", "-5m", "tomorrow"):
        with pytest.raises(ValueError):
            parse_since(bad, now)


async def test_settings_from_the_environment(event_bus: EventBus, run_cli, nats_url: str) -> None:  # type: ignore[no-untyped-def]
    """The same SIPUM_* variables the services read select server, prefix and stream."""
    await event_bus.publish(created(51))
    cli = await run_cli(
        "--all",
        "--no-follow",
        namespace=False,
        env={
            "SIPUM_NATS_URL": nats_url,
            "SIPUM_EVENTS_PREFIX": event_bus.subjects.prefix,
            "SIPUM_EVENTS_STREAM": event_bus.stream,
        },
    )
    code, out, err = await cli.finish()
    assert code == 0, err
    assert [LINE.match(x).group(1) for x in out.splitlines()] == ["51"]  # type: ignore[union-attr]
