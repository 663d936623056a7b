"""The whole system as processes, on free loopback ports.

:func:`start_system` starts, given a migrated PostgreSQL database, a NATS namespace and an S3
bucket (from the fixtures of ``sipum_testing`` or from the benchmark):

* Kamailio from ``deploy/kamailio/kamailio.cfg`` with ``WITH_PGSQL`` — digest credentials are
  read from the sipum database's ``kamailio_subscriber`` view, so a user created through the
  REST API can register a phone at once — and parallel forking;
* an SMTP server (aiosmtpd, in a thread) that keeps every accepted mail with its time;
* the five services as processes with JSON logs: registrar-agent, media-recorder,
  rtsp-gateway, notifier, web-api — and, with ``transcriber=True``, the sixth, the transcriber
  (without it the notifier's e-mail does not wait for a transcript: ``transcript_wait=0``).

:meth:`FirstCallSystem.stop` ends every process it started, by PID.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sipum_testing.kamailio import KamailioServer, start_kamailio
from sipum_testing.ports import free_port_range

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[3]
SERVICES = ("registrar-agent", "media-recorder", "rtsp-gateway", "notifier", "web-api")


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------- SMTP


@dataclass
class Mail:
    accepted_at: float
    """``time.time()`` when we answered 250 to DATA (the notifier may ack after that)."""
    message: EmailMessage
    recipients: list[str]


class MailServer:
    """aiosmtpd handler + controller: accepts everything, keeps it."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self._changed = threading.Condition()
        self.port = 0
        self._controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._changed:
            self.mails.append(Mail(time.time(), message, list(envelope.rcpt_tos)))
            self._changed.notify_all()
        return "250 OK"

    def start(self, port: int | None = None) -> MailServer:
        """On a free port, or on ``port`` (the same one again after :meth:`stop`: the SMTP
        server was away and is back)."""
        for _ in range(3):
            self.port = port or free_tcp_port()
            controller = Controller(self, hostname="127.0.0.1", port=self.port)
            try:
                controller.start()
            except Exception:
                continue
            self._controller = controller
            return self
        raise RuntimeError("SMTP server did not start")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, limit: float) -> list[Mail]:
        deadline = time.monotonic() + limit
        with self._changed:
            while len(self.mails) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(self.mails)} mails within {limit} s, expected {count}"
                    )
                self._changed.wait(left)
            return list(self.mails)


# ---------------------------------------------------------------------------------- services


@dataclass
class ServiceProcess:
    """A service process whose JSON log lines (stderr) a reader thread collects."""

    name: str
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _terminated: bool = False

    def start_reader(self) -> None:
        def pump() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)
                self._queue.put(line)
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True, name=f"log-{self.name}").start()

    def wait_for_log(self, msg: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"{self.name} exited: {self.tail()}")
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == msg:
                return entry
        raise AssertionError(f"{self.name}: no {msg!r} log within {timeout} s: {self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return "".join(self.lines)[-chars:]

    def logged(self, msg: str) -> list[dict[str, Any]]:
        found = []
        for line in list(self.lines):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == msg:
                found.append(entry)
        return found

    def terminate(self) -> None:
        """One SIGTERM (a second one, after the service removed its handlers on the way out,
        would kill it instead of letting it finish)."""
        if self.proc.poll() is None and not self._terminated:
            self._terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 25.0) -> int | None:
        """SIGTERM (once) and wait; SIGKILL after *timeout* (then the result is None)."""
        self.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return None


@dataclass(frozen=True)
class Backends:
    """The real servers the services use (from the test fixtures or the benchmark)."""

    database_url: str
    nats_url: str
    events_prefix: str
    events_stream: str
    s3_endpoint: str
    s3_bucket: str
    s3_access_key: str
    s3_secret_key: str
    s3_region: str = "us-east-1"


