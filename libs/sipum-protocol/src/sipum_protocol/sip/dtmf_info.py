"""DTMF digits carried by SIP INFO: the bodies phones and gateways send in practice.

RFC 6086 defines INFO and its Info Packages but registers no DTMF package; what is deployed is
the "legacy" INFO usage (RFC 6086 §2: no ``Info-Package`` header) with one of two bodies:

* ``application/dtmf-relay`` (Cisco, Asterisk, most PBXs and phones)::

      Signal=5
      Duration=160

  ``Signal`` is ``0``–``9``, ``*``, ``#``, ``A``–``D`` (some senders write ``10`` for ``*`` and
  ``11`` for ``#``, the RFC 4733 §3.2 event codes); ``Duration`` in milliseconds, optional;
* ``application/dtmf``: the digit alone (``5``).

Pure parsing; the user agent answers the INFO (200, or 415 for another body) and hands the
digit to the application.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The bodies understood (``Accept`` of a 415 to any other INFO body).
DTMF_INFO_TYPES = ("application/dtmf-relay", "application/dtmf")
DEFAULT_DURATION_MS = 100

# RFC 4733 §3.2 event codes 10-15 as some senders write them in Signal=.
_EVENT_CODES = {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D"}
_DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True)
class DtmfInfo:
    digit: str
    """``0``–``9``, ``*``, ``#`` or ``A``–``D``."""
    duration_ms: int = DEFAULT_DURATION_MS


def _digit(text: str) -> str:
    value = text.strip().upper()
    value = _EVENT_CODES.get(value, value)
    if value not in _DIGITS:
        raise ValueError(f"not a DTMF digit: {text!r}")
    return value


def parse_dtmf_info(content_type: str | None, body: bytes) -> DtmfInfo:
    """The digit of an INFO body of one of :data:`DTMF_INFO_TYPES`; ``ValueError`` for
    another type or a body without a digit."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    text = body.decode("utf-8", errors="replace")
    if kind == "application/dtmf":
        return DtmfInfo(_digit(text))
    if kind != "application/dtmf-relay":
        raise ValueError(f"not a DTMF body: {content_type!r}")
    fields: dict[str, str] = {}
    for line in text.replace("\r", "\n").split("\n"):
        name, sep, value = line.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    if "signal" not in fields:
        raise ValueError("dtmf-relay without Signal=")
    duration = DEFAULT_DURATION_MS
    if fields.get("duration", "").isdigit():
        duration = max(1, min(int(fields["duration"]), 60_000))
    return DtmfInfo(_digit(fields["signal"]), duration)
