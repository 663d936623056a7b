"""SIP URIs, name-addr / addr-spec and Via values (RFC 3261 §19.1, §20.10, §20.42, §25.1).

Parsed forms hold *unescaped* text (``%41`` becomes ``A``, RFC 3261 §19.1.4 says they are
equivalent) and re-escape on ``str()``, so a user part like ``alice%40home`` arrives as
``alice@home``. IPv6 references (RFC 5118) are held without brackets in ``host`` — ready for
``socket`` — and bracketed again when serialised.

Parameter names are case-insensitive and are lower-cased; values are kept as written (a quoted
value keeps its quotes, so ``+sip.instance="<urn:uuid:…>"`` serialises unchanged). A
parameter without a value maps to ``None``.

Every parse function raises :class:`SipParseError` (a ``ValueError``) on bad input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from sipum_protocol.sip.headers import SipParseError

# Characters that may appear unescaped, beyond alphanumerics (RFC 3261 §25.1).
_MARK = "-_.!~*'()"
_USER_SAFE = _MARK + "&=+$,;?/"
_PASSWORD_SAFE = _MARK + "&=+$,"
_PARAM_SAFE = _MARK + "[]/:&+$"
_HEADER_SAFE = _MARK + "[]/?:+$"

_PORT_RE = re.compile(r"[0-9]{1,5}")
_HOST_RE = re.compile(r"[A-Za-z0-9._\-]+")
_TOKEN_RE = re.compile(r"[A-Za-z0-9.!%*_+`'~\-]+")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")


def _unescape(text: str) -> str:
    if "%" not in text:
        return text
    return unquote(text, errors="surrogateescape")


def _escape(text: str, safe: str) -> str:
    return quote(text, safe=safe, errors="surrogateescape")


def format_host(host: str) -> str:
    """A host for a URI or Via: IPv6 addresses get their brackets back (RFC 5118)."""
    return f"[{host}]" if ":" in host else host


def _parse_hostport(text: str, what: str) -> tuple[str, int | None]:
    """``host[:port]`` with an IPv6 reference in brackets; returns (host without brackets, port)."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"Bad {what}: unterminated IPv6 reference")
        host = text[1:end]
        if not host or not all(c in "0123456789abcdefABCDEF:." for c in host):
            raise SipParseError(f"Bad {what}: bad IPv6 reference")
        rest = text[end + 1 :].strip()
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise SipParseError(f"Bad {what}: junk after IPv6 reference")
        port_text = rest[1:].strip()
    else:
        host, sep, port_text = text.partition(":")
        host = host.strip()
        if not host or _HOST_RE.fullmatch(host) is None:
            raise SipParseError(f"Bad {what}: bad host")
        if not sep:
            return host, None
        port_text = port_text.strip()
    if _PORT_RE.fullmatch(port_text) is None or int(port_text) > 65535:
        raise SipParseError(f"Bad {what}: bad port")
    return host, int(port_text)


