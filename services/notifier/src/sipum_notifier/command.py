"""The notify command (``-k PATH``, the old sipum's ``notify.tcl``): a program run per message.

It gets the ``message.created`` event as JSON on stdin and a few ``SIPUM_*`` variables:

``SIPUM_EVENT`` (``message.created``), ``SIPUM_MESSAGE_ID``, ``SIPUM_MAILBOX``
(``alice@example.com``), ``SIPUM_USERNAME``, ``SIPUM_DOMAIN``, ``SIPUM_CALLER_URI``,
``SIPUM_CALLER_NAME``, ``SIPUM_DURATION_S``, ``SIPUM_RECEIVED_AT`` (ISO 8601).

The caller's URI and display name come from SIP headers, i.e. from anyone who can dial: they
travel as data only (argv is just the program's path, no shell is involved) and are stripped of
control characters. The environment is built from scratch, so the program never sees the
database URL, the signing key or the SMTP password. Exit status 0 is success; anything else,
a time-out or a program that cannot start is a failure that is retried with back-off.
"""

from __future__ import annotations

import os

from sipum.events import MessageCreated

from sipum_notifier.errors import ChannelFailure
from sipum_notifier.process import ProgramTimeout, run_program


class NotifyCommandFailed(ChannelFailure):
    """The command failed (the message says how; the event will be redelivered)."""


def _data(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable())


def command_environment(event: MessageCreated) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "SIPUM_EVENT": "message.created",
        "SIPUM_MESSAGE_ID": str(event.message_id),
        "SIPUM_MAILBOX": f"{event.username}@{event.domain}",
        "SIPUM_USERNAME": event.username,
        "SIPUM_DOMAIN": event.domain,
        "SIPUM_CALLER_URI": _data(event.caller_uri),
        "SIPUM_CALLER_NAME": _data(event.caller_display or ""),
        "SIPUM_DURATION_S": f"{event.duration_s:.2f}",
        "SIPUM_RECEIVED_AT": event.received_at.isoformat(),
    }


async def run_notify_command(
    path: str, event: MessageCreated, *, time_limit: float, output_limit: int
) -> str:
    """Run the command for ``event``; return the tail of what it printed (for the log)."""
    try:
        finished = await run_program(
            [path],
            stdin=event.model_dump_json().encode(),
            env=command_environment(event),
            time_limit=time_limit,
            output_limit=output_limit,
        )
    except (OSError, ProgramTimeout) as exc:
        raise NotifyCommandFailed(f"{path}: {exc}"[:300]) from exc
    said = (finished.stderr or finished.stdout).decode("utf-8", "replace").strip()
    if finished.returncode != 0:
        raise NotifyCommandFailed(f"{path} exited with {finished.returncode}: {said[-200:]}")
    return said[-200:]
