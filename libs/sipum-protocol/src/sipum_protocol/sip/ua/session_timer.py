"""RFC 4028 session timers, UAS side (pure functions; the user agent applies them, and sends
the refreshes when it is the refresher — ``sipum_protocol.sip.ua.reinvite``).

A caller that vanished without BYE (crash, lost network) would otherwise hold its dialog — and
the agent's media session — until something else ends it. With session timers the session
must be refreshed (re-INVITE or UPDATE carrying ``Session-Expires``) within its interval;
otherwise we send BYE.

What we do as UAS (§9), for the initial INVITE and every refresh:

* ``Session-Expires`` below our ``Min-SE``: ``422 Session Interval Too Small`` with our
  ``Min-SE`` — when the UAC supports ``timer``; a UAC that does not (a proxy inserted the
  header) is not refused: the interval is raised to our minimum (§9).
* The interval: the request's, lowered to ``max_expires`` (never below the ``Min-SE``s of the
  request and ours); none in the request but the UAC supports ``timer``: ``default_expires``.
  Neither: no session timer (the call's maximum duration still bounds it).
* The refresher (§9 table 2): the request's ``refresher`` if the UAC supports ``timer``;
  else ``uac`` if it supports ``timer`` (our choice: the caller refreshes); else ``uas``.
  ``refresher=uac`` goes with ``Require: timer`` in the 2xx (§9).
* Expiry: with no refresh, the session is over ``expires - min(32, expires / 3)`` seconds after
  the last 2xx (§10) — then the user agent sends BYE.
* Refresher ``uas`` (us): the user agent sends a refresh at half the interval (§10) — an UPDATE
  without body when the caller's INVITE allowed UPDATE (RFC 3311), else a re-INVITE with our
  unchanged SDP; its 2xx restarts the interval (§7.2: a 2xx without ``Session-Expires`` turns
  the timer off); a 408/481 or no answer at all ends the call with BYE (§10).

``SessionTimer.refresher`` is always seen from our side as UAS of the call: ``uas`` means we
refresh. In a request of ours the parameter names the role in *that* transaction (§4), where we
are the UAC: the user agent translates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sipum_protocol.sip.headers import SipParseError
from sipum_protocol.sip.message import SipRequest

Refresher = Literal["uac", "uas"]
OPTION_TAG = "timer"
MIN_SE_FLOOR = 90
"""§4: the Min-SE of any UA must be at least 90 s."""


@dataclass(frozen=True, slots=True)
class SessionTimerConfig:
    min_se: int = MIN_SE_FLOOR
    """Our ``Min-SE``: shorter intervals are refused with 422 (at least 90, §4)."""
    default_expires: int = 1800
    """The interval we choose when the UAC supports timers but asked for none (§9)."""
    max_expires: int = 1800
    """Longer requested intervals are lowered to this (the UAS may reduce it, §9)."""

    def __post_init__(self) -> None:
        if self.min_se < MIN_SE_FLOOR:
            raise ValueError(f"min_se must be at least {MIN_SE_FLOOR} (RFC 4028 §4)")
        if not self.min_se <= self.default_expires <= self.max_expires:
            raise ValueError("need min_se <= default_expires <= max_expires")


@dataclass(frozen=True, slots=True)
class SessionTimer:
    """The timer agreed for a session (what our 2xx says)."""

    expires: int
    refresher: Refresher

    @property
    def require(self) -> bool:
        """§9: ``Require: timer`` in the 2xx when the UAC is the refresher."""
        return self.refresher == "uac"

    @property
    def expiry(self) -> float:
        """Seconds after the 2xx at which an unrefreshed session is over (§10)."""
        return self.expires - min(32.0, self.expires / 3)

    def response_headers(self) -> list[tuple[str, str]]:
        headers = [("Session-Expires", f"{self.expires};refresher={self.refresher}")]
        if self.require:
            headers.append(("Require", OPTION_TAG))
        return headers


@dataclass(frozen=True, slots=True)
class TooSmall:
    """Answer ``422 Session Interval Too Small`` with ``Min-SE: min_se``."""

    min_se: int

    def response_headers(self) -> list[tuple[str, str]]:
        return [("Min-SE", str(self.min_se))]


def parse_session_expires(value: str) -> tuple[int, Refresher | None]:
    """``delta-seconds *(;se-params)`` (§4); raises ``SipParseError`` (→ 400)."""
    head, *params = value.split(";")
    head = head.strip()
    if not head.isdigit() or len(head) > 10:
        raise SipParseError("Bad Session-Expires")
    refresher: Refresher | None = None
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher":
            val = val.strip().lower()
            if val not in ("uac", "uas"):
                raise SipParseError("Bad Session-Expires refresher")
            refresher = "uac" if val == "uac" else "uas"
    return int(head), refresher


def parse_min_se(value: str) -> int:
    head = value.split(";", 1)[0].strip()
    if not head.isdigit() or len(head) > 10:
        raise SipParseError("Bad Min-SE")
    return int(head)


def uac_supports_timer(request: SipRequest) -> bool:
    tags = [t.strip().lower() for t in request.headers.get_all("Supported")]
    tags += [t.strip().lower() for t in request.headers.get_all("Require")]
    return OPTION_TAG in tags


def negotiate(request: SipRequest, config: SessionTimerConfig) -> SessionTimer | TooSmall | None:
    """What to answer an INVITE or a refresh (see module doc); raises ``SipParseError`` for an
    unreadable ``Session-Expires`` or ``Min-SE``."""
    supports = uac_supports_timer(request)
    se_value = request.headers.get("Session-Expires")
    min_se_value = request.headers.get("Min-SE")
    floor = config.min_se
    if min_se_value is not None:
        floor = max(floor, parse_min_se(min_se_value))
    if se_value is None:
        if not supports:
            return None
        return SessionTimer(max(config.default_expires, floor), "uac")
    expires, refresher = parse_session_expires(se_value)
    if expires < config.min_se:
        if supports:
            return TooSmall(config.min_se)
        expires = config.min_se  # §9: a UAC without timer support is not refused
    expires = max(min(expires, config.max_expires), floor)
    if not supports:
        return SessionTimer(expires, "uas")
    return SessionTimer(expires, refresher or "uac")
