"""SIP header fields: an ordered, case-insensitive multi-map (RFC 3261 §7.3).

Header names are case-insensitive (§7.3.1) and many have a compact one-letter form (§7.3.3,
plus the IANA registry for later extensions). Both are normalised to the canonical full name
when a message is parsed, so the rest of the stack can look up ``"Call-ID"`` and never think
about ``i`` or ``call-id``.

Values are kept exactly as they appeared on their line (folding replaced by one space), so a
message serialises back to what was received. ``get_all`` splits comma-separated lists
(§7.3.1: "field-name: value, value" is the same as repeating the header) without splitting
inside quoted strings or ``<...>`` — except for headers whose grammar is not a list (the
authentication headers have commas between their parameters, ``Date`` has one in the value).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sipum_protocol.sip.message import SipRequest


class SipParseError(ValueError):
    """Input that is not a SIP message we accept (re-exported by ``sipum_protocol.sip.message``).

    ``reason`` is a reason phrase for the error response. ``request`` is set when the input was
    a request with enough of it understood (Via, From, To, Call-ID, CSeq) to answer it with
    ``status`` (400, or 505 for another SIP version); otherwise it is ``None`` and the transport
    drops the input and counts it (RFC 3261 §18.3, §16.3).
    """

    def __init__(self, reason: str, request: SipRequest | None = None, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request = request
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.request, self.status))


# Compact forms (RFC 3261 §7.3.3 and the IANA "Header Fields" registry).
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_CANONICAL_NAMES = (
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Diversion",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Service-Route",
    "Session-Expires",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
)

# lower-case spelling (full or compact) -> canonical full name
CANONICAL: dict[str, str] = {name.lower(): name for name in _CANONICAL_NAMES}
CANONICAL.update(COMPACT_FORMS)

# Headers whose value is not a comma-separated list; get_all() returns them whole.
_NOT_LISTS = frozenset(
    name.lower()
    for name in (
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Content-Disposition",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Event",
        "Expires",
        "From",
        "Identity",
        "Identity-Info",
        "Max-Forwards",
        "MIME-Version",
        "Min-Expires",
        "Min-SE",
        "Organization",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "RAck",
        "Refer-To",
        "Referred-By",
        "Replaces",
        "Reply-To",
        "Retry-After",
        "RSeq",
        "Server",
        "Session-Expires",
        "Subject",
        "Subscription-State",
        "Timestamp",
        "To",
        "User-Agent",
        "WWW-Authenticate",
    )
)


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name (compact forms expanded); unknown names as given."""
    return CANONICAL.get(name.lower(), name)


# One list element: runs of ordinary characters, quoted strings (with quoted-pairs) and
# <...> spans. An unterminated quote or '<' runs to the end of the value (the closing part is
# optional), so a match never fails half-way and never backtracks: linear time on any input.
_LIST_ELEMENT_RE = re.compile(r'(?:[^,"<]+|"(?:[^"\\]|\\.)*"?|<[^>]*>?)+', re.DOTALL)


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, not inside quoted strings or ``<...>``.

    Empty elements (``a,,b``) are dropped, as RFC 7230's list rule allows.
    """
    if "," not in value:
        v = value.strip()
        return [v] if v else []
    if '"' not in value and "<" not in value:
        return [p for p in (part.strip() for part in value.split(",")) if p]
    return [p for p in (m.strip() for m in _LIST_ELEMENT_RE.findall(value)) if p]


class Headers:
    """Ordered, case-insensitive multi-map of header lines.

    Each entry is one header line as (canonical name, raw value). Lookups accept any
    spelling, including compact forms.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # entries are (key, name, value); key is the lower-case canonical name
        self._items: list[tuple[str, str, str]] = []
        for name, value in items:
            self.add(name, value)

    @staticmethod
    def _key(name: str) -> str:
        low = name.lower()
        canon = CANONICAL.get(low)
        return canon.lower() if canon is not None else low

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first line's whole value, or ``default``."""
        key = self._key(name)
        for k, _, v in self._items:
            if k == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of that name, comma-separated lists split (except non-list headers)."""
        key = self._key(name)
        values = [v for k, _, v in self._items if k == key]
        if key in _NOT_LISTS:
            return values
        out: list[str] = []
        for v in values:
            out.extend(split_list(v))
        return out

    def get_lines(self, name: str) -> list[str]:
        """Every line's value of that name, unsplit."""
        key = self._key(name)
        return [v for k, _, v in self._items if k == key]

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        canon = canonical_name(name)
        self._items.append((canon.lower(), canon, value))

    def prepend(self, name: str, value: str) -> None:
        """Insert before the existing lines of that name (at the end if there are none)."""
        canon = canonical_name(name)
        key = canon.lower()
        for i, (k, _, _) in enumerate(self._items):
            if k == key:
                self._items.insert(i, (key, canon, value))
                return
        self._items.append((key, canon, value))

    def set(self, name: str, value: str) -> None:
        """Replace every line of that name by one line (where the first one was)."""
        canon = canonical_name(name)
        key = canon.lower()
        out: list[tuple[str, str, str]] = []
        placed = False
        for item in self._items:
            if item[0] == key:
                if not placed:
                    out.append((key, canon, value))
                    placed = True
            else:
                out.append(item)
        if not placed:
            out.append((key, canon, value))
        self._items = out

    def remove(self, name: str) -> None:
        """Remove every line of that name."""
        key = self._key(name)
        self._items = [item for item in self._items if item[0] != key]

    def items(self) -> list[tuple[str, str]]:
        """(name, value) per header line, in order."""
        return [(n, v) for _, n, v in self._items]

    def copy(self) -> Headers:
        new = Headers()
        new._items = list(self._items)
        return new

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = self._key(name)
        return any(k == key for k, _, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"

    # Used by the parser: names are already canonical, skip re-normalisation.
    def _append_raw(self, key: str, name: str, value: str) -> None:
        self._items.append((key, name, value))
