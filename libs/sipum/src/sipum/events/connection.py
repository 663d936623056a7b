"""The NATS connection: fail fast at start-up, survive server restarts afterwards.

A service that cannot reach NATS when it starts has a configuration problem, so the first
connect is one attempt that ends in a ``ConfigError`` naming ``nats_url``. Once connected, the
client reconnects for ever on its own and buffers publishes meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
from nats.aio.client import Client as NATS

from sipum.errors import ConfigError

log = logging.getLogger("sipum.events")

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


def redact_url(url: str) -> str:
    """The URL (or comma-separated URLs) without passwords, fit for a log or error message."""
    if "," in url:
        return ",".join(redact_url(u.strip()) for u in url.split(","))
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


async def connect_nats(
    url: str,
    name: str,
    *,
    connect_timeout: float,
    closing: Callable[[], bool],
    reconnected: Callable[[], None] | None = None,
) -> NATS:
    """Connect to ``url`` (one server, or several of a cluster separated by commas).

    An unreachable server raises ``ConfigError("nats_url", ...)`` at once. ``closing`` tells
    whether the owner is closing the connection itself, so that disconnect is not logged as
    a warning; ``reconnected`` is called after every reconnection.
    """
    connected = False
    first_errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        if not connected:
            first_errors.append(exc)
        # Failures of the first connect end up in the ConfigError below; log them quietly.
        log.log(logging.WARNING if connected else logging.DEBUG, "nats error: %s", exc)

    async def on_disconnected() -> None:
        if not closing():
            log.warning("nats disconnected from %s", redact_url(url))

    async def on_reconnected() -> None:
        log.info("nats reconnected to %s", redact_url(url))
        if reconnected is not None:
            try:
                reconnected()
            except Exception:
                log.exception("reconnect listener failed")

    try:
        nc = await nats.connect(
            servers=[u.strip() for u in url.split(",") if u.strip()],
            name=name,
            connect_timeout=connect_timeout,
            allow_reconnect=False,  # for the *initial* connect only, see below
            max_reconnect_attempts=1,
            reconnect_time_wait=0.5,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        cause = first_errors[-1] if first_errors else exc
        reason = str(cause) or type(cause).__name__
        raise ConfigError(
            "nats_url", f"cannot connect to NATS at {redact_url(url)}: {reason}"
        ) from exc
    # Initial connect fails fast above; from now on survive server restarts.
    nc.options["allow_reconnect"] = True
    nc.options["max_reconnect_attempts"] = -1
    nc.options["reconnect_time_wait"] = 2
    connected = True
    return nc
