"""Bad configuration, seen from outside: a real process prints one line naming the setting and
exits with status 2, without a traceback and without the database password.

The processes of all cases start together (module fixture), so the suite pays for Python
start-up once rather than per case; each case is then checked by its own test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PASSWORD = "pw-never-shown"


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Case:
    args: list[str]
    expected: list[str]
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


PORT = closed_port()

CASES: dict[str, Case] = {
    "unreachable database": Case(
        ["-D", f"postgresql://postgres:{PASSWORD}@127.0.0.1:{PORT}/x"],
        [f"database_url: cannot connect to 127.0.0.1:{PORT}: Connection refused"],
    ),
    "unreachable database, old form, from environment": Case(
        [],
        ["database_url: cannot connect to", "Connection refused"],
        env={"SIPUM_DATABASE_URL": f"sql://postgres:{PASSWORD}@127.0.0.1:{PORT}/x"},
    ),
    "missing database": Case(
        ["-D", "postgresql://postgres@127.0.0.1:5432/sipum_no_such_database_x"],
        ["database_url:", 'database "sipum_no_such_database_x" does not exist'],
    ),
    "sql:// with a bad port": Case(
        ["-D", f"sql://vm:{PASSWORD}@db:port/cinema"],
        ["database_url: malformed sql:// URL: port must be a number"],
    ),
    "malformed URL in ./cinema_db.conf": Case(
        [],
        ["database_url:", "port must be a number", "cinema_db.conf"],
        files={"cinema_db.conf": f"sql://vm:{PASSWORD}@db:99999/cinema\n"},
    ),
    "-f file missing": Case(
        ["-f", "missing.conf"], ["-f: cannot read missing.conf: No such file or directory"]
    ),
    "bad environment value": Case([], ["http_port:"], env={"SIPUM_HTTP_PORT": "not-a-port"}),
    "unknown -d category": Case(["-d", "everything"], ["argument -d: invalid choice"]),
}


def start_migrate(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIPUM_")}
    return subprocess.Popen(
        [sys.executable, "-m", "sipum.db.migrate", *args],
        cwd=cwd,
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[int, str, str]]]:
    procs = {}
    for name, case in CASES.items():
        cwd = tmp_path_factory.mktemp("case")
        for file_name, text in case.files.items():
            (cwd / file_name).write_text(text)
        procs[name] = start_migrate(case.args, cwd, case.env)
    out: dict[str, tuple[int, str, str]] = {}
    try:
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=90)
            out[name] = (proc.returncode, stdout, stderr)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    yield out


@pytest.mark.parametrize("name", list(CASES))
def test_one_line_exit_2(name: str, results: dict[str, tuple[int, str, str]]) -> None:
    returncode, stdout, stderr = results[name]
    assert returncode == 2, (returncode, stdout, stderr)
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sipum-migrate: error: ")
    for fragment in CASES[name].expected:
        assert fragment in lines[0]
    assert "Traceback" not in stderr
    assert PASSWORD not in stderr + stdout


def run_migrate(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = start_migrate(args, cwd, {})
    stdout, stderr = proc.communicate(timeout=90)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_cinema_db_conf_in_working_directory_is_used(tmp_path: Path, pg_empty_dsn: str) -> None:
    (tmp_path / "cinema_db.conf").write_text(pg_empty_dsn + "\n")
    status = run_migrate(["--status"], tmp_path)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("0001_initial: pending")
    applied = run_migrate([], tmp_path)
    assert applied.returncode == 0 and "applied 0001_initial" in applied.stdout
    again = run_migrate(["-v"], tmp_path)
    assert again.returncode == 0 and again.stdout.startswith("sipum-migrate ")
