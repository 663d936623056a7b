"""Service runtime shared by every sipum service.

- :mod:`sipum.runtime.logging` — structured log lines (human or JSON), ``-d`` categories;
- :mod:`sipum.runtime.health` — named health checks (PostgreSQL, NATS, blob store) and a report;
- :mod:`sipum.runtime.http` — a tiny ASGI app serving ``/health`` and ``/metrics`` (Prometheus),
  and uvicorn serving it (or a service's own ASGI app) in the service's event loop;
- :mod:`sipum.runtime.service` — the life cycle: connect, start, SIGTERM → stop taking work,
  finish in-flight work within a deadline, exit 0.
"""

from sipum.runtime.health import HealthCheck, HealthRegistry, HealthReport
from sipum.runtime.service import Service, ServiceContext, run_service_main

__all__ = [
    "HealthCheck",
    "HealthRegistry",
    "HealthReport",
    "Service",
    "ServiceContext",
    "run_service_main",
]
