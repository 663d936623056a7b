"""The old ``sql://`` URL form, URL normalisation and password redaction."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sipum.config import convert_sql_url, host_and_port, normalize_database_url, redact_url


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "sql://sipum:secret@db.example:5432/cinema",
            "postgresql://sipum:secret@db.example:5432/cinema",
        ),
        ("sql://sipum@localhost/cinema", "postgresql://sipum@localhost/cinema"),
        ("sql://localhost:6543/cinema", "postgresql://localhost:6543/cinema"),
        # Written by hand in old config files: the password is taken literally and encoded.
        ("sql://u:p@ss/w:rd@h:1/db", "postgresql://u:p%40ss%2Fw%3Ard@h:1/db"),
        ("sql://u:pw@[::1]:5432/db", "postgresql://u:pw@[::1]:5432/db"),
    ],
)
def test_sql_url_converts_to_postgresql(old: str, new: str) -> None:
    assert convert_sql_url(old) == new
    assert normalize_database_url(old) == new


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("sql://u:secretpw@host:5432", "no database name"),
        ("sql://u:secretpw@host:5432/", "no database name"),
        ("sql://u:secretpw@host:port/db", "port must be a number"),
        ("sql://u:secretpw@host:70000/db", "port must be a number"),
        ("sql://u:secretpw@/db", "no host"),
        ("sql://u:secretpw@[::1/db", "unclosed"),
        ("sql://:secretpw@host/db", "password without user"),
        ("sql://u:secretpw@host/db/extra", "bad database name"),
    ],
)
def test_malformed_sql_url_names_problem_without_password(bad: str, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        normalize_database_url(bad)
    assert problem in str(info.value)
    assert "sql://user:password@host:port/database" in str(info.value)
    assert "secretpw" not in str(info.value)


def test_other_schemes() -> None:
    assert normalize_database_url(" postgres://a@b/c ") == "postgres://a@b/c"
    assert normalize_database_url("postgresql://a@h1:1,h2:2/c") == "postgresql://a@h1:1,h2:2/c"
    for bad, problem in [
        ("mysql://a@b/c", "unsupported scheme 'mysql'"),
        ("", "empty"),
        ("localhost/sipum", "not a URL"),
        ("postgresql://a@b:99999999/c", "bad port"),
    ]:
        with pytest.raises(ValueError, match=problem):
            normalize_database_url(bad)


def test_redaction_and_host_port() -> None:
    assert redact_url("postgresql://u:s3cret@h:5/d") == "postgresql://u:***@h:5/d"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
    assert "s3cret" not in redact_url("postgresql://u:s3cret@h:notaport/d")
    assert host_and_port("postgresql://u:s@db.example/d") == "db.example:5432"
    assert host_and_port("postgresql://u@[::1]:6000/d") == "[::1]:6000"


_text = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="#?"),
    min_size=1,
    max_size=12,
)


@given(
    user=_text.filter(lambda s: ":" not in s and "@" not in s and "/" not in s),
    password=_text,
    host=st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5})?", fullmatch=True),
    port=st.integers(min_value=1, max_value=65535),
    database=_text.filter(lambda s: "/" not in s),
)
@settings(max_examples=200, deadline=None)
def test_sql_url_round_trip(user: str, password: str, host: str, port: int, database: str) -> None:
    """Whatever the old file held literally comes back out of the converted URL."""
    url = convert_sql_url(f"sql://{user}:{password}@{host}:{port}/{database}")
    parts = urlsplit(url)
    assert parts.scheme == "postgresql"
    assert unquote(parts.username or "") == user
    assert unquote(parts.password or "") == password
    assert (parts.hostname, parts.port) == (host, port)
    assert unquote(parts.path[1:]) == database
    redacted = redact_url(url)
    assert urlsplit(redacted).password == "***" and redacted.endswith(f"@{host}:{port}{parts.path}")
