import asyncio
import json
import logging

import httpx
import pytest
from sipum.runtime.health import HealthRegistry
from sipum.runtime.http import HealthMetricsApp
from sipum.runtime.logging import JsonFormatter, KeyValueFormatter
from sipum.runtime.work import InFlightWork


async def ok() -> None:
    return None


async def broken() -> None:
    raise ConnectionError("connection refused")


async def hangs() -> None:
    await asyncio.sleep(30)


async def test_report_ok_when_every_check_passes() -> None:
    registry = HealthRegistry("svc")
    registry.add("postgres", ok)
    registry.add("nats", ok)
    report = await registry.report()
    assert report.ok
    assert report.as_dict()["checks"]["postgres"]["status"] == "ok"


async def test_report_names_the_failing_check_and_its_error() -> None:
    registry = HealthRegistry("svc", timeout=0.2)
    registry.add("postgres", ok)
    registry.add("nats", broken)
    registry.add("blobstore", hangs)
    report = await registry.report()
    doc = report.as_dict()
    assert not report.ok and doc["status"] == "fail"
    assert doc["checks"]["postgres"]["status"] == "ok"
    assert doc["checks"]["nats"] == {
        "status": "fail",
        "latency_ms": doc["checks"]["nats"]["latency_ms"],
        "error": "connection refused",
    }
    assert doc["checks"]["blobstore"]["error"] == "TimeoutError"


async def test_stopping_service_reports_not_ok() -> None:
    registry = HealthRegistry("svc")
    registry.add("postgres", ok)
    registry.stopping = True
    report = await registry.report()
    assert not report.ok and report.as_dict()["status"] == "stopping"


async def test_http_app_serves_health_and_metrics() -> None:
    registry = HealthRegistry("svc")
    registry.add("postgres", ok)
    transport = httpx.ASGITransport(app=HealthMetricsApp(registry))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["checks"]["postgres"]["status"] == "ok"
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and b"python_info" in metrics.content
        assert (await client.get("/nope")).status_code == 404
        assert (await client.post("/health")).status_code == 405
        registry.add("nats", broken)
        assert (await client.get("/health")).status_code == 503


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("sipum.net", logging.INFO, __file__, 1, msg, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_log_line_carries_extras() -> None:
    line = JsonFormatter("notifier").format(_record("mail sent", message_id=67212))
    entry = json.loads(line)
    assert entry["service"] == "notifier" and entry["msg"] == "mail sent"
    assert entry["message_id"] == 67212 and entry["level"] == "info"


def test_key_value_log_line_is_one_line() -> None:
    line = KeyValueFormatter().format(_record("call answered", call_id="abc"))
    assert "\n" not in line and "call answered" in line and "call_id=abc" in line


async def test_in_flight_work_is_waited_for_and_refused_after_close() -> None:
    work = InFlightWork()
    done: list[int] = []

    async def job(n: int) -> None:
        await asyncio.sleep(0.05)
        done.append(n)

    work.spawn(job(1))
    work.spawn(job(2))
    work.close()
    with pytest.raises(RuntimeError):
        work.spawn(job(3))
    await asyncio.wait_for(work.wait(), 2)
    assert sorted(done) == [1, 2] and len(work) == 0
