"""Fixtures of the registrar-agent tests: real Kamailio (credentials from the test's PostgreSQL
database), real NATS, the agent in-process, a small fake media-recorder, and sipp callers."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sipum.db import domains, users
from sipum.events import (
    Event,
    EventBus,
    MediaAllocateReply,
    MediaAllocateRequest,
    RecorderHeartbeat,
    RemoteError,
    SessionCommand,
    SessionEnded,
    SessionHangup,
)
from sipum.runtime import HealthRegistry, ServiceContext
from sipum_protocol.sip.sdp import NoCommonCodec, SdpParseError, negotiate, parse_sdp
from sipum_registrar_agent.service import RegistrarAgentService
from sipum_registrar_agent.settings import RegistrarAgentSettings
from sipum_testing import kamailio as kamailio_plugin
from sipum_testing.kamailio import KamailioServer

DOMAIN = "sipum.test"
RECORDER_MARK = "sipum-fake-recorder"
SCENARIOS = Path(__file__).parent / "scenarios"
LITERAL_KEYS = {"talk_ms", "wait_ms", "answer_mark", "refer_to"}

kamailio_factory = kamailio_plugin.kamailio_factory


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeRecorder:
    """Serves ``sipum.media.allocate`` on the test's namespace like a media-recorder would:
    answers with its own SDP (``s=sipum-fake-recorder``), ``unsupported`` when no codec fits,
    and keeps the requests and the session commands it receives."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.requests: list[MediaAllocateRequest] = []
        self.commands: list[SessionCommand] = []
        self.delay = 0.0
        """Seconds before answering an allocate request (a busy recorder)."""
        self._subs: list[Any] = []

    async def start(self) -> FakeRecorder:
        self._subs.append(await self.bus.serve_media_allocate(self._allocate))
        self._beating = asyncio.create_task(self._beat())
        return self

    async def _beat(self) -> None:
        """Heartbeats like a media-recorder replica (0.5 s, gone after 1.5 s of silence)."""
        while True:
            await self.bus.publish_heartbeat(
                RecorderHeartbeat(recorder_id="fake", interval_s=0.5, dead_after_s=1.5)
            )
            await asyncio.sleep(0.5)

    def go_silent(self) -> None:
        """Stop the heartbeats, as a recorder killed with SIGKILL would."""
        self._beating.cancel()

    async def _allocate(self, request: MediaAllocateRequest) -> MediaAllocateReply:
        self.requests.append(request)
        session_id = f"fake{len(self.requests)}"  # before any await: calls run concurrently
        await asyncio.sleep(self.delay)
        try:
            answer = negotiate(
                parse_sdp(request.offer_sdp), ["PCMU", "PCMA"], address="127.0.0.1", port=40000
            )
        except (NoCommonCodec, SdpParseError) as exc:
            raise RemoteError("unsupported", str(exc)) from None
        answer.session_name = RECORDER_MARK
        self._subs += await self.bus.subscribe_session(
            session_id, self._command, commands=["hangup", "dtmf"]
        )
        return MediaAllocateReply(
            session_id=session_id, answer_sdp=bytes(answer).decode(), recorder_id="fake"
        )

    async def end_session(self, session_id: str, *, message_id: int | None = None) -> None:
        """The session ends on its own ('#', silence, maximum length): tell the agent."""
        request = self.requests[int(session_id.removeprefix("fake")) - 1]
        await self.bus.send_command(
            SessionEnded(
                session_id=session_id,
                call_id=request.call_id,
                end_reason="completed",
                message_id=message_id,
            )
        )

    async def _command(self, command: SessionCommand) -> None:
        """Like the media-recorder: a hang-up ends the session, which answers with "ended"
        naming the message it stored (message id 1000 + session number)."""
        self.commands.append(command)
        if isinstance(command, SessionHangup) and command.reason != "cancel":
            number = int(command.session_id.removeprefix("fake"))
            reason = "completed" if command.reason == "shutdown" else "bye"
            request = self.requests[number - 1]
            await self.bus.send_command(
                SessionEnded(
                    session_id=command.session_id,
                    call_id=request.call_id,
                    end_reason=reason,
                    message_id=1000 + number,
                )
            )

    @property
    def hangups(self) -> list[SessionHangup]:
        return [c for c in self.commands if isinstance(c, SessionHangup)]

    async def stop(self) -> None:
        self._beating.cancel()
        for sub in self._subs:
            await sub.unsubscribe()


