"""Offers we send inside an established dialog: re-INVITE (RFC 3261 §14.1) and session
refreshes (RFC 4028 §7.4, §10), sans-I/O; ``UserAgent.reinvite`` and the session timer use it.

Theory of operation
-------------------
One ``OutgoingReoffer`` per call at a time (§14.1: "a UA MUST NOT initiate a re-INVITE while
another INVITE transaction is in progress in either direction"). It is what the user agent
remembers between sending the request and its outcome:

* ``UserAgent.reinvite(call, sdp, now, timeout=...)`` builds one with our new description,
  the ``o=`` line rewritten so the peer sees the same session with a higher version
  (RFC 3264 §8: "the origin line MUST ... be the same as in the previous SDP, except that the
  version in the origin field MUST increment by one"). A session refresh (RFC 4028, we are the
  refresher) sends our unchanged description with the unchanged version (RFC 3264 §8 allows an
  identical offer), or an UPDATE without a body when the peer allows UPDATE (RFC 3311).
* If an offer/answer exchange is in progress when it is due (our 2xx waits for its ACK, the
  peer's re-INVITE is being answered), sending waits ``T1`` and looks again: it does not
  collide on purpose.
* 2xx: we send the ACK (§13.2.2.4; again for each retransmitted 2xx), the 2xx is a target
  refresh (§12.2.1.2), the answer becomes the peer's description: ``ReofferAccepted``.
* 491 (glare, §14.1): the request is sent again after a random delay — 2.1-4 s when we own the
  Call-ID (we sent the dialog's first INVITE), 0-2 s when we do not (we are the dialog's UAS) —
  in units of 10 ms, at most ``GLARE_RETRIES`` times.
* Any other final response: the session stays as it was (§14.1: "the UAC ... MUST NOT change
  the session"): ``ReofferFailed`` with the status. A 422 to a refresh is retried once with the
  peer's ``Min-SE`` (RFC 4028 §7.4).
* No final response by ``deadline`` (ours, shorter than timer B if the application wants), a
  transaction timeout or a transport error: ``ReofferFailed`` (``timeout`` /
  ``transport-error``); a re-INVITE that got a provisional response is CANCELled (§9.1). A 2xx
  that still comes is acknowledged (and applied) — the application decides what to do with a
  session that moved after it stopped waiting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from sipum_protocol.sip.message import SipRequest
from sipum_protocol.sip.transaction import ClientTransaction, Peer

GLARE_RETRIES = 3
"""How many times a re-INVITE answered 491 is sent again before the attempt fails."""
DEFAULT_TIMEOUT = 32.0
"""Default ``deadline - start`` of a re-INVITE: timer B with the default T1 (64 * 0.5 s)."""

Purpose = Literal["offer", "refresh"]


@dataclass(eq=False)
class OutgoingReoffer:
    """One re-INVITE (or refreshing UPDATE) of ours, from ``UserAgent.reinvite`` to its end."""

    purpose: Purpose
    method: str
    """``INVITE``, or ``UPDATE`` for a refresh without offer."""
    sdp: bytes
    """The offer sent (empty for an UPDATE refresh)."""
    deadline: float
    """Give up (``timeout``) if no final response by then."""
    headers: list[tuple[str, str]] = field(default_factory=list)
    transaction: ClientTransaction | None = None
    cseq: int = 0
    retry_at: float | None = None
    """Send (again) at this time: after a 491, or while another exchange is in progress."""
    glare_retries: int = 0
    too_small_retried: bool = False
    provisional: bool = False
    """A 1xx came: a CANCEL can be sent (§9.1)."""
    failed: bool = False
    """The application was told it failed (late responses are only acknowledged)."""


@dataclass(eq=False)
class ReinviteAck:
    """The ACK of a 2xx to our last re-INVITE, sent again for each retransmission of that 2xx."""

    cseq: int
    request: SipRequest
    peer: Peer


def glare_delay(*, call_id_owner: bool, rng: random.Random | None = None) -> float:
    """RFC 3261 §14.1: the wait before re-sending a re-INVITE that got 491, in 10 ms units."""
    choice = (rng or random).randint
    if call_id_owner:
        return choice(210, 400) / 100
    return choice(0, 200) / 100


def next_version(previous: bytes | None, new: bytes) -> bytes:
    """``new`` with the ``o=`` line of ``previous`` and its version one higher (RFC 3264 §8).

    A description from another media server (the call moves) has its own origin; to the peer it
    must still be the same session, one version on. Without a previous ``o=`` (or without one in
    ``new``) ``new`` is returned as it is."""
    if not previous:
        return new
    old_origin = _origin(previous)
    if old_origin is None:
        return new
    parts = old_origin.split()
    if len(parts) < 6 or not parts[2].isdigit():
        return new
    parts[2] = str(int(parts[2]) + 1)
    origin = " ".join(parts)
    text = new.decode("utf-8", "replace")
    lines = text.replace("\r\n", "\n").split("\n")
    replaced = False
    for i, line in enumerate(lines):
        if line.startswith("o="):
            lines[i] = origin
            replaced = True
            break
    if not replaced:
        return new
    return "\r\n".join(lines).encode()


def origin_version(sdp: bytes) -> int | None:
    """The session version of an ``o=`` line (RFC 4566 §5.2), None without one."""
    origin = _origin(sdp)
    if origin is None:
        return None
    parts = origin.split()
    return int(parts[2]) if len(parts) >= 3 and parts[2].isdigit() else None


def _origin(sdp: bytes) -> str | None:
    for line in sdp.decode("utf-8", "replace").replace("\r\n", "\n").split("\n"):
        if line.startswith("o="):
            return line.strip()
    return None
