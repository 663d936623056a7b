"""Structured logging: one line per record, readable in a terminal or JSON for collectors.

Extra fields passed with ``logger.info("...", extra={"call_id": ...})`` are kept as key=value
pairs (or JSON members). Secrets must never be passed; settings hold them as ``SecretStr``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable

from sipum.config.debug import apply_debug_categories

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


def _timestamp(created: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        + f".{int(created % 1 * 1000):03d}Z"
    )


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "service": ..., "logger": ..., "msg": ..., ...extras}``."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class KeyValueFormatter(logging.Formatter):
    """``2026-11-26T05:10:00.123Z info  sipum.net  message  key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _timestamp(record.created),
            f"{record.levelname.lower():<7}",
            record.name,
            record.getMessage(),
        ]
        parts.extend(f"{k}={v}" for k, v in _extras(record).items())
        line = "  ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(service: str, *, json_lines: bool, debug: Iterable[str] = ()) -> None:
    """Route all logging to stderr in the chosen format; enable ``-d`` debug categories."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if json_lines else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # Third-party chatter stays at WARNING unless asked for.
    for noisy in ("asyncio", "nats", "botocore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # urllib3 (under the S3 SDK) warns on every retry; the blob store reports the outcome.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    apply_debug_categories(debug)
