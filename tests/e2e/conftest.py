"""Fixtures for whole-system tests: sipum services started as real processes."""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServiceProcess:
    """A service process whose JSON log lines are collected by a reader thread."""

    name: str
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def start_reader(self) -> None:
        def pump() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)
                self._queue.put(line)
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for_log(self, msg: str, timeout: float = 20.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"{self.name} exited: {''.join(self.lines)[-3000:]}")
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == msg:
                return entry  # type: ignore[no-any-return]
        raise AssertionError(
            f"{self.name}: no {msg!r} log within {timeout}s: {''.join(self.lines)[-3000:]}"
        )

    def stop(self, timeout: float = 25.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise


@pytest.fixture
def service_env(pg_dsn: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a service: own database, own NATS subjects/stream, own blob root."""
    token = secrets.token_hex(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPUM_")}
    env.update(
        SIPUM_DATABASE_URL=pg_dsn,
        SIPUM_NATS_URL="nats://127.0.0.1:4222",
        SIPUM_EVENTS_PREFIX=f"t{token}",
        SIPUM_EVENTS_STREAM=f"T{token.upper()}",
        SIPUM_BLOB_ROOT=str(tmp_path / "blobs"),
        SIPUM_HTTP_HOST="127.0.0.1",
        SIPUM_HTTP_PORT="0",
        SIPUM_LOG_JSON="true",
        SIPUM_SECRET_KEY="test-signing-key",
    )
    return env


@pytest.fixture
def start_service(service_env: dict[str, str]) -> Iterator[object]:
    started: list[ServiceProcess] = []

    def start(name: str, *args: str, env: dict[str, str] | None = None) -> ServiceProcess:
        proc = subprocess.Popen(
            [str(BIN / f"sipum-{name}"), *args],
            env=env or service_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        service = ServiceProcess(name, proc)
        service.start_reader()
        started.append(service)
        return service

    yield start
    for service in started:
        if service.proc.poll() is None:
            service.proc.kill()
            service.proc.wait(5)