def split_unquoted(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quoted strings (with backslash quoted-pairs)."""
    if '"' not in text:
        return text.split(sep)
    parts: list[str] = []
    start = 0
    in_quotes = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if in_quotes:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quotes:
        raise SipParseError("Unterminated quoted string")
    parts.append(text[start:])
    return parts


def parse_params(text: str, *, unescape: bool = False) -> dict[str, str | None]:
    """``;a=1;b;c="x"`` (leading ``;`` optional, spaces around ``;``/``=`` allowed)."""
    params: dict[str, str | None] = {}
    text = text.strip()
    if not text:
        return params
    if text.startswith(";"):
        text = text[1:]
    for item in split_unquoted(text, ";"):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not name or _TOKEN_RE.fullmatch(name) is None:
            raise SipParseError("Bad parameter name")
        name = _unescape(name).lower() if unescape else name.lower()
        if sep:
            value = value.strip()
            params[name] = _unescape(value) if unescape else value
        else:
            params[name] = None
    return params


def format_params(params: dict[str, str | None], *, escape: bool = False) -> str:
    out = []
    for name, value in params.items():
        if value is None:
            out.append(f";{name}")
        elif escape:
            out.append(f";{name}={_escape(value, _PARAM_SAFE)}")
        else:
            out.append(f";{name}={value}")
    return "".join(out)


@dataclass
class SipUri:
    """A ``sip:``, ``sips:`` or ``tel:`` URI (RFC 3261 §19.1.1, RFC 3966).

    For ``tel:`` the telephone number is in ``host`` and ``user`` is ``None``. ``user``,
    ``password``, parameter values and header values are unescaped.
    """

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.scheme == "tel":
            parts.append(self.host)
        else:
            if self.user is not None:
                parts.append(_escape(self.user, _USER_SAFE))
                if self.password is not None:
                    parts.append(":")
                    parts.append(_escape(self.password, _PASSWORD_SAFE))
                parts.append("@")
            parts.append(format_host(self.host))
            if self.port is not None:
                parts.append(f":{self.port}")
        parts.append(format_params(self.params, escape=True))
        if self.headers:
            parts.append("?")
            parts.append(
                "&".join(
                    f"{_escape(k, _HEADER_SAFE)}={_escape(v, _HEADER_SAFE)}"
                    for k, v in self.headers.items()
                )
            )
        return "".join(parts)

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased, if present."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def hostport(self) -> str:
        host = format_host(self.host)
        return host if self.port is None else f"{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> SipUri:
        return parse_uri(text)


_URI_BAD_CHARS = re.compile(r'[\s<>"]')


def parse_uri(text: str) -> SipUri:
    """Parse a ``sip:``/``sips:``/``tel:`` URI; raises SipParseError."""
    text = text.strip()
    scheme, sep, rest = text.partition(":")
    if not sep:
        raise SipParseError("Bad URI: no scheme")
    if scheme not in ("sip", "sips", "tel"):
        if _SCHEME_RE.fullmatch(scheme) is None:
            raise SipParseError("Bad URI: no scheme")
        scheme = scheme.lower()
        if scheme not in ("sip", "sips", "tel"):
            raise SipParseError(f"Unsupported URI scheme {scheme}")
    if not rest or _URI_BAD_CHARS.search(rest) is not None:
        raise SipParseError("Bad URI")
    headers: dict[str, str] = {}
    if "?" in rest and scheme != "tel":
        # '?' is legal in the user part, so only a '?' after the host part starts headers
        at = rest.find("@")
        qpos = rest.find("?", at + 1 if at >= 0 else 0)
        if qpos >= 0:
            for pair in rest[qpos + 1 :].split("&"):
                if not pair:
                    continue
                hname, _, hvalue = pair.partition("=")
                headers[_unescape(hname)] = _unescape(hvalue)
            rest = rest[:qpos]
    if scheme == "tel":
        number, _, param_text = rest.partition(";")
        if not number:
            raise SipParseError("Bad tel URI")
        return SipUri("tel", None, None, number, None, parse_params(param_text, unescape=True))
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        if not userinfo:
            raise SipParseError("Bad URI: empty user part")
        if ":" in userinfo:
            u, _, p = userinfo.partition(":")
            user = _unescape(u)
            password = _unescape(p)
        else:
            user = _unescape(userinfo)
    hostport, _, param_text = rest.partition(";")
    host, port = _parse_hostport(hostport, "URI")
    params = parse_params(param_text, unescape=True) if param_text else {}
    return SipUri(scheme, user, password, host.lower(), port, params, headers)


def _unquote_display(text: str) -> str:
    out = []
    i = 1
    n = len(text) - 1
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            i += 1
            ch = text[i]
        out.append(ch)
        i += 1
    return "".join(out)


def _quote_display(display: str) -> str:
    return '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class NameAddr:
    """A From/To/Contact/Route value: optional display name, URI, header parameters."""

    display: str | None
    uri: SipUri
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @tag.setter
    def tag(self, value: str | None) -> None:
        if value is None:
            self.params.pop("tag", None)
        else:
            self.params["tag"] = value

    def __str__(self) -> str:
        # Always the name-addr form: a URI with parameters or headers needs the brackets.
        display = f"{_quote_display(self.display)} " if self.display else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        return parse_name_addr(text)


# The shape nearly every From/To/Contact has: optional simple display name, <sip:user@host:port;
# params>, header params without quotes. Anything else takes the general path below. Written so
# that no stretch of input can be matched two ways (spaces before '<' only by the leading \s*,
# between display words only by [ \t]+), which keeps the regex linear on hostile input.
_TOKEN_CHARS = r"A-Za-z0-9.!%*_+`'~\-"
_NAME_ADDR_FAST_RE = re.compile(
    rf'\s*(?:"([^"\\]*)"\s*|([{_TOKEN_CHARS}]+(?:[ \t]+[{_TOKEN_CHARS}]+)*)\s*)?'
    r"<(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$,%]+)@)?([A-Za-z0-9.\-]+)(?::([0-9]{1,5}))?"
    r"((?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$%=]*)*)>"
    rf"((?:\s*;\s*[{_TOKEN_CHARS}]+(?:\s*=\s*[{_TOKEN_CHARS}:\[\]]*)?)*)\s*"
)


def parse_name_addr(text: str) -> NameAddr:
    """``"Alice" <sip:a@h>;tag=1``, ``Alice <sip:a@h>``, or addr-spec ``sip:a@h;tag=1``.

    In the addr-spec form the parameters belong to the header, not the URI (RFC 3261 §20.10).
    """
    m = _NAME_ADDR_FAST_RE.fullmatch(text)
    if m is not None:
        quoted, words, scheme, user, host, port_text, uri_params, params = m.groups()
        port = int(port_text) if port_text is not None else None
        if port is None or port <= 65535:
            if quoted is not None:
                display: str | None = quoted or None
            elif words is not None:
                display = " ".join(words.split())
            else:
                display = None
            uri = SipUri(
                scheme,
                _unescape(user) if user is not None else None,
                None,
                host.lower(),
                port,
                parse_params(uri_params, unescape=True) if uri_params else {},
                {},
            )
            return NameAddr(display, uri, parse_params(params) if params else {})
    return _parse_name_addr_general(text)


def _parse_name_addr_general(text: str) -> NameAddr:
    text = text.strip()
    display: str | None = None
    if text.startswith('"'):
        i = text.find('"', 1)
        if i > 0 and "\\" not in text[1:i]:
            display = text[1:i]  # the common case: no quoted-pairs
        else:
            i = 1
            n = len(text)
            while i < n:
                ch = text[i]
                if ch == "\\":
                    i += 2
                    continue
                if ch == '"':
                    break
                i += 1
            if i >= n:
                raise SipParseError("Bad name-addr: unterminated display name")
            display = _unquote_display(text[: i + 1])
        text = text[i + 1 :].lstrip()
        if not text.startswith("<"):
            raise SipParseError("Bad name-addr: display name without <URI>")
    lt = text.find("<")
    if lt >= 0:
        if display is None:
            words = text[:lt].strip()
            display = " ".join(words.split()) if words else None
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError("Bad name-addr: missing >")
        uri = parse_uri(text[lt + 1 : gt])
        param_text = text[gt + 1 :].strip()
        if param_text and not param_text.startswith(";"):
            raise SipParseError("Bad name-addr: junk after >")
    else:
        uri_text, _, param_text = text.partition(";")
        uri = parse_uri(uri_text)
    params = parse_params(param_text) if param_text else {}
    return NameAddr(display if display else None, uri, params)


_VIA_RE = re.compile(
    r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9.!%*_+`'~\-]+)\s+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._\-]+)(?:\s*:\s*([0-9]{1,5}))?\s*(;.*)?",
    re.DOTALL,
)


@dataclass
class Via:
    """One Via value (RFC 3261 §20.42, RFC 3581 ``rport``). ``host`` has no IPv6 brackets."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The ``rport`` value filled in by a server; ``None`` if absent or empty."""
        value = self.params.get("rport")
        if value is None or not value.isdigit():
            return None
        return int(value)

    @property
    def rport_requested(self) -> bool:
        """The client asked for symmetric response routing (``;rport``, RFC 3581 §3)."""
        return "rport" in self.params

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return (
            f"SIP/2.0/{self.transport} {format_host(self.host)}{port}{format_params(self.params)}"
        )

    @classmethod
    def parse(cls, text: str) -> Via:
        return parse_via(text)


def parse_via(text: str) -> Via:
    """One Via value; raises SipParseError."""
    m = _VIA_RE.fullmatch(text)
    if m is None:
        raise SipParseError("Bad Via")
    transport, host, port_text, param_text = m.groups()
    if host.startswith("["):
        host = host[1:-1]
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise SipParseError("Bad Via: bad port")
    params = parse_params(param_text) if param_text else {}
    return Via(transport.upper(), host.lower(), port, params)
