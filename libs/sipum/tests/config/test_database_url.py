"""The old ``sql://`` URL form, URL normalisation and password redaction."""

from __future__ import annotations

import pytest
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
