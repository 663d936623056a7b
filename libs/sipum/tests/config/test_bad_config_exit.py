"""Bad configuration, seen from outside: a real process prints one line naming the setting and
exits with status 2, without a traceback and without the database password."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PASSWORD = "pw-never-shown"


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_migrate(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIPUM_")}
    return subprocess.run(
        [sys.executable, "-m", "sipum.db.migrate", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sipum-migrate: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr + result.stdout


def test_unreachable_database(tmp_path: Path) -> None:
    port = closed_port()
    result = run_migrate(["-D", f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/x"], tmp_path)
    assert_one_line_error(
        result, f"database_url: cannot connect to 127.0.0.1:{port}: Connection refused"
    )


def test_unreachable_database_old_form_from_environment(tmp_path: Path) -> None:
    port = closed_port()
    result = run_migrate(
        [], tmp_path, SIPUM_DATABASE_URL=f"sql://postgres:{PASSWORD}@127.0.0.1:{port}/x"
    )
    assert_one_line_error(result, "database_url: cannot connect to", "Connection refused")


def test_missing_database(tmp_path: Path, pg_admin_dsn: str) -> None:
    url = pg_admin_dsn.rsplit("/", 1)[0] + "/sipum_no_such_database_x"
    result = run_migrate(["-D", url], tmp_path)
    assert_one_line_error(result, "database_url:", "does not exist")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"sql://vm:{PASSWORD}@db:port/cinema", "port must be a number"),
        (f"sql://vm:{PASSWORD}@db:5432", "no database name"),
        ("mysql://vm@db/cinema", "unsupported scheme"),
    ],
)
def test_malformed_url(tmp_path: Path, url: str, problem: str) -> None:
    assert_one_line_error(run_migrate(["-D", url], tmp_path), "database_url:", problem)


def test_malformed_url_in_cinema_db_conf(tmp_path: Path) -> None:
    (tmp_path / "cinema_db.conf").write_text(f"sql://vm:{PASSWORD}@db:99999/cinema\n")
    assert_one_line_error(
        run_migrate([], tmp_path), "database_url:", "port must be a number", "cinema_db.conf"
    )


def test_unreadable_f_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.conf"
    assert_one_line_error(
        run_migrate(["-f", str(missing)], tmp_path),
        f"-f: cannot read {missing}: No such file or directory",
    )
    assert_one_line_error(run_migrate(["-f", str(tmp_path)], tmp_path), "-f:", "Is a directory")


def test_bad_environment_value(tmp_path: Path) -> None:
    result = run_migrate([], tmp_path, SIPUM_HTTP_PORT="not-a-port")
    assert_one_line_error(result, "http_port:")


def test_bad_flag(tmp_path: Path) -> None:
    assert_one_line_error(run_migrate(["-d", "everything"], tmp_path), "argument -d")
    assert_one_line_error(run_migrate(["--frobnicate"], tmp_path), "unrecognized arguments")


def test_cinema_db_conf_in_working_directory_is_used(tmp_path: Path, pg_empty_dsn: str) -> None:
    (tmp_path / "cinema_db.conf").write_text(pg_empty_dsn + "\n")
    status = run_migrate(["--status"], tmp_path)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("0001_initial: pending")
    applied = run_migrate([], tmp_path)
    assert applied.returncode == 0 and "applied 0001_initial" in applied.stdout
    again = run_migrate([], tmp_path)
    assert again.returncode == 0 and "is up to date" in again.stdout


def test_version_flag(tmp_path: Path) -> None:
    result = run_migrate(["-v"], tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("sipum-migrate ")
