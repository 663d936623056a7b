"""Database URLs: the old CINEMA ``sql://`` form, normalisation and redaction.

CINEMA sipum read its database from ``-D sql://user:password@host:port/database`` or from a
file (``cinema_db.conf``) holding that one URL.  We speak PostgreSQL through asyncpg, which wants
``postgresql://``; this module converts the old form and never lets a password reach a log line.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

SQL_URL_FORM = "sql://user:password@host:port/database"
_POSTGRES_SCHEMES = ("postgresql", "postgres")


def convert_sql_url(url: str) -> str:
    """Turn ``sql://user:password@host:port/database`` into a ``postgresql://`` URL.

    The old form was written by hand into config files, so the user and password are taken
    literally (a password may hold ``@``, ``:`` or ``/``) and percent-encoded here.  The user,
    password and port may be left out; the host and database may not.
    Raises ``ValueError`` with a message that never contains the password.
    """
    if not url.startswith("sql://"):
        raise ValueError(f"not an sql:// URL (expected {SQL_URL_FORM})")
    rest = url[len("sql://") :]
    userinfo, hostpart = _split_userinfo(rest)
    user, _, password = userinfo.partition(":")
    hostport, slash, database = hostpart.partition("/")
    if not slash or not database:
        raise ValueError(f"malformed sql:// URL: no database name (expected {SQL_URL_FORM})")
    if "/" in database or "?" in database or "#" in database:
        raise ValueError(f"malformed sql:// URL: bad database name (expected {SQL_URL_FORM})")
    host, port = _split_host_port(hostport)
    netloc = ""
    if user:
        netloc = quote(user, safe="")
        if password:
            netloc += ":" + quote(password, safe="")
        netloc += "@"
    elif password:
        raise ValueError(f"malformed sql:// URL: password without user (expected {SQL_URL_FORM})")
    netloc += host + (f":{port}" if port is not None else "")
    return f"postgresql://{netloc}/{quote(database, safe='')}"


def _split_userinfo(rest: str) -> tuple[str, str]:
    """Split ``user:password@host:port/db`` at the '@' that ends the password.

    Both a hand-written password and a database name may hold '@', so take the rightmost '@'
    after which a well-formed ``host[:port]/database`` follows.
    """
    at = len(rest)
    while (at := rest.rfind("@", 0, at)) >= 0:
        hostport, slash, database = rest[at + 1 :].partition("/")
        if slash and database and "/" not in database:
            try:
                _split_host_port(hostport)
            except ValueError:
                continue
            return rest[:at], rest[at + 1 :]
    # No candidate parses: split at the last '@' and let the caller report what is wrong.
    userinfo, _, hostpart = rest.rpartition("@")
    return userinfo, hostpart


def _split_host_port(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):  # IPv6 literal, RFC 3986 section 3.2.2
        end = hostport.find("]")
        if end < 0:
            raise ValueError(
                f"malformed sql:// URL: unclosed '[' in host (expected {SQL_URL_FORM})"
            )
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        if tail and not tail.startswith(":"):
            raise ValueError(f"malformed sql:// URL: bad host (expected {SQL_URL_FORM})")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_raw = hostport.partition(":")
        port_text = port_text_raw if colon else None
    if not host or any(c in host for c in " @/?#"):
        raise ValueError(f"malformed sql:// URL: no host (expected {SQL_URL_FORM})")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(
            f"malformed sql:// URL: port must be a number 1-65535 (expected {SQL_URL_FORM})"
        )
    return host, int(port_text)


def normalize_database_url(url: str) -> str:
    """Accept ``postgresql://``, ``postgres://`` or the old ``sql://`` form; return a URL asyncpg takes."""
    url = url.strip()
    if not url:
        raise ValueError("empty database URL")
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ValueError(f"not a URL (expected postgresql://… or {SQL_URL_FORM})")
    scheme = scheme.lower()
    if scheme == "sql":
        return convert_sql_url(url)
    if scheme in _POSTGRES_SCHEMES:
        try:
            parts = urlsplit(url)
            if "," not in parts.netloc:  # asyncpg also takes host1:port1,host2:port2
                parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError("malformed URL: bad port") from None
        return url
    raise ValueError(f"unsupported scheme {scheme!r} (expected postgresql://… or {SQL_URL_FORM})")


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for log and error lines."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))
    except ValueError:
        # Not parseable: drop everything between the scheme and the last '@'.
        scheme, sep, rest = url.partition("://")
        _, at, hostpart = rest.rpartition("@")
        return f"{scheme}{sep}***@{hostpart}" if at else url


def host_and_port(url: str) -> str:
    """``host:port`` of a database URL, for messages like "cannot connect to 127.0.0.1:5432"."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"