class EventLog:
    """Every event the test's stream receives (a durable consumer of ``>``)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def _on(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: str, **fields: Any) -> list[Event]:
        return [
            e
            for e in self.events
            if e.kind == kind and all(getattr(e, k) == v for k, v in fields.items())
        ]


@pytest.fixture
async def event_log(event_bus: EventBus) -> EventLog:
    log = EventLog()
    await event_bus.subscribe(">", log._on, durable="watch")
    return log


@pytest.fixture
async def recorder(event_bus: EventBus) -> AsyncIterator[FakeRecorder]:
    fake = await FakeRecorder(event_bus).start()
    yield fake
    await fake.stop()


@pytest.fixture
async def accounts(pg_pool) -> dict[str, users.User]:
    """alice (ring timeout 1 s) and bob in domain sipum.test."""
    await domains.create(pg_pool, DOMAIN)
    alice = await users.create(pg_pool, "alice", DOMAIN, "alice-password-1", ring_timeout_seconds=1)
    bob = await users.create(pg_pool, "bob", DOMAIN, "bob-password-12")
    return {"alice": alice, "bob": bob}


@pytest.fixture
def kamailio(kamailio_factory, pg_dsn, accounts) -> KamailioServer:
    """Kamailio checking digest credentials against the test database's kamailio_subscriber
    view, so users created later by the test can register too."""
    return kamailio_factory(
        domain=DOMAIN, postgres_url=pg_dsn.replace("postgresql://", "postgres://", 1)
    )


class AgentRunner:
    def __init__(self, pool, bus: EventBus) -> None:
        self.pool = pool
        self.bus = bus
        self.running: list[RegistrarAgentService] = []

    async def start(self, registrar: str, **overrides: Any) -> RegistrarAgentService:
        values: dict[str, Any] = {
            "registrar": registrar,
            "sip_host": "127.0.0.1",
            "sip_port": 0,
            "domain": DOMAIN,
            "media_timeout": 1.0,
            "retry_after_seconds": 30,
            "call_drain_seconds": 5.0,
        }
        settings = RegistrarAgentSettings(**(values | overrides))
        service = RegistrarAgentService(settings)
        ctx = ServiceContext(
            settings=settings,
            health=HealthRegistry("registrar-agent"),
            pool=self.pool,
            bus=self.bus,
        )
        await service.start(ctx)
        self.running.append(service)
        return service

    async def stop(self, service: RegistrarAgentService) -> None:
        """What the runtime does on SIGTERM."""
        self.running.remove(service)
        await service.stop_accepting()
        await service.drain()


@pytest.fixture
async def agents(pg_pool, event_bus) -> AsyncIterator[AgentRunner]:
    runner = AgentRunner(pg_pool, event_bus)
    yield runner
    for service in list(runner.running):
        await asyncio.wait_for(runner.stop(service), 30)


def rejected_scenario(status: int, directory: Path) -> Path:
    """``scenarios/rejected.xml.in`` for one final status (503: Retry-After required)."""
    text = (SCENARIOS / "rejected.xml.in").read_text().replace("STATUS", str(status))
    if status == 503:
        text = text.replace(
            "<!--RETRY_ACTION-->",
            '<action><ereg regexp="Retry-After: *[0-9]+" search_in="msg" check_it="true"'
            ' assign_to="retry"/></action>',
        ).replace("<!--RETRY_HEADER-->", "X-Retry-After-Seen: [$retry]")
    else:
        text = text.replace("<!--RETRY_ACTION-->", "").replace("      <!--RETRY_HEADER-->\n", "")
    path = directory / f"rejected-{status}.xml"
    path.write_text(text)
    return path


def sipp_error_logs(cwd: Path, stem: str) -> str:
    """The ``-trace_err`` files sipp left for a scenario (what it did not expect)."""
    out = ""
    for log in sorted(cwd.glob(f"{stem}*_errors.log")):
        out += "\n--- " + log.name + "\n" + log.read_text(errors="replace")[-4000:]
    return out


async def run_sipp(
    scenario: str | Path,
    target: tuple[str, int],
    *,
    service: str,
    keys: dict[str, str],
    cwd: Path,
    timeout: float = 20.0,  # noqa: ASYNC109 - bounds the sipp process
    calls: int = 1,
    rate: int = 10,
) -> tuple[int, str]:
    """Run ``calls`` sipp calls (``rate`` per second) of ``scenarios/<scenario>.xml`` (or a scenario file) in ``cwd``;
    returns (exit status, output tail)."""
    path = scenario if isinstance(scenario, Path) else SCENARIOS / f"{scenario}.xml"
    # sipp reads pause lengths and ereg patterns only as literals: those keys are written
    # into a copy of the scenario ($name), the others are passed with -key.
    literals = {"answer_mark": RECORDER_MARK}
    literals.update({k: v for k, v in keys.items() if k in LITERAL_KEYS})
    text = path.read_text()
    if any(f"${name}" in text for name in literals):
        for name, value in literals.items():
            text = text.replace(f"${name}", value)
        path = cwd / f"{path.stem}-{uuid.uuid4().hex[:8]}.xml"
        path.write_text(text)
    for _attempt in range(3):
        argv = [
            "sipp", f"{target[0]}:{target[1]}", "-sf", str(path),
            "-s", service, "-m", str(calls), "-r", str(rate), "-l", str(calls),
            "-i", "127.0.0.1", "-p", str(free_udp_port()),
            "-mp", str(free_udp_port()), "-nostdin", "-timeout", f"{int(timeout)}s",
            "-timeout_error", "-max_recv_loops", "100", "-trace_err",
        ]  # fmt: skip
        for name, value in keys.items():
            if name not in literals:
                argv += ["-key", name, value]
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=cwd
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout + 5)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        output = (out + err).decode(errors="replace")
        if process.returncode != 0:  # what sipp did not expect, for the failure message
            output += await asyncio.to_thread(sipp_error_logs, cwd, path.stem)
        # Another program may take the free port between our probe and sipp's bind.
        if process.returncode == 0 or "bind" not in output.lower():
            break
    assert process.returncode is not None
    return process.returncode, output[-7000:]


class Sipp:
    """sipp callers for one test (files in the test's temporary directory)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def rejected(self, status: int) -> Path:
        return rejected_scenario(status, self.directory)

    async def run(
        self,
        scenario: str | Path,
        target: tuple[str, int],
        *,
        service: str,
        keys: dict[str, str],
        timeout: float = 20.0,  # noqa: ASYNC109 - bounds the sipp process
        calls: int = 1,
        rate: int = 10,
    ) -> tuple[int, str]:
        return await run_sipp(
            scenario,
            target,
            service=service,
            keys=keys,
            cwd=self.directory,
            timeout=timeout,
            calls=calls,
            rate=rate,
        )

    async def direct(
        self,
        scenario: str | Path,
        agent: RegistrarAgentService,
        *,
        service: str,
        keys: dict[str, str] | None = None,
        timeout: float = 20.0,  # noqa: ASYNC109 - bounds the sipp process
    ) -> tuple[int, str]:
        """A call straight to ``agent`` (not through Kamailio): the Request-URI's and the To
        header's host are the agent's address unless ``keys`` give others."""
        host, port = agent.sip_address
        where = {"ruri_host": f"{host}:{port}", "to_host": f"{host}:{port}"}
        return await self.run(
            scenario, (host, port), service=service, keys=where | (keys or {}), timeout=timeout
        )


@pytest.fixture
def sipp(tmp_path: Path) -> Sipp:
    return Sipp(tmp_path)


@pytest.fixture
async def make_recorder(event_bus: EventBus) -> AsyncIterator[Callable[[], Any]]:
    """Start a fake recorder later in the test (``await make_recorder()``)."""
    made: list[FakeRecorder] = []

    async def make() -> FakeRecorder:
        fake = await FakeRecorder(event_bus).start()
        made.append(fake)
        return fake

    yield make
    for fake in made:
        await fake.stop()