@dataclass
class FirstCallSystem:
    backends: Backends
    domain: str
    secret_key: str
    kamailio: KamailioServer
    smtp: MailServer
    web_port: int
    rtsp_port: int
    agent_sip_port: int
    agent_ports: dict[str, int] = field(default_factory=dict)
    """Every registrar-agent's SIP port by its key (``registrar-agent``, ``registrar-agent-1``
    …; with ``agents`` > 1 each one is a shard)."""
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    started_with: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    """key → (service name, extra environment) it was started with, for ``restart``."""
    common_env: dict[str, str] = field(default_factory=dict)
    """Environment every service gets on top of the backends' (e.g. a smaller database pool)."""

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def proxy(self) -> tuple[str, int]:
        return self.kamailio.address

    @property
    def agent(self) -> tuple[str, int]:
        return ("127.0.0.1", self.agent_sip_port)

    def env(self, **extra: str) -> dict[str, str]:
        b = self.backends
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIPUM_")}
        env.update(
            SIPUM_DATABASE_URL=b.database_url,
            SIPUM_NATS_URL=b.nats_url,
            SIPUM_EVENTS_PREFIX=b.events_prefix,
            SIPUM_EVENTS_STREAM=b.events_stream,
            SIPUM_S3_ENDPOINT=b.s3_endpoint,
            SIPUM_S3_BUCKET=b.s3_bucket,
            SIPUM_S3_ACCESS_KEY=b.s3_access_key,
            SIPUM_S3_SECRET_KEY=b.s3_secret_key,
            SIPUM_S3_REGION=b.s3_region,
            SIPUM_DOMAIN=self.domain,
            SIPUM_SECRET_KEY=self.secret_key,
            SIPUM_HTTP_HOST="127.0.0.1",
            SIPUM_HTTP_PORT="0",
            SIPUM_LOG_JSON="true",
        )
        env.update(self.common_env)
        env.update(extra)
        return env

    def start_service(self, name: str, *, key: str | None = None, **extra: str) -> ServiceProcess:
        """Start ``sipum-<name>``; ``key`` names it in ``services`` (a second replica)."""
        proc = subprocess.Popen(
            [str(BIN / f"sipum-{name}")],
            env=self.env(**extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,  # the media-recorder's prompt cache: ./var/prompts
        )
        service = ServiceProcess(key or name, proc)
        service.start_reader()
        self.services[key or name] = service
        self.started_with[key or name] = (name, dict(extra))
        return service

    def restart(self, key: str) -> ServiceProcess:
        """Start ``key`` again as it was started (after it was killed); waits until it runs."""
        name, extra = self.started_with[key]
        service = self.start_service(name, key=key, **extra)
        service.wait_for_log("service started", timeout=60)
        return service

    def diagnostics(self, lines: int = 25) -> str:
        """The last log lines of every process, for a failing test's report."""
        parts = [f"--- kamailio ---\n{self.kamailio.log_tail(lines)}"]
        for name, service in self.services.items():
            tail = "".join(service.lines[-lines:])
            parts.append(f"--- {name} (exit {service.proc.poll()}) ---\n{tail}")
        return "\n".join(parts)

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every service (then SIGKILL after a grace), stop Kamailio and SMTP."""
        codes: dict[str, int | None] = {}
        for service in self.services.values():
            service.terminate()  # all at once: they drain in parallel
        for name, service in self.services.items():
            codes[name] = service.stop()
        self.kamailio.stop()
        self.smtp.stop()
        return codes


def start_system(
    backends: Backends,
    *,
    domain: str = "sipum.test",
    secret_key: str = "e2e-signing-key",
    transcriber: bool = False,
    recorders: int = 1,
    agent_env: dict[str, str] | None = None,
    agents: int = 1,
    database_pool_size: int | None = None,
) -> FirstCallSystem:
    """``recorders`` media-recorder replicas: ``media-recorder`` (id ``e2e-recorder``), then
    ``media-recorder-2`` (``e2e-recorder-2``), …; ``agents`` registrar-agents, one shard each
    (``registrar-agent`` is shard 0 on ``agent_sip_port``, then ``registrar-agent-1``, …);
    ``agent_env``: more settings of every registrar-agent (``SIPUM_…``); ``database_pool_size``:
    each service's most PostgreSQL connections (default: the services' own)."""
    smtp = MailServer().start()
    kamailio_db = backends.database_url.replace("postgresql://", "postgres://", 1)
    agent_sip_port = free_udp_port()
    try:
        kamailio = start_kamailio(
            domain=domain,
            postgres_url=kamailio_db,
            # the voicemail access number sip:voicemail@<domain> goes to the agent
            extra_defines={"VOICEMAIL_AGENT": f'"sip:127.0.0.1:{agent_sip_port}"'},
        )
    except BaseException:
        smtp.stop()
        raise
    system = FirstCallSystem(
        backends=backends,
        domain=domain,
        secret_key=secret_key,
        kamailio=kamailio,
        smtp=smtp,
        web_port=free_tcp_port(),
        rtsp_port=free_tcp_port(),
        agent_sip_port=agent_sip_port,
    )
    if database_pool_size is not None:
        system.common_env["SIPUM_DATABASE_POOL_SIZE"] = str(database_pool_size)
    try:
        web = system.web_url
        rtsp = f"rtsp://127.0.0.1:{system.rtsp_port}"
        rtsp_first, rtsp_last = free_port_range(40)
        system.start_service("web-api", SIPUM_HTTP_PORT=str(system.web_port), SIPUM_PUBLIC_URL=web)
        for index in range(1, recorders + 1):
            # 30 sessions each: 20 calls and the moves of a dead replica's calls fit in one
            recorder_first, recorder_last = free_port_range(60)
            suffix = "" if index == 1 else f"-{index}"
            system.start_service(
                "media-recorder",
                key=f"media-recorder{suffix}",
                SIPUM_RTP_HOST="127.0.0.1",
                SIPUM_RTP_ADVERTISE_ADDRESS="127.0.0.1",
                SIPUM_RTP_PORT_MIN=str(recorder_first),
                SIPUM_RTP_PORT_MAX=str(recorder_last),
                SIPUM_RECORDER_ID=f"e2e-recorder{suffix}",
            )
        system.start_service(
            "rtsp-gateway",
            SIPUM_RTSP_HOST="127.0.0.1",
            SIPUM_RTSP_PORT=str(system.rtsp_port),
            SIPUM_RTP_PORT_MIN=str(rtsp_first),
            SIPUM_RTP_PORT_MAX=str(rtsp_last),
        )
        system.start_service(
            "notifier",
            SIPUM_SMTP_HOST="127.0.0.1",
            SIPUM_SMTP_PORT=str(smtp.port),
            SIPUM_PUBLIC_URL=web,
            SIPUM_RTSP_URL=rtsp,
            SIPUM_SIP_RETRIEVE_HOST=f"127.0.0.1:{system.agent_sip_port}",
            SIPUM_MAIL_FROM=f"sipum <voicemail@{domain}>",
            SIPUM_TRANSCRIPT_WAIT="10" if transcriber else "0",
        )
        if transcriber:
            system.start_service("transcriber")
        for index in range(agents):
            key = "registrar-agent" if index == 0 else f"registrar-agent-{index}"
            port = system.agent_sip_port if index == 0 else free_udp_port()
            system.agent_ports[key] = port
            shards = (
                {"SIPUM_SHARD_INDEX": str(index), "SIPUM_SHARD_COUNT": str(agents)}
                if agents > 1
                else {}
            )
            system.start_service(
                "registrar-agent",
                key=key,
                SIPUM_REGISTRAR=f"{kamailio.host}:{kamailio.port}",
                SIPUM_SIP_HOST="127.0.0.1",
                SIPUM_SIP_PORT=str(port),
                **shards,
                **(agent_env or {}),
            )
        for service in system.services.values():
            service.wait_for_log("service started", timeout=60)
    except BaseException:
        system.stop()
        raise
    return system
