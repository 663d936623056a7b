"""Named health checks and the report the ``/health`` endpoint returns.

A check is an async callable that returns normally when the dependency works and raises
otherwise; each runs with a timeout so a hung dependency makes the report ``fail`` instead of
hanging the probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

HealthCheck = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "status": "ok" if self.ok else "fail",
            "latency_ms": round(self.latency_ms, 2),
        }
        if self.error:
            result["error"] = self.error
        return result


@dataclass(frozen=True)
class HealthReport:
    service: str
    checks: tuple[CheckResult, ...]
    stopping: bool = False

    @property
    def ok(self) -> bool:
        return not self.stopping and all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "status": "ok" if self.ok else ("stopping" if self.stopping else "fail"),
            "checks": {c.name: c.as_dict() for c in self.checks},
        }


@dataclass
class HealthRegistry:
    """The checks a service registers; :meth:`report` runs them concurrently."""

    service: str
    timeout: float = 2.0
    checks: dict[str, HealthCheck] = field(default_factory=dict)
    stopping: bool = False

    def add(self, name: str, check: HealthCheck) -> None:
        self.checks[name] = check

    async def _run(self, name: str, check: HealthCheck) -> CheckResult:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(check(), self.timeout)
        except Exception as exc:  # a failed check is data, not an error of the probe
            error = str(exc) or type(exc).__name__
            return CheckResult(name, False, (time.perf_counter() - started) * 1000, error[:200])
        return CheckResult(name, True, (time.perf_counter() - started) * 1000)

    async def report(self) -> HealthReport:
        results = await asyncio.gather(*(self._run(n, c) for n, c in self.checks.items()))
        return HealthReport(self.service, tuple(results), self.stopping)
