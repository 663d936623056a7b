"""Every service starts on real PostgreSQL, NATS and blob store, reports health, stops on SIGTERM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent
SERVICES = [
    "registrar-agent",
    "media-recorder",
    "rtsp-gateway",
    "notifier",
    "transcriber",
    "web-api",
]
EXPECTED_CHECKS = {
    "registrar-agent": {"postgres", "nats"},
    "media-recorder": {"postgres", "nats", "blobstore"},
    "rtsp-gateway": {"postgres", "nats", "blobstore"},
    "notifier": {"postgres", "nats", "blobstore"},
    "transcriber": {"postgres", "nats", "blobstore"},
    "web-api": {"postgres", "nats", "blobstore"},
}


@pytest.mark.parametrize("name", SERVICES)
def test_service_reports_health_and_stops_cleanly_on_sigterm(start_service, name: str) -> None:
    service = start_service(name)
    started = service.wait_for_log("service started")
    port = int(str(started["http"]).rsplit(":", 1)[1])
    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    assert health.status_code == 200, health.text
    doc = health.json()
    assert doc["status"] == "ok"
    assert set(doc["checks"]) == EXPECTED_CHECKS[name]
    assert all(check["status"] == "ok" for check in doc["checks"].values())
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert metrics.status_code == 200 and "process_cpu_seconds_total" in metrics.text
    assert service.stop() == 0
    assert any('"msg": "stopped"' in line for line in service.lines)
    assert not any("Traceback" in line for line in service.lines)


def test_web_api_serves_openapi(start_service) -> None:
    service = start_service("web-api")
    port = int(str(service.wait_for_log("service started")["http"]).rsplit(":", 1)[1])
    spec = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5).json()
    assert "/health" in spec["paths"]
    assert httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5).status_code == 200
    assert service.stop() == 0


def _run(name: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / f"sipum-{name}"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], setting: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert setting in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["notifier", "web-api"])
def test_unreachable_database_is_one_line_and_exit_2(service_env, name: str) -> None:
    env = dict(service_env, SIPUM_DATABASE_URL="postgresql://sipum:s3cret@127.0.0.1:1/sipum")
    result = _run(name, [], env)
    _assert_one_line_error(result, "database_url")
    assert "s3cret" not in result.stderr  # the password never reaches a log line


def test_unreachable_nats_is_one_line_and_exit_2(service_env) -> None:
    env = dict(service_env, SIPUM_NATS_URL="nats://127.0.0.1:1")
    _assert_one_line_error(_run("registrar-agent", [], env), "nats_url")


def test_unreachable_s3_is_one_line_and_exit_2(service_env) -> None:
    env = dict(
        service_env,
        SIPUM_S3_ENDPOINT="127.0.0.1:1",
        SIPUM_S3_ACCESS_KEY="k",
        SIPUM_S3_SECRET_KEY="topsecret",
    )
    result = _run("media-recorder", [], env)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "s3" in result.stderr
    assert "topsecret" not in result.stderr


def test_malformed_old_sql_url_flag(service_env) -> None:
    _assert_one_line_error(
        _run("notifier", ["-D", "sql://user@:notaport/db"], service_env), "database_url"
    )


def test_unreadable_database_file_flag(service_env, tmp_path: Path) -> None:
    result = _run("rtsp-gateway", ["-f", str(tmp_path / "missing.conf")], service_env)
    _assert_one_line_error(result, "missing.conf")


def test_version_and_service_flags(service_env) -> None:
    result = _run("notifier", ["-v"], service_env)
    assert result.returncode == 0 and "0.1.0" in result.stdout + result.stderr
    help_text = _run("notifier", ["-h"], service_env).stdout
    assert "-e" in help_text and "-D" in help_text
    assert "-n" in _run("registrar-agent", ["-h"], service_env).stdout


def test_bad_s3_credentials_is_one_line_and_exit_2(service_env, moto_auth_server) -> None:
    env = dict(
        service_env,
        SIPUM_S3_ENDPOINT=moto_auth_server.server.url,
        SIPUM_S3_ACCESS_KEY=moto_auth_server.access_key,
        SIPUM_S3_SECRET_KEY="not-the-secret",
    )
    result = _run("notifier", [], env)
    _assert_one_line_error(result, "s3_secret_key")
    assert "not-the-secret" not in result.stderr


def test_good_s3_credentials_start_the_service(
    start_service, service_env, moto_auth_server
) -> None:
    env = dict(
        service_env,
        SIPUM_S3_ENDPOINT=moto_auth_server.server.url,
        SIPUM_S3_ACCESS_KEY=moto_auth_server.access_key,
        SIPUM_S3_SECRET_KEY=moto_auth_server.secret_key,
        SIPUM_S3_BUCKET=f"lifecycle-{service_env['SIPUM_EVENTS_PREFIX']}",
    )
    service = start_service("rtsp-gateway", env=env)
    port = int(str(service.wait_for_log("service started")["http"]).rsplit(":", 1)[1])
    assert (
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["checks"]["blobstore"][
            "status"
        ]
        == "ok"
    )
    assert service.stop() == 0
