"""The README's run command for machines without Docker: `deploy/local/up` starts Kamailio and
the six services; the web-api health endpoint reports PostgreSQL, NATS and blob store ok;
Ctrl-C (SIGINT) stops everything cleanly."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_ports(n: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_local_up_runs_all_services_and_stops_on_ctrl_c(pg_admin_dsn: str, tmp_path: Path) -> None:
    database = f"sipum_up_{os.getpid()}_{secrets.token_hex(3)}"
    dsn = pg_admin_dsn.rsplit("/", 1)[0] + f"/{database}"
    web, rtsp, sip, *_ = free_ports(4)
    health_base = free_ports(1)[0]
    token = secrets.token_hex(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPUM_")}
    env.update(
        SIPUM_SKIP_INSTALL="1",
        SIPUM_DATABASE_URL=dsn,
        SIPUM_BLOB_ROOT=str(tmp_path / "blobs"),
        SIPUM_WEB_PORT=str(web),
        SIPUM_HEALTH_PORT_BASE=str(health_base),
        SIPUM_KAMAILIO_PORT=str(free_udp_port()),
        SIPUM_RTSP_PORT=str(rtsp),
        SIPUM_SIP_PORT=str(sip),
        SIPUM_EVENTS_PREFIX=f"up{token}",
        SIPUM_EVENTS_STREAM=f"UP{token.upper()}",
        SIPUM_RUN_DIR=str(tmp_path / "run"),
    )
    proc = subprocess.Popen(
        [str(REPO / "deploy/local/up")],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # like a terminal: Ctrl-C goes to the script's process group
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 90
        doc = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{web}/health", timeout=2)
                if response.status_code == 200:
                    doc = response.json()
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert doc is not None, f"web-api never became healthy (exit {proc.poll()})"
        assert {name: c["status"] for name, c in doc["checks"].items()} == {
            "postgres": "ok",
            "nats": "ok",
            "blobstore": "ok",
        }
        for offset in range(
            5
        ):  # registrar-agent, media-recorder, rtsp-gateway, notifier, transcriber
            port = health_base + offset
            for _ in range(60):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                raise AssertionError(f"service on health port {port} never became healthy")
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=40)
        output.append(out)
        assert proc.returncode == 0, out[-4000:]
        for name in (
            "registrar-agent",
            "media-recorder",
            "rtsp-gateway",
            "notifier",
            "transcriber",
            "web-api",
        ):
            assert f"[{name}]" in out
            assert any(
                line.startswith(f"[{name}]") and "stopped" in line for line in out.splitlines()
            ), name
        assert "[kamailio]" in out
        assert "Traceback" not in out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        subprocess.run(
            [
                "psql",
                pg_admin_dsn,
                "-q",
                "-c",
                f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
            ],
            capture_output=True,
            timeout=30,
        )
