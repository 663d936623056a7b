"""pytest fixtures: NATS with JetStream, isolated per test.

* ``nats_url`` (session): ``SIPUM_TEST_NATS_URL`` or ``nats://127.0.0.1:4222``.
* ``event_namespace``: a unique subject prefix (instead of ``sipum``) and stream name (instead
  of ``SIPUM``), so test suites running at the same time on one server never see each other's
  events; the stream (and its consumers) is deleted after the test.
* ``event_bus``: an ``EventBus`` connected in that namespace with its stream created.
* ``PrivateNatsServer``: a test's own ``nats-server`` process, to restart it (fault tests).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sipum.events import EventBus


@dataclass(frozen=True)
class EventNamespace:
    url: str
    prefix: str
    stream: str

    async def connect(self, name: str = "sipum-test") -> EventBus:
        return await EventBus.connect(self.url, name, prefix=self.prefix, stream=self.stream)


@pytest.fixture(scope="session")
def nats_url() -> str:
    return os.environ.get("SIPUM_TEST_NATS_URL", "nats://127.0.0.1:4222")


@contextlib.asynccontextmanager
async def isolated_event_namespace(url: str) -> AsyncIterator[EventNamespace]:
    """A unique prefix + stream name; the stream (with its consumers) is deleted at the end."""
    token = uuid.uuid4().hex[:16]
    ns = EventNamespace(url=url, prefix=f"t{token}", stream=f"TEST_{token}")
    try:
        yield ns
    finally:
        bus = await ns.connect("sipum-test-cleanup")
        try:
            await bus.delete_stream()
        finally:
            await bus.close()


@pytest.fixture
async def event_namespace(nats_url: str) -> AsyncIterator[EventNamespace]:
    async with isolated_event_namespace(nats_url) as ns:
        yield ns


@pytest.fixture
async def event_bus(event_namespace: EventNamespace) -> AsyncIterator[EventBus]:
    bus = await event_namespace.connect()
    try:
        await bus.ensure_stream()
        yield bus
    finally:
        await bus.close()


class PrivateNatsServer:
    """A ``nats-server`` process of one test (free loopback port, its own JetStream store), for
    faults the shared server must not suffer: ``stop()`` / ``start()`` again on the same port is a
    server restart. Stopped by PID."""

    def __init__(self, store_dir: str) -> None:
        self.store_dir = store_dir
        self.port = _free_tcp_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, limit: float = 10.0) -> PrivateNatsServer:
        binary = shutil.which("nats-server")
        if binary is None:
            raise RuntimeError("nats-server is not installed")
        self.proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.store_dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
